-- API versions: v1 (current), v4 (out of date) and v3 (unavailable soon), and "auto", which asks
-- v1 first and moves on, one extra request per move, where an API is not published.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

local function paths_of(stats)
  return stats.last and stats.last.path
end

describe("api versions", function()
  local live

  setup(function()
    live = emulator.start{}
  end)

  teardown(function()
    live:stop()
  end)

  before_each(function()
    live:reset()
  end)

  for _, case in ipairs{
    { "v3", "/v3/jobs/" .. JOB .. "/61/record-info" },
    { "v4", "/v4/jobs/" .. JOB .. "/61/record-info" },
    { "v1", "/v1/record/" .. JOB .. "/61/record-info" },
  } do
    it(("api = %q asks %s and returns the same record"):format(case[1], case[2]), function()
      local c = clients.aksk(live, { api = case[1] })
      local rec = assert(c:record_info(JOB, 61))
      assert.are.equal(case[2], paths_of(live:stats()))
      assert.are.equal(61, rec.buildNo)
      assert.are.equal(live:expected(JOB, 61).commit, rec.commit)
      assert.are.equal(math.floor(live:expected(JOB, 61).duration), math.floor(rec.duration))
      assert.are.equal(case[1], c:info().api_in_use)
      c:close()
    end)
  end

  it("defaults to auto, starting with v1 (the current API)", function()
    local c = clients.aksk(live)
    assert.are.equal("auto", c:info().api)
    assert(c:record_info(JOB, 1))
    assert.are.equal("/v1/record/" .. JOB .. "/1/record-info", paths_of(live:stats()))
    assert.are.equal("v1", c:info().api_in_use)
    c:close()
  end)

  for _, where in ipairs{ "gateway", "backend" } do
    it(("auto needs no extra request when v3 is retired at the %s"):format(where), function()
      local emu = emulator.start{ retire_v3 = where }
      local c = clients.aksk(emu)
      assert.are.equal(20, #assert(c:fetch(JOB, { from = 1, to = 20 })))
      assert.are.equal(20, emu:stats().requests)
      assert.are.equal("v1", c:info().api_in_use)
      c:close()
      emu:stop()
    end)
  end

  it("auto moves on for good, one extra request per move, when v1 (and v4) are not published", function()
    for _, case in ipairs{
      { rules = { { action = "error", code = "APIG.0101", path_contains = "/v1/record/" } }, lands = "v4", extra = 1 },
      { rules = { { action = "error", code = "CB.00060214", path_contains = "/v1/record/" },
        { action = "error", code = "APIG.0101", path_contains = "/v4/jobs/" } }, lands = "v3", extra = 2 },
    } do
      live:reset()
      live:faults(case.rules)
      local c = clients.aksk(live)
      local wanted = {}
      for n = 1, 10 do wanted[assert(c:submit(JOB, n))] = n end
      local results = clients.drain(c)
      assert.are.equal(10, #results)
      for _, r in ipairs(results) do
        assert.are.equal(wanted[r.id], r.build_no) -- the ids stay those submit gave
        assert.are.equal(r.build_no, assert(r.record, r.message).buildNo)
      end
      assert.are.equal(10 + case.extra, live:stats().requests)
      assert.are.equal(case.lands, c:info().api_in_use)
      assert(c:record_info(JOB, 11))
      assert.are.equal(11 + case.extra, live:stats().requests) -- straight there now
      c:close()
    end
  end)

  it("auto does not move on a missing build or job", function()
    local c = clients.aksk(live)
    local _, _, err = c:record_info(JOB, 99999)
    assert.are.same({ "not_found", "build", "CB.00031059" }, { err.kind, err.what, err.code })
    _, _, err = c:record_info(("9"):rep(32), 1)
    assert.are.same({ "not_found", "job", "DEVCB.00031006" }, { err.kind, err.what, err.code })
    assert.are.equal("v1", c:info().api_in_use)
    assert.are.equal(2, live:stats().requests)
    c:close()
  end)

  for _, where in ipairs{ "gateway", "backend" } do
    it(("a fixed api = 'v3' reports a retirement at the %s instead of moving"):format(where), function()
      local emu = emulator.start{ retire_v3 = where }
      local c = clients.aksk(emu, { api = "v3" })
      local _, message, err = c:record_info(JOB, 61)
      assert.are.same({ "not_found", "api", where == "gateway" and "APIG.0101" or "CB.00060214" },
        { err.kind, err.what, err.code })
      assert.truthy(message:find("the v3 record-info API is not published here", 1, true), message)
      assert.are.equal("v3", c:info().api_in_use)
      c:close()
      emu:stop()
    end)
  end

  it("makes the same record of every version and spelling (duration an integer where it is one)", function()
    local snake = emulator.start{ spelling = "snake" }
    local records = {}
    for _, emu in ipairs{ live, snake } do
      for _, api in ipairs{ "v1", "v4", "v3" } do
        local c = clients.aksk(emu, { api = api })
        records[#records + 1] = assert(c:record_info(JOB, 61))
        c:close()
      end
    end
    snake:stop()
    for i = 2, #records do assert.are.same(records[1], records[i]) end
    if math.type then assert.are.equal("integer", math.type(records[1].duration)) end
  end)

  it("reads a v1 failure envelope as an api error", function()
    local c = clients.aksk(live, { api = "v1", retries = 0 })
    live:faults{ { action = "api_fail", code = "CB.00069999", message = "job is locked" } }
    local _, message, err = c:record_info(JOB, 61)
    assert.are.equal("api", err.kind)
    assert.are.equal("CB.00069999", err.code)
    assert.truthy(message:find("job is locked", 1, true))
    c:close()
  end)

  it("refuses an unknown api", function()
    local c, _, err = cb.new(clients.aksk_options(live, { api = "v2" }))
    assert.is_nil(c)
    assert.are.equal("invalid", err.kind)
    assert.has_error(function() cb.new(clients.aksk_options(live, { api = 3 })) end)
  end)
end)
