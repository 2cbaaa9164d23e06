-- The API emulator's steps, logs and running builds (spec/support/emulator.py), driven with curl.
local emulator = require "spec.support.emulator"
local run = require "spec.support.run"
local cjson = require "cjson"

local q = run.quote
local read = run.read
local jobs = emulator.job_ids
local LOGS = jobs.logs

local tmp

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- One GET with curl and the emulator's token. opts: headers, compressed (curl --compressed), out (a file
-- to keep the body in; then body is nil), token (false: none), method.
-- Returns {status, rc, body, json, headers (lower-case names), size, out}.
local function get(emu, path, opts)
  opts = opts or {}
  local header_file, dump = tmp .. "/request.h", tmp .. "/response.h"
  local body_file = opts.out or tmp .. "/response.body"
  os.remove(dump)
  os.remove(body_file)
  local lines = {}
  if opts.token ~= false then lines[#lines + 1] = "X-Auth-Token: " .. emu.token end
  for name, value in pairs(opts.headers or {}) do lines[#lines + 1] = name .. ": " .. value end
  run.write(header_file, table.concat(lines, "\n") .. "\n")
  local words = { "curl", "-sS", "--max-time", "60", "-X", opts.method or "GET", "-H", "@" .. header_file,
    "-D", dump, "-o", body_file, "-w", "%{http_code} %{size_download}" }
  if opts.compressed then words[#words + 1] = "--compressed" end
  words[#words + 1] = emu.url .. path
  for i, word in ipairs(words) do words[i] = q(word) end
  local out, rc = run.capture(table.concat(words, " "))
  local headers = {}
  for name, value in (read(dump) or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  local body = not opts.out and read(body_file) or nil
  local ok, decoded = pcall(cjson.decode, body or "")
  local status, size = out:match("(%d%d%d) (%d+)%s*$")
  return { status = tonumber(status), size = tonumber(size), rc = rc, body = body, headers = headers,
    json = ok and decoded or nil, out = out }
end

--- Step statuses as letters: S success, E error, R running, _ not run ("").
local function shape(steps)
  local letters = { success = "S", error = "E", running = "R", [""] = "_" }
  local out = {}
  for i, step in ipairs(steps) do out[i] = letters[step.status] or "?" end
  return table.concat(out)
end

local function record(emu, job, n)
  return get(emu, ("/v1/record/%s/%d/record-info"):format(job, n)).json.result
end

--- The whole log through v3 real-time-log, length bytes at a time, as a client following it would read
-- it: only the offsets the server returns. Returns the text and the number of requests.
local function follow_v3(emu, job, n, length)
  local parts, offset, requests = {}, 0, 0
  repeat
    local r = get(emu, ("/v3/jobs/%s/%d/real-time-log?offset=%d&length=%d"):format(job, n, offset, length))
    requests = requests + 1
    assert.are.equal(200, r.status, r.body)
    local result = r.json.result
    assert.are.equal(offset, result.current_offset)
    parts[#parts + 1] = result.content
    offset = result.offset
  until not result.has_more_data or requests > 1000
  return table.concat(parts), requests
end

setup(function()
  tmp = run.tmpdir()
end)

teardown(function()
  if tmp then os.execute("rm -rf " .. q(tmp)) end
end)

describe("the emulator's steps and logs #once", function()
  local emu
  setup(function() emu = emulator.start{} end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("lists the logs job with its Chinese steps and its big log", function()
    local by_name = {}
    for _, job in ipairs(emu:jobs()) do by_name[job.name] = job end
    assert.are.equal(LOGS, by_name.logs.job_id)
    assert.are.same({ "代码检出", "Maven构建", "单元测试", "上传软件包到软件发布库" }, by_name.logs.steps)
    assert.are.same({ emulator.big_log.build_no }, by_name.logs.big_logs)
    assert.are.equal(5, by_name.logs.last_build)
    assert.are.same({ "SUCCESS", "FAILED", "SUCCESS" },
      { record(emu, LOGS, 3).status, record(emu, LOGS, 4).status, record(emu, LOGS, 5).status })
  end)

  it("sends history-details: job, parameters with secrets as *, steps that fit the record", function()
    local r = get(emu, "/v3/jobs/" .. LOGS .. "/5/history-details")
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ "build_number", "build_steps", "job_name", "parameters", "project_id", "project_name" },
      sorted_keys(r.json))
    assert.are.same({ "logs", 5 }, { r.json.job_name, r.json.build_number })
    assert.are.equal("*", r.json.parameters.RELEASE_TOKEN)
    local rec = record(emu, LOGS, 5)
    -- the steps' times fit in the record's duration (which also counts the preparation before them)
    local function check(rec_, steps, pattern)
      local sum = 0
      for _, step in ipairs(steps) do
        assert.are.same({ "build_time", "name", "status" }, sorted_keys(step))
        assert.are.equal(step.status == "" and 0 or step.build_time, step.build_time)
        sum = sum + step.build_time
      end
      assert.is_true(sum <= rec_.duration and sum >= 0.9 * rec_.duration, ("%d vs %d"):format(sum, rec_.duration))
      assert.matches(pattern, shape(steps))
    end
    check(rec, r.json.build_steps, "^SSSS$")
    check(record(emu, LOGS, 4), get(emu, "/v3/jobs/" .. LOGS .. "/4/history-details").json.build_steps, "^S*E_*$")
    -- builds of another job: one error step exactly when FAILED, all success when SUCCESS
    for n = 20, 27 do
      local steps, status = emu:steps(jobs.reference, n)
      local want = ({ SUCCESS = "^S+$", FAILED = "^S*E_*$", ABORTED = "^S*_+$" })[status]
      assert.matches(want, shape(steps))
      assert.are.same(steps, get(emu, ("/v3/jobs/%s/%d/history-details"):format(jobs.reference, n)).json.build_steps)
    end
    -- the seeded RUNNING build: one step running, the following ones not run
    local running = get(emu, "/v3/jobs/" .. jobs.reference .. "/1200/history-details").json.build_steps
    assert.matches("^S*R_*$", shape(running))
  end)

  it("sends full-stages by record id (empty for a failed record), and the step status", function()
    local rid = record(emu, LOGS, 5).buildRecordId
    local r = get(emu, "/v1/record/" .. rid .. "/full-stages?cascade=true")
    assert.are.equal(200, r.status, r.body)
    assert.are.same({ "error", "result", "status" }, sorted_keys(r.json))
    local stages = r.json.result.build_stages
    assert.are.same({ "stage1", "stage2", "stage3", "stage4" }, sorted_keys(stages))
    assert.are.same({ "build_duration", "build_record_id", "create_time", "display_name", "duration",
      "execution_id", "execution_stage_name", "finish_time", "id", "log_status", "node_id", "pending_duration",
      "queued_time", "schedule_time", "sequence", "start_time", "status", "status_code" }, sorted_keys(stages.stage2))
    assert.are.same({ "Maven构建", 2, rid, "SUCCESS" },
      { stages.stage2.display_name, stages.stage2.sequence, stages.stage2.build_record_id, stages.stage2.status })
    assert.are.same({}, get(emu, "/v1/record/" .. record(emu, LOGS, 4).buildRecordId .. "/full-stages").json.result
      .build_stages)
    assert.are.equal(400, get(emu, "/v1/record/not-a-record-id/full-stages").status)
    assert.are.equal(422, get(emu, "/v1/record/" .. ("0"):rep(8) .. rid:sub(9) .. "/full-stages").status)

    r = get(emu, "/v1/job/" .. LOGS .. "/status?build_no=4")
    assert.are.same({ status = "success", error = cjson.null,
      result = { status = "failed", abort_status = "", label = "default-x86-2u8g" } }, r.json)
    assert.are.equal(record(emu, LOGS, 1).status:lower(), get(emu, "/v1/job/" .. LOGS .. "/status").json.result.status)
    assert.are.equal(400, get(emu, "/v1/job/" .. LOGS .. "/status?build_no=0").status)
  end)

  it("serves a log whose real-time pieces, v3 and v1, equal the downloaded file byte for byte", function()
    local rid = record(emu, LOGS, 4).buildRecordId
    local whole = get(emu, "/v1/log/" .. rid .. "/download-log")
    assert.are.equal(200, whole.status)
    assert.are.equal("application/octet-stream", whole.headers["content-type"])
    assert.are.equal(#whole.body, tonumber(whole.headers["content-length"]))
    assert.are.equal(whole.body, emu:log(LOGS, 4))
    assert.are.equal(whole.body, get(emu, "/v4/" .. rid .. "/download-log").body)
    assert.are.equal(whole.body, get(emu, "/v1/log/" .. rid .. "/download-log?compress=true&log_level=INFO").body)
    assert.truthy(whole.body:find("代码检出", 1, true))
    assert.truthy(whole.body:find(record(emu, LOGS, 4).errMsg, 1, true)) -- the failing step's error
    assert.truthy(whole.body:find("构建结束: FAILED\n$"))

    -- 333 bytes at a time: pieces end on character boundaries, so the text is the same
    local text, requests = follow_v3(emu, LOGS, 4, 333)
    assert.are.equal(whole.body, text)
    assert.is_true(requests > 3)
    assert.are.equal(whole.body, (follow_v3(emu, LOGS, 4, 1000000)))
    local one = get(emu, "/v3/jobs/" .. LOGS .. "/4/real-time-log?offset=0&length=1").json.result
    assert.are.equal(1, one.offset) -- "[" is one byte
    local past = get(emu, "/v3/jobs/" .. LOGS .. "/4/real-time-log?offset=" .. (#whole.body + 10)).json.result
    assert.are.same({ false, "", #whole.body + 10 }, { past.has_more_data, past.content, past.offset })

    -- v1: start_offset = the previous end_offset, offsets as strings
    local parts, start = {}, 0
    for _ = 1, 1000 do
      local r = get(emu, ("/v1/log/%s/4/real-time-log?start_offset=%d&size=500&sort=AES"):format(LOGS, start))
      local result = r.json.result
      assert.are.same({ "end_offset", "has_more", "location", "log", "start_offset" }, sorted_keys(result))
      assert.are.equal(tostring(start), result.start_offset)
      parts[#parts + 1] = result.log
      start = tonumber(result.end_offset)
      if not result.has_more then break end
    end
    assert.are.equal(whole.body, table.concat(parts))
    local tail = get(emu, "/v1/log/" .. LOGS .. "/4/real-time-log?sort=DESC&size=200").json.result
    assert.are.equal(whole.body:sub(tonumber(tail.start_offset) + 1), tail.log)
    assert.are.equal(tostring(#whole.body), tail.end_offset)
    assert.is_true(tail.has_more)
    local default = #get(emu, "/v1/log/" .. LOGS .. "/4/real-time-log").json.result.log -- size 1000
    assert.is_true(default <= 1000 and default > 996, tostring(default))

    local v3 = "/v3/jobs/" .. LOGS .. "/4/real-time-log"
    for _, bad in ipairs({ v3, v3 .. "?offset=-1", v3 .. "?offset=0&length=0",
      "/v1/log/" .. LOGS .. "/4/real-time-log?sort=UP", "/v1/log/" .. rid .. "/download-log?log_level=TRACE",
      "/v1/log/" .. rid .. "/download-log?compress=yes" }) do
      assert.are.equal(400, get(emu, bad).status, bad)
    end
  end)

  it("adds DEBUG lines for log_level=DEBUG, and gzips the download only when switched on and asked", function()
    local rid = record(emu, LOGS, 5).buildRecordId
    local info = get(emu, "/v1/log/" .. rid .. "/download-log")
    local debug = get(emu, "/v4/" .. rid .. "/download-log?log_level=DEBUG")
    assert.falsy(info.body:find("[DEBUG]", 1, true))
    assert.truthy(debug.body:find("[DEBUG]", 1, true))
    assert.are.equal(debug.body, emu:log(LOGS, 5, "DEBUG"))
    local asked = { ["Accept-Encoding"] = "gzip" }
    assert.is_nil(get(emu, "/v1/log/" .. rid .. "/download-log", { headers = asked }).headers["content-encoding"])
    emu:configure{ gzip = true }
    local zipped = get(emu, "/v1/log/" .. rid .. "/download-log", { compressed = true })
    assert.are.equal("gzip", zipped.headers["content-encoding"])
    assert.are.equal("chunked", zipped.headers["transfer-encoding"])
    assert.are.equal(info.body, zipped.body)
    assert.is_true(zipped.size < #info.body)
    local raw = get(emu, "/v1/log/" .. rid .. "/download-log", { headers = asked })
    assert.are.equal("\31\139", raw.body:sub(1, 2)) -- the gzip magic
    assert.is_nil(get(emu, "/v1/log/" .. rid .. "/download-log",
      { headers = { ["Accept-Encoding"] = "gzip;q=0, identity" } }).headers["content-encoding"])
    assert.is_nil(get(emu, "/v1/log/" .. rid .. "/download-log").headers["content-encoding"])
  end)

  it("streams the 50 MiB log without holding it, and serves any offset of it", function()
    local big = emulator.big_log
    local rid = record(emu, big.job_id, big.build_no).buildRecordId
    get(emu, "/v1/record/" .. rid .. "/full-stages") -- the record-id index is built before measuring
    local before = emu:memory()
    local measured = emu:reset_peak_memory()
    local file = tmp .. "/big.log"
    local r = get(emu, "/v1/log/" .. rid .. "/download-log", { out = file })
    local after = emu:memory()
    assert.are.equal(200, r.status)
    assert.is_true(r.size >= big.bytes and r.size < big.bytes + 131072, tostring(r.size))
    assert.are.equal(r.size, tonumber(r.headers["content-length"]))
    if measured and before.rss_kib and after.peak_kib then
      assert.is_true(after.peak_kib - before.rss_kib < 10 * 1024,
        ("peak %d KiB, before %d KiB"):format(after.peak_kib, before.rss_kib))
    end
    local f = assert(io.open(file, "rb"))
    local head = f:read(200)
    f:seek("set", 30000000)
    local middle = f:read(5000)
    f:seek("end", -200)
    local last = f:read(200)
    f:close()
    os.remove(file)
    assert.matches("构建任务 logs #3 开始执行", head)
    assert.matches("构建结束: SUCCESS\n$", last)
    local piece = get(emu, ("/v3/jobs/%s/%d/real-time-log?offset=30000000&length=4000"):format(big.job_id,
      big.build_no)).json.result
    assert.are.equal(middle:sub(1, #piece.content), piece.content)
    assert.is_true(#piece.content >= 3997)
    assert.are.equal(30000000 + #piece.content, piece.offset)
    assert.is_true(piece.has_more_data)
  end)

  it("keeps the big log's size configurable", function()
    local small = emulator.start{ big_log_bytes = 200000 }
    local ok, err = pcall(function()
      local text = small:log(emulator.big_log.job_id, emulator.big_log.build_no)
      assert.is_true(#text >= 200000 and #text < 331072, tostring(#text))
      local rec = record(small, emulator.big_log.job_id, emulator.big_log.build_no)
      assert.are.equal(text, get(small, "/v4/" .. rec.buildRecordId .. "/download-log").body)
      assert.are.equal(text, (follow_v3(small, emulator.big_log.job_id, emulator.big_log.build_no, 65536)))
    end)
    small:stop()
    assert(ok, err)
  end)

  it("runs a started build: RUNNING with no finish time, a running step, a growing log, then FAILED", function()
    local n, info = emu:start_build{ steps = 3, step_seconds = 0.6, result = "FAILED", lines_per_step = 3 }
    local steps = get(emu, "/v3/jobs/" .. LOGS .. "/6/history-details").json.build_steps
    assert.are.equal("R__", shape(steps))
    assert.are.equal(6, n)
    assert.are.equal(1800, info.duration_ms)
    local rec = record(emu, LOGS, n)
    assert.are.same({ "RUNNING", cjson.null, cjson.null }, { rec.status, rec.finishTime, rec.duration })
    assert.are.equal(info.build_record_id, rec.buildRecordId)
    local status = get(emu, "/v1/job/" .. LOGS .. "/running-status").json.result
    assert.are.same({ last_build_no = "6", is_running = true, last_build_status = "RUNNING", last_job_id = LOGS },
      status)
    assert.are.same({ result = true }, get(emu, "/v3/jobs/" .. LOGS .. "/status").json)

    -- follow it as a client would: offsets from the server, a pause when nothing new came
    local parts, offset, sizes, polls = {}, 0, {}, 0
    repeat
      local result = get(emu, ("/v3/jobs/%s/6/real-time-log?offset=%d"):format(LOGS, offset)).json.result
      polls = polls + 1
      parts[#parts + 1] = result.content
      if result.content ~= "" then sizes[#sizes + 1] = result.offset end
      offset = result.offset
      if result.has_more_data and result.content == "" then os.execute("sleep 0.05") end
    until not result.has_more_data or polls > 400
    assert.is_true(#sizes >= 3, "the log grew " .. #sizes .. " times")
    local followed = table.concat(parts)

    rec = record(emu, LOGS, n)
    assert.are.same({ "FAILED", 1800 }, { rec.status, rec.duration })
    assert.is_string(rec.finishTime)
    assert.is_true(rec.finishTime > rec.startTime)
    steps = get(emu, "/v3/jobs/" .. LOGS .. "/6/history-details").json.build_steps
    assert.are.same({ { "success", 600 }, { "success", 600 }, { "error", 600 } }, {
      { steps[1].status, steps[1].build_time }, { steps[2].status, steps[2].build_time },
      { steps[3].status, steps[3].build_time } })
    assert.are.equal(followed, get(emu, "/v1/log/" .. rec.buildRecordId .. "/download-log").body)
    assert.truthy(followed:find(rec.errMsg, 1, true))
    assert.truthy(followed:find("构建结束: FAILED\n$"))
    assert.is_false(get(emu, "/v1/job/" .. LOGS .. "/running-status").json.result.is_running)
    local again = get(emu, ("/v3/jobs/%s/6/real-time-log?offset=%d"):format(LOGS, offset)).json.result
    assert.are.same({ false, "" }, { again.has_more_data, again.content })
    assert.is_true(emu:wait_build(LOGS, n, 1))
  end)

  it("says has_more_data false at the end of a running build's log when running_has_more is off", function()
    emu:configure{ running_has_more = false }
    local n = emu:start_build{ job_id = jobs.second, steps = { "Only step" }, step_seconds = 5 }
    assert.are.equal(1001, n)
    local result = get(emu, ("/v3/jobs/%s/%d/real-time-log?offset=0"):format(jobs.second, n)).json.result
    assert.is_false(result.has_more_data)
    assert.truthy(result.content:find("Only step", 1, true))
    assert.is_false(get(emu, ("/v1/log/%s/%d/real-time-log"):format(jobs.second, n)).json.result.has_more)
    emu:configure{ running_has_more = true }
    assert.is_true(get(emu, ("/v3/jobs/%s/%d/real-time-log?offset=%d"):format(jobs.second, n, result.offset)).json
      .result.has_more_data)
    assert.are.equal(1, #emu:builds())
    assert.is_false(emu:wait_build(jobs.second, n, 0.1))
    emu:reset() -- started builds go with a reset
    assert.are.same({}, emu:builds())
    assert.are.equal(403, get(emu, ("/v1/record/%s/%d/record-info"):format(jobs.second, n)).status) -- no such build
    emu:start_build{ step_seconds = 1 }
    assert.are.equal(1, emu:clear_builds())
    for _, bad in ipairs({ { result = "MAYBE" }, { job_id = ("0"):rep(32) }, { steps = 0 }, { step_seconds = 0 },
      { steps = 2, fail_step = 3 }, { colour = "red" } }) do
      assert.has_error(function() emu:start_build(bad) end)
    end
  end)

  it("applies faults on the step and log paths, by kind, job and build (record-id routes too)", function()
    local rid = record(emu, LOGS, 5).buildRecordId
    local paths = {
      ["history-details"] = "/v3/jobs/" .. LOGS .. "/5/history-details",
      ["full-stages"] = "/v1/record/" .. rid .. "/full-stages",
      ["step-status"] = "/v1/job/" .. LOGS .. "/status?build_no=5",
      ["real-time-log"] = "/v3/jobs/" .. LOGS .. "/5/real-time-log?offset=0",
      ["download-log"] = "/v1/log/" .. rid .. "/download-log",
    }
    local rules = {}
    for kind in pairs(paths) do
      rules[#rules + 1] = { action = "status", status = 503, kind = kind, job_id = LOGS, build_no = 5, times = 1 }
    end
    emu:faults(rules)
    for kind, path in pairs(paths) do
      assert.are.equal(503, get(emu, path).status, kind)
      assert.are.equal(200, get(emu, path).status, kind)
    end
    assert.are.equal(200, get(emu, "/v1/log/" .. record(emu, LOGS, 4).buildRecordId .. "/download-log").status)

    emu:faults{ { action = "error", code = "CB.00030004", kind = "real-time-log", times = 1 },
      { action = "error", code = "CB.00060211", status = 200, kind = "download-log", times = 1 },
      { action = "result", value = { "a", "b" }, kind = "real-time-log", times = 1 } }
    local r = get(emu, paths["real-time-log"])
    assert.are.same({ 500, "CB.00030004" }, { r.status, r.json.error_code })
    r = get(emu, paths["download-log"])
    assert.are.same({ 200, "CB.00060211" }, { r.status, r.json.error_code })
    assert.matches("^application/json", r.headers["content-type"])
    assert.are.same({ "a", "b" }, get(emu, paths["real-time-log"]).json.result)

    local whole = get(emu, paths["download-log"]).body
    emu:faults{ { action = "truncate", kind = "download-log", times = 1 },
      { action = "cut", kind = "download-log", times = 1 } }
    r = get(emu, paths["download-log"])
    assert.are.same({ 200, 0 }, { r.status, r.rc })
    assert.are.equal(whole:sub(1, math.floor(#whole / 2)), r.body)
    r = get(emu, paths["download-log"])
    assert.are.equal(18, r.rc, r.out) -- curl: transfer closed with bytes remaining
    emu:configure{ gzip = true }
    emu:faults{ { action = "cut", kind = "download-log", times = 1 } }
    assert.are_not.equal(0, get(emu, paths["download-log"], { compressed = true }).rc)

    local stats, routes = emu:stats(), emulator.routes
    local by_route = stats.by_route
    assert.are.same({ 2, 2, 2, 4, 8 }, { by_route[routes.history_details], by_route[routes.full_stages],
      by_route[routes.step_status], by_route[routes.real_time_log_v3], by_route[routes.download_log_v1] })
    assert.are.equal(8, stats.by_path_kind["download-log"])
    assert.is_nil(stats.by_route[routes.download_log_v4])
  end)

  it("answers missing jobs, builds and records on these routes with the real contracts", function()
    emu:configure{ errors = "real" }
    local nobody = ("e"):rep(32)
    local cases = {
      { "/v3/jobs/" .. nobody .. "/1/history-details", 422, "CB.00031006" },
      { "/v3/jobs/" .. nobody .. "/1/real-time-log?offset=0", 422, "CB.00031006" },
      { "/v1/log/" .. nobody .. "/1/real-time-log", 422, "DEVCB.00031006" },
      { "/v1/job/" .. nobody .. "/status", 422, "DEVCB.00031006" },
      { "/v1/record/" .. ("0"):rep(36) .. "/full-stages", 422, "DEVCB.00031006" },
      { "/v1/log/" .. ("0"):rep(36) .. "/download-log", 422, "DEVCB.00031006" },
      { "/v4/" .. ("0"):rep(36) .. "/download-log", 422, "DEVCB.00031006" },
      { "/v3/jobs/" .. LOGS .. "/99/history-details", 403, "CB.00031059" },
      { "/v3/jobs/" .. LOGS .. "/99/real-time-log?offset=0", 403, "CB.00031059" },
      { "/v1/job/" .. LOGS .. "/status?build_no=99", 403, "CB.00031059" },
    }
    for _, case in ipairs(cases) do
      local r = get(emu, case[1])
      assert.are.same({ case[2], case[3] }, { r.status, r.json and r.json.error_code }, case[1])
    end
    emu:configure{ missing_build = "422" }
    assert.are.equal(403, get(emu, cases[8][1]).status) -- history-details: 403 is what was observed
    assert.are.same({ 422, "CB.00031006" }, { get(emu, cases[9][1]).status, get(emu, cases[9][1]).json.error_code })
    emu:configure{ retire_v4 = "backend" }
    assert.are.equal(404, get(emu, cases[7][1]).status)
    emu:configure{ errors = "legacy" }
    assert.are.same({ 404, "CB.00062001" }, { get(emu, cases[1][1]).status, get(emu, cases[1][1]).json.error_code })
  end)
end)
