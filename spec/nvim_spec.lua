-- The Neovim adapter and plugin in a real headless Neovim (Debian's), against the emulator.
local emulator = require "spec.support.emulator"
local nvim = require "spec.support.nvim"

local JOB = emulator.job_ids.reference
local NO_STATUS = emulator.job_ids.no_status

describe("in Neovim #once", function()
  local emu, env

  setup(function()
    nvim.build()
    emu = emulator.start{}
    env = emulator.client_env(emu)
  end)

  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(code) return nvim.run(code, env) end

  it("loads the module built for it, with lua-cjson when it is there", function()
    local out = run([[
      local core = require("codeartsbuild.core")
      OUT.json = core.json
      OUT.version = core.version
    ]])
    assert.are.equal("cjson", out.json)
    assert.truthy(out.version:match("^%d+%.%d+%.%d+$"))
  end)

  it("falls back to vim.json without lua-cjson", function()
    local out = run(([[
      package.cpath = ""   -- no lua-cjson; the plugin's core.so is found through the runtimepath
      local core = require("codeartsbuild.core")
      OUT.json = core.json
      local client = assert(core.new())
      local rec = assert(client:record_info(%q, 61))
      OUT.build_no, OUT.tag = rec.buildNo, rec.tag
    ]]):format(JOB))
    assert.are.equal("vim.json", out.json)
    assert.are.equal(61, out.build_no)
    assert.is_nil(out.tag) -- a JSON null is absent with vim.json too
  end)

  it("delivers record_info through a callback on the main loop", function()
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      cbn.record_info(%q, 61, function(rec, message, err)
        OUT.line, OUT.message = tostring(rec), message
        OUT.fast = vim.in_fast_event()
      end)
      OUT.waited = vim.wait(20000, function() return OUT.line ~= nil end, 10)
      OUT.busy_after = cbn.busy()
    ]]):format(JOB))
    assert.is_true(out.waited)
    assert.truthy(out.line:match("^#61 %u+ "), out.line)
    assert.is_false(out.fast)
    assert.is_false(out.busy_after) -- the poll timer stopped once idle
  end)

  it("never blocks the editor: a 10 ms timer keeps firing while 200 slow requests are in flight", function()
    emu:faults{ { action = "delay", seconds = 1, path_contains = "record-info" } }
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      local done, ticks_while_busy = 0, 0
      local timer = vim.loop.new_timer()
      timer:start(10, 10, function() if cbn.busy() then ticks_while_busy = ticks_while_busy + 1 end end)
      for n = 1, 200 do
        cbn.record_info(%q, n, function(rec) if rec then done = done + 1 end end)
      end
      OUT.submitted_busy = cbn.busy()
      OUT.waited = vim.wait(60000, function() return done == 200 end, 10)
      timer:stop()
      OUT.done, OUT.ticks = done, ticks_while_busy
    ]]):format(JOB))
    assert.is_true(out.submitted_busy)
    assert.is_true(out.waited)
    assert.are.equal(200, out.done)
    -- Each request takes a second and at most 64 run at once, so the batch lasts seconds: a
    -- blocking poll would have let the timer fire hardly at all in that time, a non-blocking one
    -- lets it fire hundreds of times. 50 is far from both.
    assert.is_true(out.ticks > 50, "timer ticks while busy: " .. tostring(out.ticks))
    assert.are.equal(200, emu:stats().requests)
  end)

  it("never blocks the editor while a project id is looked up (3 s), and makes the lookup once", function()
    emu:faults{ { action = "delay", seconds = 3, path_contains = "/v3/projects", times = 1 } }
    local lookup_env = { CODEARTSBUILD_ENDPOINT = emu.url, CODEARTSBUILD_REGION = "cn-north-4",
      CODEARTSBUILD_IAM_ENDPOINT = emu.url, HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk }
    local out = nvim.run(([[
      local cbn = require("codeartsbuild.nvim")
      local done, ticks = 0, 0
      local timer = vim.loop.new_timer()
      timer:start(10, 10, function() if cbn.busy() then ticks = ticks + 1 end end)
      for n = 61, 63 do cbn.record_info(%q, n, function(rec, message) done = done + 1; OUT.message = message end) end
      OUT.waited = vim.wait(30000, function() return done == 3 end, 10)
      timer:stop()
      OUT.ticks, OUT.project_id = ticks, cbn.client():info().project_id
    ]]):format(JOB), lookup_env)
    assert.is_true(out.waited, tostring(out.message))
    assert.is_nil(out.message)
    assert.are.equal(emu.project_id, out.project_id)
    -- 3 s of lookup: a blocking lookup lets the timer fire hardly at all, a non-blocking one ~300 times.
    assert.is_true(out.ticks > 50, "timer ticks while busy: " .. tostring(out.ticks))
    assert.are.equal(1, emu:stats().by_path_kind.iam)
  end)

  it("survives a client closed from inside the adapter's tick (on_event) and from a callback", function()
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      cbn.setup{ endpoint = os.getenv("CODEARTSBUILD_ENDPOINT"), on_event = function()
        cbn.client():close()
      end }
      local results = {}
      for n = 61, 64 do
        cbn.record_info(%q, n, function(rec, message) results[#results + 1] = rec and "record" or message end)
      end
      OUT.waited = vim.wait(20000, function() return #results == 4 end, 10)
      OUT.results = results
      OUT.busy = cbn.busy()
      -- A callback on the main loop closes the client too; a new setup gives a fresh one.
      cbn.setup(nil)
      cbn.record_info(%q, 65, function(rec) cbn.client():close(); OUT.last = rec and rec.buildNo end)
      OUT.waited_last = vim.wait(20000, function() return OUT.last ~= nil end, 10)
    ]]):format(JOB, JOB))
    assert.is_true(out.waited)
    assert.is_false(out.busy)
    local records, closed = 0, 0
    for _, result in ipairs(out.results) do
      if result == "record" then records = records + 1 end
      if result:find("closed", 1, true) then closed = closed + 1 end
    end
    assert.is_true(records >= 1)
    assert.are.equal(4, records + closed, table.concat(out.results, " | "))
    assert.is_true(out.waited_last)
    assert.are.equal(65, out.last)
  end)

  it("walks records in build order and says when it is done", function()
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      local seen = {}
      cbn.records(%q, { from = 11, to = 40, concurrency = 8 }, function(n, rec, err)
        seen[#seen + 1] = rec and rec.buildNo or -n
      end, function(count) OUT.count = count end)
      OUT.waited = vim.wait(30000, function() return OUT.count ~= nil end, 10)
      OUT.seen = seen
    ]]):format(JOB))
    assert.is_true(out.waited)
    assert.are.equal(30, out.count)
    for i = 1, 30 do assert.are.equal(10 + i, out.seen[i]) end
    assert.is_true(emu:stats().peak_concurrency <= 8)
  end)

  it("finds the latest build by running-status, and by probing when that API is missing", function()
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      cbn.latest(%q, function(n, message) OUT.latest, OUT.message = n, message end)
      cbn.latest(%q, function(n, message) OUT.probed, OUT.probe_message = n, message end)
      OUT.waited = vim.wait(30000, function() return OUT.latest ~= nil and OUT.probed ~= nil end, 10)
    ]]):format(JOB, NO_STATUS))
    assert.is_true(out.waited, tostring(out.message) .. " / " .. tostring(out.probe_message))
    assert.are.equal(1200, out.latest)
    assert.are.equal(500, out.probed)
  end)

  it(":CodeArtsBuild record opens a scratch buffer with the record, and reuses it the next time", function()
    local out = run(([[
      local function wait_for(name)
        return vim.wait(20000, function() return vim.api.nvim_buf_get_name(0) == name end, 10)
      end
      local errors = {}
      vim.notify = function(message) errors[#errors + 1] = message end
      vim.cmd("CodeArtsBuild record %s 61")
      OUT.waited = wait_for("codeartsbuild://%s/61")
      OUT.name = vim.api.nvim_buf_get_name(0)
      OUT.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      OUT.modifiable = vim.api.nvim_buf_get_option(0, "modifiable")
      local first = vim.api.nvim_get_current_buf()
      -- Again, from another window: the same buffer, refreshed, shown where it is; no E95.
      vim.cmd("wincmd w")
      vim.cmd("CodeArtsBuild record %s 61")
      vim.wait(300, function() return false end, 10) -- (the answer comes in the meantime)
      OUT.again = vim.wait(20000, function() return vim.api.nvim_get_current_buf() == first end, 10)
      OUT.windows = #vim.api.nvim_list_wins()
      OUT.same = #vim.tbl_filter(function(b) return vim.api.nvim_buf_get_name(b) == OUT.name end,
        vim.api.nvim_list_bufs())
      -- r refreshes, q closes.
      vim.api.nvim_feedkeys("r", "x", false)
      vim.wait(300, function() return false end, 10)
      OUT.after_r = vim.api.nvim_get_current_buf() == first
      vim.api.nvim_feedkeys("q", "x", false)
      OUT.closed = not vim.api.nvim_buf_is_valid(first)
      OUT.errors = errors
    ]]):format(JOB, JOB, JOB))
    assert.is_true(out.waited)
    assert.are.equal("codeartsbuild://" .. JOB .. "/61", out.name)
    assert.truthy(out.lines[1]:find("r refresh  q close", 1, true), out.lines[1])
    assert.truthy(out.lines[2]:match("^buildNo%s+61$"), out.lines[2])
    assert.truthy(out.lines[3]:match("^status%s+%u+$"), out.lines[3])
    assert.is_false(out.modifiable)
    assert.is_true(out.again)
    assert.are.equal(2, out.windows)
    assert.are.equal(1, out.same)
    assert.is_true(out.after_r)
    assert.is_true(out.closed)
    assert.are.same({}, out.errors)
  end)

  it(":CodeArtsBuild list fills an aligned table in as builds arrive, newest first; <CR> opens one", function()
    local out = run(([[
      vim.cmd("CodeArtsBuild list %s 5")
      local buf = vim.api.nvim_get_current_buf()
      OUT.first = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      local function done()
        local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
        return #lines == 7 and not lines[#lines]:find("^%%(") and lines
      end
      OUT.waited = vim.wait(30000, function() return done() ~= false end, 10)
      OUT.lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
      -- The same command again: the same buffer, read again.
      vim.cmd("CodeArtsBuild list %s 5")
      OUT.reused = vim.api.nvim_get_current_buf() == buf
      OUT.again = vim.wait(30000, function() return done() ~= false end, 10)
      -- <CR> on the row of build 1199 opens its record.
      vim.api.nvim_win_set_cursor(0, { 4, 0 })
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<CR>", true, false, true), "x", false)
      OUT.opened = vim.wait(20000, function()
        return vim.api.nvim_buf_get_name(0) == "codeartsbuild://%s/1199"
      end, 10)
    ]]):format(JOB, JOB, JOB))
    assert.is_true(out.waited)
    assert.truthy(out.first[1]:find(JOB, 1, true))
    assert.truthy(out.first[1]:find("<CR> open  L log  r refresh  q close", 1, true), out.first[1])
    assert.truthy(out.lines[2]:find("^BUILD  STATUS +BRANCH +COMMIT +TRIGGER +DURATION  START$"), out.lines[2])
    local column = out.lines[2]:find("COMMIT", 1, true)
    for i, n in ipairs{ 1200, 1199, 1198, 1197, 1196 } do
      local line = out.lines[i + 2]
      assert.truthy(line:match("^ " .. n .. "  %u+ "), line)
      assert.truthy(line:sub(column, column + 6):match("^%x%x%x%x%x%x%x$"), line) -- aligned under COMMIT
    end
    assert.is_true(out.reused)
    assert.is_true(out.again)
    assert.is_true(out.opened)
  end)

  it("says that a walk was cancelled: by a refresh, or by closing its buffer", function()
    emu:faults{ { action = "delay", seconds = 1, path_contains = "record-info" } }
    local out = run(([[
      local notes = {}
      vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end
      vim.cmd("CodeArtsBuild list %s 40")
      local buf = vim.api.nvim_get_current_buf()
      vim.wait(400, function() return false end, 10)
      OUT.reading = vim.api.nvim_buf_get_lines(buf, -2, -1, false)[1]
      vim.api.nvim_buf_delete(buf, { force = true })
      OUT.said = vim.wait(30000, function() return #notes > 0 end, 10)
      OUT.notes = notes
      OUT.info = vim.log.levels.INFO
      -- The adapter's own call says so too.
      local cbn = require("codeartsbuild.nvim")
      local walk = cbn.records(%q, { from = 1, to = 40 }, function() end,
        function(count, how) OUT.count, OUT.how = count, how end)
      walk.cancel()
      OUT.ended = vim.wait(30000, function() return OUT.how ~= nil end, 10)
    ]]):format(JOB, JOB))
    emu:clear_faults()
    assert.are.equal("(reading...)", out.reading)
    assert.is_true(out.said)
    assert.truthy(out.notes[1].message:find("the list of " .. JOB .. " was cancelled after %d+ builds: its buffer was "
      .. "closed"), out.notes[1].message)
    assert.are.equal(out.info, out.notes[1].level)
    assert.is_true(out.ended)
    assert.are.equal("cancelled", out.how)
  end)

  it("shows errors as notifications, not tracebacks", function()
    local out = run(([[
      local notes = {}
      vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end
      vim.cmd("CodeArtsBuild record %s 99999")
      vim.cmd("CodeArtsBuild record not-a-job 1")
      vim.cmd("CodeArtsBuild frobnicate")
      vim.cmd("CodeArtsBuild list %s 0")
      OUT.waited = vim.wait(20000, function() return #notes >= 4 end, 10)
      OUT.notes = notes
      OUT.error_level = vim.log.levels.ERROR
    ]]):format(JOB, JOB))
    assert.is_true(out.waited)
    local all = {}
    for _, note in ipairs(out.notes) do
      assert.are.equal(out.error_level, note.level)
      assert.is_nil(note.message:find("traceback", 1, true), note.message)
      all[#all + 1] = note.message
    end
    local text = table.concat(all, "\n")
    assert.truthy(text:find("build 99999 of job " .. JOB .. " not found (HTTP 403", 1, true), text)
    assert.truthy(text:find("invalid job_id", 1, true), text)
    assert.truthy(text:find("usage: :CodeArtsBuild", 1, true), text)
  end)

  it("says how to build the module when it does not load, as a notification", function()
    local out = run([[
      local notes = {}
      vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end
      package.loaded["codeartsbuild.core"], package.loaded["codeartsbuild.nvim"], package.loaded.codeartsbuild = nil
      package.preload["codeartsbuild.core"] = function() error("module 'codeartsbuild.core' not found") end
      local ok, err = pcall(vim.cmd, "CodeArtsBuild record cb5fa20de5fd4cf8be681d4bd6fdd2f6 61")
      OUT.ok, OUT.err = ok, err and tostring(err)
      OUT.completion = vim.fn.getcompletion("CodeArtsBuild ", "cmdline")
      OUT.notes = notes
      OUT.error_level = vim.log.levels.ERROR
    ]])
    assert.is_true(out.ok, out.err)
    assert.are.equal(1, #out.notes)
    assert.are.equal(out.error_level, out.notes[1].level)
    assert.truthy(out.notes[1].message:find("the module does not load", 1, true), out.notes[1].message)
    assert.truthy(out.notes[1].message:find("Run `make nvim` in the plugin's folder", 1, true), out.notes[1].message)
    assert.is_nil(out.notes[1].message:find("traceback", 1, true))
    assert.are.same({}, out.completion)
  end)

  it(":checkhealth codeartsbuild: the module, every variable it reads, credentials, endpoint, one request", function()
    local out = run([[
      vim.cmd("checkhealth codeartsbuild")
      OUT.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      OUT.environment = require("codeartsbuild").environment
    ]])
    assert.are.equal(1, emu:stats().requests)
    local text = table.concat(out.lines, "\n")
    assert.is_true(#out.environment >= 20)
    for _, variable in ipairs(out.environment) do
      local set = env[variable.name] ~= nil or variable.name == "HOME" -- spec/support/nvim.lua sets HOME
      assert.truthy(text:find(variable.name .. (set and " is set" or " is not set"), 1, true), variable.name)
    end
    assert.truthy(text:find("HUAWEICLOUD_SDK_SK is set", 1, true), text)
    assert.truthy(text:find("CODEARTSBUILD_TOKEN is not set", 1, true), text)
    assert.truthy(text:find("one request: the service answered HTTP 422 for a job that does not exist: the "
      .. "credentials are accepted", 1, true), text)
    assert.is_nil(text:find(emu.ak, 1, true))
    assert.truthy(text:find("codeartsbuild.core %d+%.%d+%.%d+ is loaded"), text)
    assert.truthy(text:find("JSON engine: cjson", 1, true), text)
    assert.truthy(text:find("credentials: AK/SK, from HUAWEICLOUD_SDK_AK/SK", 1, true), text)
    assert.truthy(text:find("endpoint: " .. emu.url, 1, true), text)
    assert.is_nil(text:find(emu.sk, 1, true))
    assert.is_nil(text:find("ERROR", 1, true), text)
  end)
end)
