/* What each file of the Lua binding offers the others, file by file (as luv's private.h does): a
 * reader finds any function's home here. The lower files (config, sign, transport, record,
 * buffer) have headers of their own and know nothing of clients.
 *
 * The arrows point down: core.c -> mailbox.c, client.c -> request.c, iam.c, check.c, headers.c ->
 * error.c -> the lower files. One rule holds the binding together: a request's life belongs to
 * the engine's mailbox. Every request is submitted to the client's engine, settled by mailbox.c
 * when it finishes (sent again, or delivered), and taken out by its owner: poll() for requests
 * nobody holds, take(id) for held ones. */
#ifndef CODEARTSBUILD_PRIVATE_H
#define CODEARTSBUILD_PRIVATE_H

#include <stddef.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "config.h"
#include "record.h"
#include "sign.h"
#include "transport.h"

#define CB_VERSION "0.1.0"
#define CB_CLIENT_MT "codeartsbuild.client"
#define CB_MAX_BUILD_NO 2147483647

#if defined(__GNUC__)
#define CB_EXPORT __attribute__((visibility("default")))
#else
#define CB_EXPORT
#endif

/* Module state: upvalue 1 of every function of the module, a table with these slots. */
enum { S_DECODE = 1, S_RECORD_NAMES, S_RECORD_KEYS, S_RECORD_MT, S_ERROR_MT, S_DEFAULT_CLIENT, S_SLOTS = S_DEFAULT_CLIENT };
#define CB_STATE lua_upvalueindex(1)

/* ---- error.c: the error shape and its kinds ---- */

/* A failure on its way to becoming `nil, message, err`. The message is the request's context
 * (added when pushed) followed by `text`. */
typedef struct {
	const char *kind; /* a static string: "invalid", "auth", "network", ... */
	const char *what; /* not_found: "job", "build" or "api" (static); NULL otherwise */
	char text[512];
	long status;
	char code[64];
	char request_id[72];
	int retryable;
	int attempts; /* requests sent; 0 when the failure came before any */
} cb_failure;

