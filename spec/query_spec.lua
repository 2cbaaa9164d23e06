-- where(), filter(), summary() and time() (lua/codeartsbuild/query.lua) on records made by hand.
local cb = require "codeartsbuild"
local query = require "codeartsbuild.query"

local function assert_integer(value, expected)
  assert.are.equal(expected, value)
  if math.type then assert.are.equal("integer", math.type(value)) end
end

-- Six builds, as the API would give them (duration in ms). Epochs: 2024-01-01T00:00:00Z is
-- 1704067200; each build starts an hour after the one before.
local function sample()
  return {
    { buildNo = 1, status = "SUCCESS", branch = "main", triggerType = "MANUAL", buildType = "branch",
      userId = "u1", repoName = "web", commit = "ABCDEF0123", startTime = "2024-01-01T00:00:00.000+00:00",
      duration = 10000 },
    { buildNo = 2, status = "FAILED", branch = "main", triggerType = "CODEHUB_TRIGGER", buildType = "branch",
      userId = "u2", repoName = "web", commit = "abc9990000", startTime = "2024-01-01T09:00:00.000+08:00",
      duration = 20000 },
    { buildNo = 3, status = "SUCCESS", branch = "develop", triggerType = "CODEHUB_TRIGGER", buildType = "tag",
      tag = "v1.0.3", userId = "u1", repoName = "api", commit = "ffff000000", startTime = "2024-01-01T02:00:00Z",
      duration = 30000 },
    { buildNo = 4, status = "ABORTED", branch = "main", triggerType = "TIMED_EXECUTION", buildType = "branch",
      userId = "u3", repoName = "web", commit = "1234567890", startTime = "2024-01-01T03:00:00.000+00:00",
      duration = 40000 },
    { buildNo = 5, status = "SUCCESS", branch = "develop", triggerType = "MANUAL", buildType = "commitId",
      userId = "u2", repoName = "api", commit = "abcd000000", startTime = "2023-12-31T23:00:00.000-05:00",
      duration = 50000 },
    { buildNo = 6, status = "RUNNING", branch = "main", triggerType = "MANUAL", buildType = "branch",
      userId = "u1", repoName = "web", commit = "0000000000", startTime = "2024-01-01T05:00:00.000+00:00" },
  }
end

local function numbers(list)
  local out = {}
  for i, rec in ipairs(list) do out[i] = rec.buildNo end
  return out
end

describe("time", function()
  it("reads the API's format to epoch seconds", function()
    assert_integer(query.time("2022-09-09T06:31:50.000+00:00"), 1662705110)
    assert_integer(query.time("2024-01-01T00:00:00.000+00:00"), 1704067200)
  end)

  it("honours any UTC offset and Z", function()
    assert_integer(query.time("2022-09-09T14:31:50.000+08:00"), 1662705110)
    assert_integer(query.time("2022-09-09T01:01:50-05:30"), 1662705110)
    assert_integer(query.time("2022-09-09T06:31:50Z"), 1662705110)
    assert_integer(query.time("2022-09-09T10:31:50+0400"), 1662705110)
  end)

  it("keeps a fraction of a second, and gives an integer when there is none", function()
    assert.are.equal(1662705110.25, query.time("2022-09-09T06:31:50.25Z"))
    assert_integer(query.time("2022-09-09T06:31:50.000Z"), 1662705110)
    assert_integer(query.time("2022-09-09 06:31:50Z"), 1662705110)
  end)

  it("counts days itself: leap years, before 1970, a bare date", function()
    assert_integer(query.time("1970-01-01T00:00:00Z"), 0)
    assert_integer(query.time("1969-12-31T23:59:59Z"), -1)
    assert_integer(query.time("2000-02-29T00:00:00Z"), 951782400)
    assert_integer(query.time("2024-03-01T00:00:00Z"), 1709251200)
    assert_integer(query.time("2100-03-01"), 4107542400)
    assert_integer(query.time("2024-01-01"), 1704067200)
  end)

  it("returns nil and a message for malformed input", function()
    for _, bad in ipairs{ "", "yesterday", "2024-13-01", "2023-02-29", "2024-01-32", "2024-01-01T24:00:00Z",
      "2024-01-01T10:00:00", "2024-01-01T10:00:00+25:00", "2024-01-01T10:00:00.Z", "2024-01-01T10:00Z",
      "2024-01-01T10:00:00+00:00x", "24-01-01" } do
      local value, message = query.time(bad)
      assert.is_nil(value, bad)
      assert.are.equal("string", type(message), bad)
    end
    local value, message = query.time(nil)
    assert.is_nil(value)
    assert.truthy(message:find("nil", 1, true))
  end)

  it("is cb.time", function()
    assert.are.equal(query.time, cb.time)
  end)
end)

