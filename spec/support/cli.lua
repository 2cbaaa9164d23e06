-- Running bin/codeartsbuild as a user runs it, for the specs: a child process with a clean
-- environment (only what the spec gives, plus PATH, a HOME of its own and this checkout's module
-- paths), its stdout, stderr and exit status read separately; or in a real terminal (util-linux
-- `script` gives the child a pseudo-terminal).
local run = require "spec.support.run"

local M = {}

local ROOT = run.cwd()

--- The shell command that runs the tool with `args`, and `env` in its environment (a value of
-- false leaves that variable out).
function M.command(args, env, home)
  local vars = {
    PATH = os.getenv("PATH"), HOME = home,
    LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
    LUA_CPATH = run.build_dir(ROOT) .. "/?.so;;",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local words = { "env", "-i" }
  for k, v in pairs(vars) do
    if v ~= false then words[#words + 1] = run.quote(k .. "=" .. v) end
  end
  words[#words + 1] = run.lua
  words[#words + 1] = run.quote(ROOT .. "/bin/codeartsbuild")
  for _, arg in ipairs(args) do words[#words + 1] = run.quote(arg) end
  return table.concat(words, " ")
end

--- Runs the tool, stdin from /dev/null; returns stdout, stderr, exit status.
function M.run(args, env)
  local dir = run.tmpdir()
  local status = tonumber((run.capture(("%s >%s 2>%s </dev/null; echo \"rc=$?\""):format(
    M.command(args, env, dir), run.quote(dir .. "/out"), run.quote(dir .. "/err")))):match("rc=(%d+)"))
  local out, err = run.read(dir .. "/out") or "", run.read(dir .. "/err") or ""
  os.execute("rm -rf " .. run.quote(dir))
  return out, err, status
end

--- Runs the tool in a pseudo-terminal (stdout and stderr on it, unless `redirect` sends stdout to a
-- file); returns what the terminal showed (CR LF as LF), the file's content, and the exit status.
function M.in_terminal(args, env, redirect)
  local dir = run.tmpdir()
  local cmd = M.command(args, env, dir)
  if redirect then cmd = cmd .. " >" .. run.quote(dir .. "/stdout") end
  local shown = run.capture(("script -qec %s /dev/null </dev/null; echo \"rc=$?\""):format(
    run.quote(cmd .. "; echo \"cli-status=$?\"")))
  local status = tonumber(shown:match("cli%-status=(%d+)"))
  shown = shown:gsub("cli%-status=%d+%s*", ""):gsub("rc=%d+%s*$", ""):gsub("\r\n", "\n")
  local file = run.read(dir .. "/stdout") or ""
  os.execute("rm -rf " .. run.quote(dir))
  return shown, file, status
end

return M
