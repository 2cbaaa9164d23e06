/* Credentials that take a request of their own: IAM tokens for IAM users, the project id for AK/SK
 * without one, the memory of a credential failure, and the lone first request that finds out
 * whether the service takes a client's credentials and which record API answers. A sign-in or lookup is a request like any
 * other on the client's engine (it never blocks an event loop); while it runs, the engine's gate
 * holds the requests that wait for it. One runs at a time, however many requests need it; after a
 * failure the client sends nothing for a cool-down, so that a walk of 1,000 builds does not spend
 * 1,000 sign-ins (IAM locks users) or signatures (the gateway locks an AK after 5 failures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define TOKEN_RENEW_MARGIN_S 300 /* renew a token this long before IAM says it expires */
#define COOL_DOWN_S 60           /* nothing is sent this long after a credential failure */

/* The gate is closed while a sign-in or lookup that others need is under way, or while the one
 * request that tries unverified credentials is. */
static void update_gate(cb_client *c)
{
	const cb_credentials *cr = &c->credentials;

	cb_engine_gate(c->engine, (cr->request_id && cr->gating) || cr->probe_id);
}

/* ---- the requests ---- */

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

/* Submits a sign-in (REQUEST_IAM_TOKEN) or a project lookup (REQUEST_IAM_PROJECTS); with `gate`,
 * the other requests wait for it. Returns 0, or -1 with f. */
static int start_exchange(cb_client *c, int kind, int gate, cb_failure *f)
{
	cb_transfer *t;

	if (kind == REQUEST_IAM_TOKEN) {
		/* nocatalog: the token's body without the service catalog, which nothing here reads. */
		cb_kv query = {"nocatalog", 9, "true", 4};
		t = cb_request_submit_iam(c, kind, "/v3/auth/tokens", &query, 1, f);
		if (t)
			token_request_body(&c->cfg, &t->request_body);
		if (t && t->request_body.failed) {
			cb_engine_cancel(c->engine, t->id);
			cb_failure_set(f, "network", "cannot prepare the request (out of memory)");
			return -1;
		}
	} else {
		/* GET /v3/projects?name=<region>, signed with the AK/SK: the lookup the SDKs make. */
		cb_kv query = {"name", 4, c->cfg.region, strlen(c->cfg.region)};
		t = cb_request_submit_iam(c, kind, "/v3/projects", &query, 1, f);
	}
	if (t == NULL)
		return -1;
	c->credentials.request_id = t->id;
	c->credentials.gating = gate;
	update_gate(c);
	return 0;
}

/* ---- remembered failures ---- */

static void fail_unsent(cb_transfer *t, void *failure)
{
	request_ctx *ctx = t->user;
	const cb_failure *why = failure;

	ctx->failure = *why;
	ctx->failure.attempts = 0;
	cb_failure_prefix(&ctx->failure, "not sent: ");
	ctx->failed = 1;
}

/* Remembers f (what it was about, when what is not NULL) for the cool-down, and fails every request
 * waiting to be sent. */
static void remember(cb_client *c, const cb_failure *f, const char *what)
{
	cb_credentials *cr = &c->credentials;

	cr->failure = *f;
	if (what)
		cb_failure_prefix(&cr->failure, "%s: ", what);
	cr->cool_until_ns = cb_now_ns() + COOL_DOWN_S * 1000000000LL;
	cr->verified = 0;
	cb_engine_fail_queued(c->engine, fail_unsent, &cr->failure);
}

int cb_iam_prepare(lua_State *L, cb_client *c, cb_failure *f)
{
	cb_credentials *cr = &c->credentials;
	time_t now = time(NULL);

	(void)L;
	if (cr->cool_until_ns && cb_now_ns() < cr->cool_until_ns) {
		*f = cr->failure;
		f->attempts = 0;
		cb_failure_prefix(f, "not sent, within %d s of this failure: ", COOL_DOWN_S);
		return -1;
	}
	cr->cool_until_ns = 0;
	if (cr->request_id)
		return 0; /* a sign-in or lookup is under way: the request waits at the gate if it must */
	if (c->cfg.iam_user && (!c->cfg.token || now >= cr->token_expires))
		return start_exchange(c, REQUEST_IAM_TOKEN, 1, f);
	if (c->cfg.iam_user && now >= cr->token_expires - TOKEN_RENEW_MARGIN_S && now >= cr->renew_after) {
		cb_failure ignored; /* the old token works a while yet: the request goes with it */
		start_exchange(c, REQUEST_IAM_TOKEN, 0, &ignored);
	}
	if (c->cfg.ak && !c->cfg.project_id && c->cfg.region && c->cfg.iam_endpoint)
		return start_exchange(c, REQUEST_IAM_PROJECTS, 1, f);
	return 0;
}

