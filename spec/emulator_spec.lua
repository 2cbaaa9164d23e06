-- The API emulator itself (spec/support/emulator.py, emulator.lua, with-emulator), driven with curl.
local emulator = require "spec.support.emulator"
local run = require "spec.support.run"
local cjson = require "cjson"

local q = run.quote
local jobs = emulator.job_ids
local SCRIPT = "spec/support/emulator.py"
local PYTHON = q(emulator.python_path())

local CAMEL_FIELDS = {
  "id", "buildProjectId", "buildRecordId", "parentRecordId", "devcloudProjectId", "codeciJobId", "userId",
  "buildNo", "dailyBuildNum", "executionId", "repoName", "repoId", "branch", "tag", "commit", "commitMessage",
  "commitCreateTime", "triggerType", "buildType", "status", "domainId", "createTime", "scheduleTime",
  "queuedTime", "startTime", "runnableTime", "finishTime", "duration", "recordStatus", "usePrivateSlave",
  "region", "errMsg", "buildConfigType",
}
local SNAKE_FIELDS = {
  "id", "build_project_id", "build_record_id", "parent_record_id", "devcloud_project_id", "codeci_job_id",
  "user_id", "build_no", "daily_build_num", "execution_id", "repo_name", "repo_id", "branch", "tag", "commit",
  "commit_message", "commit_create_time", "trigger_type", "build_type", "status", "domain_id", "create_time",
  "schedule_time", "queued_time", "start_time", "runnable_time", "finish_time", "duration", "record_status",
  "use_private_slave", "region", "err_msg", "build_config_type",
}

local tmp -- this spec's scratch directory

local read = run.read

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function sorted_copy(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy)
  return copy
end

local function process_gone(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  if stat and stat:match(".*%)%s+(%a)") == "Z" then return true end
  local _, status = run.capture("kill -0 " .. pid)
  return status ~= 0
end

local function wait_until_gone(pid, seconds)
  for _ = 1, seconds * 20 do
    if process_gone(pid) then return true end
    os.execute("sleep 0.05")
  end
  return process_gone(pid)
end

--- SDK-style signed headers from emulator.py's own signer (secrets travel in the environment only).
local SIGN_PY = [[
import json, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, "spec/support")
import emulator
spec = json.loads(os.environ["SIGN_SPEC"])
headers = emulator.sign_request_headers(spec["method"], spec["url"], os.environ["SIGN_AK"],
                                        os.environ["SIGN_SK"], spec.get("headers") or {}, sdk_date=spec.get("date"))
with open(sys.argv[1], "w") as out:
    for name, value in headers.items():
        out.write("%s: %s\n" % (name, value))
]]

local function sign_into(file, sign, method, url)
  local spec = cjson.encode({ method = method, url = url, headers = sign.headers or {}, date = sign.date })
  local env_file = tmp .. "/sign.env" -- the secrets stay out of every command line
  run.write(env_file, ("export SIGN_AK=%s SIGN_SK=%s SIGN_SPEC=%s\n"):format(q(sign.ak), q(sign.sk), q(spec)))
  local out, status = run.capture((". %s; %s -c %s %s"):format(q(env_file), PYTHON, q(SIGN_PY), q(file)))
  assert(status == 0, out)
end

