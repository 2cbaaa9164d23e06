/* The client userdata: made from options and the environment, started again in a fork()ed child,
 * closed at any moment (its release waits until no method of it is on the stack); info() and
 * tostring. Its methods on requests are mailbox.c's. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "private.h"

/* ---- fork ---- */

/* How many times this process is a fork()ed child of the one that loaded the module. A client
 * made before the last fork notices it, and leaves its parent's connections alone. */
static volatile unsigned forks;

static void count_fork(void)
{
	forks++;
}

/* ---- life ---- */

static cb_engine *new_engine(cb_client *c, char *msg, size_t msglen)
{
	cb_transport_options t;

	memset(&t, 0, sizeof t);
	t.base_url = c->cfg.endpoint;
	t.timeout_ms = c->cfg.timeout_ms;
	t.connect_timeout_ms = c->cfg.connect_timeout_ms;
	t.max_body = c->cfg.max_body;
	t.ca_file = c->cfg.ca_file;
	t.insecure = c->cfg.insecure;
	t.allow_http = strncmp(c->cfg.endpoint, "http://", 7) == 0;
	t.user_agent = c->cfg.user_agent;
	t.max_in_flight = c->cfg.concurrency;
	t.rate = c->cfg.rate;
	t.retries = c->cfg.retries;
	t.backoff_ms = c->cfg.backoff_ms;
	t.max_backoff_ms = c->cfg.max_backoff_ms;
	t.prepare = cb_headers_prepare;
	t.prepare_ctx = c;
	return cb_engine_new(&t, msg, msglen);
}

static int start(cb_client *c, char *msg, size_t msglen)
{
	if (c->cfg.user_agent == NULL) {
		/* No libcurl version: libcurl formats each header byte at a cost, on every request. */
		c->cfg.user_agent = cb_strdup("codeartsbuild-lua/" CB_VERSION);
		if (c->cfg.user_agent == NULL) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
	}
	c->api_current = cb_request_first_api(c->cfg.api_mode);
	c->api_confirmed = c->cfg.api_mode != CB_API_AUTO;
	if (c->cfg.ak && (c->key = cb_hmac_key_new(c->cfg.sk, strlen(c->cfg.sk))) == NULL) {
		snprintf(msg, msglen, "cannot set up HMAC-SHA256 (OpenSSL)");
		return -1;
	}
	c->forks = forks;
	c->engine = new_engine(c, msg, msglen);
	return c->engine ? 0 : -1;
}

/* Frees everything and wipes the credentials; safe twice. */
static void release(lua_State *L, cb_client *c)
{
	if (c->on_event != LUA_NOREF) {
		luaL_unref(L, LUA_REGISTRYINDEX, c->on_event);
		c->on_event = LUA_NOREF;
	}
	cb_engine_free(c->engine);
	c->engine = NULL;
	cb_hmac_key_free(c->key);
	c->key = NULL;
	cb_config_free(&c->cfg);
	c->closed = 1;
}

/* In a child of fork(): a new engine; the old one's sockets are the parent's connections too. */
static void restart_after_fork(lua_State *L, cb_client *c)
{
	char msg[256];
	long long last_id = cb_engine_abandon(c->engine);

	c->engine = new_engine(c, msg, sizeof msg);
	if (c->engine == NULL) {
		c->closed = 1;
		luaL_error(L, "codeartsbuild: cannot start the client again in the forked process: %s", msg);
	}
	cb_engine_continue_ids(c->engine, last_id);
	cb_iam_reset(c);
	c->forks = forks;
}

cb_client *cb_client_enter(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);

	if (c->closed)
		luaL_error(L, "attempt to use a closed codeartsbuild client");
	if (c->forks != forks)
		restart_after_fork(L, c);
	c->busy++;
	return c;
}

int cb_client_leave(lua_State *L, cb_client *c, int results)
{
	if (--c->busy == 0 && c->closed)
		release(L, c);
	return results;
}

int cb_client_raise(lua_State *L, cb_client *c, const char *message)
{
	lua_pushstring(L, message);
	cb_client_leave(L, c, 0);
	return lua_error(L);
}

/* ---- module functions ---- */

/***
 * @module codeartsbuild.core
 */

/* Pushes a new client configured from the options at opts (0: none) and the environment, or
 * nil, message, err. Raises on a wrong option type. */
