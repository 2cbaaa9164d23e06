/* The error shape: every failure of the module becomes `nil, message, err`, err a table of one
 * metatable (kind, message, status, code, request_id, retryable, attempts, job_id, build_no). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "codes.h"

void cb_failure_init(cb_failure *f)
{
	memset(f, 0, sizeof *f);
}

void cb_failure_set(cb_failure *f, const char *kind, const char *fmt, ...)
{
	va_list ap;

	f->kind = kind;
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof f->text, fmt, ap);
	va_end(ap);
}

void cb_failure_set_redacted(cb_failure *f, const char *kind, const char *text)
{
	const char *p = text, *scheme;
	size_t used = 0;

	f->kind = kind;
	/* Copies text, putting *** for the user name and password of every URL in it: libcurl quotes a
	 * proxy URL as it was given ("Unsupported proxy syntax in 'http://user:password@...'"). */
	while (*p && used + 1 < sizeof f->text) {
		size_t n, userinfo;
		scheme = strstr(p, "://");
		n = scheme ? (size_t)(scheme - p) + 3 : strlen(p);
		n = n < sizeof f->text - used - 1 ? n : sizeof f->text - used - 1;
		memcpy(f->text + used, p, n);
		used += n;
		p += n;
		if (!scheme)
			break;
		userinfo = strcspn(p, "@/ '\"");
		if (p[userinfo] == '@') {
			n = used + 3 < sizeof f->text ? 3 : sizeof f->text - used - 1;
			memcpy(f->text + used, "***", n);
			used += n;
			p += userinfo;
		}
	}
	f->text[used] = '\0';
}

void cb_failure_prefix(cb_failure *f, const char *fmt, ...)
{
	char text[sizeof f->text];
	size_t used, n;
	va_list ap;

	memcpy(text, f->text, sizeof text);
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof f->text, fmt, ap);
	va_end(ap);
	used = strlen(f->text);
	n = strnlen(text, sizeof f->text - used - 1);
	memcpy(f->text + used, text, n);
	f->text[used + n] = '\0';
}

int cb_failure_is_credential(const cb_failure *f)
{
	return f->status == 401 || cb_code_meaning_of(f->code) == CB_CODE_CREDENTIALS;
}

/* What a code or a status makes of a failure: the code first (the service answers a missing job
 * with 422 and a deleted build with 403, and throttles with 500), then the status. */
static const char *kind_of(const cb_failure *f, cb_code_meaning meaning, int record, const char **what)
{
	*what = NULL;
	switch (meaning) {
	case CB_CODE_JOB_MISSING:
		*what = "job";
		return "not_found";
	case CB_CODE_BUILD_MISSING:
		*what = "build";
		return "not_found";
	case CB_CODE_NO_API:
		*what = "api";
		return "not_found";
	case CB_CODE_THROTTLED:
		return "throttled";
	case CB_CODE_CREDENTIALS:
		return "auth";
	default:
		break;
	}
	switch (f->status) {
	case 401:
	case 403:
		return "auth";
	case 404:
		*what = record ? "build" : NULL;
		return "not_found";
	case 429:
		return "throttled";
	default:
		return f->status >= 200 && f->status <= 299 ? "api" : "http";
	}
}

void cb_failure_classify(cb_failure *f, const request_ctx *ctx, int api, const char *said)
{
	int record = ctx && ctx->kind == REQUEST_RECORD;
	const char *what;

	f->kind = kind_of(f, cb_code_meaning_of(f->code), record, &f->what);
	what = f->what;
	if (what && strcmp(what, "job") == 0)
		cb_failure_set(f, f->kind, record ? "job %s not found (%s)" : "no such job (%s)", record ? ctx->job_id : said,
			       said);
	else if (what && strcmp(what, "build") == 0 && record)
		cb_failure_set(f, f->kind, "build %d of job %s not found (%s)", (int)ctx->build_no, ctx->job_id, said);
	else if (what && strcmp(what, "build") == 0)
		cb_failure_set(f, f->kind, "no such build (%s)", said);
	else if (what && record)
		cb_failure_set(f, f->kind, "the %s record-info API is not published here (%s)", cb_api_name(api), said);
	else if (what)
		cb_failure_set(f, f->kind, "no such API here (%s)", said);
	else
		cb_failure_set(f, f->kind, "%s", said);
}

void cb_request_context(const request_ctx *ctx, char *out, size_t len)
{
	if (ctx == NULL)
		snprintf(out, len, "codeartsbuild");
	else if (ctx->kind == REQUEST_GET)
		snprintf(out, len, ctx->path[0] ? "GET %s" : "get", ctx->path);
	else if (ctx->kind != REQUEST_RECORD)
		snprintf(out, len, "IAM");
	else if (ctx->job_id[0] && ctx->build_no > 0)
		snprintf(out, len, "record_info %s/%d", ctx->job_id, (int)ctx->build_no);
	else
		snprintf(out, len, "record_info");
}

static void set_string(lua_State *L, int table, const char *name, const char *value)
{
	if (value[0]) {
		lua_pushstring(L, value);
		lua_setfield(L, table, name);
	}
}

int cb_push_failure_about(lua_State *L, const cb_failure *f, const char *context, const request_ctx *ctx)
{
	int err;

	lua_pushnil(L);
	lua_pushstring(L, context);
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
	set_string(L, err, "code", f->code);
	if (f->what)
		set_string(L, err, "what", f->what);
	set_string(L, err, "request_id", f->request_id);
	if (ctx && ctx->kind == REQUEST_RECORD) {
		set_string(L, err, "job_id", ctx->job_id);
		if (ctx->build_no > 0) {
			lua_pushinteger(L, ctx->build_no);
			lua_setfield(L, err, "build_no");
		}
	}
	lua_pushinteger(L, f->attempts);
	lua_setfield(L, err, "attempts");
	lua_rawgeti(L, CB_STATE, S_ERROR_MT);
	lua_setmetatable(L, err);
	return 3;
}

int cb_push_failure(lua_State *L, const cb_failure *f, const request_ctx *ctx)
{
	char context[256];

	cb_request_context(ctx, context, sizeof context);
	return cb_push_failure_about(L, f, context, ctx);
}

/***
 * @module codeartsbuild.core
 */

static int error_tostring(lua_State *L)
{
	lua_getfield(L, 1, "message");
	if (lua_type(L, -1) != LUA_TSTRING) {
		lua_pop(L, 1);
		lua_pushliteral(L, "codeartsbuild error");
	}
	return 1;
}

/***
 * An error value of this module from a table with at least `kind` and `message`: the Lua layers
 * fail in the same shape as the core.
 * @function error
 * @tparam table fields at least `kind` and `message` (strings); the table itself gets the metatable
 * @treturn table the same table, now an error: `tostring(err) == err.message`
 * @usage return nil, message, core.error{ kind = "invalid", message = message }
 */
static int module_error(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "kind");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "kind must be a string");
	lua_getfield(L, 1, "message");
	luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "message must be a string");
	lua_pop(L, 2);
	lua_pushvalue(L, 1);
	lua_rawgeti(L, CB_STATE, S_ERROR_MT);
	lua_setmetatable(L, -2);
	return 1;
}

void cb_error_open(lua_State *L, int state, int module)
{
	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "codeartsbuild.error");
	lua_setfield(L, -2, "__name");
	lua_pushcfunction(L, error_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_rawseti(L, state, S_ERROR_MT);
	lua_pushvalue(L, state);
	lua_pushcclosure(L, module_error, 1);
	lua_setfield(L, module, "error");
}
