/* What a decoded response body says beyond its payload: success or failure, and the service's
 * code and message, in every shape the service and its gateway use. */
#include "record.h"

#include <string.h>

#include "compat.h"

/* Copies a printable version of the string or number at the top of the stack, then pops it. */
static int take_text(lua_State *L, char *out, size_t outlen)
{
	size_t len = 0, i, j = 0;
	const char *s;
	int type = lua_type(L, -1);

	if (type != LUA_TSTRING && type != LUA_TNUMBER) {
		lua_pop(L, 1);
		return 0;
	}
	s = lua_tolstring(L, -1, &len);
	for (i = 0; i < len && j + 1 < outlen; i++)
		out[j++] = (unsigned char)s[i] < 32 || s[i] == 127 ? ' ' : s[i];
	out[j] = '\0';
	lua_pop(L, 1);
	return j > 0;
}

/* The first non-empty string among keys of the table at idx (and its nested `error` table). */
static void first_text(lua_State *L, int idx, const char *const *keys, char *out, size_t outlen)
{
	int i, nested;

	out[0] = '\0';
	for (nested = 0; nested < 2; nested++) {
		int t = idx;
		if (nested) {
			lua_pushliteral(L, "error");
			lua_rawget(L, idx);
			if (lua_type(L, -1) != LUA_TTABLE) {
				lua_pop(L, 1);
				return;
			}
			t = lua_gettop(L);
		}
		for (i = 0; keys[i]; i++) {
			lua_pushstring(L, keys[i]);
			lua_rawget(L, t);
			if (take_text(L, out, outlen))
				break;
		}
		if (nested)
			lua_pop(L, 1);
		if (out[0])
			return;
	}
}

void cb_error_fields(lua_State *L, int idx, char *code, size_t codelen, char *message, size_t msglen)
{
	static const char *const code_keys[] = {"error_code", "errorCode", "err_code", "code", NULL};
	/* "reason": the LIVE client reads error{code, reason}; "error": family A's error may be a plain
	 * string (SERVICE-CONTRACTS §1.2), taken as the message (a table there is searched instead). */
	static const char *const message_keys[] = {"error_msg", "errorMsg", "error_message", "message", "err_msg",
						   "reason", "error", NULL};

	code[0] = message[0] = '\0';
	if (lua_type(L, idx) != LUA_TTABLE)
		return;
	first_text(L, idx, code_keys, code, codelen);
	first_text(L, idx, message_keys, message, msglen);
}

int cb_envelope_failed(lua_State *L, int idx, char *code, size_t codelen, char *message, size_t msglen)
{
	int failed;

	lua_pushliteral(L, "success");
	lua_rawget(L, idx);
	failed = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_pushliteral(L, "status");
	lua_rawget(L, idx);
	if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "fail") == 0)
		failed = 1;
	lua_pop(L, 1);
	/* A top-level error_code on a 200: Huawei's Terraform provider checks for it (§8.1 E5). */
	lua_pushliteral(L, "error_code");
	lua_rawget(L, idx);
	if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0)
		failed = 1;
	lua_pop(L, 1);
	if (failed)
		cb_error_fields(L, idx, code, codelen, message, msglen);
	return failed;
}

