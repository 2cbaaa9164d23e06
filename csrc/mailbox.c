/* The one mailbox: a client's methods on requests. Every request waits in the client's engine
 * until its owner takes it (poll() the ones nobody holds, take(id) any one), and every wait sleeps
 * in the engine until a request finishes: it never spins on results that wait for others. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

static void deliver(cb_client *c, cb_transfer *t)
{
	cb_iam_answered(c, t);
	cb_engine_deliver(c->engine, t);
}

/* A stream that goes alone to try the credentials (iam.c's probe) says they work as soon as its
 * file begins to flow, long before its last byte: the requests the gate holds back need not wait
 * for its owner to read it all (the owner may want them first: it would wait for ever). */
static void stream_answered(cb_client *c)
{
	cb_transfer *t = c->credentials.probe_id ? cb_engine_find(c->engine, c->credentials.probe_id) : NULL;

	if (t && (t->flags & CB_STREAM) && t->state == CB_IN_FLIGHT && t->stream_mode == CB_STREAM_FLOWING)
		cb_iam_answered(c, t);
}

/* Settles every finished transfer: IAM, another attempt, or the mailbox. */
static void settle(lua_State *L, cb_client *c)
{
	cb_transfer *t;

	stream_answered(c);
	while ((t = cb_engine_next_finished(c->engine)) != NULL) {
		const request_ctx *ctx = t->user;
		if (ctx->kind == REQUEST_IAM_TOKEN || ctx->kind == REQUEST_IAM_PROJECTS)
			cb_iam_settle(L, c, t);
		else if (!cb_request_settle_failure(L, t) ||
			 (!cb_request_resend_on_next_api(c, t) && !cb_iam_refused(L, c, t)))
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

		settle(L, c);
		*why = c->closed ? WAIT_CLOSED : WAIT_DONE;
		if (c->closed)
			return NULL;
		if ((t = cb_engine_take(c->engine, id)) != NULL)
			return t;
		t = cb_engine_find(c->engine, id);
		if (t && (t->flags & CB_STREAM) && t->stream.len > 0)
			cb_engine_stream_consumed(t); /* take() on a stream drops what its owner has not read */
		*why = t == NULL ? WAIT_GONE : ran && !cb_engine_can_progress(c->engine) ? WAIT_STALLED : WAIT_TIMEOUT;
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
	return cb_client_raise(L, c, lua_tostring(L, -1));
}

/* Pushes {id =, job_id =, build_no =, record = | message =, err =} (or path = and body =, or for a
 * stream path = and bytes =) for a done transfer, and frees it. */
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
		lua_setfield(L, entry, ctx->kind == REQUEST_RECORD ? "record" : lua_type(L, -1) == LUA_TNUMBER ? "bytes" : "body");
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

/* The longest `after` (a day, in milliseconds). */
#define MAX_AFTER_MS 86400000.0

/* submit's and submit_get's options: { hold = true } keeps the request out of poll(); { stream =
 * true } (submit_get only) streams the body to read(), and holds the request; { after = ms }
 * starts it no earlier than that. */
static int submit_flags(lua_State *L, int arg, int may_stream, long *after_ms)
{
	int flags = 0, stream = 0;

	*after_ms = 0;
	if (lua_isnoneornil(L, arg))
		return 0;
	luaL_checktype(L, arg, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, arg) != 0) {
		const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
		if (strcmp(name, "after") == 0) {
			lua_Number ms = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
			if (!(ms >= 0 && ms <= MAX_AFTER_MS))
				luaL_error(L, "submit option 'after' must be a number of milliseconds from 0 to %d",
					   (int)MAX_AFTER_MS);
			*after_ms = (long)ceil(ms);
		} else if (strcmp(name, "hold") == 0 || (may_stream && strcmp(name, "stream") == 0)) {
			if (lua_type(L, -1) != LUA_TBOOLEAN)
				luaL_error(L, "submit option '%s' must be a boolean", name);
			if (name[0] == 'h')
				flags = lua_toboolean(L, -1) ? CB_HELD : 0;
			else
				stream = lua_toboolean(L, -1);
		} else {
			luaL_error(L, "unknown submit option %s", name);
		}
		lua_pop(L, 1);
	}
	return stream ? CB_STREAM | CB_HELD : flags;
}

/* Submits the request ctx describes (a record, or a GET of path?query), if the credentials allow
 * it now. Returns the transfer, or NULL with f. */
