/* The client userdata and its methods, and the one mailbox: every request waits in the client's
 * engine until its owner takes it (poll() the ones nobody holds, take(id) any one), and every wait
 * sleeps in the engine until a request finishes, never spinning on results that wait for others. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "private.h"

/* ---- fork ---- */

/* How many times this process is a fork()ed child of the one that loaded the module. A client
 * made before the last fork notices it, and leaves its parent's connections alone. */
static volatile unsigned forks;

static void count_fork(void)
{
	forks++;
}

/* ---- life ---- */

static cb_engine *new_engine(cb_client *c, char *msg, size_t msglen)
{
	cb_transport_options t;

	memset(&t, 0, sizeof t);
	t.base_url = c->cfg.endpoint;
	t.timeout_ms = c->cfg.timeout_ms;
	t.connect_timeout_ms = c->cfg.connect_timeout_ms;
	t.max_body = c->cfg.max_body;
	t.ca_file = c->cfg.ca_file;
	t.insecure = c->cfg.insecure;
	t.allow_http = strncmp(c->cfg.endpoint, "http://", 7) == 0;
	t.user_agent = c->cfg.user_agent;
	t.max_in_flight = c->cfg.concurrency;
	t.rate = c->cfg.rate;
	t.retries = c->cfg.retries;
	t.backoff_ms = c->cfg.backoff_ms;
	t.max_backoff_ms = c->cfg.max_backoff_ms;
	t.prepare = cb_request_headers;
	t.prepare_ctx = c;
	return cb_engine_new(&t, msg, msglen);
}

static int start(cb_client *c, char *msg, size_t msglen)
{
	if (c->cfg.user_agent == NULL) {
		/* No libcurl version: libcurl formats each header byte at a cost, on every request. */
		c->cfg.user_agent = cb_strdup("codeartsbuild-lua/" CB_VERSION);
		if (c->cfg.user_agent == NULL) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
	}
	c->api_current = c->cfg.api_mode == CB_API_AUTO ? CB_API_V3 : c->cfg.api_mode;
	if (c->cfg.ak && (c->key = cb_hmac_key_new(c->cfg.sk, strlen(c->cfg.sk))) == NULL) {
		snprintf(msg, msglen, "cannot set up HMAC-SHA256 (OpenSSL)");
		return -1;
	}
	c->forks = forks;
	c->engine = new_engine(c, msg, msglen);
	return c->engine ? 0 : -1;
}

/* Frees everything and wipes the credentials; safe twice. */
static void release(lua_State *L, cb_client *c)
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

/* In a child of fork(): a new engine; the old one's sockets are the parent's connections too. */
static void restart_after_fork(lua_State *L, cb_client *c)
{
	char msg[256];
	long long last_id = cb_engine_abandon(c->engine);

	c->engine = new_engine(c, msg, sizeof msg);
	if (c->engine == NULL) {
		c->closed = 1;
		luaL_error(L, "codeartsbuild: cannot start the client again in the forked process: %s", msg);
	}
	cb_engine_continue_ids(c->engine, last_id);
	cb_iam_reset(c);
	c->forks = forks;
}

/* Every method that uses the engine starts with enter() and ends with leave(): close() from a
 * callback, a hook or a __gc that runs meanwhile only marks the client closed, and the last
 * leave() releases it, once nothing on the stack uses it any more. */
static cb_client *enter(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);

	if (c->closed)
		luaL_error(L, "attempt to use a closed codeartsbuild client");
	if (c->forks != forks)
		restart_after_fork(L, c);
	c->busy++;
	return c;
}

static int leave(lua_State *L, cb_client *c, int results)
{
	if (--c->busy == 0 && c->closed)
		release(L, c);
	return results;
}

/* leave(), then raise. */
static int raise_leaving(lua_State *L, cb_client *c, const char *message)
{
	lua_pushstring(L, message);
	leave(L, c, 0);
	return lua_error(L);
}

/* ---- the mailbox ---- */

static void deliver(cb_client *c, cb_transfer *t)
{
	cb_iam_answered(c, t);
	cb_engine_deliver(c->engine, t);
}

