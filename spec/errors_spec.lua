-- Failure handling against the emulator: every kind of error, its fields and its message, through the
-- blocking call and through submit/poll, and that no error ever carries a secret. Every failure here
-- is one attempt: the clients have retries off (spec/retry_spec.lua covers retrying).
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference
local WRONG_SK = "wrongSKx9Lq2Vb7Nc4Mz8Kd1Jf6Hg3Ps5Rt0Wy2"
local WRONG_TOKEN = "wrongIamTokenMIIZZZZJKoZIhvcNAQcCoIIETTCC"
local OTHER_PROJECT = "ffffeeeeddddccccbbbbaaaa99998888"

local function plain_find(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

local function assert_contains(haystack, needle)
  assert.are.equal("string", type(haystack))
  assert.is_true(plain_find(haystack, needle), ("expected %q to contain %q"):format(haystack, needle))
end

local function assert_integer(value)
  assert.are.equal("number", type(value))
  assert.are.equal(math.floor(value), value)
  if math.type then assert.are.equal("integer", math.type(value)) end
end

-- The secrets of the emulator in use: set in setup, extended by tests that start another emulator.
local secrets = {}

local function add_secrets(emu)
  for _, value in ipairs{ emu.sk, emu.temp_sk, emu.token, emu.security_token } do
    secrets[#secrets + 1] = value
  end
end

local function assert_no_secret(text)
  for _, secret in ipairs(secrets) do
    assert.is_false(plain_find(text, secret), "a secret appears in: " .. text)
  end
end

--- Checks what every failure must satisfy and returns err: nil first value, message == err.message ==
-- tostring(err), an error value of the module, no secret in any string.
local function failure(value, message, err)
  assert.is_nil(value)
  assert.are.equal("string", type(message))
  assert.is_true(cb.is_error(err), "not an error value: " .. tostring(err))
  assert.are.equal(message, err.message)
  assert.are.equal(message, tostring(err))
  assert.are.equal("boolean", type(err.retryable))
  assert_no_secret(message)
  for key, field in pairs(err) do
    assert.are.equal("string", type(key))
    if type(field) == "string" then assert_no_secret(field) end
  end
  return err
end

--- The same checks on a failed entry of poll().
local function poll_failure(entry)
  assert.is_nil(entry.record)
  return failure(nil, entry.message, entry.err)
end

local function assert_record_failure(err, job_id, build_no)
  assert.are.equal(job_id, err.job_id)
  assert.are.equal(build_no, err.build_no)
  assert_integer(err.build_no)
  assert.are.equal(1, err.attempts)
  assert_contains(err.message, ("record_info %s/%d: "):format(job_id, build_no))
end

--- Submits one request and returns its poll() entry.
local function through_poll(client, job_id, build_no)
  local id = assert(client:submit(job_id, build_no))
  local results = clients.drain(client)
  assert.are.equal(1, #results)
  local entry = results[1]
  assert.are.equal(id, entry.id)
  assert.are.equal(job_id, entry.job_id)
  assert.are.equal(build_no, entry.build_no)
  assert.are.equal(0, client:pending())
  return entry
end

local function without_request_id(message)
  return (message:gsub(" %(request id [^)]*%)$", ""))
end

--- A loopback port nothing listens on: the port of an emulator that has been stopped.
local function closed_port()
  local other = emulator.start{}
  local port = other.port
  other:stop()
  return port
end

describe("errors", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    add_secrets(emu)
    client = clients.aksk(emu, { retries = 0 })
  end)

  teardown(function()
    client:close()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  --- The same client still reads a good record after a failure.
  local function still_works(c)
    local rec = assert((c or client):record_info(JOB, 61))
    assert.are.equal(61, rec.buildNo)
    assert.are.equal(emu:expected(JOB, 61).status, rec.status)
  end

  describe("HTTP statuses", function()
    -- Codes this module does not know (TEST.*) leave the status to decide; known ones are below.
    local cases = {
      { status = 400, kind = "http", retryable = false, code = "CB.00060200" },
      { status = 401, kind = "auth", retryable = false, code = "APIG.0301" },
      { status = 403, kind = "auth", retryable = false, code = "TEST.0403" },
      { status = 404, kind = "not_found", what = "build", retryable = false, code = "TEST.0404" },
      { status = 429, kind = "throttled", retryable = true, code = "APIG.0308", headers = { ["Retry-After"] = "2" } },
      { status = 500, kind = "http", retryable = true, code = "CB.00060101" },
      { status = 502, kind = "http", retryable = true, code = "APIG.0201" },
      { status = 503, kind = "http", retryable = true, code = "TEST.0503" },
      { status = 504, kind = "http", retryable = true, code = "APIG.0201" },
    }
    for i, case in ipairs(cases) do
      it(("%d gives kind %s, retryable %s"):format(case.status, case.kind, tostring(case.retryable)), function()
        local build_no = 500 + i
        emu:faults{ { action = "status", status = case.status, headers = case.headers, times = 1,
          body = { error_code = case.code, error_msg = "what the server said" } } }
        -- A 401 says the credentials were refused: that client sends nothing for a while after it
        -- (spec/engine_spec.lua), so it gets a client of its own.
        local c = case.status == 401 and clients.aksk(emu, { retries = 0 }) or client
        local err = failure(c:record_info(JOB, build_no))
        if c ~= client then c:close() end
        assert.are.equal(case.kind, err.kind)
        assert.are.equal(case.status, err.status)
        assert_integer(err.status)
        assert.are.equal(case.retryable, err.retryable)
        assert.are.equal(case.code, err.code)
        assert.are.equal(case.what, err.what)
        assert_record_failure(err, JOB, build_no)
        assert_contains(err.message, ("HTTP %d: %s what the server said"):format(case.status, case.code))
        assert.are.equal(1, emu:stats().requests) -- attempts == 1 and no hidden retry either
      end)
    end
  end)

  describe("the service's codes decide before the status", function()
    -- SERVICE-CONTRACTS §8.2-§8.4: the real service answers a missing job with 422, a missing build
    -- with 403, and throttles with 500 or 400.
    local cases = {
      { status = 422, code = "DEVCB.00031006", kind = "not_found", what = "job", text = "job %s not found (HTTP 422" },
      { status = 422, code = "CB.00031006", kind = "not_found", what = "job", text = "job %s not found (HTTP 422" },
      { status = 403, code = "CB.00031059", kind = "not_found", what = "build",
        text = "build %d of job %s not found (HTTP 403" },
      { status = 500, code = "CB.00060211", kind = "throttled", retryable = true },
      { status = 400, code = "CB.00060211", kind = "throttled", retryable = true },
      { status = 404, code = "CB.00060214", kind = "not_found", what = "api",
        text = "the v1 record-info API is not published here (HTTP 404" },
      { status = 404, code = "APIG.0101", kind = "not_found", what = "api" },
      { status = 500, code = "CB.00030004", kind = "http", retryable = false },
      { status = 200, code = "CB.00031059", kind = "not_found", what = "build",
        text = "build %d of job %s not found (the API reported a failure: CB.00031059" },
      { status = 200, code = "CB.99990001", kind = "api", text = "the API reported a failure: CB.99990001" },
    }
    for i, case in ipairs(cases) do
      it(("%d %s gives kind %s%s"):format(case.status, case.code, case.kind, case.what and " of " .. case.what or ""),
        function()
          local build_no = 700 + i
          -- api pinned: with "auto" a record request answered "no such API" moves to the next one.
          local c = clients.aksk(emu, { retries = 1, backoff = 0.01, api = "v1" })
          emu:faults{ { action = "status", status = case.status, build_no = build_no, times = 2,
            body = { error_code = case.code, error_msg = "what the server said" } } }
          local err = failure(c:record_info(JOB, build_no))
          c:close()
          assert.are.same({ case.kind, case.what, case.retryable or false, case.code },
            { err.kind, err.what, err.retryable, err.code })
          assert.are.equal(case.retryable and 2 or 1, err.attempts)
          if case.text then
            local text = case.what == "build" and case.text:format(build_no, JOB) or case.text:format(JOB)
            assert_contains(err.message, ("record_info %s/%d: %s"):format(JOB, build_no, text))
          end
        end)
    end

    it("in every envelope and at 200, for get() too", function()
      local c = clients.aksk(emu, { retries = 0 })
      local path = "/v1/job/" .. JOB .. "/running-status"
      for i, rule in ipairs{
        { action = "status", status = 200, body = { error_code = "CB.00031059", error_msg = "no history" } },
        { action = "api_fail", envelope = "E3", code = "CB.00031059", message = "no history" },
        { action = "api_fail", envelope = "E4", code = "CB.00031059", message = "no history" },
        { action = "error", code = "CB.00031059", status = 200, encode_twice = true },
        -- the error as a string: no code to read, the message is all there is
        { action = "api_fail", envelope = "E3", error_as = "string", code = "CB.00031059", message = "no history" },
      } do
        rule.times = 1
        emu:faults{ rule }
        local err = failure(c:get(path))
        if i < 5 then
          assert.are.same({ "not_found", "build", "CB.00031059" }, { err.kind, err.what, err.code }, tostring(i))
        else
          assert.are.same({ "api", nil }, { err.kind, err.code })
          assert_contains(err.message, "the API reported a failure: no history")
        end
      end
      c:close()
    end)
  end)

  describe("error bodies", function()
    local shapes = {
      { name = "error_code/error_msg", body = { error_code = "CB.10000001", error_msg = "shape one text" } },
      { name = "errorCode/errorMsg", body = { errorCode = "CB.10000002", errorMsg = "shape two text" } },
      { name = "code/message", body = { code = "CB.10000003", message = "shape three text" } },
      { name = "err_code/message", body = { err_code = "CB.10000004", message = "shape four text" } },
      { name = "nested error{code,message}", body = { error = { code = "CB.10000005", message = "shape five text" } } },
      { name = "nested error{error_code,error_msg}",
        body = { error = { error_code = "CB.10000006", error_msg = "shape six text" } } },
    }
    for i, shape in ipairs(shapes) do
      it("reads the code and message of " .. shape.name, function()
        emu:faults{ { action = "status", status = 400, body = shape.body, times = 1 } }
        local err = failure(client:record_info(JOB, 600 + i))
        assert.are.equal("http", err.kind)
        assert.are.equal(400, err.status)
        assert.are.equal("CB.1000000" .. i, err.code)
        local text = ({ "one", "two", "three", "four", "five", "six" })[i]
        assert_contains(err.message, "shape " .. text .. " text")
        assert_contains(err.message, "HTTP 400: CB.1000000" .. i .. " shape " .. text .. " text")
        assert_record_failure(err, JOB, 600 + i)
      end)
    end

    it("gives a clean http error for an HTML error page", function()
      emu:faults{ { action = "status", status = 502, content_type = "text/html", times = 1,
        body = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>" } }
      local err = failure(client:record_info(JOB, 610))
      assert.are.equal("http", err.kind)
      assert.are.equal(502, err.status)
      assert.is_true(err.retryable)
      assert.is_nil(err.code)
      assert_record_failure(err, JOB, 610)
      assert_contains(err.message, ("record_info %s/610: HTTP 502"):format(JOB))
      assert.is_false(plain_find(err.message, "<"), err.message)
      assert.is_false(plain_find(err.message, "html"), err.message)
      assert.is_nil(err.message:find("[%c]"), "control character in " .. err.message)
      still_works()
    end)
  end)

  describe("request ids", function()
    it("gives X-Request-Id as err.request_id and in the message", function()
      local err = failure(client:record_info(JOB, 99999))
      assert.are.equal("string", type(err.request_id))
      assert.is_truthy(err.request_id:match("^[0-9a-f]+$"), err.request_id)
      assert.are.equal(32, #err.request_id)
      assert_contains(err.message, "(request id " .. err.request_id .. ")")
    end)

    it("takes the request id the server sent, not one of its own", function()
      local id = "0123456789abcdef0123456789abcdef"
      emu:faults{ { action = "status", status = 500, headers = { ["X-Request-Id"] = id }, times = 1 } }
      local err = failure(client:record_info(JOB, 620))
      assert.are.equal(id, err.request_id)
      assert_contains(err.message, "(request id " .. id .. ")")
    end)
  end)

  describe("real emulator answers", function()
    it("a missing build is 403 CB.00031059, kind not_found of a build", function()
      assert.is_nil(emu:expected(JOB, 99999))
      local err = failure(client:record_info(JOB, 99999))
      assert.are.same({ "not_found", "build", 403, "CB.00031059", false },
        { err.kind, err.what, err.status, err.code, err.retryable })
      assert_record_failure(err, JOB, 99999)
      local start = "^record_info %s/99999: build 99999 of job %s not found %%(HTTP 403: CB.00031059 "
      assert.truthy(err.message:find(start:format(JOB, JOB)), err.message)
    end)

    it("a missing job is 422 DEVCB.00031006, kind not_found of a job", function()
      local missing = ("9"):rep(32)
      local err = failure(client:record_info(missing, 1))
      assert.are.same({ "not_found", "job", 422, "DEVCB.00031006" }, { err.kind, err.what, err.status, err.code })
      assert.truthy(err.message:find(("^record_info %s/1: job %s not found %%(HTTP 422: DEVCB.00031006"):format(
        missing, missing)), err.message)
    end)

    it("a missing build, however the service says it (an unknown: the emulator plays each)", function()
      for _, answer in ipairs{ { "422", "job" }, { "404", "build" }, { "empty", "build" }, { "absent", "build" } } do
        emu:configure{ missing_build = answer[1] }
        local err = failure(client:record_info(JOB, 99999))
        assert.are.same({ "not_found", answer[2] }, { err.kind, err.what }, answer[1])
      end
    end)

    it("the old 404 shape (errors = 'legacy') is kind not_found of a build too", function()
      emu:configure{ errors = "legacy" }
      local err = failure(client:record_info(JOB, 99999))
      assert.are.same({ "not_found", "build", 404, "CB.00062001" }, { err.kind, err.what, err.status, err.code })
      assert.are.equal(("record_info %s/99999: build 99999 of job %s not found (HTTP 404: CB.00062001 build record "
        .. "not found) (request id %s)"):format(JOB, JOB, err.request_id), err.message)
    end)

    it("a wrong SK is 401 APIG.0301, kind auth", function()
      local bad = clients.aksk(emu, { retries = 0, sk = WRONG_SK })
      local err = failure(bad:record_info(JOB, 61))
      bad:close()
      assert.are.equal("auth", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal("APIG.0301", err.code)
      assert.is_false(err.retryable)
      assert_contains(err.message, "signature mismatch")
      assert_record_failure(err, JOB, 61)
      assert.is_false(plain_find(err.message, WRONG_SK))
    end)

    it("a project id the service does not know is 403 (nested error body), kind auth", function()
      local other = clients.aksk(emu, { retries = 0, project_id = OTHER_PROJECT })
      local err = failure(other:record_info(JOB, 61))
      other:close()
      assert.are.equal("auth", err.kind)
      assert.are.equal(403, err.status)
      assert.are.equal("APIGW.0306", err.code)
      assert.is_false(err.retryable)
      assert_contains(err.message, "project id does not match the token")
      assert_record_failure(err, JOB, 61)
    end)

    it("a request signed outside the X-Sdk-Date window is kind auth", function()
      local skewed = emulator.start{ clock_offset = 3600 }
      finally(function() skewed:stop() end)
      add_secrets(skewed)
      local c = clients.aksk(skewed, { retries = 0 })
      local err = failure(c:record_info(JOB, 61))
      c:close()
      assert.are.equal("auth", err.kind)
      assert.are.equal(401, err.status)
      assert.are.equal("APIG.0301", err.code)
      assert_contains(err.message, "x-sdk-date")
      assert_record_failure(err, JOB, 61)
      assert.are.equal(1, skewed:stats().requests)
    end)
  end)

  describe("api kind", function()
    it("a v3 answer with success:false gives kind api with its code and message", function()
      emu:faults{ { action = "api_fail", code = "CB.00062005", message = "the job is being deleted", times = 1 } }
      local err = failure(client:record_info(JOB, 630))
      assert.are.equal("api", err.kind)
      assert.are.equal("CB.00062005", err.code)
      assert_contains(err.message, "the job is being deleted")
      assert_contains(err.message, "CB.00062005 the job is being deleted")
      assert.is_false(err.retryable)
      assert_record_failure(err, JOB, 630)
      still_works()
    end)
  end)

  describe("decode kind", function()
    local cases = {
      { name = "an HTML page with status 200", rule = { action = "malformed" } },
      { name = "a truncated body", rule = { action = "truncate" } },
      { name = "a non-JSON body", rule = { action = "body", body = "this is not JSON at all" } },
      { name = "a top-level JSON array", rule = { action = "body", body = '[{"success":true,"result":{}}]' } },
      { name = "a string result", rule = { action = "body", body = '{"success":true,"result":"x"}' } },
      { name = "a record whose status is a table", mention = "status",
        rule = { action = "body", body = '{"success":true,"result":{"buildNo":61,"status":{"name":"SUCCESS"}}}' } },
      { name = "JSON nested 10000 deep", rule = { action = "deep", depth = 10000 } },
      { name = "an empty 200 body", rule = { action = "body", body = "" } },
    }
    for i, case in ipairs(cases) do
      it("for " .. case.name .. ", and the client still works", function()
        local rule = case.rule
        rule.times = 1
        emu:faults{ rule }
        local err = failure(client:record_info(JOB, 640 + i))
        assert.are.equal("decode", err.kind)
        assert.is_false(err.retryable)
        assert.are.equal(200, err.status)
        assert_record_failure(err, JOB, 640 + i)
        if case.mention then assert_contains(err.message, case.mention) end
        still_works()
        assert.are.equal(2, emu:stats().requests)
      end)
    end

    it("stops reading a body over max_body", function()
      local small = clients.aksk(emu, { retries = 0, max_body = 65536 })
      emu:faults{ { action = "huge", bytes = 10 * 1024 * 1024, times = 1 } }
      local err = failure(small:record_info(JOB, 660))
      assert.are.equal("decode", err.kind)
      assert.is_false(err.retryable)
      assert_contains(err.message, "max_body")
      assert_record_failure(err, JOB, 660)
      still_works(small)
      small:close()
    end)
  end)

  describe("network kind", function()
    it("when nothing listens on the port", function()
      local port = closed_port()
      local c = clients.aksk(emu, { retries = 0, endpoint = "http://127.0.0.1:" .. port })
      local err = failure(c:record_info(JOB, 61))
      c:close()
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
      assert.is_nil(err.status)
      assert_record_failure(err, JOB, 61)
    end)

    it("when the server resets the connection", function()
      -- every request for the build: libcurl sends a GET again, once, when a reused connection dies
      -- before any answer, and the client here has a kept-alive connection from the tests before
      emu:faults{ { action = "reset", build_no = 670 } }
      local err = failure(client:record_info(JOB, 670))
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
      assert.is_nil(err.status)
      assert_record_failure(err, JOB, 670)
      still_works()
    end)

    it("when the server closes the connection in the middle of the body", function()
      emu:faults{ { action = "cut", times = 1 } }
      local err = failure(client:record_info(JOB, 671))
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
      assert_record_failure(err, JOB, 671)
      still_works()
    end)
  end)

  describe("timeout kind", function()
    it("when the answer takes longer than the client's timeout", function()
      local impatient = clients.aksk(emu, { retries = 0, timeout = 0.5 })
      emu:faults{ { action = "delay", seconds = 3, times = 1 } }
      local err = failure(impatient:record_info(JOB, 680))
      assert.are.equal("timeout", err.kind)
      assert.is_true(err.retryable)
      assert.is_nil(err.status)
      assert_record_failure(err, JOB, 680)
      still_works(impatient)
      impatient:close()
    end)
  end)

  describe("through submit and poll", function()
    local FIELDS = { "kind", "status", "code", "retryable", "attempts", "job_id", "build_no" }

    local function same_error(blocking, polled, compare_messages)
      for _, field in ipairs(FIELDS) do
        assert.are.equal(blocking[field], polled[field], field)
      end
      if compare_messages then
        assert.are.equal(without_request_id(blocking.message), without_request_id(polled.message))
      end
    end

    local cases = {
      { name = "an HTTP 503", kind = "http", rule = { action = "status", status = 503 }, same_message = true },
      { name = "a missing build", kind = "not_found", build_no = 99999, same_message = true },
      { name = "an api failure", kind = "api", rule = { action = "api_fail" }, same_message = true },
      { name = "a malformed body", kind = "decode", rule = { action = "malformed" }, same_message = true },
      { name = "a reset connection", kind = "network", rule = { action = "reset" } },
      { name = "a timeout", kind = "timeout", rule = { action = "delay", seconds = 3 }, timeout = 0.5 },
    }
    for i, case in ipairs(cases) do
      it("gives the same err as the blocking call for " .. case.name, function()
        local build_no = case.build_no or 700 + i
        if case.rule then
          case.rule.build_no = build_no -- every request for this build, the blocking one and the polled one
          emu:faults{ case.rule }
        end
        local c = case.timeout and clients.aksk(emu, { retries = 0, timeout = case.timeout }) or client
        local blocking = failure(c:record_info(JOB, build_no))
        local entry = through_poll(c, JOB, build_no)
        if c ~= client then c:close() end
        local polled = poll_failure(entry)
        assert.are.equal(case.kind, blocking.kind)
        same_error(blocking, polled, case.same_message)
        assert_record_failure(polled, JOB, build_no)
        if case.kind == "network" then
          assert.is_true(emu:stats().requests >= 2) -- see "when the server resets the connection"
        else
          assert.are.equal(2, emu:stats().requests)
        end
      end)
    end

    it("a network failure (nothing listening) is the same through poll", function()
      local c = clients.aksk(emu, { retries = 0, endpoint = "http://127.0.0.1:" .. closed_port() })
      local blocking = failure(c:record_info(JOB, 61))
      local polled = poll_failure(through_poll(c, JOB, 61))
      c:close()
      assert.are.equal("network", blocking.kind)
      same_error(blocking, polled, false)
      -- libcurl's text says how long the refusal took ("after 0 ms"): compare the rest.
      local function timeless(message) return (message:gsub("after %d+ ms", "after N ms")) end
      assert.are.equal(timeless(blocking.message), timeless(polled.message))
    end)

    it("one failing build among ten leaves the other nine intact", function()
      emu:faults{ { action = "status", status = 500, build_no = 105 } }
      local ids = {}
      for n = 101, 110 do ids[assert(client:submit(JOB, n))] = n end
      local results = clients.drain(client)
      assert.are.equal(10, #results)
      assert.are.equal(0, client:pending())
      local seen, failed = {}, 0
      for _, r in ipairs(results) do
        assert.are.equal(ids[r.id], r.build_no)
        assert.are.equal(JOB, r.job_id)
        assert.is_nil(seen[r.build_no], "build returned twice: " .. tostring(r.build_no))
        seen[r.build_no] = true
        if r.build_no == 105 then
          failed = failed + 1
          local err = poll_failure(r)
          assert.are.equal("http", err.kind)
          assert.are.equal(500, err.status)
          assert.is_true(err.retryable)
          assert_record_failure(err, JOB, 105)
        else
          assert.is_nil(r.err)
          assert.is_nil(r.message)
          local expected = emu:expected(JOB, r.build_no)
          assert.are.equal(r.build_no, r.record.buildNo)
          assert.are.equal(expected.status, r.record.status)
          assert.are.equal(expected.commit, r.record.commit)
        end
      end
      assert.are.equal(1, failed)
      for n = 101, 110 do assert.is_true(seen[n], "missing build " .. n) end
      assert.are.equal(10, emu:stats().requests)
    end)
  end)

  describe("secrets", function()
    it("are absent from failures of token and temporary-credential clients", function()
      local token = clients.token(emu, { retries = 0 })
      local temporary = clients.temporary(emu, { retries = 0 })
      local wrong_token = clients.token(emu, { retries = 0, token = WRONG_TOKEN })
      secrets[#secrets + 1] = WRONG_TOKEN
      emu:faults{ { action = "status", status = 500, times = 2 } }
      assert.are.equal("http", failure(token:record_info(JOB, 61)).kind)
      assert.are.equal("http", failure(temporary:record_info(JOB, 61)).kind)
      assert.are.equal("not_found", failure(temporary:record_info(JOB, 99999)).kind)
      assert.are.equal("not_found", failure(token:get("/v3/jobs/" .. JOB .. "/99999/record-info")).kind)
      -- Last: after a 401 a client sends nothing for a while (spec/engine_spec.lua).
      emu:faults{ { action = "status", status = 401, times = 2 } }
      assert.are.equal("auth", failure(token:record_info(JOB, 62)).kind)
      assert.are.equal("auth", failure(temporary:record_info(JOB, 62)).kind)
      local err = failure(wrong_token:record_info(JOB, 63))
      assert.are.equal("auth", err.kind)
      assert_contains(err.message, "invalid token")
      for _, c in ipairs{ token, temporary, wrong_token } do c:close() end
    end)

  end)
end)
