/* codeartsbuild.core, the module entry: the state every function shares, then each part's
 * functions (error.c, check.c, headers.c, client.c, mailbox.c) and the constants that Lua reads instead of restating. */
#include <curl/curl.h>

#include "private.h"

/***
 * The C core: clients, `record_info`, the engine's mailbox (`submit`, `poll`, `take`), signed
 * GETs and the signer. `require "codeartsbuild"` re-exports `new`, `record_info`,
 * `default_client` and `sign`, and adds the batch methods (`latest`, `records`, `fetch`,
 * `history`) to every client.
 *
 * A failure returns `nil, message, err`; `err` is a table with `kind` (invalid, config, auth,
 * not_found, throttled, http, api, network, timeout, tls, decode), `message`, and where known
 * `status`, `code`, `request_id`, `retryable`, `attempts`, `job_id`, `build_no`. A wrong argument
 * type raises. The runnable examples are `examples/quickstart.lua` (`new`, `record_info`,
 * `submit`, `poll`, `pending`, `close`), `examples/client_tour.lua` (`get`, `submit_get`, `take`,
 * `cancel`, `info`, `default_client`, the module-level calls, `is_error`) and `examples/sign.lua`
 * (`sign`). The C sources document each function beside its code (the .c files of csrc/).
 * @module codeartsbuild.core
 */

/*** The module's version, "0.1.0".
 * @field version
 */

/*** The JSON decoder in use: "cjson", or "vim.json" inside Neovim without lua-cjson.
 * @field json
 */

/*** The 12 regions with a known endpoint: cn-north-4, cn-north-1, cn-east-2, ...
 * @field regions
 */

/*** The methods of every client (the batch module adds to them).
 * @field client_methods
 */

/*** The metatable every record shares (snake_case aliases, `tostring`).
 * @field record_metatable
 */

/*** The record's 33 fields, camelCase, in the reference page's order: the one list of them.
 * @field fields
 */

/*** The environment variables the module reads, in the order it reads them, each
 * `{name =, what =}`: the one list of them.
 * @field environment
 */

/*** The highest build number, 2147483647 (the API's int32).
 * @field MAX_BUILD_NO
 */

/* Inside Neovim without lua-cjson: vim.json (the same engine), called like cjson.safe. */
static const char vim_json_decoder[] =
	"local decode = vim.json.decode\n"
	"local options = { luanil = { object = true, array = true } }\n"
	"return function(text)\n"
	"  local ok, value = pcall(decode, text, options)\n"
	"  if ok then return value end\n"
	"  return nil, value\n"
	"end\n";

/* Pushes the decoder, a function like cjson.safe.decode, and returns the engine's name: a
 * private lua-cjson instance (so our limits change nobody else's), or Neovim's vim.json. */
static const char *push_decoder(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "cjson.safe");
	if (lua_pcall(L, 1, 1, 0) != 0) {
		lua_getglobal(L, "vim");
		if (lua_type(L, -1) == LUA_TTABLE) {
			lua_getfield(L, -1, "json");
			if (lua_type(L, -1) == LUA_TTABLE) {
				lua_pop(L, 3);
				if (luaL_loadbuffer(L, vim_json_decoder, sizeof vim_json_decoder - 1, "=codeartsbuild.json") != 0)
					lua_error(L);
				lua_call(L, 0, 1);
				return "vim.json";
			}
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		luaL_error(L, "codeartsbuild.core needs lua-cjson: %s", lua_tostring(L, -1));
	}
	lua_getfield(L, -1, "new");
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "decode_max_depth");
	lua_pushinteger(L, 64);
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "decode_invalid_numbers");
	lua_pushboolean(L, 0);
	lua_call(L, 1, 0);
	lua_getfield(L, -1, "decode");
	lua_replace(L, -3);
	lua_pop(L, 1);
	return "cjson";
}

static void push_regions(lua_State *L)
{
	int i;

	lua_newtable(L);
	for (i = 0; cb_known_regions[i]; i++) {
		lua_pushstring(L, cb_known_regions[i]);
		lua_rawseti(L, -2, i + 1);
	}
}

static void push_environment(lua_State *L)
{
	int i;

	lua_newtable(L);
	for (i = 0; cb_environment[i].name; i++) {
		lua_createtable(L, 0, 2);
		lua_pushstring(L, cb_environment[i].name);
		lua_setfield(L, -2, "name");
		lua_pushstring(L, cb_environment[i].what);
		lua_setfield(L, -2, "what");
		lua_rawseti(L, -2, i + 1);
	}
}

/***
 * A duration in milliseconds as people read it: `52.3s`, `4m43s`, `1h02m`; `-` for anything that
 * is not a duration. `tostring(record)` uses the same.
 * @function format_duration
 * @tparam number|nil ms
 * @treturn string
 * @usage print(core.format_duration(283090)) --> 4m43s
 */
static int module_format_duration(lua_State *L)
{
	char text[32];

	cb_format_duration(lua_type(L, 1) == LUA_TNUMBER ? (double)lua_tonumber(L, 1) : -1, text, sizeof text);
	lua_pushstring(L, text);
	return 1;
}

CB_EXPORT int luaopen_codeartsbuild_core(lua_State *L)
{
	static int curl_ready = 0;
	const char *json_engine;
	int state, module;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return luaL_error(L, "codeartsbuild.core: libcurl failed to initialise");
		curl_ready = 1;
	}
	lua_createtable(L, S_SLOTS, 0);
	state = lua_gettop(L);
	json_engine = push_decoder(L);
	lua_rawseti(L, state, S_DECODE);
	cb_record_push_tables(L);
	lua_rawseti(L, state, S_RECORD_MT);
	lua_rawseti(L, state, S_RECORD_KEYS);
	lua_rawseti(L, state, S_RECORD_NAMES);
	lua_newtable(L);
	module = lua_gettop(L);

	cb_error_open(L, state, module);
	cb_check_open(L, state, module);
	cb_headers_open(L, state, module);
	cb_client_open(L, state, module);
	cb_mailbox_open(L, state, module);
	cb_files_open(L, module);

	lua_pushcfunction(L, module_format_duration);
	lua_setfield(L, module, "format_duration");
	lua_rawgeti(L, state, S_RECORD_MT);
	lua_setfield(L, module, "record_metatable");
	cb_record_push_fields(L);
	lua_setfield(L, module, "fields");
	push_regions(L);
	lua_setfield(L, module, "regions");
	push_environment(L);
	lua_setfield(L, module, "environment");
	lua_pushinteger(L, CB_MAX_BUILD_NO);
	lua_setfield(L, module, "MAX_BUILD_NO");
	lua_pushliteral(L, CB_VERSION);
	lua_setfield(L, module, "version");
	lua_pushstring(L, json_engine);
	lua_setfield(L, module, "json");
	return 1;
}