void cb_client_settle(lua_State *L, cb_client *c)
{
	cb_transfer *t;

	while ((t = cb_engine_next_finished(c->engine)) != NULL) {
		const request_ctx *ctx = t->user;
		if (ctx->kind == REQUEST_IAM_TOKEN || ctx->kind == REQUEST_IAM_PROJECTS)
			cb_iam_settle(L, c, t);
		else if (!cb_request_settle_failure(L, t) ||
			 (!cb_request_resend_on_v1(c, t) && !cb_iam_refused(L, c, t)))
			deliver(c, t);
	}
}

enum { WAIT_DONE, WAIT_TIMEOUT, WAIT_GONE, WAIT_CLOSED, WAIT_STALLED, WAIT_FAILED };

static long ms_until(long long deadline_ns)
{
	long long left = deadline_ns - cb_now_ns();

	return left <= 0 ? 0 : (long)((left + 999999) / 1000000);
}

/* Runs the engine until request `id` is done (then takes it out and returns it), the deadline
 * passes (deadline_ns < 0: none), or something else ends the wait (*why says what). The engine
 * sleeps in libcurl's poll between transfers, and returns only when one of them finishes. */
static cb_transfer *wait_for(lua_State *L, cb_client *c, long long id, long long deadline_ns, int *why, char *err,
			     size_t errlen)
{
	int ran = 0;

	for (;;) {
		cb_transfer *t;
		long timeout_ms;

		cb_client_settle(L, c);
		*why = c->closed ? WAIT_CLOSED : WAIT_DONE;
		if (c->closed)
			return NULL;
		if ((t = cb_engine_take(c->engine, id)) != NULL)
			return t;
		*why = cb_engine_find(c->engine, id) == NULL ? WAIT_GONE : ran && !cb_engine_can_progress(c->engine) ?
			WAIT_STALLED : WAIT_TIMEOUT;
		if (*why != WAIT_TIMEOUT)
			return NULL;
		timeout_ms = deadline_ns < 0 ? -1 : ms_until(deadline_ns);
		if (ran && timeout_ms == 0)
			return NULL;
		if (cb_engine_run(c->engine, timeout_ms, err, errlen) < 0) {
			*why = WAIT_FAILED;
			return NULL;
		}
		ran = 1;
	}
}

/* What a wait that ended without its request means to the method that waited (`what`). */
static int wait_failed(lua_State *L, cb_client *c, const char *what, long long id, int why, const char *err)
{
	switch (why) {
	case WAIT_CLOSED:
		lua_pushfstring(L, "codeartsbuild: the client was closed while %s waited", what);
		break;
	case WAIT_GONE:
		lua_pushfstring(L, "codeartsbuild: %s: request %d is not pending (taken, polled or cancelled)", what, (int)id);
		break;
	case WAIT_STALLED:
		lua_pushfstring(L, "codeartsbuild: %s: request %d can make no progress", what, (int)id);
		break;
	default:
		lua_pushfstring(L, "codeartsbuild: %s: %s", what, err);
		break;
	}
	return raise_leaving(L, c, lua_tostring(L, -1));
}

/* Pushes {id =, job_id =, build_no =, record = | message =, err =} (or path = and body =) for a done
 * transfer, and frees it. */
static void push_entry(lua_State *L, cb_client *c, cb_transfer *t)
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
	n = cb_request_deliver(L, c, t);
	if (n == 1) {
		lua_setfield(L, entry, ctx->kind == REQUEST_RECORD ? "record" : "body");
	} else {
		lua_setfield(L, entry, "err");
		lua_setfield(L, entry, "message");
		lua_pop(L, 1);
	}
	cb_transfer_free(t);
}

/* A timeout in milliseconds at arg, checked before any conversion: nil or math.huge for no limit
 * (-1), else the deadline on the monotonic clock. */
static long long deadline_arg(lua_State *L, int arg)
{
	lua_Number ms;

	if (lua_isnoneornil(L, arg))
		return -1;
	ms = luaL_checknumber(L, arg);
	if (ms != ms)
		luaL_argerror(L, arg, "timeout is NaN");
	if (ms < 0)
		luaL_argerror(L, arg, "timeout must be 0 or more (milliseconds)");
	if (ms > 31536000000.0) /* a year: no limit */
		return -1;
	return cb_now_ns() + (long long)(ms * 1e6);
}

/* A request id at arg: an integer, checked as a number first (1.5 is not an id). */
static long long id_arg(lua_State *L, int arg)
{
	lua_Number n = luaL_checknumber(L, arg);

	if (n != floor(n) || !(n >= -9e15 && n <= 9e15))
		luaL_argerror(L, arg, "request id expected (an integer)");
	return (long long)n;
}

