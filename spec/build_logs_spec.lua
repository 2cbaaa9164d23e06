-- client:steps/log/follow/wait (lua/codeartsbuild/build.lua) and the engine's streams
-- (submit_get{stream = true}, read) against the emulator's steps, logs and running builds.
local cb = require "codeartsbuild"
local core = require "codeartsbuild.core"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local LOGS = emulator.job_ids.logs -- 5 builds: 3 SUCCESS (the big log), 4 FAILED, 5 SUCCESS
local REFERENCE = emulator.job_ids.reference
local UNKNOWN = "00000000000000000000000000000000"
local BIG_BYTES = 3 * 1024 * 1024 -- the big log of this file's emulator (bench/ streams the 50 MB one)

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

local function count(stats, kind)
  return stats.by_path_kind[kind] or 0
end

--- The last n lines of text, the obvious way (a last line without "\n" counts).
local function last_lines(text, n)
  local lines = {}
  for line in text:gmatch("[^\n]*\n?") do
    if line ~= "" then lines[#lines + 1] = line end
  end
  local out = {}
  for i = math.max(1, #lines - n + 1), #lines do out[#out + 1] = lines[i] end
  return table.concat(out)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("build steps and logs", function()
  local emu, client, tmp

  setup(function()
    emu = emulator.start{ big_log_bytes = BIG_BYTES }
    client = clients.aksk(emu)
    tmp = run.tmpdir()
  end)

  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
    if tmp then os.execute("rm -rf " .. run.quote(tmp)) end
  end)

  before_each(function()
    emu:reset()
  end)

  after_each(function()
    assert.are.equal(0, client:pending("all"), "a request was left behind")
  end)

  -------------------------------------------------------------------------------------------------
  describe("client:steps", function()
    it("names a FAILED build's failing step; the steps after it did not run", function()
      local steps = assert(client:steps(LOGS, 4))
      local expected = assert(emu:steps(LOGS, 4))
      assert.are.equal(#expected, #steps)
      local failed = assert(steps:find("FAILED"))
      for i, step in ipairs(steps) do
        assert.are.equal(i, step.index)
        assert.are.equal(expected[i].name, step.name)
        assert.are.equal(expected[i].build_time, step.duration)
        local want = ({ success = "SUCCESS", error = "FAILED", running = "RUNNING", [""] = "NOT_RUN" })[
          expected[i].status]
        assert.are.equal(want, step.status)
        if i > failed.index then assert.are.equal("NOT_RUN", step.status) end
      end
      -- one aligned line each: position, status, duration, then the name
      assert.are.equal((" %d  FAILED   %7s  %s"):format(failed.index, cb.core.format_duration(failed.duration),
        failed.name), tostring(failed))
      assert.truthy(tostring(steps):find(tostring(failed), 1, true))
      assert.are.equal(1, count(emu:stats(), "history-details"))
    end)

    it("shows the running step of a running build", function()
      local n = emu:start_build{ steps = 3, step_seconds = 5 }
      local steps = assert(client:steps(LOGS, n))
      assert.are.equal("RUNNING", steps[1].status)
      assert.are.equal("NOT_RUN", steps[3].status)
      assert.are.equal(steps[1], steps:find("RUNNING"))
    end)

    it("falls back to full-stages (times included) where history-details is gone", function()
      emu:faults{ { action = "error", code = "APIGW.0101", status = 404, kind = "history-details" } }
      local steps = assert(client:steps(LOGS, 5))
      local expected = assert(emu:steps(LOGS, 5))
      assert.are.equal(#expected, #steps)
      for i, step in ipairs(steps) do
        assert.are.equal(expected[i].name, step.name)
        assert.are.equal("SUCCESS", step.status)
        assert.are.equal(expected[i].build_time, step.duration)
        assert.truthy(step.start:match("^%d%d%d%d%-%d%d%-%d%dT"), step.start)
        assert.truthy(step.finish:match("^%d%d%d%d%-%d%d%-%d%dT"), step.finish)
      end
      local stats = emu:stats()
      assert.are.equal(1, count(stats, "full-stages"))
      assert.are.equal(1, count(stats, "record-info"))
    end)

    it("returns the service's refusal, and refuses bad input before sending anything", function()
      local steps, message, err = client:steps(UNKNOWN, 1)
      assert.is_nil(steps)
      assert.is_string(message)
      assert.is_true(cb.is_error(err))
      steps, message, err = client:steps("not-a-job", 1)
      assert.is_nil(steps)
      assert.are.equal("invalid", err.kind, message)
      steps, message, err = client:steps(LOGS, 0)
      assert.is_nil(steps)
      assert.are.equal("invalid", err.kind, message)
      assert.has_error(function() client:steps({}, 1) end)
      assert.are.equal(1, emu:stats().requests)
    end)

    it("names a missing build as record_info does", function()
      local steps, message, err = client:steps(LOGS, 999999)
      assert.is_nil(steps)
      assert.are.equal("not_found", err.kind)
      assert.are.equal("build", err.what)
      local expected = ("steps %s/999999: build 999999 of job %s not found (HTTP 403: CB.00031059 "):format(LOGS, LOGS)
      assert.are.equal(expected, message:sub(1, #expected))
      assert.are.equal(message, err.message)
    end)
  end)

  -------------------------------------------------------------------------------------------------
  describe("the engine's streams", function()
    local function record_id(n)
      return assert(client:record_info(LOGS, n)).buildRecordId
    end

    it("read() hands a download over in pieces of at most 64 KiB, then the entry; take() on a stream drops the rest",
      function()
        local path = "/v1/log/" .. record_id(3) .. "/download-log"
        local id = assert(client:submit_get(path, nil, { stream = true }))
        assert.are.same({}, client:poll(0)) -- held
        local pieces, entry = {}, nil
        for _ = 1, 10000 do
          local piece = client:read(id)
          if type(piece) ~= "string" then entry = piece break end
          assert.is_true(#piece > 0 and #piece <= 65536)
          pieces[#pieces + 1] = piece
        end
        local size = #emu:log(LOGS, 3)
        assert.is_true(size >= BIG_BYTES)
        assert.are.equal(size, #table.concat(pieces))
        assert.are.equal(id, entry.id)
        assert.are.equal(path, entry.path)
        assert.are.equal(size, entry.bytes)
        assert.is_true(#pieces > 1)
        assert.has_error(function() client:read(id) end) -- taken
        id = assert(client:submit_get(path, nil, { stream = true }))
        assert.are.equal("string", type(client:read(id)))
        entry = client:take(id)
        assert.are.equal(size, entry.bytes)
      end)

    it("a JSON answer on a file route is read as get() reads it", function()
      emu:faults{ { action = "api_fail", code = "CB.00031059", message = "no log", kind = "download-log" } }
      local id = assert(client:submit_get("/v1/log/" .. record_id(4) .. "/download-log", nil, { stream = true }))
      local entry = client:read(id)
      assert.are.equal("table", type(entry))
      assert.is_nil(entry.bytes)
      assert.is_true(cb.is_error(entry.err))
      assert.are.equal("CB.00031059", entry.err.code) -- its kind is the service's code's (not_found)
    end)

    it("after = ms starts a request no earlier than that; read(id, 0) never waits", function()
      local id = assert(client:submit_get("/v1/job/" .. LOGS .. "/running-status", nil, { hold = true, after = 300 }))
      assert.is_nil(client:read(id, 0))
      assert.are.equal(0, emu:stats().requests)
      local entry = client:take(id)
      assert.are.equal("5", entry.body.result.last_build_no)
      assert.has_error(function() client:submit_get("/x", nil, { after = -1 }) end)
      assert.has_error(function() client:submit(LOGS, 1, { stream = true }) end)
    end)

    it("cancel() drops a paused stream; close() frees one", function()
      local path = "/v1/log/" .. record_id(3) .. "/download-log"
      local id = assert(client:submit_get(path, nil, { stream = true }))
      assert.are.equal("string", type(client:read(id)))
      assert.is_true(client:cancel(id))
      local other = clients.aksk(emu)
      id = assert(other:submit_get(path, nil, { stream = true }))
      assert.are.equal("string", type(other:read(id)))
      other:close()
      assert.has_error(function() other:read(id) end)
    end)
  end)

  -------------------------------------------------------------------------------------------------
  describe("client:log", function()
    it("gives the whole log, byte for byte, for a FAILED, a SUCCESS and the big build", function()
      for _, n in ipairs{ 4, 5, 3 } do
        local text = assert(client:log(LOGS, n))
        assert.is_true(text == emu:log(LOGS, n), "build " .. n)
      end
      local stats = emu:stats()
      assert.are.equal(3, count(stats, "download-log"))
      assert.are.equal(0, count(stats, "real-time-log"))
    end)

    it("gives the last n lines, whatever n", function()
      local whole = emu:log(LOGS, 4)
      for _, n in ipairs{ 0, 1, 3, 10, 100000 } do
        assert.are.equal(last_lines(whole, n), assert(client:log(LOGS, 4, { tail = n })), "tail " .. n)
      end
      local big = emu:log(LOGS, 3)
      assert.is_true(last_lines(big, 50) == assert(client:log(LOGS, 3, { tail = 50 })))
      assert.is_true(last_lines(big, 30000) == assert(client:log(LOGS, 3, { tail = 30000 })))
    end)

    it("streams to on_chunk and to a file, byte for byte", function()
      local pieces = {}
      local bytes = assert(client:log(LOGS, 3, { on_chunk = function(text) pieces[#pieces + 1] = text end }))
      local big = emu:log(LOGS, 3)
      assert.are.equal(#big, bytes)
      assert.is_true(#pieces > 1)
      assert.is_true(table.concat(pieces) == big)
      local path = tmp .. "/3.log"
      assert.are.equal(#big, assert(client:log(LOGS, 3, { to_file = path })))
      assert.is_true(run.read(path) == big)
      assert.is_false(exists(path .. ".partial"))
    end)

    it("takes a gzip download, decompressed by libcurl", function()
      emu:configure{ gzip = true }
      assert.is_true(assert(client:log(LOGS, 3)) == emu:log(LOGS, 3))
      assert.truthy(emu:stats().last.headers["Accept-Encoding"]:find("gzip", 1, true))
    end)

    it("streams past max_body; max_bytes guards the string form", function()
      local small = clients.aksk(emu, { max_body = 4096 })
      assert.is_true(assert(small:log(LOGS, 3)) == emu:log(LOGS, 3))
      small:close()
      local text, message, err = client:log(LOGS, 3, { max_bytes = 100000 })
      assert.is_nil(text)
      assert.are.equal("decode", err.kind)
      assert.truthy(message:find("max_bytes (100000 bytes)", 1, true), message)
      assert.truthy(message:find("to_file", 1, true), message)
    end)

    it("keeps CR, LF, NUL and bytes that are not UTF-8 as they are", function()
      -- a body's lone surrogates \udc80..\udcff are the emulator's bytes 0x80..0xff
      local json = [[{"rules": [{"action": "body", "kind": "download-log", "status": 200,
        "content_type": "application/octet-stream",
        "body": "line one\r\nline\u0000two\r\n\udcff\udcfe broken \udce4\udcb8\nno newline at the end"}]}]]
      local status = emu:_control("POST", "/__emulator/faults", json)
      assert.are.equal(200, status)
      local expected = "line one\r\nline\0two\r\n\255\254 broken \228\184\nno newline at the end"
      assert.are.equal(expected, assert(client:log(LOGS, 4)))
      emu:_control("POST", "/__emulator/faults", json)
      assert.are.equal("\255\254 broken \228\184\nno newline at the end", assert(client:log(LOGS, 4, { tail = 2 })))
    end)

    it("survives failed attempts mid-body with no byte lost or repeated (cut, stall, 503)", function()
      local big = emu:log(LOGS, 3)
      emu:faults{ { action = "cut", kind = "download-log", times = 1 } }
      assert.is_true(assert(client:log(LOGS, 3)) == big)
      emu:clear_faults()
      emu:faults{ { action = "status", status = 503, kind = "download-log", times = 2 } }
      assert.is_true(assert(client:log(LOGS, 3)) == big)
      emu:clear_faults()
      -- a server that stops sending mid-body: `timeout` is the time allowed without a byte
      local attempts
      local patient = clients.aksk(emu, { timeout = 1, backoff = 0.01, on_event = function(event)
        if event.path:find("download-log", 1, true) then attempts = event.attempts end
      end })
      emu:faults{ { action = "stall", seconds = 3, kind = "download-log", times = 1 } }
      local pieces = {}
      assert.are.equal(#big, assert(patient:log(LOGS, 3, { on_chunk = function(t) pieces[#pieces + 1] = t end })))
      assert.is_true(table.concat(pieces) == big)
      assert.are.equal(2, attempts)
      patient:close()
      emu:clear_faults()
      emu:configure{ gzip = true }
      emu:faults{ { action = "cut", kind = "download-log", times = 2 } }
      assert.is_true(assert(client:log(LOGS, 3)) == big)
    end)

    it("says so when the download stays cut short, and leaves no file behind", function()
      emu:faults{ { action = "cut", kind = "download-log" } }
      local path = tmp .. "/cut.log"
      local given = 0
      local bytes, message, err = client:log(LOGS, 3, { on_chunk = function(t) given = given + #t end })
      assert.is_nil(bytes)
      assert.are.equal("network", err.kind)
      assert.truthy(message:find("cut short", 1, true), message)
      assert.is_true(given > 0 and given < BIG_BYTES)
      bytes, message, err = client:log(LOGS, 3, { to_file = path })
      assert.is_nil(bytes)
      assert.are.equal("network", err.kind, message)
      assert.is_false(exists(path))
      assert.is_false(exists(path .. ".partial"))
    end)

    it("refuses a path it cannot write before sending anything", function()
      local bytes, message, err = client:log(LOGS, 3, { to_file = tmp .. "/no/such/dir/x.log" })
      assert.is_nil(bytes)
      assert.are.equal("invalid", err.kind)
      assert.are.equal(tmp .. "/no/such/dir/x.log", err.path)
      assert.truthy(message:find("cannot write", 1, true), message)
      assert.are.equal(0, emu:stats().requests)
    end)

    it("stops at a disk that is full: a clear error, and nothing left half-written", function()
      -- RLIMIT_FSIZE makes writes past 512 KiB fail (EFBIG) as a full disk would (ENOSPC);
      -- SIGXFSZ ignored, so that the write returns an error instead of killing the process.
      local path = tmp .. "/full.log"
      local code = ([[
        package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
        local clients = require "spec.support.clients"
        local client = clients.aksk({ url = %q, ak = %q, sk = %q, project_id = %q })
        local bytes, message, err = client:log(%q, 3, { to_file = %q })
        print("bytes", tostring(bytes), "kind", err and err.kind, "path", err and err.path)
        print("message", message)
      ]]):format(emu.url, emu.ak, emu.sk, emu.project_id, LOGS, path)
      local command = ("ulimit -f 1024; trap '' XFSZ; LUA_PATH=%s LUA_CPATH=%s %s -e %s"):format(
        run.quote("lua/?.lua;lua/?/init.lua;./?.lua;;"), run.quote(run.build_dir() .. "/?.so;;"), run.lua,
        run.quote(code))
      local out, status = run.capture(command)
      assert.are.equal(0, status, out)
      assert.truthy(out:find("bytes\tnil\tkind\tinvalid\tpath\t" .. path, 1, true), out)
      assert.truthy(out:find("message\tlog: cannot write " .. path .. ".partial", 1, true), out)
      assert.truthy(out:find(path .. " was left as it was", 1, true), out)
      assert.is_false(exists(path))
      assert.is_false(exists(path .. ".partial"))
    end)

    it("reads a running build's log from the real-time route, as far as it has got", function()
      local n = emu:start_build{ steps = 3, step_seconds = 5, lines_per_step = 4 }
      local text = assert(client:log(LOGS, n, { length = 64 }))
      assert.is_true(#text > 0)
      emu:clear_builds()
      local stats = emu:stats()
      assert.are.equal(0, count(stats, "download-log"))
      assert.is_true(count(stats, "real-time-log") > 2)
      assert.truthy(text:find("开始执行", 1, true))
    end)

    it("moves to the v4 download where the v1 route is gone", function()
      emu:faults{ { action = "error", code = "APIGW.0101", status = 404, path_contains = "/v1/log/" } }
      assert.are.equal(emu:log(LOGS, 5), assert(client:log(LOGS, 5)))
      assert.are.equal(1, emu:stats().by_route[emulator.routes.download_log_v4])
    end)

    it("lets on_chunk make other requests on the same client, even at concurrency 1 (a paused stream waits aside)",
      function()
        local single = clients.aksk(emu, { concurrency = 1 })
        local records = {}
        local bytes = assert(single:log(LOGS, 3, { on_chunk = function()
          if #records < 3 then records[#records + 1] = assert(single:record_info(LOGS, 5)) end
        end }))
        assert.are.equal(#emu:log(LOGS, 3), bytes)
        assert.are.equal(3, #records)
        single:close()
      end)

    it("lets on_chunk stop it by raising, and cancels the download", function()
      local ok, why = pcall(client.log, client, LOGS, 3, { on_chunk = function() error("enough") end })
      assert.is_false(ok)
      assert.truthy(tostring(why):find("enough", 1, true))
    end)

    it("survives the collector running and the client closing mid-stream", function()
      local pieces = 0
      assert(client:log(LOGS, 3, { on_chunk = function() pieces = pieces + 1; collectgarbage() end }))
      assert.is_true(pieces > 1)
      local other = clients.aksk(emu)
      local ok, why = pcall(other.log, other, LOGS, 3, { on_chunk = function() other:close() end })
      assert.is_false(ok)
      assert.truthy(tostring(why):find("closed", 1, true), tostring(why))
      local path = tmp .. "/closed.log"
      other = clients.aksk(emu)
      ok = pcall(other.log, other, LOGS, 3, { to_file = path, on_chunk = nil })
      assert.is_true(ok)
      other:close()
    end)

    it("raises for options that are mistakes", function()
      assert.has_error(function() client:log(LOGS, 3, { tail = 1, to_file = "x" }) end)
      assert.has_error(function() client:log(LOGS, 3, { tail = -1 }) end)
      assert.has_error(function() client:log(LOGS, 3, { tial = 1 }) end)
      assert.has_error(function() client:log(LOGS, 3, { level = "TRACE" }) end)
      assert.are.equal(0, emu:stats().requests)
    end)
  end)

  -------------------------------------------------------------------------------------------------
  describe("client:follow", function()
    local function follow_all(job, n, opts)
      local pieces = {}
      for text in assert(client:follow(job, n, opts)) do pieces[#pieces + 1] = text end
      return table.concat(pieces), pieces
    end

    it("follows a build that finishes meanwhile: every byte once, in order", function()
      local n = emu:start_build{ steps = 3, step_seconds = 0.6, lines_per_step = 5 }
      local text, pieces = follow_all(LOGS, n, { interval = 0.1, max_interval = 0.3, length = 200 })
      assert.is_true(emu:wait_build(LOGS, n, 1)) -- it has ended: the follow said so
      assert.is_true(text == emu:log(LOGS, n))
      assert.is_true(#pieces > 3)
      assert.truthy(text:find("构建结束: SUCCESS", 1, true))
    end)

    it("loses and repeats nothing across failed requests (503, resets, cut bodies, delays)", function()
      local n = emu:start_build{ steps = 3, step_seconds = 0.6, lines_per_step = 5 }
      emu:faults{
        { action = "status", status = 503, kind = "real-time-log", every = 3 },
        { action = "reset", kind = "real-time-log", every = 4 },
        { action = "cut", kind = "real-time-log", every = 5 },
        { action = "delay", seconds = 0.2, kind = "real-time-log", every = 2 },
        { action = "status", status = 500, kind = "record-info", every = 2 },
      }
      local patient = clients.aksk(emu, { retries = 10, backoff = 0.01 })
      local pieces = {}
      for text in assert(patient:follow(LOGS, n, { interval = 0.1, max_interval = 0.3, length = 150 })) do
        pieces[#pieces + 1] = text
      end
      patient:close()
      emu:clear_faults()
      assert.is_true(table.concat(pieces) == emu:log(LOGS, n))
      assert.is_true((emu:stats().by_status["503"] or 0) > 0)
    end)

    it("gives a finished build's whole log with three requests", function()
      local text = follow_all(LOGS, 4)
      assert.are.equal(emu:log(LOGS, 4), text)
      local stats = emu:stats()
      assert.are.equal(2, count(stats, "real-time-log")) -- the log, then one after the end
      assert.are.equal(1, count(stats, "record-info"))   -- has it ended?
    end)

    it("ends too where the log says more is coming for as long as the build runs", function()
      emu:configure{ running_has_more = false }
      local n = emu:start_build{ steps = 2, step_seconds = 0.5 }
      assert.is_true(follow_all(LOGS, n, { interval = 0.1, max_interval = 0.2 }) == emu:log(LOGS, n))
    end)

    it("moves to the v1 real-time route where v3 is gone", function()
      emu:configure{ retire_v3 = "gateway" }
      local n = emu:start_build{ steps = 2, step_seconds = 0.4 }
      assert.is_true(follow_all(LOGS, n, { interval = 0.1, max_interval = 0.2, length = 300 }) == emu:log(LOGS, n))
      assert.is_true(emu:stats().by_route[emulator.routes.real_time_log_v1] > 1)
    end)

    it("stops on break, and leaves nothing pending", function()
      local n = emu:start_build{ steps = 3, step_seconds = 2 }
      local seen = 0
      for text in assert(client:follow(LOGS, n, { interval = 0.1 })) do
        seen = seen + #text
        if seen > 0 then break end
      end
      assert.is_true(seen > 0)
      local before = emu:stats().requests
      sleep(0.3)
      assert.are.equal(before, emu:stats().requests)
    end)

    it("raises the err of a failure; refuses text whose offset does not move", function()
      local iterator = assert(client:follow(UNKNOWN, 1))
      local ok, err = pcall(iterator)
      assert.is_false(ok)
      assert.is_true(cb.is_error(err))
      emu:faults{ { action = "field", field = "result.offset", value = 0, kind = "real-time-log" } }
      ok, err = pcall(follow_all, LOGS, 4)
      assert.is_false(ok)
      assert.are.equal("decode", err.kind)
      assert.truthy(err.message:find("no offset after them", 1, true), err.message)
      local none, message
      none, message, err = client:follow("nope", 1)
      assert.is_nil(none)
      assert.are.equal("invalid", err.kind, message)
    end)

    describe("with callbacks, for an event loop", function()
      --- Steps the follower until it is over, a bounded number of times; the sleeps stand for the
      -- event loop's other work.
      local function drive(follower)
        for _ = 1, 3000 do
          if not follower:step() then return true end
          sleep(0.01)
        end
        return false
      end

      it("hands the text to on_chunk, then the record to on_done; step() never waits", function()
        local n = emu:start_build{ steps = 3, step_seconds = 0.4 }
        local pieces, final = {}, nil
        local follower = assert(client:follow(LOGS, n, { interval = 0.1, max_interval = 0.2,
          on_chunk = function(text) pieces[#pieces + 1] = text end,
          on_done = function(rec, message) final = rec or message end }))
        assert.is_true(drive(follower))
        assert.are.equal("SUCCESS", final.status)
        assert.is_true(table.concat(pieces) == emu:log(LOGS, n))
      end)

      it("stops when closed from inside on_chunk, with no callback after it", function()
        local n = emu:start_build{ steps = 3, step_seconds = 1 }
        local calls, done = 0, false
        local follower
        follower = assert(client:follow(LOGS, n, { interval = 0.1,
          on_chunk = function() calls = calls + 1; follower:close() end,
          on_done = function() done = true end }))
        assert.is_true(drive(follower))
        assert.are.equal(1, calls)
        assert.is_false(done)
        assert.is_false(follower:step())
      end)

      it("cancels the request it waits for when closed between steps", function()
        local n = emu:start_build{ steps = 3, step_seconds = 1 }
        local follower = assert(client:follow(LOGS, n, { on_chunk = function() end }))
        assert.is_true(follower:step()) -- waits for its first request
        assert.are.equal(1, client:pending("held"))
        follower:close()
        assert.are.equal(0, client:pending("all"))
      end)

      it("cancels the request it waits for when collected without close()", function()
        local n = emu:start_build{ steps = 3, step_seconds = 1 }
        do
          local follower = assert(client:follow(LOGS, n, { on_chunk = function() end }))
          assert.is_true(follower:step())
          assert.are.equal(1, client:pending("held"))
        end
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, client:pending("all"))
      end)

      it("gives a failure to on_done", function()
        local got
        local follower = assert(client:follow(UNKNOWN, 1, { on_chunk = function() end,
          on_done = function(rec, message, err) got = { rec, message, err } end }))
        assert.is_true(drive(follower))
        assert.is_nil(got[1])
        assert.is_true(cb.is_error(got[3]))
      end)
    end)
  end)

  -------------------------------------------------------------------------------------------------
  describe("client:wait", function()
    it("returns the record of a build that ends SUCCESS, telling each change", function()
      local n = emu:start_build{ steps = 3, step_seconds = 0.4 }
      local changes = {}
      local rec = assert(client:wait(LOGS, n, { interval = 0.1, on_change = function(r, steps)
        local step = steps and steps:find("RUNNING")
        changes[#changes + 1] = r.status .. (step and " " .. step.name or "")
      end }))
      assert.are.equal("SUCCESS", rec.status)
      assert.are.equal(n, rec.buildNo)
      assert.are.equal("SUCCESS", changes[#changes])
      assert.truthy(changes[1]:match("^RUNNING "), changes[1])
      for i = 2, #changes do assert.are_not.equal(changes[i - 1], changes[i]) end
    end)

    it("returns the record of a build that ends FAILED; the newest build when none is named", function()
      local n = emu:start_build{ steps = 3, step_seconds = 0.3, result = "FAILED", fail_step = 2 }
      local rec = assert(client:wait(LOGS, nil, { interval = 0.1 }))
      assert.are.equal("FAILED", rec.status)
      assert.are.equal(n, rec.buildNo)
      assert.are.equal(1, count(emu:stats(), "running-status"))
    end)

    it("answers at once for a build that has ended", function()
      assert.are.equal("FAILED", assert(client:wait(LOGS, 4)).status)
      assert.are.equal(1, emu:stats().requests)
    end)

    it("times out with err.kind timeout and the last record, leaving nothing pending", function()
      local n = emu:start_build{ steps = 3, step_seconds = 10 }
      local rec, message, err = client:wait(LOGS, n, { timeout = 0.5, interval = 0.2 })
      assert.is_nil(rec)
      assert.are.equal("timeout", err.kind)
      assert.are.equal("RUNNING", err.record.status)
      assert.truthy(message:find("still RUNNING", 1, true), message)
      rec, message, err = client:wait(REFERENCE, 1200, { timeout = 0 }) -- looks once
      assert.is_nil(rec)
      assert.are.equal("timeout", err.kind, message)
      assert.are.equal("FAILED", assert(client:wait(LOGS, 4, { timeout = 0 })).status)
    end)

    it("goes on through throttled polls", function()
      local n = emu:start_build{ steps = 2, step_seconds = 0.3 }
      emu:faults{ { action = "status", status = 429, kind = "record-info", times = 3 } }
      local impatient = clients.aksk(emu, { retries = 0 })
      local rec = assert(impatient:wait(LOGS, n, { interval = 0.1, max_interval = 0.2 }))
      impatient:close()
      assert.are.equal("SUCCESS", rec.status)
    end)

    it("returns other failures at once", function()
      local rec, message, err = client:wait(UNKNOWN, 5)
      assert.is_nil(rec)
      assert.is_string(message)
      assert.is_true(cb.is_error(err))
      assert.has_error(function() client:wait(LOGS, 4, { timeout = -1 }) end)
      assert.has_error(function() client:wait(LOGS, 4, { interval = 0 }) end)
    end)
  end)

  it("examples/build_logs.lua runs and prints what the emulator's data says", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
      run.quote(run.build_dir() .. "/?.so;;"))
    local out, status = run.capture(("%s spec/support/with-emulator -- %s examples/build_logs.lua"):format(env,
      run.lua))
    assert.are.equal(0, status, out)
    local whole = emu:log(LOGS, 4) -- the same seed: the same data
    local steps = assert(emu:steps(LOGS, 4))
    assert.truthy(out:find("record:  #4 FAILED ", 1, true), out)
    assert.truthy(out:find("\n 1  FAILED  ", 1, true), out)
    assert.truthy(out:find("failed:  step 1, " .. steps[1].name, 1, true), out)
    assert.truthy(out:find("last 3 lines:\n" .. last_lines(whole, 3), 1, true), out)
    assert.truthy(out:find(("to_file: %d bytes"):format(#whole), 1, true), out)
    assert.truthy(out:find(("follow:  %d bytes"):format(#whole), 1, true), out)
    assert.truthy(out:find("step:    1 piece(s), then #4 FAILED", 1, true), out)
    assert.truthy(out:find("wait:    FAILED", 1, true), out)
    assert.truthy(out:find("wait:    timeout: wait " .. REFERENCE .. "/1200: the build is still RUNNING", 1, true), out)
    assert.truthy(out:find("take:    #4 FAILED ", 1, true), out)
    assert.truthy(out:find(("read:    %d bytes, then {bytes = %d}"):format(#whole, #whole), 1, true), out)
  end)

  it("the rockspec installs every module of lua/codeartsbuild/ and builds every file of csrc/", function()
    local rockspec = assert(run.read("codeartsbuild-scm-1.rockspec"))
    local listing = run.capture("ls lua/codeartsbuild/*.lua")
    local missing = {}
    for name in listing:gmatch("lua/codeartsbuild/([%w_]+)%.lua") do
      local module = name == "init" and "codeartsbuild" or "codeartsbuild." .. name
      if not rockspec:find(('["%s"] = "lua/codeartsbuild/%s.lua"'):format(module, name), 1, true) then
        missing[#missing + 1] = module
      end
    end
    assert.are.same({}, missing)
    local sources = {}
    for name in run.capture("ls csrc/*.c"):gmatch("csrc/[%w_]+%.c") do
      if not rockspec:find('"' .. name .. '"', 1, true) then sources[#sources + 1] = name end
    end
    assert.are.same({}, sources)
  end)

  it("a build has ended on a status that ends one, or a finish time beside a status nobody knows", function()
    local ended = require("codeartsbuild.build").has_ended
    assert.is_true(ended{ status = "SUCCESS" })
    assert.is_true(ended{ status = "failed", finishTime = "2024-01-01T00:00:00.000+00:00" })
    assert.is_true(ended{ status = "SCHEDULE_FAILURE" })
    assert.is_false(ended{ status = "RUNNING", finishTime = "2024-01-01T00:00:00.000+00:00" })
    assert.is_false(ended{ status = "InQueue" })
    assert.is_false(ended{ status = "COMPILING" }) -- unknown: in progress (SERVICE-CONTRACTS section 11)
    assert.is_true(ended{ status = "COMPILED", finishTime = "2024-01-01T00:00:00.000+00:00" })
    assert.is_false(ended{})
  end)

  it("the monotonic clock moves forward", function()
    local a = cb.monotonic()
    sleep(0.05)
    assert.is_true(cb.monotonic() > a)
    assert.are.equal(core.monotonic, cb.monotonic)
  end)
end)
