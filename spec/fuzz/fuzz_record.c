/* libFuzzer harness: response bodies through lua-cjson and csrc/record.c, the code that reads
 * what a (possibly hostile) server sends: cb_error_fields, cb_envelope_failed, cb_record_push
 * (then tostring and the snake_case aliases of the record it made) and cb_tidy_json; and
 * cb_record_read, the direct reader, which must agree with that general path.
 *
 * The body is decoded as the module decodes it: a private `cjson.safe` instance with
 * decode_max_depth 64 and decode_invalid_numbers off (see push_decoder in core.c). A body the
 * decoder refuses is an ordinary outcome, not a finding. What is a finding:
 *   - a memory or UB error (ASan/UBSan),
 *   - a Lua error raised from inside record.c: in the module it would reach the user as a
 *     raised error ("never a Lua error thrown from C"), so the harness aborts on it,
 *   - a broken contract: a code or message with control characters or unterminated, a record
 *     field of the wrong type, a JSON null left behind by cb_tidy_json.
 * Build and run: make fuzz (spec/fuzz/README.md). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "../../csrc/record.h"

#define CODE_LEN 128
#define MESSAGE_LEN 384

static lua_State *L;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_record: %s\n", what);
	abort();
}

/* What the module copies out for messages must be printable and terminated within the buffer. */
static void check_text(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		fail("code or message not terminated within its buffer");
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			fail("control character in a code or message");
}

/* Every known field of a record has the type the reference page gives it. keys: the camelCase
 * names, by field index (from cb_record_push_tables). */
static void check_record(lua_State *S, int rec, int keys)
{
	static const char *const integers[] = {"buildNo", "usePrivateSlave"};
	size_t i;

	for (i = 0; i < 2; i++) {
		lua_getfield(S, rec, integers[i]);
		if (!lua_isnil(S, -1)) {
			lua_Number n = lua_tonumber(S, -1);
			if (lua_type(S, -1) != LUA_TNUMBER || n != floor(n) || fabs(n) > 2147483647.0)
				fail("record integer field out of contract");
#if LUA_VERSION_NUM >= 503
			if (!lua_isinteger(S, -1))
				fail("record integer field is a float");
#endif
		}
		lua_pop(S, 1);
	}
	lua_getfield(S, rec, "duration");
	if (!lua_isnil(S, -1) && (lua_type(S, -1) != LUA_TNUMBER || !isfinite(lua_tonumber(S, -1))))
		fail("record duration is not a finite number");
	lua_pop(S, 1);
	/* The other 30 known fields are strings. */
	for (i = 1; i <= CB_RECORD_FIELDS; i++) {
		const char *key;
		lua_rawgeti(S, keys, (int)i);
		lua_pushvalue(S, -1);
		lua_rawget(S, rec); /* key, value */
		key = lua_tostring(S, -2);
		if (!lua_isnil(S, -1) && lua_type(S, -1) != LUA_TSTRING && strcmp(key, "buildNo") != 0 &&
		    strcmp(key, "usePrivateSlave") != 0 && strcmp(key, "duration") != 0)
			fail("record string field is not a string");
		lua_pop(S, 2);
	}
	/* The alias must read the same value as the camelCase key. */
	lua_getfield(S, rec, "build_no");
	lua_getfield(S, rec, "buildNo");
	if (!lua_rawequal(S, -1, -2))
		fail("rec.build_no differs from rec.buildNo");
	lua_pop(S, 2);
	/* __tostring: the one-line REPL view of whatever came in. */
	luaL_tolstring(S, rec, NULL);
	lua_pop(S, 1);
}

static void check_no_null(lua_State *S, int t, int depth)
{
	if (depth > 100)
		fail("table deeper than the decoder allows");
	lua_pushnil(S);
	while (lua_next(S, t) != 0) {
		if (cb_is_json_null(S, -1))
			fail("JSON null left after cb_tidy_json");
		if (lua_type(S, -1) == LUA_TTABLE)
			check_no_null(S, lua_gettop(S), depth + 1);
		lua_pop(S, 1);
	}
}

/* The same key, value type and value in both tables, both ways (records hold only scalars). */
static int same_record(lua_State *S, int a, int b)
{
	int pass;

	for (pass = 0; pass < 2; pass++) {
		int from = pass ? b : a, to = pass ? a : b;
		lua_pushnil(S);
		while (lua_next(S, from) != 0) {
			int same;
			lua_pushvalue(S, -2);
			lua_rawget(S, to);
			same = lua_type(S, -1) == lua_type(S, -2) && lua_rawequal(S, -1, -2);
#if LUA_VERSION_NUM >= 503
			same = same && lua_isinteger(S, -1) == lua_isinteger(S, -2);
#endif
			lua_pop(S, 2);
			if (!same) {
				lua_pop(S, 1);
				return 0;
			}
		}
	}
	if (!lua_getmetatable(S, a))
		return 0;
	if (!lua_getmetatable(S, b)) {
		lua_pop(S, 1);
		return 0;
	}
	pass = lua_rawequal(S, -1, -2);
	lua_pop(S, 2);
	return pass;
}