/* submit's and submit_get's options: { hold = true } keeps the request out of poll(). */
static int submit_flags(lua_State *L, int arg)
{
	int flags = 0;

	if (lua_isnoneornil(L, arg))
		return 0;
	luaL_checktype(L, arg, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, arg) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "hold") != 0)
			luaL_error(L, "unknown submit option %s", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "");
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			luaL_error(L, "submit option 'hold' must be a boolean");
		flags = lua_toboolean(L, -1) ? CB_HELD : 0;
		lua_pop(L, 1);
	}
	return flags;
}

/* Submits the request ctx describes (a record, or a GET of path?query), if the credentials allow
 * it now. Returns the transfer, or NULL with f. */
static cb_transfer *submit(lua_State *L, cb_client *c, const request_ctx *ctx, const char *path, const cb_kv *query,
			   size_t nquery, int flags, cb_failure *f)
{
	cb_transfer *t;

	if (cb_iam_prepare(L, c, f) != 0)
		return NULL;
	t = ctx->kind == REQUEST_RECORD ? cb_request_submit_record(c, ctx, flags, f) :
		cb_request_submit_get(c, ctx, path, query, nquery, flags, f);
	if (t)
		cb_iam_track(c, t);
	return t;
}

/* Checks a record request's arguments (arg, arg + 1) and submits it. */
static cb_transfer *submit_record(lua_State *L, cb_client *c, int arg, int flags, request_ctx *ctx, cb_failure *f)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->kind = REQUEST_RECORD;
	cb_failure_init(f);
	if (cb_check_job_id(L, arg, ctx, f) != 0 || cb_check_build_no(L, arg + 1, ctx, f) != 0)
		return NULL;
	return submit(L, c, ctx, NULL, NULL, 0, flags, f);
}

/* Checks a get's arguments (path and query at 2 and 3) and submits it. */
static cb_transfer *submit_get(lua_State *L, cb_client *c, int flags, request_ctx *ctx, cb_failure *f)
{
	cb_kv query[CB_MAX_QUERY_PAIRS];
	size_t nquery;

	cb_failure_init(f);
	nquery = cb_request_check_get(L, 2, ctx, query, f);
	if (nquery == (size_t)-1)
		return NULL;
	return submit(L, c, ctx, lua_tostring(L, 2), query, nquery, flags, f);
}

/* ---- methods ---- */

/* The record of a build, blocking: submit, wait for that one request, deliver. */
static int record_info_with(lua_State *L, cb_client *c, int arg)
{
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;
	char err[256];
	int why, n;

	if ((t = submit_record(L, c, arg, CB_HELD, &ctx, &f)) == NULL)
		return cb_push_failure(L, &f, &ctx);
	t = wait_for(L, c, t->id, -1, &why, err, sizeof err);
	if (t == NULL && why == WAIT_FAILED) {
		cb_failure_set(&f, "network", "%s", err);
		return cb_push_failure(L, &f, &ctx);
	}
	if (t == NULL)
		return wait_failed(L, c, "record_info", 0, why, err);
	n = cb_request_deliver(L, c, t);
	cb_transfer_free(t);
	return n;
}

/***
 * The record of build `build_no` of job `job_id`; blocks until it has an answer.
 * @function client:record_info
 * @tparam string job_id 32 letters or digits
 * @tparam integer|string build_no 1 to 2147483647
 * @treturn[1] table the record
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int client_record_info(lua_State *L)
{
	cb_client *c = enter(L);
	return leave(L, c, record_info_with(L, c, 2));
}

/***
 * Starts a record request and returns its id at once. With `{hold = true}` the request is held:
 * `poll` never returns it, and its owner collects it with `take(id)`.
 * @function client:submit
 * @tparam string job_id
 * @tparam integer|string build_no
 * @tparam[opt] table options `{hold = true}`
 * @treturn[1] integer the request id
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int client_submit(lua_State *L)
{
	int flags = submit_flags(L, 4);
	cb_client *c = enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;

	if ((t = submit_record(L, c, 2, flags, &ctx, &f)) == NULL)
		return leave(L, c, cb_push_failure(L, &f, &ctx));
	lua_pushinteger(L, (lua_Integer)t->id);
	return leave(L, c, 1);
}

/***
 * The requests that are done and not held, each `{id, job_id, build_no, record}` or
 * `{id, job_id, build_no, message, err}` (`{id, path, body}` for `submit_get`). Waits at most
 * `timeout_ms` for one (0: never waits; left out: until one is done or none is pending).
 * @function client:poll
 * @tparam[opt] number timeout_ms
 * @treturn table a list, maybe empty
 */
