/* Reading a record-info body straight into a record.
 *
 * The hot path of every batch: instead of decoding the whole body into Lua tables and then
 * copying `result` into a record, read the JSON once and set each field of the final table.
 * It accepts a strict subset of JSON (no \u escapes, no raw control characters, no duplicate
 * spellings of a field, nothing nested inside `result`) and, for everything inside that subset,
 * builds exactly the record the general path (lua-cjson, cb_envelope_failed, cb_record_push)
 * builds. Anything else, errors included, is left to the general path: this reader never
 * reports an error of its own. fuzz_record checks the two agree. */
#include "record.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "compat.h"




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
static int push_read_field(lua_State *L, const json_scalar *s, const cb_field *f)
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
		if (cb_record_parse_number(text, &n) != 0)
			return -1;
	} else {
		return -1;
	}
	return cb_record_push_number(L, n, f) == NULL ? 0 : -1;
}

/* The field a key names: its index, and whether it is the camelCase spelling. Bodies list the
 * fields in the same order every time, so the search starts after the last match. */
static int find_field(const json_scalar *key, int *hint, int *camel)
{
	int i, k;

	for (k = 0; k < CB_RECORD_FIELDS; k++) {
		const cb_field *f;
		i = (*hint + k) % CB_RECORD_FIELDS;
		f = &cb_record_fields[i];
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
	if (push_read_field(L, &value, &cb_record_fields[i]) != 0)
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
	lua_createtable(L, 0, CB_RECORD_PRESIZE);
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
