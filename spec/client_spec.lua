-- record_info, submit/poll and get against the emulator, over plain HTTP on loopback.
local cb = require "codeartsbuild"
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function assert_integer(value)
  assert.are.equal("number", type(value))
  assert.are.equal(math.floor(value), value)
  if math.type then assert.are.equal("integer", math.type(value)) end
end

-- What the record should hold for a raw result object, by the rules of the README.
local CAMEL = {
  build_project_id = "buildProjectId", build_record_id = "buildRecordId", parent_record_id = "parentRecordId",
  devcloud_project_id = "devcloudProjectId", codeci_job_id = "codeciJobId", user_id = "userId",
  build_no = "buildNo", daily_build_num = "dailyBuildNum", execution_id = "executionId", repo_name = "repoName",
  repo_id = "repoId", commit_message = "commitMessage", commit_create_time = "commitCreateTime",
  trigger_type = "triggerType", build_type = "buildType", domain_id = "domainId", create_time = "createTime",
  schedule_time = "scheduleTime", queued_time = "queuedTime", start_time = "startTime",
  runnable_time = "runnableTime", finish_time = "finishTime", record_status = "recordStatus",
  use_private_slave = "usePrivateSlave", err_msg = "errMsg", build_config_type = "buildConfigType",
}

local function assert_matches_raw(raw, rec)
  local expected = 0
  for key, value in pairs(raw) do
    local camel = CAMEL[key] or key
    if value == cjson.null then
      assert.is_nil(rawget(rec, camel), camel)
    else
      expected = expected + 1
      if camel == "repoId" then
        assert.are.equal(("%.0f"):format(tonumber(value)), rec.repoId)
      else
        assert.are.equal(value, rec[camel], camel)
      end
    end
  end
  assert.are.equal(expected, count_keys(rec))
end