/* ---- settling a sign-in or a lookup ---- */

/* What an IAM exchange that did not give what it should have says, as f. */
static void exchange_failure(lua_State *L, cb_transfer *t, const char *what, cb_failure *f)
{
	request_ctx *ctx = t->user;

	if (cb_request_settle_failure(L, t)) {
		*f = ctx->failure;
		/* Unreachable, slow, busy or failing IAM says nothing of the credentials; a refusal does. */
		if (strcmp(f->kind, "timeout") == 0)
			f->kind = "network";
		else if (!f->retryable && strcmp(f->kind, "network") != 0 && strcmp(f->kind, "tls") != 0)
			f->kind = "auth";
		cb_failure_prefix(f, "%s: ", what);
	} else {
		cb_failure_init(f);
		f->status = t->status;
		f->attempts = t->attempts;
		cb_failure_set(f, "auth", "%s: HTTP %d without X-Subject-Token", what, (int)t->status);
	}
}

/* Keeps the string `id` of the table on top of the stack as the client's project id; returns
 * whether it did. An id that is not a short string is ignored. */
static int take_project_id(lua_State *L, cb_client *c)
{
	size_t n = 0;
	const char *id;

	lua_getfield(L, -1, "id");
	id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
	if (id != NULL && n < 128 && (c->cfg.project_id = cb_strndup(id, n)) == NULL)
		id = NULL;
	lua_pop(L, 1);
	return id != NULL && n < 128;
}