static int push_new_client(lua_State *L, int opts)
{
	char msg[512];
	cb_failure f;
	cb_client *c = lua_newuserdata(L, sizeof *c);

	memset(c, 0, sizeof *c);
	c->on_event = LUA_NOREF;
	cb_config_init(&c->cfg);
	c->closed = 1; /* until it is complete; __gc frees whatever was filled in */
	luaL_setmetatable(L, CB_CLIENT_MT);
	cb_failure_init(&f);
	if (opts && cb_options_read(L, opts, &c->cfg, &c->on_event, &f) != 0) {
		/* f says which value */
	} else if (cb_config_resolve(&c->cfg, msg, sizeof msg) != 0 || start(c, msg, sizeof msg) != 0) {
		cb_failure_set(&f, "config", "%s", msg);
	} else {
		c->closed = 0;
		return 1;
	}
	release(L, c);
	return cb_push_failure(L, &f, NULL);
}

/***
 * A new client. Options left out come from the environment (README, "Configuration"): `region`,
 * `endpoint`, `ak`, `sk`, `project_id`, `security_token`, `token`, `iam` (`{user, password,
 * domain[, project]}`: sign in for tokens), `iam_endpoint`, `ca_file`, `insecure`, `allow_http`,
 * `api`, `retries`, `backoff`, `max_backoff`, `concurrency`, `rate`, `timeout`, `connect_timeout`,
 * `max_body`, `user_agent`, `on_event`. An unknown option name or a wrong type raises; a bad value
 * gives `invalid`, missing credentials or an unknown region `config`.
 * @function new
 * @tparam[opt] table options
 * @treturn[1] userdata the client
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err, of kind `invalid` or `config`
 * @usage local client = assert(cb.new{ region = "cn-north-4" })  -- credentials from the environment
 */
static int module_new(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		luaL_checktype(L, 1, LUA_TTABLE);
	return push_new_client(L, lua_isnoneornil(L, 1) ? 0 : 1);
}

cb_client *cb_client_default(lua_State *L, int *pushed)
{
	cb_client *c;

	lua_rawgeti(L, CB_STATE, S_DEFAULT_CLIENT);
	c = luaL_testudata(L, -1, CB_CLIENT_MT);
	if (c && !c->closed)
		return c;
	lua_pop(L, 1);
	*pushed = push_new_client(L, 0);
	if (*pushed != 1)
		return NULL;
	lua_pushvalue(L, -1);
	lua_rawseti(L, CB_STATE, S_DEFAULT_CLIENT);
	return luaL_checkudata(L, -1, CB_CLIENT_MT);
}

/***
 * The client module-level calls use, made from the environment on first use.
 * @usage local client = assert(cb.default_client()); print(client:info().endpoint)
 * @function default_client
 * @treturn[1] userdata the client
 * @return[2] nil
 * @treturn[2] string message
 * @treturn[2] table err
 */
static int module_default_client(lua_State *L)
{
	int pushed = 1;
	cb_client_default(L, &pushed);
	return pushed;
}

/* ---- methods ---- */

/***
 * A client: configuration, credentials, and one HTTP engine (a libcurl multi handle) that runs
 * every request of the client, concurrently, on reused connections. Every request's result waits
 * in the engine's mailbox until its owner takes it: `poll` returns those nobody holds, `take` any
 * one. `close` is safe at any moment, and a client used in a fork()ed child starts a new engine
 * there. `tostring(client)` shows the endpoint, the kind of credentials and the AK's first four
 * characters, never a secret.
 * @type client
 */

static const char *auth_name(const cb_config *cfg)
{
	return cfg->iam_user ? "iam" : cfg->token ? "token" : "aksk";
}

static void set_string_field(lua_State *L, const char *name, const char *value)
{
	if (value) {
		lua_pushstring(L, value);
		lua_setfield(L, -2, name);
	}
}

static void set_number_field(lua_State *L, const char *name, double value)
{
	lua_pushnumber(L, value);
	lua_setfield(L, -2, name);
}

/***
 * The client's settings, without secrets: `endpoint`, `region`, `auth` ("aksk", "token" or "iam"),
 * `temporary`, `credential_source`, `project_id`, `ca_file`, `insecure`, `timeout`,
 * `connect_timeout`, `max_body`, `user_agent`, `api`, `api_in_use`, `concurrency`, `rate`,
 * `retries`, `backoff`, `max_backoff`.
 * @function client:info
 * @treturn table
 * @usage print(client:info().credential_source)
 */
