--- bench/engine.lua: what the engine's waits cost and how exact its rate is (issue 11).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 bench/engine.lua [ROUNDS]
--
-- `make bench-engine` runs it and writes bench/ENGINE.md. Two measurements:
--   * the CPU a blocking call uses while it waits 3 s for a slow answer and another result waits
--     for its owner (the emulator delays the build; `submit(job, 1)` is left unpolled), alone and
--     from inside a records() loop's body: before issue 11 the wait spun (2.99 s of CPU in 3 s);
--   * requests per second at `rate` = 5, 300, 700, 2000 and 2500, counted as they arrive at
--     spec/support/arrivals.py over about 3 s each (before: 700 gave 831/s, 2500 no cap at all).
-- Wall clock from lua-system's monotonic clock, CPU from os.clock() (this process).
local system = require "system"
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"

local ROUNDS = tonumber(arg[1] or "") or 3
local JOB = emulator.job_ids.reference
local DELAY = 3

local function median(list)
  table.sort(list)
  return list[math.floor((#list + 1) / 2)]
end

local function measure(fn)
  local wall, cpu = system.monotime(), os.clock()
  fn()
  return system.monotime() - wall, os.clock() - cpu
end

--- A blocking record_info of a delayed build while another result waits unpolled.
local function wait_alone(emu)
  local client = assert(cb.new{ endpoint = emu.url, ak = emu.ak, sk = emu.sk, project_id = emu.project_id })
  assert(client:submit(JOB, 1))
  emu:faults{ { action = "delay", seconds = DELAY, build_no = 2, times = 1 } }
  local wall, cpu = measure(function() assert(client:record_info(JOB, 2)) end)
  client:close()
  return wall, cpu
end

--- The same from inside a records() walk's body.
local function wait_in_walk(emu)
  local client = assert(cb.new{ endpoint = emu.url, ak = emu.ak, sk = emu.sk, project_id = emu.project_id })
  emu:faults{ { action = "delay", seconds = DELAY, build_no = 100, times = 1 } }
  local wall, cpu
  for n in assert(client:records(JOB, { from = 1, to = 8, concurrency = 4 })) do
    if n == 1 then wall, cpu = measure(function() assert(client:record_info(JOB, 100)) end) end
  end
  client:close()
  return wall, cpu
end

local function waits()
  local emu = emulator.start{}
  local rows = {}
  for _, case in ipairs{ { "record_info, another result unpolled", wait_alone },
    { "record_info inside a records() loop body", wait_in_walk } } do
    local walls, cpus = {}, {}
    for i = 1, ROUNDS do
      emu:reset()
      walls[i], cpus[i] = case[2](emu)
    end
    rows[#rows + 1] = ("| %s | %.2f | %.1f | %.1f-%.1f |"):format(case[1], median(walls), median(cpus) * 1000,
      math.min(table.unpack(cpus)) * 1000, math.max(table.unpack(cpus)) * 1000)
  end
  emu:stop()
  return rows
end

--- Starts arrivals.py; returns its URL and a function that stops it.
local function start_arrivals()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local p = assert(io.popen(("(exec python3 spec/support/arrivals.py --port-file %s/port --parent-pid $PPID "
    .. ">/dev/null 2>&1 </dev/null) & echo $!"):format(dir)))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port
  for _ = 1, 200 do
    local f = io.open(dir .. "/port")
    port = f and tonumber(f:read("*a"))
    if f then f:close() end
    if port then break end
    system.sleep(0.05)
  end
  assert(port, "arrivals.py did not start")
  return "http://127.0.0.1:" .. port, function() os.execute(("kill %d; rm -rf %s"):format(pid, dir)) end
end

local function rates()
  local url, stop = start_arrivals()
  local counter = assert(cb.new{ endpoint = url, token = "counting" })
  local rows = {}
  for _, rate in ipairs{ 5, 300, 700, 2000, 2500 } do
    local measured = {}
    for i = 1, ROUNDS do
      assert(counter:get("/__arrivals/reset"))
      local count = math.max(16, rate * 3)
      local client = assert(cb.new{ endpoint = url, token = "counting", rate = rate })
      for _ = 1, count do assert(client:submit_get("/x")) end
      local done = 0
      while done < count do done = done + #client:poll() end
      client:close()
      local a = assert(counter:get("/__arrivals"))
      measured[i] = (a.count - 1) / (a.last - a.first)
    end
    local m = median(measured)
    rows[#rows + 1] = ("| %d | %.1f | %+.2f %% | %.1f-%.1f |"):format(rate, m, (m / rate - 1) * 100,
      math.min(table.unpack(measured)), math.max(table.unpack(measured)))
  end
  counter:close()
  stop()
  return rows
end

local out = {
  "# Engine: waits and the rate",
  "",
  ("Written by `make bench-engine` (bench/engine.lua), %d rounds of each, medians; %s; `%s`."):format(ROUNDS,
    os.date("!%Y-%m-%d %H:%M UTC"), (io.popen("uname -srm"):read("*l"))),
  "",
  ("## CPU of a blocking wait of %d s"):format(DELAY),
  "",
  "The emulator delays one build; the call waits for it while another result waits for its owner.",
  "Before issue 11 the wait spun: 2.99 s of CPU for 3 s, and 4.0 s in 5.0 s inside a loop's body.",
  "",
  "| wait | wall s | CPU ms | CPU ms, min-max |",
  "|---|---:|---:|---:|",
}
for _, row in ipairs(waits()) do out[#out + 1] = row end
for _, line in ipairs{ "", "## `rate`", "",
  "Requests counted as they arrive at spec/support/arrivals.py (one thread, answers at once), about 3 s",
  "of requests per round. Before issue 11: `rate = 700` gave 831/s and `rate = 2500` 13,723/s (no cap).",
  "", "| rate | arrived per s | off by | per s, min-max |", "|---:|---:|---:|---:|" } do
  out[#out + 1] = line
end
for _, row in ipairs(rates()) do out[#out + 1] = row end
print(table.concat(out, "\n"))
