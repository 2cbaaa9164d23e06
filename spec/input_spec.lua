-- Bad input is refused before anything is sent: the emulator must see no request.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference

local function assert_integer(value)
  assert.are.equal("number", type(value))
  assert.are.equal(math.floor(value), value)
  if math.type then assert.are.equal("integer", math.type(value)) end
end

local function plain_find(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

--- Asserts nil, message, err of kind invalid with no request made; returns err.
local function invalid(value, message, err)
  assert.is_nil(value)
  assert.are.equal("string", type(message))
  assert.is_true(cb.is_error(err, "invalid"), "expected an invalid error, got: " .. tostring(message))
  assert.are.equal("invalid", err.kind)
  assert.are.equal(0, err.attempts)
  assert.is_false(err.retryable)
  assert.is_nil(err.status)
  assert.are.equal(message, err.message)
  assert.are.equal(message, tostring(err))
  return err
end

local BAD_JOB_IDS = {
  { "empty", "" },
  { "too short", "abc" },
  { "31 characters", JOB:sub(1, 31) },
  { "33 characters", JOB .. "a" },
  { "32 characters with a '-'", JOB:sub(1, 31) .. "-" },
  { "32 characters with a space", JOB:sub(1, 15) .. " " .. JOB:sub(17) },
  { "32 bytes with a non-ASCII byte", JOB:sub(1, 31) .. "\233" },
  { "32 bytes with a UTF-8 letter", JOB:sub(1, 30) .. "\195\169" },
  { "32 characters with a NUL byte", JOB:sub(1, 31) .. "\0" },
  { "32 characters with a newline", JOB:sub(1, 31) .. "\n" },
  { "a path traversal", "../../../../../../../../../etc/p" },
}

-- Built in a function so that the child process can make the same list (0/0 is not a literal).
local BAD_BUILD_NOS_CODE = [[
  return {
    { "0", 0 }, { "-1", -1 }, { "1.5", 1.5 }, { "NaN", 0/0 }, { "math.huge", math.huge },
    { "-math.huge", -math.huge }, { "2147483648", 2147483648 }, { "2^53", 2^53 }, { "-0.5", -0.5 },
    { "0.0", 0.0 }, { "2147483647.5", 2147483647.5 },
    { "'61abc'", "61abc" }, { "''", "" }, { "' 61'", " 61" }, { "'61 '", "61 " }, { "'1e3'", "1e3" },
    { "'0'", "0" }, { "'-1'", "-1" }, { "'+61'", "+61" }, { "'0x3D'", "0x3D" }, { "'61.0'", "61.0" },
    { "'2147483648'", "2147483648" }, { "'99999999999'", "99999999999" }, { "'00000000061'", "00000000061" },
    { "'0000000000'", "0000000000" },
  }
]]
local BAD_BUILD_NOS = assert((loadstring or load)(BAD_BUILD_NOS_CODE))() -- luacheck: ignore loadstring

describe("input checks", function()
  local emu, client

  setup(function()
    emu = emulator.start{}
    client = clients.aksk(emu)
  end)

  teardown(function()
    client:close()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  local function assert_nothing_sent()
    local stats = emu:stats()
    assert.are.equal(0, stats.requests)
    assert.are.equal(0, stats.by_path_kind["record-info"])
  end

  describe("invalid job ids", function()
    for _, case in ipairs(BAD_JOB_IDS) do
      it("record_info refuses " .. case[1], function()
        local err = invalid(client:record_info(case[2], 61))
        assert.are.equal("record_info: ", err.message:sub(1, 13))
        assert.is_truthy(plain_find(err.message, "invalid job_id"), err.message)
        assert.is_nil(err.job_id)
        assert_nothing_sent()
      end)

      it("submit refuses " .. case[1], function()
        local err = invalid(client:submit(case[2], 61))
        assert.is_truthy(plain_find(err.message, "invalid job_id"), err.message)
        assert.are.equal(0, client:pending())
        assert.are.same({}, client:poll(0))
        assert_nothing_sent()
      end)
    end

    it("never puts the bad value into the message", function()
      local err = invalid(client:record_info(JOB:sub(1, 31) .. "\n", 61))
      assert.is_nil(err.message:find("%c"), err.message)
      assert_nothing_sent()
    end)
  end)

  describe("invalid build numbers", function()
    for _, case in ipairs(BAD_BUILD_NOS) do
      it("record_info refuses " .. case[1], function()
        local err = invalid(client:record_info(JOB, case[2]))
        local prefix = "record_info: invalid build_no: expected an integer from 1 to 2147483647, got "
        assert.are.equal(prefix, err.message:sub(1, #prefix))
        assert.is_nil(err.build_no)
        assert_nothing_sent()
      end)

      it("submit refuses " .. case[1], function()
        local err = invalid(client:submit(JOB, case[2]))
        assert.is_truthy(plain_find(err.message, "invalid build_no"), err.message)
        assert.are.equal(0, client:pending())
        assert_nothing_sent()
      end)
    end

    it("gives the documented message for 0", function()
      local _, message = client:record_info(JOB, 0)
      assert.are.equal("record_info: invalid build_no: expected an integer from 1 to 2147483647, got 0", message)
      assert_nothing_sent()
    end)
  end)

  describe("module-level record_info", function()
    local function run_child(code)
      local out, status = run.lua_code(code, emulator.client_env(emu))
      assert.are.equal(0, status, out)
      return out
    end

    it("refuses invalid job ids and build numbers without sending anything", function()
      local lines = {
        "local cb = require 'codeartsbuild'",
        "local cases = {}",
      }
      for _, case in ipairs(BAD_JOB_IDS) do
        lines[#lines + 1] = ("cases[#cases + 1] = { %q, 61 }"):format(case[2])
      end
      lines[#lines + 1] = "local builds = (function() " .. BAD_BUILD_NOS_CODE .. " end)()"
      lines[#lines + 1] = ("for _, b in ipairs(builds) do cases[#cases + 1] = { %q, b[2] } end"):format(JOB)
      lines[#lines + 1] = [[
        for i, case in ipairs(cases) do
          local rec, message, err = cb.record_info(case[1], case[2])
          local ok = rec == nil and cb.is_error(err, 'invalid') and err.attempts == 0 and message == err.message
            and message:find('^record_info: invalid ') ~= nil
          print(('case %d %s %s'):format(i, ok and 'refused' or 'WRONG', (message or ''):gsub('%c', '?')))
        end
        print('cases ' .. #cases)
      ]]
      local out = run_child(table.concat(lines, "\n"))
      local expected = #BAD_JOB_IDS + #BAD_BUILD_NOS
      assert.are.equal(tostring(expected), out:match("cases (%d+)"), out)
      local refused = 0
      for _ in out:gmatch("case %d+ refused") do refused = refused + 1 end
      assert.are.equal(expected, refused, out)
      assert.is_nil(out:find("WRONG", 1, true), out)
      assert_nothing_sent()
    end)

    it("raises for wrong types without sending anything", function()
      local out = run_child(([[
        local cb = require 'codeartsbuild'
        local job = %q
        local calls = {
          function() return cb.record_info(nil, 61) end,
          function() return cb.record_info(12345, 61) end,
          function() return cb.record_info({}, 61) end,
          function() return cb.record_info(true, 61) end,
          function() return cb.record_info(job, nil) end,
          function() return cb.record_info(job, {}) end,
          function() return cb.record_info(job, false) end,
          function() return cb.record_info(job, print) end,
        }
        local raised = 0
        for _, call in ipairs(calls) do
          if not pcall(call) then raised = raised + 1 end
        end
        print('raised ' .. raised .. ' of ' .. #calls)
      ]]):format(JOB))
      assert.is_truthy(plain_find(out, "raised 8 of 8"), out)
      assert_nothing_sent()
    end)

    it("sends a valid request from the same environment (so the refusals above are real)", function()
      local out = run_child(([[
        local cb = require 'codeartsbuild'
        local rec = assert(cb.record_info(%q, "61"))
        print('build ' .. rec.buildNo)
      ]]):format(JOB))
      assert.is_truthy(plain_find(out, "build 61"), out)
      assert.are.equal(1, emu:stats().requests)
    end)
  end)

  describe("valid edge values", function()
    local function assert_sent_path(build_no)
      assert.are.equal(("/v1/record/%s/%d/record-info"):format(JOB, build_no), emu:stats().last.path)
    end

    it("takes 61.0 as 61", function()
      local rec = assert(client:record_info(JOB, 61.0))
      assert_integer(rec.buildNo)
      assert.are.equal(61, rec.buildNo)
      assert_sent_path(61)
    end)

    it("takes the string '61'", function()
      local rec = assert(client:record_info(JOB, "61"))
      assert.are.equal(61, rec.buildNo)
      assert_sent_path(61)
    end)

    it("takes a string of 10 digits with leading zeros", function()
      local rec = assert(client:record_info(JOB, "0000000061"))
      assert.are.equal(61, rec.buildNo)
      assert_sent_path(61)
    end)

    it("takes 1", function()
      local rec = assert(client:record_info(JOB, 1))
      assert.are.equal(1, rec.buildNo)
      assert_sent_path(1)
    end)

    it("takes upper-case letters in a job id (and sends it as given)", function()
      local upper = JOB:upper()
      local _, _, err = client:record_info(upper, 61)
      assert.are.equal("not_found", err.kind) -- the emulator knows only the lower-case id
      assert.are.equal(upper, err.job_id)
      assert.are.equal(1, emu:stats().requests)
    end)

    for _, value in ipairs{ 2147483647, "2147483647", 2147483647.0 } do
      it(("sends %s (%s), which the emulator does not have"):format(tostring(value), type(value)), function()
        local rec, message, err = client:record_info(JOB, value)
        assert.is_nil(rec)
        assert.are.equal("not_found", err.kind, message)
        assert.are.equal(403, err.status) -- CB.00031059: never built (SERVICE-CONTRACTS §8.2)
        assert.are.equal("build", err.what)
        assert.are.equal(1, err.attempts)
        assert.are.equal(2147483647, err.build_no)
        assert_integer(err.build_no)
        assert.are.equal(1, emu:stats().requests)
        assert_sent_path(2147483647)
      end)
    end

    it("submit takes 61.0 and '61'", function()
      local a = assert(client:submit(JOB, 61.0))
      local b = assert(client:submit(JOB, "61"))
      assert.are_not.equal(a, b)
      local results = clients.drain(client)
      assert.are.equal(2, #results)
      for _, r in ipairs(results) do
        assert.are.equal(61, r.build_no)
        assert_integer(r.build_no)
        assert.are.equal(61, r.record.buildNo)
      end
      assert.are.equal(2, emu:stats().requests)
    end)
  end)

  describe("wrong types", function()
    local job_ids = { { "nil", nil }, { "a number", 12345 }, { "a table", {} }, { "a boolean", true } }
    local build_nos = { { "nil", nil }, { "a table", {} }, { "a boolean", false }, { "a function", print } }

    for _, method in ipairs{ "record_info", "submit" } do
      for _, case in ipairs(job_ids) do
        it(method .. " raises for a job_id that is " .. case[1], function()
          assert.has_error(function() client[method](client, case[2], 61) end)
          assert.are.equal(0, client:pending())
          assert_nothing_sent()
        end)
      end
      for _, case in ipairs(build_nos) do
        it(method .. " raises for a build_no that is " .. case[1], function()
          assert.has_error(function() client[method](client, JOB, case[2]) end)
          assert.are.equal(0, client:pending())
          assert_nothing_sent()
        end)
      end
    end

    it("record_info raises when the build_no is left out", function()
      assert.has_error(function() client:record_info(JOB) end)
      assert_nothing_sent()
    end)
  end)

  describe("cb.new", function()
    local function options(extra)
      return clients.aksk_options(emu, extra)
    end

    it("raises for options that are not a table", function()
      assert.has_error(function() cb.new("x") end)
      assert.has_error(function() cb.new(42) end)
    end)

    it("raises for a timeout that is a string", function()
      assert.has_error(function() cb.new(options{ timeout = "30" }) end)
    end)

    it("raises for insecure = 1", function()
      assert.has_error(function() cb.new(options{ insecure = 1 }) end)
    end)

    it("raises for an unknown option", function()
      assert.has_error(function() cb.new(options{ unknown_option = 1 }) end)
      assert.has_error(function() cb.new{ unknown_option = 1 } end)
    end)

    it("raises for other wrong option types", function()
      assert.has_error(function() cb.new(options{ max_body = "65536" }) end)
      assert.has_error(function() cb.new(options{ allow_http = "yes" }) end)
      assert.has_error(function() cb.new(options{ ak = 123 }) end)
      assert.has_error(function() cb.new(options{ connect_timeout = true }) end)
    end)

    it("raises for an unknown option or a wrong type even beside an option with a bad value", function()
      -- The options are read in the order next() visits them, which depends on the table's layout: vary the
      -- layout with valid filler options, so that some tables put the bad value before the wrong one.
      local bad_values = { { "timeout", -1 }, { "connect_timeout", 0 }, { "max_body", 10 } }
      local wrong = { { "unknown_option", 1 }, { "insecure", 1 }, { "timeout_ms", 5 }, { "user_agent", false } }
      local fillers = { { "user_agent", "input-spec" }, { "allow_http", true }, { "insecure", false },
        { "connect_timeout", 5 } }
      local returned, bad_first = {}, 0
      for mask = 0, 2 ^ #fillers - 1 do
        for _, bad in ipairs(bad_values) do
          for _, w in ipairs(wrong) do
            local opts = options()
            for i, filler in ipairs(fillers) do
              if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then opts[filler[1]] = filler[2] end
            end
            opts[bad[1]], opts[w[1]] = bad[2], w[2]
            for key in pairs(opts) do
              if key == bad[1] then bad_first = bad_first + 1 end
              if key == bad[1] or key == w[1] then break end
            end
            local ok, result = pcall(cb.new, opts)
            if ok then
              returned[#returned + 1] = ("%s = %s with %s = %s returned %s"):format(bad[1], tostring(bad[2]), w[1],
                tostring(w[2]), tostring(result))
              if result then result:close() end
            end
          end
        end
      end
      assert.is_true(bad_first > 0, "no table visited the bad value first: nothing was tested")
      assert.are.same({}, returned)
    end)

    local bad_values = {
      { "timeout = -1", { timeout = -1 }, "timeout" },
      { "timeout = 0", { timeout = 0 }, "timeout" },
      { "timeout = 0/0", { timeout = 0 / 0 }, "timeout" },
      { "timeout = 86401", { timeout = 86401 }, "timeout" },
      { "connect_timeout = -1", { connect_timeout = -1 }, "connect_timeout" },
      { "max_body = 10", { max_body = 10 }, "max_body" },
      { "max_body = 1023", { max_body = 1023 }, "max_body" },
      { "max_body = 2^31", { max_body = 2 ^ 31 }, "max_body" },
    }
    for _, case in ipairs(bad_values) do
      it("returns kind invalid for " .. case[1], function()
        local err = invalid(cb.new(options(case[2])))
        assert.is_truthy(plain_find(err.message, case[3]), err.message)
        assert_nothing_sent()
      end)
    end

    it("accepts the edge values", function()
      local c = assert(cb.new(options{ timeout = 86400, connect_timeout = 0.001, max_body = 1024 }))
      assert.are.equal(1024, c:info().max_body)
      c:close()
      c = assert(cb.new(options{ max_body = 1073741824 }))
      assert.are.equal(1073741824, c:info().max_body)
      c:close()
    end)
  end)

  describe("get", function()
    local bad_paths = {
      { "an empty path", "" },
      { "a relative path", "relative" },
      { "a query in the path", "/a?b=1" },
      { "a fragment", "/a#x" },
      { "a '..' segment", "/a/../b" },
      { "a '.' segment", "/a/./b" },
      { "a trailing '..'", "/a/.." },
      { "a trailing '.'", "/a/." },
      { "a space", "/with space" },
      { "a newline", "/v3/jobs\r\nX-Injected: 1" },
      { "a non-ASCII byte", "/caf\195\169" },
      { "a 3000-character path", "/" .. ("a"):rep(2999) },
    }
    for _, case in ipairs(bad_paths) do
      it("refuses " .. case[1], function()
        local err = invalid(client:get(case[2]))
        assert.is_truthy(plain_find(err.message, "invalid path"), err.message)
        assert.is_nil(err.message:find("%c"), err.message)
        assert_nothing_sent()
      end)
    end

    it("raises for a path that is not a string", function()
      assert.has_error(function() client:get(nil) end)
      assert.has_error(function() client:get(42) end)
      assert_nothing_sent()
    end)

    it("raises for a query of the wrong type", function()
      local path = "/v3/jobs/" .. JOB .. "/history"
      assert.has_error(function() client:get(path, "offset=0&limit=5") end)
      assert.has_error(function() client:get(path, 5) end)
      assert.has_error(function() client:get(path, true) end)
      assert.has_error(function() client:get(path, { offset = {} }) end)
      assert.has_error(function() client:get(path, { limit = print }) end)
      assert_nothing_sent()
    end)

    it("sends a valid path with a query (a map) and gives integers back", function()
      local path = "/v3/jobs/" .. JOB .. "/history"
      local page = assert(client:get(path, { offset = 0, limit = 5, interval = 30 }))
      assert_integer(page.total)
      assert.is_true(page.total > 0)
      assert.are.equal(5, #page.history_records)
      local last = emu:stats().last
      assert.are.equal(path, last.path)
      local sent = {}
      for key, value in last.query:gmatch("([^&=]+)=([^&]*)") do sent[key] = value end
      assert.are.same({ offset = "0", limit = "5", interval = "30" }, sent)
    end)

    it("sends a query given as a list of pairs", function()
      local path = "/v3/jobs/" .. JOB .. "/history"
      local page = assert(client:get(path, { { "offset", 2 }, { "limit", 3 }, { "interval", 30 } }))
      assert_integer(page.total)
      assert.are.equal(3, #page.history_records)
      local last = emu:stats().last
      assert.are.equal(path, last.path)
      assert.is_truthy(plain_find(last.query, "limit=3"), last.query)
      assert.is_truthy(plain_find(last.query, "offset=2"), last.query)
      assert.are.equal(1, emu:stats().requests)
    end)
  end)
end)
