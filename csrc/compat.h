/* The few Lua 5.1/LuaJIT <-> 5.2+ differences the binding needs.
 * Everything here is static inline: nothing is exported from the module. */
#ifndef CODEARTSBUILD_COMPAT_H
#define CODEARTSBUILD_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502

/* LuaJIT 2.1 has some of these as macros of its own (and others as functions, which the macros
 * below simply shadow): ours are used either way, so one binary serves PUC 5.1 and LuaJIT. */
#undef lua_rawlen
#undef luaL_newlibtable
#undef luaL_newlib
#undef luaL_setfuncs
#undef luaL_testudata
#undef luaL_setmetatable
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_newlibtable(L, l) lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), cb_compat_setfuncs((L), (l), 0))
#define luaL_setfuncs(L, l, n) cb_compat_setfuncs((L), (l), (n))

static inline void cb_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	luaL_checkstack(L, nup + 1, "too many upvalues");
	for (; l->name != NULL; l++) {
		int i;
		for (i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}

static inline void *cb_compat_testudata(lua_State *L, int i, const char *tname)
{
	void *p = lua_touserdata(L, i);
	if (p == NULL || !lua_getmetatable(L, i))
		return NULL;
	luaL_getmetatable(L, tname);
	if (!lua_rawequal(L, -1, -2))
		p = NULL;
	lua_pop(L, 2);
	return p;
}
#define luaL_testudata(L, i, t) cb_compat_testudata((L), (i), (t))

static inline void cb_compat_setmetatable(lua_State *L, const char *tname)
{
	luaL_getmetatable(L, tname);
	lua_setmetatable(L, -2);
}
#define luaL_setmetatable(L, t) cb_compat_setmetatable((L), (t))

#endif /* LUA_VERSION_NUM < 502 */

#if LUA_VERSION_NUM < 503
#define lua_isinteger(L, i) 0
#endif

#if LUA_VERSION_NUM < 504
#define luaL_typeerror(L, arg, tname) cb_compat_typeerror((L), (arg), (tname))
static inline int cb_compat_typeerror(lua_State *L, int arg, const char *tname)
{
	const char *msg = lua_pushfstring(L, "%s expected, got %s", tname, luaL_typename(L, arg));
	return luaL_argerror(L, arg, msg);
}
#endif

#endif
