/* The options of new(): one descriptor table says each option's name, type, unit and range, and
 * where it goes in the client's settings. A wrong type or an unknown name raises (a mistake in the
 * calling code); a value out of range is `invalid`. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

typedef enum { OPT_STRING, OPT_BOOLEAN, OPT_NUMBER, OPT_API, OPT_IAM, OPT_FUNCTION } option_type;
typedef enum { AS_NONE, AS_MS, AS_INT, AS_SIZE, AS_DOUBLE } number_storage;

typedef struct {
	const char *name;
	option_type type;
	size_t offset; /* into cb_config */
	int header;    /* strings: goes into a request header, so no control character */
	/* Numbers: the unit (in messages), the range, whether it must be whole, how it is stored. */
	const char *unit;
	double low, high;
	int low_included, whole;
	number_storage storage;
} option;

#define AT(field) offsetof(cb_config, field)
#define STRING(name, field) {name, OPT_STRING, AT(field), 0, NULL, 0, 0, 0, 0, AS_NONE}
#define HEADER(name, field) {name, OPT_STRING, AT(field), 1, NULL, 0, 0, 0, 0, AS_NONE}
#define BOOLEAN(name, field) {name, OPT_BOOLEAN, AT(field), 0, NULL, 0, 0, 0, 0, AS_NONE}
#define NUMBER(name, field, unit, low, low_included, high, whole, storage) \
	{name, OPT_NUMBER, AT(field), 0, unit, low, high, low_included, whole, storage}

static const option options[] = {
	STRING("region", region),
	STRING("endpoint", endpoint),
	HEADER("ak", ak),
	STRING("sk", sk),
	HEADER("project_id", project_id),
	HEADER("security_token", security_token),
	HEADER("token", token),
	STRING("ca_file", ca_file),
	HEADER("user_agent", user_agent),
	STRING("iam_endpoint", iam_endpoint),
	STRING("profile", profile),
	BOOLEAN("insecure", insecure),
	BOOLEAN("allow_http", allow_http),
	{"api", OPT_API, AT(api_mode), 0, NULL, 0, 0, 0, 0, AS_NONE},
	{"iam", OPT_IAM, 0, 0, NULL, 0, 0, 0, 0, AS_NONE},
	{"on_event", OPT_FUNCTION, 0, 0, NULL, 0, 0, 0, 0, AS_NONE},
	NUMBER("timeout", timeout_ms, "seconds", 0, 0, 86400, 0, AS_MS),
	NUMBER("connect_timeout", connect_timeout_ms, "seconds", 0, 0, 86400, 0, AS_MS),
	NUMBER("max_body", max_body, "bytes", 1024, 1, 1073741824.0, 1, AS_SIZE),
	NUMBER("concurrency", concurrency, "requests in flight", 1, 1, 1024, 1, AS_INT),
	NUMBER("rate", rate, "requests per second", 0, 0, 100000, 0, AS_DOUBLE),
	NUMBER("retries", retries, "further attempts", 0, 1, 20, 1, AS_INT),
	NUMBER("backoff", backoff_ms, "seconds", 0, 1, 3600, 0, AS_MS),
	NUMBER("max_backoff", max_backoff_ms, "seconds", 0, 0, 3600, 0, AS_MS),
};

static const char *const api_names[] = {"auto", "v3", "v4", "v1"}; /* CB_API_AUTO + 1, ... */

const char *cb_api_name(int api)
{
	return api_names[api + 1];
}

static void *slot(cb_config *cfg, const option *o)
{
	return (char *)cfg + o->offset;
}