--- One request with curl. opts: method, token (send the emulator's X-Auth-Token), headers, sign
-- ({ak, sk, headers, date}: sign with emulator.py's signer), cacert (false: none), url (base).
-- data (a request body). Returns {status, rc, body, json, headers (lower-case names), out}.
local function request(emu, path, opts)
  opts = opts or {}
  local method = opts.method or "GET"
  local url = (opts.url or emu.url) .. path
  local header_file, dump, body_file = tmp .. "/request.h", tmp .. "/response.h", tmp .. "/response.body"
  os.remove(dump)
  os.remove(body_file)
  local lines = {}
  if opts.token then lines[#lines + 1] = "X-Auth-Token: " .. emu.token end
  for name, value in pairs(opts.headers or {}) do lines[#lines + 1] = name .. ": " .. value end
  run.write(header_file, table.concat(lines, "\n") .. "\n")
  local words = { "curl", "-sS", "--max-time", "10", "-X", method, "-H", "@" .. header_file, "-D", dump,
    "-o", body_file, "-w", "%{http_code}" }
  if opts.sign then
    local signed_file = tmp .. "/signed.h"
    sign_into(signed_file, opts.sign, method, url)
    words[#words + 1] = "-H"
    words[#words + 1] = "@" .. signed_file
  end
  if emu.ca_file and opts.cacert ~= false then
    words[#words + 1] = "--cacert"
    words[#words + 1] = opts.cacert or emu.ca_file
  end
  if opts.data then
    local data_file = tmp .. "/request.body"
    run.write(data_file, opts.data)
    words[#words + 1] = "--data-binary"
    words[#words + 1] = "@" .. data_file
  end
  words[#words + 1] = url
  for i, word in ipairs(words) do words[i] = q(word) end
  local out, rc = run.capture(table.concat(words, " "))
  local body = read(body_file)
  local headers = {}
  for name, value in (read(dump) or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  local ok, decoded = pcall(cjson.decode, body or "")
  return { status = tonumber(out:match("(%d%d%d)%s*$")), rc = rc, body = body, json = ok and decoded or nil,
    headers = headers, out = out }
end

local function record_path(api, job_id, n)
  if api == "v1" then return ("/v1/record/%s/%s/record-info"):format(job_id, n) end
  return ("/%s/jobs/%s/%s/record-info"):format(api, job_id, n)
end

local function vectors_file()
  local shared = "../shared/reference/signing-vectors.json"
  if read(shared) then return shared end
  return "spec/fixtures/signing-vectors.json"
end

setup(function()
  tmp = run.tmpdir()
end)

teardown(function()
  if tmp then os.execute("rm -rf " .. q(tmp)) end
end)

describe("emulator.py --check-vectors #once", function()
  it("passes on the published vectors: 5 signing vectors and the canonical query", function()
    local out, status = run.capture(PYTHON .. " " .. SCRIPT .. " --check-vectors " .. q(vectors_file()))
    assert.are.equal(0, status, out)
    for _, id in ipairs({ "py-get", "py-post", "go-get", "go-post", "doc-example", "canonical_query" }) do
      assert.truthy(out:find("ok " .. id .. "\n", 1, true), id .. " not ok in:\n" .. out)
    end
    assert.truthy(out:find("vectors: 6 ok, 0 failed", 1, true), out)
  end)

  it("keeps spec/fixtures/signing-vectors.json an exact copy of the shared file", function()
    local shared = read("../shared/reference/signing-vectors.json")
    if shared then
      assert.are.equal(shared, read("spec/fixtures/signing-vectors.json"))
    end
  end)

  it("fails when a signature or the canonical query is altered", function()
    local text = assert(read(vectors_file()))
    local altered = text:gsub("Signature=cfb4171a", "Signature=dfb4171a"):gsub("path=%%2Ftmp", "path=/tmp")
    assert.are_not.equal(text, altered)
    local file = tmp .. "/altered-vectors.json"
    run.write(file, altered)
    local out, status = run.capture(PYTHON .. " " .. SCRIPT .. " --check-vectors " .. q(file))
    assert.are_not.equal(0, status)
    assert.truthy(out:find("FAIL py-get: authorization differs", 1, true), out)
    assert.truthy(out:find("FAIL canonical_query:", 1, true), out)
    assert.truthy(out:find("ok go-get\n", 1, true), out)
    assert.truthy(out:find("vectors: 4 ok, 2 failed", 1, true), out)
  end)

  it("fails on a vector with nothing to check or a field it would not check", function()
    local file = tmp .. "/odd-vectors.json"
    local dated = { ["X-Sdk-Date"] = "20200101T000000Z" }
    run.write(file, cjson.encode({ vectors = {
      { id = "empty", ak = "A", sk = "S", method = "GET", path = "/", headers = dated },
      { id = "extra", ak = "A", sk = "S", method = "GET", path = "/", headers = dated,
        authorization = "x", expected_signature = "y" },
    } }))
    local out, status = run.capture(PYTHON .. " " .. SCRIPT .. " --check-vectors " .. q(file))
    assert.are_not.equal(0, status)
    assert.truthy(out:find("FAIL empty: no expected values", 1, true), out)
    assert.truthy(out:find("FAIL extra: unknown field 'expected_signature'", 1, true), out)
    assert.truthy(out:find("vectors: 0 ok, 2 failed", 1, true), out)
  end)
end)

describe("the emulator (camelCase, seed 1) #once", function()
  local emu
  -- These answers are the legacy contract's (the real one has its own describe below).
  setup(function() emu = emulator.start{ errors = "legacy" } end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("starts with the contract it was given", function()
    assert.are.same({ errors = "legacy", missing_build = "403", retire_v3 = "off", retire_v4 = "off", gzip = false,
      running_has_more = true }, emu:settings())
  end)

  it("announces itself in the ready file and on stdout, and stays quiet on stderr", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", emu.url)
    assert.are.equal("http", emu.scheme)
    assert.are.equal("http://127.0.0.1:" .. emu.port, emu.url)
    local ready = cjson.decode(read(emu.dir .. "/ready.json"))
    assert.are.equal(emu.pid, ready.pid)
    local line = read(emu.dir .. "/stdout")
    assert.are.equal(emu.port, cjson.decode(line).port)
    request(emu, record_path("v3", jobs.reference, 61), { token = true })
    request(emu, record_path("v3", jobs.reference, 61))
    assert.are.equal("", read(emu.dir .. "/stderr"))
  end)

  it("refuses an unauthenticated request with 401 APIGW.0301 and an X-Request-Id", function()
    local r = request(emu, record_path("v3", jobs.reference, 61))
    assert.are.equal(401, r.status)
    assert.are.equal("APIGW.0301", r.json.error_code)
    assert.matches("^Incorrect IAM authentication information: missing token$", r.json.error_msg)
    assert.matches("^%x+$", r.headers["x-request-id"])
    assert.are.equal(32, #r.headers["x-request-id"])
    assert.are.equal(r.headers["x-request-id"]:lower(), r.headers["x-request-id"])
    local again = request(emu, record_path("v3", jobs.reference, 61))
    assert.are_not.equal(r.headers["x-request-id"], again.headers["x-request-id"])
  end)

  it("refuses a wrong token without echoing it", function()
    local r = request(emu, record_path("v3", jobs.reference, 61), { headers = { ["X-Auth-Token"] = "not-the-token" } })
    assert.are.equal(401, r.status)
    assert.are.equal("Incorrect IAM authentication information: invalid token", r.json.error_msg)
    assert.falsy(r.body:find("not-the-token", 1, true))
  end)

  it("answers v3 record-info with the success envelope and a 33-field camelCase record", function()
    local r = request(emu, record_path("v3", jobs.reference, 61), { token = true })
    assert.are.equal(200, r.status, r.body)
    assert.matches("^application/json", r.headers["content-type"])
    assert.are.equal(#r.body, tonumber(r.headers["content-length"]))
    assert.are.same({ "err_code", "message", "result", "success" }, sorted_keys(r.json))
    assert.are.equal(true, r.json.success)
    assert.are.equal("", r.json.message)
    assert.are.equal("", r.json.err_code)
    local rec = r.json.result
    assert.are.same(sorted_copy(CAMEL_FIELDS), sorted_keys(rec))
    assert.are.equal(61, rec.buildNo)
    assert.are.equal(jobs.reference, rec.codeciJobId)
    assert.are.equal("number", type(rec.repoId))
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%+00:00$", rec.startTime)
    assert.matches("^%d%d%d%d%d%d%d%d%.%d+$", rec.dailyBuildNum)
    assert.matches("^%x+$", rec.commit)
    assert.are.equal(40, #rec.commit)
    assert.matches('"duration": %d+%.0[,}]', r.body) -- a float, as on the reference page
    assert.are.same(emu:expected(jobs.reference, 61), rec)
  end)

  it("answers v4 and v1 record-info with the status envelope and an integer duration", function()
    local v3 = emu:expected(jobs.second, 5)
    for _, api in ipairs({ "v4", "v1" }) do
      local r = request(emu, record_path(api, jobs.second, 5), { token = true })
      assert.are.equal(200, r.status, r.body)
      assert.are.same({ "error", "result", "status" }, sorted_keys(r.json))
      assert.are.equal("success", r.json.status)
      assert.are.equal(cjson.null, r.json.error)
      assert.are.same(sorted_copy(CAMEL_FIELDS), sorted_keys(r.json.result))
      assert.matches('"duration": %d+[,}]', r.body)
      assert.are.equal(v3.duration, r.json.result.duration)
      assert.are.equal(v3.id, r.json.result.id)
    end
  end)

  it("generates the same records every time, RUNNING only for the newest build", function()
    local newest = emu:expected(jobs.reference, 1200)
    assert.are.equal("RUNNING", newest.status)
    assert.are.equal(cjson.null, newest.finishTime)
    assert.are.equal(cjson.null, newest.duration)
    assert.are.equal("2024-01-01T00:00:00.000+00:00", emu:expected(jobs.reference, 1).startTime)
    local seen, previous_start = {}, ""
    for n = 1, 30 do
      local rec = emu:expected(jobs.reference, n)
      assert.are_not.equal("RUNNING", rec.status)
      assert.is_true(rec.startTime > previous_start)
      previous_start = rec.startTime
      seen[rec.status] = true
      if rec.buildType == "tag" then
        assert.is_string(rec.tag)
      else
        assert.are.equal(cjson.null, rec.tag)
      end
      if rec.status == "FAILED" then assert.is_string(rec.errMsg) else assert.are.equal(cjson.null, rec.errMsg) end
    end
    assert.is_true(seen.SUCCESS)
    assert.is_true(seen.FAILED)
    assert.are.same(emu:expected(jobs.big, 99999), emu:expected(jobs.big, 99999))
  end)

  it("answers 404 CB.00062001 for a deleted (gap) build, a missing build and an unknown job", function()
    assert.are.equal(200, request(emu, record_path("v3", jobs.gaps, 13), { token = true }).status)
    for _, path in ipairs({ record_path("v3", jobs.gaps, 14), record_path("v1", jobs.gaps, 700),
      record_path("v3", jobs.reference, 1201), record_path("v4", ("e"):rep(32), 1) }) do
      local r = request(emu, path, { token = true })
      assert.are.equal(404, r.status, path)
      assert.are.same({ error_code = "CB.00062001", error_msg = "build record not found" }, r.json)
    end
    local missing, status = emu:expected(jobs.gaps, 14)
    assert.is_nil(missing)
    assert.are.equal(404, status)
  end)

  it("answers 400 CB.00060200 for a malformed job id or build number", function()
    for _, path in ipairs({ record_path("v3", ("a"):rep(31), 1), record_path("v3", ("a"):rep(31) .. "-", 1),
      record_path("v3", jobs.reference, 0), record_path("v1", jobs.reference, "x1"),
      record_path("v4", jobs.reference, "-3") }) do
      local r = request(emu, path, { token = true })
      assert.are.equal(400, r.status, path)
      assert.are.same({ error_code = "CB.00060200", error_msg = "Invalid param" }, r.json)
    end
  end)

  it("answers 404 APIGW.0101 for an unknown path, and 405 for a non-GET API call", function()
    for _, path in ipairs({ "/v3/jobs/" .. jobs.reference .. "/61/record-info/", "/nothing", "/v2/x" }) do
      local r = request(emu, path, { token = true })
      assert.are.equal(404, r.status, path)
      assert.are.equal("APIGW.0101", r.json.error_code)
      assert.matches("^%x+$", r.headers["x-request-id"])
    end
    local r = request(emu, record_path("v3", jobs.reference, 61), { token = true, method = "POST" })
    assert.are.equal(405, r.status)
    assert.is_string(r.json.error_code)
  end)

  it("serves running-status, status and history", function()
    local r = request(emu, "/v1/job/" .. jobs.second .. "/running-status", { token = true })
    assert.are.equal(200, r.status)
    assert.are.same({ status = "success", error = cjson.null, result = { last_build_no = "1000",
      last_build_status = "RUNNING", is_running = true, last_job_id = jobs.second } }, r.json)
    r = request(emu, "/v3/jobs/" .. jobs.second .. "/status", { token = true })
    assert.are.same({ result = true }, r.json)
    r = request(emu, "/v1/job/" .. jobs.no_status .. "/running-status", { token = true })
    assert.are.equal(404, r.status)
    assert.are.equal("APIGW.0101", r.json.error_code)

    local base = "/v3/jobs/" .. jobs.gaps .. "/history"
    r = request(emu, base .. "?offset=0&limit=5&interval=30", { token = true })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(5, #r.json.history_records)
    local first = r.json.history_records[1]
    assert.are.same({ "build_number", "end_time", "job_id", "record_id", "result", "start_time" }, sorted_keys(first))
    assert.are.equal(1000, first.build_number)
    assert.are.equal("RUNNING", first.result)
    assert.are.equal(cjson.null, first.end_time)
    local numbers = {}
    for i, h in ipairs(r.json.history_records) do numbers[i] = h.build_number end
    assert.are.same({ 1000, 999, 998, 997, 996 }, numbers)
    assert.are.equal(emu:expected(jobs.gaps, 999).id, r.json.history_records[2].record_id)
    local total = r.json.total
    assert.is_true(total > 100)
    local page = request(emu, base .. "?offset=1&limit=5&interval=30", { token = true }).json
    assert.are.equal(total, page.total)
    assert.are.equal(995, page.history_records[1].build_number)
    assert.are.equal(993, page.history_records[2].build_number) -- 994 = 7 * 142 is deleted
    local short = request(emu, base .. "?offset=0&limit=100&interval=1", { token = true }).json
    assert.is_true(short.total < total)
    for _, query in ipairs({ "", "?offset=0&limit=5", "?offset=0&limit=101&interval=3",
      "?offset=0&limit=5&interval=31", "?offset=-1&limit=5&interval=3", "?offset=0&limit=0&interval=3" }) do
      local bad = request(emu, base .. query, { token = true })
      assert.are.equal(400, bad.status, query)
      assert.are.equal("CB.00060200", bad.json.error_code)
    end
  end)

  describe("AK/SK", function()
    local function sign(overrides)
      local s = { ak = emu.ak, sk = emu.sk, headers = { ["X-Project-Id"] = emu.project_id,
        ["Content-Type"] = "application/json", ["User-Agent"] = "huaweicloud-usdk-lua/3.0" } }
      for k, v in pairs(overrides or {}) do s[k] = v end
      return s
    end
    local path = record_path("v3", jobs.reference, 61)

    it("accepts a request signed as the SDKs sign it, with a query too", function()
      assert.are.equal(200, request(emu, path, { sign = sign() }).status)
      local r = request(emu, "/v3/jobs/" .. jobs.reference .. "/history?offset=0&limit=3&interval=7", { sign = sign() })
      assert.are.equal(200, r.status, r.body)
      assert.matches("^SDK%-HMAC%-SHA256 Access=", emu:stats().last.headers.Authorization)
    end)

    it("accepts temporary credentials only with the signed security token", function()
      local temp = sign({ ak = emu.temp_ak, sk = emu.temp_sk })
      temp.headers["X-Security-Token"] = emu.security_token
      assert.are.equal(200, request(emu, path, { sign = temp }).status)
      local r = request(emu, path, { sign = sign({ ak = emu.temp_ak, sk = emu.temp_sk }) })
      assert.are.equal(401, r.status)
      assert.matches("x%-security%-token", r.json.error_msg)
    end)

    it("refuses a wrong secret, a changed request, an old date and an unsigned project id", function()
      local r = request(emu, path, { sign = sign({ sk = "wrong" .. emu.sk }) })
      assert.are.equal(401, r.status)
      assert.are.equal("Incorrect IAM authentication information: signature mismatch", r.json.error_msg)
      assert.falsy(r.body:find(emu.sk, 1, true))

      -- headers signed for build 61, replayed on build 62
      local signed_file = tmp .. "/signed-for-61.h"
      sign_into(signed_file, sign(), "GET", emu.url .. path)
      local replay = run.capture(("curl -sS -H @%s %s"):format(q(signed_file),
        q(emu.url .. record_path("v3", jobs.reference, 62))))
      assert.matches("signature mismatch", replay)

      local old = os.date("!%Y%m%dT%H%M%SZ", os.time() - 20 * 60)
      r = request(emu, path, { sign = sign({ date = old }) })
      assert.are.equal(401, r.status)
      assert.are.equal("Incorrect IAM authentication information: x-sdk-date expired", r.json.error_msg)

      local unsigned = sign()
      unsigned.headers["X-Project-Id"] = nil
      r = request(emu, path, { sign = unsigned, headers = { ["X-Project-Id"] = emu.project_id } })
      assert.are.equal(401, r.status)
      assert.matches("x%-project%-id is not signed", r.json.error_msg)

      r = request(emu, path, { sign = sign({ ak = "UNKNOWNAK" }) })
      assert.are.equal(401, r.status)
      r = request(emu, path, { headers = { Authorization = "SDK-HMAC-SHA256 nonsense" } })
      assert.are.equal(401, r.status)
    end)

    it("answers 403 in the nested shape for another project id", function()
      local other = sign()
      other.headers["X-Project-Id"] = ("f"):rep(32)
      local r = request(emu, path, { sign = other })
      assert.are.equal(403, r.status)
      assert.are.same({ error = { code = "APIGW.0306", message = "project id does not match the token" } }, r.json)
      r = request(emu, path, { token = true, headers = { ["X-Project-Id"] = ("f"):rep(32) } })
      assert.are.equal(403, r.status)
      assert.are.equal("APIGW.0306", r.json.error.code)
      local right = request(emu, path, { token = true, headers = { ["X-Project-Id"] = emu.project_id } })
      assert.are.equal(200, right.status)
    end)
  end)

  describe("faults", function()
    local path = record_path("v3", jobs.reference, 7)

    it("applies a times = 1 rule once, then answers normally", function()
      assert.are.equal(1, emu:faults{ { action = "status", status = 503, build_no = 7, times = 1,
        headers = { ["Retry-After"] = "1" } } })
      assert.are.equal(200, request(emu, record_path("v3", jobs.reference, 8), { token = true }).status)
      local r = request(emu, path, { token = true })
      assert.are.equal(503, r.status)
      assert.are.equal("1", r.headers["retry-after"])
      assert.is_string(r.json.error_code)
      assert.matches("^%x+$", r.headers["x-request-id"])
      assert.are.equal(200, request(emu, path, { token = true }).status)
      local stats = emu:stats()
      assert.are.same({ ["200"] = 2, ["503"] = 1 }, stats.by_status)
    end)

    it("applies an every = 2 rule to every second matching request, and clears", function()
      emu:faults{ { action = "status", status = 429, every = 2, api = "v1" } }
      local v1_path = record_path("v1", jobs.reference, 7)
      local statuses = {}
      for i = 1, 4 do statuses[i] = request(emu, v1_path, { token = true }).status end
      assert.are.same({ 200, 429, 200, 429 }, statuses)
      assert.are.equal(200, request(emu, path, { token = true }).status) -- api = "v1" only
      assert.are.equal(200, request(emu, v1_path, { token = true }).status)
      assert.are.equal("APIGW.0308", request(emu, v1_path, { token = true }).json.error_code)
      emu:clear_faults()
      assert.are.equal(200, request(emu, record_path("v1", jobs.reference, 7), { token = true }).status)
    end)

    it("resets, truncates, cuts and sends malformed, deep, huge and raw bodies", function()
      emu:faults{ { action = "reset", job_id = jobs.reference, build_no = 7, times = 1 } }
      local r = request(emu, path, { token = true })
      assert.are_not.equal(0, r.rc)
      assert.are.equal(0, r.status or 0)

      emu:faults{ { action = "truncate", times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal(200, r.status)
      assert.are.equal(0, r.rc)
      assert.is_nil(r.json)
      local whole = request(emu, path, { token = true }).body
      assert.are.equal(whole:sub(1, math.floor(#whole / 2)), r.body)

      emu:faults{ { action = "cut", times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal(18, r.rc, r.out) -- curl: transfer closed with bytes remaining

      emu:faults{ { action = "malformed", times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal(200, r.status)
      assert.matches("^text/html", r.headers["content-type"])
      assert.are.equal("<html><body>Bad Gateway</body></html>", r.body)

      emu:faults{ { action = "deep", depth = 50, times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal('{"success": true, "result": ' .. ("["):rep(50) .. ("]"):rep(50) .. "}", r.body)

      emu:faults{ { action = "huge", bytes = 3000000, times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal(200, r.status)
      assert.are.equal(3000000, #r.body)
      assert.are.equal(3000000, tonumber(r.headers["content-length"]))

      emu:faults{ { action = "body", body = "not json", content_type = "text/plain", times = 1 } }
      r = request(emu, path, { token = true })
      assert.are.equal("not json", r.body)
      assert.matches("^text/plain", r.headers["content-type"])

      assert.are.equal(200, request(emu, path, { token = true }).status)
    end)

    it("sends each API's failure envelope with HTTP 200, and extra headers", function()
      emu:faults{ { action = "api_fail", code = "CB.10000001", message = "busy", times = 2 } }
      local v3 = request(emu, path, { token = true })
      assert.are.equal(200, v3.status)
      assert.are.same({ success = false, err_code = "CB.10000001", message = "busy", result = cjson.null }, v3.json)
      local v1 = request(emu, record_path("v1", jobs.reference, 7), { token = true })
      assert.are.same({ status = "fail", error = { error_code = "CB.10000001", error_msg = "busy" },
        result = cjson.null }, v1.json)

      local big = ("v"):rep(20000)
      emu:faults{ { action = "headers", headers = { ["X-Extra"] = big }, times = 1 } }
      local r = request(emu, path, { token = true })
      assert.are.equal(200, r.status)
      assert.are.equal(big, r.headers["x-extra"])
      assert.are.equal(true, r.json.success)
    end)

    it("delays a response and counts the peak concurrency", function()
      emu:faults{ { action = "delay", seconds = 0.4, path_contains = "/61/" } }
      local url = emu.url .. record_path("v3", jobs.reference, 61)
      local hdr = tmp .. "/token.h"
      run.write(hdr, "X-Auth-Token: " .. emu.token .. "\n")
      local curl = ("curl -sS -o /dev/null -w '%%{http_code}\\n' -H @%s %s"):format(q(hdr), q(url))
      local out = run.capture(curl .. " & " .. curl .. " & " .. curl .. " & wait")
      assert.are.equal(3, select(2, out:gsub("200", "")), out)
      local stats = emu:stats()
      assert.are.equal(3, stats.peak_concurrency)
      assert.are.equal(0, stats.active)
    end)

    it("refuses a malformed rule", function()
      assert.has_error(function() emu:faults{ { action = "explode" } } end)
      assert.has_error(function() emu:faults{ { action = "status", build_no = "seven" } } end)
      assert.are.equal(0, emu:faults{})
    end)
  end)

  describe("stats", function()
    it("counts requests, reused connections, kinds and the last request", function()
      local hdr = tmp .. "/token.h"
      run.write(hdr, "X-Auth-Token: " .. emu.token .. "\nUser-Agent: emulator-spec\n")
      local a = emu.url .. record_path("v3", jobs.reference, 3)
      local b = emu.url .. "/v3/jobs/" .. jobs.reference .. "/history?offset=0&limit=2&interval=3"
      -- one curl, two URLs: the second request reuses the first one's connection
      local _, status = run.capture(("curl -sS -o /dev/null -o /dev/null -H @%s %s %s"):format(q(hdr), q(a), q(b)))
      assert.are.equal(0, status)
      local stats = emu:stats()
      assert.are.equal(2, stats.requests)
      assert.are.equal(1, stats.connections)
      assert.are.equal(1, stats.by_path_kind["record-info"])
      assert.are.equal(1, stats.by_path_kind.history)
      assert.are.equal(0, stats.by_path_kind.other)
      assert.are.same({ ["200"] = 2 }, stats.by_status)
      assert.are.equal("GET", stats.last.method)
      assert.are.equal("/v3/jobs/" .. jobs.reference .. "/history", stats.last.path)
      assert.are.equal("offset=0&limit=2&interval=3", stats.last.query)
      assert.are.equal("emulator-spec", stats.last.headers["User-Agent"])

      request(emu, "/elsewhere")
      request(emu, "/v3/jobs/" .. jobs.reference .. "/status", { token = true })
      stats = emu:stats()
      assert.are.equal(4, stats.requests)
      assert.are.equal(3, stats.connections)
      assert.are.equal(1, stats.by_path_kind.other)
      assert.are.equal(1, stats.by_path_kind.status)
      assert.are.same({ ["200"] = 3, ["404"] = 1 }, stats.by_status) -- unknown paths: 404 before auth
      assert.is_true(stats.accepted >= 3)

      emu:reset()
      stats = emu:stats()
      assert.are.equal(0, stats.requests)
      assert.are.equal(0, stats.connections)
      assert.are.equal(cjson.null, stats.last)
    end)

    it("lists the jobs", function()
      local list = emu:jobs()
      assert.are.equal(6, #list)
      local by_id = {}
      for _, job in ipairs(list) do by_id[job.job_id] = job end
      for name, id in pairs(jobs) do assert.are.equal(name, by_id[id].name) end -- emulator.lua's table agrees
      assert.are.equal(5, by_id[jobs.logs].builds)
      assert.are.equal(1200, by_id[jobs.reference].builds)
      assert.are.equal(100000, by_id[jobs.big].builds)
      assert.is_true(by_id[jobs.gaps].gaps)
      assert.is_false(by_id[jobs.second].gaps)
      assert.is_false(by_id[jobs.no_status].running_status)
      assert.is_true(by_id[jobs.reference].running_status)
    end)
  end)
end)

describe("the emulator in snake_case #once", function()
  it("sends the same values under snake_case keys, repo_id a string", function()
    local camel = emulator.start{ seed = 5 }
    local snake = emulator.start{ spelling = "snake", seed = 5 }
    local ok, err = pcall(function()
      local r = request(snake, record_path("v3", jobs.second, 42), { token = true })
      assert.are.equal(200, r.status)
      local rec = r.json.result
      assert.are.same(sorted_copy(SNAKE_FIELDS), sorted_keys(rec))
      assert.are.equal("string", type(rec.repo_id))
      assert.are.same(rec, snake:expected(jobs.second, 42))
      local expected = camel:expected(jobs.second, 42)
      for i, name in ipairs(CAMEL_FIELDS) do
        if name == "repoId" then
          assert.are.equal(tostring(math.floor(expected.repoId)), rec.repo_id)
        else
          assert.are.same(expected[name], rec[SNAKE_FIELDS[i]], name)
        end
      end
      local v1 = request(snake, record_path("v1", jobs.second, 42), { token = true })
      assert.are.equal(42, v1.json.result.build_no)
      local other_seed = emulator.start{ seed = 6 }
      local differs = other_seed:expected(jobs.second, 42).commit ~= expected.commit
      other_seed:stop()
      assert.is_true(differs)
    end)
    camel:stop()
    snake:stop()
    assert(ok, err)
  end)
end)

describe("the emulator's error contracts #once", function()
  local emu
  local missing_job = ("e"):rep(32)
  local function get(path) return request(emu, path, { token = true }) end
  local function running_status(job) return "/v1/job/" .. job .. "/running-status" end
  -- An E2 gateway body: APIG. code, and request_id equal to the X-Request-Id header.
  local function assert_gateway(r, status, code)
    assert.are.equal(status, r.status, r.body)
    assert.are.same({ "error_code", "error_msg", "request_id" }, sorted_keys(r.json))
    assert.are.equal(code, r.json.error_code)
    assert.are.equal(r.headers["x-request-id"], r.json.request_id)
  end
  local function assert_e1(r, status, code)
    assert.are.equal(status, r.status, r.body)
    assert.are.same({ "error_code", "error_msg" }, sorted_keys(r.json))
    assert.are.equal(code, r.json.error_code)
  end

  setup(function() emu = emulator.start{ errors = "real" } end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("starts real by default, and with errors = 'real' or EMU_ERRORS, and refuses a bad value", function()
    assert.are.same({ errors = "real", missing_build = "403", retire_v3 = "off", retire_v4 = "off", gzip = false,
      running_has_more = true }, emu:settings())
    local default = emulator.start{}
    local default_errors = default:settings().errors
    default:stop()
    assert.are.equal("real", default_errors)
    local by_env = emulator.start{ env = { EMU_ERRORS = "real", EMU_MISSING_BUILD = "422" }, retire_v3 = "backend" }
    local ok, err = pcall(function()
      assert.are.same({ "real", "422", "backend" }, { by_env:settings().errors, by_env:settings().missing_build,
        by_env:settings().retire_v3 })
      assert.are.equal(422, request(by_env, record_path("v1", jobs.reference, 1201), { token = true }).status)
      local r = request(by_env, record_path("v3", jobs.reference, 61), { token = true })
      assert.are.same({ 404, "CB.00060214" }, { r.status, r.json.error_code })
    end)
    by_env:stop()
    assert(ok, err)
    local bad_ok, bad_err = pcall(emulator.start, { errors = "sometimes" })
    assert.is_false(bad_ok)
    assert.matches("errors must be one of real, legacy", bad_err)
  end)

  it("answers a missing job with 422 DEVCB.00031006 on v1/v4 routes and 422 CB.00031006 on v3 routes", function()
    for _, path in ipairs({ record_path("v1", missing_job, 1), record_path("v4", missing_job, 1),
      running_status(missing_job) }) do
      assert_e1(get(path), 422, "DEVCB.00031006")
    end
    for _, path in ipairs({ record_path("v3", missing_job, 1), "/v3/jobs/" .. missing_job .. "/status",
      "/v3/jobs/" .. missing_job .. "/history?offset=0&limit=1&interval=1" }) do
      assert_e1(get(path), 422, "CB.00031006")
    end
  end)

  it("answers a missing build as missing_build says, 403 CB.00031059 by default", function()
    local paths = { record_path("v3", jobs.reference, 1201), record_path("v1", jobs.gaps, 14),
      record_path("v4", jobs.reference, 99999) }
    for _, path in ipairs(paths) do assert_e1(get(path), 403, "CB.00031059") end
    emu:configure{ missing_build = "422" }
    assert_e1(get(paths[1]), 422, "CB.00031006")
    assert_e1(get(paths[2]), 422, "DEVCB.00031006")
    emu:configure{ missing_build = "404" }
    assert_e1(get(paths[2]), 404, "CB.00062001")
    emu:configure{ missing_build = "empty" }
    assert.are.same({ success = true, message = "", err_code = "", result = {} }, get(paths[1]).json)
    assert.are.same({ status = "success", error = cjson.null, result = {} }, get(paths[2]).json)
    emu:configure{ missing_build = "absent" }
    local absent = get(paths[3])
    assert.are.equal(200, absent.status)
    assert.are.same({ status = "success", error = cjson.null }, absent.json)
    assert.has_error(function() emu:configure{ missing_build = "410" } end)
    assert.has_error(function() emu:configure{ no_such_setting = true } end)
  end)

  it("answers gateway errors in the APIG. E2 shape: unknown path, wrong method, credentials", function()
    assert_gateway(get("/v2/nothing"), 404, "APIG.0101")
    assert_gateway(request(emu, record_path("v3", jobs.reference, 61), { token = true, method = "POST" }), 404,
      "APIG.0101")
    assert_gateway(get(running_status(jobs.no_status)), 404, "APIG.0101")
    local r = request(emu, record_path("v1", jobs.reference, 61))
    assert_gateway(r, 401, "APIG.0301")
    assert.are.equal("Incorrect IAM authentication information: missing token", r.json.error_msg)
    assert_gateway(request(emu, record_path("v1", jobs.reference, 61), { sign = { ak = emu.ak, sk = "wrong" } }),
      401, "APIG.0301")
  end)

  it("switches the contract at run time, and reset() restores the start value", function()
    assert.are.equal("legacy", emu:configure{ errors = "legacy" }.errors)
    local r = get(record_path("v1", missing_job, 1))
    assert.are.same({ status = 404, code = "CB.00062001" }, { status = r.status, code = r.json.error_code })
    r = get("/v2/nothing")
    assert.are.same({ error_code = "APIGW.0101", error_msg = r.json.error_msg }, r.json)
    assert.are.equal(405, request(emu, record_path("v3", jobs.reference, 61), { token = true, method = "POST" }).status)
    emu:reset()
    assert.are.equal("real", emu:settings().errors)
    assert.are.equal(422, get(record_path("v1", missing_job, 1)).status)
  end)

  it("retires v3 (or v4) at the gateway or at the backend; v1 and IAM stay", function()
    local v3 = record_path("v3", jobs.reference, 61)
    emu:configure{ retire_v3 = "gateway" }
    assert_gateway(get(v3), 404, "APIG.0101")
    assert_gateway(request(emu, v3), 404, "APIG.0101") -- before authentication
    emu:configure{ retire_v3 = "backend" }
    assert_e1(get(v3), 404, "CB.00060214")
    assert_e1(get("/v3/jobs/" .. jobs.reference .. "/status"), 404, "CB.00060214")
    assert.are.equal(401, request(emu, v3).status) -- after authentication
    assert.are.equal(200, get(record_path("v1", jobs.reference, 61)).status)
    assert.are.equal(200, get(record_path("v4", jobs.reference, 61)).status)
    local iam = request(emu, "/v3/auth/tokens", { method = "POST", data = cjson.encode({ auth = {
      identity = { methods = { "password" }, password = { user = { name = emu.iam_user, password = emu.iam_password,
        domain = { name = emu.iam_domain } } } }, scope = { project = { name = "cn-north-4" } } } }) })
    assert.are.equal(201, iam.status, iam.body)
    emu:configure{ retire_v3 = false, retire_v4 = true }
    assert.are.equal(200, get(v3).status)
    assert_gateway(get(record_path("v4", jobs.reference, 61)), 404, "APIG.0101")
  end)

  it("counts IAM sign-ins and project look-ups apart in by_route", function()
    request(emu, "/v3/auth/tokens", { method = "POST", data = "{}" })
    request(emu, "/v3/projects?name=cn-north-4", { token = true })
    get(record_path("v1", jobs.reference, 3))
    local stats = emu:stats()
    assert.are.equal(2, stats.by_path_kind.iam)
    assert.are.equal(1, stats.by_route[emulator.routes.iam_tokens])
    assert.are.equal(1, stats.by_route[emulator.routes.iam_projects])
    assert.are.equal(1, stats.by_route[emulator.routes.record_info_v1])
    emu:reset_stats()
    assert.are.same({}, emu:stats().by_route)
  end)

  describe("faults", function()
    local v3, v1 = record_path("v3", jobs.reference, 7), record_path("v1", jobs.reference, 7)

    it("sends documented codes in their shape and status: CB.00060211 at 500 or 400, APIG.0308 at 429", function()
      emu:faults{ { action = "error", code = "CB.00060211", times = 1 },
        { action = "error", code = "CB.00060211", status = 400, times = 1 },
        { action = "error", code = "APIG.0308", times = 1, headers = { ["Retry-After"] = "3" } },
        { action = "error", code = "CB.00060214", api = "v3", kind = "record-info", times = 1 } }
      assert_e1(get(v1), 500, "CB.00060211")
      assert_e1(get(v1), 400, "CB.00060211")
      local throttled = get(v1)
      assert_gateway(throttled, 429, "APIG.0308")
      assert.are.equal("3", throttled.headers["retry-after"])
      assert.are.equal(200, get(v1).status) -- the CB.00060214 rule is for v3 only
      assert_e1(get(v3), 404, "CB.00060214")
      assert.are.equal(200, get(v3).status)
    end)

    it("sends an E1 error body with HTTP 200 (E5) on any route", function()
      emu:faults{ { action = "error", code = "CB.00060101", status = 200 } }
      for _, path in ipairs({ v3, running_status(jobs.reference), "/v3/jobs/" .. jobs.reference .. "/status",
        "/v3/jobs/" .. jobs.reference .. "/history?offset=0&limit=1&interval=1" }) do
        assert_e1(get(path), 200, "CB.00060101")
      end
    end)

    it("sends the E3 (error object or string) and E4 envelopes, each where asked", function()
      emu:faults{ { action = "api_fail", code = "CB.1", message = "m1", times = 1 },
        { action = "api_fail", message = "m2", error_as = "string", times = 1 },
        { action = "api_fail", code = "CB.3", message = "m3", envelope = "E4", times = 1 },
        { action = "api_fail", code = "CB.4", message = "m4", envelope = "E3", times = 1 } }
      assert.are.same({ status = "fail", error = { error_code = "CB.1", error_msg = "m1" }, result = cjson.null },
        get(v1).json)
      assert.are.same({ status = "fail", error = "m2", result = cjson.null }, get(v1).json)
      assert.are.same({ success = false, err_code = "CB.3", message = "m3", result = cjson.null }, get(v1).json)
      assert.are.same({ status = "fail", error = { error_code = "CB.4", error_msg = "m4" }, result = cjson.null },
        get(v3).json)
    end)

    it("sends an error document double-encoded in a JSON string (E6)", function()
      emu:faults{ { action = "error", code = "CB.00060101", status = 200, encode_twice = true, times = 1 },
        { action = "api_fail", code = "CB.2", message = "m", encode_twice = true, times = 1 } }
      local r = get(v1)
      assert.are.equal("string", type(r.json))
      assert.are.same({ error_code = "CB.00060101", error_msg = "Internal service error" }, cjson.decode(r.json))
      r = get(v1)
      assert.are.equal(200, r.status)
      assert.are.equal("fail", cjson.decode(r.json).status)
    end)

    it("replaces the result with an array or a scalar, or leaves it out", function()
      emu:faults{ { action = "result", value = { 1, 2 }, times = 1 }, { action = "result", value = "text", times = 1 },
        { action = "result", times = 1 } }
      assert.are.same({ 1, 2 }, get(v1).json.result)
      assert.are.same({ success = true, message = "", err_code = "", result = "text" }, get(v3).json)
      assert.are.same({ status = "success", error = cjson.null }, get(v1).json)
      assert.are.equal("table", type(get(v1).json.result)) -- spent
    end)

    it("sends last_build_no as 1e12, 1.5e300 or \"0x10\", verbatim", function()
      local path = running_status(jobs.reference)
      emu:faults{ { action = "field", field = "result.last_build_no", json = "1e12", times = 1 },
        { action = "field", field = "result.last_build_no", json = "1.5e300", times = 1 },
        { action = "field", field = "result.last_build_no", value = "0x10", times = 1 },
        { action = "field", field = "error", value = "error_message", times = 1 } }
      assert.matches('"last_build_no": 1e12,', get(path).body)
      assert.matches('"last_build_no": 1%.5e300,', get(path).body)
      local hex = get(path)
      assert.are.equal("0x10", hex.json.result.last_build_no)
      assert.are.equal(true, hex.json.result.is_running)
      local doc_example = get(path).json -- as in the documentation's examples: an error string on success
      assert.are.same({ "success", "error_message" }, { doc_example.status, doc_example.error })
    end)

    it("gives status faults the documented body of their status", function()
      emu:faults{ { action = "status", status = 429, times = 1 }, { action = "status", status = 404, times = 1 },
        { action = "status", status = 500, times = 1 }, { action = "status", status = 503, times = 1 } }
      assert_gateway(get(v1), 429, "APIG.0308")
      assert_e1(get(v1), 404, "CB.00060214")
      assert_e1(get(v1), 500, "CB.00060101")
      assert_e1(get(v1), 503, "EMU.503")
    end)

    it("refuses an error rule without a code and a field rule without a field or value", function()
      assert.has_error(function() emu:faults{ { action = "error" } } end)
      assert.has_error(function() emu:faults{ { action = "field", value = 1 } } end)
      assert.has_error(function() emu:faults{ { action = "field", field = "result.x" } } end)
      assert.has_error(function() emu:faults{ { action = "status", kind = "nowhere" } } end)
      assert.has_error(function() emu:faults{ { action = "api_fail", envelope = "E9" } } end)
      assert.are.equal(0, emu:faults{})
    end)
  end)
end)


describe("the emulator with --retire-v3 #once", function()
  it("answers 404 APIGW.0101 on every /v3/ path while v1 and v4 work", function()
    local emu = emulator.start{ retire_v3 = true, errors = "legacy" }
    local ok, err = pcall(function()
      for _, path in ipairs({ record_path("v3", jobs.reference, 61), "/v3/jobs/" .. jobs.reference .. "/status",
        "/v3/jobs/" .. jobs.reference .. "/history?offset=0&limit=1&interval=1" }) do
        local r = request(emu, path, { token = true })
        assert.are.equal(404, r.status, path)
        assert.are.equal("APIGW.0101", r.json.error_code)
      end
      assert.are.equal(200, request(emu, record_path("v1", jobs.reference, 61), { token = true }).status)
      assert.are.equal(200, request(emu, record_path("v4", jobs.reference, 61), { token = true }).status)
    end)
    emu:stop()
    assert(ok, err)
  end)
end)

describe("the emulator's clock #once", function()
  it("judges x-sdk-date by its own clock plus --clock-offset", function()
    local emu = emulator.start{ clock_offset = 3600 }
    local ok, err = pcall(function()
      local path = record_path("v1", jobs.reference, 2)
      local now = request(emu, path, { sign = { ak = emu.ak, sk = emu.sk } })
      assert.are.equal(401, now.status)
      assert.matches("x%-sdk%-date expired", now.json.error_msg)
      local ahead = os.date("!%Y%m%dT%H%M%SZ", os.time() + 3600)
      assert.are.equal(200, request(emu, path, { sign = { ak = emu.ak, sk = emu.sk, date = ahead } }).status)
    end)
    emu:stop()
    assert(ok, err)
  end)
end)

describe("the emulator over TLS #once", function()
  local emu
  setup(function() emu = emulator.start{ tls = true } end)
  teardown(function() if emu then emu:stop() end end)

  it("serves HTTPS with the made CA and is refused without it", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", emu.url)
    assert.are.equal("https", emu.scheme)
    assert.truthy(read(emu.ca_file))
    local r = request(emu, record_path("v3", jobs.reference, 61), { token = true })
    assert.are.equal(200, r.status, r.out)
    assert.are.equal(61, r.json.result.buildNo)
    local refused = request(emu, record_path("v3", jobs.reference, 61), { token = true, cacert = false })
    assert.are.equal(60, refused.rc, refused.out) -- curl: peer certificate cannot be authenticated
    local other = request(emu, record_path("v3", jobs.reference, 61), { token = true, cacert = emu.certs.other_ca })
    assert.are_not.equal(0, other.rc)
    local by_name = request(emu, record_path("v3", jobs.reference, 61),
      { token = true, url = "https://localhost:" .. emu.port })
    assert.are.equal(200, by_name.status, by_name.out)
    assert.are.equal(2, emu:stats().by_status["200"]) -- control calls work over TLS too
  end)

  it("can present the expired, wrong-host and other-CA certificates", function()
    for _, which in ipairs({ "expired", "wronghost", "other" }) do
      local bad = emulator.start{ tls = true, certs = emu.certs, server_cert = which }
      local r = request(bad, "/__emulator/jobs", { cacert = emu.certs.ca })
      local insecure = run.capture(("curl -sSk %s"):format(q(bad.url .. "/__emulator/jobs")))
      bad:stop()
      assert.are_not.equal(0, r.rc, which)
      assert.matches('"jobs"', insecure)
    end
    assert.truthy(read(emu.certs.server_cert)) -- the shared certificates outlive the other emulators
  end)

  it("makes certificates with the documented names and SANs", function()
    local dir = tmp .. "/certs"
    local certs = emulator.make_certs(dir)
    for _, key in ipairs({ "ca", "ca_key", "server_cert", "server_key", "expired_cert", "expired_key",
      "wronghost_cert", "wronghost_key", "other_ca", "other_cert", "other_key" }) do
      assert.truthy(read(certs[key]), key)
    end
    local out = run.capture("openssl x509 -noout -ext subjectAltName -in " .. q(certs.server_cert))
    assert.matches("IP Address:127%.0%.0%.1", out)
    assert.matches("DNS:localhost", out)
    out = run.capture("openssl x509 -noout -ext subjectAltName -in " .. q(certs.wronghost_cert))
    assert.matches("DNS:wrong%.example", out)
    assert.falsy(out:find("127.0.0.1", 1, true))
    local _, expired = run.capture("openssl x509 -noout -checkend 0 -in " .. q(certs.expired_cert))
    assert.are_not.equal(0, expired)
    local _, verified = run.capture(("openssl verify -CAfile %s %s"):format(q(certs.ca), q(certs.server_cert)))
    assert.are.equal(0, verified)
    local _, foreign = run.capture(("openssl verify -CAfile %s %s"):format(q(certs.ca), q(certs.other_cert)))
    assert.are_not.equal(0, foreign)
  end)
end)

describe("emulator lifecycle #once", function()
  it("stop() leaves no process and no directory behind, and is idempotent", function()
    local emu = emulator.start{}
    local pid, dir = emu.pid, emu.dir
    assert.is_false(process_gone(pid))
    emu:stop()
    assert.is_true(process_gone(pid)) -- kill -0 fails, or only an unreaped zombie entry is left
    assert.is_nil(read(dir .. "/ready.json"))
    local _, listing = run.capture("test -e " .. q(dir))
    assert.are_not.equal(0, listing)
    emu:stop()
    local refused = run.capture("curl -sS --max-time 5 " .. q(emu.url .. "/__emulator/stats"))
    assert.matches("Failed to connect", refused)
  end)

  it("exits by itself when its parent process is gone, and after --max-lifetime", function()
    local sleeper = tonumber((run.capture("sleep 30 >/dev/null 2>&1 & echo $!")))
    local orphan = emulator.start{ parent_pid = sleeper }
    local short = emulator.start{ max_lifetime = 0.5 }
    run.capture("kill " .. sleeper)
    local orphan_gone, short_gone = wait_until_gone(orphan.pid, 5), wait_until_gone(short.pid, 5)
    orphan:stop()
    short:stop()
    assert.is_true(orphan_gone)
    assert.is_true(short_gone)
  end)

  it("reports the emulator's stderr when it cannot start", function()
    local saved = emulator.python
    emulator.python = "python3-that-does-not-exist"
    local ok, err = pcall(emulator.start, {})
    emulator.python = saved
    assert.is_false(ok)
    assert.matches("did not become ready", err)
    assert.matches("python3%-that%-does%-not%-exist", err)
  end)

  it("gives a client the environment to reach it", function()
    local fake = { url = "https://127.0.0.1:1", ak = "A", sk = "S", project_id = "P", ca_file = "/ca.pem" }
    assert.are.same({ CODEARTSBUILD_ENDPOINT = "https://127.0.0.1:1", HUAWEICLOUD_SDK_AK = "A",
      HUAWEICLOUD_SDK_SK = "S", HUAWEICLOUD_SDK_PROJECT_ID = "P", CODEARTSBUILD_CA_FILE = "/ca.pem" },
      emulator.client_env(fake))
    fake.ca_file = nil
    assert.is_nil(emulator.client_env(fake).CODEARTSBUILD_CA_FILE)
  end)

  it("passes its env table to the emulator as credentials", function()
    local emu = emulator.start{ env = { EMU_TOKEN = "spec-token-123", EMU_PROJECT_ID = ("1"):rep(32) } }
    local ok, err = pcall(function()
      assert.are.equal("spec-token-123", emu.token)
      local r = request(emu, record_path("v3", jobs.reference, 1), { token = true,
        headers = { ["X-Project-Id"] = ("1"):rep(32) } })
      assert.are.equal(200, r.status)
      local ps = run.capture("ps -o args= -p " .. emu.pid)
      assert.falsy(ps:find("spec-token-123", 1, true))
      assert.is_nil(read(emu.dir .. "/env.sh")) -- the values' file is gone once it listens
    end)
    emu:stop()
    assert(ok, err)
  end)
end)

describe("spec/support/with-emulator #once", function()
  it("runs a command against the emulator, passes its status on, and cleans up", function()
    local script = [[
echo "endpoint=$CODEARTSBUILD_ENDPOINT emulator=$CODEARTSBUILD_EMULATOR ca=${CODEARTSBUILD_CA_FILE:-none}"
test -n "$HUAWEICLOUD_SDK_AK" && test -n "$HUAWEICLOUD_SDK_SK" && test -n "$HUAWEICLOUD_SDK_PROJECT_ID" || exit 9
curl -sS "$CODEARTSBUILD_ENDPOINT/__emulator/jobs"
exit 3]]
    local out, status = run.capture("PYTHON=" .. PYTHON .. " spec/support/with-emulator -- sh -c " .. q(script))
    assert.are.equal(3, status, out)
    assert.matches("emulator=1 ca=none", out)
    assert.matches('"jobs"', out)
    local endpoint = out:match("endpoint=(%S+)")
    assert.matches("^http://127%.0%.0%.1:%d+$", endpoint)
    local after = run.capture("curl -sS --max-time 5 " .. q(endpoint .. "/__emulator/stats"))
    assert.matches("Failed to connect", after)
  end)

  it("serves TLS and accepts requests signed with the exported credentials", function()
    local script = [[
"$PYTHON" -B -c 'import emulator, os, sys
url = os.environ["CODEARTSBUILD_ENDPOINT"] + sys.argv[1]
env = os.environ
headers = emulator.sign_request_headers("GET", url, env["HUAWEICLOUD_SDK_AK"], env["HUAWEICLOUD_SDK_SK"],
                                        {"X-Project-Id": env["HUAWEICLOUD_SDK_PROJECT_ID"]})
print("\n".join("%s: %s" % item for item in headers.items()))' "$1" > "$2" || exit 9
curl -sS --cacert "$CODEARTSBUILD_CA_FILE" -H @"$2" "$CODEARTSBUILD_ENDPOINT$1"]]
    local cmd = "PYTHON=" .. PYTHON .. " PYTHONPATH=spec/support spec/support/with-emulator --tls --spelling snake"
      .. " -- sh -c " .. q(script) .. " sh " .. q(record_path("v1", jobs.reference, 61)) .. " " .. q(tmp .. "/signed.h")
    local out, status = run.capture(cmd)
    assert.are.equal(0, status, out)
    local decoded = cjson.decode(out)
    assert.are.equal("success", decoded.status)
    assert.are.equal(61, decoded.result.build_no)
  end)

  it("refuses to run without a command", function()
    local out, status = run.capture("spec/support/with-emulator --tls")
    assert.are.equal(2, status)
    assert.matches("usage", out)
  end)
end)
