#include "record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "compat.h"

typedef enum { FIELD_STRING, FIELD_INTEGER, FIELD_NUMBER } field_type;

typedef struct {
	const char *camel, *snake;
	field_type type;
} field;

/* The 33 fields of the reference page, with the spelling of the SDK models. */
static const field fields[CB_RECORD_FIELDS] = {
	{"id", "id", FIELD_STRING},
	{"buildProjectId", "build_project_id", FIELD_STRING},
	{"buildRecordId", "build_record_id", FIELD_STRING},
	{"parentRecordId", "parent_record_id", FIELD_STRING},
	{"devcloudProjectId", "devcloud_project_id", FIELD_STRING},
	{"codeciJobId", "codeci_job_id", FIELD_STRING},
	{"userId", "user_id", FIELD_STRING},
	{"buildNo", "build_no", FIELD_INTEGER},
	{"dailyBuildNum", "daily_build_num", FIELD_STRING},
	{"executionId", "execution_id", FIELD_STRING},
	{"repoName", "repo_name", FIELD_STRING},
	{"repoId", "repo_id", FIELD_STRING},
	{"branch", "branch", FIELD_STRING},
	{"tag", "tag", FIELD_STRING},
	{"commit", "commit", FIELD_STRING},
	{"commitMessage", "commit_message", FIELD_STRING},
	{"commitCreateTime", "commit_create_time", FIELD_STRING},
	{"triggerType", "trigger_type", FIELD_STRING},
	{"buildType", "build_type", FIELD_STRING},
	{"status", "status", FIELD_STRING},
	{"domainId", "domain_id", FIELD_STRING},
	{"createTime", "create_time", FIELD_STRING},
	{"scheduleTime", "schedule_time", FIELD_STRING},
	{"queuedTime", "queued_time", FIELD_STRING},
	{"startTime", "start_time", FIELD_STRING},
	{"runnableTime", "runnable_time", FIELD_STRING},
	{"finishTime", "finish_time", FIELD_STRING},
	{"duration", "duration", FIELD_NUMBER},
	{"recordStatus", "record_status", FIELD_STRING},
	{"usePrivateSlave", "use_private_slave", FIELD_INTEGER},
	{"region", "region", FIELD_STRING},
	{"errMsg", "err_msg", FIELD_STRING},
	{"buildConfigType", "build_config_type", FIELD_STRING},
};

#define MAX_INT32 2147483647.0

int cb_is_json_null(lua_State *L, int idx)
{
	return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* rec.build_no reads rec.buildNo: the snake_case spellings are aliases, never stored. */
static int record_index(lua_State *L)
{
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(1));
	if (lua_isnil(L, -1))
		return 1;
	lua_rawget(L, 1);
	return 1;
}

static const char *string_field(lua_State *L, const char *key, size_t *len)
{
	const char *s;

	lua_getfield(L, 1, key);
	s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
	lua_pop(L, 1);
	return s;
}

static void add_duration(luaL_Buffer *b, lua_State *L)
{
	char text[32];
	double ms;

	lua_getfield(L, 1, "duration");
	ms = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
	lua_pop(L, 1);
	/* Whole parts as doubles: a huge duration must not overflow an int cast. */
	if (!(ms >= 0) || !isfinite(ms))
		snprintf(text, sizeof text, "-");
	else if (ms < 60000)
		snprintf(text, sizeof text, "%.1fs", ms / 1000);
	else if (ms < 3600000)
		snprintf(text, sizeof text, "%.0fm%02.0fs", floor(ms / 60000), floor(fmod(ms / 1000, 60)));
	else if (ms < 1e15)
		snprintf(text, sizeof text, "%.0fh%02.0fm", floor(ms / 3600000), floor(fmod(ms / 60000, 60)));
	else
		snprintf(text, sizeof text, ">1e15ms");
	luaL_addstring(b, text);
}

static void add_word(luaL_Buffer *b, const char *s, size_t len, size_t max)
{
	luaL_addchar(b, ' ');
	if (s == NULL || len == 0)
		luaL_addchar(b, '-');
	else
		luaL_addlstring(b, s, len < max ? len : max);
}

