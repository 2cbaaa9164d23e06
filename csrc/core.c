/* codeartsbuild.core: the Lua binding. Clients are userdata holding their configuration,
 * credentials and one HTTP engine; every request, blocking or not, goes through that engine. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "compat.h"
#include "config.h"
#include "record.h"
#include "sign.h"
#include "transport.h"

#define CB_VERSION "0.1.0"
#define CLIENT_MT "codeartsbuild.client"
#define MAX_BUILD_NO 2147483647
#define MAX_QUERY_PAIRS 256
#define MAX_PATH_LEN 2048
#define DEFAULT_CONCURRENCY 64
#define DEFAULT_RETRIES 3
#define DEFAULT_BACKOFF_MS 200L
#define DEFAULT_MAX_BACKOFF_MS 20000L

#if defined(__GNUC__)
#define CB_EXPORT __attribute__((visibility("default")))
#else
#define CB_EXPORT
#endif

/* Module state, upvalue 1 of every function: a table with these slots. */
enum { S_DECODE = 1, S_RECORD_NAMES, S_RECORD_KEYS, S_RECORD_MT, S_ERROR_MT, S_DEFAULT_CLIENT, S_SLOTS = S_DEFAULT_CLIENT };
#define STATE lua_upvalueindex(1)

enum { API_AUTO = -1, API_V3 = 0, API_V4, API_V1 };
static const char *const api_names[] = {"v3", "v4", "v1"};

/* Engine settings a client is made with (the rest of its configuration is in cb_config). */
typedef struct {
	int api_mode;
	int concurrency;
	double rate;
	int retries;
	long backoff_ms, max_backoff_ms;
} engine_settings;

typedef struct {
	cb_config cfg;
	engine_settings settings;
	int api_mode;    /* API_AUTO or the one API to use */
	int api_current; /* the API record requests go to now */
	cb_engine *engine;
	cb_hmac_key *key;
	int on_event; /* registry reference to the on_event function, or LUA_NOREF */
	time_t token_expires; /* when the IAM token in cfg.token stops working (IAM users only) */
	time_t date_time; /* X-Sdk-Date is formatted once a second */
	char date[CB_SDK_DATE_LEN + 1];
	int closed;
} cb_client;

enum { REQUEST_RECORD = 1, REQUEST_GET, REQUEST_IAM_TOKEN, REQUEST_IAM_PROJECTS };

/* What a transfer was for, kept with it (plain bytes: the engine frees them). */
typedef struct {
	int kind;
	char job_id[33];
	lua_Integer build_no;
	char path[160]; /* for messages; may be cut */
	int token_renewed; /* sent again once already after a 401 with a renewed IAM token */
} request_ctx;

/* A failure on its way to becoming `nil, message, err`. */
typedef struct {
	const char *kind;
	char text[768];
	long status;
	char code[128];
	char request_id[72];
	int retryable;
	int attempts; /* requests sent; 0 when the failure came before any */
	const request_ctx *ctx;
} failure;

/* ---- failures ---- */

static void failure_init(failure *f, const request_ctx *ctx)
{
	memset(f, 0, sizeof *f);
	f->ctx = ctx;
}

static void failure_set(failure *f, const char *kind, const char *fmt, ...)
{
	va_list ap;

	f->kind = kind;
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof f->text, fmt, ap);
	va_end(ap);
}

static void push_context(lua_State *L, const request_ctx *ctx)
{
	if (ctx == NULL)
		lua_pushliteral(L, "codeartsbuild");
	else if (ctx->kind == REQUEST_GET)
		lua_pushfstring(L, ctx->path[0] ? "GET %s" : "get", ctx->path);
	else if (ctx->job_id[0] && ctx->build_no > 0)
		lua_pushfstring(L, "record_info %s/%d", ctx->job_id, (int)ctx->build_no);
	else
		lua_pushliteral(L, "record_info");
}

/* Pushes nil, message, err and returns 3. */
static int push_failure(lua_State *L, const failure *f)
{
	int err;

	lua_pushnil(L);
	push_context(L, f->ctx);
	lua_pushfstring(L, ": %s", f->text);
	if (f->request_id[0])
		lua_pushfstring(L, " (request id %s)", f->request_id);
	else
		lua_pushliteral(L, "");
	lua_concat(L, 3);
	lua_createtable(L, 0, 10);
	err = lua_gettop(L);
	lua_pushstring(L, f->kind);
	lua_setfield(L, err, "kind");
	lua_pushvalue(L, err - 1);
	lua_setfield(L, err, "message");
	lua_pushboolean(L, f->retryable);
	lua_setfield(L, err, "retryable");
	if (f->status) {
		lua_pushinteger(L, f->status);
		lua_setfield(L, err, "status");
	}
	if (f->code[0]) {
		lua_pushstring(L, f->code);
		lua_setfield(L, err, "code");
	}
	if (f->request_id[0]) {
		lua_pushstring(L, f->request_id);
		lua_setfield(L, err, "request_id");
	}
	if (f->ctx && f->ctx->kind == REQUEST_RECORD) {
		if (f->ctx->job_id[0]) {
			lua_pushstring(L, f->ctx->job_id);
			lua_setfield(L, err, "job_id");
		}
		if (f->ctx->build_no > 0) {
			lua_pushinteger(L, f->ctx->build_no);
			lua_setfield(L, err, "build_no");
		}
	}
	lua_pushinteger(L, f->attempts);
	lua_setfield(L, err, "attempts");
	lua_rawgeti(L, STATE, S_ERROR_MT);
	lua_setmetatable(L, err);
	return 3;
}

static int error_tostring(lua_State *L)
{
	lua_getfield(L, 1, "message");
	if (lua_type(L, -1) != LUA_TSTRING) {
		lua_pop(L, 1);
		lua_pushliteral(L, "codeartsbuild error");
	}
	return 1;
}

/* ---- input checks ---- */

