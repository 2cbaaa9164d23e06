/* A C program that embeds Lua 5.4 and links codeartsbuild in (no core.so on disk): it registers
 * the module, then runs a Lua script that fetches records. The endpoint and credentials come from
 * the environment, as for any client.
 *
 *   make embed-example && examples/embed/embed [JOB_ID [BUILD_NO]] */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codeartsbuild.h"

static const char script[] =
	"local core = require 'codeartsbuild.core'\n"
	"local job, build_no = ...\n"
	"local client = assert(core.new())\n"
	"for n = build_no - 2, build_no do\n"
	"  print(assert(client:record_info(job, n)))\n"
	"end\n"
	"client:close()\n";

int main(int argc, char **argv)
{
	const char *job = argc > 1 ? argv[1] : "cb5fa20de5fd4cf8be681d4bd6fdd2f6";
	lua_Integer build_no = argc > 2 ? strtol(argv[2], NULL, 10) : 61;
	lua_State *L = luaL_newstate();
	int status;

	if (L == NULL) {
		fprintf(stderr, "embed: cannot create a Lua state\n");
		return 1;
	}
	luaL_openlibs(L);
	luaL_requiref(L, "codeartsbuild.core", luaopen_codeartsbuild_core, 0);
	lua_pop(L, 1);
	status = luaL_loadbuffer(L, script, sizeof script - 1, "=embedded");
	if (status == LUA_OK) {
		lua_pushstring(L, job);
		lua_pushinteger(L, build_no);
		status = lua_pcall(L, 2, 0, 0);
	}
	if (status != LUA_OK)
		fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
	lua_close(L);
	return status == LUA_OK ? 0 : 1;
}
