-- A busted helper for `make check-gc`: the usual helper, then a garbage collector that runs far
-- more often than it would, so that a __gc that runs too early, twice or in the wrong order (a
-- client collected while its results are still being read, a record metatable gone before its
-- records) shows up as a crash or a wrong value instead of hiding behind a lazy collector.
--
--   busted --helper=spec/support/aggressive_gc.lua
dofile("spec/support/helper.lua")

local collect = collectgarbage
if _VERSION == "Lua 5.4" then
  -- Generational mode, with a minor collection each time the heap grows by 1% (default 20%)
  -- and a major one each time it doubles since the last (default 100%).
  collect("generational", 1, 100)
else
  -- 5.1-5.3 and LuaJIT: a new cycle as soon as one ends, done in big steps.
  collect("setpause", 0)
  collect("setstepmul", 1000)
end

-- And a collection step every 1000 VM instructions (in generational mode a step is a whole
-- minor collection), so that collections also fall between the calls a spec makes. The hook
-- is on the main coroutine, where busted runs the specs.
debug.sethook(function() collect("step", 0) end, "", 1000)
