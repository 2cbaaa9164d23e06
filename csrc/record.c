#include "record.h"

#include <locale.h>
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
	unsigned char camel_len, snake_len;
} field;

#define FIELD(camel, snake, type) {camel, snake, type, sizeof camel - 1, sizeof snake - 1}

/* The 33 fields of the reference page, with the spelling of the SDK models. */
static const field fields[CB_RECORD_FIELDS] = {
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
		lua_pushlstring(L, fields[i].camel, fields[i].camel_len);
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

/* Pushes the number n as field f's type; returns NULL, or why it cannot be (nothing pushed).
 * Both ways of reading a record convert through here, so that they cannot disagree. */
static const char *push_number_for_field(lua_State *L, lua_Number n, const field *f)
{
	if (f->type == FIELD_STRING) {
		push_number_as_string(L, n);
		return NULL;
	}
	if (!isfinite(n))
		return "is not a finite number";
	if (f->type == FIELD_NUMBER) {
		lua_pushnumber(L, n);
		return NULL;
	}
	if (n != floor(n) || fabs(n) > MAX_INT32)
		return "is not a 32-bit integer";
	lua_pushinteger(L, (lua_Integer)n);
	return NULL;
}

/* Pushes the value at idx converted to the field's type; -1 (nothing pushed) if it cannot be. */
static int push_field_value(lua_State *L, int idx, const field *f, char *msg, size_t msglen)
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
	} else if (type != LUA_TSTRING || parse_integer_string(lua_tostring(L, idx), &n) != 0) {
		snprintf(msg, msglen, "field %s is a %s, not a number", f->camel, lua_typename(L, type));
		return -1;
	}
	why = push_number_for_field(L, n, f);
	if (why != NULL) {
		snprintf(msg, msglen, "field %s %s", f->camel, why);
		return -1;
	}
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

/* ---- reading a record-info body straight into a record ----
 *
 * The hot path of every batch: instead of decoding the whole body into Lua tables and then
 * copying `result` into a record, read the JSON once and set each field of the final table.
 * It accepts a strict subset of JSON (no \u escapes, no raw control characters, no duplicate
 * spellings of a field, nothing nested inside `result`) and, for everything inside that subset,
 * builds exactly the record the general path (lua-cjson, cb_envelope_failed, cb_record_push)
 * builds. Anything else, errors included, is left to the general path: this reader never
 * reports an error of its own. fuzz_record checks the two agree. */

typedef enum { JSON_STRING, JSON_NUMBER, JSON_TRUE, JSON_FALSE, JSON_NULL, JSON_OBJECT, JSON_ARRAY } json_kind;

typedef struct {
	const char *p, *end;
} json_reader;

/* A scalar as read: the raw bytes of a string (between the quotes) or of a number. */
typedef struct {
	json_kind kind;
	const char *text;
	size_t len;
	int escaped;
} json_scalar;

#define MAX_SKIP_DEPTH 32
#define MAX_NUMBER_TEXT 63

static void skip_space(json_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static int take_char(json_reader *r, char c)
{
	skip_space(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return 0;
	}
	return -1;
}

/* After the opening quote: finds the closing one. Refuses what the general path might read
 * differently or refuse: \u escapes, unknown escapes, control characters, a missing end. */
static int scan_string(json_reader *r, json_scalar *s)
{
	/* The bytes that end a run of plain text: the quote, the backslash, control characters. */
	static const unsigned char stops[256] = {
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		['"'] = 1, ['\\'] = 1,
	};
	const char *p = r->p;

	s->kind = JSON_STRING;
	s->text = p;
	s->escaped = 0;
	for (; p < r->end; p++) {
		unsigned char c = (unsigned char)*p;
		if (!stops[c])
			continue;
		if (c == '"') {
			s->len = (size_t)(p - s->text);
			r->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (p + 1 >= r->end || strchr("\"\\/bfnrt", p[1]) == NULL || p[1] == '\0')
				return -1;
			s->escaped = 1;
			p++;
		}
	}
	return -1;
}

static int is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* JSON's number grammar, nothing more: the general path's decoder refuses or agrees. */
static int scan_number(json_reader *r, json_scalar *s)
{
	const char *p = r->p, *end = r->end;

	s->kind = JSON_NUMBER;
	s->text = p;
	if (p < end && *p == '-')
		p++;
	if (!is_digit(p, end))
		return -1;
	if (*p == '0')
		p++;
	else
		while (is_digit(p, end))
			p++;
	if (p < end && *p == '.') {
		if (!is_digit(++p, end))
			return -1;
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return -1;
		while (is_digit(p, end))
			p++;
	}
	s->len = (size_t)(p - s->text);
	r->p = p;
	return s->len <= MAX_NUMBER_TEXT ? 0 : -1;
}

static int scan_word(json_reader *r, const char *word, size_t len, json_kind kind, json_scalar *s)
{
	if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
		return -1;
	r->p += len;
	s->kind = kind;
	return 0;
}

/* Reads a scalar, or only notes that an object or array starts (without consuming it). */
static int scan_value(json_reader *r, json_scalar *s)
{
	skip_space(r);
	if (r->p >= r->end)
		return -1;
	switch (*r->p) {
	case '"':
		r->p++;
		return scan_string(r, s);
	case '{':
		s->kind = JSON_OBJECT;
		return 0;
	case '[':
		s->kind = JSON_ARRAY;
		return 0;
	case 't':
		return scan_word(r, "true", 4, JSON_TRUE, s);
	case 'f':
		return scan_word(r, "false", 5, JSON_FALSE, s);
	case 'n':
		return scan_word(r, "null", 4, JSON_NULL, s);
	default:
		return scan_number(r, s);
	}
}

/* Reads a key and its colon; keys with escapes are left to the general path. */
static int scan_key(json_reader *r, json_scalar *key)
{
	if (take_char(r, '"') != 0 || scan_string(r, key) != 0 || key->escaped)
		return -1;
	return take_char(r, ':');
}

/* After a member: 1 when another follows, 0 at the closing brace (or bracket), -1 otherwise. */
static int next_member(json_reader *r, char close)
{
	skip_space(r);
	if (r->p < r->end && *r->p == ',') {
		r->p++;
		return 1;
	}
	if (r->p < r->end && *r->p == close) {
		r->p++;
		return 0;
	}
	return -1;
}

/* Skips a value of the envelope that is not `result`, nested ones included. */
static int skip_value(json_reader *r, int depth)
{
	json_scalar s;
	int more;

	if (scan_value(r, &s) != 0)
		return -1;
	if (s.kind != JSON_OBJECT && s.kind != JSON_ARRAY)
		return 0;
	if (depth >= MAX_SKIP_DEPTH)
		return -1;
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == (s.kind == JSON_OBJECT ? '}' : ']')) {
		r->p++;
		return 0;
	}
	do {
		json_scalar key;
		if ((s.kind == JSON_OBJECT && scan_key(r, &key) != 0) || skip_value(r, depth + 1) != 0)
			return -1;
	} while ((more = next_member(r, s.kind == JSON_OBJECT ? '}' : ']')) == 1);
	return more;
}

static void push_string_value(lua_State *L, const json_scalar *s)
{
	luaL_Buffer b;
	const char *p = s->text, *end = s->text + s->len, *run = p;

	if (!s->escaped) {
		lua_pushlstring(L, s->text, s->len);
		return;
	}
	luaL_buffinit(L, &b);
	for (; p < end; p++) {
		static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
		if (*p != '\\')
			continue;
		luaL_addlstring(&b, run, (size_t)(p - run));
		p++;
		luaL_addchar(&b, to[strchr(from, *p) - from]);
		run = p + 1;
	}
	luaL_addlstring(&b, run, (size_t)(end - run));
	luaL_pushresult(&b);
}

/* The number's value as the general path's decoder reads it (strtod), or -1 where the host's
 * locale would make the two differ. */
static int number_value(const json_scalar *s, lua_Number *out)
{
	char text[MAX_NUMBER_TEXT + 1];

	memcpy(text, s->text, s->len);
	text[s->len] = '\0';
	if (strchr(text, '.') != NULL && localeconv()->decimal_point[0] != '.')
		return -1;
	*out = strtod(text, NULL);
	return 0;
}

/* Pushes the value converted for field f, as push_field_value does; -1 (nothing pushed) where
 * that would fail, so that the general path reports it. */
static int push_read_field(lua_State *L, const json_scalar *s, const field *f)
{
	lua_Number n;

	if (s->kind == JSON_STRING && f->type == FIELD_STRING) {
		push_string_value(L, s);
		return 0;
	}
	if (s->kind == JSON_NUMBER) {
		if (number_value(s, &n) != 0)
			return -1;
	} else if (s->kind == JSON_STRING && !s->escaped && s->len <= MAX_NUMBER_TEXT) {
		char text[MAX_NUMBER_TEXT + 1];
		memcpy(text, s->text, s->len);
		text[s->len] = '\0';
		if (parse_integer_string(text, &n) != 0)
			return -1;
	} else {
		return -1;
	}
	return push_number_for_field(L, n, f) == NULL ? 0 : -1;
}

/* The field a key names: its index, and whether it is the camelCase spelling. Bodies list the
 * fields in the same order every time, so the search starts after the last match. */
static int find_field(const json_scalar *key, int *hint, int *camel)
{
	int i, k;

	for (k = 0; k < CB_RECORD_FIELDS; k++) {
		const field *f;
		i = (*hint + k) % CB_RECORD_FIELDS;
		f = &fields[i];
		if (f->camel_len == key->len && memcmp(f->camel, key->text, key->len) == 0)
			*camel = 1;
		else if (f->snake_len == key->len && memcmp(f->snake, key->text, key->len) == 0)
			*camel = 0;
		else
			continue;
		*hint = i + 1;
		return i;
	}
	return -1;
}

