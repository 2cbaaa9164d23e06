/* The error codes of the service and of its gateway that change what a failure means: the one table,
 * read by the error kinds (error.c) and by the engine's retry rule (response.c). No Lua here. */
#ifndef CODEARTSBUILD_CODES_H
#define CODEARTSBUILD_CODES_H

#include <stddef.h>

typedef enum {
	CB_CODE_OTHER = 0,     /* a code this module does not know: the HTTP status decides */
	CB_CODE_JOB_MISSING,   /* no such job */
	CB_CODE_BUILD_MISSING, /* no such build: never built, or its history deleted */
	CB_CODE_THROTTLED,     /* too many requests, whatever the HTTP status: retried */
	CB_CODE_CREDENTIALS,   /* the gateway refused the credentials */
	CB_CODE_NO_API,        /* no such API here: not published, retired, or an unknown URL */
	CB_CODE_PERMANENT,     /* a 5xx that another attempt will not change */
} cb_code_meaning;

cb_code_meaning cb_code_meaning_of(const char *code);

/* The error code a response body carries, read without decoding it: the string value of the
 * first "error_code", "errorCode", "err_code" or "code" key found, in that order (in a successful
 * response only "error_code": a v3 envelope has an empty "err_code" and records have no code).
 * Copies at most outlen - 1 printable characters; returns the length, 0 when there is none. */
size_t cb_code_in_body(const char *body, size_t len, int success, char *out, size_t outlen);

#endif
