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

cb_transfer *cb_request_submit_record(cb_client *c, request_ctx *ctx, int flags, cb_failure *f)
{
	char path[96];

	ctx->api = c->api_current;
	record_path(ctx->api, ctx, path, sizeof path);
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

/* tls is for certificates and their verification; a handshake that failed (a connection reset in
 * its middle, mostly: CURLE_SSL_CONNECT_ERROR) is a network failure, and retried. */
static const char *curl_failure_kind(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
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

/* What a response said, as failures quote it: "HTTP 404: CB.00031059 no build history". */
static void quote_response(char *out, size_t len, const char *prefix, const char *code, const char *message)
{
	snprintf(out, len, "%s%s%s%s%s", prefix, code[0] || message[0] ? ": " : "", code, code[0] && message[0] ? " " : "",
		 message);
}

/* A non-2xx status: the service's code (as the engine read it for its retry rule, or as the body
 * says it when decoded) and message, then the kind from the code first, the status second. */
static void set_http_failure(lua_State *L, cb_failure *f, const cb_transfer *t)
{
	const request_ctx *ctx = t->user;
	int decoded = t->body.len > 0 && cb_decode_body(L, &t->body) == 0;
	char message[384] = "", code[sizeof f->code] = "", status[16], said[sizeof f->text];

	f->status = t->status;
	cb_response_code(t, f->code, sizeof f->code);
	if (decoded)
		cb_error_fields(L, lua_gettop(L), code, sizeof code, message, sizeof message);
	lua_pop(L, 1);
	if (!f->code[0])
		memcpy(f->code, code, sizeof f->code);
	snprintf(status, sizeof status, "HTTP %d", (int)t->status);
	quote_response(said, sizeof said, status, f->code, message);
	cb_failure_classify(f, ctx, ctx->api, said);
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
		cb_failure_set_redacted(f, curl_failure_kind(t->result), t->error[0] ? t->error : curl_easy_strerror(t->result));
	else
		set_http_failure(L, f, t);
	f->retryable = f->retryable && t->attempts > 0;
	ctx->failed = 1;
	return 1;
}

/* With api = "auto" the record APIs are asked in this order: v1, current; v4, out of date; v3,
 * the user's page, unavailable soon (SERVICE-CONTRACTS §1.3, §2). */
static const int auto_order[] = {CB_API_V1, CB_API_V4, CB_API_V3};

int cb_request_first_api(int api_mode)
{
	return api_mode == CB_API_AUTO ? auto_order[0] : api_mode;
}

static int next_api(int api)
{
	size_t i;

	for (i = 0; i + 1 < sizeof auto_order / sizeof auto_order[0]; i++)
		if (auto_order[i] == api)
			return auto_order[i + 1];
	return -1;
}

/* A queued record request that was to ask an API the client has moved on from asks the new one. */
static void follow_api(cb_engine *e, cb_transfer *t, void *client)
{
	const cb_client *c = client;
	request_ctx *ctx = t->user;
	char path[96];

	if (ctx->kind != REQUEST_RECORD || ctx->api == c->api_current)
		return;
	record_path(c->api_current, ctx, path, sizeof path);
	if (cb_engine_set_path(e, t, path) == 0)
		ctx->api = c->api_current;
}

int cb_request_resend_on_next_api(cb_client *c, cb_transfer *t)
{
	request_ctx *ctx = t->user;
	int api;
	char path[96];

	if (c->cfg.api_mode != CB_API_AUTO || ctx->kind != REQUEST_RECORD || !ctx->failed || !ctx->failure.what ||
	    strcmp(ctx->failure.what, "api") != 0)
		return 0;
	/* Another request may have moved the client on already: follow it rather than step again. */
	api = ctx->api == c->api_current ? next_api(ctx->api) : c->api_current;
	if (api < 0)
		return 0;
	c->api_current = ctx->api = api;
	record_path(api, ctx, path, sizeof path);
	cb_engine_each_queued(c->engine, follow_api, c);
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

/* A record request's answer with no record in it: an empty or absent `result` (the reference
 * counts it among the ways a missing build may be told, SERVICE-CONTRACTS §11). */
static void no_record(cb_failure *f, const request_ctx *ctx, const char *how)
{
	f->what = "build";
	cb_failure_set(f, "not_found", "build %d of job %s not found (%s)", (int)ctx->build_no, ctx->job_id, how);
}

/* The general path: the decoded body's `result` (at `body`) made a record. */
static int is_empty_table(lua_State *L, int idx)
{
	lua_pushnil(L);
	if (lua_next(L, idx) == 0)
		return 1;
	lua_pop(L, 2);
	return 0;
}

static int push_decoded_record(lua_State *L, int body, const request_ctx *ctx, cb_failure *f)
{
	int state = lua_gettop(L) + 2, type;

	lua_getfield(L, body, "result");
	type = cb_is_json_null(L, -1) ? LUA_TNIL : lua_type(L, -1);
	if (type == LUA_TNIL || (type == LUA_TTABLE && is_empty_table(L, lua_gettop(L)))) {
		no_record(f, ctx, type == LUA_TNIL ? "no result in the response" : "an empty result");
		return 0;
	}
	if (type != LUA_TTABLE || lua_rawlen(L, -1) > 0) {
		cb_failure_set(f, "decode", "cannot decode the response: the result is %s, not a record",
			       type == LUA_TTABLE ? "a list" : lua_typename(L, type));
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

/* Whether the record at `record` answers the request: one that is not the build or job asked for
 * (a connection shared by mistake, a proxy mixing answers) is an error, never the answer; one with
 * no field at all is no record. */
static int answers(lua_State *L, int record, const request_ctx *ctx, cb_failure *f)
{
	const char *job;
	lua_Integer n = ctx->build_no;

	if (is_empty_table(L, record)) {
		no_record(f, ctx, "an empty result");
		return 0;
	}
	lua_getfield(L, record, "buildNo");
	if (lua_type(L, -1) == LUA_TNUMBER)
		n = (lua_Integer)lua_tonumber(L, -1);
	lua_getfield(L, record, "codeciJobId");
	job = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : ctx->job_id;
	if (n == ctx->build_no && strcmp(job, ctx->job_id) == 0) {
		lua_pop(L, 2);
		return 1;
	}
	cb_failure_set(f, "decode", "the response is build %.0f of job %.40s, not the one asked for",
		       (double)n, job);
	lua_pop(L, 2);
	return 0;
}

/* A JSON string whose content is the document (seen double-encoded, SERVICE-CONTRACTS §8.1 E6):
 * replaced by that document when it decodes to a table. */
static void decode_twice(lua_State *L, int body)
{
	cb_buffer inner;

	if (lua_type(L, body) != LUA_TSTRING)
		return;
	inner.data = (char *)lua_tolstring(L, body, &inner.len);
	inner.cap = inner.len + 1;
	inner.failed = 0;
	if (cb_decode_body(L, &inner) == 0 && lua_type(L, -1) == LUA_TTABLE)
		lua_replace(L, body);
	else
		lua_pop(L, 1);
}

/* A successful transfer's body: pushes the record (or the tidied body of a get) and returns 1,
 * or returns 0 with f filled in. A 200 may still say it failed, in every envelope the service uses
 * (success: false; status: "fail"; a top-level error_code): its code decides the kind, as for any
 * status. */
static int push_success(lua_State *L, const cb_transfer *t, cb_failure *f)
{
	const request_ctx *ctx = t->user;
	int top = lua_gettop(L), body;
	char message[384], said[sizeof f->text];

	if ((t->flags & CB_STREAM) && t->stream_mode != CB_STREAM_BUFFERING) {
		lua_pushinteger(L, (lua_Integer)t->streamed); /* the body went to its owner: its size */
		return 1;
	}
	if (ctx->kind == REQUEST_RECORD && t->body.len > 0 && read_record(L, &t->body))
		return answers(L, top + 1, ctx, f) ? 1 : (lua_settop(L, top), 0);
	if (t->body.len == 0 || cb_decode_body(L, &t->body) != 0) {
		cb_failure_set(f, "decode", "cannot decode the response: %s",
			       t->body.len == 0 ? "empty body" : lua_tostring(L, -1));
		lua_settop(L, top);
		return 0;
	}
	body = lua_gettop(L);
	decode_twice(L, body);
	if (lua_type(L, body) != LUA_TTABLE || lua_rawlen(L, body) > 0) {
		cb_failure_set(f, "decode", "cannot decode the response: not a JSON object");
	} else if (cb_envelope_failed(L, body, f->code, sizeof f->code, message, sizeof message)) {
		quote_response(said, sizeof said, "the API reported a failure", f->code, message);
		cb_failure_classify(f, ctx, ctx->api, said);
	} else if (ctx->kind != REQUEST_RECORD) {
		cb_tidy_json(L, body);
		return 1;
	} else if (push_decoded_record(L, body, ctx, f) && answers(L, lua_gettop(L), ctx, f)) {
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