static cb_transfer *submit(lua_State *L, cb_client *c, request_ctx *ctx, const char *path, const cb_kv *query,
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
	nquery = cb_check_get(L, 2, ctx, query, f);
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
 * @module codeartsbuild.core
 */

/***
 * One record, on a client made from the environment on first use (`default_client()`).
 * @usage print(assert(cb.record_info("cb5fa20de5fd4cf8be681d4bd6fdd2f6", 61)))
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
	c = cb_client_default(L, &pushed);
	if (c == NULL)
		return pushed;
	lua_insert(L, 1); /* the client as argument 1, for enter() */
	lua_settop(L, 3);
	c = cb_client_enter(L);
	return cb_client_leave(L, c, record_info_with(L, c, 2));
}

/***
 * Seconds on a monotonic clock, with a fraction: for deadlines and elapsed times (`os.clock`
 * counts CPU time, `os.time` whole seconds of a clock that may jump). The engine's waits use the
 * same clock; `client:wait` measures its `timeout` with it.
 * @usage local started = cb.monotonic(); ...; print(cb.monotonic() - started)
 * @function monotonic
 * @treturn number seconds
 */
static int module_monotonic(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)cb_now_ns() / 1e9);
	return 1;
}

/***
 * @type client
 */

/***
 * One record, blocking until it has an answer (retries included); the engine sleeps meanwhile,
 * however many other results wait for their owners.
 * @function client:record_info
 * @tparam string job_id 32 letters or digits
 * @tparam integer|string build_no 1 to 2147483647 (`61`, `61.0`, `"61"`)
 * @usage local rec, message, err = client:record_info(job, 61)
 * if rec then print(rec.status, rec.duration) else print(err.kind, message) end
 * @treturn[1] table the record
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int client_record_info(lua_State *L)
{
	cb_client *c = cb_client_enter(L);
	return cb_client_leave(L, c, record_info_with(L, c, 2));
}

/***
 * Starts a record request and returns its id at once. With `{hold = true}` the request is held:
 * `poll` never returns it, and its owner collects it with `take(id)`. With `{after = ms}` it
 * starts no earlier than `ms` milliseconds from now (a poll interval that sleeps in the engine,
 * where waits sleep: nothing spins, and a held request's owner may take it with a timeout).
 * @function client:submit
 * @tparam string job_id
 * @tparam integer|string build_no
 * @tparam[opt] table options `{hold = true, after = ms}`
 * @treturn[1] integer the request id
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err, for bad input (or while the client cools down after refused credentials)
 * @usage for n = 55, 60 do assert(client:submit(job, n)) end
 * local id = assert(client:submit(job, 61, { hold = true }))  -- mine: take it, poll never will
 */
static int client_submit(lua_State *L)
{
	long after_ms;
	int flags = submit_flags(L, 4, 0, &after_ms);
	cb_client *c = cb_client_enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;

	if ((t = submit_record(L, c, 2, flags, &ctx, &f)) == NULL)
		return cb_client_leave(L, c, cb_push_failure(L, &f, &ctx));
	cb_engine_defer(c->engine, t, after_ms);
	lua_pushinteger(L, (lua_Integer)t->id);
	return cb_client_leave(L, c, 1);
}

/***
 * The requests that are done and not held, each `{id, job_id, build_no, record}` or
 * `{id, job_id, build_no, message, err}` (`{id, path, body}` for `submit_get`). Waits at most
 * `timeout_ms` for one (0: never waits; left out: until one is done or none is pending).
 * @function client:poll
 * @tparam[opt] number timeout_ms
 * @treturn table a list, maybe empty
 * @usage while client:pending() > 0 do
 *   for _, r in ipairs(client:poll(1000)) do print(r.build_no, r.record or r.message) end
 * end
 */