/* One line for the REPL: #61 SUCCESS master c2be53c MANUAL 52.3s 2022-09-09 06:31 */
static int record_tostring(lua_State *L)
{
	luaL_Buffer b;
	const char *s;
	size_t len = 0;

	luaL_buffinit(L, &b);
	lua_getfield(L, 1, "buildNo");
	/* Users may change a record: only a 32-bit integer is printed as a build number. */
	if (lua_type(L, -1) == LUA_TNUMBER && fabs((double)lua_tonumber(L, -1)) <= MAX_INT32)
		lua_pushfstring(L, "#%d", (int)lua_tonumber(L, -1));
	else
		lua_pushliteral(L, "#?");
	lua_remove(L, -2);
	luaL_addvalue(&b);
	s = string_field(L, "status", &len);
	add_word(&b, s, len, 24);
	s = string_field(L, "branch", &len);
	if (s == NULL)
		s = string_field(L, "tag", &len);
	add_word(&b, s, len, 40);
	s = string_field(L, "commit", &len);
	add_word(&b, s, len, 7);
	s = string_field(L, "triggerType", &len);
	add_word(&b, s, len, 24);
	luaL_addchar(&b, ' ');
	add_duration(&b, L);
	s = string_field(L, "startTime", &len);
	if (s && len >= 16) {
		luaL_addchar(&b, ' ');
		luaL_addlstring(&b, s, 10);
		luaL_addchar(&b, ' ');
		luaL_addlstring(&b, s + 11, 5);
	} else {
		add_word(&b, NULL, 0, 0);
	}
	luaL_pushresult(&b);
	return 1;
}

void cb_record_push_tables(lua_State *L)
{
	int i;

	lua_createtable(L, 0, 2 * CB_RECORD_FIELDS); /* names */
	lua_createtable(L, CB_RECORD_FIELDS, 0);     /* camel keys */
	lua_createtable(L, 0, 4);                    /* metatable */
	lua_createtable(L, 0, CB_RECORD_FIELDS);     /* snake -> camel, for __index */
	for (i = 0; i < CB_RECORD_FIELDS; i++) {
		lua_pushstring(L, fields[i].camel);
		lua_pushinteger(L, i + 1);
		lua_rawset(L, -6);
		lua_pushstring(L, fields[i].snake);
		lua_pushinteger(L, i + 1);
		lua_rawset(L, -6);
		lua_pushstring(L, fields[i].camel);
		lua_rawseti(L, -4, i + 1);
		if (strcmp(fields[i].camel, fields[i].snake) != 0) {
			lua_pushstring(L, fields[i].snake);
			lua_pushstring(L, fields[i].camel);
			lua_rawset(L, -3);
		}
	}
	lua_pushcclosure(L, record_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, record_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "codeartsbuild.record");
	lua_setfield(L, -2, "__name");
}

/* Formats an integral number without a fraction, anything else with %.17g. */
static void push_number_as_string(lua_State *L, lua_Number n)
{
	char text[64];

	if (n == floor(n) && fabs(n) < 1e15)
		snprintf(text, sizeof text, "%.0f", (double)n);
	else
		snprintf(text, sizeof text, "%.17g", (double)n);
	lua_pushstring(L, text);
}

static int parse_integer_string(const char *s, lua_Number *out)
{
	char *end;
	double d = strtod(s, &end);

	if (end == s || *end != '\0')
		return -1;
	*out = d;
	return 0;
}