static int check_job_id(lua_State *L, int arg, request_ctx *ctx, failure *f)
{
	size_t len, i;
	const char *s;

	if (lua_type(L, arg) != LUA_TSTRING)
		return luaL_typeerror(L, arg, "string");
	s = lua_tolstring(L, arg, &len);
	/* ASCII only, whatever the host's locale: the id goes into the URL unencoded (record_path). */
	for (i = 0; i < len && ((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')); i++)
		;
	if (len != 32 || i != len) {
		failure_set(f, "invalid", "invalid job_id: expected 32 letters or digits, got %s",
			    len != 32 ? "a string of another length" : "a character other than a letter or digit");
		return -1;
	}
	memcpy(ctx->job_id, s, 33);
	return 0;
}

static int check_build_no(lua_State *L, int arg, request_ctx *ctx, failure *f)
{
	static const char expected[] = "invalid build_no: expected an integer from 1 to 2147483647";
	int type = lua_type(L, arg);
	double d;

	if (type == LUA_TNUMBER) {
		d = (double)lua_tonumber(L, arg);
		if (lua_isinteger(L, arg)) {
			lua_Integer n = lua_tointeger(L, arg);
			d = n < 1 ? 0 : n > MAX_BUILD_NO ? (double)MAX_BUILD_NO + 1 : (double)n;
		}
		if (!isfinite(d) || d != floor(d) || d < 1 || d > MAX_BUILD_NO) {
			/* NaN prints as "nan" or "-nan" depending on the C library: say it one way. */
			failure_set(f, "invalid", "%s, got %s", expected,
				    isnan(d) ? "nan" : isinf(d) ? (d > 0 ? "inf" : "-inf") : lua_tostring(L, arg));
			return -1;
		}
	} else if (type == LUA_TSTRING) {
		size_t len, i;
		const char *s = lua_tolstring(L, arg, &len);
		for (i = 0; i < len && isdigit((unsigned char)s[i]); i++)
			;
		d = len > 0 && len <= 10 && i == len ? strtod(s, NULL) : 0;
		if (d < 1 || d > MAX_BUILD_NO) {
			failure_set(f, "invalid", "%s, got a string that is not one", expected);
			return -1;
		}
	} else {
		return luaL_typeerror(L, arg, "number");
	}
	ctx->build_no = (lua_Integer)d;
	return 0;
}

/* A path for get(): absolute, printable, no query, fragment or dot segments. */
static int check_path(lua_State *L, int arg, request_ctx *ctx, failure *f)
{
	size_t len, i;
	const char *s;

	if (lua_type(L, arg) != LUA_TSTRING)
		return luaL_typeerror(L, arg, "string");
	s = lua_tolstring(L, arg, &len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 32 || c >= 127 || c == '?' || c == '#')
			break;
	}
	if (len == 0 || len > MAX_PATH_LEN || s[0] != '/' || i != len || strstr(s, "/./") ||
	    strstr(s, "/../") || (len >= 2 && strcmp(s + len - 2, "/.") == 0) ||
	    (len >= 3 && strcmp(s + len - 3, "/..") == 0)) {
		failure_set(f, "invalid",
			    "invalid path: expected an absolute path of printable characters without a query, "
			    "fragment or dot segments");
		return -1;
	}
	snprintf(ctx->path, sizeof ctx->path, "%s", s);
	return 0;
}

/* Collects the query (a list of {key, value} pairs, or a map) into strings anchored in a new
 * table left on the stack, and points kv at them. Raises on a wrong type. */
static size_t collect_query(lua_State *L, int arg, cb_kv *kv)
{
	size_t n = 0, i, list_len;
	int anchor;

	lua_newtable(L);
	anchor = lua_gettop(L);
	if (lua_isnoneornil(L, arg))
		return 0;
	luaL_checktype(L, arg, LUA_TTABLE);
	list_len = lua_rawlen(L, arg);
	lua_pushnil(L);
	while (lua_next(L, arg) != 0) {
		int key = lua_gettop(L) - 1, value = key + 1;
		if (list_len > 0) {
			if (lua_type(L, value) != LUA_TTABLE)
				luaL_error(L, "query: expected a list of {key, value} pairs");
			lua_rawgeti(L, value, 1);
			lua_rawgeti(L, value, 2);
			key = value + 1;
			value = value + 2;
		}
		if (lua_type(L, key) != LUA_TSTRING && lua_type(L, key) != LUA_TNUMBER)
			luaL_error(L, "query: keys must be strings");
		if (lua_type(L, value) == LUA_TBOOLEAN) {
			lua_pushstring(L, lua_toboolean(L, value) ? "true" : "false");
			lua_replace(L, value);
		} else if (lua_type(L, value) != LUA_TSTRING && lua_type(L, value) != LUA_TNUMBER) {
			luaL_error(L, "query: values must be strings, numbers or booleans");
		}
		if (n == MAX_QUERY_PAIRS)
			luaL_error(L, "query: more than %d pairs", MAX_QUERY_PAIRS);
		/* Anchor string copies: converting a number in place would confuse lua_next. */
		lua_pushvalue(L, key);
		lua_tostring(L, -1);
		lua_rawseti(L, anchor, (int)(2 * n + 1));
		lua_pushvalue(L, value);
		lua_tostring(L, -1);
		lua_rawseti(L, anchor, (int)(2 * n + 2));
		n++;
		lua_settop(L, list_len > 0 ? key - 2 : key);
	}
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, anchor, (int)(2 * i + 1));
		kv[i].name = lua_tolstring(L, -1, &kv[i].name_len);
		lua_rawgeti(L, anchor, (int)(2 * i + 2));
		kv[i].value = lua_tolstring(L, -1, &kv[i].value_len);
		lua_pop(L, 2); /* still referenced by the anchor table */
	}
	return n;
}

/* ---- clients ---- */

static void client_release(lua_State *L, cb_client *c)
{
	if (c->on_event != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, c->on_event);
		c->on_event = LUA_NOREF;
	}
	cb_engine_free(c->engine);
	c->engine = NULL;
	cb_hmac_key_free(c->key);
	c->key = NULL;
	cb_config_free(&c->cfg);
	c->closed = 1;
}

static cb_client *check_client(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CLIENT_MT);
	if (c->closed)
		luaL_error(L, "attempt to use a closed codeartsbuild client");
	return c;
}

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *client_date(cb_client *c)
{
	time_t now = time(NULL);

	if (now != c->date_time) {
		cb_sdk_date(now, c->date);
		c->date_time = now;
	}
	return c->date;
}

static int append_header(struct curl_slist **list, cb_buffer *line, const char *name, const char *value)
{
	struct curl_slist *next;

	cb_buffer_clear(line);
	cb_buffer_append_str(line, name);
	cb_buffer_append_str(line, ": ");
	cb_buffer_append_str(line, value);
	if (line->failed || (next = curl_slist_append(*list, line->data)) == NULL)
		return -1;
	*list = next;
	return 0;
}

static int sign_into(cb_client *c, const cb_transfer *t, const char *host, int with_project,
		     struct curl_slist **headers, cb_buffer *line)
{
	cb_kv signed_headers[4];
	size_t n = 0;
	cb_sign_input in;
	cb_sign_output out;
	const char *error;
	int rc;

#define SIGNED(name_, value_) \
	signed_headers[n].name = name_, signed_headers[n].name_len = sizeof name_ - 1, \
	signed_headers[n].value = value_, signed_headers[n].value_len = strlen(value_), n++
	SIGNED("host", host);
	SIGNED("x-sdk-date", client_date(c));
	if (with_project && c->cfg.project_id)
		SIGNED("x-project-id", c->cfg.project_id);
	if (c->cfg.security_token)
		SIGNED("x-security-token", c->cfg.security_token);
#undef SIGNED
	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	in.method = "GET";
	in.path = t->path;
	in.path_len = strlen(t->path);
	in.canonical_query = t->query ? t->query : "";
	in.headers = signed_headers;
	in.header_count = n;
	in.ak = c->cfg.ak;
	in.key = c->key;
	rc = cb_sign(&in, &out, &error);
	if (rc == 0) {
		rc |= append_header(headers, line, "X-Sdk-Date", out.sdk_date);
		if (c->cfg.security_token)
			rc |= append_header(headers, line, "X-Security-Token", c->cfg.security_token);
		rc |= append_header(headers, line, "Authorization", out.authorization.data);
	}
	cb_sign_output_free(&out);
	return rc;
}

/* The engine's prepare callback: the headers of one attempt, signed as it starts. Requests to
 * IAM go to its own host: the token request carries no credential, the project lookup is signed. */
static struct curl_slist *request_headers(void *client, const cb_transfer *t)
{
	cb_client *c = client;
	const request_ctx *ctx = t->user;
	int to_iam = ctx->kind == REQUEST_IAM_TOKEN || ctx->kind == REQUEST_IAM_PROJECTS;
	const char *host = to_iam ? c->cfg.iam_host : c->cfg.host;
	struct curl_slist *headers = NULL;
	cb_buffer line = CB_BUFFER_INIT;
	int rc = 0;

	/* libcurl writes Host itself; an explicit one only where it is signed, so that the signed
	 * value is the one on the wire (libcurl's leaves out a default port). */
	if (ctx->kind != REQUEST_IAM_TOKEN && !c->cfg.token && c->cfg.ak)
		rc |= append_header(&headers, &line, "Host", host);
	rc |= append_header(&headers, &line, "Accept", "application/json");
	if (ctx->kind == REQUEST_IAM_TOKEN)
		rc |= append_header(&headers, &line, "Content-Type", "application/json;charset=utf8");
	else if (!to_iam && c->cfg.project_id)
		rc |= append_header(&headers, &line, "X-Project-Id", c->cfg.project_id);
	if (ctx->kind == REQUEST_IAM_TOKEN)
		;
	else if (c->cfg.token)
		rc |= append_header(&headers, &line, "X-Auth-Token", c->cfg.token);
	else if (c->cfg.ak)
		rc |= sign_into(c, t, host, !to_iam, &headers, &line);
	else
		rc = -1; /* an IAM user without a token yet: ensure_credentials() comes first */
	cb_buffer_wipe(&line);
	if (rc != 0) {
		struct curl_slist *h;
		for (h = headers; h != NULL; h = h->next)
			OPENSSL_cleanse(h->data, strlen(h->data));
		curl_slist_free_all(headers);
		return NULL;
	}
	return headers;
}

/* Queues a GET of a canonical path and query (to base, NULL: the endpoint); returns the
 * transfer, or NULL with f filled in. */