static int client_poll(lua_State *L)
{
	long long deadline = deadline_arg(L, 2);
	cb_client *c = cb_client_enter(L);
	char err[256];
	cb_transfer *t;
	int list, ran = 0;

	lua_newtable(L);
	list = lua_gettop(L);
	for (;;) {
		long timeout_ms;
		settle(L, c);
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
	return cb_client_leave(L, c, 1);
}

/***
 * Takes request `id` out of the mailbox once it is done: the same entry `poll` would give. Waits at
 * most `timeout_ms` (0: never waits; left out: until it is done). Raises for an id this client
 * never issued, or one that was already taken, polled or cancelled. On a streamed request
 * (`read`), what its owner has not read is dropped.
 * @function client:take
 * @tparam integer id
 * @tparam[opt] number timeout_ms
 * @treturn table|nil the entry, or nil when it is not done yet
 * @usage local id = assert(client:submit(job, 61, { hold = true }))
 * local entry = client:take(id)         -- waits; client:take(id, 0) would not
 * print(entry.record or entry.message)
 */
static int client_take(lua_State *L)
{
	long long id = id_arg(L, 2), deadline = deadline_arg(L, 3);
	cb_client *c = cb_client_enter(L);
	char err[256];
	int why;
	cb_transfer *t;

	if (id < 1 || id > cb_engine_last_id(c->engine)) {
		lua_pushfstring(L, "codeartsbuild: take: request %f was never issued by this client", (double)id);
		return cb_client_raise(L, c, lua_tostring(L, -1));
	}
	t = wait_for(L, c, id, deadline, &why, err, sizeof err);
	if (t != NULL)
		push_entry(L, c, t);
	else if (why == WAIT_TIMEOUT)
		lua_pushnil(L);
	else
		return wait_failed(L, c, "take", id, why, err);
	return cb_client_leave(L, c, 1);
}

/***
 * Reads a streamed request (`submit_get(path, query, {stream = true})`): the next piece of its
 * body, a non-empty string of at most 64 KiB, as soon as there is one; then, once every byte has
 * been read and the request is done, its entry, as `take` gives it: `{id, path, bytes}` (the
 * body's size) or `{id, path, message, err}` (a failure after some pieces means the body was cut
 * short), or `{id, path, body}` when the server answered JSON. Until the owner reads, the transfer
 * is paused: a stream never holds more than a piece in memory. A failed attempt is tried again as
 * any request is (the engine's rule), and the new attempt skips the bytes already read: no byte is
 * given twice, none is lost, as long as the server sends the same file again. Waits at most
 * `timeout_ms` (0: never waits; left out: until there is something) and returns nil when that
 * passed. On a request that does not stream it is `take`; `take` on a stream drops what was not
 * read. Raises as `take` does.
 * @function client:read
 * @tparam integer id
 * @tparam[opt] number timeout_ms
 * @treturn string|table|nil a piece of the body, or the entry, or nil when the time ran out
 * @usage local id = assert(client:submit_get("/v1/log/" .. record_id .. "/download-log", nil, { stream = true }))
 * for piece in function() local p = client:read(id); if type(p) == "string" then return p end end do
 *   io.write(piece)
 * end
 */
static int client_read(lua_State *L)
{
	long long id = id_arg(L, 2), deadline = deadline_arg(L, 3);
	cb_client *c = cb_client_enter(L);
	char err[256];
	int ran = 0;

	if (id < 1 || id > cb_engine_last_id(c->engine)) {
		lua_pushfstring(L, "codeartsbuild: read: request %f was never issued by this client", (double)id);
		return cb_client_raise(L, c, lua_tostring(L, -1));
	}
	for (;;) {
		cb_transfer *t;
		long timeout_ms;

		settle(L, c);
		if (c->closed)
			return wait_failed(L, c, "read", id, WAIT_CLOSED, err);
		if ((t = cb_engine_find(c->engine, id)) == NULL)
			return wait_failed(L, c, "read", id, WAIT_GONE, err);
		if (t->stream.len > 0) {
			lua_pushlstring(L, t->stream.data, t->stream.len);
			cb_engine_stream_consumed(t);
			return cb_client_leave(L, c, 1);
		}
		if (t->state == CB_DONE) {
			push_entry(L, c, cb_engine_take(c->engine, id));
			return cb_client_leave(L, c, 1);
		}
		if (ran && !cb_engine_can_progress(c->engine))
			return wait_failed(L, c, "read", id, WAIT_STALLED, err);
		timeout_ms = deadline < 0 ? -1 : ms_until(deadline);
		if (ran && timeout_ms == 0) {
			lua_pushnil(L);
			return cb_client_leave(L, c, 1);
		}
		if (cb_engine_run(c->engine, timeout_ms, err, sizeof err) < 0)
			return wait_failed(L, c, "read", id, WAIT_FAILED, err);
		ran = 1;
	}
}

/***
 * Forgets a request (queued, in flight, or done and not yet taken).
 * @function client:cancel
 * @tparam integer id
 * @treturn boolean true if it was pending
 * @usage local id = assert(client:submit(job, 61)); client:cancel(id)
 */
static int client_cancel(lua_State *L)
{
	long long id = id_arg(L, 2);
	cb_client *c = cb_client_enter(L);

	int cancelled = !cb_iam_owns(c, id) && cb_engine_cancel(c->engine, id);

	if (cancelled)
		cb_iam_cancelled(c, id);
	lua_pushboolean(L, cancelled);
	return cb_client_leave(L, c, 1);
}

/***
 * How many requests the engine still owns: by default those `poll` has not returned yet (not
 * held); `"held"` counts the held ones (walks', `take`'s), `"all"` both.
 * @function client:pending
 * @tparam[opt] string which `"held"` or `"all"`
 * @treturn integer
 * @usage assert(client:pending("all") == 0, "a walk left requests behind")
 */
static int client_pending(lua_State *L)
{
	static const char *const which_names[] = {"free", "held", "all", NULL};
	int which = luaL_checkoption(L, 2, "free", which_names);
	cb_client *c = cb_client_enter(L);
	size_t n = which == 0 ? cb_engine_count(c->engine, 0) : which == 1 ? cb_engine_count(c->engine, 1) :
		cb_engine_count(c->engine, 0) + cb_engine_count(c->engine, 1);

	lua_pushinteger(L, (lua_Integer)n);
	return cb_client_leave(L, c, 1);
}

/***
 * `get` without waiting: the request id at once; `poll` (or `take`) gives `{id, path, body}` or
 * `{id, path, message, err}`. Options as `submit` takes (`hold`, `after`), and `stream = true`:
 * the request is held, and the body of a successful answer that is not JSON (a log file) goes to
 * its owner a piece at a time through `read(id)`, without `max_body`, decompressed when the
 * server compressed it, with `timeout` as the time allowed without a byte. An answer in JSON (an
 * error, or a file route that failed) is read and decoded as `get` does.
 * @function client:submit_get
 * @tparam string path
 * @tparam[opt] table query
 * @tparam[opt] table options `{hold = true, after = ms, stream = true}`
 * @treturn[1] integer the request id
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 * @usage local id = assert(client:submit_get("/v1/job/" .. job .. "/running-status"))
 */
static int client_submit_get(lua_State *L)
{
	long after_ms;
	int flags = submit_flags(L, 4, 1, &after_ms);
	cb_client *c = cb_client_enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;

	if ((t = submit_get(L, c, flags, &ctx, &f)) == NULL)
		return cb_client_leave(L, c, cb_push_failure(L, &f, &ctx));
	cb_engine_defer(c->engine, t, after_ms);
	lua_pushinteger(L, (lua_Integer)t->id);
	return cb_client_leave(L, c, 1);
}

/***
 * Any signed GET on the client's endpoint, decoded (JSON nulls left out, integral numbers as
 * integers on 5.3+); blocks until it has an answer.
 * @function client:get
 * @tparam string path an absolute path, printable, without `?`, `#` or dot segments
 * @tparam[opt] table query a map, or a list of `{key, value}`
 * @treturn[1] table the decoded body
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 * @usage local status = assert(client:get("/v1/job/" .. job .. "/running-status"))
 * print(status.result.last_build_no)
 */
static int client_get(lua_State *L)
{
	cb_client *c = cb_client_enter(L);
	request_ctx ctx;
	cb_failure f;
	cb_transfer *t;
	char err[256];
	int why, n;

	if ((t = submit_get(L, c, CB_HELD, &ctx, &f)) == NULL)
		return cb_client_leave(L, c, cb_push_failure(L, &f, &ctx));
	t = wait_for(L, c, t->id, -1, &why, err, sizeof err);
	if (t == NULL && why == WAIT_FAILED) {
		cb_failure_set(&f, "network", "%s", err);
		return cb_client_leave(L, c, cb_push_failure(L, &f, &ctx));
	}
	if (t == NULL)
		return wait_failed(L, c, "get", 0, why, err);
	n = cb_request_deliver(L, c, t);
	cb_transfer_free(t);
	return cb_client_leave(L, c, n);
}

static const luaL_Reg mailbox_methods[] = {
	{"record_info", client_record_info},
	{"submit", client_submit},
	{"poll", client_poll},
	{"take", client_take},
	{"read", client_read},
	{"pending", client_pending},
	{"cancel", client_cancel},
	{"get", client_get},
	{"submit_get", client_submit_get},
	{NULL, NULL},
};

void cb_mailbox_open(lua_State *L, int state, int module)
{
	lua_getfield(L, module, "client_methods");
	lua_pushvalue(L, state);
	luaL_setfuncs(L, mailbox_methods, 1);
	lua_pop(L, 1);
	lua_pushvalue(L, state);
	lua_pushcclosure(L, module_record_info, 1);
	lua_setfield(L, module, "record_info");
	lua_pushcfunction(L, module_monotonic);
	lua_setfield(L, module, "monotonic");
}