/* Pushes the value at idx converted to the field's type; -1 (nothing pushed) if it cannot be. */
static int push_field_value(lua_State *L, int idx, const field *f, char *msg, size_t msglen)
{
	int type = lua_type(L, idx);
	lua_Number n;

	if (f->type == FIELD_STRING) {
		if (type == LUA_TSTRING) {
			lua_pushvalue(L, idx);
			return 0;
		}
		if (type == LUA_TNUMBER) {
			push_number_as_string(L, lua_tonumber(L, idx));
			return 0;
		}
		snprintf(msg, msglen, "field %s is a %s, not a string", f->camel, lua_typename(L, type));
		return -1;
	}
	if (type == LUA_TNUMBER)
		n = lua_tonumber(L, idx);
	else if (type != LUA_TSTRING || parse_integer_string(lua_tostring(L, idx), &n) != 0) {
		snprintf(msg, msglen, "field %s is a %s, not a number", f->camel, lua_typename(L, type));
		return -1;
	}
	if (!isfinite(n)) {
		snprintf(msg, msglen, "field %s is not a finite number", f->camel);
		return -1;
	}
	if (f->type == FIELD_NUMBER) {
		lua_pushnumber(L, n);
		return 0;
	}
	if (n != floor(n) || fabs(n) > MAX_INT32) {
		snprintf(msg, msglen, "field %s is not a 32-bit integer", f->camel);
		return -1;
	}
	lua_pushinteger(L, (lua_Integer)n);
	return 0;
}

int cb_record_push(lua_State *L, int idx, int names_idx, int keys_idx, int mt_idx, char *msg, size_t msglen)
{
	int record;

	lua_createtable(L, 0, CB_RECORD_FIELDS + 2);
	record = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) { /* key at -2, value at -1 */
		int value = lua_gettop(L), index = 0;

		if (cb_is_json_null(L, value)) {
			lua_pop(L, 1);
			continue;
		}
		if (lua_type(L, -2) == LUA_TSTRING) {
			lua_pushvalue(L, -2);
			lua_rawget(L, names_idx);
			index = (int)lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
		if (index == 0) { /* a field we do not know: kept as it came */
			if (lua_type(L, value) == LUA_TTABLE)
				cb_tidy_json(L, value);
			lua_pushvalue(L, -2);
			lua_pushvalue(L, value);
			lua_rawset(L, record);
		} else {
			lua_rawgeti(L, keys_idx, index);
			lua_pushvalue(L, -1);
			lua_rawget(L, record);
			/* Both spellings present: the camelCase one wins, whichever came first. */
			if (lua_isnil(L, -1) || lua_rawequal(L, -4, -2)) {
				lua_pop(L, 1);
				if (push_field_value(L, value, &fields[index - 1], msg, msglen) != 0) {
					lua_settop(L, record - 1);
					return -1;
				}
				lua_rawset(L, record);
			} else {
				lua_pop(L, 2);
			}
		}
		lua_settop(L, value - 1);
	}
	lua_pushvalue(L, mt_idx);
	lua_setmetatable(L, record);
	return 0;
}

/* Integral floats within the exact range of a double become integers (lua-cjson 2.1 decodes
 * every number as a float). */
static void push_tidy_number(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 503
	lua_Number n = lua_tonumber(L, idx);
	if (!lua_isinteger(L, idx) && n == floor(n) && fabs(n) <= 9007199254740992.0) {
		lua_pushinteger(L, (lua_Integer)n);
		return;
	}
#endif
	lua_pushvalue(L, idx);
}

void cb_tidy_json(lua_State *L, int idx)
{
	if (idx < 0)
		idx = lua_gettop(L) + idx + 1;
	luaL_checkstack(L, 4, "JSON nested too deeply");
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		int type = lua_type(L, -1);
		if (cb_is_json_null(L, -1)) {
			lua_pop(L, 1);
			lua_pushvalue(L, -1);
			lua_pushnil(L);
			lua_rawset(L, idx); /* clearing a present field during traversal is allowed */
		} else if (type == LUA_TNUMBER) {
			push_tidy_number(L, -1);
			lua_replace(L, -2);
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, idx); /* assigning a present field during traversal is allowed */
		} else {
			if (type == LUA_TTABLE)
				cb_tidy_json(L, lua_gettop(L));
			lua_pop(L, 1);
		}
	}
}

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
	static const char *const message_keys[] = {"error_msg", "errorMsg", "error_message", "message", "err_msg", NULL};

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
	if (failed)
		cb_error_fields(L, idx, code, codelen, message, msglen);
	return failed;
}