static void set_string(lua_State *L, int v, const char *name, char **out)
{
	size_t len;
	const char *s;

	if (lua_type(L, v) != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a string, got %s", name, luaL_typename(L, v));
	s = lua_tolstring(L, v, &len);
	free(*out);
	*out = cb_strndup(s, len);
	if (*out == NULL)
		luaL_error(L, "out of memory");
}

/* A number in the option's range, stored as the option says; -1 with f when out of range. The
 * range is checked on the number as given, before any conversion (NaN fails every comparison). */
static int set_number(lua_State *L, int v, cb_config *cfg, const option *o, cb_failure *f)
{
	double n;

	if (lua_type(L, v) != LUA_TNUMBER)
		luaL_error(L, "option '%s' must be a number (%s), got %s", o->name, o->unit, luaL_typename(L, v));
	n = (double)lua_tonumber(L, v);
	if (!(n > o->low || (o->low_included && n == o->low)) || !(n <= o->high) || (o->whole && n != floor(n))) {
		cb_failure_set(f, "invalid", "option '%s' must be %s%s %g and at most %g (%s)", o->name,
			       o->whole ? "a whole number " : "", o->low_included ? "from" : "more than", o->low, o->high,
			       o->unit);
		return -1;
	}
	switch (o->storage) {
	case AS_MS:
		*(long *)slot(cfg, o) = (long)ceil(n * 1000);
		break;
	case AS_INT:
		*(int *)slot(cfg, o) = (int)n;
		break;
	case AS_SIZE:
		*(size_t *)slot(cfg, o) = (size_t)n;
		break;
	default:
		*(double *)slot(cfg, o) = n;
		break;
	}
	return 0;
}

static int set_api(lua_State *L, int v, cb_config *cfg, cb_failure *f)
{
	int i;

	if (lua_type(L, v) != LUA_TSTRING)
		luaL_error(L, "option 'api' must be a string, got %s", luaL_typename(L, v));
	for (i = 0; i < (int)(sizeof api_names / sizeof api_names[0]); i++) {
		if (strcmp(lua_tostring(L, v), api_names[i]) == 0) {
			cfg->api_mode = i - 1;
			return 0;
		}
	}
	cb_failure_set(f, "invalid", "option 'api' must be \"auto\", \"v3\", \"v4\" or \"v1\"");
	return -1;
}

/* iam = { user =, password =, domain = [, project =] }: an IAM user that signs in for tokens. */
static void set_iam(lua_State *L, int v, cb_config *cfg)
{
	static const struct {
		const char *name;
		size_t offset;
		int required;
	} fields[] = {
		{"user", AT(iam_user), 1},
		{"password", AT(iam_password), 1},
		{"domain", AT(iam_domain), 1},
		{"project", AT(iam_project), 0},
	};
	size_t i;

	if (lua_type(L, v) != LUA_TTABLE)
		luaL_error(L, "option 'iam' must be a table {user =, password =, domain = [, project =]}, got %s",
			   luaL_typename(L, v));
	lua_pushnil(L);
	while (lua_next(L, v) != 0) {
		int known = 0;
		for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
			known |= lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), fields[i].name) == 0;
		if (!known)
			luaL_error(L, "option 'iam' has an unknown field %s", lua_type(L, -2) == LUA_TSTRING ?
				   lua_tostring(L, -2) : luaL_typename(L, -2));
		lua_pop(L, 1);
	}
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		lua_getfield(L, v, fields[i].name);
		if (lua_isnil(L, -1) && fields[i].required)
			luaL_error(L, "option 'iam' needs %s", fields[i].name);
		if (!lua_isnil(L, -1))
			set_string(L, lua_gettop(L), fields[i].name, (char **)((char *)cfg + fields[i].offset));
		lua_pop(L, 1);
	}
}

static void set_function(lua_State *L, int v, const char *name, int *ref)
{
	if (lua_type(L, v) != LUA_TFUNCTION)
		luaL_error(L, "option '%s' must be a function, got %s", name, luaL_typename(L, v));
	if (*ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, *ref);
	lua_pushvalue(L, v);
	*ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static const option *find_option(lua_State *L, int key)
{
	size_t i;

	if (lua_type(L, key) != LUA_TSTRING)
		luaL_error(L, "option names must be strings");
	for (i = 0; i < sizeof options / sizeof options[0]; i++)
		if (strcmp(lua_tostring(L, key), options[i].name) == 0)
			return &options[i];
	luaL_error(L, "unknown option '%s'", lua_tostring(L, key));
	return NULL;
}

static int set_option(lua_State *L, int v, const option *o, cb_config *cfg, int *on_event, cb_failure *f)
{
	size_t len;
	const char *text;

	switch (o->type) {
	case OPT_STRING:
		set_string(L, v, o->name, (char **)slot(cfg, o));
		text = lua_tolstring(L, v, &len);
		if (memchr(text, '\0', len) != NULL || (o->header && !cb_header_value_ok(text, len))) {
			cb_failure_set(f, "invalid", "option '%s' holds a %s", o->name, o->header ?
				       "control character (CR, LF, NUL, ...), which would go onto the wire" : "NUL byte");
			return -1;
		}
		return 0;
	case OPT_BOOLEAN:
		if (lua_type(L, v) != LUA_TBOOLEAN)
			luaL_error(L, "option '%s' must be a boolean, got %s", o->name, luaL_typename(L, v));
		*(int *)slot(cfg, o) = lua_toboolean(L, v);
		return 0;
	case OPT_API:
		return set_api(L, v, cfg, f);
	case OPT_IAM:
		set_iam(L, v, cfg);
		return 0;
	case OPT_FUNCTION:
		set_function(L, v, o->name, on_event);
		return 0;
	default:
		return set_number(L, v, cfg, o, f);
	}
}

/* Reads every option, so that a wrong type or an unknown name raises whatever the table's order;
 * a bad value's failure is the first one met. */
int cb_options_read(lua_State *L, int opts, cb_config *cfg, int *on_event, cb_failure *f)
{
	cb_failure later;
	int rc = 0;

	lua_pushnil(L);
	while (lua_next(L, opts) != 0) {
		const option *o = find_option(L, lua_gettop(L) - 1);
		if (set_option(L, lua_gettop(L), o, cfg, on_event, rc ? &later : f) != 0)
			rc = -1;
		lua_pop(L, 1);
	}
	return rc;
}
