-- bin/codeartsbuild's steps, log and wait (issue 14), run as a user runs them (spec/support/cli.lua),
-- against the emulator; the progress line of wait in a real terminal.
local run = require "spec.support.run"
local tool = require "spec.support.cli"
local emulator = require "spec.support.emulator"
local cjson = require "cjson"

local LOGS = emulator.job_ids.logs
local REFERENCE = emulator.job_ids.reference
local cli = tool.run

--- Runs the tool in a pseudo-terminal, stdout to a file.
local function in_terminal(args, env) return tool.in_terminal(args, env, true) end

describe("codeartsbuild steps, log and wait", function()
  local emu, env, tmp

  setup(function()
    emu = emulator.start{ big_log_bytes = 2 * 1024 * 1024 }
    env = emulator.client_env(emu)
    tmp = run.tmpdir()
  end)

  teardown(function()
    if emu then emu:stop() end
    if tmp then os.execute("rm -rf " .. run.quote(tmp)) end
  end)

  before_each(function() emu:reset() end)

  it("steps prints one aligned line a step; --json an array", function()
    local out, err, status = cli({ "steps", LOGS, "4" }, env)
    assert.are.equal(0, status, err)
    local expected = assert(emu:steps(LOGS, 4))
    local lines = {}
    for line in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.are.equal(#expected, #lines)
    assert.truthy(lines[1]:match("^ 1  FAILED   +%S+  " .. expected[1].name .. "$"), lines[1])
    assert.truthy(lines[2]:match("^ 2  NOT_RUN +%-  " .. expected[2].name .. "$"), lines[2])
    out, err, status = cli({ "steps", LOGS, "4", "--json" }, env)
    assert.are.equal(0, status, err)
    local steps = cjson.decode(out)
    assert.are.equal(#expected, #steps)
    assert.are.equal("FAILED", steps[1].status)
    assert.are.equal(expected[1].build_time, steps[1].duration)
    assert.are.equal(expected[3].name, steps[3].name)
  end)

  it("log prints the log byte for byte, its last lines, or into a file", function()
    local out, err, status = cli({ "log", LOGS, "3" }, env)
    assert.are.equal(0, status, err)
    local big = emu:log(LOGS, 3)
    assert.is_true(out == big)
    out, err, status = cli({ "log", LOGS, "4", "--tail", "2" }, env)
    assert.are.equal(0, status, err)
    local whole = emu:log(LOGS, 4)
    assert.are.equal(whole:match("\n([^\n]*\n[^\n]*\n)$"), out)
    local path = tmp .. "/3.log"
    out, err, status = cli({ "log", LOGS, "3", "--output", path }, env)
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.are.equal(("codeartsbuild: %d bytes written to %s\n"):format(#big, path), err)
    assert.is_true(run.read(path) == big)
  end)

  it("log --follow prints a running build's log until the build has ended", function()
    local n = emu:start_build{ steps = 3, step_seconds = 0.5 }
    local out, err, status = cli({ "log", LOGS, tostring(n), "--follow", "--interval", "0.2" }, env)
    assert.are.equal(0, status, err)
    assert.is_true(emu:wait_build(LOGS, n, 1))
    assert.is_true(out == emu:log(LOGS, n))
  end)

  it("log fails with status 1 and one line; a wrong command line is status 2", function()
    local out, err, status = cli({ "log", LOGS, "99999" }, env)
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.truthy(err:match("^codeartsbuild: [^\n]+\n$"), err)
    local _
    _, err, status = cli({ "log", LOGS, "4", "--tail", "2", "--follow" }, env)
    assert.are.equal(2, status, err)
    _, err, status = cli({ "log", LOGS, "4", "--output", tmp .. "/no/such/dir/x" }, env)
    assert.are.equal(1, status)
    assert.truthy(err:find("cannot write", 1, true), err)
    assert.are.equal(0, emu:stats().by_path_kind["download-log"] or 0)
  end)

  it("wait exits 0 on SUCCESS, 1 on FAILED, 3 on a timeout, 2 on a wrong duration", function()
    local n = emu:start_build{ steps = 2, step_seconds = 0.3 }
    local out, err, status = cli({ "wait", LOGS, tostring(n), "--interval", "0.1" }, env)
    assert.are.equal(0, status, err)
    assert.truthy(out:match("^#" .. n .. " SUCCESS "), out)
    assert.are.equal("", err) -- no progress line on a pipe
    n = emu:start_build{ steps = 2, step_seconds = 0.3, result = "FAILED" }
    out, err, status = cli({ "wait", LOGS, "--interval", "0.1", "--json" }, env) -- the newest build
    assert.are.equal(1, status, err)
    local rec = cjson.decode(out)
    assert.are.equal(n, rec.buildNo)
    assert.are.equal("FAILED", rec.status)
    out, err, status = cli({ "wait", REFERENCE, "1200", "--timeout", "1s", "--interval", "0.2" }, env)
    assert.are.equal(3, status, err)
    assert.are.equal("", out)
    assert.truthy(err:find("still RUNNING after 1 s", 1, true), err)
    local _
    _, err, status = cli({ "wait", LOGS, "--timeout", "soon" }, env)
    assert.are.equal(2, status, err)
    assert.truthy(err:find("90s, 30m or 1h30m", 1, true), err)
    _, err, status = cli({ "wait", LOGS, "4", "--timeout", "0" }, env) -- looks once
    assert.are.equal(1, status, err)
  end)

  it("wait shows the status and the running step on a terminal, then clears the line", function()
    -- Which step the first look sees depends on how soon the child starts (slow on a loaded
    -- machine): any of them will do, as long as it is named right.
    local n = emu:start_build{ steps = 3, step_seconds = 1 }
    local shown, file, status = in_terminal({ "wait", LOGS, tostring(n), "--interval", "0.1" }, env)
    assert.are.equal(0, status, shown)
    assert.truthy(file:match("^#" .. n .. " SUCCESS "), file)
    local steps = assert(emu:steps(LOGS, n))
    local progress = 0
    for k, step in ipairs(steps) do
      if shown:find(("#%d RUNNING  step %d/3 %s"):format(n, k, step.name), 1, true) then progress = progress + 1 end
    end
    assert.is_true(progress >= 1, shown)
    assert.truthy(shown:find("\r\27[K", 1, true), shown)
  end)

  it("help lists the new commands", function()
    local out, _, status = cli({ "--help" }, env)
    assert.are.equal(0, status)
    for _, name in ipairs{ "steps JOB N", "log JOB N", "wait JOB [N]" } do
      assert.truthy(out:find("  " .. name, 1, true), name)
    end
    for _, name in ipairs{ "steps", "log", "wait" } do
      out, _, status = cli({ name, "--help" }, env)
      assert.are.equal(0, status)
      assert.truthy(out:find("usage: codeartsbuild " .. name, 1, true), out)
    end
  end)
end)
