-- Loaded by busted before the specs: puts the module built for this Lua on package.cpath.
local version = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath
