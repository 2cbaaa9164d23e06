/* fork() for the specs (spec/engine_spec.lua): a client used on both sides of a fork must not
 * share its connections. Built by the spec itself for the Lua that runs it.
 *
 *     local fork = require "fork"
 *     local pid = fork.fork()          -- 0 in the child
 *     fork.exit(code)                  -- _exit: the child leaves without running the parent's Lua
 *     local status = fork.wait(pid)    -- the child's exit status */
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

static int l_fork(lua_State *L)
{
	pid_t pid = fork();

	if (pid < 0)
		return luaL_error(L, "fork failed");
	lua_pushinteger(L, (lua_Integer)pid);
	return 1;
}

static int l_exit(lua_State *L)
{
	_exit((int)luaL_checkinteger(L, 1));
	return 0;
}

static int l_wait(lua_State *L)
{
	int status = 0;

	if (waitpid((pid_t)luaL_checkinteger(L, 1), &status, 0) < 0)
		return luaL_error(L, "waitpid failed");
	lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 1;
}

int luaopen_fork(lua_State *L)
{
	lua_createtable(L, 0, 3);
	lua_pushcfunction(L, l_fork);
	lua_setfield(L, -2, "fork");
	lua_pushcfunction(L, l_exit);
	lua_setfield(L, -2, "exit");
	lua_pushcfunction(L, l_wait);
	lua_setfield(L, -2, "wait");
	return 1;
}
