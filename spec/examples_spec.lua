-- The runnable examples, run as a user would: against the emulator, configured by the environment.
local run = require "spec.support.run"

describe("examples/quickstart.lua", function()
  it("prints a record, five more fetched concurrently, and a not_found error", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
      run.quote("build/" .. run.version .. "/?.so;;"))
    local out, status = run.capture(("%s spec/support/with-emulator --tls -- %s examples/quickstart.lua")
      :format(env, run.lua))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("client:   codeartsbuild.client{127.0.0.1:%d+, aksk, AK=EMUA%*%*%*%*}"), out)
    assert.truthy(out:find("record:   #61 %u+ %S+ %x%x%x%x%x%x%x "), out)
    for n = 56, 60 do
      assert.truthy(out:find("\n          #" .. n .. " %u+ "), out)
    end
    assert.truthy(out:find("kind=not_found what=build status=403 code=CB.00031059", 1, true), out)
  end)
end)

-- The batch examples run against an emulator of their own (with-emulator); the expectations come
-- from a second emulator with the same seed (the data set is deterministic), read one record at a
-- time with the core's record_info, and counted here by hand: not with the helpers under test.
describe("the batch examples", function()
  local emulator = require "spec.support.emulator"
  local clients = require "spec.support.clients"
  local JOB = emulator.job_ids.reference
  local FIRST, LAST = 1001, 1200 -- the examples' default: the last 200 of the job's 1200 builds
  local records = {}

  setup(function()
    local emu = emulator.start{}
    local ok, err = pcall(function()
      local client = clients.aksk(emu)
      for n = FIRST, LAST do assert(client:submit(JOB, n)) end
      for _, r in ipairs(clients.drain(client, 400)) do records[r.build_no] = assert(r.record, r.message) end
      client:close()
    end)
    emu:stop()
    assert(ok, err)
  end)

  local function run_example(script)
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
      run.quote("build/" .. run.version .. "/?.so;;"))
    return run.capture(("%s spec/support/with-emulator -- %s %s"):format(env, run.lua, script))
  end

  it("failed_builds.lua lists the FAILED builds on main, in order, and their total time", function()
    local expected, total_ms = {}, 0
    for n = FIRST, LAST do
      local rec = records[n]
      if rec.status == "FAILED" and rec.branch == "main" then
        expected[#expected + 1] = n
        total_ms = total_ms + rec.duration
      end
    end
    assert.is_true(#expected > 0)
    local out, status = run_example("examples/failed_builds.lua")
    assert.are.equal(0, status, out)
    assert.truthy(out:find(("builds %d..%d: FAILED on main"):format(FIRST, LAST), 1, true), out)
    local listed = {}
    for n in out:gmatch("\n  #(%d+) ") do listed[#listed + 1] = tonumber(n) end
    assert.are.same(expected, listed)
    for _, n in ipairs(expected) do
      assert.truthy(out:find("#" .. n .. " .-" .. records[n].commit:sub(1, 7)), out)
    end
    local seconds = total_ms / 1000
    local total = ("%dm%02ds"):format(math.floor(seconds / 60), math.floor(seconds % 60))
    assert.truthy(out:find(("%d of the last 200 builds failed on main, %s spent in them"):format(#expected, total),
      1, true), out)
  end)

  it("durations.lua prints the summary of the last 200 builds and the slowest five", function()
    local by_status, finished, successes, timed = {}, 0, 0, {}
    for n = FIRST, LAST do
      local rec = records[n]
      by_status[rec.status] = (by_status[rec.status] or 0) + 1
      if rec.status ~= "RUNNING" then finished = finished + 1 end
      if rec.status == "SUCCESS" then successes = successes + 1 end
      if rec.duration then timed[#timed + 1] = rec end
    end
    table.sort(timed, function(a, b) return a.duration > b.duration end)
    local out, status = run_example("examples/durations.lua")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("\n200 builds, started ", 1, true), out)
    for name, count in pairs(by_status) do
      assert.truthy(out:find(name .. " " .. count, 1, true), name .. " " .. count .. "\n" .. out)
    end
    assert.truthy(out:find(("success:   %.1f%% of %d finished"):format(100 * successes / finished, finished),
      1, true), out)
    assert.truthy(out:find(("(%d timed)"):format(#timed), 1, true), out)
    local slowest = out:match("slowest:\n(.*)$") or ""
    local listed = {}
    for n in slowest:gmatch("#(%d+) ") do listed[#listed + 1] = tonumber(n) end
    assert.are.same({ timed[1].buildNo, timed[2].buildNo, timed[3].buildNo, timed[4].buildNo, timed[5].buildNo },
      listed)
  end)
end)

describe("examples/cache.lua", function()
  local emulator = require "spec.support.emulator"

  it("reads the last builds twice: the second time, only the newest (running) build is asked for", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
      run.quote("build/" .. run.version .. "/?.so;;"))
    local out, status = run.capture(("%s spec/support/with-emulator -- %s examples/cache.lua %s 300"):format(env,
      run.lua, emulator.job_ids.reference))
    assert.are.equal(0, status, out)
    -- latest() and 300 builds, then latest() and build 1200, the one that is running.
    assert.truthy(out:find("run 1: 300 records, 0 errors, 301 requests, [%d.]+ s; cache: 0 read, 299 kept\n"), out)
    assert.truthy(out:find("run 2: 300 records, 0 errors, 2 requests, [%d.]+ s; cache: 299 read, 0 kept\n"), out)
    assert.truthy(out:find("build 1199 from the cache: #1199 ", 1, true), out)
    assert.truthy(out:find("kept by hand: true, written: 1\n", 1, true), out)
    assert.truthy(out:find("\ncache: first 301 requests [%d.]+ s, second 2 requests [%d.]+ s\n$"), out)
  end)
end)
