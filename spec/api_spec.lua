-- API versions: v3 (retiring), v4 and v1, and "auto", which moves to v1 when the gateway says v3
-- is gone and keeps going without the caller noticing.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

local function paths_of(stats)
  return stats.last and stats.last.path
end

describe("api versions", function()
  local live, retired

  setup(function()
    live = emulator.start{}
    retired = emulator.start{ retire_v3 = true }
  end)

  teardown(function()
    live:stop()
    retired:stop()
  end)

  before_each(function()
    live:reset()
    retired:reset()
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

  it("defaults to auto, starting with v3", function()
    local c = clients.aksk(live)
    assert.are.equal("auto", c:info().api)
    assert(c:record_info(JOB, 1))
    assert.are.equal("/v3/jobs/" .. JOB .. "/1/record-info", paths_of(live:stats()))
    assert.are.equal("v3", c:info().api_in_use)
    c:close()
  end)

  it("auto moves to v1 for good when v3 is retired", function()
    local c = clients.aksk(retired)
    local rec = assert(c:record_info(JOB, 61))
    assert.are.equal(61, rec.buildNo)
    local stats = retired:stats()
    assert.are.equal(2, stats.requests) -- the 404 from v3, then v1
    assert.are.equal("/v1/record/" .. JOB .. "/61/record-info", paths_of(stats))
    assert.are.equal("v1", c:info().api_in_use)
    assert(c:record_info(JOB, 62))
    assert.are.equal(3, retired:stats().requests) -- straight to v1 now
    c:close()
  end)

  it("auto keeps the ids of submitted requests when it moves", function()
    local c = clients.aksk(retired)
    local wanted = {}
    for n = 1, 10 do wanted[assert(c:submit(JOB, n))] = n end
    local results = clients.drain(c)
    assert.are.equal(10, #results)
    for _, r in ipairs(results) do
      assert.are.equal(wanted[r.id], r.build_no)
      assert.are.equal(r.build_no, r.record.buildNo)
    end
    assert.are.equal(0, c:pending())
    c:close()
  end)

  it("auto does not move on a 404 for a missing build", function()
    local c = clients.aksk(live)
    local _, _, err = c:record_info(JOB, 99999)
    assert.are.equal("not_found", err.kind)
    assert.are.equal("CB.00062001", err.code)
    assert.are.equal("v3", c:info().api_in_use)
    c:close()
  end)

  it("a fixed api = 'v3' reports the retirement instead of moving", function()
    local c = clients.aksk(retired, { api = "v3" })
    local _, _, err = c:record_info(JOB, 61)
    assert.are.equal("not_found", err.kind)
    assert.are.equal("APIGW.0101", err.code)
    assert.are.equal("v3", c:info().api_in_use)
    c:close()
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