static cb_transfer *submit_canonical(cb_client *c, const char *base, const char *path, const char *query,
				     const request_ctx *ctx, failure *f)
{
	char err[256];
	cb_transfer *t = cb_engine_submit(c->engine, base, path, query, sizeof(request_ctx), err, sizeof err);

	if (t == NULL)
		failure_set(f, "network", "%s", err);
	else
		memcpy(t->user, ctx, sizeof *ctx);
	return t;
}

/* Queues a GET of path?query as a user gave them: canonicalised first, as they are signed. */
static cb_transfer *start_request(cb_client *c, const char *base, const char *path, const cb_kv *query,
				  size_t nquery, const request_ctx *ctx, failure *f)
{
	cb_buffer encoded_path = CB_BUFFER_INIT, canonical_query = CB_BUFFER_INIT;
	cb_transfer *t = NULL;

	cb_canonical_uri(&encoded_path, path, strlen(path), 0);
	cb_canonical_query(&canonical_query, query, nquery);
	if (encoded_path.failed || canonical_query.failed)
		failure_set(f, "network", "cannot prepare the request (out of memory)");
	else
		t = submit_canonical(c, base, encoded_path.data, canonical_query.data, ctx, f);
	cb_buffer_free(&encoded_path);
	cb_buffer_free(&canonical_query);
	return t;
}

/* A record's path is canonical as formatted: the job id is 32 letters or digits (check_job_id),
 * the build number a positive integer, the rest unreserved characters and slashes. */
static void record_path(const cb_client *c, const request_ctx *ctx, char *path, size_t len)
{
	static const char *const templates[] = {
		[API_V3] = "/v3/jobs/%s/%d/record-info",
		[API_V4] = "/v4/jobs/%s/%d/record-info",
		[API_V1] = "/v1/record/%s/%d/record-info",
	};
	snprintf(path, len, templates[c->api_current], ctx->job_id, (int)ctx->build_no);
}

static cb_transfer *start_record_request(cb_client *c, const request_ctx *ctx, failure *f)
{
	char path[96];

	record_path(c, ctx, path, sizeof path);
	return submit_canonical(c, NULL, path, NULL, ctx, f);
}

static int decode_body(lua_State *L, const cb_buffer *body);

/* With api = "auto", a 404 from the gateway saying the v3 API is gone (APIGW.0101, not a
 * missing build) moves the client to v1 for good and sends the request again. Returns 1 when
 * t went back into the engine. */
static int moved_to_v1(lua_State *L, cb_client *c, cb_transfer *t)
{
	const request_ctx *ctx = t->user;
	char code[64] = "", message[8], path[96];
	int retired;

	if (c->api_mode != API_AUTO || ctx->kind != REQUEST_RECORD || t->status != 404 || t->result != CURLE_OK ||
	    strncmp(t->path, "/v3/", 4) != 0)
		return 0;
	if (t->body.len == 0 || decode_body(L, &t->body) != 0) {
		lua_pop(L, 1);
		return 0;
	}
	cb_error_fields(L, lua_gettop(L), code, sizeof code, message, sizeof message);
	lua_pop(L, 1);
	retired = strcmp(code, "APIGW.0101") == 0;
	if (!retired)
		return 0;
	c->api_current = API_V1;
	record_path(c, ctx, path, sizeof path);
	return cb_engine_resubmit(c->engine, t, path) == 0;
}

static int renewed_token(lua_State *L, cb_client *c, cb_transfer *t);

/* Whether a done transfer went back into the engine instead of being reported: the v3 API was
 * retired, or an IAM token was refused and has been renewed. */
static int sent_again(lua_State *L, cb_client *c, cb_transfer *t)
{
	return moved_to_v1(L, c, t) || renewed_token(L, c, t);
}

/* Runs the engine until the transfer with this id is done, leaving others' results queued. */
static cb_transfer *wait_for(lua_State *L, cb_client *c, long long id, failure *f)
{
	char err[256];

	for (;;) {
		cb_transfer *t = cb_engine_take_done(c->engine, id);
		if (t && !sent_again(L, c, t))
			return t;
		if (cb_engine_run(c->engine, -1, err, sizeof err) != 0) {
			failure_set(f, "network", "%s", err);
			return NULL;
		}
	}
}

/* ---- outcomes ---- */

static const char *curl_failure_kind(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return "tls";
	default:
		return "network";
	}
}

static const char *status_kind(long status)
{
	switch (status) {
	case 401:
	case 403:
		return "auth";
	case 404:
		return "not_found";
	case 429:
		return "throttled";
	default:
		return "http";
	}
}

static int status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Decodes the body; leaves the value (or nil) on the stack and returns 0, or returns -1 with
 * the decoder's message on the stack instead. */
static int decode_body(lua_State *L, const cb_buffer *body)
{
	lua_rawgeti(L, STATE, S_DECODE);
	lua_pushlstring(L, body->data ? body->data : "", body->len);
	if (lua_pcall(L, 1, 2, 0) != 0)
		return -1;
	if (lua_isnil(L, -2)) {
		lua_remove(L, -2);
		return -1;
	}
	lua_pop(L, 1);
	return 0;
}

/* The hot path: a successful record-info body read straight into a record (cb_record_read). */
static int read_record(lua_State *L, const cb_buffer *body)
{
	int found;

	lua_rawgeti(L, STATE, S_RECORD_KEYS);
	lua_rawgeti(L, STATE, S_RECORD_MT);
	found = cb_record_read(L, body->data, body->len, lua_gettop(L) - 1, lua_gettop(L));
	if (found)
		lua_replace(L, -3);
	lua_pop(L, 2 - found);
	return found;
}

static void set_http_failure(lua_State *L, failure *f, const cb_transfer *t)
{
	int decoded = t->body.len > 0 && decode_body(L, &t->body) == 0;
	char message[384] = "";

	f->status = t->status;
	f->retryable = status_retryable(t->status);
	if (decoded)
		cb_error_fields(L, lua_gettop(L), f->code, sizeof f->code, message, sizeof message);
	lua_pop(L, 1);
	failure_set(f, status_kind(t->status), "HTTP %d%s%s%s%s", (int)t->status, f->code[0] || message[0] ? ": " : "",
		    f->code, f->code[0] && message[0] ? " " : "", message);
}

/* Pushes what a finished transfer produced: 1 value (a record, or a decoded body), or
 * nil, message, err (3 values). */
static int push_outcome(lua_State *L, const cb_transfer *t)
{
	const request_ctx *ctx = t->user;
	failure f;
	int top = lua_gettop(L), body;

	failure_init(&f, ctx);
	f.attempts = t->attempts;
	memcpy(f.request_id, t->request_id, sizeof f.request_id);
	if (t->body_too_large || t->result == CURLE_FILESIZE_EXCEEDED) {
		failure_set(&f, "decode", "response body larger than max_body (%lu bytes)", (unsigned long)t->max_body);
		return push_failure(L, &f);
	}
	if (t->result != CURLE_OK) {
		const char *kind = curl_failure_kind(t->result);
		f.retryable = strcmp(kind, "tls") != 0; /* network and timeout may pass; TLS will not */
		failure_set(&f, kind, "%s", t->error[0] ? t->error : curl_easy_strerror(t->result));
		return push_failure(L, &f);
	}
	if (t->status < 200 || t->status > 299) {
		set_http_failure(L, &f, t);
		return push_failure(L, &f);
	}
	f.status = t->status;
	if (ctx->kind == REQUEST_RECORD && t->body.len > 0 && read_record(L, &t->body))
		return 1;
	if (t->body.len == 0 || decode_body(L, &t->body) != 0) {
		failure_set(&f, "decode", "cannot decode the response: %s",
			    t->body.len == 0 ? "empty body" : lua_tostring(L, -1));
		lua_settop(L, top);
		return push_failure(L, &f);
	}
	body = lua_gettop(L);
	if (lua_type(L, body) != LUA_TTABLE) {
		failure_set(&f, "decode", "cannot decode the response: not a JSON object");
	} else if (cb_envelope_failed(L, body, f.code, sizeof f.code, f.text, sizeof f.text)) {
		char message[sizeof f.text];
		memcpy(message, f.text, sizeof message);
		failure_set(&f, "api", "the API reported a failure%s%s%s%s", f.code[0] || message[0] ? ": " : "",
			    f.code, f.code[0] && message[0] ? " " : "", message);
	} else if (ctx->kind != REQUEST_RECORD) {
		cb_tidy_json(L, body);
		return 1;
	} else {
		lua_getfield(L, body, "result");
		if (lua_type(L, -1) != LUA_TTABLE) {
			failure_set(&f, "decode", "cannot decode the response: no result object");
		} else {
			int state = lua_gettop(L) + 1;
			lua_rawgeti(L, STATE, S_RECORD_NAMES);
			lua_rawgeti(L, STATE, S_RECORD_KEYS);
			lua_rawgeti(L, STATE, S_RECORD_MT);
			if (cb_record_push(L, state - 1, state, state + 1, state + 2, f.text, sizeof f.text) == 0) {
				lua_replace(L, top + 1);
				lua_settop(L, top + 1);
				return 1;
			}
			f.kind = "decode";
		}
	}
	lua_settop(L, top);
	return push_failure(L, &f);
}

