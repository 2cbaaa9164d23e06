-- Hostile responses: a server (or something in the middle) that sends what no real service
-- would: 100 KB of headers, 50 MB of body, JSON nested 10,000 deep, bytes that are not UTF-8,
-- numbers that overflow a double, and every record field with the wrong type. Each must end in
-- a record with sanitised values or in a clear error (nil, message, err), never in a crash or
-- in a Lua error raised from C: every call here runs under pcall and the pcall must succeed.
--
-- Most bodies come from the emulator's fault rules (`body`, `headers`, `huge`, `deep`). Bytes
-- that are not UTF-8 cannot pass through the emulator's JSON control API, and a body without
-- Content-Length is not something it sends, so a few tests use RAW_SERVER below: a tiny HTTP
-- server that answers each record request with a file's bytes, as they are.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

-- The 33 fields of a record: camelCase, snake_case, and what the client makes of them.
local FIELDS = {
  { "id", "id", "string" }, { "buildProjectId", "build_project_id", "string" },
  { "buildRecordId", "build_record_id", "string" }, { "parentRecordId", "parent_record_id", "string" },
  { "devcloudProjectId", "devcloud_project_id", "string" }, { "codeciJobId", "codeci_job_id", "string" },
  { "userId", "user_id", "string" }, { "buildNo", "build_no", "integer" },
  { "dailyBuildNum", "daily_build_num", "string" }, { "executionId", "execution_id", "string" },
  { "repoName", "repo_name", "string" }, { "repoId", "repo_id", "string" }, { "branch", "branch", "string" },
  { "tag", "tag", "string" }, { "commit", "commit", "string" }, { "commitMessage", "commit_message", "string" },
  { "commitCreateTime", "commit_create_time", "string" }, { "triggerType", "trigger_type", "string" },
  { "buildType", "build_type", "string" }, { "status", "status", "string" }, { "domainId", "domain_id", "string" },
  { "createTime", "create_time", "string" }, { "scheduleTime", "schedule_time", "string" },
  { "queuedTime", "queued_time", "string" }, { "startTime", "start_time", "string" },
  { "runnableTime", "runnable_time", "string" }, { "finishTime", "finish_time", "string" },
  { "duration", "duration", "number" }, { "recordStatus", "record_status", "string" },
  { "usePrivateSlave", "use_private_slave", "integer" }, { "region", "region", "string" },
  { "errMsg", "err_msg", "string" }, { "buildConfigType", "build_config_type", "string" },
}

local function record_body(result_json)
  return '{"success": true, "result": ' .. result_json .. "}"
end

--- record_info under pcall: the call itself must never raise. Returns rec, message, err.
local function fetch(client, build_no)
  local ok, rec, msg, err = pcall(client.record_info, client, JOB, build_no or 61)
  assert.is_true(ok, "record_info raised: " .. tostring(rec))
  return rec, msg, err
end

local function assert_decode_error(rec, msg, err, needle)
  assert.is_nil(rec)
  assert.is_true(cb.is_error(err, "decode"), "expected a decode error, got: " .. tostring(msg))
  assert.are.equal(msg, tostring(err))
  if needle then
    assert.is_truthy(msg:find(needle, 1, true), ("%q does not mention %q"):format(msg, needle))
  end
end

