-- What goes on the wire: the request line and headers the emulator received, for each way of
-- authenticating, and easy handles reused across requests of different shapes (POST, then GET).
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

-- The names of the headers received, lower-cased, each with its count.
local function header_counts(headers)
  local counts = {}
  for name in pairs(headers) do
    counts[name:lower()] = (counts[name:lower()] or 0) + 1
  end
  return counts
end

-- The emulator joins repeated headers with ", ": an exact value means the header came once.
local function assert_one_host(emu, headers)
  local host = emu.url:match("^https?://([^/]+)")
  assert.are.equal(1, header_counts(headers).host)
  assert.are.equal(host, headers.Host)
end

describe("requests on the wire", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("sends one Host and the module's own User-Agent with a token", function()
    local c = clients.token(emu)
    assert(c:record_info(JOB, 1))
    local last = emu:stats().last
    assert.are.equal("GET", last.method)
    assert_one_host(emu, last.headers)
    assert.are.equal("codeartsbuild-lua/" .. cb._VERSION, last.headers["User-Agent"])
    assert.is_nil(last.headers["User-Agent"]:find("libcurl", 1, true))
    c:close()
  end)

  it("sends one Host, the one that was signed, with AK/SK", function()
    local c = clients.aksk(emu)
    assert(c:record_info(JOB, 1)) -- the emulator checks the signature, host included
    local last = emu:stats().last
    assert_one_host(emu, last.headers)
    assert.truthy(last.headers.Authorization:find("SignedHeaders=host;", 1, true), last.headers.Authorization)
    c:close()
  end)

  it("sends a record's path as formatted, and that path is the one signed", function()
    local c = clients.aksk(emu, { api = "v1" })
    assert.are.equal(7, assert(c:record_info(JOB, 7)).buildNo) -- a bad signature would be a 401
    local last = emu:stats().last
    assert.are.equal("/v1/record/" .. JOB .. "/7/record-info", last.path)
    assert.are.equal("", last.query)
    c:close()
  end)

  it("refuses a job id with a byte outside ASCII, whatever the locale, before sending", function()
    local c = clients.token(emu)
    local rec, _, err = c:record_info(JOB:sub(1, 31) .. "\233", 1) -- a letter in Latin-1
    assert.is_nil(rec)
    assert.are.equal("invalid", err.kind)
    assert.are.equal(0, emu:stats().requests)
    c:close()
  end)

  it("keeps a user_agent that was given", function()
    local c = clients.token(emu, { user_agent = "transport-spec/1" })
    assert(c:record_info(JOB, 1))
    assert(c:record_info(JOB, 2)) -- on a reused handle too
    assert.are.equal("transport-spec/1", emu:stats().last.headers["User-Agent"])
    c:close()
  end)

  it("turns the handle of an IAM token POST back into a bodiless GET", function()
    local c = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4", concurrency = 1,
      retries = 0, iam = { user = emu.iam_user, password = emu.iam_password, domain = emu.iam_domain } })
    emu:faults{ { action = "status", status = 400, path_contains = "/v3/auth/tokens", times = 1 } }
    assert.is_nil(c:record_info(JOB, 1)) -- the sign-in is refused: the POST is the last request
    local post = emu:stats().last
    assert.are.equal("POST", post.method)
    assert_one_host(emu, post.headers)
    assert.truthy(post.headers["Content-Length"])
    c:close()
    -- A refused sign-in keeps that client from signing in again for a while: another client.
    c = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4", concurrency = 1,
      retries = 0, iam = { user = emu.iam_user, password = emu.iam_password, domain = emu.iam_domain } })
    emu:reset()
    for n = 1, 3 do -- a POST (the sign-in), then GETs on the handle it used
      assert.are.equal(n, assert(c:record_info(JOB, n)).buildNo)
    end
    local stats = emu:stats()
    assert.are.equal(1, stats.by_path_kind.iam)
    assert.are.equal(3, stats.by_status["200"])
    local get = stats.last
    assert.are.equal("GET", get.method)
    assert_one_host(emu, get.headers)
    local counts = header_counts(get.headers)
    assert.is_nil(counts["content-length"])
    assert.is_nil(counts["content-type"])
    assert.is_nil(counts["transfer-encoding"])
    c:close()
  end)
end)

-- libcurl's proxy variables, read once per client now: the same precedence as libcurl's own
-- look-up. The emulator plays the proxy: a proxied request arrives with the absolute URL.
describe("proxy variables", function()
  local run = require "spec.support.run"
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  -- Fetches one record from scheme://proxied.invalid:9 in a child with only `env`; returns the
  -- child's output (the error message) and the emulator's counters.
  local function through(scheme, env)
    local code = ([[
      local cb = require "codeartsbuild"
      local c = assert(cb.new{ endpoint = %q, allow_http = true, token = %q, retries = 0, timeout = 10,
        connect_timeout = 5, api = "v3" })
      local rec, message = c:record_info(%q, 1)
      io.write(rec and "record" or message)
    ]]):format(scheme .. "://proxied.invalid:9", emu.token, JOB)
    emu:reset()
    local out = run.lua_code(code, env)
    return out, emu:stats()
  end

  local function assert_proxied(out, stats)
    assert.are.equal(1, stats.requests, out)
    assert.are.equal("http://proxied.invalid:9/v3/jobs/" .. JOB .. "/1/record-info", stats.last.path)
    assert.are.equal("proxied.invalid:9", stats.last.headers.Host)
  end

  local function assert_direct(out, stats)
    assert.are.equal(0, stats.requests, out)
    assert.truthy(out:find("resolve", 1, true), out) -- libcurl went for the host itself
  end

  it("takes http_proxy, but not HTTP_PROXY, for http://", function()
    assert_proxied(through("http", { http_proxy = emu.url }))
    assert_direct(through("http", { HTTP_PROXY = emu.url }))
  end)

  it("falls back to all_proxy, then ALL_PROXY, and treats an empty variable as unset", function()
    assert_proxied(through("http", { http_proxy = "", all_proxy = emu.url }))
    assert_proxied(through("http", { all_proxy = "", ALL_PROXY = emu.url }))
  end)

  it("leaves out the hosts of no_proxy, or of NO_PROXY when no_proxy is empty", function()
    assert_direct(through("http", { http_proxy = emu.url, no_proxy = "proxied.invalid" }))
    assert_direct(through("http", { http_proxy = emu.url, no_proxy = "", NO_PROXY = "proxied.invalid" }))
    assert_proxied(through("http", { http_proxy = emu.url, no_proxy = "elsewhere.invalid" }))
  end)

  it("takes https_proxy or HTTPS_PROXY for https://, not http_proxy", function()
    for _, name in ipairs({ "https_proxy", "HTTPS_PROXY" }) do
      local out = through("https", { [name] = emu.url, http_proxy = "http://127.0.0.1:9" })
      -- The emulator refuses the CONNECT: that it was asked at all is what counts.
      assert.truthy(out:find("CONNECT", 1, true), name .. ": " .. out)
    end
    assert_direct(through("https", { http_proxy = emu.url }))
  end)
end)