/* Tells the client's on_event hook about a request that is done: what was asked, how it ended,
 * how long it took. Nothing secret is in it. A failing hook is reported on stderr and ignored,
 * so that no result is lost to it. The outcome (n values) is on top of the stack. */
static void emit_event(lua_State *L, const cb_client *c, const cb_transfer *t, int n)
{
	const request_ctx *ctx = t->user;
	int event;

	if (c->on_event == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->on_event);
	lua_createtable(L, 0, 12);
	event = lua_gettop(L);
	lua_pushliteral(L, "request");
	lua_setfield(L, event, "type");
	lua_pushinteger(L, (lua_Integer)t->id);
	lua_setfield(L, event, "id");
	lua_pushliteral(L, "GET");
	lua_setfield(L, event, "method");
	lua_pushstring(L, t->path);
	lua_setfield(L, event, "path");
	lua_pushinteger(L, t->attempts);
	lua_setfield(L, event, "attempts");
	lua_pushnumber(L, (lua_Number)(t->finished_ms - t->submitted_ms));
	lua_setfield(L, event, "duration_ms");
	lua_pushboolean(L, n == 1);
	lua_setfield(L, event, "ok");
	if (t->status) {
		lua_pushinteger(L, t->status);
		lua_setfield(L, event, "status");
	}
	if (t->request_id[0]) {
		lua_pushstring(L, t->request_id);
		lua_setfield(L, event, "request_id");
	}
	if (n == 3) {
		lua_getfield(L, event - 2, "kind"); /* err is just below the function and the event */
		lua_setfield(L, event, "kind");
	}
	if (ctx->kind == REQUEST_RECORD) {
		lua_pushstring(L, ctx->job_id);
		lua_setfield(L, event, "job_id");
		lua_pushinteger(L, ctx->build_no);
		lua_setfield(L, event, "build_no");
	}
	if (lua_pcall(L, 1, 0, 0) != 0) {
		fprintf(stderr, "codeartsbuild: on_event hook failed: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
}

/* Pushes the outcome of a done transfer (see push_outcome) after telling on_event about it. */
static int deliver(lua_State *L, const cb_client *c, const cb_transfer *t)
{
	int n = push_outcome(L, t);
	emit_event(L, c, t, n);
	return n;
}

/* ---- IAM: tokens for users, project ids for AK/SK ---- */

#define TOKEN_RENEW_MARGIN_S 300 /* renew a token this long before IAM says it expires */

static void append_json_string(cb_buffer *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	cb_buffer_append_char(b, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			cb_buffer_append_char(b, '\\');
			cb_buffer_append_char(b, (char)ch);
		} else if (ch < 0x20) {
			char esc[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], 0};
			cb_buffer_append_str(b, esc);
		} else {
			cb_buffer_append_char(b, (char)ch);
		}
	}
	cb_buffer_append_char(b, '"');
}

