-- bench/logs.lua: what streaming a build's log costs, and how many requests following a build makes
-- (issue 14). Against the bundled emulator, which it starts and stops; from the checkout's root:
--
--     make && LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='build/5.4/?.so;;' \
--       lua5.4 bench/logs.lua
--
-- Options: --bytes N (the big log's size, default 50 MiB), --build-seconds S (how long the followed
-- build runs, default 20), --markdown (the tables as bench/RESULTS.md has them).
--
-- Memory is this process's peak RSS (VmHWM in /proc/self/status, reset before each case through
-- /proc/self/clear_refs), minus its RSS before the case: what the case added at its worst.
-- Requests are the emulator's counts (GET /__emulator/stats) by route.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local options = { bytes = 50 * 1024 * 1024, build_seconds = 20, markdown = false }
do
  local i = 1
  while arg[i] do
    local name = arg[i]
    if name == "--bytes" then options.bytes, i = assert(tonumber(arg[i + 1]), "--bytes N"), i + 1
    elseif name == "--build-seconds" then
      options.build_seconds, i = assert(tonumber(arg[i + 1]), "--build-seconds S"), i + 1
    elseif name == "--markdown" then options.markdown = true
    else error("unknown option " .. name) end
    i = i + 1
  end
end

local function status_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if not f then return false end
  f:write("5")
  f:close()
  return true
end

--- Runs fn() and returns what it returned, the peak RSS it added (KiB), its wall time (s) and the
-- process's peak RSS during it (KiB).
local function measure(fn)
  collectgarbage()
  collectgarbage()
  local before = status_kib("VmRSS")
  assert(reset_peak(), "/proc/self/clear_refs is not writable: no peak RSS to measure")
  local start = cb.monotonic()
  local result = fn()
  local seconds = cb.monotonic() - start
  local peak = status_kib("VmHWM")
  return result, peak - before, seconds, peak
end

local LOGS = emulator.job_ids.logs
local rows, follow_rows = {}, {}

local emu = emulator.start{ big_log_bytes = options.bytes }
local ok, failure = pcall(function()
  local client = clients.aksk(emu)
  local size = #assert(client:log(LOGS, 5)) -- a first request: connections and the module warm
  local path = os.tmpname()

  local function case(name, gzip, fn)
    emu:configure{ gzip = gzip }
    emu:reset_stats()
    local bytes, added_kib, seconds, peak_kib = measure(fn)
    size = type(bytes) == "string" and #bytes or bytes
    rows[#rows + 1] = { name = name, gzip = gzip, bytes = size, kib = added_kib, seconds = seconds,
      peak = peak_kib, requests = emu:stats().requests }
  end

  case("to_file", false, function() return assert(client:log(LOGS, 3, { to_file = path })) end)
  case("to_file", true, function() return assert(client:log(LOGS, 3, { to_file = path })) end)
  case("on_chunk (discarded)", false, function()
    return assert(client:log(LOGS, 3, { on_chunk = function() end }))
  end)
  case("tail = 100", false, function() return #assert(client:log(LOGS, 3, { tail = 100 })) end)
  case("a string (max_bytes 64 MiB)", false, function() return #assert(client:log(LOGS, 3)) end)
  os.remove(path)

  -- Following: a build that runs build_seconds, its log growing 20 lines a step; then a finished one.
  local function follow(name, n, opts)
    emu:reset_stats()
    local bytes, start = 0, cb.monotonic()
    for text in assert(client:follow(LOGS, n, opts)) do bytes = bytes + #text end
    local stats = emu:stats()
    follow_rows[#follow_rows + 1] = { name = name, bytes = bytes, seconds = cb.monotonic() - start,
      log = stats.by_path_kind["real-time-log"] or 0, status = stats.by_path_kind["record-info"] or 0,
      interval = opts and opts.interval or 2, max_interval = opts and opts.max_interval or 10 }
  end
  local steps = 5
  for _, interval in ipairs{ 2, 0.5 } do
    local n = emu:start_build{ steps = steps, step_seconds = options.build_seconds / steps, lines_per_step = 20 }
    follow(("a %g s build, interval %g s"):format(options.build_seconds, interval), n,
      { interval = interval, max_interval = interval == 2 and 10 or 2 })
  end
  follow("build 4, finished (1.1 KB)", 4)
  follow(("build 3, finished (%d MiB)"):format(math.floor(options.bytes / 1048576)), 3)
  client:close()
end)
emu:stop()
if not ok then error(failure, 0) end

local function mib(bytes) return bytes / 1048576 end

if options.markdown then
  print("| log (" .. ("%.1f"):format(mib(rows[1].bytes))
    .. " MiB) | gzip | peak RSS added | process peak RSS | time | MiB/s | requests |")
  print("|---|---|---:|---:|---:|---:|---:|")
else
  print(("%-30s %-5s %14s %14s %8s %8s %8s"):format("log", "gzip", "peak RSS +", "peak RSS", "time", "MiB/s",
    "requests"))
end
for _, r in ipairs(rows) do
  local line = options.markdown and "| %s | %s | %.1f MiB | %.1f MiB | %.2f s | %.0f | %d |"
    or "%-30s %-5s %10.1f MiB %10.1f MiB %7.2fs %8.0f %8d"
  print(line:format(r.name, r.gzip and "yes" or "no", r.kib / 1024, r.peak / 1024, r.seconds,
    mib(rows[1].bytes) / r.seconds, r.requests))
end
print()
if options.markdown then
  print("| followed | interval, max | time | bytes | real-time-log requests | record-info requests |")
  print("|---|---|---:|---:|---:|---:|")
else
  print(("%-34s %10s %8s %10s %8s %8s"):format("followed", "interval", "time", "bytes", "log req", "status"))
end
for _, r in ipairs(follow_rows) do
  local line = options.markdown and "| %s | %g s, %g s | %.1f s | %d | %d | %d |"
    or "%-34s %4g s, %2g s %7.1fs %10d %8d %8d"
  print(line:format(r.name, r.interval, r.max_interval, r.seconds, r.bytes, r.log, r.status))
end
