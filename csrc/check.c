/* What a caller gives, checked before anything is sent: job ids, build numbers, paths and
 * queries. A wrong type raises (a mistake in the calling code); a bad value is `invalid`. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define MAX_PATH_LEN 2048

/***
 * @module codeartsbuild.core
 */

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

/* Whether a path segment is "." or "..", spelt plainly or with %2e: a server decodes it before it
 * resolves dot segments, while the signature covers the encoded form. */
static int is_dot_segment(const char *s, size_t n)
{
	size_t dots = 0, i = 0;

	while (i < n) {
		if (s[i] == '.') {
			i++;
		} else if (i + 2 < n && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
			i += 3;
		} else {
			return 0;
		}
		dots++;
	}
	return dots == 1 || dots == 2;
}

/* A path for get(): absolute, printable, no query, fragment or dot segments (encoded ones included). */
static int check_path(lua_State *L, int arg, request_ctx *ctx, cb_failure *f)
{
	size_t len, i, start;
	const char *s;
	int dot = 0;

	if (lua_type(L, arg) != LUA_TSTRING)
		return luaL_typeerror(L, arg, "string");
	s = lua_tolstring(L, arg, &len);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 32 || c >= 127 || c == '?' || c == '#')
			break;
	}
	for (start = 1; i == len && start <= len && !dot; start += strcspn(s + start, "/") + 1)
		dot = is_dot_segment(s + start, strcspn(s + start, "/"));
	if (len == 0 || len > MAX_PATH_LEN || s[0] != '/' || i != len || dot) {
		cb_failure_set(f, "invalid",
			       "invalid path: expected an absolute path of printable characters without a query, "
			       "fragment or dot segments");
		return -1;
	}
	snprintf(ctx->path, sizeof ctx->path, "%s", s);
	return 0;
}

size_t cb_check_query(lua_State *L, int arg, cb_kv *kv)
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

size_t cb_check_get(lua_State *L, int path_arg, request_ctx *ctx, cb_kv *query, cb_failure *f)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->kind = REQUEST_GET;
	if (check_path(L, path_arg, ctx, f) != 0)
		return (size_t)-1;
	return cb_check_query(L, path_arg + 1, query);
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
 * @usage assert(core.check_job_id(job, "myscript"))
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

void cb_check_open(lua_State *L, int state, int module)
{
	static const luaL_Reg functions[] = {
		{"check_job_id", module_check_job_id},
		{"check_build_no", module_check_build_no},
		{NULL, NULL},
	};

	lua_pushvalue(L, module);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, functions, 1);
	lua_pop(L, 1);
}
