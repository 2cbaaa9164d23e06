/* codeartsbuild: the one entry point of the C module, for hosts that link it in
 * (libcodeartsbuild.a, `make static`) instead of loading core.so. Register it with
 *
 *     luaL_requiref(L, "codeartsbuild.core", luaopen_codeartsbuild_core, 0);
 *
 * The library needs libcurl and libcrypto (OpenSSL 3), and lua-cjson reachable by `require`. */
#ifndef CODEARTSBUILD_H
#define CODEARTSBUILD_H

#include <lua.h>

#ifdef __cplusplus
extern "C" {
#endif

int luaopen_codeartsbuild_core(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