local function assert_printable(text, max_len)
  assert.are.equal("string", type(text))
  assert.is_nil(text:find("[%c\127-\255\"\\]"), "unsanitised bytes in " .. ("%q"):format(text))
  assert.is_true(#text <= max_len, ("%d bytes, more than %d"):format(#text, max_len))
end

describe("hostile responses from the emulator", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    client = clients.aksk(emu, { retries = 0 })
  end)

  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
  end)

  before_each(function() emu:reset() end)

  describe("headers", function()
    it("refuses one header line of 100 KB with an error, not a crash", function()
      -- libcurl caps a header line at 100 KB and reports the oversized line as "Out of memory"
      -- (CURLE_OUT_OF_MEMORY), which the client passes on as a network error, not retried.
      local retrying = clients.aksk(emu, { retries = 3, backoff = 0.01 })
      emu:faults{ { action = "headers", headers = { ["X-Padding"] = ("p"):rep(100 * 1024) } } }
      local rec, msg, err = fetch(retrying)
      retrying:close()
      assert.is_nil(rec)
      assert.is_true(cb.is_error(err, "network") or cb.is_error(err, "decode"), msg)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, emu:stats().requests)
    end)

    it("takes 100 KB of headers spread over 100 lines and returns the record", function()
      local many = {}
      for i = 1, 100 do many["X-Padding-" .. i] = ("p"):rep(1024) end
      emu:faults{ { action = "headers", headers = many } }
      local rec, msg = fetch(client)
      assert.are.equal(61, rec and rec.buildNo, msg)
    end)

    it("keeps at most 71 printable bytes of an X-Request-Id of 99 KB", function()
      emu:faults{ { action = "status", status = 404, headers = { ["X-Request-Id"] = ("r"):rep(99 * 1024) } } }
      local rec, msg, err = fetch(client)
      assert.is_nil(rec)
      assert.are.equal("not_found", err.kind, msg)
      assert.are.equal(("r"):rep(71), err.request_id)
      assert_printable(msg, 1024)
    end)

    it("drops quotes, backslashes and bytes beyond ASCII from X-Request-Id", function()
      -- "\195\191" is U+00FF, which the emulator sends as the single byte 0xFF (latin-1).
      emu:faults{ { action = "status", status = 404, headers = { ["X-Request-Id"] = 'ab\195\191cd"e\\f g' } } }
      local _, msg, err = fetch(client)
      assert.are.equal("abcdef g", err.request_id)
      assert.is_truthy(msg:find("(request id abcdef g)", 1, true), msg)
    end)

    it("caps a Retry-After of 10^14 seconds at max_backoff", function()
      local patient = clients.aksk(emu, { retries = 1, max_backoff = 0.05 })
      emu:faults{ { action = "status", status = 429, times = 2, headers = { ["Retry-After"] = "99999999999999" } } }
      local ok, rec, msg, err = pcall(patient.record_info, patient, JOB, 61)
      patient:close()
      assert.is_true(ok, tostring(rec))
      assert.is_nil(rec)
      assert.are.equal("throttled", err.kind, msg)
      assert.are.equal(2, err.attempts)
    end)
  end)

  describe("a body of 50 MB", function()
    it("is stopped at max_body with a decode error", function()
      emu:faults{ { action = "huge", bytes = 50 * 1024 * 1024 } }
      local rec, msg, err = fetch(client)
      assert_decode_error(rec, msg, err, "larger than max_body (4194304 bytes)")
      assert.is_false(err.retryable)
      -- The emulator announces the size (Content-Length), so libcurl refuses the body before
      -- reading any of it; the raw server below checks a body that does not announce its size.
    end)
  end)

  describe("JSON nested 10,000 deep", function()
    it("in the result is a decode error", function()
      emu:faults{ { action = "deep", depth = 10000 } }
      local rec, msg, err = fetch(client)
      assert_decode_error(rec, msg, err, "too many nested")
    end)

    it("as objects is a decode error", function()
      local deep = ('{"a": '):rep(10000) .. "1" .. ("}"):rep(10000)
      emu:faults{ { action = "body", body = record_body(deep) } }
      local rec, msg, err = fetch(client)
      assert_decode_error(rec, msg, err, "too many nested")
    end)

    it("in an error body leaves the HTTP error as it is", function()
      emu:faults{ { action = "status", status = 500, body = ("["):rep(10000) .. ("]"):rep(10000) } }
      local rec, msg, err = fetch(client)
      assert.is_nil(rec)
      assert.are.equal("http", err.kind, msg)
      assert.are.equal(500, err.status)
    end)

    it("through get() is a decode error", function()
      emu:faults{ { action = "deep", depth = 10000 } }
      local ok, body, msg, err = pcall(client.get, client, "/v3/jobs/" .. JOB .. "/61/record-info")
      assert.is_true(ok, tostring(body))
      assert_decode_error(body, msg, err, "too many nested")
    end)

    it("but 60 deep inside an unknown field is kept, without its nulls", function()
      local nested = ('{"n": null, "a": '):rep(60) .. "[null, 1]" .. ("}"):rep(60)
      emu:faults{ { action = "body", body = record_body('{"buildNo": 61, "extra": ' .. nested .. "}") } }
      local rec, msg = fetch(client)
      assert.are.equal(61, rec and rec.buildNo, msg)
      local t, depth = rec.extra, 0
      while type(t) == "table" and t.a ~= nil and depth < 100 do
        assert.is_nil(t.n)
        t, depth = t.a, depth + 1
      end
      assert.are.equal(60, depth)
      assert.are.same({ [2] = 1 }, t)
    end)
  end)

  describe("strings", function()
    it("with an escaped lone surrogate (not UTF-16) are a decode error", function()
      for _, escape in ipairs{ "\\ud800", "\\udc00", "\\ud800\\u0041" } do
        emu:clear_faults()
        emu:faults{ { action = "body", body = record_body('{"buildNo": 61, "branch": "a' .. escape .. 'b"}') } }
        local rec, msg, err = fetch(client)
        assert_decode_error(rec, msg, err, "invalid unicode escape")
      end
    end)

    it("with NUL and control characters come back byte for byte", function()
      emu:faults{ { action = "body", body = record_body('{"buildNo": 61, "branch": "a\\u0000b\\u001b[2Jc"}') } }
      local rec, msg = fetch(client)
      assert.are.equal("a\0b\27[2Jc", rec and rec.branch, msg)
    end)

    it("in an error body lose their control characters and are cut", function()
      local message = "line1\\r\\nline2\\u0007" .. ("m"):rep(100000)
      local body = '{"error_code": "A\\nB", "error_msg": "' .. message .. '"}'
      emu:faults{ { action = "status", status = 500, body = body } }
      local rec, msg, err = fetch(client)
      assert.is_nil(rec)
      assert.are.equal("A B", err.code)
      assert.is_truthy(msg:find("HTTP 500: A B line1  line2 mmm", 1, true), msg)
      assert.is_nil(msg:find("%c"), msg)
      assert.is_true(#msg < 1024, #msg .. " bytes")
    end)

    it("of the wrong type in an error body are left out", function()
      emu:faults{ { action = "status", status = 503, body = '{"error_code": {"a": 1}, "error_msg": [1, 2]}' } }
      local rec, msg, err = fetch(client)
      assert.is_nil(rec)
      assert.are.equal("http", err.kind)
      assert.is_nil(err.code)
      assert.is_truthy(msg:find(": HTTP 503 (request id ", 1, true), msg)
    end)
  end)

  describe("numbers beyond a double", function()
    it("in buildNo, usePrivateSlave and duration are decode errors naming the field", function()
      for _, case in ipairs{
        { "buildNo", "1e999" }, { "buildNo", "-1e999" }, { "usePrivateSlave", "1e999" },
        { "duration", "1e999" }, { "duration", "-1e999" },
      } do
        emu:clear_faults()
        emu:faults{ { action = "body", body = record_body(('{"%s": %s}'):format(case[1], case[2])) } }
        local rec, msg, err = fetch(client)
        assert_decode_error(rec, msg, err, "field " .. case[1] .. " is not a finite number")
      end
    end)

    it("in a string field become the text inf", function()
      -- A string field takes any number as its text (repoId: 591248 -> "591248"); an infinite
      -- one is written as C writes it. The value is a string, never a float infinity.
      emu:faults{ { action = "body", body = record_body('{"buildNo": 61, "repoId": 1e999, "tag": -1e999}') } }
      local rec, msg = fetch(client)
      assert.are.equal("inf", rec and rec.repoId, msg)
      assert.are.equal("-inf", rec.tag)
    end)

    it("of 1e300 in buildNo is not an integer", function()
      emu:faults{ { action = "body", body = record_body('{"buildNo": 1e300}') } }
      local rec, msg, err = fetch(client)
      assert_decode_error(rec, msg, err, "field buildNo is not a 32-bit integer")
    end)

    it("of 1e300 in duration gives a record whose one-line view is sane", function()
      -- Found by fuzz_record: tostring once cast the hours to int ("-2147483648h24m").
      emu:faults{ { action = "body", body = record_body('{"buildNo": 61, "duration": 1e300}') } }
      local rec, msg = fetch(client)
      assert.are.equal(1e300, rec and rec.duration, msg)
      local line = tostring(rec)
      assert.is_nil(line:find("-%d"), line)
    end)
  end)

  describe("bodies of the wrong shape", function()
    it("are decode errors", function()
      for _, body in ipairs{ "[1]", '"text"', "42", "null", "true", '{"success": true, "result": [1, 2]}',
        '{"success": true, "result": "text"}', '{"success": true, "result": 7}' } do
        emu:clear_faults()
        emu:faults{ { action = "body", body = body } }
        local rec, msg, err = fetch(client)
        assert_decode_error(rec, msg, err)
      end
    end)
  end)

  describe("wrong types in every one of the 33 fields", function()
    -- One rule per case, told apart by build number, and every request in flight at once.
    local cases = {}

    local function add(field, key, value_json, expect)
      cases[#cases + 1] = { field = field, key = key, json = value_json, expect = expect }
    end
    local integer_field = {}

    for _, f in ipairs(FIELDS) do
      local camel, snake, kind = f[1], f[2], f[3]
      integer_field[camel] = kind == "integer"
      local wanted = kind == "string" and "string" or "number"
      add(camel, camel, '{"a": [1, {"b": null}]}', "field " .. camel .. " is a table, not a " .. wanted)
      add(camel, camel, '[1, 2, 3]', "field " .. camel .. " is a table, not a " .. wanted)
      add(camel, camel, "true", "field " .. camel .. " is a boolean, not a " .. wanted)
      add(camel, snake, "{}", "field " .. camel .. " is a table, not a " .. wanted) -- the other spelling
      if camel == "codeciJobId" then -- the job: another one's record is never the answer
        add(camel, camel, "12.5", "the response is build")
        add(camel, camel, '"ffffffffffffffffffffffffffffffff"', "not the one asked for")
      elseif kind == "string" then
        add(camel, camel, "12.5", { value = "12.5" })
        add(camel, camel, "591248", { value = "591248" })
      elseif camel == "buildNo" then -- the build asked for, as a string; another one is never the answer
        add(camel, camel, '"abc"', "field " .. camel .. " is a string, not a number")
        add(camel, camel, '"#"', { value = "#" })
        add(camel, camel, "7", "not the one asked for")
      else
        add(camel, camel, '"abc"', "field " .. camel .. " is a string, not a number")
        add(camel, camel, '"61"', { value = 61 })
      end
      if kind == "integer" then
        add(camel, camel, "1.5", "field " .. camel .. " is not a 32-bit integer")
        add(camel, camel, "2147483648", "field " .. camel .. " is not a 32-bit integer")
      end
    end

    it("gives a decode error naming the field, or a sanitised value", function()
      local rules = {}
      for i, case in ipairs(cases) do
        -- "#" stands for the case's own build number, as a JSON string.
        if case.json == '"#"' then case.json, case.expect = ('"%d"'):format(i), { value = i } end
        local result = ('{"%s": %s}'):format(case.key, case.json)
        if case.field ~= "buildNo" then result = ('{"buildNo": %d, "%s": %s}'):format(i, case.key, case.json) end
        rules[i] = { action = "body", build_no = i, body = record_body(result) }
      end
      emu:faults(rules)
      for i = 1, #cases do assert(client:submit(JOB, i)) end
      local ok, results = pcall(clients.drain, client, 500)
      assert.is_true(ok, tostring(results))
      local by_build = {}
      for _, r in ipairs(results) do by_build[r.build_no] = r end
      for i, case in ipairs(cases) do
        local r = by_build[i]
        local label = ("%s = %s"):format(case.key, case.json)
        assert.is_not_nil(r, label .. ": no result")
        if type(case.expect) == "string" then
          assert.is_nil(r.record, label .. " gave a record")
          assert_decode_error(r.record, r.message, r.err, case.expect)
          assert.are.equal(i, r.err.build_no)
        else
          assert.is_not_nil(r.record, label .. ": " .. tostring(r.message))
          assert.are.equal(case.expect.value, r.record[case.field], label)
          if math.type and integer_field[case.field] then
            assert.are.equal("integer", math.type(r.record[case.field]), label)
          end
        end
      end
    end)
  end)
end)

-- A one-file HTTP server for bodies the emulator cannot send: each request for
-- .../<n>/record-info is answered from <dir>/<n>.body (bytes as they are, with Content-Length),
-- or from <dir>/<n>.stream (a size: that many bytes of JSON-looking body with no Content-Length,
-- written until the peer goes away; the bytes it managed to send go into <dir>/<n>.sent).
-- It stops on SIGTERM, when its parent is gone, or after 300 s.
local RAW_SERVER = [==[
import os, re, socket, sys, time
folder, parent = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(8)
server.settimeout(0.2)
with open(os.path.join(folder, "port.tmp"), "w") as f:
    f.write(str(server.getsockname()[1]))
os.rename(os.path.join(folder, "port.tmp"), os.path.join(folder, "port"))

def path_of(name):
    return os.path.join(folder, name)

def serve(conn):
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    m = re.search(rb"/(\d+)/record-info", data.split(b"\r\n", 1)[0])
    n = m.group(1).decode() if m else "0"
    if os.path.exists(path_of(n + ".body")):
        with open(path_of(n + ".body"), "rb") as f:
            body = f.read()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif os.path.exists(path_of(n + ".stream")):
        with open(path_of(n + ".stream")) as f:
            total = int(f.read())
        sent = 0
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            conn.sendall(b'{"success": true, "result": {"padding": "')
            chunk = b"x" * 65536
            while sent < total:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        with open(path_of(n + ".sent.tmp"), "w") as f:
            f.write(str(sent))
        os.rename(path_of(n + ".sent.tmp"), path_of(n + ".sent"))
    else:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

deadline = time.time() + 300
while time.time() < deadline:
    try:
        os.kill(parent, 0)
    except OSError:
        break
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    try:
        serve(conn)
    except OSError:
        pass
    finally:
        conn.close()
]==]

local read_file = run.read

local function sleep(seconds) os.execute("sleep " .. seconds) end

local function alive(pid)
  local _, status = run.capture("kill -0 " .. pid)
  return status == 0
end

describe("hostile responses from a raw server", function()
  local dir, pid, client

  setup(function()
    dir = run.tmpdir()
    run.write(dir .. "/server.py", RAW_SERVER)
    local out = run.capture(("python3 %s %s $PPID >%s 2>&1 & echo $!"):format(run.quote(dir .. "/server.py"),
      run.quote(dir), run.quote(dir .. "/server.log")))
    pid = assert(tonumber(out:match("(%d+)%s*$")), out)
    local port
    for _ = 1, 200 do -- at most 10 s
      port = read_file(dir .. "/port")
      if port or not alive(pid) then break end
      sleep(0.05)
    end
    assert(port, "the raw server did not start: " .. tostring(read_file(dir .. "/server.log")))
    client = assert(cb.new{ endpoint = "http://127.0.0.1:" .. port, ak = "RAWSERVERAK0000000000",
      sk = "rawServerSecretKey000000000000000000000", project_id = "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b",
      retries = 0, max_body = 1024 * 1024 })
  end)

  teardown(function()
    if client then client:close() end
    if pid then
      os.execute("kill " .. pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not alive(pid) then break end
        sleep(0.05)
      end
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    if dir then os.execute("rm -rf " .. run.quote(dir)) end
  end)

  it("returns strings that are not UTF-8 byte for byte (the client does not validate UTF-8)", function()
    local samples = {
      "\255\254", -- never valid
      "ab\195", -- a two-byte sequence cut short
      "\192\175", -- an overlong '/'
      "\237\160\128", -- a UTF-16 surrogate encoded as UTF-8
      "\244\144\128\128", -- beyond U+10FFFF
    }
    for i, bytes in ipairs(samples) do
      run.write(("%s/%d.body"):format(dir, i), record_body(('{"buildNo": %d, "branch": "%s", "errMsg": "x%sy"}')
        :format(i, bytes, bytes)))
      local rec, msg = fetch(client, i)
      assert.are.equal(i, rec and rec.buildNo, msg)
      assert.are.equal(bytes, rec.branch)
      assert.are.equal("x" .. bytes .. "y", rec.errMsg)
      assert.are.equal("string", type(tostring(rec)))
    end
  end)

  it("stops a 50 MB body without Content-Length at max_body, long before the server sent it all", function()
    local total = 50 * 1024 * 1024
    run.write(dir .. "/100.stream", tostring(total))
    local rec, msg, err = fetch(client, 100)
    assert_decode_error(rec, msg, err, "larger than max_body (1048576 bytes)")
    local sent
    for _ = 1, 400 do -- the server notices the closed connection on its next write: at most 20 s
      sent = read_file(dir .. "/100.sent")
      if sent then break end
      sleep(0.05)
    end
    assert.is_not_nil(sent, "the server never finished")
    -- What it sent is max_body plus what the kernel's socket buffers held: far below 50 MB.
    assert.is_true(tonumber(sent) < total / 2, ("the server sent %s of %d bytes"):format(sent, total))
  end)
end)
