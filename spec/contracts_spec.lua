-- Issue 12: configuration as the official SDKs read it, and what hostile input gets. Anything read
-- from the environment runs in a child interpreter (run.lua_code) whose environment holds only what
-- the test sets.
local cb = require "codeartsbuild"
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

local PRELUDE = [[
local cb = require "codeartsbuild"
local cjson = require "cjson"
local JOB = %q
local function report(t) io.write("\n@@RESULT@@", cjson.encode(t), "\n") end
]]

--- Runs code in a fresh interpreter whose environment holds only env; returns what it reported.
local function in_child(env, code)
  local out, status = run.lua_code(PRELUDE:format(JOB) .. code, env)
  local json = out:match("@@RESULT@@([^\n]*)")
  assert(json, ("the child reported nothing (exit status %s):\n%s"):format(tostring(status), out))
  return cjson.decode(json), out
end

--- cb.new() from the environment in a child, then record_info(JOB, 61): what came of it.
local NEW_AND_READ = [[
local c, msg, err = cb.new(%s)
if not c then return report{ kind = err.kind, message = msg } end
local rec, rmsg, rerr = c:record_info(JOB, 61)
report{ build_no = rec and rec.buildNo, message = rmsg, kind = rerr and rerr.kind, info = c:info() }
]]

local function new_and_read(env, options)
  return in_child(env, NEW_AND_READ:format(options or "nil"))
end

describe("configuration as the official SDKs read it", function()
  local emu, dir

  setup(function()
    emu = emulator.start{}
    dir = run.tmpdir()
  end)

  teardown(function()
    emu:stop()
    os.execute("rm -rf " .. run.quote(dir))
  end)

  before_each(function() emu:reset() end)

  local function file_env(text, extra)
    local path = dir .. "/credentials"
    run.write(path, text)
    local env = { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_CREDENTIALS_FILE = path }
    for k, v in pairs(extra or {}) do env[k] = v end
    return env
  end

  it("reads the credentials file by the SDK's rules: = or :, keys in any case, a BOM, long lines", function()
    local long_token = ("x"):rep(4000) -- a temporary security token longer than any old line limit
    local text = "\239\187\191# the SDK's file\n[other]\nak = NOTTHISONE0000000000\n\n[basic]\r\n  AK: " .. emu.ak
      .. "\r\n Sk =" .. emu.sk .. "\n; a comment\nPROJECT_ID : " .. emu.project_id .. "\nsecurity_token=" .. long_token
      .. "\n"
    local result = in_child(file_env(text), [[
      local c, msg = cb.new()
      if not c then return report{ message = msg } end
      report{ info = c:info() }
    ]])
    assert.is_nil(result.message, result.message)
    assert.are.same({ "credentials file", emu.project_id, true },
      { result.info.credential_source, result.info.project_id, result.info.temporary })
    -- The file's values are taken whole (a 4,000-byte security token makes the client a temporary
    -- one); with the file's keys and no such token, the record reads.
    result = new_and_read(file_env((text:gsub("security_token=x+\n", ""))))
    assert.are.equal(61, result.build_no, result.message)
  end)

  it("reads another section with profile =, over the environment's keys, and names a missing one", function()
    local text = "[basic]\nak = WRONGAKWRONGAKWRONG1\nsk = wrong\n[emu]\nak=" .. emu.ak .. "\nsk=" .. emu.sk
      .. "\nproject_id=" .. emu.project_id .. "\n[half]\nak = " .. emu.ak .. "\n"
    local env = file_env(text, { HUAWEICLOUD_SDK_AK = "ENVAKENVAKENVAKENVAK", HUAWEICLOUD_SDK_SK = "env" })
    assert.are.equal(61, new_and_read(env, '{ profile = "emu" }').build_no)
    local result = new_and_read(env, '{ profile = "prod" }')
    assert.are.equal("config", result.kind)
    assert.truthy(result.message:find(dir .. "/credentials has no section [prod] (its sections: basic, emu, half)",
      1, true), result.message)
    result = new_and_read(env, '{ profile = "half" }')
    assert.truthy(result.message:find("section [half] of " .. dir .. "/credentials has no sk", 1, true), result.message)
    assert.is_nil(result.message:find(emu.sk, 1, true))
  end)

  it("refuses a credentials file that is a directory, a FIFO or a device at once", function()
    local fifo = dir .. "/fifo"
    os.execute("mkfifo " .. run.quote(fifo))
    local cases = { [dir] = "is a directory", [fifo] = "not a regular file", ["/dev/zero"] = "not a regular" }
    for path, said in pairs(cases) do
      local result = in_child({ HUAWEICLOUD_SDK_CREDENTIALS_FILE = path, CODEARTSBUILD_ENDPOINT = emu.url }, [[
        local c, msg, err = cb.new()
        report{ kind = err and err.kind, message = msg }
      ]])
      assert.are.equal("config", result.kind, path)
      assert.truthy(result.message:find(said, 1, true), result.message)
    end
  end)

  it("takes HUAWEICLOUD_SDK_IAM_ENDPOINT, and the first of a comma-separated region endpoint", function()
    local result = in_child({ CODEARTSBUILD_REGION = "cn-north-4", HUAWEICLOUD_SDK_AK = emu.ak,
      HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_IAM_ENDPOINT = emu.url,
      HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_CN_NORTH_4 = emu.url .. ", https://other.example" }, [[
      local c, msg = assert(cb.new())
      local rec, rmsg = c:record_info(JOB, 61)
      report{ info = c:info(), build_no = rec and rec.buildNo, message = rmsg }
    ]])
    assert.are.same({ emu.url, emu.url, 61 }, { result.info.endpoint, result.info.iam_endpoint, result.build_no })
    assert.are.equal(emu.project_id, result.info.project_id) -- looked up at the IAM endpoint given
    assert.are.equal(1, emu:stats().by_route["GET /v3/projects"])
  end)

  it("refuses several IAM projects named as the region, naming them, as the SDK does", function()
    emu:faults{ { action = "body", path_contains = "/v3/projects",
      body = '{"projects": [{"id": "aaaa1111", "name": "cn-north-4"}, {"id": "bbbb2222", "name": "cn-north-4"}]}' } }
    local c = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4", ak = emu.ak,
      sk = emu.sk })
    local _, message, err = c:record_info(JOB, 61)
    c:close()
    assert.are.equal("config", err.kind)
    assert.truthy(message:find("IAM has 2 projects named cn-north-4 (aaaa1111, bbbb2222)", 1, true), message)
  end)

  it("signs in asking for no catalog", function()
    local c = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4", retries = 0,
      iam = { user = emu.iam_user, password = emu.iam_password, domain = emu.iam_domain } })
    -- A refused sign-in is the last request the emulator sees: its query is there to read.
    emu:faults{ { action = "status", status = 400, path_contains = "/v3/auth/tokens", times = 1 } }
    assert.is_nil(c:record_info(JOB, 61))
    c:close()
    local last = emu:stats().last
    assert.are.same({ "POST", "/v3/auth/tokens" }, { last.method, last.path })
    assert.truthy(tostring(last.query):find("nocatalog=true", 1, true), tostring(last.query))
  end)