static int client_poll(lua_State *L)
{
	long long deadline = deadline_arg(L, 2);
	cb_client *c = enter(L);
	char err[256];
	cb_transfer *t;
	int list, ran = 0;

	lua_newtable(L);
	list = lua_gettop(L);
	for (;;) {
		long timeout_ms;
		cb_client_settle(L, c);
		while (!c->closed && (t = cb_engine_next_done(c->engine)) != NULL) {
			push_entry(L, c, t);
			lua_rawseti(L, list, (int)lua_rawlen(L, list) + 1);
		}
		if (c->closed || lua_rawlen(L, list) > 0 || cb_engine_count(c->engine, 0) == 0 ||
		    (ran && !cb_engine_can_progress(c->engine)))
			break;
		timeout_ms = deadline < 0 ? -1 : ms_until(deadline);
		if (ran && timeout_ms == 0)
			break;
		if (cb_engine_run(c->engine, timeout_ms, err, sizeof err) < 0)
			return wait_failed(L, c, "poll", 0, WAIT_FAILED, err);
		ran = 1;
	}
	lua_settop(L, list);
	return leave(L, c, 1);
}

/***
 * Takes request `id` out of the mailbox once it is done: the same entry `poll` would give. Waits at
 * most `timeout_ms` (0: never waits; left out: until it is done). Raises for an id this client
 * never issued, or one that was already taken, polled or cancelled.
 * @function client:take
 * @tparam integer id
 * @tparam[opt] number timeout_ms
 * @treturn table|nil the entry, or nil when it is not done yet
 */
static int client_take(lua_State *L)
{
	long long id = id_arg(L, 2), deadline = deadline_arg(L, 3);
	cb_client *c = enter(L);
	char err[256];
	int why;
	cb_transfer *t;

	if (id < 1 || id > cb_engine_last_id(c->engine)) {
		lua_pushfstring(L, "codeartsbuild: take: request %f was never issued by this client", (double)id);
		return raise_leaving(L, c, lua_tostring(L, -1));
	}
	t = wait_for(L, c, id, deadline, &why, err, sizeof err);
	if (t != NULL)
		push_entry(L, c, t);
	else if (why == WAIT_TIMEOUT)
		lua_pushnil(L);
	else
		return wait_failed(L, c, "take", id, why, err);
	return leave(L, c, 1);
}

/***
 * Forgets a request (queued, in flight, or done and not yet taken).
 * @function client:cancel
 * @tparam integer id
 * @treturn boolean true if it was pending
 */
static int client_cancel(lua_State *L)
{
	long long id = id_arg(L, 2);
	cb_client *c = enter(L);

	int cancelled = !cb_iam_owns(c, id) && cb_engine_cancel(c->engine, id);

	if (cancelled)
		cb_iam_cancelled(c, id);
	lua_pushboolean(L, cancelled);
	return leave(L, c, 1);
}

/***
 * How many requests the engine still owns: by default those `poll` has not returned yet (not
 * held); `"held"` counts the held ones (walks', `take`'s), `"all"` both.
 * @function client:pending
 * @tparam[opt] string which `"held"` or `"all"`
 * @treturn integer
 */
static int client_pending(lua_State *L)
{
	static const char *const which_names[] = {"free", "held", "all", NULL};
	int which = luaL_checkoption(L, 2, "free", which_names);
	cb_client *c = enter(L);
	size_t n = which == 0 ? cb_engine_count(c->engine, 0) : which == 1 ? cb_engine_count(c->engine, 1) :
		cb_engine_count(c->engine, 0) + cb_engine_count(c->engine, 1);

	lua_pushinteger(L, (lua_Integer)n);
	return leave(L, c, 1);
}

