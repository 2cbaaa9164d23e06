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
    emu:reset()
    for n = 1, 3 do -- a POST again (the sign-in), then GETs on the handle it used
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