/* cb_record_read, the direct reader, must make exactly the record the general path makes
 * from the same body, and only when the general path makes one. direct: its record or 0. */
static void check_direct(lua_State *S, int direct, int body, int names, int keys, int mt)
{
	char code[CODE_LEN], message[MESSAGE_LEN];
	int top = lua_gettop(S);

	if (!direct)
		return;
	if (lua_type(S, body) != LUA_TTABLE || cb_envelope_failed(S, body, code, sizeof code, message, sizeof message))
		fail("the direct reader made a record of a body the general path refuses");
	lua_getfield(S, body, "result");
	if (lua_type(S, -1) != LUA_TTABLE ||
	    cb_record_push(S, lua_gettop(S), names, keys, mt, message, sizeof message) != 0)
		fail("the direct reader made a record where the general path fails");
	if (!same_record(S, direct, lua_gettop(S)))
		fail("the direct reader's record differs from the general path's");
	lua_settop(S, top);
}

/* Upvalues: decode, names, keys, metatable. Argument: the body. Runs under lua_pcall. */
static int run_one(lua_State *S)
{
	char code[CODE_LEN], message[MESSAGE_LEN];
	int body, names, keys, mt, i, direct;

	for (i = 1; i <= 4; i++)
		lua_pushvalue(S, lua_upvalueindex(i));
	names = 3, keys = 4, mt = 5; /* 1: body, 2: decode */
	{
		size_t len;
		const char *text = lua_tolstring(S, 1, &len);
		direct = cb_record_read(S, text, len, keys, mt) ? lua_gettop(S) : 0;
		if (direct)
			check_record(S, direct, keys);
	}
	lua_pushvalue(S, 2);
	lua_pushvalue(S, 1);
	lua_call(S, 1, 1); /* cjson.safe: nil, message on a bad body, never raises */
	body = lua_gettop(S);
	check_direct(S, direct, body, names, keys, mt);
	if (lua_type(S, body) != LUA_TTABLE)
		return 0;

	/* A 4xx/5xx body, then a 2xx one: both read the same decoded table. */
	memset(code, 'x', sizeof code);
	memset(message, 'x', sizeof message);
	cb_error_fields(S, body, code, sizeof code, message, sizeof message);
	check_text(code, sizeof code);
	check_text(message, sizeof message);
	if (cb_envelope_failed(S, body, code, sizeof code, message, sizeof message)) {
		check_text(code, sizeof code);
		check_text(message, sizeof message);
	}
	if (lua_gettop(S) != body)
		fail("stack not balanced after the envelope checks");

	/* The record, from `result` as the module does, and from the body itself for more reach. */
	for (i = 0; i < 2; i++) {
		int src = body, top;
		char msg[MESSAGE_LEN];
		if (i == 0) {
			lua_getfield(S, body, "result");
			if (lua_type(S, -1) != LUA_TTABLE) {
				lua_pop(S, 1);
				continue;
			}
			src = lua_gettop(S);
		}
		top = lua_gettop(S);
		msg[0] = '\0';
		if (cb_record_push(S, src, names, keys, mt, msg, sizeof msg) == 0) {
			if (lua_gettop(S) != top + 1 || lua_type(S, -1) != LUA_TTABLE)
				fail("cb_record_push succeeded without pushing a table");
			check_record(S, lua_gettop(S), keys);
		} else {
			if (lua_gettop(S) != top)
				fail("cb_record_push failed but left something on the stack");
			if (msg[0] == '\0')
				fail("cb_record_push failed without a message");
			check_text(msg, sizeof msg);
		}
		lua_settop(S, body);
	}

	cb_tidy_json(S, body);
	check_no_null(S, body, 0);
	return 0;
}

static void setup(void)
{
	L = luaL_newstate();
	if (L == NULL)
		fail("cannot create a Lua state");
	luaL_openlibs(L);
	/* The same decoder settings as core.c's push_decoder. */
	if (luaL_dostring(L, "local cjson = require 'cjson.safe'.new()\n"
			     "cjson.decode_max_depth(64)\n"
			     "cjson.decode_invalid_numbers(false)\n"
			     "return cjson.decode") != 0)
		fail(lua_tostring(L, -1));
	cb_record_push_tables(L); /* names, keys, metatable */
	lua_pushcclosure(L, run_one, 4);
	lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_record.run_one");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (L == NULL)
		setup();
	lua_settop(L, 0);
	lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_record.run_one");
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != 0) {
		fprintf(stderr, "fuzz_record: Lua error escaped from record.c: %s\n", lua_tostring(L, -1));
		abort();
	}
	return 0;
}
