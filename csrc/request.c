/* One request, from its arguments to its outcome: input checks, headers and signature,
 * submission, the failure it settles with, the move to v1, and what its owner receives. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "private.h"

#define MAX_PATH_LEN 2048

/* ---- input checks ---- */

static int job_id_failure(size_t len, cb_failure *f)
{
	cb_failure_set(f, "invalid", "invalid job_id: expected 32 letters or digits, got %s",
		       len != 32 ? "a string of another length" : "a character other than a letter or digit");
	return -1;
}

int cb_check_job_id(lua_State *L, int arg, request_ctx *ctx, cb_failure *f)
{
	size_t len, i;
	const char *s;

	if (lua_type(L, arg) != LUA_TSTRING)
		return luaL_typeerror(L, arg, "string");
	s = lua_tolstring(L, arg, &len);
	/* ASCII only, whatever the host's locale: the id goes into the URL unencoded (record_path). */
	for (i = 0; i < len && ((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')); i++)
		;
	if (len != 32 || i != len)
		return job_id_failure(len, f);
	memcpy(ctx->job_id, s, 33);
	return 0;
}

int cb_check_build_no(lua_State *L, int arg, request_ctx *ctx, cb_failure *f)
{
	static const char expected[] = "invalid build_no: expected an integer from 1 to 2147483647";
	int type = lua_type(L, arg);
	double d;

	if (type == LUA_TNUMBER) {
		d = (double)lua_tonumber(L, arg);
		if (lua_isinteger(L, arg)) {
			lua_Integer n = lua_tointeger(L, arg);
			d = n < 1 ? 0 : n > CB_MAX_BUILD_NO ? (double)CB_MAX_BUILD_NO + 1 : (double)n;
		}
		if (!isfinite(d) || d != floor(d) || d < 1 || d > CB_MAX_BUILD_NO) {
			/* NaN prints as "nan" or "-nan" depending on the C library: say it one way. */
			cb_failure_set(f, "invalid", "%s, got %s", expected,
				       isnan(d) ? "nan" : isinf(d) ? (d > 0 ? "inf" : "-inf") : lua_tostring(L, arg));
			return -1;
		}
	} else if (type == LUA_TSTRING) {
		size_t len, i;
		const char *s = lua_tolstring(L, arg, &len);
		for (i = 0; i < len && isdigit((unsigned char)s[i]); i++)
			;
		d = len > 0 && len <= 10 && i == len ? strtod(s, NULL) : 0;
		if (d < 1 || d > CB_MAX_BUILD_NO) {
			cb_failure_set(f, "invalid", "%s, got a string that is not one", expected);
			return -1;
		}
	} else {
		return luaL_typeerror(L, arg, "number");
	}
	ctx->build_no = (lua_Integer)d;
	return 0;
}

/* A path for get(): absolute, printable, no query, fragment or dot segments. */
static int check_path(lua_State *L, int arg, request_ctx *ctx, cb_failure *f)
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
		cb_failure_set(f, "invalid",
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
		if (n == CB_MAX_QUERY_PAIRS)
			luaL_error(L, "query: more than %d pairs", CB_MAX_QUERY_PAIRS);
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

/* ---- headers ---- */

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

/* Requests to IAM go to its own host: the token request carries no credential, the project
 * lookup is signed. */
struct curl_slist *cb_request_headers(void *client, cb_transfer *t)
{
	cb_client *c = client;
	request_ctx *ctx = t->user;
	int to_iam = ctx->kind == REQUEST_IAM_TOKEN || ctx->kind == REQUEST_IAM_PROJECTS;
	const char *host = to_iam ? c->cfg.iam_host : c->cfg.host;
	struct curl_slist *headers = NULL, *h;
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
	if (ctx->kind == REQUEST_IAM_TOKEN) {
		/* no credential */
	} else if (c->cfg.token) {
		rc |= append_header(&headers, &line, "X-Auth-Token", c->cfg.token);
		ctx->token_generation = c->credentials.token_generation;
	} else if (c->cfg.ak) {
		rc |= sign_into(c, t, host, !to_iam, &headers, &line);
	} else {
		rc = -1; /* an IAM user without a token: the gate should have held this request back */
	}
	cb_buffer_wipe(&line);
	if (rc == 0)
		return headers;
	for (h = headers; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(headers);
	return NULL;
}

/* ---- submission ---- */

/* Queues a GET of a canonical path and query (to base, NULL: the endpoint). */
static cb_transfer *submit_canonical(cb_client *c, const char *base, const char *path, const char *query, int flags,
				     const request_ctx *ctx, cb_failure *f)
{
	char err[256];
	cb_transfer *t = cb_engine_submit(c->engine, base, path, query, flags, sizeof(request_ctx), err, sizeof err);

	if (t == NULL)
		cb_failure_set(f, "network", "%s", err);
	else
		memcpy(t->user, ctx, sizeof *ctx);
	return t;
}

/* Queues a GET of path?query as a user gave them: canonicalised first, as they are signed. */
static cb_transfer *submit_as_given(cb_client *c, const char *base, const char *path, const cb_kv *query,
				    size_t nquery, int flags, const request_ctx *ctx, cb_failure *f)
{
	cb_buffer encoded_path = CB_BUFFER_INIT, canonical_query = CB_BUFFER_INIT;
	cb_transfer *t = NULL;

	cb_canonical_uri(&encoded_path, path, strlen(path), 0);
	cb_canonical_query(&canonical_query, query, nquery);
	if (encoded_path.failed || canonical_query.failed)
		cb_failure_set(f, "network", "cannot prepare the request (out of memory)");
	else
		t = submit_canonical(c, base, encoded_path.data, canonical_query.data, flags, ctx, f);
	cb_buffer_free(&encoded_path);
	cb_buffer_free(&canonical_query);
	return t;
}

/* A record's path is canonical as formatted: the job id is 32 letters or digits (cb_check_job_id),
 * the build number a positive integer, the rest unreserved characters and slashes. */
static void record_path(int api, const request_ctx *ctx, char *path, size_t len)
{
	static const char *const templates[] = {
		[CB_API_V3] = "/v3/jobs/%s/%d/record-info",
		[CB_API_V4] = "/v4/jobs/%s/%d/record-info",
		[CB_API_V1] = "/v1/record/%s/%d/record-info",
	};
	snprintf(path, len, templates[api], ctx->job_id, (int)ctx->build_no);
}

cb_transfer *cb_request_submit_record(cb_client *c, const request_ctx *ctx, int flags, cb_failure *f)
{
	char path[96];

	record_path(c->api_current, ctx, path, sizeof path);
	return submit_canonical(c, NULL, path, NULL, flags, ctx, f);
}

size_t cb_request_check_get(lua_State *L, int path_arg, request_ctx *ctx, cb_kv *query, cb_failure *f)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->kind = REQUEST_GET;
	if (check_path(L, path_arg, ctx, f) != 0)
		return (size_t)-1;
	return collect_query(L, path_arg + 1, query);
}

cb_transfer *cb_request_submit_get(cb_client *c, const request_ctx *ctx, const char *path, const cb_kv *query,
				   size_t nquery, int flags, cb_failure *f)
{
	return submit_as_given(c, NULL, path, query, nquery, flags, ctx, f);
}

cb_transfer *cb_request_submit_iam(cb_client *c, int kind, const char *path, const cb_kv *query, size_t nquery,
				   cb_failure *f)
{
	request_ctx ctx;

	memset(&ctx, 0, sizeof ctx);
	ctx.kind = kind;
	snprintf(ctx.path, sizeof ctx.path, "%s", path);
	return submit_as_given(c, c->cfg.iam_endpoint, path, query, nquery, CB_HELD | CB_UNGATED, &ctx, f);
}

/* ---- settling ---- */

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

int cb_decode_body(lua_State *L, const cb_buffer *body)
{
	lua_rawgeti(L, CB_STATE, S_DECODE);
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

/* A non-2xx status: kind from the status, the service's code and message from the body. */
static void set_http_failure(lua_State *L, cb_failure *f, const cb_transfer *t)
{
	int decoded = t->body.len > 0 && cb_decode_body(L, &t->body) == 0;
	char message[384] = "";

	f->status = t->status;
	if (decoded)
		cb_error_fields(L, lua_gettop(L), f->code, sizeof f->code, message, sizeof message);
	lua_pop(L, 1);
	cb_failure_set(f, status_kind(t->status), "HTTP %d%s%s%s%s", (int)t->status, f->code[0] || message[0] ? ": " : "",
		       f->code, f->code[0] && message[0] ? " " : "", message);
}

int cb_request_settle_failure(lua_State *L, cb_transfer *t)
{
	request_ctx *ctx = t->user;
	cb_failure *f = &ctx->failure;

	if (t->unsent)
		return 1; /* failed by cb_engine_fail_queued, with its failure set */
	if (t->result == CURLE_OK && t->status >= 200 && t->status <= 299 && !t->body_too_large)
		return 0;
	cb_failure_init(f);
	f->attempts = t->attempts;
	f->retryable = cb_transfer_retryable(t);
	memcpy(f->request_id, t->request_id, sizeof f->request_id);
	if (t->body_too_large || t->result == CURLE_FILESIZE_EXCEEDED)
		cb_failure_set(f, "decode", "response body larger than max_body (%lu bytes)", (unsigned long)t->max_body);
	else if (t->result != CURLE_OK)
		cb_failure_set(f, curl_failure_kind(t->result), "%s", t->error[0] ? t->error : curl_easy_strerror(t->result));
	else
		set_http_failure(L, f, t);
	f->retryable = f->retryable && t->attempts > 0;
	ctx->failed = 1;
	return 1;
}

int cb_request_resend_on_v1(cb_client *c, cb_transfer *t)
{
	request_ctx *ctx = t->user;
	char path[96];

	if (c->cfg.api_mode != CB_API_AUTO || ctx->kind != REQUEST_RECORD || !ctx->failed || t->status != 404 ||
	    strcmp(ctx->failure.code, "APIGW.0101") != 0 || strncmp(t->path, "/v3/", 4) != 0)
		return 0;
	c->api_current = CB_API_V1;
	record_path(c->api_current, ctx, path, sizeof path);
	ctx->failed = 0; /* before: a transfer cancelled meanwhile is gone once resubmitted */
	if (cb_engine_resubmit(c->engine, t, path) == 0)
		return 1;
	ctx->failed = 1;
	return 0;
}

/* ---- delivery ---- */

/* The hot path: a successful record-info body read straight into a record (cb_record_read). */
static int read_record(lua_State *L, const cb_buffer *body)
{
	int found;

	lua_rawgeti(L, CB_STATE, S_RECORD_KEYS);
	lua_rawgeti(L, CB_STATE, S_RECORD_MT);
	found = cb_record_read(L, body->data, body->len, lua_gettop(L) - 1, lua_gettop(L));
	if (found)
		lua_replace(L, -3);
	lua_pop(L, 2 - found);
	return found;
}

/* The general path: the decoded body at `body` checked as an envelope, its result made a record. */
static int push_decoded_record(lua_State *L, int body, cb_failure *f)
{
	int state = lua_gettop(L) + 2;

	lua_getfield(L, body, "result");
	if (lua_type(L, -1) != LUA_TTABLE) {
		cb_failure_set(f, "decode", "cannot decode the response: no result object");
		return 0;
	}
	lua_rawgeti(L, CB_STATE, S_RECORD_NAMES);
	lua_rawgeti(L, CB_STATE, S_RECORD_KEYS);
	lua_rawgeti(L, CB_STATE, S_RECORD_MT);
	if (cb_record_push(L, state - 1, state, state + 1, state + 2, f->text, sizeof f->text) != 0) {
		f->kind = "decode";
		return 0;
	}
	return 1;
}

/* A record that is not the one asked for (a connection shared by mistake, a proxy mixing answers)
 * is an error, never the answer. */
static int is_other_record(lua_State *L, int record, const request_ctx *ctx, cb_failure *f)
{
	const char *job;
	lua_Integer n = ctx->build_no;

	lua_getfield(L, record, "buildNo");
	if (lua_type(L, -1) == LUA_TNUMBER)
		n = (lua_Integer)lua_tonumber(L, -1);
	lua_getfield(L, record, "codeciJobId");
	job = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : ctx->job_id;
	if (n == ctx->build_no && strcmp(job, ctx->job_id) == 0) {
		lua_pop(L, 2);
		return 0;
	}
	cb_failure_set(f, "decode", "the response is build %.0f of job %.40s, not the one asked for",
		       (double)n, job);
	lua_pop(L, 2);
	return 1;
}

/* A successful transfer's body: pushes the record (or the tidied body of a get) and returns 1,
 * or returns 0 with f filled in. */
static int push_success(lua_State *L, const cb_transfer *t, cb_failure *f)
{
	const request_ctx *ctx = t->user;
	int top = lua_gettop(L), body;

	if (ctx->kind == REQUEST_RECORD && t->body.len > 0 && read_record(L, &t->body))
		return is_other_record(L, top + 1, ctx, f) ? (lua_settop(L, top), 0) : 1;
	if (t->body.len == 0 || cb_decode_body(L, &t->body) != 0) {
		cb_failure_set(f, "decode", "cannot decode the response: %s",
			       t->body.len == 0 ? "empty body" : lua_tostring(L, -1));
		lua_settop(L, top);
		return 0;
	}
	body = lua_gettop(L);
	if (lua_type(L, body) != LUA_TTABLE) {
		cb_failure_set(f, "decode", "cannot decode the response: not a JSON object");
	} else if (cb_envelope_failed(L, body, f->code, sizeof f->code, f->text, sizeof f->text)) {
		char message[sizeof f->text];
		memcpy(message, f->text, sizeof message);
		cb_failure_set(f, "api", "the API reported a failure%s%s%s%s", f->code[0] || message[0] ? ": " : "",
			       f->code, f->code[0] && message[0] ? " " : "", message);
	} else if (ctx->kind != REQUEST_RECORD) {
		cb_tidy_json(L, body);
		return 1;
	} else if (push_decoded_record(L, body, f) && !is_other_record(L, lua_gettop(L), ctx, f)) {
		lua_replace(L, top + 1);
		lua_settop(L, top + 1);
		return 1;
	}
	lua_settop(L, top);
	return 0;
}

static void push_outcome_fields(lua_State *L, int event, const cb_transfer *t, int n)
{
	const request_ctx *ctx = t->user;

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
	if (ctx->kind == REQUEST_RECORD) {
		lua_pushstring(L, ctx->job_id);
		lua_setfield(L, event, "job_id");
		lua_pushinteger(L, ctx->build_no);
		lua_setfield(L, event, "build_no");
	}
}

/* Tells the client's on_event hook about a request that is done: what was asked, how it ended,
 * how long it took. Nothing secret is in it. A failing hook is reported on stderr and ignored,
 * so that no result is lost to it. The outcome (n values) is on top of the stack. The hook may
 * close the client: the caller looks at c->closed afterwards. */
static void emit_event(lua_State *L, const cb_client *c, const cb_transfer *t, int n)
{
	int event;

	if (c->on_event == LUA_NOREF)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->on_event);
	lua_createtable(L, 0, 12);
	event = lua_gettop(L);
	push_outcome_fields(L, event, t, n);
	if (n == 3) {
		lua_getfield(L, event - 2, "kind"); /* err is just below the function and the event */
		lua_setfield(L, event, "kind");
	}
	if (lua_pcall(L, 1, 0, 0) != 0) {
		const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
		fprintf(stderr, "codeartsbuild: on_event hook failed: %s\n", why);
		lua_pop(L, 1);
	}
}

int cb_request_deliver(lua_State *L, cb_client *c, const cb_transfer *t)
{
	const request_ctx *ctx = t->user;
	cb_failure f;
	int n;

	if (ctx->failed) {
		n = cb_push_failure(L, &ctx->failure, ctx);
	} else {
		cb_failure_init(&f);
		f.attempts = t->attempts;
		f.status = t->status;
		memcpy(f.request_id, t->request_id, sizeof f.request_id);
		n = push_success(L, t, &f) ? 1 : cb_push_failure(L, &f, ctx);
	}
	emit_event(L, c, t, n);
	return n;
}

/* ---- module functions ---- */

/***
 * Signs a request with SDK-HMAC-SHA256, as the API gateway checks it: for tests, debugging, and
 * requests to other Huawei Cloud services.
 * @function sign
 * @tparam table request `{method =, path =, query =, headers =, body =, ak =, sk =}` (`method`
 *   defaults to GET; `query` a map or a list of `{key, value}`; `headers` a map)
 * @treturn string the Authorization value
 * @treturn string the canonical request
 * @treturn string the string to sign
 * @treturn string the X-Sdk-Date that was signed
 */
static int module_sign(lua_State *L)
{
	cb_kv query[CB_MAX_QUERY_PAIRS], headers[64];
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

/***
 * Checks a job id as every call does before sending anything: 32 letters or digits.
 * @function check_job_id
 * @tparam string job_id
 * @tparam[opt] string caller the name a failure's message begins with (default "codeartsbuild")
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err, of kind `invalid`
 */
static int module_check_job_id(lua_State *L)
{
	request_ctx ctx;
	cb_failure f;

	cb_failure_init(&f);
	if (cb_check_job_id(L, 1, &ctx, &f) != 0)
		return cb_push_failure_about(L, &f, luaL_optstring(L, 2, "codeartsbuild"), NULL);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * Checks a build number as every call does before sending anything: an integer from 1 to
 * 2147483647 (`61`, `61.0` and `"61"` are fine).
 * @function check_build_no
 * @tparam number|string build_no
 * @tparam[opt] string caller the name a failure's message begins with (default "codeartsbuild")
 * @treturn[1] integer the build number
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err, of kind `invalid`
 */
static int module_check_build_no(lua_State *L)
{
	request_ctx ctx;
	cb_failure f;

	cb_failure_init(&f);
	if (cb_check_build_no(L, 1, &ctx, &f) != 0)
		return cb_push_failure_about(L, &f, luaL_optstring(L, 2, "codeartsbuild"), NULL);
	lua_pushinteger(L, ctx.build_no);
	return 1;
}

void cb_request_open(lua_State *L, int state, int module)
{
	static const luaL_Reg functions[] = {
		{"sign", module_sign},
		{"check_job_id", module_check_job_id},
		{"check_build_no", module_check_build_no},
		{NULL, NULL},
	};
	lua_pushvalue(L, module);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, functions, 1);
	lua_pop(L, 1);
}
