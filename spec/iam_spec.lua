-- IAM sign-in: a user's password buys a project-scoped token (POST /v3/auth/tokens, 201,
-- X-Subject-Token), kept in memory, renewed before it expires and once after a 401; and the
-- project id looked up for AK/SK without one (GET /v3/projects?name=<region>). The emulator
-- plays IAM on its own port.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference
local REGION = "cn-north-4"

local function iam_options(emu, extra)
  local options = { endpoint = emu.url, iam_endpoint = emu.url, region = REGION,
    iam = { user = emu.iam_user, password = emu.iam_password, domain = emu.iam_domain } }
  for k, v in pairs(extra or {}) do options[k] = v end
  return options
end

describe("IAM sign-in", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("signs in once and sends the token it got as X-Auth-Token", function()
    local c = assert(cb.new(iam_options(emu)))
    assert.are.equal("iam", c:info().auth)
    for n = 1, 3 do assert.are.equal(n, assert(c:record_info(JOB, n)).buildNo) end
    local stats = emu:stats()
    assert.are.equal(1, stats.by_path_kind.iam) -- one sign-in for three requests
    assert.are.equal(3, stats.by_path_kind["record-info"])
    local token = stats.last.headers["X-Auth-Token"]
    assert.truthy(token and token:match("^emuIssued"), token)
    assert.are.equal(emu.project_id, stats.last.headers["X-Project-Id"]) -- from the token's project
    assert.is_nil(tostring(c):find(emu.iam_password, 1, true))
    c:close()
  end)

  it("renews the token once when it expires in the middle of a batch, and loses nothing", function()
    local c = assert(cb.new(iam_options(emu)))
    assert(c:record_info(JOB, 1))
    emu:expire_tokens()
    for n = 2, 41 do assert(c:submit(JOB, n)) end
    local got = {}
    for _, r in ipairs(clients.drain(c)) do
      assert.is_not_nil(r.record, r.message)
      got[#got + 1] = r.build_no
    end
    assert.are.equal(40, #got)
    local stats = emu:stats()
    assert.is_true(stats.by_path_kind.iam >= 2)
    assert.is_true(stats.by_status["401"] >= 1)
    c:close()
  end)

  it("renews ahead of the expiry IAM gave", function()
    local short = emulator.start{ token_lifetime = 60 } -- inside the 5-minute margin: every call renews
    local c = assert(cb.new(iam_options(short)))
    assert(c:record_info(JOB, 1))
    assert(c:record_info(JOB, 2))
    assert.are.equal(2, short:stats().by_path_kind.iam)
    assert.is_nil(short:stats().by_status["401"])
    c:close()
    short:stop()
  end)

  it("reports a wrong password as an auth error without the password", function()
    local options = iam_options(emu)
    options.iam.password = "not-the-password-8c1f"
    local c = assert(cb.new(options))
    local rec, message, err = c:record_info(JOB, 1)
    assert.is_nil(rec)
    assert.are.equal("auth", err.kind)
    assert.truthy(message:find("IAM sign-in failed", 1, true), message)
    assert.truthy(message:find("username or password is wrong", 1, true), message)
    assert.is_nil(message:find("not-the-password", 1, true))
    assert.are.equal(0, emu:stats().by_path_kind["record-info"])
    c:close()
  end)

  it("gives up after one renewal when the new token is refused too", function()
    local c = assert(cb.new(iam_options(emu, { retries = 0 })))
    assert(c:record_info(JOB, 1))
    emu:faults{ { action = "status", status = 401, path_contains = "record-info" } }
    local _, _, err = c:record_info(JOB, 2)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
    assert.are.equal(2, emu:stats().by_path_kind.iam) -- the first sign-in and one renewal
    c:close()
  end)

  it("reads the user from CODEARTSBUILD_IAM_* and refuses a partial set", function()
    local env = { CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_IAM_ENDPOINT = emu.url, CODEARTSBUILD_REGION = REGION,
      CODEARTSBUILD_IAM_USER = emu.iam_user, CODEARTSBUILD_IAM_PASSWORD = emu.iam_password,
      CODEARTSBUILD_IAM_DOMAIN = emu.iam_domain }
    local code = ([[
      local cb = require "codeartsbuild"
      local c, message = cb.new()
      if not c then print("error: " .. message) return end
      print(c:info().auth, c:info().credential_source, assert(c:record_info(%q, 7)).buildNo)
    ]]):format(JOB)
    local out, status = run.lua_code(code, env)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("iam\tCODEARTSBUILD_IAM_*\t7", 1, true), out)
    env.CODEARTSBUILD_IAM_DOMAIN = nil
    out = run.lua_code(code, env)
    assert.truthy(out:find("error: .*CODEARTSBUILD_IAM_DOMAIN is not set"), out)
    assert.is_nil(out:find(emu.iam_password, 1, true))
  end)

  it("refuses an iam table without a user, or beside a token", function()
    assert.has_error(function() cb.new{ endpoint = emu.url, iam = { password = "x", domain = "d" } } end)
    assert.has_error(function() cb.new{ endpoint = emu.url, iam = "user:password" } end)
    local c, _, err = cb.new(iam_options(emu, { token = emu.token }))
    assert.is_nil(c)
    assert.are.equal("config", err.kind)
  end)
end)

describe("project id discovery", function()
  local emu

  setup(function() emu = emulator.start{} end)
  teardown(function() emu:stop() end)
  before_each(function() emu:reset() end)

  it("looks the project id up once for AK/SK with a region and no project id", function()
    local c = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = REGION, ak = emu.ak, sk = emu.sk })
    assert(c:record_info(JOB, 1))
    assert(c:record_info(JOB, 2))
    local stats = emu:stats()
    assert.are.equal(1, stats.by_path_kind.iam)
    assert.are.equal(emu.project_id, stats.last.headers["X-Project-Id"])
    assert.are.equal(emu.project_id, c:info().project_id)
    c:close()
  end)

  it("does not look it up when the project id is given", function()
    local c = clients.aksk(emu, { iam_endpoint = emu.url, region = REGION })
    assert(c:record_info(JOB, 1))
    assert.are.equal(0, emu:stats().by_path_kind.iam)
    c:close()
  end)
end)