/* Reads token.expires_at (and token.project.id, when no project id is known) from a token body. */
static void read_token_body(lua_State *L, cb_client *c, const cb_transfer *t)
{
	long long expires = -1;

	if (cb_decode_body(L, &t->body) == 0 && lua_type(L, -1) == LUA_TTABLE) {
		lua_getfield(L, -1, "token");
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_getfield(L, -1, "expires_at");
			if (lua_type(L, -1) == LUA_TSTRING)
				expires = cb_parse_iso_utc(lua_tostring(L, -1));
			lua_pop(L, 1);
			lua_getfield(L, -1, "project");
			if (lua_type(L, -1) == LUA_TTABLE && !c->cfg.project_id)
				take_project_id(L, c);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	/* IAM tokens live 24 hours; without a readable expiry, assume a short life rather than a long one. */
	c->credentials.token_expires = expires > 0 ? (time_t)expires : time(NULL) + 3600;
}

static int take_token(lua_State *L, cb_client *c, cb_transfer *t, cb_failure *f)
{
	if (t->result != CURLE_OK || t->status != 201 || t->subject_token.len == 0) {
		exchange_failure(L, t, "IAM sign-in failed", f);
		return 0;
	}
	cb_free_secret(&c->cfg.token);
	c->cfg.token = t->subject_token.data; /* the transfer's buffer becomes the client's */
	t->subject_token.data = NULL;
	t->subject_token.len = t->subject_token.cap = 0;
	c->credentials.token_generation++;
	read_token_body(L, c, t);
	return 1;
}

/* The ids of the projects in the list on top of the stack, for a message: "id1, id2, ...". */
static void project_ids(lua_State *L, size_t count, char *out, size_t len)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 1; i <= count && used + 1 < len; i++) {
		lua_rawgeti(L, -1, (int)i);
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_getfield(L, -1, "id");
			if (lua_type(L, -1) == LUA_TSTRING)
				used += (size_t)snprintf(out + used, len - used, "%s%.40s", used ? ", " : "", lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
}

/* The one project named as the region: the SDKs refuse none and several alike (and name them). */
static int take_project(lua_State *L, cb_client *c, cb_transfer *t, cb_failure *f)
{
	int top = lua_gettop(L), found = 0;
	size_t count = 0;
	char ids[200] = "";

	if (cb_request_settle_failure(L, t)) {
		char what[128];
		snprintf(what, sizeof what, "cannot look up the project id of %.48s (pass project_id=)", c->cfg.region);
		exchange_failure(L, t, what, f);
		return 0;
	}
	if (cb_decode_body(L, &t->body) == 0 && lua_type(L, -1) == LUA_TTABLE) {
		lua_getfield(L, -1, "projects");
		count = lua_type(L, -1) == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
		if (count == 1) {
			lua_rawgeti(L, -1, 1);
			found = lua_type(L, -1) == LUA_TTABLE && take_project_id(L, c);
			lua_pop(L, 1);
		} else if (count > 1) {
			project_ids(L, count, ids, sizeof ids);
		}
	}
	lua_settop(L, top);
	if (found)
		return 1;
	cb_failure_init(f);
	f->attempts = t->attempts;
	if (count > 1)
		cb_failure_set(f, "config", "IAM has %lu projects named %s (%s): pass project_id= to say which",
			       (unsigned long)count, c->cfg.region, ids);
	else
		cb_failure_set(f, "config", "IAM has no project named %s: pass project_id=", c->cfg.region);
	return 0;
}

void cb_iam_settle(lua_State *L, cb_client *c, cb_transfer *t)
{
	cb_credentials *cr = &c->credentials;
	const request_ctx *ctx = t->user;
	int current = cr->request_id == t->id, gating = current && cr->gating;
	cb_failure f;

	if (current)
		cr->request_id = 0;
	if (ctx->kind == REQUEST_IAM_TOKEN ? take_token(L, c, t, &f) : take_project(L, c, t, &f))
		cr->verified = 1; /* IAM took the password, or the signature */
	else if (gating)
		remember(c, &f, NULL);
	else /* a renewal ahead of time failed: the token still works, try again later */
		cr->renew_after = time(NULL) + COOL_DOWN_S;
	update_gate(c);
	cb_engine_drop(c->engine, t);
}

/* ---- requests the service refused ---- */

int cb_iam_refused(lua_State *L, cb_client *c, cb_transfer *t)
{
	cb_credentials *cr = &c->credentials;
	request_ctx *ctx = t->user;
	char what[256];
	cb_failure ignored;

	(void)L;
	if (t->unsent || !cb_failure_is_credential(&ctx->failure))
		return 0;
	if (c->cfg.iam_user && ctx->failure.status == 401 && !ctx->token_renewed) {
		/* The token it carried was refused: one sign-in for all the requests that carried it. */
		ctx->token_renewed = 1;
		if (cr->request_id == 0 && ctx->token_generation == cr->token_generation) {
			cr->token_expires = 0;
			if (start_exchange(c, REQUEST_IAM_TOKEN, 1, &ignored) != 0)
				return 0;
		}
		ctx->failed = 0; /* before: a transfer cancelled meanwhile is gone once resubmitted */
		if (cb_engine_resubmit(c->engine, t, NULL) == 0)
			return 1;
		ctx->failed = 1;
		return 0;
	}
	cb_request_context(ctx, what, sizeof what);
	if (!(cr->cool_until_ns && cb_now_ns() < cr->cool_until_ns)) {
		char about[300];
		snprintf(about, sizeof about, "the credentials were refused to %s", what);
		remember(c, &ctx->failure, about);
	}
	return 0;
}

void cb_iam_track(cb_client *c, cb_transfer *t)
{
	cb_credentials *cr = &c->credentials;
	const request_ctx *ctx = t->user;
	int unsure = !cr->verified || (ctx->kind == REQUEST_RECORD && !c->api_confirmed);

	if (!unsure || cr->probe_id || (cr->request_id && cr->gating))
		return;
	cr->probe_id = t->id;
	t->flags |= CB_UNGATED;
	update_gate(c);
}

void cb_iam_answered(cb_client *c, const cb_transfer *t)
{
	cb_credentials *cr = &c->credentials;
	const request_ctx *ctx = t->user;

	if (t->status > 0 && !(ctx->failed && cb_failure_is_credential(&ctx->failure)))
		cr->verified = 1;
	/* Settled, not sent on: the record API answered (a request it refused went to the next one). */
	if (ctx->kind == REQUEST_RECORD && t->status > 0)
		c->api_confirmed = 1;
	if (t->id == cr->probe_id) {
		cr->probe_id = 0;
		update_gate(c);
	}
}

int cb_iam_owns(const cb_client *c, long long id)
{
	return id == c->credentials.request_id;
}

void cb_iam_cancelled(cb_client *c, long long id)
{
	cb_credentials *cr = &c->credentials;
	cb_transfer *next;

	if (id != cr->probe_id)
		return;
	/* The next in the queue goes alone in its place. */
	next = cb_engine_promote(c->engine);
	cr->probe_id = next ? next->id : 0;
	update_gate(c);
}

void cb_iam_reset(cb_client *c)
{
	c->credentials.request_id = 0;
	c->credentials.probe_id = 0;
}