static int client_info(lua_State *L)
{
	cb_client *c = cb_client_enter(L);
	const cb_config *cfg = &c->cfg;

	lua_createtable(L, 0, 20);
	set_string_field(L, "endpoint", cfg->endpoint);
	set_string_field(L, "region", cfg->region);
	set_string_field(L, "auth", auth_name(cfg));
	set_string_field(L, "iam_endpoint", cfg->iam_endpoint);
	lua_pushboolean(L, cfg->security_token != NULL);
	lua_setfield(L, -2, "temporary");
	set_string_field(L, "credential_source", cfg->credential_source);
	set_string_field(L, "project_id", cfg->project_id);
	set_string_field(L, "ca_file", cfg->ca_file);
	lua_pushboolean(L, cfg->insecure);
	lua_setfield(L, -2, "insecure");
	set_number_field(L, "timeout", cfg->timeout_ms / 1000.0);
	set_number_field(L, "connect_timeout", cfg->connect_timeout_ms / 1000.0);
	lua_pushinteger(L, (lua_Integer)cfg->max_body);
	lua_setfield(L, -2, "max_body");
	set_string_field(L, "user_agent", cfg->user_agent);
	set_string_field(L, "api", cb_api_name(cfg->api_mode));
	set_string_field(L, "api_in_use", cb_api_name(c->api_current));
	lua_pushinteger(L, cfg->concurrency);
	lua_setfield(L, -2, "concurrency");
	if (cfg->rate > 0)
		set_number_field(L, "rate", cfg->rate);
	lua_pushinteger(L, cfg->retries);
	lua_setfield(L, -2, "retries");
	set_number_field(L, "backoff", cfg->backoff_ms / 1000.0);
	set_number_field(L, "max_backoff", cfg->max_backoff_ms / 1000.0);
	return cb_client_leave(L, c, 1);
}

/***
 * Frees the connections and wipes the credentials; safe twice, and at any moment: called from
 * `on_event`, a `__gc` or a loop's body, it takes effect when the call under way returns. Every
 * other method of a closed client raises. Also done by `__gc`, and by `__close` on 5.4
 * (`local client <close> = ...`).
 * @function client:close
 * @usage client:close()
 */
static int client_close(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);

	if (c->busy > 0)
		c->closed = 1; /* the method under way releases it when it returns */
	else
		release(L, c);
	return 0;
}

static int client_gc(lua_State *L)
{
	release(L, luaL_checkudata(L, 1, CB_CLIENT_MT));
	return 0;
}

static int client_tostring(lua_State *L)
{
	cb_client *c = luaL_checkudata(L, 1, CB_CLIENT_MT);
	const cb_config *cfg = &c->cfg;

	if (c->closed) {
		lua_pushfstring(L, "codeartsbuild.client{closed}: %p", (void *)c);
		return 1;
	}
	lua_pushfstring(L, "codeartsbuild.client{%s, %s", cfg->region ? cfg->region : cfg->host, auth_name(cfg));
	if (cfg->ak)
		lua_pushfstring(L, ", AK=%c%c%c%c****", cfg->ak[0], cfg->ak[1] ? cfg->ak[1] : '*',
				cfg->ak[1] && cfg->ak[2] ? cfg->ak[2] : '*',
				cfg->ak[1] && cfg->ak[2] && cfg->ak[3] ? cfg->ak[3] : '*');
	else
		lua_pushliteral(L, "");
	lua_pushstring(L, cfg->insecure ? ", TLS VERIFICATION OFF" : "");
	lua_pushfstring(L, "}: %p", (void *)c);
	lua_concat(L, 4);
	return 1;
}

static const luaL_Reg client_methods[] = {
	{"info", client_info},
	{"close", client_close},
	{NULL, NULL},
};

static const luaL_Reg client_meta[] = {
	{"__gc", client_gc},
	{"__close", client_close},
	{"__tostring", client_tostring},
	{NULL, NULL},
};

static const luaL_Reg module_functions[] = {
	{"new", module_new},
	{"default_client", module_default_client},
	{NULL, NULL},
};

void cb_client_open(lua_State *L, int state, int module)
{
	static int fork_counted;

	if (!fork_counted)
		fork_counted = pthread_atfork(NULL, NULL, count_fork) == 0;
	luaL_newmetatable(L, CB_CLIENT_MT);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_meta, 1);
	luaL_newlibtable(L, client_methods);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, client_methods, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, module, "client_methods");
	lua_pushliteral(L, CB_CLIENT_MT);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
	lua_pushvalue(L, module);
	lua_pushvalue(L, state);
	luaL_setfuncs(L, module_functions, 1);
	lua_pop(L, 1);
}
