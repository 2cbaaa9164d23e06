-- Breaking things on purpose: a thousand builds through a network and a server that misbehave,
-- and a server that goes away in the middle. Nothing may be lost, duplicated or altered.
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference
local BUILDS = 1000

-- Submits builds 1..count and polls until every one is back; returns results by build number.
local function fetch_all(client, count)
  for n = 1, count do assert(client:submit(JOB, n)) end
  local by_build, duplicates = {}, 0
  for _, r in ipairs(clients.drain(client, 2000)) do
    if by_build[r.build_no] then duplicates = duplicates + 1 end
    by_build[r.build_no] = r
  end
  return by_build, duplicates
end

local function same_record(a, b)
  for key, value in pairs(a) do
    if b[key] ~= value then return false, key end
  end
  for key in pairs(b) do
    if a[key] == nil then return false, key end
  end
  return true
end

describe("a batch through faults", function()
  local emu, reference

  setup(function()
    emu = emulator.start{}
    -- The records as a healthy server gives them, to compare the faulty run against.
    local clean = clients.aksk(emu)
    reference = fetch_all(clean, BUILDS)
    clean:close()
  end)

  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("yields every record once, unaltered, when about a tenth of the requests fail", function()
    emu:faults{
      { action = "status", status = 500, every = 50 },
      { action = "status", status = 503, every = 47 },
      { action = "status", status = 429, every = 61, headers = { ["Retry-After"] = "1" } },
      { action = "reset", every = 53 },
      { action = "cut", every = 59 },
      { action = "delay", seconds = 5, every = 97 },
    }
    local client = clients.aksk(emu, { timeout = 1, backoff = 0.05, max_backoff = 2, retries = 5 })
    local got, duplicates = fetch_all(client, BUILDS)
    client:close()
    local stats = emu:stats()
    assert.is_true(stats.requests >= BUILDS + 80, "faults were injected: " .. stats.requests)
    assert.are.equal(0, duplicates)
    for n = 1, BUILDS do
      local r = got[n]
      assert.is_not_nil(r, "build " .. n)
      assert.is_not_nil(r.record, r.message)
      local same, field = same_record(reference[n].record, r.record)
      assert.is_true(same, ("build %d differs in %s"):format(n, tostring(field)))
    end
  end)

  it("reports each build whose retries ran out with its own error, and the rest are untouched", function()
    local broken = { 100, 250, 777 }
    emu:faults{ { action = "status", status = 503, build_no = broken } }
    local client = clients.aksk(emu, { backoff = 0, retries = 2 })
    local got = fetch_all(client, BUILDS)
    client:close()
    local is_broken = {}
    for _, n in ipairs(broken) do
      is_broken[n] = true
      local err = got[n].err
      assert.are.equal("http", err.kind)
      assert.are.equal(503, err.status)
      assert.are.equal(3, err.attempts)
      assert.are.equal(n, err.build_no)
      assert.is_nil(got[n].record)
    end
    for n = 1, BUILDS do
      if not is_broken[n] then
        assert.is_true((same_record(reference[n].record, got[n].record)), "build " .. n)
      end
    end
  end)
end)

describe("a server restarted in the middle of a batch", function()
  it("is survived: the requests in flight go to the new server", function()
    local emu = emulator.start{}
    local port = emu.port
    local client = clients.aksk(emu, { backoff = 0.2, max_backoff = 1, retries = 10 })
    emu:faults{ { action = "delay", seconds = 0.2 } } -- keep requests in flight when it goes down
    for n = 1, 200 do assert(client:submit(JOB, n)) end
    local seen = {}
    local before = client:poll(1000)
    for _, r in ipairs(before) do seen[r.build_no] = r end
    emu:stop()
    local replacement = emulator.start{ port = port }
    local after = clients.drain(client, 2000)
    for _, r in ipairs(after) do
      assert.is_nil(seen[r.build_no], "build " .. r.build_no .. " came back twice")
      seen[r.build_no] = r
    end
    client:close()
    local stats = replacement:stats()
    replacement:stop()
    for n = 1, 200 do
      assert.is_not_nil(seen[n] and seen[n].record, "build " .. n .. ": " .. tostring(seen[n] and seen[n].message))
      assert.are.equal(n, seen[n].record.buildNo)
    end
    assert.is_true(#before < 200, "the restart happened mid-batch")
    assert.is_true(stats.requests > 0)
    assert.is_true(stats.connections >= 1) -- new connections were made to the new server
  end)
end)
