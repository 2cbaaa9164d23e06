-- Retries in the engine: what is retried, how many times, Retry-After, and that requests waiting
-- for a retry hold nobody else up. Also the concurrency and rate caps, which share that queue.
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

describe("retries", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  -- backoff = 0: retries happen at once, so these tests do not wait on jitter. The API is pinned: with
  -- "auto", a record request answered "no such API" (the emulator's 404) moves on to the next one.
  local function quick(extra)
    local options = { backoff = 0, api = "v1" }
    for k, v in pairs(extra or {}) do options[k] = v end
    return clients.aksk(emu, options)
  end

  for _, status in ipairs{ 429, 500, 502, 503, 504 } do
    it(("retries a %d and returns the record"):format(status), function()
      local c = quick()
      emu:faults{ { action = "status", status = status, build_no = 7, times = 2 } }
      local rec = assert(c:record_info(JOB, 7))
      assert.are.equal(7, rec.buildNo)
      assert.are.equal(3, emu:stats().requests)
      c:close()
    end)
  end

  it("retries a reset connection, a body cut short and a timeout", function()
    local c = quick{ timeout = 0.5 }
    emu:faults{
      { action = "reset", build_no = 8, times = 1 },
      { action = "cut", build_no = 9, times = 1 },
      { action = "delay", seconds = 2, build_no = 10, times = 1 },
    }
    for n = 8, 10 do
      assert.are.equal(n, assert(c:record_info(JOB, n)).buildNo)
    end
    c:close()
  end)

  it("gives up after `retries` further attempts and says how many were made", function()
    local c = quick{ retries = 2 }
    emu:faults{ { action = "status", status = 503, build_no = 11 } }
    local rec, message, err = c:record_info(JOB, 11)
    assert.is_nil(rec)
    assert.are.equal("http", err.kind)
    assert.are.equal(503, err.status)
    assert.are.equal(3, err.attempts)
    assert.is_true(err.retryable)
    assert.are.equal(err.message, message)
    assert.are.equal(3, emu:stats().requests)
    c:close()
  end)

  it("makes one attempt with retries = 0", function()
    local c = quick{ retries = 0 }
    emu:faults{ { action = "status", status = 500, build_no = 12, times = 1 } }
    local _, _, err = c:record_info(JOB, 12)
    assert.are.equal(1, err.attempts)
    assert.are.equal(1, emu:stats().requests)
    c:close()
  end)

  for _, case in ipairs{
    { "a 400", { action = "status", status = 400 }, "http" },
    { "a 401", { action = "status", status = 401 }, "auth" },
    { "a 403", { action = "status", status = 403 }, "auth" },
    { "a 404", { action = "status", status = 404 }, "not_found" },
    { "an API failure in a 200", { action = "api_fail" }, "api" },
    { "a malformed body", { action = "malformed" }, "decode" },
    { "a truncated body", { action = "truncate" }, "decode" },
  } do
    it("does not retry " .. case[1], function()
      local c = quick()
      local rule = case[2]
      rule.build_no = 13
      emu:faults{ rule }
      local _, _, err = c:record_info(JOB, 13)
      assert.are.equal(case[3], err.kind)
      assert.are.equal(1, err.attempts)
      assert.is_false(err.retryable)
      assert.are.equal(1, emu:stats().requests)
      c:close()
    end)
  end

  it("waits as long as Retry-After says before trying again", function()
    local c = quick{ max_backoff = 60 }
    emu:faults{ { action = "status", status = 429, build_no = 14, times = 1, headers = { ["Retry-After"] = "30" } } }
    local id = assert(c:submit(JOB, 14))
    for _ = 1, 3 do assert.are.same({}, c:poll(100)) end
    assert.are.equal(1, emu:stats().requests) -- without Retry-After, backoff = 0 would have retried at once
    assert.is_true(c:cancel(id))
    assert.are.equal(0, c:pending())
    c:close()
  end)

  it("caps Retry-After at max_backoff", function()
    local c = quick{ max_backoff = 0.1 }
    emu:faults{ { action = "status", status = 503, build_no = 15, times = 1, headers = { ["Retry-After"] = "3600" } } }
    assert.are.equal(15, assert(c:record_info(JOB, 15)).buildNo)
    c:close()
  end)

  it("reads Retry-After as an HTTP date", function()
    local c = quick{ max_backoff = 60 }
    emu:faults{ { action = "status", status = 503, build_no = 16, times = 1,
      headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30) } } }
    local id = assert(c:submit(JOB, 16))
    for _ = 1, 3 do assert.are.same({}, c:poll(100)) end
    assert.are.equal(1, emu:stats().requests)
    c:cancel(id)
    -- A date in the past means now.
    emu:reset()
    emu:faults{ { action = "status", status = 503, build_no = 17, times = 1,
      headers = { ["Retry-After"] = "Sun, 06 Nov 1994 08:49:37 GMT" } } }
    assert.are.equal(17, assert(c:record_info(JOB, 17)).buildNo)
    c:close()
  end)

  it("keeps the other requests flowing while some wait for their retry", function()
    local c = quick{ max_backoff = 60 }
    local backing_off = { 21, 22, 23 }
    emu:faults{ { action = "status", status = 429, build_no = backing_off, times = 3,
      headers = { ["Retry-After"] = "3" } } }
    for n = 1, 60 do assert(c:submit(JOB, n)) end
    local order = {}
    for _, r in ipairs(clients.drain(c)) do
      assert.are.equal(r.build_no, r.record.buildNo)
      order[#order + 1] = r.build_no
    end
    assert.are.equal(60, #order)
    -- The three that were told to come back later finish after all the others.
    local last_three = { order[58], order[59], order[60] }
    table.sort(last_three)
    assert.are.same(backing_off, last_three)
    c:close()
  end)
end)

describe("the engine's caps", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("never has more than `concurrency` requests in flight", function()
    local c = clients.aksk(emu, { concurrency = 3 })
    emu:faults{ { action = "delay", seconds = 0.1 } }
    for n = 1, 12 do assert(c:submit(JOB, n)) end
    assert.are.equal(12, #clients.drain(c))
    local stats = emu:stats()
    assert.are.equal(12, stats.requests)
    assert.is_true(stats.peak_concurrency <= 3, stats.peak_concurrency)
    assert.is_true(stats.peak_concurrency >= 2, stats.peak_concurrency)
    c:close()
  end)

  it("starts no more than `rate` requests per second", function()
    local c = clients.aksk(emu, { rate = 0.5 }) -- one start every two seconds
    local ids = {}
    for n = 1, 3 do ids[#ids + 1] = assert(c:submit(JOB, n)) end
    local results = c:poll(1000) -- the first is done well within this; the second may not start yet
    assert.are.equal(1, #results)
    assert.are.equal(1, emu:stats().requests)
    for _, id in ipairs(ids) do c:cancel(id) end
    assert.are.equal(0, c:pending())
    c:close()
  end)

  it("reports its settings in info()", function()
    local c = clients.aksk(emu, { concurrency = 5, rate = 7, retries = 1, backoff = 0.5, max_backoff = 2 })
    local info = c:info()
    assert.are.equal(5, info.concurrency)
    assert.are.equal(7, info.rate)
    assert.are.equal(1, info.retries)
    assert.are.equal(0.5, info.backoff)
    assert.are.equal(2, info.max_backoff)
    c:close()
  end)
end)