static int push_unknown_value(lua_State *L, const json_scalar *s)
{
	lua_Number n;

	switch (s->kind) {
	case JSON_STRING:
		push_string_value(L, s);
		return 0;
	case JSON_NUMBER:
		if (number_value(s, &n) != 0)
			return -1;
		lua_pushnumber(L, n); /* as lua-cjson 2.1 pushes every number */
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, s->kind == JSON_TRUE);
		return 0;
	case JSON_NULL:
		lua_pushnil(L); /* the general path drops nulls: a later null clears an earlier value */
		return 0;
	default:
		return -1;
	}
}

enum { SEEN_SNAKE = 1, SEEN_CAMEL = 2, STORED_CAMEL = 4 };

/* One member of `result`: the record is at `record`. */
static int read_member(lua_State *L, json_reader *r, int record, int keys_idx, unsigned char *seen, int *hint)
{
	json_scalar key, value;
	int camel = 0, i;

	if (scan_key(r, &key) != 0 || scan_value(r, &value) != 0)
		return -1;
	i = find_field(&key, hint, &camel);
	if (i < 0) {
		lua_pushlstring(L, key.text, key.len);
		if (push_unknown_value(L, &value) != 0)
			return -1;
		lua_rawset(L, record);
		return 0;
	}
	/* A spelling given twice: the general path keeps the last, nulls included; leave it to it. */
	if (seen[i] & (camel ? SEEN_CAMEL : SEEN_SNAKE))
		return -1;
	seen[i] |= camel ? SEEN_CAMEL : SEEN_SNAKE;
	if (value.kind == JSON_NULL)
		return 0;
	lua_rawgeti(L, keys_idx, i + 1);
	if (push_read_field(L, &value, &fields[i]) != 0)
		return -1;
	/* Both spellings present: the camelCase one wins, whichever came first. */
	if (!camel && (seen[i] & STORED_CAMEL)) {
		lua_pop(L, 2);
		return 0;
	}
	if (camel)
		seen[i] |= STORED_CAMEL;
	lua_rawset(L, record);
	return 0;
}

/* `result`, at its opening brace: pushes the record (without its metatable yet). */
static int read_result(lua_State *L, json_reader *r, int keys_idx)
{
	unsigned char seen[CB_RECORD_FIELDS];
	int record, hint = 0, more;

	memset(seen, 0, sizeof seen);
	r->p++;
	lua_createtable(L, 0, CB_RECORD_FIELDS + 2);
	record = lua_gettop(L);
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return 0;
	}
	do {
		if (read_member(L, r, record, keys_idx, seen, &hint) != 0)
			return -1;
	} while ((more = next_member(r, '}')) == 1);
	return more;
}

static int key_is(const json_scalar *key, const char *name)
{
	return key->len == strlen(name) && memcmp(key->text, name, key->len) == 0;
}

/* The envelope: finds `result` and the verdicts cb_envelope_failed reads. */
static int read_envelope(lua_State *L, json_reader *r, int keys_idx)
{
	int have_result = 0, success_false = 0, status_fail = 0, more;

	if (take_char(r, '{') != 0)
		return -1;
	do {
		json_scalar key, value;
		if (scan_key(r, &key) != 0)
			return -1;
		if (key_is(&key, "result")) {
			skip_space(r);
			if (have_result || r->p >= r->end || *r->p != '{' || read_result(L, r, keys_idx) != 0)
				return -1;
			have_result = 1;
			continue;
		}
		/* A scalar is read here; an object or array only starts, and skip_value walks it. */
		if (scan_value(r, &value) != 0 ||
		    ((value.kind == JSON_OBJECT || value.kind == JSON_ARRAY) && skip_value(r, 1) != 0))
			return -1;
		if (key_is(&key, "success"))
			success_false = value.kind == JSON_FALSE;
		else if (key_is(&key, "status"))
			status_fail = value.kind == JSON_STRING && value.len == 4 && memcmp(value.text, "fail", 4) == 0;
	} while ((more = next_member(r, '}')) == 1);
	skip_space(r);
	if (more != 0 || r->p != r->end || !have_result || success_false || status_fail)
		return -1;
	return 0;
}

int cb_record_read(lua_State *L, const char *body, size_t len, int keys_idx, int mt_idx)
{
	json_reader r;
	int top = lua_gettop(L);

	r.p = body;
	r.end = body + len;
	luaL_checkstack(L, 8, "reading a record");
	if (read_envelope(L, &r, keys_idx) != 0) {
		lua_settop(L, top);
		return 0;
	}
	lua_pushvalue(L, mt_idx);
	lua_setmetatable(L, -2);
	return 1;
}
