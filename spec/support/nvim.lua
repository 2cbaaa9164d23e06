-- Running Lua inside a real headless Neovim for the specs: the checkout on the runtimepath (as a
-- plugin manager would put it), the plugin file sourced, the given code run, and what the code
-- stores in the global table `OUT` returned (encoded with vim.json inside, decoded with cjson here).
local cjson = require "cjson"
local run = require "spec.support.run"

local M = {}

local PRELUDE = [[
OUT = {}
local function finish()
  local f = assert(io.open(os.getenv("NVIM_SPEC_OUT"), "w"))
  f:write(vim.json.encode(OUT))
  f:close()
  vim.cmd("qa!")
end
-- Every test runs in protected mode: an error is a result, not a hung editor.
local ok, err = xpcall(function()
]]

local POSTLUDE = [[
end, debug.traceback)
if not ok then OUT.error = tostring(err) end
finish()
]]

--- Builds the module Neovim loads (make nvim: the 5.1 build at lua/codeartsbuild/core.so).
function M.build()
  local out, status = run.capture("make --no-print-directory nvim")
  assert(status == 0, out)
end

--- Runs `code` in `nvim --headless` with `env` (plus PATH and HOME); returns OUT and nvim's output.
-- An error raised by the code is raised here, with nvim's output.
function M.run(code, env)
  local dir = run.tmpdir()
  local script, out_file = dir .. "/spec.lua", dir .. "/out.json"
  run.write(script, PRELUDE .. code .. POSTLUDE)
  local words = { "env", "-i", "PATH=" .. run.quote(os.getenv("PATH")), "HOME=" .. run.quote(dir),
    "NVIM_SPEC_OUT=" .. run.quote(out_file) }
  for k, v in pairs(env or {}) do words[#words + 1] = run.quote(k .. "=" .. v) end
  local here = run.cwd()
  words[#words + 1] = ("timeout 120 nvim --headless -u NONE -i NONE --cmd %s --cmd %s -c %s"):format(
    run.quote("set rtp^=" .. here), run.quote("runtime plugin/codeartsbuild.lua"), run.quote("luafile " .. script))
  local output, status = run.capture(table.concat(words, " "))
  local f = io.open(out_file)
  local text = f and f:read("*a")
  if f then f:close() end
  os.execute("rm -rf " .. run.quote(dir))
  assert(text, ("nvim wrote no result (status %s):\n%s"):format(tostring(status), output))
  local out = cjson.decode(text)
  if out.error then error(("the code raised in Neovim: %s\n%s"):format(out.error, output), 2) end
  return out, output
end

return M
