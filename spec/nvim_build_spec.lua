-- The Neovim adapter's steps, follow and wait, and :CodeArtsBuild steps|log|wait (issue 14), in a
-- real headless Neovim against the emulator.
local emulator = require "spec.support.emulator"
local nvim = require "spec.support.nvim"

local LOGS = emulator.job_ids.logs
local REFERENCE = emulator.job_ids.reference

describe("in Neovim, after the record #once", function()
  local emu, env

  setup(function()
    nvim.build()
    emu = emulator.start{}
    env = emulator.client_env(emu)
  end)

  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  local function run(code) return nvim.run(code, env) end

  it(":CodeArtsBuild log follows a running build into a buffer while a timer keeps ticking", function()
    -- 3.6 s: long enough to be still running when a slow-starting Neovim (a loaded machine) begins
    local n = emu:start_build{ steps = 3, step_seconds = 1.2, lines_per_step = 6 }
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      local notes = {}
      vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end
      local ticks, sizes = 0, {}
      local timer = vim.loop.new_timer()
      timer:start(10, 10, vim.schedule_wrap(function()
        if cbn.busy() then
          ticks = ticks + 1
          local buf = vim.fn.bufnr("codeartsbuild://%s/%d/log")
          if buf ~= -1 then sizes[#sizes + 1] = vim.api.nvim_buf_line_count(buf) end
        end
      end))
      vim.cmd("CodeArtsBuild log %s %d")
      OUT.name = vim.api.nvim_buf_get_name(0)
      OUT.waited = vim.wait(30000, function() return #notes > 0 end, 10)
      timer:stop()
      OUT.notes, OUT.ticks = notes, ticks
      OUT.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      OUT.grew = #sizes > 0 and sizes[1] < sizes[#sizes]
      OUT.var = vim.b.codeartsbuild_log
      OUT.busy = cbn.busy()
    ]]):format(LOGS, n, LOGS, n))
    assert.is_true(out.waited)
    assert.are.equal("codeartsbuild://" .. LOGS .. "/" .. n .. "/log", out.name)
    assert.are.equal(1, #out.notes)
    assert.truthy(out.notes[1].message:find("ended SUCCESS", 1, true), out.notes[1].message)
    -- the buffer is the log: its lines, and the empty line after the last newline
    assert.are.equal(emu:log(LOGS, n), table.concat(out.lines, "\n"))
    -- the editor was free the whole time: a blocking follow would have let the timer tick a few
    -- times at most in the seconds the build ran
    assert.is_true(out.ticks > 50, "timer ticks while following: " .. tostring(out.ticks))
    assert.is_true(out.grew)
    assert.is_true(out.var.done)
    assert.are.equal("SUCCESS", out.var.status)
    assert.is_false(out.busy)
  end)

  it(":CodeArtsBuild wait notifies the status; :CodeArtsBuild steps opens the steps", function()
    local n = emu:start_build{ steps = 2, step_seconds = 0.3, result = "FAILED" }
    local steps = assert(emu:steps(LOGS, 4))
    local out = run(([[
      local notes = {}
      vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end
      vim.cmd("CodeArtsBuild wait %s")
      OUT.waited = vim.wait(30000, function() return #notes > 0 end, 10)
      OUT.notes, OUT.warn = notes, vim.log.levels.WARN
      vim.cmd("CodeArtsBuild steps %s 4")
      OUT.opened = vim.wait(20000, function() return vim.api.nvim_buf_get_name(0):find("/steps$") ~= nil end, 10)
      OUT.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
      OUT.notes2 = {}
      vim.notify = function(message) OUT.notes2[#OUT.notes2 + 1] = message end
      vim.cmd("CodeArtsBuild wait %s 1 2")
      vim.cmd("CodeArtsBuild log %s")
    ]]):format(LOGS, LOGS, LOGS, LOGS))
    assert.is_true(out.waited)
    assert.are.equal(("codeartsbuild: %s #%d FAILED"):format(LOGS, n), out.notes[1].message)
    assert.are.equal(out.warn, out.notes[1].level)
    assert.is_true(out.opened)
    assert.truthy(out.lines[1]:find("4 steps", 1, true), out.lines[1])
    assert.truthy(out.lines[2]:match("^ 1  FAILED .*" .. steps[1].name .. "$"), out.lines[2])
    assert.are.equal(2, #out.notes2)
    for _, note in ipairs(out.notes2) do assert.truthy(note:find("usage: :CodeArtsBuild", 1, true), note) end
  end)

  it("L in a list buffer opens the log of the build under the cursor", function()
    local out = run(([[
      vim.cmd("CodeArtsBuild list %s 3")
      local list = vim.api.nvim_get_current_buf()
      local function row_of(n)
        for i, line in ipairs(vim.api.nvim_buf_get_lines(list, 0, -1, false)) do
          if line:match("^%%s*" .. n .. "%%s") then return i end
        end
      end
      OUT.listed = vim.wait(30000, function() return row_of(1198) ~= nil and row_of(1199) ~= nil end, 10)
      OUT.header = vim.api.nvim_buf_get_lines(list, 0, 1, false)[1]
      vim.api.nvim_win_set_cursor(0, { row_of(1199), 0 })
      OUT.line = vim.api.nvim_get_current_line()
      vim.cmd("normal L")
      OUT.name = vim.api.nvim_buf_get_name(0)
      OUT.filled = vim.wait(20000, function() return vim.api.nvim_buf_line_count(0) > 3 end, 10)
      OUT.first = vim.api.nvim_buf_get_lines(0, 0, 1, false)[1]
      vim.cmd("bwipeout")   -- closing the log buffer stops following the running build
      OUT.busy_after = vim.wait(5000, function() return not require("codeartsbuild.nvim").busy() end, 10)
    ]]):format(REFERENCE))
    assert.is_true(out.listed)
    assert.truthy(out.header:find("L log", 1, true), out.header)
    local n = tonumber(out.line:match("^%s*(%d+)%s"))
    assert.are.equal(1199, n)
    assert.are.equal("codeartsbuild://" .. REFERENCE .. "/1199/log", out.name)
    assert.is_true(out.filled)
    assert.truthy(out.first:find("#1199", 1, true), out.first)
    assert.is_true(out.busy_after)
  end)

  it("cbn.follow's cancel stops it: no callback and no request after it", function()
    local n = emu:start_build{ steps = 3, step_seconds = 2 }
    local out = run(([[
      local cbn = require("codeartsbuild.nvim")
      local pieces, done = 0, false
      local handle
      handle = cbn.follow(%q, %d, { interval = 0.1 }, function() pieces = pieces + 1; handle.cancel() end,
        function() done = true end)
      OUT.got = vim.wait(20000, function() return pieces > 0 end, 10)
      OUT.idle = vim.wait(5000, function() return not cbn.busy() end, 10)
      vim.wait(300)
      OUT.pieces, OUT.done = pieces, done
    ]]):format(LOGS, n))
    assert.is_true(out.got)
    assert.is_true(out.idle)
    assert.are.equal(1, out.pieces)
    assert.is_false(out.done)
  end)
end)