/* The password identity, scoped to the project, as IAM's POST /v3/auth/tokens takes it. */
static void token_request_body(const cb_config *cfg, cb_buffer *b)
{
	cb_buffer_append_str(b, "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":");
	append_json_string(b, cfg->iam_user);
	cb_buffer_append_str(b, ",\"password\":");
	append_json_string(b, cfg->iam_password);
	cb_buffer_append_str(b, ",\"domain\":{\"name\":");
	append_json_string(b, cfg->iam_domain);
	cb_buffer_append_str(b, "}}}},\"scope\":{\"project\":{\"name\":");
	append_json_string(b, cfg->iam_project);
	cb_buffer_append_str(b, "}}}}");
}

/* Sends an IAM request and waits for it (it happens once a day or once per client). */
static cb_transfer *iam_exchange(lua_State *L, cb_client *c, int kind, const char *path, const cb_kv *query,
				 size_t nquery, failure *f)
{
	request_ctx ctx;
	cb_transfer *t;

	memset(&ctx, 0, sizeof ctx);
	ctx.kind = kind;
	snprintf(ctx.path, sizeof ctx.path, "%s", path);
	t = start_request(c, c->cfg.iam_endpoint, path, query, nquery, &ctx, f);
	if (t && kind == REQUEST_IAM_TOKEN) {
		token_request_body(&c->cfg, &t->request_body);
		if (t->request_body.failed) {
			cb_engine_cancel(c->engine, t->id);
			failure_set(f, "network", "cannot prepare the request (out of memory)");
			return NULL;
		}
	}
	return t ? wait_for(L, c, t->id, f) : NULL;
}

/* A failure of an IAM exchange: what push_outcome would say, as f. */
static void iam_failure(lua_State *L, const cb_transfer *t, failure *f)
{
	int top = lua_gettop(L);

	if (push_outcome(L, t) == 3) { /* nil, message, err */
		lua_getfield(L, -1, "kind");
		/* Unreachable or slow IAM is a network matter; anything else it says is about the credentials. */
		f->kind = lua_tostring(L, -1) && (strcmp(lua_tostring(L, -1), "network") == 0 ||
						  strcmp(lua_tostring(L, -1), "timeout") == 0) ? "network" : "auth";
		failure_set(f, f->kind, "IAM sign-in failed: %s", lua_tostring(L, -3));
	} else {
		failure_set(f, "auth", "IAM sign-in failed: HTTP %d without X-Subject-Token", (int)t->status);
	}
	lua_settop(L, top);
}

/* Reads token.expires_at (and token.project.id, when no project id is known) from a token body. */
/* Keeps the `id` of the project table on top of the stack as the client's project id; returns
 * whether it did. An id that is not a short string is ignored. */
static int take_project_id(lua_State *L, cb_client *c)
{
	size_t n;
	const char *id;

	lua_getfield(L, -1, "id");
	id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
	if (id != NULL && n < 128 && (c->cfg.project_id = malloc(n + 1)) != NULL)
		memcpy(c->cfg.project_id, id, n + 1);
	else
		id = NULL;
	lua_pop(L, 1);
	return id != NULL;
}

static void read_token_body(lua_State *L, cb_client *c, const cb_transfer *t)
{
	long long expires = -1;

	if (decode_body(L, &t->body) == 0 && lua_type(L, -1) == LUA_TTABLE) {
		lua_getfield(L, -1, "token");
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_getfield(L, -1, "expires_at");
			if (lua_type(L, -1) == LUA_TSTRING)
				expires = cb_parse_iso_utc(lua_tostring(L, -1));
			lua_pop(L, 1);
			lua_getfield(L, -1, "project");
			if (lua_type(L, -1) == LUA_TTABLE && !c->cfg.project_id) {
				take_project_id(L, c);
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	/* IAM tokens live 24 hours; without a readable expiry, assume a short life rather than a long one. */
	c->token_expires = expires > 0 ? (time_t)expires : time(NULL) + 3600;
}

static int fetch_token(lua_State *L, cb_client *c, failure *f)
{
	cb_transfer *t = iam_exchange(L, c, REQUEST_IAM_TOKEN, "/v3/auth/tokens", NULL, 0, f);
	int ok;

	if (t == NULL)
		return -1;
	ok = t->result == CURLE_OK && t->status == 201 && t->subject_token.len > 0;
	if (ok) {
		if (c->cfg.token) {
			OPENSSL_cleanse(c->cfg.token, strlen(c->cfg.token));
			free(c->cfg.token);
		}
		c->cfg.token = t->subject_token.data; /* the transfer's buffer becomes the client's */
		t->subject_token.data = NULL;
		t->subject_token.len = t->subject_token.cap = 0;
		read_token_body(L, c, t);
	} else {
		iam_failure(L, t, f);
	}
	cb_transfer_free(t);
	return ok ? 0 : -1;
}

/* GET /v3/projects?name=<region> on IAM, signed with the AK/SK: the project id the SDKs look up. */
static int discover_project_id(lua_State *L, cb_client *c, failure *f)
{
	cb_kv query = {"name", 4, c->cfg.region, strlen(c->cfg.region)};
	cb_transfer *t = iam_exchange(L, c, REQUEST_IAM_PROJECTS, "/v3/projects", &query, 1, f);
	int top = lua_gettop(L), found = 0;

	if (t == NULL)
		return -1;
	if (push_outcome(L, t) == 1 && lua_type(L, -1) == LUA_TTABLE) {
		lua_getfield(L, -1, "projects");
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_rawgeti(L, -1, 1);
			if (lua_type(L, -1) == LUA_TTABLE)
				found = take_project_id(L, c);
		}
	}
	lua_settop(L, top);
	if (!found && t->result == CURLE_OK && t->status / 100 == 2) {
		failure_set(f, "config", "IAM has no project named %s: pass project_id=", c->cfg.region);
	} else if (!found) {
		char why[sizeof f->text];
		iam_failure(L, t, f);
		memcpy(why, f->text, sizeof why);
		failure_set(f, f->kind, "cannot look up the project id of %s (pass project_id=): %s", c->cfg.region, why);
	}
	cb_transfer_free(t);
	return found ? 0 : -1;
}

/* Before a request: an IAM user needs a token that will not expire soon; AK/SK with a known
 * region but no project id look the id up once (as the official SDKs do). */
static int ensure_credentials(lua_State *L, cb_client *c, failure *f)
{
	if (c->cfg.iam_user && (!c->cfg.token || time(NULL) >= c->token_expires - TOKEN_RENEW_MARGIN_S))
		return fetch_token(L, c, f);
	if (c->cfg.ak && !c->cfg.project_id && c->cfg.region && c->cfg.iam_endpoint)
		return discover_project_id(L, c, f);
	return 0;
}

/* An IAM user's request refused with 401: renew the token once and send the request again. */
static int renewed_token(lua_State *L, cb_client *c, cb_transfer *t)
{
	request_ctx *ctx = t->user;
	failure f;

	if (!c->cfg.iam_user || t->status != 401 || t->result != CURLE_OK || ctx->token_renewed ||
	    (ctx->kind != REQUEST_RECORD && ctx->kind != REQUEST_GET))
		return 0;
	failure_init(&f, NULL);
	c->token_expires = 0;
	if (fetch_token(L, c, &f) != 0)
		return 0; /* report the 401 the request got */
	ctx->token_renewed = 1;
	return cb_engine_resubmit(c->engine, t, t->path) == 0;
}

/* ---- methods ---- */

static int record_info_with(lua_State *L, cb_client *c, int arg)
{
	request_ctx ctx;
	failure f;
	cb_transfer *t;
	int n;

	memset(&ctx, 0, sizeof ctx);
	ctx.kind = REQUEST_RECORD;
	failure_init(&f, &ctx);
	if (check_job_id(L, arg, &ctx, &f) != 0 || check_build_no(L, arg + 1, &ctx, &f) != 0)
		return push_failure(L, &f);
	if (ensure_credentials(L, c, &f) != 0)
		return push_failure(L, &f);
	t = start_record_request(c, &ctx, &f);
	if (t)
		t = wait_for(L, c, t->id, &f);
	if (t == NULL)
		return push_failure(L, &f);
	n = deliver(L, c, t);
	cb_transfer_free(t);
	return n;
}

static int client_record_info(lua_State *L)
{
	return record_info_with(L, check_client(L), 2);
}

static int client_submit(lua_State *L)
{
	cb_client *c = check_client(L);
	request_ctx ctx;
	failure f;
	cb_transfer *t;

	memset(&ctx, 0, sizeof ctx);
	ctx.kind = REQUEST_RECORD;
	failure_init(&f, &ctx);
	if (check_job_id(L, 2, &ctx, &f) != 0 || check_build_no(L, 3, &ctx, &f) != 0)
		return push_failure(L, &f);
	if (ensure_credentials(L, c, &f) != 0)
		return push_failure(L, &f);
	t = start_record_request(c, &ctx, &f);
	if (t == NULL)
		return push_failure(L, &f);
	lua_pushinteger(L, (lua_Integer)t->id);
	return 1;
}

/* Appends {id =, job_id =, build_no =, record = | message =, err =} for t to the list at idx. */
static void append_result(lua_State *L, const cb_client *c, int list, const cb_transfer *t)
{
	const request_ctx *ctx = t->user;
	int entry, n;

	lua_createtable(L, 0, 5);
	entry = lua_gettop(L);
	lua_pushinteger(L, (lua_Integer)t->id);
	lua_setfield(L, entry, "id");
	if (ctx->kind == REQUEST_RECORD) {
		lua_pushstring(L, ctx->job_id);
		lua_setfield(L, entry, "job_id");
		lua_pushinteger(L, ctx->build_no);
		lua_setfield(L, entry, "build_no");
	} else {
		lua_pushstring(L, t->path);
		lua_setfield(L, entry, "path");
	}
	n = deliver(L, c, t);
	if (n == 1) {
		lua_setfield(L, entry, ctx->kind == REQUEST_RECORD ? "record" : "body");
	} else {
		lua_setfield(L, entry, "err");
		lua_setfield(L, entry, "message");
		lua_pop(L, 1);
	}
	lua_rawseti(L, list, (int)lua_rawlen(L, list) + 1);
}

/* client:poll([timeout_ms]): the requests that are done, waiting at most timeout_ms for one
 * (0: no waiting; left out: until one is done or nothing is pending). */
static int client_poll(lua_State *L)
{
	cb_client *c = check_client(L);
	lua_Number timeout = luaL_optnumber(L, 2, -1);
	long timeout_ms = timeout < 0 ? -1 : timeout > 86400000 ? 86400000 : (long)timeout;
	long long deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
	char err[256];
	cb_transfer *t;
	int list;

	if (timeout != timeout)
		return luaL_argerror(L, 2, "timeout is NaN");
	lua_newtable(L);
	list = lua_gettop(L);
	for (;;) {
		long left = deadline < 0 ? -1 : (long)(deadline - monotonic_ms());
		if (cb_engine_done_count(c->engine) == 0 && cb_engine_pending(c->engine) > 0 &&
		    cb_engine_run(c->engine, left < 0 && deadline >= 0 ? 0 : left, err, sizeof err) != 0)
			return luaL_error(L, "codeartsbuild: %s", err);
		while ((t = cb_engine_next_done(c->engine)) != NULL) {
			if (sent_again(L, c, t))
				continue;
			append_result(L, c, list, t);
			cb_transfer_free(t);
		}
		/* A request sent again to v1 is not done yet: keep waiting while time is left. */
		if (lua_rawlen(L, list) > 0 || cb_engine_pending(c->engine) == 0 ||
		    (deadline >= 0 && monotonic_ms() >= deadline))
			return 1;
	}
}

/* client:cancel(id): forgets a submitted request; true if it was still pending. */
static int client_cancel(lua_State *L)
{
	cb_client *c = check_client(L);
	lua_Integer id = luaL_checkinteger(L, 2);
	lua_pushboolean(L, cb_engine_cancel(c->engine, (long long)id));
	return 1;
}

static int client_pending(lua_State *L)
{
	cb_client *c = check_client(L);
	lua_pushinteger(L, (lua_Integer)cb_engine_pending(c->engine));
	return 1;
}

/* Checks get()'s arguments and queues the request; returns it, or NULL with f filled in. */
static cb_transfer *submit_get_request(lua_State *L, cb_client *c, request_ctx *ctx, failure *f)
{
	cb_kv query[MAX_QUERY_PAIRS];
	size_t nquery;

	memset(ctx, 0, sizeof *ctx);
	ctx->kind = REQUEST_GET;
	failure_init(f, ctx);
	if (check_path(L, 2, ctx, f) != 0)
		return NULL;
	nquery = collect_query(L, 3, query);
	if (ensure_credentials(L, c, f) != 0)
		return NULL;
	return start_request(c, NULL, lua_tostring(L, 2), query, nquery, ctx, f);
}

/* client:submit_get(path[, query]): get() without waiting; poll() returns {id, path, body}. */
static int client_submit_get(lua_State *L)
{
	cb_client *c = check_client(L);
	request_ctx ctx;
	failure f;
	cb_transfer *t = submit_get_request(L, c, &ctx, &f);

	if (t == NULL)
		return push_failure(L, &f);
	lua_pushinteger(L, (lua_Integer)t->id);
	return 1;
}

static int client_get(lua_State *L)
{
	cb_client *c = check_client(L);
	request_ctx ctx;
	failure f;
	cb_transfer *t = submit_get_request(L, c, &ctx, &f);
	int n;

	if (t)
		t = wait_for(L, c, t->id, &f);
	if (t == NULL)
		return push_failure(L, &f);
	n = deliver(L, c, t);
	cb_transfer_free(t);
	return n;
}

static const char *auth_name(const cb_config *cfg)
{
	return cfg->iam_user ? "iam" : cfg->token ? "token" : "aksk";
}

/* The client's settings, without any secret: for diagnostics and :checkhealth. */
static int client_info(lua_State *L)
{
	cb_client *c = check_client(L);
	const cb_config *cfg = &c->cfg;

	lua_createtable(L, 0, 12);
	lua_pushstring(L, cfg->endpoint);
	lua_setfield(L, -2, "endpoint");
	if (cfg->region) {
		lua_pushstring(L, cfg->region);
		lua_setfield(L, -2, "region");
	}
	lua_pushstring(L, auth_name(cfg));
	lua_setfield(L, -2, "auth");
	if (cfg->iam_endpoint) {
		lua_pushstring(L, cfg->iam_endpoint);
		lua_setfield(L, -2, "iam_endpoint");
	}
	lua_pushboolean(L, cfg->security_token != NULL);
	lua_setfield(L, -2, "temporary");
	lua_pushstring(L, cfg->credential_source);
	lua_setfield(L, -2, "credential_source");
	if (cfg->project_id) {
		lua_pushstring(L, cfg->project_id);
		lua_setfield(L, -2, "project_id");
	}
	if (cfg->ca_file) {
		lua_pushstring(L, cfg->ca_file);
		lua_setfield(L, -2, "ca_file");
	}
	lua_pushboolean(L, cfg->insecure);
	lua_setfield(L, -2, "insecure");
	lua_pushnumber(L, cfg->timeout_ms / 1000.0);
	lua_setfield(L, -2, "timeout");
	lua_pushnumber(L, cfg->connect_timeout_ms / 1000.0);
	lua_setfield(L, -2, "connect_timeout");
	lua_pushinteger(L, (lua_Integer)cfg->max_body);
	lua_setfield(L, -2, "max_body");
	lua_pushstring(L, cfg->user_agent);
	lua_setfield(L, -2, "user_agent");
	lua_pushstring(L, c->api_mode == API_AUTO ? "auto" : api_names[c->api_mode]);
	lua_setfield(L, -2, "api");
	lua_pushstring(L, api_names[c->api_current]);
	lua_setfield(L, -2, "api_in_use");
	lua_pushinteger(L, c->settings.concurrency);
	lua_setfield(L, -2, "concurrency");
	if (c->settings.rate > 0) {
		lua_pushnumber(L, c->settings.rate);
		lua_setfield(L, -2, "rate");
	}
	lua_pushinteger(L, c->settings.retries);
	lua_setfield(L, -2, "retries");
	lua_pushnumber(L, c->settings.backoff_ms / 1000.0);
	lua_setfield(L, -2, "backoff");
	lua_pushnumber(L, c->settings.max_backoff_ms / 1000.0);
	lua_setfield(L, -2, "max_backoff");
	return 1;
}

static int client_close(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CLIENT_MT);
	client_release(L, c);
	return 0;
}

static int client_tostring(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CLIENT_MT);
	const cb_config *cfg = &c->cfg;

	if (c->closed) {
		lua_pushfstring(L, "codeartsbuild.client{closed}: %p", (void *)c);
		return 1;
	}
	lua_pushfstring(L, "codeartsbuild.client{%s, %s", cfg->region ? cfg->region : cfg->host,
			auth_name(cfg));
	if (cfg->ak)
		lua_pushfstring(L, ", AK=%c%c%c%c****", cfg->ak[0], cfg->ak[1] ? cfg->ak[1] : '*',
				cfg->ak[1] && cfg->ak[2] ? cfg->ak[2] : '*',
				cfg->ak[1] && cfg->ak[2] && cfg->ak[3] ? cfg->ak[3] : '*');
	else
		lua_pushliteral(L, "");
	lua_pushstring(L, cfg->insecure ? ", TLS VERIFICATION OFF" : "");
	lua_pushfstring(L, "}: %p", (void *)c);
	lua_concat(L, 4);
	return 1;
}

