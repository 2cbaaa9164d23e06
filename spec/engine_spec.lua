-- The engine's one mailbox (issue 11): held requests and take(), waits that do not spin, close()
-- at any moment, fork, one sign-in however many requests need it, remembered credential failures,
-- an exact rate, and one rule for what is retried. Each `it` is a row of the issue's table.
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local run = require "spec.support.run"

local JOB = emulator.job_ids.reference
local BIG = emulator.job_ids.big

--- An object whose collection calls fn (newproxy on 5.1 and LuaJIT, where tables have no __gc).
local function on_collect(fn)
  local newproxy = rawget(_G, "newproxy")
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = fn
    return proxy
  end
  return setmetatable({}, { __gc = fn })
end

local function drain(client, rounds)
  return clients.drain(client, rounds)
end

local function ids_of(entries)
  local ids = {}
  for i, e in ipairs(entries) do ids[i] = e.id end
  table.sort(ids)
  return ids
end

describe("the engine", function()
  local emu

  setup(function()
    emu = emulator.start{}
  end)

  teardown(function()
    emu:stop()
  end)

  before_each(function()
    emu:reset()
  end)

  describe("held requests", function()
    it("are never returned by poll(), and take() gives the same entry poll would", function()
      local client = clients.aksk(emu)
      local held = assert(client:submit(JOB, 61, { hold = true }))
      local free = assert(client:submit(JOB, 62))
      assert.are.equal(1, client:pending())
      assert.are.equal(1, client:pending("held"))
      assert.are.equal(2, client:pending("all"))
      assert.are.same({ free }, ids_of(drain(client)))
      local entry = client:take(held)
      assert.are.equal(held, entry.id)
      assert.are.equal(JOB, entry.job_id)
      assert.are.equal(61, entry.build_no)
      assert.are.equal(61, entry.record.buildNo)
      assert.are.equal(0, client:pending("all"))
      client:close()
    end)

    it("take() without waiting gives nil until the request is done, and raises for unknown ids", function()
      local client = clients.aksk(emu)
      emu:faults{ { action = "delay", seconds = 0.5, build_no = 63 } }
      local id = assert(client:submit(JOB, 63, { hold = true }))
      assert.is_nil(client:take(id, 0))
      assert.is_nil(client:take(id, 10))
      assert.are.equal(63, client:take(id).record.buildNo)
      assert.has_error(function() client:take(id) end, "codeartsbuild: take: request " .. id ..
        " is not pending (taken, polled or cancelled)")
      assert.has_error(function() client:take(id + 100) end)
      assert.has_error(function() client:take(0) end)
      assert.has_error(function() client:take(1.5) end)
      assert.has_error(function() client:take(id, -1) end)
      assert.has_error(function() client:take(id, 0 / 0) end)
      client:close()
    end)

    it("take() gives a failure as poll does, and a get's body", function()
      local client = clients.aksk(emu)
      local missing = assert(client:submit(JOB, 999999, { hold = true }))
      local get = assert(client:submit_get("/v1/job/" .. JOB .. "/running-status", nil, { hold = true }))
      local failed = client:take(missing)
      assert.is_nil(failed.record)
      assert.are.equal("not_found", failed.err.kind)
      assert.are.equal(failed.message, failed.err.message)
      local body = client:take(get).body
      assert.are.equal("success", body.status)
      client:close()
    end)

    it("of walks abandoned after one step never reach anyone's poll(), under an aggressive collector", function()
      local client = clients.aksk(emu)
      local pause = collectgarbage("setpause", 10)
      local stepmul = collectgarbage("setstepmul", 400)
      local foreign, extra = 0, 0
      for round = 1, 300 do
        local iterator = client:records(BIG, { from = 1, to = 100, concurrency = 8 })
        iterator() -- one step, then the walk is dropped with 7 requests in flight
        iterator = nil -- luacheck: ignore 311
        local id = assert(client:submit(JOB, 60 + round % 20))
        local got = drain(client, 50)
        for _, entry in ipairs(got) do
          if entry.id ~= id then foreign = foreign + 1 end
        end
        if #got ~= 1 then extra = extra + 1 end
      end
      collectgarbage("setpause", pause)
      collectgarbage("setstepmul", stepmul)
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, foreign)
      assert.are.equal(0, extra)
      assert.are.equal(0, client:pending())
      assert.are.equal(0, client:pending("held"))
      client:close()
    end)
  end)

  describe("a blocking wait", function()
    it("#timing sleeps while other results wait for their owner", function()
      local client = clients.aksk(emu)
      assert(client:submit(JOB, 1)) -- done soon, and never polled
      emu:faults{ { action = "delay", seconds = 2, build_no = 2 } }
      local cpu = os.clock()
      assert.are.equal(2, assert(client:record_info(JOB, 2)).buildNo)
      cpu = os.clock() - cpu
      -- Spinning took the whole wait (2 s) in CPU; sleeping takes milliseconds. Half is far from both.
      assert.is_true(cpu < 1, ("record_info used %.2f s of CPU during a 2 s wait"):format(cpu))
      assert.are.equal(1, #drain(client))
      client:close()
    end)

    it("#timing sleeps inside a walk's body too", function()
      local client = clients.aksk(emu)
      emu:faults{ { action = "delay", seconds = 2, build_no = 100 } }
      local cpu, walked = nil, 0
      for n in assert(client:records(JOB, { from = 1, to = 6, concurrency = 4 })) do
        walked = walked + 1
        if n == 1 then
          cpu = os.clock()
          assert(client:record_info(JOB, 100))
          cpu = os.clock() - cpu
        end
      end
      assert.are.equal(6, walked)
      assert.is_true(cpu < 1, ("record_info used %.2f s of CPU during a 2 s wait"):format(cpu))
      client:close()
    end)
  end)

  describe("close()", function()
    it("from on_event while poll() delivers takes effect when poll returns", function()
      local client
      client = clients.aksk(emu, { on_event = function() client:close() end })
      for n = 1, 4 do assert(client:submit(JOB, n)) end
      local results = client:poll()
      assert.is_true(#results >= 1)
      assert.are.equal("codeartsbuild.client{closed}", tostring(client):match("^[^:]+"))
      assert.has_error(function() client:poll() end, "attempt to use a closed codeartsbuild client")
      assert.has_error(function() client:pending() end, "attempt to use a closed codeartsbuild client")
      client:close() -- twice is fine
    end)

    it("from on_event during record_info returns that record, then the client is closed", function()
      local client
      client = clients.aksk(emu, { on_event = function() client:close() end })
      assert.are.equal(7, assert(client:record_info(JOB, 7)).buildNo)
      assert.has_error(function() client:record_info(JOB, 8) end, "attempt to use a closed codeartsbuild client")
    end)

    it("from on_event inside a walk ends the walk with a clear error", function()
      local client
      client = clients.aksk(emu, { on_event = function(e) if e.build_no == 3 then client:close() end end })
      local seen = {}
      local ok, message = pcall(function()
        for n in assert(client:records(JOB, { from = 1, to = 20, concurrency = 4 })) do seen[#seen + 1] = n end
      end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("closed", 1, true), tostring(message))
      assert.is_true(#seen >= 1)
    end)

    it("from a __gc that runs during poll()", function()
      local client, armed
      -- The garbage is made inside poll() (in its first event), so that no collection before
      -- poll() can run it, even under check-gc's aggressive collector.
      client = clients.aksk(emu, { on_event = function()
        if not armed then
          armed = true
          on_collect(function() client:close() end)
        end
        collectgarbage()
      end })
      for n = 1, 4 do assert(client:submit(JOB, n)) end
      client:poll()
      assert.has_error(function() client:poll() end, "attempt to use a closed codeartsbuild client")
    end)

    it("from a walk's body makes the walk's next step raise", function()
      local client = clients.aksk(emu)
      local ok, message = pcall(function()
        for n in assert(client:records(JOB, { from = 1, to = 20, concurrency = 4 })) do
          if n == 2 then client:close() end
        end
      end)
      assert.is_false(ok)
      assert.truthy(tostring(message):find("closed codeartsbuild client", 1, true), tostring(message))
    end)
  end)

  describe("after fork()", function()
    local fork, dir

    setup(function()
      dir = run.tmpdir()
      local pc = run.version == "luajit" and "luajit" or "lua" .. run.version
      local out, status = run.capture(("cc -shared -fPIC -O1 $(pkg-config --cflags %s) -o %s/fork.so "
        .. "spec/support/fork.c"):format(pc, run.quote(dir)))
      assert(status == 0, out)
      package.cpath = dir .. "/?.so;" .. package.cpath
      fork = require "fork"
    end)

    teardown(function()
      os.execute("rm -rf " .. run.quote(dir))
    end)

    --- Reads builds from..to and counts the records that are not the build asked for, or missing.
    local function wrong_records(client, from, to)
      local wrong = 0
      for n = from, to do
        local rec = client:record_info(JOB, n)
        if not rec or rec.buildNo ~= n then wrong = wrong + 1 end
      end
      return wrong
    end

    local function both_sides(client)
      assert(client:record_info(JOB, 1)) -- a connection kept alive from before the fork
      local pid = fork.fork()
      if pid == 0 then
        local ok, wrong = pcall(wrong_records, client, 101, 400)
        fork.exit(ok and math.min(wrong, 100) or 101)
      end
      local wrong = wrong_records(client, 501, 800)
      local child = fork.wait(pid)
      assert.are.equal(0, wrong, "wrong records in the parent")
      assert.are.equal(0, child, "the child's exit status: 101 for an error, else its wrong records")
      assert.are.equal(7, assert(client:record_info(JOB, 7)).buildNo)
    end

    it("leaves the parent's connections to it, over HTTP", function()
      local client = clients.token(emu)
      both_sides(client)
      client:close()
    end)

    it("leaves the parent's connections to it, over TLS", function()
      local tls = emulator.start{ tls = true }
      local client = clients.token(tls)
      both_sides(client)
      client:close()
      tls:stop()
    end)
  end)

  describe("credentials", function()
    local function iam_client(extra)
      local options = { endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4", retries = 0,
        iam = { user = emu.iam_user, password = emu.iam_password, domain = emu.iam_domain } }
      for k, v in pairs(extra or {}) do options[k] = v end
      return assert(cb.new(options))
    end

    it("an expired IAM token is renewed by one sign-in for 40 refused requests", function()
      local client = iam_client{ concurrency = 40 }
      assert(client:record_info(JOB, 1))
      emu:expire_tokens()
      emu:reset()
      local records = assert(client:fetch(JOB, { from = 1, to = 40 }, { concurrency = 40 }))
      assert.are.equal(40, #records)
      assert.are.equal(1, emu:stats().by_path_kind.iam)
      client:close()
    end)

    it("a wrong password costs one sign-in for a whole walk, then the client waits", function()
      local client = iam_client{ iam = { user = emu.iam_user, password = "wrong", domain = emu.iam_domain } }
      local failed = 0
      for n, rec, err in assert(client:records(JOB, { from = 1, to = 50, skip_missing = false })) do
        assert.is_nil(rec, n)
        assert.are.equal("auth", err.kind)
        failed = failed + 1
      end
      assert.are.equal(50, failed)
      assert.are.equal(1, emu:stats().by_path_kind.iam)
      local _, message, err = client:record_info(JOB, 1)
      assert.are.equal("auth", err.kind)
      assert.are.equal(0, err.attempts)
      assert.truthy(message:find("not sent", 1, true), message)
      assert.truthy(message:find("IAM sign-in failed", 1, true), message)
      assert.are.equal(1, emu:stats().by_path_kind.iam)
      client:close()
    end)

    it("a failed project lookup is made once for a whole walk", function()
      local client = assert(cb.new{ endpoint = emu.url, iam_endpoint = emu.url, region = "cn-north-4",
        ak = emu.ak, sk = emu.sk, retries = 0 })
      emu:faults{ { action = "status", status = 503, path_contains = "/v3/projects" } }
      local failed = 0
      for _, rec, err in assert(client:records(JOB, { from = 1, to = 20, skip_missing = false })) do
        assert.is_nil(rec)
        assert.are.equal("http", err.kind) -- IAM's 503, not a word about the credentials
        assert.are.equal(503, err.status)
        failed = failed + 1
      end
      assert.are.equal(20, failed)
      local stats = emu:stats()
      assert.are.equal(1, stats.by_path_kind.iam)
      assert.are.equal(1, stats.requests)
      client:close()
    end)

    it("a refused signature costs one request for a whole walk (the gateway locks an AK after 5)", function()
      local client = clients.aksk(emu, { sk = "wrongSKx9Lq2Vb7Nc4Mz8Kd1Jf6Hg3Ps5Rt0Wy2", retries = 0 })
      local failed = 0
      for _, rec, err in assert(client:records(JOB, { from = 1, to = 30, concurrency = 8, skip_missing = false })) do
        assert.is_nil(rec)
        assert.are.equal("auth", err.kind)
        failed = failed + 1
      end
      assert.are.equal(30, failed)
      assert.are.equal(1, emu:stats().requests)
      client:close()
    end)

    it("a sign-in does not block: submit returns at once and take() finds the record", function()
      local client = iam_client()
      emu:faults{ { action = "delay", seconds = 0.5, path_contains = "/v3/auth/tokens" } }
      local id = assert(client:submit(JOB, 5, { hold = true }))
      assert.is_nil(client:take(id, 0))
      assert.are.equal(5, client:take(id).record.buildNo)
      assert.are.equal(1, emu:stats().by_path_kind.iam)
      client:close()
    end)
  end)

  describe("numbers from Lua", function()
    it("are checked before any conversion", function()
      local client = clients.aksk(emu)
      assert.has_error(function() client:poll(0 / 0) end)
      assert.has_error(function() client:poll(-5) end)
      assert.are.same({}, client:poll(math.huge)) -- nothing pending: at once
      local _, _, err = cb.new{ endpoint = emu.url, token = "t", rate = 0 / 0 }
      assert.are.equal("invalid", err.kind)
      _, _, err = cb.new{ endpoint = emu.url, token = "t", timeout = 0 / 0 }
      assert.are.equal("invalid", err.kind)
      _, _, err = client:record_info(JOB, 0 / 0)
      assert.are.equal("invalid", err.kind)
      client:close()
    end)
  end)

  describe("what is retried", function()
    -- err.retryable says what the engine does: with one retry allowed, a retryable failure was
    -- tried twice, any other once.
    local cases = {
      { action = "status", status = 500 }, { action = "status", status = 503 }, { action = "status", status = 429 },
      { action = "status", status = 400 }, { action = "status", status = 404 }, { action = "status", status = 403 },
      { action = "reset" }, { action = "truncate" }, { action = "malformed" }, { action = "api_fail" },
    }
    for _, case in ipairs(cases) do
      it(("is what err.retryable says, for %s %s"):format(case.action, tostring(case.status or "")), function()
        -- api pinned: with "auto", the emulator's 404 ("no such API") would move the client on.
        local client = clients.aksk(emu, { retries = 1, backoff = 0.01, max_backoff = 0.01, api = "v1" })
        local rule = { action = case.action, status = case.status, build_no = 70 }
        emu:faults{ rule }
        local _, _, err = client:record_info(JOB, 70)
        assert.is_not_nil(err)
        assert.are.equal(err.retryable and 2 or 1, err.attempts, err.message)
        client:close()
      end)
    end
  end)
end)
