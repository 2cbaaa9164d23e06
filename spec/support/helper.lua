-- Loaded by busted before the specs: puts the module built for this Lua on package.cpath.
-- CODEARTSBUILD_BUILD_DIR picks another build folder (make check-memory's sanitizer build).
local version = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
local dir = os.getenv("CODEARTSBUILD_BUILD_DIR")
if not dir or dir == "" then dir = "build/" .. version end
package.cpath = dir .. "/?.so;" .. package.cpath