/* ---- construction ---- */

static void set_string(lua_State *L, int idx, const char *name, char **slot)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a string, got %s", name, luaL_typename(L, idx));
	s = lua_tolstring(L, idx, &len);
	free(*slot);
	*slot = malloc(len + 1);
	if (*slot == NULL)
		luaL_error(L, "out of memory");
	memcpy(*slot, s, len + 1);
}

/* Reads a number option; a wrong type raises, a value outside [lo, hi] (or not whole when
 * `whole`) is a bad value. lo itself is allowed only when lo_ok. */
static int read_number(lua_State *L, int idx, const char *name, const char *unit, double lo, int lo_ok, double hi,
		       int whole, double *out, char *msg, size_t msglen)
{
	double n;

	if (lua_type(L, idx) != LUA_TNUMBER)
		luaL_error(L, "option '%s' must be a number (%s), got %s", name, unit, luaL_typename(L, idx));
	n = (double)lua_tonumber(L, idx);
	if (!(n > lo || (lo_ok && n == lo)) || !(n <= hi) || (whole && n != floor(n))) {
		snprintf(msg, msglen, "option '%s' must be %s%s %g and at most %g (%s)", name, whole ? "a whole number " : "",
			 lo_ok ? "from" : "more than", lo, hi, unit);
		return -1;
	}
	*out = n;
	return 0;
}

static int set_api(lua_State *L, int idx, cb_client *c, char *msg, size_t msglen)
{
	static const char *const names[] = {"auto", "v3", "v4", "v1", NULL};
	static const int modes[] = {API_AUTO, API_V3, API_V4, API_V1};
	int i;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "option 'api' must be a string, got %s", luaL_typename(L, idx));
	for (i = 0; names[i]; i++) {
		if (strcmp(lua_tostring(L, idx), names[i]) == 0) {
			c->settings.api_mode = modes[i];
			return 0;
		}
	}
	snprintf(msg, msglen, "option 'api' must be \"auto\", \"v3\", \"v4\" or \"v1\"");
	return -1;
}

static int set_numeric_option(lua_State *L, cb_client *c, const char *name, int v, char *msg, size_t msglen)
{
	cb_config *cfg = &c->cfg;
	engine_settings *e = &c->settings;
	double n;

#define NUMBER(unit, lo, lo_ok, hi, whole) \
	if (read_number(L, v, name, unit, lo, lo_ok, hi, whole, &n, msg, msglen) != 0) \
		return -1
	if (strcmp(name, "timeout") == 0 || strcmp(name, "connect_timeout") == 0) {
		NUMBER("seconds", 0, 0, 86400, 0);
		*(name[0] == 't' ? &cfg->timeout_ms : &cfg->connect_timeout_ms) = (long)ceil(n * 1000);
	} else if (strcmp(name, "max_body") == 0) {
		NUMBER("bytes", 1024, 1, 1073741824.0, 1);
		cfg->max_body = (size_t)n;
	} else if (strcmp(name, "concurrency") == 0) {
		NUMBER("requests in flight", 1, 1, 1024, 1);
		e->concurrency = (int)n;
	} else if (strcmp(name, "rate") == 0) {
		NUMBER("requests per second", 0, 0, 100000, 0);
		e->rate = n;
	} else if (strcmp(name, "retries") == 0) {
		NUMBER("further attempts", 0, 1, 20, 1);
		e->retries = (int)n;
	} else if (strcmp(name, "backoff") == 0 || strcmp(name, "max_backoff") == 0) {
		NUMBER("seconds", 0, name[0] == 'b', 3600, 0);
		*(name[0] == 'b' ? &e->backoff_ms : &e->max_backoff_ms) = (long)ceil(n * 1000);
	} else {
		return luaL_error(L, "unknown option '%s'", name);
	}
#undef NUMBER
	return 0;
}

