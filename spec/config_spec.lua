-- Configuration: options, the environment, credential sources, endpoint checks, secrets, close().
-- Anything read from the environment is tested in a child interpreter (run.lua_code) whose
-- environment holds only what the test sets, so nothing leaks in from the developer's shell.
local cb = require "codeartsbuild"
local cjson = require "cjson"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

local REGIONS = {
  "cn-north-4", "cn-north-1", "cn-east-2", "cn-south-1", "cn-east-3", "cn-south-2",
  "cn-southwest-2", "ap-southeast-3", "sa-brazil-1", "la-north-2", "la-south-2", "tr-west-1",
}

-- A well-formed pair the emulator does not know: a request signed with it gets a 401.
local WRONG_AK = "WRONGAKWRONGAKWRONG0"
local WRONG_SK = "wrongSKwrongSKwrongSKwrongSKwrongSK00000"
local WRONG_PROJECT_ID = "ffffffffffffffffffffffffffffffff"
-- Lua 5.4 and later have `local x <close>` (not LuaJIT, whose _VERSION says 5.1).
local HAS_CLOSE_VARIABLES = (tonumber(_VERSION:match("%d+%.%d+")) or 0) >= 5.4
local DEAD_ENDPOINT = "http://127.0.0.1:1" -- nothing listens on port 1

---------------------------------------------------------------------------------------------------
-- child interpreters

-- Each child starts with this; its code calls report(t) once with a JSON-encodable table.
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
  return cjson.decode(json)
end

--- Lua source for a flat table of string and boolean options (nil: no options at all).
local function literal(opts)
  if opts == nil then return "nil" end
  local fields = {}
  for k, v in pairs(opts) do
    local value = type(v) == "string" and ("%q"):format(v) or tostring(v)
    fields[#fields + 1] = ("[%q] = %s"):format(k, value)
  end
  return "{" .. table.concat(fields, ", ") .. "}"
end

-- cb.new(opts) in the child, then one record_info with the client it made.
local PROBE = [[
local c, msg, err = cb.new(%s)
if not c then
  report{ kind = err.kind, message = msg, attempts = err.attempts }
else
  local rec, rmsg, rerr = c:record_info(JOB, 61)
  report{ info = c:info(), text = tostring(c), build_no = rec and rec.buildNo,
          record_message = rmsg, record_kind = rerr and rerr.kind }
end
]]

--- What cb.new(opts) and a record_info with the result do in a child with only env.
local function probe(env, opts)
  return in_child(env, PROBE:format(literal(opts)))
end

local function merged(...)
  local t = {}
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...)) do t[k] = v end
  end
  return t
end

--- Writes an INI credentials file at path (making its directory) and returns path.
local function write_credentials(path, text)
  assert(os.execute("mkdir -p " .. run.quote(path:match("^(.*)/[^/]*$"))))
  run.write(path, text)
  return path
end

--- A temporary HOME holding .huaweicloud/credentials with text; removed when the test ends.
local function home_with_credentials(text)
  local home = run.tmpdir()
  finally(function() os.execute("rm -rf " .. run.quote(home)) end)
  write_credentials(home .. "/.huaweicloud/credentials", text)
  return home
end

---------------------------------------------------------------------------------------------------
-- assertions

--- The child made a client from `source` and got build 61 with it.
local function assert_record_from(source, result)
  assert.is_nil(result.kind, "cb.new failed: " .. tostring(result.message))
  assert.are.equal(61, result.build_no, "record_info failed: " .. tostring(result.record_message))
  assert.are.equal(source, result.info.credential_source)
end

--- cb.new failed with kind config; the message names each of the given words.
local function assert_config_error(result, ...)
  assert.are.equal("config", result.kind, "expected a config error, got: " .. tostring(result.message))
  assert.are.equal("string", type(result.message))
  for i = 1, select("#", ...) do
    local word = select(i, ...)
    assert.is_truthy(result.message:find(word, 1, true), ("%q does not name %s"):format(result.message, word))
  end
