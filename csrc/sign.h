/* SDK-HMAC-SHA256, the request signature of the Huawei Cloud API gateway (no Lua here). */
#ifndef CODEARTSBUILD_SIGN_H
#define CODEARTSBUILD_SIGN_H

#include <stddef.h>
#include <time.h>

#include "buffer.h"

#define CB_SIGN_ALGORITHM "SDK-HMAC-SHA256"
#define CB_SDK_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */

typedef struct {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} cb_kv;

/* HMAC-SHA256 keyed once with the SK, and SHA-256, ready for each signature (one thread at a time). */
typedef struct cb_hmac_key cb_hmac_key;
cb_hmac_key *cb_hmac_key_new(const char *sk, size_t sk_len);
void cb_hmac_key_free(cb_hmac_key *key);

typedef struct {
	const char *method;
	const char *path;
	size_t path_len;
	const cb_kv *query;
	size_t query_count;
	const char *canonical_query; /* when not NULL, used instead of query (already canonical) */
	const cb_kv *headers; /* as they will be sent; names containing '_' are not signed */
	size_t header_count;
	const char *body;
	size_t body_len;
	const char *ak;
	cb_hmac_key *key; /* used (its contexts are reset) by each signature */
	/* Used, and signed as x-sdk-date, only when no X-Sdk-Date is among the headers. */
	const char *sdk_date;
} cb_sign_input;

typedef struct {
	cb_buffer canonical_request;
	cb_buffer string_to_sign;
	cb_buffer signed_headers;
	cb_buffer authorization;
	char sdk_date[64]; /* the date that was signed */
} cb_sign_output;

/* Returns 0, or -1 with *error set to a static description (nothing secret). */
int cb_sign(const cb_sign_input *in, cb_sign_output *out, const char **error);
void cb_sign_output_free(cb_sign_output *out);

/* Writes t as YYYYMMDDTHHMMSSZ (UTC) into out[CB_SDK_DATE_LEN + 1]. */
void cb_sdk_date(time_t t, char *out);

/* The pieces of the canonical request, also used to build the URL that is sent. */
int cb_canonical_uri(cb_buffer *b, const char *path, size_t len, int trailing_slash);
int cb_canonical_query(cb_buffer *b, const cb_kv *query, size_t count);

/* Header names are RFC 7230 tokens; values carry no CR, LF or NUL. */
int cb_header_name_ok(const char *name, size_t len);
int cb_header_value_ok(const char *value, size_t len);

#endif
