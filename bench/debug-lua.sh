#!/bin/sh
# bench/debug-lua.sh: a lua5.4 interpreter and a lua-cjson with symbols, for profiles.
#
#   bench/debug-lua.sh SRC_DIR       (SRC_DIR holds lua5.4-5.4.4/ and lua-cjson-2.1.0+dfsg/)
#
# Debian's /usr/bin/lua5.4 and cjson.so are stripped, so callgrind and perf name the Lua core's
# functions (luaH_*, luaV_execute, the GC...) by address only. This builds the same sources
# (Debian's, patches applied) with Debian's flags (-g -O2, hardening) into build/bench/debug/:
# lua5.4, and lua/cjson.so. bench/profile.py uses them when they are there.
#
# Get the sources with deb-src enabled for bookworm main (e.g. a sources entry
# "Types: deb-src / URIs: http://deb.debian.org/debian / Suites: bookworm / Components: main"):
#   mkdir -p /tmp/src && cd /tmp/src && apt-get source lua5.4 lua-cjson
set -eu
src=${1:?usage: bench/debug-lua.sh SRC_DIR (with lua5.4-5.4.4/ and lua-cjson-2.1.0+dfsg/ unpacked)}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/build/bench/debug
lua=$src/lua5.4-5.4.4/src
cjson=$src/lua-cjson-2.1.0+dfsg
[ -f "$lua/lua.c" ] && [ -f "$cjson/lua_cjson.c" ] || { echo "no Lua or lua-cjson sources in $src" >&2; exit 1; }
flags="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -Wdate-time -D_FORTIFY_SOURCE=2"
mkdir -p "$out/lua" "$out/obj"

# Debian's luaconf.h includes this generated header (its module paths name the multiarch folder).
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
printf '#ifndef _LUA_DEB_MULTIARCH_\n#define _LUA_DEB_MULTIARCH_\n#define DEB_HOST_MULTIARCH "%s"\n#endif\n' "$arch" \
	>"$out/obj/lua5.4-deb-multiarch.h"
for f in "$lua"/*.c; do
	case $(basename "$f") in luac.c) continue ;; esac
	gcc $flags -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -I"$out/obj" -c -o "$out/obj/$(basename "$f" .c).o" "$f"
done
# -Wl,-E: C modules (cjson.so, core.so) find the Lua API in the interpreter, as with Debian's.
gcc -Wl,-E -o "$out/lua5.4" "$out"/obj/*.o -lm -ldl
gcc $flags -fPIC -shared -I"$lua" -o "$out/lua/cjson.so" "$cjson/lua_cjson.c" "$cjson/strbuf.c" "$cjson/fpconv.c"
echo "built $out/lua5.4 and $out/lua/cjson.so"