describe("a client against the emulator", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    client = clients.aksk(emu)
  end)

  teardown(function()
    client:close()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  describe("record_info", function()
    it("returns the record the service holds", function()
      local rec = assert(client:record_info(JOB, 61))
      assert_matches_raw(emu:expected(JOB, 61), rec)
    end)

    it("gives buildNo and usePrivateSlave as integers and duration as a number of ms", function()
      local rec = assert(client:record_info(JOB, 61))
      assert_integer(rec.buildNo)
      assert.are.equal(61, rec.buildNo)
      assert_integer(rec.usePrivateSlave)
      assert.are.equal("number", type(rec.duration))
      assert.are.equal(emu:expected(JOB, 61).duration, rec.duration)
    end)

    it("leaves out JSON nulls, so a field is either a value or absent", function()
      local rec = assert(client:record_info(JOB, 61))
      local raw = emu:expected(JOB, 61)
      assert.are.equal(cjson.null, raw.tag) -- a branch build has no tag
      assert.is_nil(rec.tag)
      for _, value in pairs(rec) do
        assert.are_not.equal(cjson.null, value)
      end
    end)

    it("reads the snake_case spellings too, without storing them", function()
      local rec = assert(client:record_info(JOB, 61))
      assert.are.equal(rec.buildNo, rec.build_no)
      assert.are.equal(rec.startTime, rec.start_time)
      assert.are.equal(rec.triggerType, rec.trigger_type)
      assert.is_nil(rawget(rec, "build_no"))
      for key in pairs(rec) do
        assert.is_nil(key:find("_", 1, true), key)
      end
    end)

    it("prints as one line with number, status, branch, commit, trigger, duration and start", function()
      local rec = assert(client:record_info(JOB, 61))
      local line = tostring(rec)
      local seconds = rec.duration / 1000
      local shown = seconds < 60 and ("%.1fs"):format(seconds)
        or seconds < 3600 and ("%dm%02ds"):format(math.floor(seconds / 60), math.floor(seconds % 60))
        or ("%dh%02dm"):format(math.floor(seconds / 3600), math.floor(seconds / 60 % 60))
      local expected = ("#61 %s %s %s %s %s %s %s"):format(rec.status, rec.branch, rec.commit:sub(1, 7),
        rec.triggerType, shown, rec.startTime:sub(1, 10), rec.startTime:sub(12, 16))
      assert.are.equal(expected, line)
      assert.is_nil(line:find("\n", 1, true))
    end)

    it("shows a running build without a duration", function()
      local builds
      for _, j in ipairs(emu:jobs()) do
        if j.job_id == JOB then builds = j.builds end
      end
      local rec = assert(client:record_info(JOB, builds))
      assert.are.equal("RUNNING", rec.status)
      assert.is_nil(rec.duration)
      assert.truthy(tostring(rec):find(" RUNNING .* %- %d%d%d%d%-%d%d%-%d%d"), tostring(rec))
    end)

    it("reuses one connection for sequential requests", function()
      for n = 1, 20 do assert(client:record_info(JOB, n)) end
      local stats = emu:stats()
      assert.are.equal(20, stats.requests)
      assert.are.equal(1, stats.connections)
    end)

    it("keeps fields it does not know and does not need every field", function()
      emu:faults{ { action = "body", build_no = 5, times = 1,
        body = '{"success":true,"message":"","err_code":"","result":'
          .. '{"buildNo":5,"status":"FAILED","newField":"x","nested":{"a":null,"b":2}}}' } }
      local rec = assert(client:record_info(JOB, 5))
      assert.are.equal(5, rec.buildNo)
      assert.are.equal("FAILED", rec.status)
      assert.are.equal("x", rec.newField)
      assert.is_nil(rec.nested.a)
      assert.are.equal(2, rec.nested.b)
      assert.is_nil(rec.branch)
      assert.are.equal(4, count_keys(rec))
    end)

    it("takes the camelCase value when the server sends both spellings", function()
      emu:faults{ { action = "body", build_no = 6, times = 1,
        body = '{"success":true,"result":{"build_no":999,"buildNo":6,"start_time":"old","startTime":"new"}}' } }
      local rec = assert(client:record_info(JOB, 6))
      assert.are.equal(6, rec.buildNo)
      assert.are.equal("new", rec.startTime)
      assert.are.equal(2, count_keys(rec))
    end)
  end)

  describe("authentication", function()
    it("signs with host, x-project-id and x-sdk-date and sends no token", function()
      assert(client:record_info(JOB, 1))
      local headers = emu:stats().last.headers
      local signed = headers.Authorization:match("SignedHeaders=([^,]+),")
      assert.are.equal("host;x-project-id;x-sdk-date", signed)
      assert.truthy(headers.Authorization:find("^SDK%-HMAC%-SHA256 Access=" .. emu.ak .. ", "))
      assert.are.equal(emu.project_id, headers["X-Project-Id"])
      assert.truthy(headers["X-Sdk-Date"]:match("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$"))
      assert.is_nil(headers["X-Auth-Token"])
      assert.are.equal("127.0.0.1:" .. emu.port, headers.Host)
    end)

    it("sends an IAM token as X-Auth-Token, unsigned", function()
      local token_client = clients.token(emu)
      local rec = assert(token_client:record_info(JOB, 2))
      assert.are.equal(2, rec.buildNo)
      local headers = emu:stats().last.headers
      assert.are.equal(emu.token, headers["X-Auth-Token"])
      assert.is_nil(headers.Authorization)
      token_client:close()
    end)

    it("signs X-Security-Token for temporary credentials", function()
      local temp = clients.temporary(emu)
      assert(temp:record_info(JOB, 3))
      local headers = emu:stats().last.headers
      assert.are.equal("host;x-project-id;x-sdk-date;x-security-token",
        headers.Authorization:match("SignedHeaders=([^,]+),"))
      assert.are.equal(emu.security_token, headers["X-Security-Token"])
      temp:close()
    end)

    it("works without a project id (the header is then neither sent nor signed)", function()
      local options = clients.aksk_options(emu)
      options.project_id = nil
      local bare = assert(cb.new(options))
      assert(bare:record_info(JOB, 4))
      local headers = emu:stats().last.headers
      assert.is_nil(headers["X-Project-Id"])
      assert.are.equal("host;x-sdk-date", headers.Authorization:match("SignedHeaders=([^,]+),"))
      bare:close()
    end)
  end)

  describe("submit and poll", function()
    it("returns every submitted build once, with its record", function()
      local ids = {}
      for n = 101, 110 do
        local id = assert(client:submit(JOB, n))
        assert_integer(id)
        assert.is_nil(ids[id])
        ids[id] = n
      end
      assert.are.equal(10, client:pending())
      local results = clients.drain(client)
      assert.are.equal(10, #results)
      local seen = {}
      for _, r in ipairs(results) do
        assert.are.equal(ids[r.id], r.build_no)
        assert.are.equal(JOB, r.job_id)
        assert.are.equal(r.build_no, r.record.buildNo)
        assert.is_nil(seen[r.build_no])
        seen[r.build_no] = true
      end
      assert.are.equal(0, client:pending())
    end)

    it("runs the submitted requests concurrently", function()
      emu:faults{ { action = "delay", seconds = 0.3, path_contains = "record-info" } }
      for n = 1, 8 do assert(client:submit(JOB, n)) end
      assert.are.equal(8, #clients.drain(client))
      assert.is_true(emu:stats().peak_concurrency > 1)
    end)

    it("loses nothing when a blocking call runs while submitted requests are in flight", function()
      emu:faults{ { action = "delay", seconds = 0.2, build_no = { 201, 202, 203 } } }
      for n = 201, 203 do assert(client:submit(JOB, n)) end
      local rec = assert(client:record_info(JOB, 204))
      assert.are.equal(204, rec.buildNo)
      local results = clients.drain(client)
      local got = {}
      for _, r in ipairs(results) do got[#got + 1] = r.record.buildNo end
      table.sort(got)
      assert.are.same({ 201, 202, 203 }, got)
    end)

    it("poll(0) returns what is ready without waiting for the rest", function()
      emu:faults{ { action = "delay", seconds = 1, build_no = 301 } }
      assert(client:submit(JOB, 301))
      assert.are.same({}, client:poll(0))
      assert.are.equal(1, client:pending())
      local results = clients.drain(client)
      assert.are.equal(301, results[1].record.buildNo)
    end)

    it("poll with nothing pending returns an empty list at once", function()
      assert.are.same({}, client:poll())
    end)
  end)

  describe("get", function()
    it("performs a signed GET of a neighbouring API and tidies the JSON", function()
      local status = assert(client:get("/v1/job/" .. JOB .. "/running-status"))
      assert.are.equal("success", status.status)
      assert.is_nil(status.error) -- null in the body
      assert.truthy(tonumber(status.result.last_build_no) > 1000)
    end)

    it("runs without waiting through submit_get and poll", function()
      local id = assert(client:submit_get("/v3/jobs/" .. JOB .. "/history", { offset = 0, limit = 2, interval = 30 }))
      assert(client:submit(JOB, 5))
      local got = {}
      for _, r in ipairs(clients.drain(client)) do got[r.id] = r end
      local entry = got[id]
      assert.are.equal("/v3/jobs/" .. JOB .. "/history", entry.path)
      assert.are.equal(2, #entry.body.history_records)
      assert.is_nil(entry.build_no)
      local _, _, err = client:submit_get("no-slash")
      assert.are.equal("invalid", err.kind)
    end)

    it("sends the query and gets integers back for integral numbers", function()
      local page = assert(client:get("/v3/jobs/" .. JOB .. "/history", { offset = 0, limit = 5, interval = 30 }))
      assert.are.equal(5, #page.history_records)
      assert_integer(page.total)
      assert_integer(page.history_records[1].build_number)
      assert.are.equal("/v3/jobs/" .. JOB .. "/history", emu:stats().last.path)
    end)
  end)

  describe("the spelling the service sends", function()
    it("gives camelCase records from a snake_case service", function()
      local snake = emulator.start{ spelling = "snake" }
      local c = clients.aksk(snake)
      local rec = assert(c:record_info(JOB, 61))
      local raw = snake:expected(JOB, 61)
      assert.is_not_nil(raw.build_no)
      assert.is_nil(raw.buildNo)
      assert_matches_raw(raw, rec)
      assert.are.equal("string", type(rec.repoId))
      c:close()
      snake:stop()
    end)
  end)
end)

describe("the on_event hook", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("hears of every request that is done, how it ended and how long it took", function()
    local events = {}
    local c = clients.aksk(emu, { retries = 1, backoff = 0, on_event = function(e) events[#events + 1] = e end })
    emu:faults{ { action = "status", status = 503, build_no = 9 } }
    assert(c:record_info(JOB, 8))
    assert.is_nil(c:record_info(JOB, 9))
    local id = assert(c:submit(JOB, 10))
    clients.drain(c)
    c:close()
    assert.are.equal(3, #events)
    local ok, failed, polled = events[1], events[2], events[3]
    assert.are.equal("request", ok.type)
    assert.are.equal("GET", ok.method)
    assert.are.equal("/v1/record/" .. JOB .. "/8/record-info", ok.path)
    assert.is_true(ok.ok)
    assert.are.equal(200, ok.status)
    assert.are.equal(1, ok.attempts)
    assert.are.equal(8, ok.build_no)
    assert.are.equal(JOB, ok.job_id)
    assert.truthy(ok.request_id:match("^%x+$"))
    assert.are.equal("number", type(ok.duration_ms))
    assert.is_false(failed.ok)
    assert.are.equal("http", failed.kind)
    assert.are.equal(503, failed.status)
    assert.are.equal(2, failed.attempts)
    assert.are.equal(id, polled.id)
    assert.are.equal(10, polled.build_no)
  end)

  it("loses no result when the hook fails, and says so on stderr", function()
    local run = require "spec.support.run"
    local code = ([[
      local cb = require "codeartsbuild"
      local c = assert(cb.new{ endpoint = %q, ak = %q, sk = %q, project_id = %q,
                               on_event = function() error("hook broke") end })
      local rec = assert(c:record_info(%q, 61))
      print("record " .. rec.buildNo)
    ]]):format(emu.url, emu.ak, emu.sk, emu.project_id, JOB)
    local out, status = run.lua_code(code)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("record 61", 1, true), out)
    assert.truthy(out:find("codeartsbuild: on_event hook failed: .*hook broke"), out)
  end)

  it("raises when on_event is not a function", function()
    assert.has_error(function() cb.new(clients.aksk_options(emu, { on_event = "print" })) end)
  end)
end)