void cb_failure_init(cb_failure *f);
void cb_failure_set(cb_failure *f, const char *kind, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;
/* Sets the kind and the text, the user name and password of any URL in it replaced with ***. */
void cb_failure_set_redacted(cb_failure *f, const char *kind, const char *text);
/* Puts the formatted prefix before f->text (whose end is cut when it no longer fits). */
void cb_failure_prefix(cb_failure *f, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
/* Whether a failure says the credentials were refused (HTTP 401, or the gateway's APIG.0301 or APIG.0303):
 * the client then sends nothing for a cool-down (iam.c). */
int cb_failure_is_credential(const cb_failure *f);
struct request_ctx;
/* Sets the kind (and `what`) of a failure from its code (f->code; codes.h) first, then its status
 * (f->status), and its text from what the service `said` ("HTTP 404: CB.00031059 ..."): "build 7
 * of job ... not found (said)" and the like. ctx: the request (NULL: none); api: the API it asked. */
void cb_failure_classify(cb_failure *f, const struct request_ctx *ctx, int api, const char *said);
/* Sets up the error metatable (state slot S_ERROR_MT) and core.error in the module table. */
void cb_error_open(lua_State *L, int state, int module);

/* ---- request.c: one request, from its arguments to its outcome ---- */

enum { REQUEST_RECORD = 1, REQUEST_GET, REQUEST_IAM_TOKEN, REQUEST_IAM_PROJECTS };

/* What a transfer is for, kept with it in the engine (plain bytes: the engine frees them). */
typedef struct request_ctx {
	int kind;
	char job_id[33];
	lua_Integer build_no;
	char path[160];            /* for messages; may be cut */
	int api;                   /* record requests: the API asked (CB_API_V3, ...) */
	unsigned token_generation; /* of the IAM token its last attempt carried */
	int token_renewed;         /* sent again once already after a 401 */
	int failed;                /* the outcome is `failure`, decided when it was settled */
	cb_failure failure;
} request_ctx;

typedef struct cb_client cb_client;

/* Pushes nil, message, err for f (ctx: the request it is about, or NULL) and returns 3. The
 * message begins with the request's context, or with `context` as given. */
int cb_push_failure(lua_State *L, const cb_failure *f, const request_ctx *ctx);
int cb_push_failure_about(lua_State *L, const cb_failure *f, const char *context, const request_ctx *ctx);
/* What a request is, as messages begin: "record_info <job>/<n>", "GET <path>", ... */
void cb_request_context(const request_ctx *ctx, char *out, size_t len);

/* Submits a record request (to the API in use), or a GET of a path and query as a user gave
 * them. flags: CB_HELD. Returns the transfer, or NULL with f. */
cb_transfer *cb_request_submit_record(cb_client *c, request_ctx *ctx, int flags, cb_failure *f);
cb_transfer *cb_request_submit_get(cb_client *c, const request_ctx *ctx, const char *path, const cb_kv *query,
				   size_t nquery, int flags, cb_failure *f);
/* Submits a request to IAM (base: its endpoint), ungated and held, for iam.c. */
cb_transfer *cb_request_submit_iam(cb_client *c, int kind, const char *path, const cb_kv *query, size_t nquery,
				   cb_failure *f);

/* Settling a finished record or get request: fills ctx->failure when it failed at the HTTP level
 * (a transport failure or a non-2xx status). Returns whether it did. */
int cb_request_settle_failure(lua_State *L, cb_transfer *t);
/* With api = "auto", a record request answered that its API is not published here (retired at the
 * gateway or the backend): moves the client to the next API and sends it again there. Returns 1
 * when t went back into the engine. */
int cb_request_resend_on_next_api(cb_client *c, cb_transfer *t);
/* The API a client with this api option asks first (auto: v1, then v4, then v3). */
int cb_request_first_api(int api_mode);

/* Pushes what a done transfer produced: 1 value (a record, or a decoded body), or nil, message,
 * err (3); then tells the client's on_event hook. Returns the number of values. */
int cb_request_deliver(lua_State *L, cb_client *c, const cb_transfer *t);

/* Decodes a body with the module's JSON decoder: 0 and the value on the stack, or -1 and the
 * decoder's message on the stack instead. */
int cb_decode_body(lua_State *L, const cb_buffer *body);


/* ---- check.c: what a caller gives, checked before anything is sent ---- */

#define CB_MAX_QUERY_PAIRS 256

/* A wrong type raises; a bad value returns -1 (or (size_t)-1) with f filled in. */
int cb_check_job_id(lua_State *L, int arg, request_ctx *ctx, cb_failure *f);
int cb_check_build_no(lua_State *L, int arg, request_ctx *ctx, cb_failure *f);
/* get()'s arguments path_arg, path_arg + 1 into ctx and query[CB_MAX_QUERY_PAIRS]: the number of
 * query pairs. The strings are anchored in a table left on the stack. */
size_t cb_check_get(lua_State *L, int path_arg, request_ctx *ctx, cb_kv *query, cb_failure *f);
/* A query (a list of {key, value} pairs, or a map) at arg into kv[CB_MAX_QUERY_PAIRS], likewise. */
size_t cb_check_query(lua_State *L, int arg, cb_kv *kv);
/* core.check_job_id and core.check_build_no. */
void cb_check_open(lua_State *L, int state, int module);

/* ---- files.c: core.private_dir, core.dir_files, core.isatty ---- */

void cb_files_open(lua_State *L, int module);

/* ---- headers.c: the headers of one attempt ---- */

/* The engine's prepare callback: one attempt's headers, signed as it starts. */
struct curl_slist *cb_headers_prepare(void *client, cb_transfer *t);
/* core.sign. */
void cb_headers_open(lua_State *L, int state, int module);

/* ---- iam.c: tokens, project ids, and remembered credential failures ---- */

typedef struct {
	long long request_id;      /* the sign-in or project lookup in flight; 0: none */
	int gating;                /* ... and the gate holds the other requests back until it is done */
	long long probe_id;        /* the request that goes alone until the credentials are verified */
	int verified;              /* a response showed that the service takes the credentials */
	unsigned token_generation; /* counts the tokens this client has had */
	time_t token_expires;      /* when the IAM token stops working (IAM users) */
	time_t renew_after;        /* a renewal ahead of time failed: not again before this */
	cb_failure failure;        /* the last credential failure, while the client cools down */
	long long cool_until_ns;   /* 0: not cooling down */
} cb_credentials;

/* Before a request is submitted: 0 to go on (it may wait behind a sign-in that this starts), or
 * -1 with f while the client cools down after a credential failure. */
int cb_iam_prepare(lua_State *L, cb_client *c, cb_failure *f);
/* After: until a response has shown that the service takes the credentials (and, for a record
 * request with api = "auto", which record API answers), one request goes alone and the others wait
 * at the gate: wrong credentials cost one refusal, not one per request in flight (the gateway locks
 * an AK after 5), and a retired API one extra request. */
void cb_iam_track(cb_client *c, cb_transfer *t);
/* A finished sign-in or project lookup: its outcome taken in, the gate opened; when it failed,
 * every request waiting for it fails with its failure. Drops t. */
void cb_iam_settle(lua_State *L, cb_client *c, cb_transfer *t);
/* A request that failed (ctx->failure): renews the token and sends it again (1), or remembers a
 * credential failure and fails what is queued (0). */
int cb_iam_refused(lua_State *L, cb_client *c, cb_transfer *t);
/* A request that is about to be delivered: what it says of the credentials. */
void cb_iam_answered(cb_client *c, const cb_transfer *t);
/* Whether request `id` is a sign-in or lookup, which cancel() leaves alone; and, after cancel(),
 * the next request goes alone when the cancelled one was the request the others waited for. */
int cb_iam_owns(const cb_client *c, long long id);
void cb_iam_cancelled(cb_client *c, long long id);
/* Forgets the sign-in and the lone request in flight (the engine they ran on is gone). */
void cb_iam_reset(cb_client *c);

/* ---- options.c: one descriptor table for every option of new() ---- */

/* Reads the option table at opts into cfg (and the on_event function into a registry reference);
 * a wrong type or an unknown name raises, a bad value returns -1 with f filled in. */
int cb_options_read(lua_State *L, int opts, cb_config *cfg, int *on_event, cb_failure *f);
/* The name of an API mode (API_AUTO, CB_API_V3, ...). */
const char *cb_api_name(int api);

/* ---- client.c: the client userdata ---- */

struct cb_client {
	cb_config cfg;
	int api_current; /* the API record requests go to now (CB_API_V3, ...) */
	int api_confirmed; /* a record request has had an answer from it (api = "auto") */
	cb_engine *engine;
	cb_hmac_key *key;
	int on_event;    /* registry reference to the on_event function, or LUA_NOREF */
	unsigned forks;  /* the process's fork count when the engine was made */
	cb_credentials credentials;
	time_t date_time; /* X-Sdk-Date is formatted once a second */
	char date[CB_SDK_DATE_LEN + 1];
	int closed; /* close() was called: every method raises */
	int busy;   /* methods of this client on the stack: release waits until they return */
};

/* Every method that uses the engine starts with enter() and ends with leave(): close() from a
 * callback, a hook or a __gc that runs meanwhile only marks the client closed, and the last
 * leave() releases it, once nothing on the stack uses it any more. raise() leaves, then raises
 * the message. */
cb_client *cb_client_enter(lua_State *L);
int cb_client_leave(lua_State *L, cb_client *c, int results);
int cb_client_raise(lua_State *L, cb_client *c, const char *message);
/* The client module-level calls use, made from the environment on first use (pushed on the stack;
 * NULL, and nil, message, err in *pushed values, when it cannot be made). */
cb_client *cb_client_default(lua_State *L, int *pushed);
/* The client metatable (core.client_methods), info, close; core.new and core.default_client. */
void cb_client_open(lua_State *L, int state, int module);

/* ---- mailbox.c: the methods on requests, and the one mailbox ---- */

/* submit, poll, take, read (a streamed request's body, a piece at a time), pending, cancel,
 * record_info, get, submit_get into core.client_methods, and core.record_info and core.monotonic. */
void cb_mailbox_open(lua_State *L, int state, int module);

/* ---- core.c: the module entry ---- */

CB_EXPORT int luaopen_codeartsbuild_core(lua_State *L);

#endif
