/* One request after its arguments were checked (check.c): submission, the failure it settles
 * with, the move to v1, and what its owner receives. Its headers are headers.c's. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "private.h"

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

	if ((t->flags & CB_STREAM) && t->stream_mode != CB_STREAM_BUFFERING) {
		lua_pushinteger(L, (lua_Integer)t->streamed); /* the body went to its owner: its size */
		return 1;
	}
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