/***
 * `get` without waiting: the request id at once; `poll` (or `take`) gives `{id, path, body}` or
 * `{id, path, message, err}`.
 * @function client:submit_get
 * @tparam string path
 * @tparam[opt] table query
 * @tparam[opt] table options `{hold = true}`
 * @treturn[1] integer the request id
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int client_submit_get(lua_State *L)
{
	int flags = submit_flags(L, 4);
	cb_client *c = enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;

	if ((t = submit_get(L, c, flags, &ctx, &f)) == NULL)
		return leave(L, c, cb_push_failure(L, &f, &ctx));
	lua_pushinteger(L, (lua_Integer)t->id);
	return leave(L, c, 1);
}

/***
 * Any signed GET on the client's endpoint, decoded; blocks until it has an answer.
 * @function client:get
 * @tparam string path an absolute path
 * @tparam[opt] table query a map, or a list of `{key, value}`
 * @treturn[1] table the decoded body
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int client_get(lua_State *L)
{
	cb_client *c = enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;
	char err[256];
	int why, n;

	if ((t = submit_get(L, c, CB_HELD, &ctx, &f)) == NULL)
		return leave(L, c, cb_push_failure(L, &f, &ctx));
	t = wait_for(L, c, t->id, -1, &why, err, sizeof err);
	if (t == NULL && why == WAIT_FAILED) {
		cb_failure_set(&f, "network", "%s", err);
		return leave(L, c, cb_push_failure(L, &f, &ctx));
	}
	if (t == NULL)
		return wait_failed(L, c, "get", 0, why, err);
	n = cb_request_deliver(L, c, t);
	cb_transfer_free(t);
	return leave(L, c, n);
}

static const char *auth_name(const cb_config *cfg)
{
	return cfg->iam_user ? "iam" : cfg->token ? "token" : "aksk";
}

static void set_string_field(lua_State *L, const char *name, const char *value)
{
	if (value) {
		lua_pushstring(L, value);
		lua_setfield(L, -2, name);
	}
}

static void set_number_field(lua_State *L, const char *name, double value)
{
	lua_pushnumber(L, value);
	lua_setfield(L, -2, name);
}

/***
 * The client's settings, without any secret: for diagnostics and `:checkhealth`.
 * @function client:info
 * @treturn table `{endpoint, region, auth, credential_source, project_id, api, api_in_use, ...}`
 */
static int client_info(lua_State *L)
{
	cb_client *c = enter(L);
	const cb_config *cfg = &c->cfg;

	lua_createtable(L, 0, 20);
	set_string_field(L, "endpoint", cfg->endpoint);
	set_string_field(L, "region", cfg->region);
	set_string_field(L, "auth", auth_name(cfg));
	set_string_field(L, "iam_endpoint", cfg->iam_endpoint);
	lua_pushboolean(L, cfg->security_token != NULL);
	lua_setfield(L, -2, "temporary");
	set_string_field(L, "credential_source", cfg->credential_source);
	set_string_field(L, "project_id", cfg->project_id);
	set_string_field(L, "ca_file", cfg->ca_file);
	lua_pushboolean(L, cfg->insecure);
	lua_setfield(L, -2, "insecure");
	set_number_field(L, "timeout", cfg->timeout_ms / 1000.0);
	set_number_field(L, "connect_timeout", cfg->connect_timeout_ms / 1000.0);
	lua_pushinteger(L, (lua_Integer)cfg->max_body);
	lua_setfield(L, -2, "max_body");
	set_string_field(L, "user_agent", cfg->user_agent);
	set_string_field(L, "api", cb_api_name(cfg->api_mode));
	set_string_field(L, "api_in_use", cb_api_name(c->api_current));
	lua_pushinteger(L, cfg->concurrency);
	lua_setfield(L, -2, "concurrency");
	if (cfg->rate > 0)
		set_number_field(L, "rate", cfg->rate);
	lua_pushinteger(L, cfg->retries);
	lua_setfield(L, -2, "retries");
	set_number_field(L, "backoff", cfg->backoff_ms / 1000.0);
	set_number_field(L, "max_backoff", cfg->max_backoff_ms / 1000.0);
	return leave(L, c, 1);
}

/***
 * Frees the connections and wipes the credentials; safe twice, and at any moment: from `on_event`,
 * a `__gc` or a loop's body it takes effect when the call under way returns. Every method after it
 * raises. Also `__gc`, and `__close` on 5.4.
 * @function client:close
 */
static int client_close(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);

	if (c->busy > 0)
		c->closed = 1; /* the method under way releases it when it returns */
	else
		release(L, c);
	return 0;
}