describe("where", function()
  local recs = sample()

  local function matching(spec)
    return numbers(query.filter(recs, query.where(spec)))
  end

  it("matches string fields given as a string, a list or a set", function()
    assert.are.same({ 2 }, matching{ status = "FAILED" })
    assert.are.same({ 2, 4 }, matching{ status = { "FAILED", "ABORTED" } })
    assert.are.same({ 2, 4 }, matching{ status = { FAILED = true, ABORTED = true, SUCCESS = false } })
    assert.are.same({ 3, 5 }, matching{ branch = "develop" })
    assert.are.same({ 2, 3 }, matching{ trigger = "CODEHUB_TRIGGER" })
    assert.are.same({ 3 }, matching{ build_type = "tag" })
    assert.are.same({ 1, 3, 6 }, matching{ user = "u1" })
    assert.are.same({ 3, 5 }, matching{ repo = "api" })
    assert.are.same({ 3 }, matching{ tag = "v1.0.3" })
  end)

  it("ANDs the keys", function()
    assert.are.same({ 1, 6 }, matching{ branch = "main", trigger = "MANUAL" })
    assert.are.same({}, matching{ branch = "develop", status = "FAILED" })
  end)

  it("matches commit prefixes, ignoring case", function()
    assert.are.same({ 1, 2, 5 }, matching{ commit = "abc" })
    assert.are.same({ 1, 5 }, matching{ commit = "ABCD" })
    assert.are.same({ 3, 4 }, matching{ commit = { "ff", "1234" } })
  end)

  it("takes since inclusive and until exclusive, as ISO, a date or epoch seconds", function()
    -- starts: 1 00:00, 2 01:00, 3 02:00, 4 03:00, 5 04:00, 6 05:00 (all 2024-01-01 UTC)
    assert.are.same({ 3, 4, 5, 6 }, matching{ since = "2024-01-01T02:00:00Z" })
    assert.are.same({ 1, 2 }, matching{ ["until"] = "2024-01-01T02:00:00+00:00" })
    assert.are.same({ 2, 3 }, matching{ since = 1704067200 + 3600, ["until"] = 1704067200 + 3 * 3600 })
    assert.are.same({ 1, 2, 3, 4, 5, 6 }, matching{ since = "2024-01-01" })
    assert.are.same({}, matching{ ["until"] = "2024-01-01" })
  end)

  it("compares durations in seconds, and passes over records without one", function()
    assert.are.same({ 3, 4, 5 }, matching{ min_duration = 30 })
    assert.are.same({ 1, 2 }, matching{ max_duration = 20 })
    assert.are.same({ 2, 3 }, matching{ min_duration = 15, max_duration = 35 })
  end)

  it("calls match for anything else", function()
    assert.are.same({ 2, 4, 6 }, matching{ match = function(rec) return rec.buildNo % 2 == 0 end, branch = "main" })
  end)

  it("does not match a record that lacks the field asked about", function()
    assert.are.same({}, matching{ tag = "v1.0.0" })
    assert.is_false(query.where{ status = "SUCCESS" }({}))
    assert.is_false(query.where{ since = 0 }({ status = "SUCCESS" }))
  end)

  it("compares status and trigger ignoring case, and refuses values it does not know", function()
    assert.are.same({ 2 }, matching{ status = "failed" })
    assert.are.same({ 2, 4 }, matching{ status = { "Failed", "aborted" } })
    assert.are.same({ 2, 3 }, matching{ trigger = "codehub_trigger" })
    assert.is_true(query.where{ status = "SUCCESS" }({ status = "success" })) -- the service's case too
    local ok, err = pcall(query.where, { status = "nope" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("where: unknown status 'nope' (known: SUCCESS, FAILED, ABORTED, RUNNING", 1, true),
      tostring(err))
    assert.has_error(function() query.where{ trigger = { "MANUAL", "PUSH" } } end)
    assert.are.equal("FAILED", query.known_value("status", "failed"))
    assert.is_nil((query.known_value("trigger", "cron")))
  end)

  it("raises for an unknown key or a value of the wrong shape", function()
    assert.has_error(function() query.where{ colour = "red" } end)
    assert.has_error(function() query.where{ status = 3 } end)
    assert.has_error(function() query.where{ status = { 3 } } end)
    assert.has_error(function() query.where{ since = "last tuesday" } end)
    assert.has_error(function() query.where{ min_duration = "10s" } end)
    assert.has_error(function() query.where{ match = true } end)
    assert.has_error(function() query.where(42) end)
  end)

  it("returns a function given to it as it is", function()
    local f = function() return true end
    assert.are.equal(f, query.where(f))
  end)
end)

describe("filter", function()
  it("keeps matching records of a list, in order, as a new list", function()
    local recs = sample()
    local out = query.filter(recs, { branch = "main", status = { "FAILED", "RUNNING" } })
    assert.are.same({ 2, 6 }, numbers(out))
    assert.are_not.equal(recs, out)
    assert.are.equal(recs[2], out[1])
  end)

  it("takes an iterator yielding build_no, record, err and leaves out failed builds", function()
    local recs = sample()
    local i = 0
    local function iterator()
      i = i + 1
      if i > #recs + 1 then return nil end
      if i == 3 then return 99, nil, "failed" end
      local rec = recs[i > 3 and i - 1 or i]
      return rec.buildNo, rec
    end
    assert.are.same({ 1, 5 }, numbers(query.filter(iterator, function(rec) return rec.trigger == nil
      and rec.triggerType == "MANUAL" and rec.status == "SUCCESS" end)))
  end)

  it("takes an iterator yielding entries", function()
    local entries = { { result = "SUCCESS", build_number = 3 }, { result = "FAILED", build_number = 2 } }
    local i = 0
    local out = query.filter(function() i = i + 1 return entries[i] end,
      function(entry) return entry.result == "FAILED" end)
    assert.are.same({ entries[2] }, out)
  end)

  it("raises for something that is neither a list nor an iterator", function()
    assert.has_error(function() query.filter("records", {}) end)
  end)

  it("is cb.filter and cb.where", function()
    assert.are.equal(query.filter, cb.filter)
    assert.are.equal(query.where, cb.where)
  end)
end)

describe("summary", function()
  it("counts, rates and measures as computed by hand", function()
    local s = query.summary(sample())
    assert.are.equal(6, s.total)
    assert.are.same({ SUCCESS = 3, FAILED = 1, ABORTED = 1, RUNNING = 1 }, s.by_status)
    -- RUNNING is not finished: 3 successes of 5 finished builds.
    assert.are.equal(5, s.finished)
    assert.are.equal(0.6, s.success_rate)
    -- Durations 10, 20, 30, 40, 50 s: nearest rank p50 = 3rd value (ceil(2.5)), p95 = 5th (ceil(4.75)).
    assert.are.same({ min = 10, p50 = 30, p95 = 50, max = 50, count = 5 }, s.duration)
    assert.are.same({ main = 4, develop = 2 }, s.by_branch)
    assert.are.same({ MANUAL = 3, CODEHUB_TRIGGER = 2, TIMED_EXECUTION = 1 }, s.by_trigger)
    -- Build 1 starts at 00:00 UTC; build 6 at 05:00 UTC (build 5's 23:00-05:00 is 04:00 UTC).
    assert.are.equal("2024-01-01T00:00:00.000+00:00", s.first_start)
    assert.are.equal("2024-01-01T05:00:00.000+00:00", s.last_start)
  end)

  it("picks nearest-rank percentiles from twenty values", function()
    local recs = {}
    for i = 1, 20 do recs[i] = { status = "SUCCESS", duration = i * 1000 } end
    local d = query.summary(recs).duration
    assert.are.equal(10, d.p50) -- ceil(0.50 * 20) = 10th
    assert.are.equal(19, d.p95) -- ceil(0.95 * 20) = 19th
    assert.are.equal(1, d.min)
    assert.are.equal(20, d.max)
  end)

  it("has no rate and no durations when nothing finished", function()
    local s = query.summary{ { status = "RUNNING" }, {} }
    assert.are.equal(2, s.total)
    assert.are.equal(0, s.finished)
    assert.is_nil(s.success_rate)
    assert.is_nil(s.duration)
    assert.are.same({ RUNNING = 1, UNKNOWN = 1 }, s.by_status)
  end)

  it("prints a short readable report", function()
    local view = require "codeartsbuild.view"
    view.utc = true -- the local zone's offset is view_spec's
    local text = tostring(query.summary(sample()))
    view.utc = nil
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.same({
      "6 builds, started 2024-01-01 00:00 +00:00 .. 2024-01-01 05:00 +00:00",
      "status:    SUCCESS 3, ABORTED 1, FAILED 1, RUNNING 1",
      "success:   60.0% of 5 finished",
      "duration:  min 10.0s  p50 30.0s  p95 50.0s  max 50.0s  (5 timed)",
      "branches:  main 4, develop 2",
      "triggers:  MANUAL 3, CODEHUB_TRIGGER 2, TIMED_EXECUTION 1",
    }, lines)
  end)

  it("prints minutes and hours for long builds", function()
    local text = tostring(query.summary{ { status = "FAILED", duration = 192000 }, { status = "FAILED",
      duration = 3720000 } })
    assert.truthy(text:find("min 3m12s", 1, true), text)
    assert.truthy(text:find("max 1h02m", 1, true), text)
    assert.truthy(text:find("0.0% of 2 finished", 1, true), text)
  end)

  it("counts the builds fetch could not read, apart from the others", function()
    local errors = { [7] = { kind = "timeout", message = "slow" }, [8] = { kind = "http", message = "502" } }
    local s = query.summary(sample(), errors)
    assert.are.equal(6, s.total)
    assert.are.equal(2, s.failed)
    assert.are.same(errors, s.errors)
    assert.truthy(tostring(s):find("\nunread:    2 builds could not be read: #7 timeout, #8 http$"), tostring(s))
    assert.are.equal(0, query.summary(sample()).failed)
    assert.has_error(function() query.summary(nil, "fetch: invalid job_id") end,
      "summary: no records: fetch: invalid job_id")
  end)

  it("tells which builds have ended for good: an ending status and a finishTime", function()
    assert.is_true(query.ended{ status = "SUCCESS", finishTime = "2024-01-01T00:00:00Z" })
    assert.is_true(query.ended{ status = "aborted", finishTime = "2024-01-01T00:00:00Z" })
    assert.is_false(query.ended{ status = "RUNNING", finishTime = "2024-01-01T00:00:00Z" })
    assert.is_false(query.ended{ status = "SUCCESS" })
    assert.is_false(query.ended{ status = "SUCCESS", finishTime = "" })
    assert.is_false(query.ended{ status = "BUILDING", finishTime = "2024-01-01T00:00:00Z" })
    assert.is_false(query.ended{})
  end)

  it("says 0 builds for an empty list", function()
    local s = query.summary{}
    assert.are.equal(0, s.total)
    assert.are.equal("0 builds", tostring(s))
  end)

  it("takes an iterator as filter does", function()
    local recs = sample()
    local i = 0
    local s = query.summary(function()
      i = i + 1
      if recs[i] then return recs[i].buildNo, recs[i] end
    end)
    assert.are.equal(6, s.total)
    assert.are.equal(query.summary, cb.summary)
  end)
end)