end)

describe("hostile input", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("a CR, LF or NUL in a value that goes into a header is refused by new()", function()
    for _, name in ipairs{ "token", "ak", "project_id", "security_token", "user_agent" } do
      for _, bad in ipairs{ "tok\r\nX-Injected: yes", "tok\nen", "tok\0en" } do
        local options = { endpoint = emu.url, token = "t" }
        if name == "ak" or name == "security_token" then options = { endpoint = emu.url, ak = "AK", sk = "SK" } end
        options[name] = bad
        local c, message, err = cb.new(options)
        assert.is_nil(c, name)
        assert.are.equal("invalid", err.kind, name)
        assert.truthy(message:find("option '" .. name .. "' holds a control character", 1, true), message)
      end
    end
    local _, _, err = cb.new{ endpoint = emu.url, token = "t", ca_file = "a\0b" }
    assert.are.equal("invalid", err.kind)
    -- From the environment, the same values are refused too.
    local result = in_child({ CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_TOKEN = "tok\r\nX-Injected: yes" }, [[
      local c, msg, err = cb.new()
      report{ kind = err and err.kind, message = msg }
    ]])
    assert.are.equal("config", result.kind)
    assert.truthy(result.message:find("the token holds a control character", 1, true), result.message)
    assert.are.equal(0, emu:stats().requests)
  end)

  it("plain http:// goes to 127.0.0.0/8 literals, localhost and [::1] only", function()
    for _, url in ipairs{ "http://127.0.0.1.evil.example", "http://127.evil.example:8080", "http://127.0.0.1x",
      "http://1270.0.0.1", "http://127.0.0.256", "http://127.0.0", "http://example.com" } do
      local c, message, err = cb.new{ endpoint = url, token = "t" }
      assert.is_nil(c, url)
      assert.are.equal("config", err.kind, url)
      assert.truthy(message:find("http://", 1, true), message)
    end
    for _, url in ipairs{ "http://127.0.0.1:1", "http://127.255.0.9", "http://localhost:8080", "http://[::1]:1" } do
      local c = assert(cb.new{ endpoint = url, token = "t" })
      c:close()
    end
  end)

  it("refuses endpoints with a bad port or anything after the host, and regions with other characters", function()
    for _, url in ipairs{ "https://example.com:99999", "https://example.com:0x46a0", "https://[::1]evil",
      "https://example.com:0", "https://example.com:", "https://exa_mple.com", "https://[::1",
      "https://user@example.com" } do
      local c, _, err = cb.new{ endpoint = url, token = "t" }
      assert.is_nil(c, url)
      assert.are.equal("config", err.kind, url)
    end
    for _, region in ipairs{ "cn-north-4/../x", "cn north", "CN-NORTH-4", "cn-north-4?x" } do
      local c, _, err = cb.new{ region = region, token = "t" }
      assert.is_nil(c, region)
      assert.are.equal("config", err.kind, region)
    end
  end)

  it("never shows a proxy's password (libcurl quotes the proxy URL it cannot use)", function()
    local result = in_child({ CODEARTSBUILD_ENDPOINT = "http://127.0.0.1:1", CODEARTSBUILD_TOKEN = "t",
      http_proxy = "http://user:s3cretPW@[bad proxy", no_proxy = "" }, [[
      local c = assert(cb.new{ retries = 0 })
      local _, msg, err = c:record_info(JOB, 61)
      report{ message = msg, kind = err.kind }
    ]])
    assert.is_nil(result.message:find("s3cretPW", 1, true), result.message)
    assert.truthy(result.message:find("***", 1, true), result.message)
  end)

  it("a connection reset in the middle of the TLS handshake is a network failure, and retried", function()
    -- A server that accepts, then resets the connection (SO_LINGER 0) without a word.
    local dir = run.tmpdir()
    local script = dir .. "/reset.py"
    run.write(script, [[
import os, socket, struct, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept()
    c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
]])
    local pid = tonumber(run.capture(("(exec python3 %s %s/port >/dev/null 2>&1 </dev/null) & echo $!"):format(
      run.quote(script), run.quote(dir))):match("%d+"))
    local port
    for _ = 1, 100 do
      port = tonumber(run.read(dir .. "/port") or "")
      if port then break end
      os.execute("sleep 0.05")
    end
    local c = assert(cb.new{ endpoint = "https://127.0.0.1:" .. port, token = "t", retries = 2, backoff = 0.01 })
    local _, message, err = c:record_info(JOB, 61)
    c:close()
    os.execute(("kill %d; rm -rf %s"):format(pid, run.quote(dir)))
    assert.are.equal("network", err.kind, message)
    assert.is_true(err.retryable)
    assert.are.equal(3, err.attempts)
  end)

  it("refuses dot segments in a get() path, encoded ones too", function()
    local c = clients.aksk(emu)
    for _, path in ipairs{ "/v3/jobs/%2e%2e/%2E%2E/secret", "/v3/%2e/x", "/v3/.%2E/x", "/v3/jobs/..", "/a/./b" } do
      local body, _, err = c:get(path)
      assert.is_nil(body, path)
      assert.are.equal("invalid", err.kind, path)
    end
    assert.is_not_nil(select(3, c:get("/v3/jobs/%2e%2e%2e/x"))) -- three dots is a name: sent (and not found)
    c:close()
    assert.are.equal(1, emu:stats().requests)
  end)

  it("latest() takes only a whole build number in range from running-status", function()
    local c = clients.aksk(emu)
    for _, json in ipairs{ "1e12", "1.5e300", '"0x10"', '"12abc"', "-3", "true", '"2147483648"' } do
      emu:clear_faults()
      emu:faults{ { action = "field", field = "result.last_build_no", json = json } }
      local n, message, err = c:latest(JOB)
      assert.is_nil(n, json)
      assert.are.equal("decode", err.kind, json)
      assert.truthy(message:find("running-status has no build number", 1, true), message)
    end
    emu:clear_faults()
    emu:faults{ { action = "field", field = "result.last_build_no", json = '"1200"' } }
    assert.are.equal(1200, c:latest(JOB))
    c:close()
  end)

  it("an on_event hook that raises a table is reported as such, and the result is not lost", function()
    local result = in_child({ CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_TOKEN = emu.token }, [[
      local c = assert(cb.new{ on_event = function() error({ code = 1 }) end })
      local rec = c:record_info(JOB, 61)
      report{ build_no = rec and rec.buildNo }
    ]])
    assert.are.equal(61, result.build_no)
    local _, out = in_child({ CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_TOKEN = emu.token }, [[
      local c = assert(cb.new{ on_event = function() error({ code = 1 }) end })
      c:record_info(JOB, 61)
      report{}
    ]])
    assert.truthy(out:find("on_event hook failed: table", 1, true), out)
    assert.is_nil(out:find("(null)", 1, true), out)
  end)

  it("a wrong argument raises at the caller's line, through every wrapper", function()
    local c = clients.aksk(emu)
    local here = debug.getinfo(1, "S").short_src
    for _, call in ipairs{
      function() c:records(JOB, { form = 1 }) end,
      function() c:records(42) end,
      function() c:fetch(JOB, 5) end,
      function() c:history(JOB, { days = 99 }) end,
      function() cb.where{ colour = 1 } end,
      function() cb.filter({}, { colour = 1 }) end,
      function() cb.summary(5) end,
    } do
      local ok, message = pcall(call)
      assert.is_false(ok)
      assert.are.equal(here, tostring(message):match("^([^:]+):%d+:"), tostring(message))
    end
    c:close()
  end)
end)
