-- The emulator over TLS, with a test PKI made at test time (emulator.make_certs): verification
-- against a given CA, refusal of bad certificates, insecure = true, CODEARTSBUILD_CA_FILE, reuse.
local cb = require "codeartsbuild"
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

-- A child interpreter with only env makes a client with no options and asks for build 61.
local CHILD = [[
local cb = require "codeartsbuild"
local cjson = require "cjson"
local c, msg, err = cb.new()
local result
if not c then
  result = { kind = err.kind, message = msg }
else
  local rec, rmsg, rerr = c:record_info(%q, 61)
  result = { info = c:info(), build_no = rec and rec.buildNo, record_message = rmsg,
             record_kind = rerr and rerr.kind, record_retryable = rerr and rerr.retryable }
end
io.write("\n@@RESULT@@", cjson.encode(result), "\n")
]]

--- What a client made from the environment env alone does, in a fresh interpreter.
local function from_environment(env)
  local out, status = run.lua_code(CHILD:format(JOB), env)
  local json = out:match("@@RESULT@@([^\n]*)")
  assert(json, ("the child reported nothing (exit status %s):\n%s"):format(tostring(status), out))
  local result = cjson.decode(json)
  assert.is_nil(result.kind, "cb.new failed: " .. tostring(result.message))
  return result
end

local function assert_record(client)
  local rec, msg = client:record_info(JOB, 61)
  assert.are.equal(61, rec and rec.buildNo, msg)
end

local function assert_tls_error(client)
  local rec, msg, err = client:record_info(JOB, 61)
  assert.is_nil(rec)
  assert.is_true(cb.is_error(err, "tls"), "expected a tls error, got: " .. tostring(msg))
  assert.is_false(err.retryable)
end

describe("TLS", function()
  local certs_dir, certs, emu

  setup(function()
    certs_dir = run.tmpdir()
    certs = emulator.make_certs(certs_dir)
    emu = emulator.start{ tls = true, certs = certs }
  end)

  teardown(function()
    if emu then emu:stop() end
    if certs_dir then os.execute("rm -rf " .. run.quote(certs_dir)) end
  end)

  before_each(function()
    emu:reset()
  end)

  --- An emulator presenting one of the other certificates; stopped when the test ends.
  local function start_presenting(server_cert)
    local other = emulator.start{ tls = true, certs = certs, server_cert = server_cert }
    finally(function() other:stop() end)
    return other
  end

  it("serves https:// on 127.0.0.1 with the test CA", function()
    assert.matches("^https://127%.0%.0%.1:%d+$", emu.url)
    assert.are.equal(certs.ca, emu.ca_file)
  end)

  it("gets a record with ca_file = the test CA and AK/SK", function()
    local client = clients.aksk(emu)
    assert.are.equal(certs.ca, client:info().ca_file)
    assert_record(client)
    client:close()
  end)

  it("gets a record with ca_file = the test CA and a token", function()
    local client = clients.token(emu)
    assert_record(client)
    client:close()
  end)

  it("refuses the server without ca_file (system CA store): tls, not retryable, nothing served", function()
    local result = from_environment{ CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_TOKEN = emu.token }
    assert.is_nil(result.info.ca_file)
    assert.is_nil(result.build_no)
    assert.are.equal("tls", result.record_kind, result.record_message)
    assert.is_false(result.record_retryable)
    assert.are.equal(0, emu:stats().requests)
  end)

  it("refuses an expired certificate even with the test CA", function()
    local expired = start_presenting("expired")
    local client = clients.token(expired)
    assert.are.equal(certs.ca, client:info().ca_file)
    assert_tls_error(client)
    client:close()
  end)

  it("refuses a certificate for another host name even with the test CA", function()
    local wronghost = start_presenting("wronghost")
    local client = clients.token(wronghost)
    assert.are.equal(certs.ca, client:info().ca_file)
    assert_tls_error(client)
    client:close()
  end)

  describe("a server whose certificate an unknown CA issued", function()
    local other

    setup(function()
      other = emulator.start{ tls = true, certs = certs, server_cert = "other" }
    end)

    teardown(function()
      if other then other:stop() end
    end)

    it("is refused even with ca_file = the test CA", function()
      local client = clients.token(other)
      assert.are.equal(certs.ca, client:info().ca_file)
      assert_tls_error(client)
      client:close()
    end)

    it("answers with ca_file = the CA that issued its certificate", function()
      local client = clients.token(other, { ca_file = certs.other_ca })
      assert_record(client)
      client:close()
    end)

    it("answers with insecure = true, and the client says TLS VERIFICATION OFF", function()
      local client = assert(cb.new{ endpoint = other.url, token = other.token, insecure = true })
      assert.is_true(client:info().insecure)
      assert.is_truthy(tostring(client):find("TLS VERIFICATION OFF", 1, true), tostring(client))
      assert_record(client)
      client:close()
    end)
  end)

  it("does not say TLS VERIFICATION OFF when verifying", function()
    local client = clients.token(emu)
    assert.is_false(client:info().insecure)
    assert.is_falsy(tostring(client):find("VERIFICATION OFF", 1, true), tostring(client))
    client:close()
  end)

  it("uses CODEARTSBUILD_CA_FILE when ca_file is not given", function()
    local env = emulator.client_env(emu)
    assert.are.equal(certs.ca, env.CODEARTSBUILD_CA_FILE)
    local result = from_environment(env)
    assert.are.equal(certs.ca, result.info.ca_file)
    assert.are.equal(61, result.build_no, result.record_message)
  end)

  it("reuses one connection for 10 sequential record_info calls", function()
    local client = clients.aksk(emu)
    for _ = 1, 10 do assert_record(client) end
    client:close()
    local stats = emu:stats()
    assert.are.equal(10, stats.requests)
    assert.are.equal(1, stats.connections)
  end)
end)
