-- Secrets: nothing the client produces may hold the SK, the token or the security token, and the
-- AK may show only as its first four characters followed by "****". "Produces" is everything a
-- caller or a log can see: return values (records, messages, every string inside err), raised
-- errors, tostring() of clients, records and errors, client:info(), poll() results, on_event
-- payloads, and the module's own output on stdout/stderr (from a child interpreter). That is
-- collected across success and every failure kind (invalid, config, auth, not_found, throttled,
-- http, api, network, timeout, tls, decode) for a token, a permanent AK/SK and temporary
-- credentials. Finally, build/<version>/wipecheck (spec/fuzz/wipe_check.c) shows that the
-- module's own memory holds no secret when it is given back.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

-- Fresh secrets for each run, long like real ones (IAM tokens run to kilobytes), so that a hit
-- can only be a leak and long values take the code paths where buffers grow.
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
math.randomseed(os.time())
local function random_text(prefix, length)
  local out = { prefix }
  for i = #prefix + 1, length do
    local k = math.random(1, #ALNUM)
    out[i - #prefix + 1] = ALNUM:sub(k, k)
  end
  return table.concat(out)
end

local S = {
  ak = random_text("AKID", 20),
  sk = random_text("skSECRET", 40),
  temp_ak = random_text("TMPK", 20),
  temp_sk = random_text("tsSECRET", 40),
  security_token = random_text("stSECRET", 1500),
  token = random_text("tkSECRET", 3000),
  wrong_sk = random_text("wsSECRET", 40),
}
local EMU_ENV = { EMU_AK = S.ak, EMU_SK = S.sk, EMU_TEMP_AK = S.temp_ak, EMU_TEMP_SK = S.temp_sk,
  EMU_SECURITY_TOKEN = S.security_token, EMU_TOKEN = S.token }

---------------------------------------------------------------------------------------------------
-- Finding secrets in text

-- Any 8 characters in a row of a secret give it away; the AKs are checked on 6 (their first 4
-- may show, as "ABCD****").
local WINDOWS = {}
local function add_windows(name, secret, width)
  for i = 1, #secret - width + 1 do WINDOWS[secret:sub(i, i + width - 1)] = name end
end
for _, name in ipairs{ "sk", "temp_sk", "security_token", "token", "wrong_sk" } do add_windows(name, S[name], 8) end
add_windows("ak", S.ak, 6)
add_windows("temp_ak", S.temp_ak, 6)

--- The secret a text gives away, or nil.
local function leak_in(text)
  for width = 6, 8, 2 do
    for i = 1, #text - width + 1 do
      local name = WINDOWS[text:sub(i, i + width - 1)]
      if name then return name end
    end
  end
  for _, name in ipairs{ "ak", "temp_ak" } do
    local prefix, from = S[name]:sub(1, 4), 1
    while true do
      local at = text:find(prefix, from, true)
      if not at then break end
      if text:sub(at + 4, at + 7) ~= "****" then return name .. " (more than its first 4 characters)" end
      from = at + 1
    end
  end
end

---------------------------------------------------------------------------------------------------
-- Collecting what the client produces

local Collector = {}
Collector.__index = Collector

local function pack(...) return { n = select("#", ...), ... } end

local function new_collector()
  return setmetatable({ texts = {}, kinds = {}, events = 0 }, Collector)
end

--- Adds every string reachable from value (keys too, and tostring of anything with a metatable).
function Collector:add(where, value, seen)
  seen = seen or {}
  local t = type(value)
  if t == "string" then
    self.texts[#self.texts + 1] = { where = where, text = value }
  elseif t == "number" or t == "boolean" then
    self.texts[#self.texts + 1] = { where = where, text = tostring(value) }
  elseif t == "table" or t == "userdata" then
    if seen[value] then return end
    seen[value] = true
    if getmetatable(value) ~= nil or t == "userdata" then self:add(where .. " (tostring)", tostring(value), seen) end
    if t == "table" then
      if cb.is_error(value) then self.kinds[value.kind] = true end
      for k, v in pairs(value) do
        self:add(where, k, seen)
        self:add(where .. "." .. tostring(k), v, seen)
      end
    end
  end
end

--- Adds the results of a call made under pcall: a raised error is collected as well.
function Collector:call(where, fn, ...)
  local results = pack(pcall(fn, ...))
  for i = 1, results.n do self:add(where, results[i]) end
  return (table.unpack or unpack)(results, 2, results.n)
end

function Collector:assert_clean()
  assert.is_true(#self.texts > 0)
  for _, item in ipairs(self.texts) do
    local name = leak_in(item.text)
    assert.is_nil(name, ("%s shows the %s: %s"):format(item.where, tostring(name), item.text:sub(1, 300)))
  end
end

---------------------------------------------------------------------------------------------------
-- The failure menu: one build number per way to fail, as emulator fault rules.

local FAULT_RULES = {
  { action = "status", status = 401, build_no = 501 },
  { action = "status", status = 403, build_no = 502 },
  { action = "status", status = 429, build_no = 503, headers = { ["Retry-After"] = "1" } },
  { action = "status", status = 500, build_no = 504 },
  { action = "status", status = 502, build_no = 505 },
  { action = "api_fail", build_no = 506 },
  { action = "reset", build_no = 507 },
  { action = "malformed", build_no = 508 },
  { action = "truncate", build_no = 509 },
  { action = "huge", bytes = 8 * 1024 * 1024, build_no = 510 },
  { action = "delay", seconds = 1.5, build_no = 511 }, -- with timeout = 0.3
}
local SLOW_BUILD = 511
local FAILING_BUILDS = {} -- all but the slow one, the 401 last: the client then sends nothing for a while
for _, rule in ipairs(FAULT_RULES) do
  if rule.build_no ~= SLOW_BUILD and rule.status ~= 401 then FAILING_BUILDS[#FAILING_BUILDS + 1] = rule.build_no end
end
FAILING_BUILDS[#FAILING_BUILDS + 1] = 501

local KINDS = { "invalid", "config", "auth", "not_found", "throttled", "http", "api", "network", "timeout",
  "tls", "decode" }

describe("secrets", function()
  local emu, tls_emu, certs_dir

  setup(function()
    emu = emulator.start{ env = EMU_ENV }
    emu:faults(FAULT_RULES)
    certs_dir = run.tmpdir()
    tls_emu = emulator.start{ env = EMU_ENV, tls = true, certs = emulator.make_certs(certs_dir) }
  end)

  teardown(function()
    if emu then emu:stop() end
    if tls_emu then tls_emu:stop() end
    if certs_dir then os.execute("rm -rf " .. run.quote(certs_dir)) end
  end)

  local CREDENTIALS = {
    token = { token = S.token },
    aksk = { ak = S.ak, sk = S.sk },
    temporary = { ak = S.temp_ak, sk = S.temp_sk, security_token = S.security_token },
  }

  local function options(credentials, extra)
    local o = { endpoint = emu.url, project_id = emu.project_id, retries = 0 }
    for k, v in pairs(credentials) do o[k] = v end
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  --- Success and every failure kind with one kind of credentials, everything into c.
  local function exercise(c, credentials)
    local on_event = function(event)
      c.events = c.events + 1
      c:add("on_event", event)
    end
    local client = c:call("new", cb.new, options(credentials, { on_event = on_event }))
    assert.is_not_nil(client)
    c:add("tostring(client)", tostring(client))
    c:add("info()", client:info())

    c:call("record_info", client.record_info, client, JOB, 61) -- success
    c:call("record_info", client.record_info, client, JOB, 0) -- invalid
    c:call("record_info", client.record_info, client, "not-a-job-id", 1) -- invalid
    c:call("record_info", client.record_info, client, JOB, 999999) -- not_found
    for _, n in ipairs(FAILING_BUILDS) do c:call("record_info " .. n, client.record_info, client, JOB, n) end
    c:call("get", client.get, client, "/v3/jobs/" .. JOB .. "/61/record-info")
    c:call("get", client.get, client, "/v9/nothing", { limit = 1 })
    c:call("get", client.get, client, "relative") -- invalid
    c:call("record_info", client.record_info, client, 42, 1) -- raises: wrong type

    -- submit/poll, and the Lua layer's walks on top of them.
    for _, n in ipairs{ 61, 999999, 501, 504, 508 } do c:call("submit", client.submit, client, JOB, n) end
    for _ = 1, 50 do
      if client:pending() == 0 then break end
      c:add("poll", client:poll(1000))
    end
    c:call("latest", client.latest, client, JOB)
    c:call("fetch", client.fetch, client, JOB, { 60, 61, 999999, 504 })

    -- timeout, network (nothing listens on port 1), tls (a CA the client does not know), decode
    -- at a small max_body, config and invalid options.
    local slow = assert(cb.new(options(credentials, { timeout = 0.3, on_event = on_event })))
    c:call("timeout", slow.record_info, slow, JOB, SLOW_BUILD)
    slow:close()
    local nowhere = assert(cb.new(options(credentials, { endpoint = "http://127.0.0.1:1" })))
    c:call("network", nowhere.record_info, nowhere, JOB, 61)
    nowhere:close()
    -- Retries and long timeouts: under valgrind on a loaded machine a handshake may be cut
    -- (network, retried) or slow; a certificate refused is tls, which is never retried.
    local untrusted = assert(cb.new(options(credentials, { endpoint = tls_emu.url, retries = 3, timeout = 120,
      connect_timeout = 60 })))
    c:add("tostring(untrusted)", tostring(untrusted))
    c:call("tls", untrusted.record_info, untrusted, JOB, 61)
    untrusted:close()
    local insecure = assert(cb.new(options(credentials, { endpoint = tls_emu.url, insecure = true })))
    c:add("tostring(insecure)", tostring(insecure))
    c:call("insecure", insecure.record_info, insecure, JOB, 61)
    insecure:close()
    local small = assert(cb.new(options(credentials, { max_body = 1024 })))
    c:call("decode", small.record_info, small, JOB, 61)
    small:close()
    local unknown_region = options(credentials, { region = "xx-nowhere-9" })
    unknown_region.endpoint = nil
    c:call("config", cb.new, unknown_region)
    c:call("config", cb.new, options(credentials, { token = S.token, ak = S.ak, sk = S.sk }))
    c:call("config", cb.new, { endpoint = emu.url, ak = credentials.ak or S.ak })
    c:call("config", cb.new, { endpoint = emu.url, sk = credentials.sk or S.sk })
    c:call("invalid", cb.new, options(credentials, { timeout = -1 }))
    c:call("raises", cb.new, options(credentials, { timeout = "soon" }))
    c:call("raises", cb.new, options(credentials, { no_such_option = S.sk }))
    -- sign() returns the Authorization value, which holds the AK it is given: not the SK.
    c:call("sign", cb.sign, { method = "GET", path = "/x", ak = "SIGNINGAK", sk = S.sk })

    -- A closed client says so and refuses use.
    client:close()
    c:add("tostring(closed)", tostring(client))
    c:call("closed", client.record_info, client, JOB, 61)
  end

  for _, name in ipairs{ "token", "aksk", "temporary" } do
    it("never show with " .. name .. " credentials, in success and every failure kind", function()
      local c = new_collector()
      exercise(c, CREDENTIALS[name])
      c:assert_clean()
      for _, kind in ipairs(KINDS) do
        assert.is_true(c.kinds[kind] == true, "no " .. kind .. " error was exercised")
      end
      assert.is_true(c.events >= 10, "on_event payloads collected: " .. c.events)
    end)
  end

  it("never show with a wrong SK (auth failure)", function()
    local c = new_collector()
    local client = assert(cb.new(options({ ak = S.ak, sk = S.wrong_sk })))
    c:call("record_info", client.record_info, client, JOB, 61)
    c:add("tostring", tostring(client))
    client:close()
    c:assert_clean()
    assert.is_true(c.kinds.auth)
  end)

  it("stay out of the module's stdout and stderr, with credentials from the environment", function()
    -- The child takes its credentials from the environment or a credentials file, goes through
    -- the failure menu, makes its on_event hook fail (the module reports that on stderr), and
    -- prints every message it gets.
    local child = ([[
      local cb = require "codeartsbuild"
      local job, builds = %q, { 61, 0, 999999, %s }
      local c, msg = cb.new{ retries = 0, on_event = function(e) error("hook failed for " .. e.path) end }
      if not c then print("new: " .. msg) os.exit(3) end
      print(tostring(c))
      for _, n in ipairs(builds) do
        local rec, m = c:record_info(job, n)
        print(rec and tostring(rec) or m)
      end
      local rec, m = cb.record_info(job, 504) -- the module's default client
      print(rec and tostring(rec) or m)
      c:close()
      print(pcall(c.record_info, c, job, 61))
      print("@@done@@")
    ]]):format(JOB, table.concat(FAILING_BUILDS, ", "))
    local dir = run.tmpdir()
    finally(function() os.execute("rm -rf " .. run.quote(dir)) end)
    local file = dir .. "/credentials"
    run.write(file, ("[basic]\nak = %s\nsk = %s\nsecurity_token = %s\nproject_id = %s\n")
      :format(S.temp_ak, S.temp_sk, S.security_token, emu.project_id))
    local setups = {
      { CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_TOKEN = S.token },
      { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_AK = S.ak, HUAWEICLOUD_SDK_SK = S.sk,
        HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id },
      { CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_AK = S.temp_ak, CODEARTSBUILD_SK = S.temp_sk,
        CODEARTSBUILD_SECURITY_TOKEN = S.security_token, CODEARTSBUILD_PROJECT_ID = emu.project_id },
      { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_CREDENTIALS_FILE = file },
    }
    for i, env in ipairs(setups) do
      local out, status = run.lua_code(child, env)
      assert.are.equal(0, status, out)
      assert.is_truthy(out:find("@@done@@", 1, true), out)
      assert.is_truthy(out:find("codeartsbuild: on_event hook failed: ", 1, true), out)
      local name = leak_in(out)
      assert.is_nil(name, ("setup %d: the output shows the %s:\n%s"):format(i, tostring(name), out:sub(1, 2000)))
    end
    -- Configuration failures from the environment.
    for i, env in ipairs{
      { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_AK = S.ak }, -- half a pair
      { CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_SK = S.sk, CODEARTSBUILD_SECURITY_TOKEN = S.security_token },
      { CODEARTSBUILD_REGION = "xx-nowhere-9", CODEARTSBUILD_TOKEN = S.token }, -- unknown region
      { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_CREDENTIALS_FILE = dir .. "/missing" },
    } do
      local out = run.lua_code(child, env)
      assert.is_truthy(out:find("new: ", 1, true), out)
      local name = leak_in(out)
      assert.is_nil(name, ("config %d: the output shows the %s:\n%s"):format(i, tostring(name), out))
    end
  end)
end)

describe("closing a client", function()
  it("shows closed in tostring and refuses any further use", function()
    local client = assert(cb.new{ endpoint = "http://127.0.0.1:1", ak = S.ak, sk = S.sk })
    client:close()
    client:close() -- safe twice
    assert.is_truthy(tostring(client):find("^codeartsbuild%.client{closed}: "), tostring(client))
    for _, call in ipairs{
      function() return client:record_info(JOB, 61) end,
      function() return client:submit(JOB, 61) end,
      function() return client:poll(0) end,
      function() return client:info() end,
      function() return client:get("/x") end,
    } do
      local ok, message = pcall(call)
      assert.is_false(ok)
      assert.is_truthy(tostring(message):find("attempt to use a closed codeartsbuild client", 1, true), message)
    end
  end)
end)

-- build/<version>/wipecheck runs Lua code with the module linked in and every free() of the
-- process searched for the watched secrets before the memory goes back (see its source).
local WIPE_SCRIPT = [[
local core = require "codeartsbuild.core"
local E = os.getenv
for _, name in ipairs{ "WC_SK", "WC_TOKEN", "WC_STS" } do
  if E(name) then wipecheck.watch(E(name)) end
end
local job = "]] .. JOB .. [["
local function options(extra)
  local o = { endpoint = E("WC_URL"), project_id = E("WC_PID"), retries = 0 }
  if E("WC_TOKEN") then
    o.token = E("WC_TOKEN")
  else
    o.ak, o.sk, o.security_token = E("WC_AK"), E("WC_SK"), E("WC_STS")
  end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
-- Closed with close(): success, failures, get, submit/poll.
local c = assert(core.new(options()))
assert(c:record_info(job, 61))
c:record_info(job, 999999)
c:get("/v3/jobs/" .. job .. "/61/record-info")
for n = 60, 64 do c:submit(job, n) end
while c:pending() > 0 do c:poll(1000) end
c:close()
-- Collected by __gc, with requests still pending.
c = assert(core.new(options()))
assert(c:record_info(job, 62))
c:submit(job, 63)
c = nil
collectgarbage() collectgarbage()
-- Refused options (the configuration read so far is freed), and the signer.
core.new(options({ timeout = -1 }))
if E("WC_SK") then core.sign{ method = "GET", path = "/x", ak = "AK", sk = E("WC_SK") } end
collectgarbage() collectgarbage()
local r = wipecheck.report()
print(("@@wipecheck checked=%d module=%d libcurl=%d openssl=%d lua=%d other=%d"):format(
  r.checked, r.module, r.libcurl, r.openssl, r.lua, r.other))
]]

describe("secret buffers", function()
  local emu, wipecheck

  setup(function()
    local out, status = run.capture("make --no-print-directory -s LUA=" .. run.lua .. " wipecheck")
    assert(status == 0, "make wipecheck failed:\n" .. out)
    wipecheck = "build/" .. run.version .. "/wipecheck"
    emu = emulator.start{ env = EMU_ENV }
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  --- Runs the wipe check with these credentials; returns its counts. The secrets reach it through
  -- its environment, from a file the shell sources: never through an argv.
  local function wipe_check(server, env)
    env.WC_URL, env.WC_PID = server.url, server.project_id
    local dir = run.tmpdir()
    local lines = {}
    for k, v in pairs(env) do lines[#lines + 1] = ("export %s=%s\n"):format(k, run.quote(v)) end
    run.write(dir .. "/env.sh", table.concat(lines))
    local out, status = run.capture((". %s; exec %s %s"):format(run.quote(dir .. "/env.sh"), wipecheck,
      run.quote(WIPE_SCRIPT)))
    os.execute("rm -rf " .. run.quote(dir))
    assert.are.equal(0, status, out)
    local counts = {}
    local line = assert(out:match("@@wipecheck ([^\n]*)"), out)
    for k, v in line:gmatch("(%a+)=(%d+)") do counts[k] = tonumber(v) end
    assert.is_true(counts.checked > 1000, line) -- the check saw the process's frees
    return counts, line
  end

  it("are wiped before the module frees them: token", function()
    local counts, line = wipe_check(emu, { WC_TOKEN = S.token })
    assert.are.equal(0, counts.module, line)
  end)

  it("are wiped before the module frees them: AK/SK", function()
    local counts, line = wipe_check(emu, { WC_AK = S.ak, WC_SK = S.sk })
    assert.are.equal(0, counts.module, line)
  end)

  it("are wiped before the module frees them: temporary credentials", function()
    -- The canonical request holds x-security-token; when its buffer grows after the token is in
    -- it, the old block must be wiped too (it was not, with realloc). Whether it grows depends on
    -- the token's length: 40 and 1800 do, 1500 does not.
    for _, length in ipairs{ 40, 1500, 1800 } do
      local token = (S.security_token .. S.security_token):sub(1, length)
      local other = emulator.start{ env = { EMU_TEMP_AK = S.temp_ak, EMU_TEMP_SK = S.temp_sk,
        EMU_SECURITY_TOKEN = token } }
      local ok, counts, line = pcall(wipe_check, other, { WC_AK = S.temp_ak, WC_SK = S.temp_sk, WC_STS = token })
      other:stop()
      assert(ok, counts)
      assert.are.equal(0, counts.module, ("security token of %d bytes: %s"):format(length, line))
    end
  end)
end)
