-- client:latest/records/fetch/history (lua/codeartsbuild/batch.lua) against the emulator.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference -- 1200 builds, the last one RUNNING
local GAPS = emulator.job_ids.gaps     -- 1000 builds, every multiple of 7 deleted
local NO_STATUS = emulator.job_ids.no_status -- 500 builds, running-status answers 404 APIGW.0101
local BIG = emulator.job_ids.big       -- 100000 builds
local UNKNOWN = "00000000000000000000000000000000"

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

--- Waits (bounded) until the emulator has no request in progress, so that a request a previous
-- test cancelled while the server was still delaying it does not count in the next test's peak.
local function quiesce(emu)
  for _ = 1, 200 do
    if emu:stats().active == 0 then return end
    sleep(0.05)
  end
  error("the emulator still has requests in progress after 10 s")
end

local function collect(iterator, ...)
  local steps = {}
  for n, rec, err in iterator, ... do
    steps[#steps + 1] = { n = n, rec = rec, err = err }
  end
  return steps
end

local function numbers_of(steps)
  local out = {}
  for i, s in ipairs(steps) do out[i] = s.n end
  return out
end

local function range(from, to, skip)
  local out = {}
  for n = from, to do
    if not (skip and skip(n)) then out[#out + 1] = n end
  end
  return out
end

local function multiple_of_7(n) return n % 7 == 0 end

local function ceil_log2(n)
  local bits = 0
  while 2 ^ bits < n do bits = bits + 1 end
  return bits
end

local function record_requests(emu)
  return emu:stats().by_path_kind["record-info"]
end

--- Wall-clock seconds (with a fraction) from date(1): for reporting only, never asserted.
local function wall_clock()
  local p = assert(io.popen("date +%s.%N"))
  local now = tonumber(p:read("*l"))
  p:close()
  return now
end

describe("batch helpers against the emulator", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    client = clients.aksk(emu)
  end)

  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
  end)

  before_each(function()
    quiesce(emu)
    emu:reset()
  end)

  describe("latest", function()
    it("reads last_build_no from running-status with one request", function()
      local n = client:latest(JOB)
      assert.are.equal(1200, n)
      if math.type then assert.are.equal("integer", math.type(n)) end
      local stats = emu:stats()
      assert.are.equal(1, stats.by_path_kind["running-status"])
      assert.are.equal(0, stats.by_path_kind["record-info"])
    end)

    it("probes record-info in O(log n) requests when running-status is missing", function()
      assert.are.equal(500, client:latest(NO_STATUS))
      -- 1, 2, 4, ..., 512 (10 probes), a binary search between 256 and 512 (8), 2 past the end.
      local requests = record_requests(emu)
      assert.is_true(requests <= 2 * ceil_log2(500) + 2, "record-info requests: " .. requests)
      assert.are.equal(1, emu:stats().by_path_kind["running-status"])
    end)

    it("finds the newest build by probing past deleted builds on the gaps job", function()
      emu:faults{ { action = "status", status = 404, path_contains = "running-status" } }
      assert.are.equal(1000, client:latest(GAPS))
      -- A probe that lands on a deleted build (896, 1001) costs a second search from past it:
      -- still logarithmic, far below walking the job.
      local requests = record_requests(emu)
      assert.is_true(requests <= 4 * ceil_log2(1000) + 6, "record-info requests: " .. requests)
    end)

    it("returns not_found when the job has no build at all", function()
      local n, message, err = client:latest(UNKNOWN)
      assert.is_nil(n)
      assert.are.equal("not_found", err.kind)
      assert.are.equal(tostring(err), message)
      assert.truthy(cb.is_error(err, "not_found"))
    end)

    it("returns other failures of running-status as they are, without probing", function()
      emu:faults{ { action = "status", status = 500, path_contains = "running-status" } }
      local n, message, err = client:latest(JOB)
      assert.is_nil(n)
      assert.are.equal("http", err.kind)
      assert.are.equal(500, err.status)
      assert.truthy(message:find("running-status", 1, true), message)
      assert.are.equal(0, record_requests(emu))
    end)

    it("refuses a malformed job id without a request, and raises for a non-string", function()
      local n, _, err = client:latest("not-a-job")
      assert.is_nil(n)
      assert.are.equal("invalid", err.kind)
      assert.are.equal(0, emu:stats().requests)
      assert.has_error(function() client:latest(42) end)
    end)

    it("says decode when running-status has no usable last_build_no", function()
      emu:faults{ { action = "body", path_contains = "running-status",
        body = { status = "success", result = { last_build_no = "many" } } } }
      local n, _, err = client:latest(JOB)
      assert.is_nil(n)
      assert.are.equal("decode", err.kind)
    end)
  end)

  describe("records", function()
    it("yields every build once, in build order, when requests finish out of order", function()
      emu:faults{ { action = "delay", seconds = 0.4, job_id = JOB, build_no = { 3, 4 } } }
      -- How long each request took, from the client's on_event hook: build 5 finishes before the
      -- delayed build 3, although the walk hands them out in build order.
      local took = {}
      local watched = clients.aksk(emu, { on_event = function(e) took[e.build_no] = e.duration_ms end })
      local ok, steps = pcall(collect, assert(watched:records(JOB, { from = 1, to = 12, concurrency = 6 })))
      watched:close()
      assert(ok, steps)
      assert.are.same(range(1, 12), numbers_of(steps))
      for _, s in ipairs(steps) do
        assert.are.equal(s.n, s.rec.buildNo)
        assert.is_nil(s.err)
      end
      assert.is_true(took[5] < took[3], ("build 5 took %s ms, the delayed build 3 %s ms"):format(took[5], took[3]))
    end)

    it("keeps at most `concurrency` requests in flight, and more than one", function()
      emu:faults{ { action = "delay", seconds = 0.05, path_contains = "record-info" } }
      local steps = collect(assert(client:records(JOB, { from = 1, to = 40, concurrency = 4 })))
      assert.are.equal(40, #steps)
      local peak = emu:stats().peak_concurrency
      assert.is_true(peak <= 4, "peak " .. peak)
      assert.is_true(peak > 1, "peak " .. peak)
    end)

    it("sends one request at a time with concurrency = 1", function()
      emu:faults{ { action = "delay", seconds = 0.02, path_contains = "record-info" } }
      assert.are.equal(10, #collect(assert(client:records(JOB, { from = 1, to = 10, concurrency = 1 }))))
      assert.are.equal(1, emu:stats().peak_concurrency)
    end)

    it("walks down with order = desc", function()
      local steps = collect(assert(client:records(JOB, { from = 10, to = 20, order = "desc" })))
      local expected = {}
      for n = 20, 10, -1 do expected[#expected + 1] = n end
      assert.are.same(expected, numbers_of(steps))
    end)

    it("defaults to builds 1..latest", function()
      local steps = collect(assert(client:records(NO_STATUS, { order = "desc", limit = 3 })))
      assert.are.same({ 500, 499, 498 }, numbers_of(steps))
    end)

    it("skips missing builds by default and yields them with skip_missing = false", function()
      local steps = collect(assert(client:records(GAPS, { from = 1, to = 30 })))
      assert.are.same(range(1, 30, multiple_of_7), numbers_of(steps))

      steps = collect(assert(client:records(GAPS, { from = 1, to = 30, skip_missing = false })))
      assert.are.same(range(1, 30), numbers_of(steps))
      for _, s in ipairs(steps) do
        if multiple_of_7(s.n) then
          assert.is_nil(s.rec)
          assert.are.equal("not_found", s.err.kind)
          assert.are.equal(s.n, s.err.build_no)
        else
          assert.are.equal(s.n, s.rec.buildNo)
        end
      end
    end)

    it("yields a failed build's error and goes on with the others", function()
      emu:faults{ { action = "status", status = 500, job_id = JOB, build_no = { 5, 9 } } }
      local steps = collect(assert(client:records(JOB, { from = 1, to = 12, concurrency = 4 })))
      assert.are.same(range(1, 12), numbers_of(steps))
      for _, s in ipairs(steps) do
        if s.n == 5 or s.n == 9 then
          assert.is_nil(s.rec)
          assert.are.equal("http", s.err.kind)
          assert.are.equal(500, s.err.status)
        else
          assert.are.equal(s.n, s.rec.buildNo)
        end
      end
    end)

    it("yields only records that match `where`, a spec or a predicate", function()
      local all = collect(assert(client:records(JOB, { from = 1, to = 120 })))
      local expected = {}
      for _, s in ipairs(all) do
        if s.rec.status == "FAILED" and (s.rec.branch == "master" or s.rec.branch == "main") then
          expected[#expected + 1] = s.n
        end
      end
      assert.is_true(#expected > 0)
      local spec = { status = "FAILED", branch = { "master", "main" } }
      assert.are.same(expected, numbers_of(collect(assert(client:records(JOB, { from = 1, to = 120, where = spec })))))
      local predicate = function(rec) return rec.status == "FAILED" and rec.branch:find("^ma") ~= nil end
      assert.are.same(expected, numbers_of(collect(assert(client:records(JOB, { from = 1, to = 120,
        where = predicate })))))
    end)

    it("stops after `limit` records, counting only records that matched", function()
      local steps = collect(assert(client:records(JOB, { from = 1, to = 1000, limit = 5,
        where = { status = "SUCCESS" }, concurrency = 8 })))
      assert.are.equal(5, #steps)
      for _, s in ipairs(steps) do assert.are.equal("SUCCESS", s.rec.status) end
      assert.are.equal(0, client:pending("all"))
      assert.is_true(record_requests(emu) < 40, "requests: " .. record_requests(emu))
    end)

    it("reports progress after each build, skipped ones included", function()
      local calls = {}
      local steps = collect(assert(client:records(GAPS, { from = 1, to = 15,
        on_progress = function(done, total) calls[#calls + 1] = { done, total } end })))
      assert.are.equal(13, #steps)
      assert.are.equal(15, #calls)
      for i, call in ipairs(calls) do assert.are.same({ i, 15 }, call) end
    end)

    it("yields nothing for an empty range", function()
      assert.are.equal(0, #collect(assert(client:records(JOB, { from = 20, to = 10 }))))
      assert.are.equal(0, emu:stats().requests)
    end)

    if _VERSION == "Lua 5.4" then
      it("cancels the requests in flight at once when a 5.4 loop breaks", function()
        emu:faults{ { action = "delay", seconds = 0.5, job_id = JOB, build_no = range(4, 40) } }
        -- Through load(): the specs must stay loadable on Lua 5.1, where this is no syntax.
        local chunk = assert(load([[
          local client, job = ...
          local inside
          for n in client:records(job, { from = 1, to = 40, concurrency = 8 }) do
            if n == 3 then
              inside = client:pending("all")
              break
            end
          end
          return inside, client:pending("all")
        ]]))
        local inside, after = chunk(client, JOB)
        assert.is_true(inside > 0, "requests in flight before the break: " .. tostring(inside))
        assert.are.equal(0, after)
      end)

      it("cancels when an error leaves a 5.4 loop", function()
        emu:faults{ { action = "delay", seconds = 0.5, job_id = JOB, build_no = range(3, 40) } }
        local chunk = assert(load([[
          local client, job = ...
          for n in client:records(job, { from = 1, to = 40, concurrency = 8 }) do
            if n == 2 then error("stop here") end
          end
        ]]))
        local ok, message = pcall(chunk, client, JOB)
        assert.is_false(ok)
        assert.truthy(tostring(message):find("stop here", 1, true))
        assert.are.equal(0, client:pending("all"))
      end)
    end

    it("cancels the requests in flight when an abandoned iterator is collected", function()
      emu:faults{ { action = "delay", seconds = 0.5, job_id = JOB, build_no = range(4, 40) } }
      -- The 4th value (the 5.4 closer) is dropped on purpose: this is the older Lua path.
      local function walk_three()
        local iterator = client:records(JOB, { from = 1, to = 40, concurrency = 8 })
        for _ = 1, 3 do iterator() end
        return client:pending("all")
      end
      assert.is_true(walk_three() > 0)
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, client:pending("all"))
    end)

    it("shares a client with another walk and with the caller's own requests", function()
      local own = {}
      for n = 100, 103 do own[#own + 1] = assert(client:submit(JOB, n)) end
      local asc = client:records(JOB, { from = 1, to = 20, concurrency = 3 })
      local desc = client:records(JOB, { from = 1, to = 20, order = "desc", concurrency = 3 })
      local up, down = {}, {}
      for _ = 1, 20 do
        up[#up + 1] = (asc())
        down[#down + 1] = (desc())
      end
      assert.is_nil(asc())
      assert.is_nil(desc())
      assert.are.same(range(1, 20), up)
      local expected_down = {}
      for n = 20, 1, -1 do expected_down[#expected_down + 1] = n end
      assert.are.same(expected_down, down)
      -- The caller's results were kept for the caller's poll.
      assert.are.equal(4, client:pending())
      local got = clients.drain(client, 20)
      table.sort(got, function(a, b) return a.build_no < b.build_no end)
      assert.are.equal(4, #got)
      for i, r in ipairs(got) do
        assert.are.equal(own[i], r.id)
        assert.are.equal(99 + i, r.record.buildNo)
      end
      assert.are.equal(0, client:pending())
    end)

    it("raises for a wrong option, and returns invalid for a bad build number", function()
      assert.has_error(function() client:records(JOB, { form = 1 }) end, "records: unknown option form")
      assert.has_error(function() client:records(JOB, { concurrency = 0 }) end)
      assert.has_error(function() client:records(JOB, { order = "up" }) end)
      assert.has_error(function() client:records(JOB, { limit = -1 }) end)
      assert.has_error(function() client:records(JOB, { where = { colour = "red" } }) end)
      assert.has_error(function() client:records(JOB, "fast") end)
      local iterator, message, err = client:records(JOB, { from = 0, to = 5 })
      assert.is_nil(iterator)
      assert.are.equal("invalid", err.kind)
      assert.truthy(message:find("from", 1, true))
      assert.are.equal(0, emu:stats().requests)
    end)

    it("returns latest()'s failure when `to` is left out and latest fails", function()
      local iterator, _, err = client:records(UNKNOWN)
      assert.is_nil(iterator)
      assert.are.equal("not_found", err.kind)
    end)
  end)

  describe("fetch", function()
    it("returns a list's records in input order, missing builds left out", function()
      local recs, errors = client:fetch(GAPS, { 14, 3, 7, 9, 1 })
      local got = {}
      for i, rec in ipairs(recs) do got[i] = rec.buildNo end
      assert.are.same({ 3, 9, 1 }, got)
      assert.is_nil(next(errors))
    end)

    it("maps the failed builds to their errors", function()
      emu:faults{ { action = "status", status = 503, job_id = JOB, build_no = 12 } }
      local recs, errors = client:fetch(GAPS, { 14, 3, 7 }, { skip_missing = false })
      assert.are.equal(1, #recs)
      assert.are.equal("not_found", errors[14].kind)
      assert.are.equal("not_found", errors[7].kind)
      recs, errors = client:fetch(JOB, { 12, 15, 61, 0 })
      assert.are.equal(2, #recs)
      assert.are.equal(503, errors[12].status)
      assert.are.equal("invalid", errors[0].kind)
    end)

    it("takes a range, with the records options", function()
      local recs = client:fetch(JOB, { from = 50, to = 59 }, { order = "desc", concurrency = 3 })
      assert.are.equal(10, #recs)
      for i, rec in ipairs(recs) do assert.are.equal(60 - i, rec.buildNo) end
      local ok = client:fetch(JOB, { from = 1, to = 60 }, { where = { status = "SUCCESS" }, limit = 4 })
      assert.are.equal(4, #ok)
      assert.has_error(function() client:fetch(JOB, { 1 }, { from = 3 }) end)
    end)

    it("defaults `to` to the newest build", function()
      local recs = client:fetch(NO_STATUS, { from = 497 })
      assert.are.equal(4, #recs)
      assert.are.equal(500, recs[4].buildNo)
    end)
  end)

  describe("history", function()
    it("yields every entry of the period, newest first, a page at a time", function()
      local whole = assert(client:get("/v3/jobs/" .. JOB .. "/history", { offset = 0, limit = 1, interval = 30 }))
      local total = whole.total
      assert.is_true(total > 14)
      emu:reset()
      local seen, previous = 0, math.huge
      for entry in assert(client:history(JOB, { days = 30, page_size = 7 })) do
        seen = seen + 1
        assert.is_true(entry.build_number < previous)
        previous = entry.build_number
        assert.are.equal(JOB, entry.job_id)
      end
      assert.are.equal(total, seen)
      assert.are.equal(math.ceil(total / 7), emu:stats().by_path_kind.history)
    end)

    it("fetches pages lazily", function()
      local iterator = assert(client:history(JOB, { page_size = 5 }))
      assert.are.equal(0, emu:stats().requests)
      for _ = 1, 5 do assert.is_table(iterator()) end
      assert.are.equal(1, emu:stats().by_path_kind.history)
      iterator()
      assert.are.equal(2, emu:stats().by_path_kind.history)
    end)

    it("asks for the period in days, 30 by default", function()
      local count = 0
      for _ in assert(client:history(JOB, { days = 1 })) do count = count + 1 end
      assert.is_true(count >= 1 and count <= 12, "entries in one day: " .. count)
      local query = emu:stats().last.query
      assert.truthy(query:find("interval=1", 1, true), query)
      assert(client:history(JOB))()
      query = emu:stats().last.query
      assert.truthy(query:find("interval=30", 1, true), query)
      assert.truthy(query:find("limit=100", 1, true), query)
    end)

    it("raises the err of a page that fails", function()
      emu:faults{ { action = "status", status = 500, path_contains = "history" } }
      local iterator = assert(client:history(JOB))
      local ok, err = pcall(iterator)
      assert.is_false(ok)
      assert.truthy(cb.is_error(err, "http"))
      assert.are.equal(500, err.status)
    end)

    it("checks its options and the job id", function()
      assert.has_error(function() client:history(JOB, { days = 31 }) end)
      assert.has_error(function() client:history(JOB, { page_size = 0 }) end)
      assert.has_error(function() client:history(JOB, { pages = 2 }) end)
      local iterator, _, err = client:history("nope")
      assert.is_nil(iterator)
      assert.are.equal("invalid", err.kind)
    end)
  end)

  describe("module-level calls", function()
    it("cb.latest, cb.records and cb.fetch use the default client from the environment", function()
      local code = ([[
        local cb = require "codeartsbuild"
        local last = assert(cb.latest(%q))
        local seen = {}
        for n in assert(cb.records(%q, { from = last - 2, to = last })) do seen[#seen + 1] = n end
        local recs = assert(cb.fetch(%q, { 5, 6 }))
        print(last, table.concat(seen, ","), #recs)
      ]]):format(JOB, JOB, JOB)
      local out, status = run.lua_code(code, emulator.client_env(emu))
      assert.are.equal(0, status, out)
      assert.are.equal("1200\t1198,1199,1200\t2\n", out)
    end)
  end)

  describe("memory #soak", function()
    it("stays bounded by the window while walking 100,000 builds", function()
      -- What one record costs to hold, to show what the bound rules out.
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      local held = assert(client:fetch(BIG, { from = 1, to = 1000 }, { concurrency = 32 }))
      collectgarbage()
      local per_record_kib = (collectgarbage("count") - before) / #held
      held = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()

      local baseline = collectgarbage("count")
      local peak, count, last = baseline, 0, 0
      local started = wall_clock()
      for n, rec in assert(client:records(BIG, { from = 1, to = 100000, concurrency = 32 })) do
        count = count + 1
        last = rec and n or last
        if n % 1000 == 0 then peak = math.max(peak, collectgarbage("count")) end
      end
      local seconds = wall_clock() - started
      local all_kib = per_record_kib * 100000
      -- The bound: 16 MiB above the baseline. Holding every record would take ~100000 records x
      -- ~2 KiB (measured above) ~ 200 MiB, and even holding 8,000 of them would pass the bound;
      -- a walk that keeps only its window (32 records) plus the garbage the incremental collector
      -- lets pile up between cycles (about the size of the live heap) stays far below it.
      local bound_kib = 16 * 1024
      io.stderr:write(("\n[memory] 100000 builds at concurrency 32 in %.1f s: baseline %.0f KiB, peak %.0f KiB"
        .. " (+%.0f KiB), bound +%d KiB; one record ~%.2f KiB, all of them ~%.0f MiB\n"):format(
        seconds, baseline, peak, peak - baseline, bound_kib, per_record_kib, all_kib / 1024))
      assert.are.equal(100000, count)
      assert.are.equal(100000, last)
      assert.is_true(bound_kib < all_kib / 10, "the bound must rule out holding the records")
      assert.is_true(peak - baseline < bound_kib, ("peak %.0f KiB over a baseline of %.0f KiB"):format(peak, baseline))
      assert.are.equal(0, client:pending("all"))
    end)
  end)
end)