end

--- The same for an in-process cb.new's returns.
local function assert_new_fails_config(client, msg, err)
  assert.is_nil(client)
  assert.are.equal("string", type(msg))
  assert.is_true(cb.is_error(err, "config"), "expected a config error, got: " .. tostring(msg))
  assert.are.equal(msg, err.message)
  return msg
end

local function assert_excludes(text, secret, what)
  assert.is_falsy(text:find(secret, 1, true), ("%s reveals a secret: %s"):format(what, text))
end

---------------------------------------------------------------------------------------------------

describe("configuration", function()
  local emu

  setup(function()
    emu = emulator.start{}
  end)

  teardown(function()
    emu:stop()
  end)

  --- The environment a child needs to reach the emulator, plus vars.
  local function env_with(vars)
    return merged({ CODEARTSBUILD_ENDPOINT = emu.url }, vars or {})
  end

  describe("regions", function()
    it("lists the 12 known regions in cb.regions", function()
      assert.are.same(REGIONS, cb.regions)
    end)

    it("maps each of the 12 regions to https://cloudbuild-ext.<region>.myhuaweicloud.com", function()
      local result = in_child({}, [[
        local out = {}
        for _, region in ipairs(cb.regions) do
          local c = assert(cb.new{ region = region, token = "t" })
          out[region] = { endpoint = c:info().endpoint, region = c:info().region, text = tostring(c) }
        end
        report(out)
      ]])
      for _, region in ipairs(REGIONS) do
        local got = result[region]
        assert.is_table(got, region)
        assert.are.equal("https://cloudbuild-ext." .. region .. ".myhuaweicloud.com", got.endpoint)
        assert.are.equal(region, got.region)
        assert.is_truthy(got.text:find("{" .. region .. ", token", 1, true), got.text)
      end
    end)

    it("takes the region from CODEARTSBUILD_REGION when no option gives one", function()
      local result = probe({ CODEARTSBUILD_REGION = "ap-southeast-3", CODEARTSBUILD_TOKEN = "t" })
      assert.is_nil(result.kind, result.message)
      assert.are.equal("https://cloudbuild-ext.ap-southeast-3.myhuaweicloud.com", result.info.endpoint)
      assert.are.equal("ap-southeast-3", result.info.region)
    end)

    it("uses HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_CN_NORTH_4 as cn-north-4's endpoint", function()
      local result = probe({ HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_CN_NORTH_4 = emu.url },
        { region = "cn-north-4", token = emu.token })
      assert_record_from("options", result)
      assert.are.equal(emu.url, result.info.endpoint)
      assert.are.equal("cn-north-4", result.info.region)
    end)

    it("accepts an unknown region that has an endpoint override", function()
      local result = probe({ HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_XX_MOON_1 = emu.url },
        { region = "xx-moon-1", token = emu.token })
      assert_record_from("options", result)
      assert.are.equal(emu.url, result.info.endpoint)
      assert.are.equal("xx-moon-1", result.info.region)
    end)

    it("refuses an unknown region without an override, naming the region", function()
      local result = probe({}, { region = "xx-moon-1", token = "t" })
      assert_config_error(result, "xx-moon-1")
      assert.are.equal(0, result.attempts)
    end)

    it("refuses a configuration with neither a region nor an endpoint", function()
      assert_config_error(probe({ CODEARTSBUILD_TOKEN = "t" }), "region")
    end)
  end)

  describe("credentials from the environment", function()
    it("refuses no credentials at all, naming CODEARTSBUILD_TOKEN and HUAWEICLOUD_SDK_AK", function()
      local result = probe(env_with())
      assert_config_error(result, "CODEARTSBUILD_TOKEN", "HUAWEICLOUD_SDK_AK")
      assert.are.equal(0, result.attempts)
    end)

    it("uses CODEARTSBUILD_TOKEN before HUAWEICLOUD_SDK_AK/SK", function()
      local result = probe(env_with{
        CODEARTSBUILD_TOKEN = emu.token, HUAWEICLOUD_SDK_AK = WRONG_AK, HUAWEICLOUD_SDK_SK = WRONG_SK,
      })
      assert_record_from("CODEARTSBUILD_TOKEN", result)
      assert.are.equal("token", result.info.auth)
    end)

    it("uses CODEARTSBUILD_AK/SK before HUAWEICLOUD_SDK_AK/SK", function()
      local result = probe(env_with{
        CODEARTSBUILD_AK = emu.ak, CODEARTSBUILD_SK = emu.sk,
        HUAWEICLOUD_SDK_AK = WRONG_AK, HUAWEICLOUD_SDK_SK = WRONG_SK,
      })
      assert_record_from("CODEARTSBUILD_AK/SK", result)
      assert.are.equal("aksk", result.info.auth)
    end)

    it("uses HUAWEICLOUD_SDK_AK/SK with HUAWEICLOUD_SDK_PROJECT_ID", function()
      local result = probe(env_with{
        HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id,
      })
      assert_record_from("HUAWEICLOUD_SDK_AK/SK", result)
      assert.are.equal(emu.project_id, result.info.project_id)
      assert.is_false(result.info.temporary)
    end)

    it("sends HUAWEICLOUD_SDK_PROJECT_ID (a wrong one is refused by the service)", function()
      local result = probe(env_with{
        HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, HUAWEICLOUD_SDK_PROJECT_ID = WRONG_PROJECT_ID,
      })
      assert.is_nil(result.kind, result.message)
      assert.are.equal("auth", result.record_kind, result.record_message)
    end)

    it("uses CLOUD_SDK_AK/SK, the names of the seed samples", function()
      local result = probe(env_with{ CLOUD_SDK_AK = emu.ak, CLOUD_SDK_SK = emu.sk })
      assert_record_from("CLOUD_SDK_AK/SK", result)
    end)

    it("uses HUAWEICLOUD_SDK_AK/SK before CLOUD_SDK_AK/SK", function()
      local result = probe(env_with{
        HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk, CLOUD_SDK_AK = WRONG_AK, CLOUD_SDK_SK = WRONG_SK,
      })
      assert_record_from("HUAWEICLOUD_SDK_AK/SK", result)
    end)

    it("uses temporary credentials with HUAWEICLOUD_SDK_SECURITY_TOKEN", function()
      local result = probe(env_with{
        HUAWEICLOUD_SDK_AK = emu.temp_ak, HUAWEICLOUD_SDK_SK = emu.temp_sk,
        HUAWEICLOUD_SDK_SECURITY_TOKEN = emu.security_token,
      })
      assert_record_from("HUAWEICLOUD_SDK_AK/SK", result)
      assert.is_true(result.info.temporary)
    end)

    it("uses temporary credentials with CODEARTSBUILD_SECURITY_TOKEN", function()
      local result = probe(env_with{
        CODEARTSBUILD_AK = emu.temp_ak, CODEARTSBUILD_SK = emu.temp_sk,
        CODEARTSBUILD_SECURITY_TOKEN = emu.security_token,
      })
      assert_record_from("CODEARTSBUILD_AK/SK", result)
      assert.is_true(result.info.temporary)
    end)

    it("reads [basic] ak, sk and project_id from $HOME/.huaweicloud/credentials", function()
      local home = home_with_credentials(table.concat({
        "# the SDK's credentials file",
        "; another comment",
        "[default]",
        "ak = " .. WRONG_AK,
        "sk = " .. WRONG_SK,
        "",
        "[basic]",
        "# a comment inside the section",
        "ak = " .. emu.ak,
        "  sk=" .. emu.sk .. "  ",
        "project_id = " .. emu.project_id,
        "",
        "[other]",
        "ak = " .. WRONG_AK,
        "project_id = " .. WRONG_PROJECT_ID,
        "",
      }, "\n"))
      local result = probe(env_with{ HOME = home })
      assert_record_from("credentials file", result)
      assert.are.equal(emu.project_id, result.info.project_id)
    end)

    it("reads the credentials file HUAWEICLOUD_SDK_CREDENTIALS_FILE names", function()
      local dir = run.tmpdir()
      finally(function() os.execute("rm -rf " .. run.quote(dir)) end)
      local path = write_credentials(dir .. "/elsewhere.ini",
        ("[basic]\nak = %s\nsk = %s\nproject_id = %s\n"):format(emu.ak, emu.sk, emu.project_id))
      local result = probe(env_with{ HUAWEICLOUD_SDK_CREDENTIALS_FILE = path })
      assert_record_from("credentials file", result)
      assert.are.equal(emu.project_id, result.info.project_id)
    end)

    it("uses CLOUD_SDK_AK/SK before the credentials file", function()
      local home = home_with_credentials(("[basic]\nak = %s\nsk = %s\n"):format(WRONG_AK, WRONG_SK))
      local result = probe(env_with{ HOME = home, CLOUD_SDK_AK = emu.ak, CLOUD_SDK_SK = emu.sk })
      assert_record_from("CLOUD_SDK_AK/SK", result)
    end)

    it("refuses HUAWEICLOUD_SDK_CREDENTIALS_FILE naming a missing file", function()
      local result = probe(env_with{ HUAWEICLOUD_SDK_CREDENTIALS_FILE = "/nonexistent/codeartsbuild/credentials" })
      assert_config_error(result, "HUAWEICLOUD_SDK_CREDENTIALS_FILE")
    end)

    it("refuses half a pair (only HUAWEICLOUD_SDK_AK), naming HUAWEICLOUD_SDK_SK", function()
      assert_config_error(probe(env_with{ HUAWEICLOUD_SDK_AK = emu.ak }), "HUAWEICLOUD_SDK_SK")
    end)

    it("refuses half a pair rather than falling through to a later source", function()
      local result = probe(env_with{ HUAWEICLOUD_SDK_SK = emu.sk, CLOUD_SDK_AK = emu.ak, CLOUD_SDK_SK = emu.sk })
      assert_config_error(result, "HUAWEICLOUD_SDK_AK")
    end)
  end)

  describe("credentials from options", function()
    it("refuses option ak without sk", function()
      assert_new_fails_config(cb.new{ endpoint = emu.url, ak = emu.ak })
    end)

    it("refuses both token and ak", function()
      assert_new_fails_config(cb.new{ endpoint = emu.url, token = emu.token, ak = emu.ak, sk = emu.sk })
    end)
  end)

  describe("explicit options beat the environment", function()
    it("an explicit endpoint beats CODEARTSBUILD_ENDPOINT", function()
      local result = probe({ CODEARTSBUILD_ENDPOINT = DEAD_ENDPOINT }, { endpoint = emu.url, token = emu.token })
      assert_record_from("options", result)
      assert.are.equal(emu.url, result.info.endpoint)
    end)

    it("an explicit region beats CODEARTSBUILD_ENDPOINT", function()
      local result = probe({ CODEARTSBUILD_ENDPOINT = DEAD_ENDPOINT }, { region = "cn-south-1", token = "t" })
      assert.is_nil(result.kind, result.message)
      assert.are.equal("https://cloudbuild-ext.cn-south-1.myhuaweicloud.com", result.info.endpoint)
    end)

    it("an explicit token beats AK/SK in the environment", function()
      local result = probe(env_with{ HUAWEICLOUD_SDK_AK = WRONG_AK, HUAWEICLOUD_SDK_SK = WRONG_SK },
        { token = emu.token })
      assert_record_from("options", result)
      assert.are.equal("token", result.info.auth)
    end)

    it("an explicit project_id beats the environment's", function()
      local result = probe(env_with{
        CODEARTSBUILD_PROJECT_ID = WRONG_PROJECT_ID, HUAWEICLOUD_SDK_PROJECT_ID = WRONG_PROJECT_ID,
      }, { ak = emu.ak, sk = emu.sk, project_id = emu.project_id })
      assert_record_from("options", result)
      assert.are.equal(emu.project_id, result.info.project_id)
    end)
  end)

  describe("module-level record_info", function()
    it("works from the environment alone", function()
      local result = in_child(emulator.client_env(emu), [[
        local rec, msg = cb.record_info(JOB, 61)
        report{ build_no = rec and rec.buildNo, message = msg }
      ]])
      assert.are.equal(61, result.build_no, result.message)
    end)

    it("returns nil, message, err of kind config when the environment has no credentials", function()
      local result = in_child(env_with(), [[
        local rec, msg, err = cb.record_info(JOB, 61)
        report{ got_nil = rec == nil, message = msg, kind = err and err.kind,
                same_message = err ~= nil and err.message == msg }
      ]])
      assert.is_true(result.got_nil)
      assert.are.equal("config", result.kind)
      assert.are.equal("string", type(result.message))
      assert.is_true(result.same_message)
    end)
  end)

  describe("endpoint checks", function()
    local function new_with_endpoint(endpoint, extra)
      return cb.new(merged({ endpoint = endpoint, token = "t" }, extra or {}))
    end

    it("refuses http:// to a non-loopback host", function()
      assert_new_fails_config(new_with_endpoint("http://example.com"))
      assert_new_fails_config(new_with_endpoint("http://10.1.2.3:8080"))
    end)

    it("accepts http:// to a non-loopback host with allow_http = true", function()
      local client = assert(new_with_endpoint("http://example.com", { allow_http = true }))
      assert.are.equal("http://example.com", client:info().endpoint)
      client:close()
    end)

    it("refuses an endpoint with a path", function()
      assert_new_fails_config(new_with_endpoint("https://example.com/v3"))
    end)

    it("refuses an endpoint with a query", function()
      assert_new_fails_config(new_with_endpoint("https://example.com?region=cn-north-4"))
      assert_new_fails_config(new_with_endpoint("https://example.com/?region=cn-north-4"))
    end)

    it("refuses an endpoint with user:pass@, without repeating the password", function()
      local msg = assert_new_fails_config(new_with_endpoint("https://user:s3cretPassw0rd@example.com"))
      assert_excludes(msg, "s3cretPassw0rd", "the config error")
    end)

    it("accepts a trailing slash and requests without a doubled slash", function()
      local client = assert(new_with_endpoint(emu.url .. "/", { token = emu.token }))
      assert.are.equal(emu.url, client:info().endpoint)
      local rec, msg = client:record_info(JOB, 61)
      assert.are.equal(61, rec and rec.buildNo, msg)
      client:close()
    end)

    it("accepts http://localhost:<port>", function()
      local client = assert(new_with_endpoint("http://localhost:" .. emu.port, { token = emu.token }))
      local rec, msg = client:record_info(JOB, 61)
      assert.are.equal(61, rec and rec.buildNo, msg)
      client:close()
    end)

    it("accepts http://127.0.0.1:<port>", function()
      local client = assert(new_with_endpoint("http://127.0.0.1:" .. emu.port, { token = emu.token }))
      local rec, msg = client:record_info(JOB, 61)
      assert.are.equal(61, rec and rec.buildNo, msg)
      client:close()
    end)
  end)

  describe("secrets", function()
    local function secrets()
      return { emu.sk, emu.temp_sk, emu.token, emu.security_token }
    end

    local function assert_no_secrets(client)
      local text = tostring(client)
      for _, secret in ipairs(secrets()) do
        assert_excludes(text, secret, "tostring(client)")
        for key, value in pairs(client:info()) do
          assert_excludes(tostring(value), secret, "info()." .. key)
        end
      end
    end

    it("keeps them out of tostring and info() for a token client", function()
      local client = clients.token(emu)
      assert_no_secrets(client)
      client:close()
    end)

    it("keeps them out of tostring and info() for an AK/SK client", function()
      local client = clients.aksk(emu)
      assert_no_secrets(client)
      client:close()
    end)

    it("keeps them out of tostring and info() for a temporary-credentials client", function()
      local client = clients.temporary(emu)
      assert.is_true(client:info().temporary)
      assert_no_secrets(client)
      client:close()
    end)

    it("shows only the AK's first 4 characters then **** in tostring", function()
      for _, case in ipairs{ { clients.aksk(emu), emu.ak }, { clients.temporary(emu), emu.temp_ak } } do
        local client, ak = case[1], case[2]
        local text = tostring(client)
        assert.is_truthy(text:find("AK=" .. ak:sub(1, 4) .. "****", 1, true), text)
        assert_excludes(text, ak:sub(1, 5), "tostring(client)")
        client:close()
      end
    end)

    it("keeps the sk out of the error for a credentials file with an sk but no ak", function()
      local sk = "fileOnlySKb7c1d2e3f4a5b6c7d8e9f0a1b2c3d4"
      local home = home_with_credentials("[basic]\nsk = " .. sk .. "\n")
      local result = probe(env_with{ HOME = home })
      assert_config_error(result, "ak")
      assert_excludes(result.message, sk, "the config error")
    end)

    it("keeps the value out of the error for half a pair in the environment", function()
      local result = probe(env_with{ CODEARTSBUILD_SK = emu.sk })
      assert_config_error(result, "CODEARTSBUILD_AK")
      assert_excludes(result.message, emu.sk, "the config error")
    end)

    it("keeps option values out of the error for token and ak both given", function()
      local msg = assert_new_fails_config(cb.new{ endpoint = emu.url, token = emu.token, ak = emu.ak, sk = emu.sk })
      assert_excludes(msg, emu.token, "the config error")
      assert_excludes(msg, emu.sk, "the config error")
    end)
  end)

  describe("close()", function()
    local function closed_message(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok, "the call did not raise")
      return tostring(err)
    end

    it("is safe to call twice", function()
      local client = clients.token(emu)
      assert.has_no.errors(function()
        client:close()
        client:close()
      end)
    end)

    it("makes tostring say closed", function()
      local client = clients.token(emu)
      client:close()
      assert.matches("^codeartsbuild%.client{closed}", tostring(client))
    end)

    it("makes every method raise", function()
      local client = clients.token(emu)
      client:close()
      local calls = {
        record_info = function() return client:record_info(JOB, 61) end,
        submit = function() return client:submit(JOB, 61) end,
        poll = function() return client:poll(0) end,
        pending = function() return client:pending() end,
        get = function() return client:get("/v3/jobs/" .. JOB .. "/61/record-info") end,
        info = function() return client:info() end,
      }
      for name, call in pairs(calls) do
        local msg = closed_message(call)
        assert.is_truthy(msg:find("attempt to use a closed codeartsbuild client", 1, true), name .. ": " .. msg)
      end
    end)

    it("happens at the end of a <close> block (Lua 5.4; elsewhere: __close is a function)", function()
      local client = clients.token(emu)
      assert.are.equal("function", type(getmetatable(client).__close))
      client:close()
      if HAS_CLOSE_VARIABLES then
        local block = assert(load([[
          local new = ...
          local inside
          do
            local c <close> = new()
            inside = c
            assert(not tostring(c):find("closed", 1, true), "closed too early")
          end
          return inside
        ]]))
        local inside = block(function() return clients.token(emu) end)
        assert.matches("^codeartsbuild%.client{closed}", tostring(inside))
      end
    end)
  end)
end)