/* iam = { user =, password =, domain = [, project =] }: an IAM user that signs in for tokens. */
static int set_iam(lua_State *L, int v, cb_config *cfg)
{
	static const struct {
		const char *name;
		size_t offset;
		int required;
	} fields[] = {
		{"user", offsetof(cb_config, iam_user), 1},
		{"password", offsetof(cb_config, iam_password), 1},
		{"domain", offsetof(cb_config, iam_domain), 1},
		{"project", offsetof(cb_config, iam_project), 0},
	};
	size_t i;

	if (lua_type(L, v) != LUA_TTABLE)
		luaL_error(L, "option 'iam' must be a table {user =, password =, domain = [, project =]}, got %s",
			   luaL_typename(L, v));
	lua_pushnil(L);
	while (lua_next(L, v) != 0) {
		int known = 0;
		for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
			known |= lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), fields[i].name) == 0;
		if (!known)
			luaL_error(L, "option 'iam' has an unknown field %s", lua_type(L, -2) == LUA_TSTRING ?
				   lua_tostring(L, -2) : luaL_typename(L, -2));
		lua_pop(L, 1);
	}
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		lua_getfield(L, v, fields[i].name);
		if (lua_isnil(L, -1) && fields[i].required)
			luaL_error(L, "option 'iam' needs %s", fields[i].name);
		if (!lua_isnil(L, -1))
			set_string(L, lua_gettop(L), fields[i].name, (char **)((char *)cfg + fields[i].offset));
		lua_pop(L, 1);
	}
	return 0;
}

static int set_option(lua_State *L, cb_client *c, const char *name, int v, char *msg, size_t msglen)
{
	static const struct {
		const char *name;
		size_t offset;
	} strings[] = {
		{"region", offsetof(cb_config, region)},
		{"endpoint", offsetof(cb_config, endpoint)},
		{"ak", offsetof(cb_config, ak)},
		{"sk", offsetof(cb_config, sk)},
		{"project_id", offsetof(cb_config, project_id)},
		{"security_token", offsetof(cb_config, security_token)},
		{"token", offsetof(cb_config, token)},
		{"ca_file", offsetof(cb_config, ca_file)},
		{"user_agent", offsetof(cb_config, user_agent)},
		{"iam_endpoint", offsetof(cb_config, iam_endpoint)},
	};
	size_t i;

	for (i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		if (strcmp(name, strings[i].name) == 0) {
			set_string(L, v, name, (char **)((char *)&c->cfg + strings[i].offset));
			return 0;
		}
	}
	if (strcmp(name, "insecure") == 0 || strcmp(name, "allow_http") == 0) {
		if (lua_type(L, v) != LUA_TBOOLEAN)
			luaL_error(L, "option '%s' must be a boolean, got %s", name, luaL_typename(L, v));
		*(name[0] == 'i' ? &c->cfg.insecure : &c->cfg.allow_http) = lua_toboolean(L, v);
		return 0;
	}
	if (strcmp(name, "api") == 0)
		return set_api(L, v, c, msg, msglen);
	if (strcmp(name, "iam") == 0)
		return set_iam(L, v, &c->cfg);
	if (strcmp(name, "on_event") == 0) {
		if (lua_type(L, v) != LUA_TFUNCTION)
			luaL_error(L, "option 'on_event' must be a function, got %s", luaL_typename(L, v));
		if (c->on_event != LUA_NOREF)
			luaL_unref(L, LUA_REGISTRYINDEX, c->on_event);
		lua_pushvalue(L, v);
		c->on_event = luaL_ref(L, LUA_REGISTRYINDEX);
		return 0;
	}
	return set_numeric_option(L, c, name, v, msg, msglen);
}

/* Reads every option, so that a wrong type or an unknown name raises whatever the table's
 * order; returns -1 with the first bad value's message. */
static int read_options(lua_State *L, int opts, cb_client *c, char *msg, size_t msglen)
{
	char later[256] = "";
	int rc = 0;

	lua_pushnil(L);
	while (lua_next(L, opts) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "option names must be strings");
		if (set_option(L, c, lua_tostring(L, -2), lua_gettop(L), rc ? later : msg,
			       rc ? sizeof later : msglen) != 0)
			rc = -1;
		lua_pop(L, 1);
	}
	return rc;
}

static int start_engine(cb_client *c, char *msg, size_t msglen)
{
	char agent[128];
	cb_transport_options t;

	if (c->cfg.user_agent == NULL) {
		/* No libcurl version: libcurl formats each header byte at a cost, on every request. */
		snprintf(agent, sizeof agent, "codeartsbuild-lua/%s", CB_VERSION);
		c->cfg.user_agent = malloc(strlen(agent) + 1);
		if (c->cfg.user_agent)
			memcpy(c->cfg.user_agent, agent, strlen(agent) + 1);
	}
	memset(&t, 0, sizeof t);
	t.base_url = c->cfg.endpoint;
	t.timeout_ms = c->cfg.timeout_ms;
	t.connect_timeout_ms = c->cfg.connect_timeout_ms;
	t.max_in_flight = c->settings.concurrency;
	t.rate = c->settings.rate;
	t.retries = c->settings.retries;
	t.backoff_ms = c->settings.backoff_ms;
	t.max_backoff_ms = c->settings.max_backoff_ms;
	t.prepare = request_headers;
	t.prepare_ctx = c;
	c->api_mode = c->settings.api_mode;
	c->api_current = c->api_mode == API_AUTO ? API_V3 : c->api_mode;
	t.max_body = c->cfg.max_body;
	t.ca_file = c->cfg.ca_file;
	t.insecure = c->cfg.insecure;
	t.allow_http = strncmp(c->cfg.endpoint, "http://", 7) == 0;
	t.user_agent = c->cfg.user_agent;
	if (c->cfg.ak) {
		c->key = cb_hmac_key_new(c->cfg.sk, strlen(c->cfg.sk));
		if (c->key == NULL) {
			snprintf(msg, msglen, "cannot set up HMAC-SHA256 (OpenSSL)");
			return -1;
		}
	}
	c->engine = cb_engine_new(&t, msg, msglen);
	return c->engine ? 0 : -1;
}

/* Pushes a new client configured from the options at opts (0: none) and the environment,
 * or nil, message, err. Raises on a wrong option type. */
static int push_new_client(lua_State *L, int opts)
{
	char msg[512];
	failure f;
	cb_client *c = lua_newuserdata(L, sizeof *c);

	memset(c, 0, sizeof *c);
	c->on_event = LUA_NOREF;
	cb_config_init(&c->cfg);
	c->settings.api_mode = API_AUTO;
	c->settings.concurrency = DEFAULT_CONCURRENCY;
	c->settings.retries = DEFAULT_RETRIES;
	c->settings.backoff_ms = DEFAULT_BACKOFF_MS;
	c->settings.max_backoff_ms = DEFAULT_MAX_BACKOFF_MS;
	c->closed = 1; /* until it is complete; __gc frees whatever was filled in */
	luaL_setmetatable(L, CLIENT_MT);
	failure_init(&f, NULL);
	if (opts && read_options(L, opts, c, msg, sizeof msg) != 0) {
		failure_set(&f, "invalid", "%s", msg);
	} else if (cb_config_resolve(&c->cfg, msg, sizeof msg) != 0) {
		failure_set(&f, "config", "%s", msg);
	} else if (start_engine(c, msg, sizeof msg) != 0) {
		failure_set(&f, "config", "%s", msg);
	} else {
		c->closed = 0;
		return 1;
	}
	client_release(L, c);
	return push_failure(L, &f);
}

static int module_new(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		luaL_checktype(L, 1, LUA_TTABLE);
	return push_new_client(L, lua_isnoneornil(L, 1) ? 0 : 1);
}

