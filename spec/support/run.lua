-- Running things in child processes from the specs: shell quoting, capturing output and exit
-- status, and a fresh Lua interpreter (of the version running the specs) with a clean environment.
local M = {}

M.version = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
M.lua = M.version == "luajit" and "luajit" or "lua" .. M.version

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; returns its output (stdout and stderr) and exit status.
function M.capture(command)
  local p = assert(io.popen("(" .. command .. ") 2>&1; echo \"__status=$?\""))
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  return (out:gsub("__status=%d+%s*$", "")), status
end

local function preload()
  local value = os.getenv("CODEARTSBUILD_PRELOAD")
  return value ~= "" and value or nil
end

--- The folder of the module under test: build/<version>, or CODEARTSBUILD_BUILD_DIR when set
-- (relative to root unless absolute).
local function module_dir(root)
  local dir = os.getenv("CODEARTSBUILD_BUILD_DIR")
  if not dir or dir == "" then dir = "build/" .. M.version end
  if dir:sub(1, 1) == "/" or not root then return dir end
  return root .. "/" .. dir
end

--- The folder holding a codeartsbuild/core.so that a child Lua (started as it is) can load:
-- the module under test, except under make check-asan, where that one needs the sanitizer
-- runtime preloaded (CODEARTSBUILD_PRELOAD); then the plain build/<version>. run.lua_code's
-- children get the instrumented module and the preload.
function M.build_dir(root)
  if preload() then
    return (root and root .. "/" or "") .. "build/" .. M.version
  end
  return module_dir(root)
end

--- The current directory (the checkout's root while busted runs).
function M.cwd()
  local p = assert(io.popen("pwd"))
  local dir = p:read("*l")
  p:close()
  return dir
end

--- Runs Lua code in a new interpreter whose environment holds only `env` (plus PATH, a HOME
-- that is an empty temporary folder unless env.HOME is given, and paths to this checkout).
-- Returns output and exit status.
function M.lua_code(code, env)
  local root = M.cwd()
  local vars = {
    PATH = os.getenv("PATH"),
    LUA_PATH = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;;",
    LUA_CPATH = module_dir(root) .. "/?.so;;",
  }
  -- Under make check-asan the child loads the same instrumented module, so it needs the
  -- sanitizer runtime preloaded too (and the same options).
  if preload() then
    vars.LD_PRELOAD, vars.CODEARTSBUILD_PRELOAD = preload(), preload()
    for _, name in ipairs({ "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" }) do
      vars[name] = os.getenv(name)
    end
  end
  local home
  if not (env and env.HOME) then
    home = os.tmpname()
    os.remove(home)
    assert(os.execute("mkdir -p " .. M.quote(home)))
    vars.HOME = home
  end
  for k, v in pairs(env or {}) do vars[k] = v end
  local words = { "env", "-i" }
  for k, v in pairs(vars) do words[#words + 1] = M.quote(k .. "=" .. v) end
  words[#words + 1] = M.lua
  words[#words + 1] = "-e"
  words[#words + 1] = M.quote(code)
  local out, status = M.capture(table.concat(words, " "))
  if home then os.execute("rm -rf " .. M.quote(home)) end
  return out, status
end

function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. M.quote(dir)))
  return dir
end

--- A file's whole content, or nil when it cannot be read.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

return M
