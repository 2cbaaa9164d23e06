/* Records: the 33 fields, their metatable and one-line form, and a decoded `result` made into a
 * record (canonical camelCase keys, integers, no JSON nulls). reader.c reads the common case
 * straight from the body; envelope.c says what an envelope reports. */
#include "record.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "compat.h"

#define FIELD(camel, snake, type) {camel, snake, type, sizeof camel - 1, sizeof snake - 1}

/* The 33 fields of the reference page, with the spelling of the SDK models. */
const cb_field cb_record_fields[CB_RECORD_FIELDS] = {
	FIELD("id", "id", FIELD_STRING),
	FIELD("buildProjectId", "build_project_id", FIELD_STRING),
	FIELD("buildRecordId", "build_record_id", FIELD_STRING),
	FIELD("parentRecordId", "parent_record_id", FIELD_STRING),
	FIELD("devcloudProjectId", "devcloud_project_id", FIELD_STRING),
	FIELD("codeciJobId", "codeci_job_id", FIELD_STRING),
	FIELD("userId", "user_id", FIELD_STRING),
	FIELD("buildNo", "build_no", FIELD_INTEGER),
	FIELD("dailyBuildNum", "daily_build_num", FIELD_STRING),
	FIELD("executionId", "execution_id", FIELD_STRING),
	FIELD("repoName", "repo_name", FIELD_STRING),
	FIELD("repoId", "repo_id", FIELD_STRING),
	FIELD("branch", "branch", FIELD_STRING),
	FIELD("tag", "tag", FIELD_STRING),
	FIELD("commit", "commit", FIELD_STRING),
	FIELD("commitMessage", "commit_message", FIELD_STRING),
	FIELD("commitCreateTime", "commit_create_time", FIELD_STRING),
	FIELD("triggerType", "trigger_type", FIELD_STRING),
	FIELD("buildType", "build_type", FIELD_STRING),
	FIELD("status", "status", FIELD_STRING),
	FIELD("domainId", "domain_id", FIELD_STRING),
	FIELD("createTime", "create_time", FIELD_STRING),
	FIELD("scheduleTime", "schedule_time", FIELD_STRING),
	FIELD("queuedTime", "queued_time", FIELD_STRING),
	FIELD("startTime", "start_time", FIELD_STRING),
	FIELD("runnableTime", "runnable_time", FIELD_STRING),
	FIELD("finishTime", "finish_time", FIELD_STRING),
	FIELD("duration", "duration", FIELD_NUMBER),
	FIELD("recordStatus", "record_status", FIELD_STRING),
	FIELD("usePrivateSlave", "use_private_slave", FIELD_INTEGER),
	FIELD("region", "region", FIELD_STRING),
	FIELD("errMsg", "err_msg", FIELD_STRING),
	FIELD("buildConfigType", "build_config_type", FIELD_STRING),
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

void cb_format_duration(double ms, char *out, size_t len)
{
	/* Whole parts as doubles: a huge duration must not overflow an int cast. */
	if (!(ms >= 0) || !isfinite(ms))
		snprintf(out, len, "-");
	else if (ms < 60000)
		snprintf(out, len, "%.1fs", ms / 1000);
	else if (ms < 3600000)
		snprintf(out, len, "%.0fm%02.0fs", floor(ms / 60000), floor(fmod(ms / 1000, 60)));
	else if (ms < 1e15)
		snprintf(out, len, "%.0fh%02.0fm", floor(ms / 3600000), floor(fmod(ms / 60000, 60)));
	else
		snprintf(out, len, ">1e15ms");
}

static void add_duration(luaL_Buffer *b, lua_State *L)
{
	char text[32];

	lua_getfield(L, 1, "duration");
	cb_format_duration(lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1, text, sizeof text);
	lua_pop(L, 1);
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

void cb_record_push_fields(lua_State *L)
{
	int i;

	lua_createtable(L, CB_RECORD_FIELDS, 0);
	for (i = 0; i < CB_RECORD_FIELDS; i++) {
		lua_pushlstring(L, cb_record_fields[i].camel, cb_record_fields[i].camel_len);
		lua_rawseti(L, -2, i + 1);
	}
}

void cb_record_push_tables(lua_State *L)
{
	int i;

	lua_createtable(L, 0, 2 * CB_RECORD_FIELDS); /* names */
	lua_createtable(L, CB_RECORD_FIELDS, 0);     /* camel keys */
	lua_createtable(L, 0, 4);                    /* metatable */
	lua_createtable(L, 0, CB_RECORD_FIELDS);     /* snake -> camel, for __index */
	for (i = 0; i < CB_RECORD_FIELDS; i++) {
		lua_pushstring(L, cb_record_fields[i].camel);
		lua_pushinteger(L, i + 1);
		lua_rawset(L, -6);
		lua_pushstring(L, cb_record_fields[i].snake);
		lua_pushinteger(L, i + 1);
		lua_rawset(L, -6);
		lua_pushstring(L, cb_record_fields[i].camel);
		lua_rawseti(L, -4, i + 1);
		if (strcmp(cb_record_fields[i].camel, cb_record_fields[i].snake) != 0) {
			lua_pushstring(L, cb_record_fields[i].snake);
			lua_pushstring(L, cb_record_fields[i].camel);
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

int cb_record_parse_number(const char *s, lua_Number *out)
{
	char *end;
	double d = strtod(s, &end);

	if (end == s || *end != '\0')
		return -1;
	*out = d;
	return 0;
}

const char *cb_record_push_number(lua_State *L, lua_Number n, const cb_field *f)
{
	if (f->type == FIELD_STRING) {
		push_number_as_string(L, n);
		return NULL;
	}
	if (!isfinite(n))
		return "is not a finite number";
	if (f->type == FIELD_NUMBER) {
		/* v3 sends 52261.0 where v1 and v4 send 52261: the same record from every version. */
		if (n == floor(n) && fabs(n) <= 9007199254740992.0)
			lua_pushinteger(L, (lua_Integer)n);
		else
			lua_pushnumber(L, n);
		return NULL;
	}
	if (n != floor(n) || fabs(n) > MAX_INT32)
		return "is not a 32-bit integer";
	lua_pushinteger(L, (lua_Integer)n);
	return NULL;
}

/* Pushes the value at idx converted to the field's type; -1 (nothing pushed) if it cannot be. */
static int push_field_value(lua_State *L, int idx, const cb_field *f, char *msg, size_t msglen)
{
	int type = lua_type(L, idx);
	const char *why;
	lua_Number n;

	if (type == LUA_TSTRING && f->type == FIELD_STRING) {
		lua_pushvalue(L, idx);
		return 0;
	}
	if (type == LUA_TNUMBER) {
		n = lua_tonumber(L, idx);
	} else if (f->type == FIELD_STRING) {
		snprintf(msg, msglen, "field %s is a %s, not a string", f->camel, lua_typename(L, type));
		return -1;
	} else if (type != LUA_TSTRING || cb_record_parse_number(lua_tostring(L, idx), &n) != 0) {
		snprintf(msg, msglen, "field %s is a %s, not a number", f->camel, lua_typename(L, type));
		return -1;
	}
	why = cb_record_push_number(L, n, f);
	if (why != NULL) {
		snprintf(msg, msglen, "field %s %s", f->camel, why);
		return -1;
	}
	return 0;
}

int cb_record_push(lua_State *L, int idx, int names_idx, int keys_idx, int mt_idx, char *msg, size_t msglen)
{
	int record;

	lua_createtable(L, 0, CB_RECORD_PRESIZE);
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
				if (push_field_value(L, value, &cb_record_fields[index - 1], msg, msglen) != 0) {
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