/* The client that module-level calls use, made from the environment on first use. */
static cb_client *default_client(lua_State *L, int *pushed)
{
	cb_client *c;

	lua_rawgeti(L, STATE, S_DEFAULT_CLIENT);
	c = luaL_testudata(L, -1, CLIENT_MT);
	if (c && !c->closed)
		return c;
	lua_pop(L, 1);
	*pushed = push_new_client(L, 0);
	if (*pushed != 1)
		return NULL;
	lua_pushvalue(L, -1);
	lua_rawseti(L, STATE, S_DEFAULT_CLIENT);
	return luaL_checkudata(L, -1, CLIENT_MT);
}

static int module_default_client(lua_State *L)
{
	int pushed = 1;
	default_client(L, &pushed);
	return pushed;
}

static int module_record_info(lua_State *L)
{
	int pushed = 1;
	cb_client *c;

	/* Check the arguments before anything reads the environment. */
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_typeerror(L, 1, "string");
	if (lua_type(L, 2) != LUA_TNUMBER && lua_type(L, 2) != LUA_TSTRING)
		return luaL_typeerror(L, 2, "number");
	c = default_client(L, &pushed);
	if (c == NULL)
		return pushed;
	lua_pop(L, 1);
	return record_info_with(L, c, 1);
}

/* core.sign{method=, path=, query=, headers=, body=, ak=, sk=}
 *   -> authorization, canonical_request, string_to_sign, sdk_date */
static int module_sign(lua_State *L)
{
	cb_kv query[MAX_QUERY_PAIRS], headers[64];
	size_t nquery, nheaders = 0, ak_len, sk_len;
	cb_sign_input in;
	cb_sign_output out;
	const char *error, *sk;
	char date[CB_SDK_DATE_LEN + 1];
	int rc;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	lua_getfield(L, 1, "method"); /* 2 */
	in.method = luaL_optstring(L, 2, "GET");
	lua_getfield(L, 1, "path"); /* 3 */
	in.path = luaL_checklstring(L, 3, &in.path_len);
	lua_getfield(L, 1, "body"); /* 4 */
	in.body = luaL_optlstring(L, 4, "", &in.body_len);
	lua_getfield(L, 1, "ak"); /* 5 */
	in.ak = luaL_checklstring(L, 5, &ak_len);
	lua_getfield(L, 1, "sk"); /* 6 */
	sk = luaL_checklstring(L, 6, &sk_len);
	lua_getfield(L, 1, "headers"); /* 7 */
	if (!lua_isnil(L, 7)) {
		luaL_checktype(L, 7, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 7) != 0) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "headers: names and values must be strings");
			if (nheaders == sizeof headers / sizeof headers[0])
				return luaL_error(L, "headers: too many");
			headers[nheaders].name = lua_tolstring(L, -2, &headers[nheaders].name_len);
			headers[nheaders].value = lua_tolstring(L, -1, &headers[nheaders].value_len);
			nheaders++;
			lua_pop(L, 1); /* the strings stay referenced by the headers table */
		}
	}
	lua_getfield(L, 1, "query"); /* 8 */
	nquery = collect_query(L, 8, query);
	cb_sdk_date(time(NULL), date);
	in.query = query;
	in.query_count = nquery;
	in.headers = headers;
	in.header_count = nheaders;
	in.sdk_date = date;
	in.key = cb_hmac_key_new(sk, sk_len);
	if (in.key == NULL)
		return luaL_error(L, "cannot set up HMAC-SHA256 (OpenSSL)");
	rc = cb_sign(&in, &out, &error);
	cb_hmac_key_free(in.key);
	if (rc != 0) {
		cb_sign_output_free(&out);
		return luaL_error(L, "sign: %s", error);
	}
	lua_pushlstring(L, out.authorization.data, out.authorization.len);
	lua_pushlstring(L, out.canonical_request.data, out.canonical_request.len);
	lua_pushlstring(L, out.string_to_sign.data, out.string_to_sign.len);
	lua_pushstring(L, out.sdk_date);
	cb_sign_output_free(&out);
	return 4;
}

/* core.error{kind =, message =, ...}: an error value of the same shape as the module's own,
 * for the Lua layers. */
static int module_error(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "kind must be a string");
	lua_getfield(L, 1, "message");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "message must be a string");
	lua_pop(L, 2);
	lua_pushvalue(L, 1);
	lua_rawgeti(L, STATE, S_ERROR_MT);
	lua_setmetatable(L, -2);
	return 1;
}

/* ---- module ---- */

static const luaL_Reg client_methods[] = {
	{"record_info", client_record_info},
	{"submit", client_submit},
	{"poll", client_poll},
	{"pending", client_pending},
	{"cancel", client_cancel},
	{"get", client_get},
	{"submit_get", client_submit_get},
	{"info", client_info},
	{"close", client_close},
	{NULL, NULL},
};

static const luaL_Reg client_meta[] = {
	{"__gc", client_close},
	{"__close", client_close},
	{"__tostring", client_tostring},
	{NULL, NULL},
};

static const luaL_Reg module_functions[] = {
	{"new", module_new},
	{"record_info", module_record_info},
	{"default_client", module_default_client},
	{"sign", module_sign},
	{"error", module_error},
	{NULL, NULL},
};

/* Inside Neovim without lua-cjson: vim.json (the same engine), called like cjson.safe. */
static const char vim_json_decoder[] =
	"local decode = vim.json.decode\n"
	"local options = { luanil = { object = true, array = true } }\n"
	"return function(text)\n"
	"  local ok, value = pcall(decode, text, options)\n"
	"  if ok then return value end\n"
	"  return nil, value\n"
	"end\n";

/* Pushes the decoder, a function like cjson.safe.decode, and returns the engine's name: a
 * private lua-cjson instance (so our limits change nobody else's), or Neovim's vim.json. */
static const char *push_decoder(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "cjson.safe");
	if (lua_pcall(L, 1, 1, 0) != 0) {
		lua_getglobal(L, "vim");
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_getfield(L, -1, "json");
			if (lua_type(L, -1) == LUA_TTABLE) {
				lua_pop(L, 3);
				if (luaL_loadbuffer(L, vim_json_decoder, sizeof vim_json_decoder - 1, "=codeartsbuild.json") != 0)
					lua_error(L);
				lua_call(L, 0, 1);
				return "vim.json";
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		luaL_error(L, "codeartsbuild.core needs lua-cjson: %s", lua_tostring(L, -1));
	}
	lua_getfield(L, -1, "new");
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "decode_max_depth");
	lua_pushinteger(L, 64);
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "decode_invalid_numbers");
	lua_pushboolean(L, 0);
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "decode");
	lua_replace(L, -3);
	lua_pop(L, 1);
	return "cjson";
}

static void push_regions(lua_State *L)
{
	int i;

	lua_newtable(L);
	for (i = 0; cb_known_regions[i]; i++) {
		lua_pushstring(L, cb_known_regions[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

CB_EXPORT int luaopen_codeartsbuild_core(lua_State *L)
{
	static int curl_ready = 0;
	const char *json_engine;
	int state;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return luaL_error(L, "codeartsbuild.core: libcurl failed to initialise");
		curl_ready = 1;
	}
	lua_createtable(L, S_SLOTS, 0);
	state = lua_gettop(L);
	json_engine = push_decoder(L);
	lua_rawseti(L, state, S_DECODE);
	cb_record_push_tables(L);
	lua_rawseti(L, state, S_RECORD_MT);
	lua_rawseti(L, state, S_RECORD_KEYS);
	lua_rawseti(L, state, S_RECORD_NAMES);
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "codeartsbuild.error");
	lua_setfield(L, -2, "__name");
	lua_pushcfunction(L, error_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_rawseti(L, state, S_ERROR_MT);

	luaL_newmetatable(L, CLIENT_MT);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_meta, 1);
	luaL_newlibtable(L, client_methods);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_methods, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_pushliteral(L, CLIENT_MT);
	lua_setfield(L, -3, "__name");
	/* stack: state, metatable, methods */

	luaL_newlibtable(L, module_functions);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, module_functions, 1);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "client_methods");
	lua_rawgeti(L, state, S_RECORD_MT);
	lua_setfield(L, -2, "record_metatable");
	push_regions(L);
	lua_setfield(L, -2, "regions");
	lua_pushliteral(L, CB_VERSION);
	lua_setfield(L, -2, "version");
	lua_pushstring(L, json_engine);
	lua_setfield(L, -2, "json");
	return 1;
}