static int client_gc(lua_State *L)
{
	release(L, luaL_checkudata(L, 1, CB_CLIENT_MT));
	return 0;
}

static int client_tostring(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);
	const cb_config *cfg = &c->cfg;

	if (c->closed) {
		lua_pushfstring(L, "codeartsbuild.client{closed}: %p", (void *)c);
		return 1;
	}
	lua_pushfstring(L, "codeartsbuild.client{%s, %s", cfg->region ? cfg->region : cfg->host, auth_name(cfg));
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

/* ---- module functions ---- */

/* Pushes a new client configured from the options at opts (0: none) and the environment, or
 * nil, message, err. Raises on a wrong option type. */
static int push_new_client(lua_State *L, int opts)
{
	char msg[512];
	cb_failure f;
	cb_client *c = lua_newuserdata(L, sizeof *c);

	memset(c, 0, sizeof *c);
	c->on_event = LUA_NOREF;
	cb_config_init(&c->cfg);
	c->closed = 1; /* until it is complete; __gc frees whatever was filled in */
	luaL_setmetatable(L, CB_CLIENT_MT);
	cb_failure_init(&f);
	if (opts && cb_options_read(L, opts, &c->cfg, &c->on_event, &f) != 0) {
		/* f says which value */
	} else if (cb_config_resolve(&c->cfg, msg, sizeof msg) != 0 || start(c, msg, sizeof msg) != 0) {
		cb_failure_set(&f, "config", "%s", msg);
	} else {
		c->closed = 0;
		return 1;
	}
	release(L, c);
	return cb_push_failure(L, &f, NULL);
}

/***
 * A client: `new{region =, endpoint =, ak =, sk =, project_id =, ...}` (see the README,
 * "Configuration"); options left out come from the environment.
 * @function new
 * @tparam[opt] table options
 * @treturn[1] userdata the client
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err, of kind `invalid` or `config`
 */
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

	lua_rawgeti(L, CB_STATE, S_DEFAULT_CLIENT);
	c = luaL_testudata(L, -1, CB_CLIENT_MT);
	if (c && !c->closed)
		return c;
	lua_pop(L, 1);
	*pushed = push_new_client(L, 0);
	if (*pushed != 1)
		return NULL;
	lua_pushvalue(L, -1);
	lua_rawseti(L, CB_STATE, S_DEFAULT_CLIENT);
	return luaL_checkudata(L, -1, CB_CLIENT_MT);
}

/***
 * The client module-level calls use, made from the environment on first use.
 * @function default_client
 * @treturn[1] userdata the client
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int module_default_client(lua_State *L)
{
	int pushed = 1;
	default_client(L, &pushed);
	return pushed;
}

/***
 * `record_info(job_id, build_no)` on the default client.
 * @function record_info
 * @tparam string job_id
 * @tparam integer|string build_no
 * @treturn[1] table the record
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
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
	lua_insert(L, 1); /* the client as argument 1, for enter() */
	lua_settop(L, 3);
	c = enter(L);
	return leave(L, c, record_info_with(L, c, 2));
}

static const luaL_Reg client_methods[] = {
	{"record_info", client_record_info},
	{"submit", client_submit},
	{"poll", client_poll},
	{"take", client_take},
	{"pending", client_pending},
	{"cancel", client_cancel},
	{"get", client_get},
	{"submit_get", client_submit_get},
	{"info", client_info},
	{"close", client_close},
	{NULL, NULL},
};

static const luaL_Reg client_meta[] = {
	{"__gc", client_gc},
	{"__close", client_close},
	{"__tostring", client_tostring},
	{NULL, NULL},
};

static const luaL_Reg module_functions[] = {
	{"new", module_new},
	{"record_info", module_record_info},
	{"default_client", module_default_client},
	{NULL, NULL},
};

void cb_client_open(lua_State *L, int state, int module)
{
	static int fork_counted;

	if (!fork_counted)
		fork_counted = pthread_atfork(NULL, NULL, count_fork) == 0;
	luaL_newmetatable(L, CB_CLIENT_MT);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_meta, 1);
	luaL_newlibtable(L, client_methods);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_methods, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, module, "client_methods");
	lua_pushliteral(L, CB_CLIENT_MT);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
	lua_pushvalue(L, module);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, module_functions, 1);
	lua_pop(L, 1);
}
