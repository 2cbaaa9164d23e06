--- Start and stop the CodeArts Build API emulator (spec/support/emulator.py) from Lua.
--
-- For busted specs, examples, demos and benchmarks. Works on Lua 5.1-5.4 and LuaJIT; needs `python3`,
-- `curl` and (for TLS) `openssl` on PATH, and lua-cjson (or Neovim's vim.json) for the control calls.
--
--     local emulator = require "spec.support.emulator"
--     local emu = emulator.start{ spelling = "snake", tls = true }
--     ... emu.url, emu.ak, emu.sk, emu:stats(), emu:faults{ {action = "status", status = 500, times = 1} }
--     emu:stop()
--
-- The emulator is started with --parent-pid set to this Lua process, so it goes away with it even when
-- stop() is never reached. Secrets go to the emulator through its environment only, never an argv.
-- Credentials: opts.env.EMU_* first, then EMU_* variables of this process, then emulator.py's defaults;
-- emu.ak, emu.sk, emu.temp_ak, emu.temp_sk, emu.security_token, emu.token and emu.project_id hold them.
--
-- Quick reference for client specs (emulator.py's docstring has the details and the sources):
--
-- start{...} settings (also EMU_ERRORS=real etc. in the environment; emu:configure{} at run time;
-- emu:reset() restores the start values):
--   errors = "real" (default) | "legacy"       the error contract (SERVICE-CONTRACTS §8, §11)
--   missing_build = "403" (default) | "422" | "404" | "empty" | "absent"
--                                                real mode: a missing build where the live answer is unknown
--   retire_v3, retire_v4 = false (default) | true/"gateway" (404 APIG(W).0101) | "backend" (404 CB.00060214)
--   gzip = false (default) | true                downloads honour Accept-Encoding: gzip
--   running_has_more = true (default) | false    a running build's real-time log says more is coming
--   big_log_bytes = 50 MiB (default)             size of the big log (start only)
--
-- Control calls: emu:stats() (by_path_kind, by_route keyed by M.routes values), emu:reset(),
-- emu:reset_stats(), emu:faults{rules} / emu:clear_faults(), emu:settings(), emu:configure{...},
-- emu:start_build{job_id, steps, step_seconds, result, fail_step, lines_per_step} -> build_no, info,
-- emu:builds(), emu:clear_builds(), emu:wait_build(job_id, build_no[, timeout]), emu:steps(job_id, build_no),
-- emu:log(job_id, build_no[, "DEBUG"]), emu:expected(job_id, build_no), emu:jobs(), emu:expire_tokens(),
-- emu:memory(), emu:reset_peak_memory().
--
-- Fault rules ({action =, ...} matched by path_contains, job_id, build_no, api, kind; times, every):
--   status, delay, reset, truncate, cut, malformed, huge, deep, body, headers (as before),
--   stall{seconds}  the whole body announced, half of it sent, then nothing for that long, then closed, and
--   error{code = "CB.00060211" [, status = 400] [, encode_twice = true]}  a documented code in its shape and
--       status (status = 200: E5, an error body on HTTP 200; encode_twice: E6, JSON inside a JSON string)
--   api_fail{code, message [, envelope = "E3"|"E4"] [, error_as = "string"] [, encode_twice]}
--   result{value = {} | "text" | 1 | nil (no result)}   field{field = "result.last_build_no", json = "1e12"}
--
-- Jobs (M.job_ids): reference 1200 builds (the newest RUNNING for ever), second 1000, big 100000, gaps 1000
-- (every 7th deleted), no_status 500 (running-status unpublished), logs 5 builds with Chinese step names:
-- 3 SUCCESS with the big log (M.big_log), 4 FAILED, 5 SUCCESS; started builds default to logs (6, 7, ...).
local M = {}

M.python = "python3" -- looked up on PATH; see M.python_path()

M.job_ids = {
  reference = "cb5fa20de5fd4cf8be681d4bd6fdd2f6",
  second = "b3c3fbb0cc0a4b388cb500b807a42334",
  big = "0123456789abcdef0123456789abcdef",
  gaps = "aaaabbbbccccddddeeeeffff00001111",
  no_status = "f00df00df00df00df00df00df00df00d",
  logs = "5eed1065e1f04e0c9a7b3d2c1b0a9f8e",
}

--- The build whose log is big (50 MiB unless start{big_log_bytes =} says otherwise).
M.big_log = { job_id = M.job_ids.logs, build_no = 3, bytes = 50 * 1024 * 1024 }

--- The keys of stats().by_route (method and path template) for each route the emulator serves;
-- anything else counts under "other".
M.routes = {
  record_info_v3 = "GET /v3/jobs/{job_id}/{build_no}/record-info",
  record_info_v4 = "GET /v4/jobs/{job_id}/{build_no}/record-info",
  record_info_v1 = "GET /v1/record/{job_id}/{build_no}/record-info",
  running_status = "GET /v1/job/{job_id}/running-status",
  history = "GET /v3/jobs/{job_id}/history",
  status = "GET /v3/jobs/{job_id}/status",
  history_details = "GET /v3/jobs/{job_id}/{build_no}/history-details",
  full_stages = "GET /v1/record/{record_id}/full-stages",
  step_status = "GET /v1/job/{job_id}/status",
  real_time_log_v3 = "GET /v3/jobs/{job_id}/{build_no}/real-time-log",
  real_time_log_v1 = "GET /v1/log/{job_id}/{build_no}/real-time-log",
  download_log_v1 = "GET /v1/log/{record_id}/download-log",
  download_log_v4 = "GET /v4/{record_id}/download-log",
  iam_tokens = "POST /v3/auth/tokens",
  iam_projects = "GET /v3/projects",
}

-- The emulator's credentials: field name, environment variable, default (the same as emulator.py's).
local CREDENTIALS = {
  { "ak", "EMU_AK", "EMUAKQTWAOYTTINDUT2Q" },
  { "sk", "EMU_SK", "emuSKMFyfvK41ba2giqM7Uio6PznpdUKGpownRZl" },
  { "temp_ak", "EMU_TEMP_AK", "EMUTMPAKZX8GH2KLP0QWE" },
  { "temp_sk", "EMU_TEMP_SK", "emuTempSKa8f7e6d5c4b3a29180fedcba98765" },
  { "security_token", "EMU_SECURITY_TOKEN", "emuSecurityTokenQ29kZUFydHNCdWlsZFRlbXA" },
  { "token", "EMU_TOKEN", "emuIamTokenMIIEXAYJKoZIhvcNAQcCoIIETTCCBEkCAQEx" },
  { "project_id", "EMU_PROJECT_ID", "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b" },
  { "iam_user", "EMU_IAM_USER", "emu-build-reader" },
  { "iam_password", "EMU_IAM_PASSWORD", "emuIamPassw0rd-5b9c1e" },
  { "iam_domain", "EMU_IAM_DOMAIN", "emu-domain" },
}

local READY_TRIES = 200 -- x 0.05 s: 10 s
local STOP_TRIES = 100 -- x 0.05 s after SIGTERM, then as many after SIGKILL

---------------------------------------------------------------------------------------------------
-- shell helpers

--- One shell word, single-quoted.
local function quote(value)
  return "'" .. (tostring(value):gsub("'", "'\\''")) .. "'"
end

local function command_line(words)
  local quoted = {}
  for i, word in ipairs(words) do
    quoted[i] = quote(word)
  end
  return table.concat(quoted, " ")
end

--- Run a shell command; true when it exited with status 0 (on every Lua version).
local function execute(cmd)
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then
    return ok == 0
  end
  return ok == true and (code == nil or code == 0)
end

--- Run a shell command and return its stdout.
local function capture(cmd)
  local pipe = assert(io.popen(cmd, "r"))
  local out = pipe:read("*a") or ""
  pipe:close()
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- LuaSocket (Debian's lua-socket, which `make deps` installs) where it is there: control requests
-- over plain HTTP and short sleeps in this process. A suite makes thousands of them, and a curl or
-- sleep process for each was most of the suite's CPU time (curl loads libcurl and its 30
-- libraries every time). Without it, the curl CLI and sleep(1) do the same.
local socket_ok, socket = pcall(require, "socket")
local http = socket_ok and require("socket.http") or nil
local ltn12 = socket_ok and require("ltn12") or nil
if http then http.TIMEOUT = 10 end

local function sleep(seconds)
  if socket_ok then
    socket.sleep(seconds)
  else
    execute("sleep " .. seconds)
  end
end

local lua_pid_cache
--- The pid of this Lua process: the parent of the shell io.popen starts.
local function lua_pid()
  if not lua_pid_cache then
    lua_pid_cache = tonumber((capture("echo $PPID"):match("%d+")))
  end
  return lua_pid_cache
end

local have_proc = read_file("/proc/self/stat") ~= nil

--- True while pid runs (a zombie counts as gone: nobody may be reaping it).
local function alive(pid)
  if have_proc then
    local stat = read_file("/proc/" .. pid .. "/stat")
    if not stat then
      return false
    end
    local state = stat:match(".*%)%s+(%a)")
    return state ~= "Z" and state ~= "X"
  end
  return execute("kill -0 " .. pid .. " 2>/dev/null")
end

local function wait_gone(pid, tries)
  for _ = 1, tries do
    if not alive(pid) then
      return true
    end
    sleep(0.05)
  end
  return not alive(pid)
end

local function make_temp_dir()
  local dir = capture('mktemp -d "${TMPDIR:-/tmp}/codeartsbuild-emu.XXXXXX"'):match("[^\n]+")
  if not dir then
    error("emulator: cannot make a temporary directory (mktemp -d failed)", 3)
  end
  return dir
end

local resolved_python = {}
--- The interpreter M.python names, resolved once to its real executable (sys.executable), so that
-- wrappers such as pyenv shims are paid for once per process, not once per start.
function M.python_path()
  local name = M.python
  if not resolved_python[name] then
    local path = capture(quote(name) .. " -c 'import sys; print(sys.executable)' 2>/dev/null"):match("^(/[^\n]+)")
    resolved_python[name] = path or name
  end
  return resolved_python[name]
end

local script_path
--- Absolute path of emulator.py, next to this file.
local function emulator_script()
  if not script_path then
    local source = debug.getinfo(1, "S").source
    local dir = source:match("^@(.*)/[^/]*$") or "."
    if dir:sub(1, 1) ~= "/" then
      dir = capture("pwd"):match("[^\n]+") .. "/" .. dir
    end
    script_path = dir .. "/emulator.py"
  end
  return script_path
end
M.script = emulator_script

---------------------------------------------------------------------------------------------------
-- JSON

local json
local function json_lib()
  if not json then
    local ok, cjson = pcall(require, "cjson")
    local vim = rawget(_G, "vim")
    if ok then
      json = { decode = cjson.decode, encode = cjson.encode }
    elseif vim and vim.json then
      json = { decode = vim.json.decode, encode = vim.json.encode }
    else
      error("emulator: lua-cjson is required for control calls (require 'cjson' failed)", 3)
    end
  end
  return json
end

local function decode(text, what)
  local ok, value = pcall(json_lib().decode, text)
  if not ok then
    error(("emulator: %s is not JSON: %s"):format(what, tostring(text)), 3)
  end
  return value
end

---------------------------------------------------------------------------------------------------
-- certificates

--- Make the test PKI in dir (with the openssl CLI, through emulator.py --make-certs).
-- Returns {ca, ca_key, server_cert, server_key, expired_cert, expired_key, wronghost_cert,
-- wronghost_key, other_ca, other_ca_key, other_cert, other_key} (paths).
function M.make_certs(dir)
  assert(type(dir) == "string" and dir ~= "", "make_certs: dir must be a path")
  execute("mkdir -p " .. quote(dir))
  local err_file = dir .. "/.make-certs.err"
  local words = { M.python_path(), emulator_script(), "--make-certs", dir }
  local out = capture(command_line(words) .. " 2>" .. quote(err_file))
  local errors = read_file(err_file) or ""
  os.remove(err_file)
  local ok, paths = pcall(json_lib().decode, out)
  if not ok or type(paths) ~= "table" or not paths.ca then
    error("emulator: making test certificates failed:\n" .. errors .. out, 2)
  end
  return paths
end

---------------------------------------------------------------------------------------------------
-- the emulator object

local Emulator = {}
Emulator.__index = Emulator

--- A control request over plain HTTP, in this process: HTTP status, body (nil, message when no
-- answer came).
local function control_in_process(url, method, body)
  local chunks = {}
  local ok, status = http.request{
    url = url, method = method, sink = ltn12.sink.table(chunks),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = tostring(#body) } or nil,
  }
  if not ok or type(status) ~= "number" then return nil, tostring(status) end
  return status, table.concat(chunks)
end

--- A control request: returns HTTP status, body. Over TLS (or without LuaSocket) with the curl CLI.
function Emulator:_control(method, path, body)
  if http and not self.ca_file then
    local status, text = control_in_process(self.url .. path, method, body)
    if not status then error(("emulator: %s %s failed: %s"):format(method, path, text), 3) end
    return status, text
  end
  local out = self.dir .. "/control.out"
  local words = { "curl", "-sS", "--max-time", "10", "-o", out, "-w", "%{http_code}", "-X", method }
  if self.ca_file then
    words[#words + 1] = "--cacert"
    words[#words + 1] = self.ca_file
  end
  if body then
    local input = self.dir .. "/control.in"
    write_file(input, body)
    words[#words + 1] = "-H"
    words[#words + 1] = "Content-Type: application/json"
    words[#words + 1] = "--data-binary"
    words[#words + 1] = "@" .. input
  end
  words[#words + 1] = self.url .. path
  os.remove(out)
  local result = capture(command_line(words) .. " 2>&1")
  local status = tonumber(result:match("(%d%d%d)%s*$"))
  if not status or status == 0 then
    error(("emulator: %s %s failed: %s"):format(method, path, result), 3)
  end
  return status, read_file(out) or ""
end

function Emulator:_control_json(method, path, body)
  local status, text = self:_control(method, path, body)
  if status ~= 200 then
    error(("emulator: %s %s answered %d: %s"):format(method, path, status, text), 3)
  end
  return decode(text, path .. " answer")
end

--- Counters since the last reset (the decoded GET /__emulator/stats).
function Emulator:stats()
  return self:_control_json("GET", "/__emulator/stats")
end

--- Clear counters and fault rules.
function Emulator:reset()
  self:_control_json("POST", "/__emulator/reset")
end

--- Append fault rules (a list of rule tables); returns the number of rules now installed.
function Emulator:faults(rules)
  assert(type(rules) == "table", "faults: rules must be a list of rule tables")
  if rules[1] == nil then
    return #self:_control_json("GET", "/__emulator/faults").rules
  end
  return self:_control_json("POST", "/__emulator/faults", json_lib().encode({ rules = rules })).rules
end

function Emulator:clear_faults()
  self:_control_json("DELETE", "/__emulator/faults")
end

--- Clear the counters only (fault rules, settings and started builds stay).
function Emulator:reset_stats()
  self:_control_json("POST", "/__emulator/reset-stats")
end

--- The settings in force: {errors =, missing_build =, retire_v3 =, retire_v4 =, gzip =, running_has_more =}.
function Emulator:settings()
  return self:_control_json("GET", "/__emulator/settings").settings
end

--- Change settings at run time (all or nothing; raises on a bad name or value); returns the settings
-- now in force. reset() restores the start values.
function Emulator:configure(changes)
  assert(type(changes) == "table", "configure: changes must be a table")
  return self:_control_json("POST", "/__emulator/settings", json_lib().encode(changes)).settings
end

--- The result object v3 sends for a build (JSON null stays cjson.null), or nil, HTTP status.
function Emulator:expected(job_id, build_no)
  local status, text = self:_control("GET", ("/__emulator/record/%s/%s"):format(job_id, tostring(build_no)))
  if status ~= 200 then
    return nil, status
  end
  return decode(text, "record")
end

--- Makes every IAM token the emulator issued stop working (one expiring in the middle of a batch).
function Emulator:expire_tokens()
  return self:_control_json("POST", "/__emulator/expire-tokens").expired
end

--- The list of jobs: {job_id =, name =, builds =, gaps =, running_status =, last_build =, steps =, big_logs =}.
function Emulator:jobs()
  return self:_control_json("GET", "/__emulator/jobs").jobs
end

--- Start a build that runs on the emulator's clock. opts (all optional): job_id (default the logs job),
-- steps (a count or a list of names; default the job's steps), step_seconds (default 1), result
-- ("SUCCESS" default, "FAILED", "ABORTED"), fail_step (1-based position of the step that fails or is
-- aborted; default the last), lines_per_step (default 3). Returns the build number and the answer
-- {job_id, build_no, build_record_id, duration_ms, steps}.
function Emulator:start_build(opts)
  local info = self:_control_json("POST", "/__emulator/builds", json_lib().encode(opts or {}))
  info.build_no = math.floor(info.build_no)
  return info.build_no, info
end

--- The started builds: {job_id, build_no, build_record_id, result, status, running, step_seconds, steps,
-- elapsed_seconds, duration_ms}.
function Emulator:builds()
  return self:_control_json("GET", "/__emulator/builds").builds
end

--- Remove every started build (reset() does too); returns how many there were.
function Emulator:clear_builds()
  return self:_control_json("DELETE", "/__emulator/builds").removed
end

--- Wait until a started build has finished (polling every 50 ms, at most timeout seconds, default 30).
-- Returns true, or false when it is still running at the deadline; raises for an unknown build.
function Emulator:wait_build(job_id, build_no, timeout)
  local tries = math.ceil((timeout or 30) / 0.05)
  for i = 1, tries do
    local found
    for _, build in ipairs(self:builds()) do
      if build.job_id == job_id and build.build_no == build_no then found = build end
    end
    if not found then
      error(("emulator: no started build %s #%s"):format(job_id, tostring(build_no)), 2)
    end
    if not found.running then
      return true
    end
    if i < tries then sleep(0.05) end
  end
  return false
end

--- A build's steps as history-details sends them now ({name, status, build_time}), then its record status;
-- nil, HTTP status for a build that does not exist.
function Emulator:steps(job_id, build_no)
  local status, text = self:_control("GET", ("/__emulator/steps/%s/%s"):format(job_id, tostring(build_no)))
  if status ~= 200 then
    return nil, status
  end
  local answer = decode(text, "steps")
  return answer.build_steps, answer.status
end

--- A build's log as it is now (the bytes the download routes send), level "INFO" (default) or "DEBUG";
-- nil, HTTP status for a build that does not exist. The big log is 50 MiB: prefer the download routes.
function Emulator:log(job_id, build_no, level)
  local query = level == "DEBUG" and "?log_level=DEBUG" or ""
  local status, text = self:_control("GET", ("/__emulator/log/%s/%s%s"):format(job_id, tostring(build_no), query))
  if status ~= 200 then
    return nil, status
  end
  return text
end

--- The emulator process's memory from /proc (Linux): {rss_kib =, peak_kib =} (VmRSS, VmHWM).
function Emulator:memory()
  local status = read_file("/proc/" .. self.pid .. "/status") or ""
  return { rss_kib = tonumber(status:match("VmRSS:%s*(%d+)")), peak_kib = tonumber(status:match("VmHWM:%s*(%d+)")) }
end

--- Start measuring the peak memory from now (writes 5 to /proc/PID/clear_refs); false where unsupported.
function Emulator:reset_peak_memory()
  local f = io.open("/proc/" .. self.pid .. "/clear_refs", "w")
  if not f then
    return false
  end
  local ok = f:write("5")
  ok = f:close() and ok
  return ok and true or false
end

--- Stop the emulator (SIGTERM, then SIGKILL), wait until it is gone, remove its directory.
-- Safe to call twice. Raises when the process cannot be stopped.
function Emulator:stop()
  if self.stopped then
    return
  end
  self.stopped = true
  local pid = self.pid
  if pid and alive(pid) then
    execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not wait_gone(pid, STOP_TRIES) then
      execute("kill -KILL " .. pid .. " 2>/dev/null")
      wait_gone(pid, STOP_TRIES)
    end
  end
  if self.dir then
    execute("rm -rf -- " .. quote(self.dir))
  end
  if pid and alive(pid) then
    error("emulator: process " .. pid .. " did not stop", 2)
  end
end
Emulator.__close = Emulator.stop

function Emulator:__tostring()
  return ("codeartsbuild emulator %s (pid %s%s)"):format(self.url or "?", tostring(self.pid),
    self.stopped and ", stopped" or "")
end

---------------------------------------------------------------------------------------------------
-- start

local SERVER_CERTS = { server = true, expired = true, wronghost = true, other = true }
local SETTING_NAMES = { "errors", "missing_build", "retire_v3", "retire_v4", "gzip", "running_has_more" }

--- Start an emulator and wait until it listens. Options (all optional):
--   tls (boolean), spelling ("camel"|"snake"), seed, clock_offset (seconds), env (EMU_* values),
--   the settings errors, missing_build, retire_v3, retire_v4, gzip, running_has_more (see the top of this
--   file), settings (a table of any of them), big_log_bytes,
--   port (default 0: a free one; an old emulator's port lets a new one stand in for it after a restart),
--   token_lifetime (seconds an IAM token issued by POST /v3/auth/tokens lasts, default a day),
--   max_lifetime (seconds, default 3600), log (access log into emu.dir/stderr), parent_pid (default: this
--   Lua process), certs (a make_certs() table to reuse), server_cert ("server" default, "expired",
--   "wronghost", "other": which of the made certificates the TLS server presents).
function M.start(opts)
  opts = opts or {}
  local spelling = opts.spelling or "camel"
  if spelling ~= "camel" and spelling ~= "snake" then
    error("emulator.start: spelling must be 'camel' or 'snake'", 2)
  end
  local server_cert = opts.server_cert or "server"
  if not SERVER_CERTS[server_cert] then
    error("emulator.start: server_cert must be server, expired, wronghost or other", 2)
  end
  local env = opts.env or {}
  for name in pairs(env) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      error("emulator.start: bad environment variable name " .. tostring(name), 2)
    end
  end

  local dir = make_temp_dir()
  local emu = setmetatable({ dir = dir, spelling = spelling, seed = opts.seed or 1 }, Emulator)
  local exports, credential_names = {}, {}
  for _, item in ipairs(CREDENTIALS) do
    local field, name, default = item[1], item[2], item[3]
    emu[field] = env[name] or os.getenv(name) or default
    credential_names[name] = true
    exports[#exports + 1] = "export " .. name .. "=" .. quote(emu[field]) .. "\n"
  end
  for name, value in pairs(env) do
    if not credential_names[name] then
      exports[#exports + 1] = "export " .. name .. "=" .. quote(value) .. "\n"
    end
  end
  -- The values reach the emulator through a file in the private (0700) directory, sourced by the
  -- shell: never through an argv, not even the shell's own `sh -c` command line.
  local env_file = dir .. "/env.sh"
  write_file(env_file, table.concat(exports))

  local args = { M.python_path(), emulator_script(), "--port", ("%d"):format(opts.port or 0),
    "--ready-file", dir .. "/ready.json",
    "--parent-pid", ("%d"):format(opts.parent_pid or lua_pid()), "--spelling", spelling,
    "--seed", ("%d"):format(emu.seed), "--max-lifetime", tostring(opts.max_lifetime or 3600) }
  for _, name in ipairs({ "retire_v3", "retire_v4" }) do
    local value = opts[name]
    if value == true then
      value = "gateway"
    end
    if value then
      args[#args + 1] = "--set"
      args[#args + 1] = name .. "=" .. tostring(value)
    end
  end
  for _, name in ipairs(SETTING_NAMES) do
    if opts[name] ~= nil and name ~= "retire_v3" and name ~= "retire_v4" then
      args[#args + 1] = "--set"
      args[#args + 1] = name .. "=" .. tostring(opts[name])
    end
  end
  for name, value in pairs(opts.settings or {}) do
    args[#args + 1] = "--set"
    args[#args + 1] = name .. "=" .. tostring(value)
  end
  if opts.big_log_bytes then
    args[#args + 1] = "--big-log-bytes"
    args[#args + 1] = ("%d"):format(opts.big_log_bytes)
  end
  if opts.token_lifetime then
    args[#args + 1] = "--token-lifetime"
    args[#args + 1] = tostring(opts.token_lifetime)
  end
  if opts.clock_offset then
    args[#args + 1] = "--clock-offset"
    args[#args + 1] = tostring(opts.clock_offset)
  end
  if opts.log then
    args[#args + 1] = "--log"
  end
  if opts.tls then
    local ok, certs = pcall(function()
      return opts.certs or M.make_certs(dir .. "/certs")
    end)
    if not ok then
      execute("rm -rf -- " .. quote(dir))
      error(certs, 2)
    end
    emu.certs, emu.ca_file = certs, certs.ca
    args[#args + 1] = "--tls-cert"
    args[#args + 1] = certs[server_cert .. "_cert"]
    args[#args + 1] = "--tls-key"
    args[#args + 1] = certs[server_cert .. "_key"]
  end

  -- exec makes $! the python process itself.
  local cmd = ("(. %s; exec %s >%s 2>%s </dev/null) & echo $!"):format(quote(env_file), command_line(args),
    quote(dir .. "/stdout"), quote(dir .. "/stderr"))
  local spawned = tonumber((capture(cmd):match("%d+")))

  local ready
  for _ = 1, READY_TRIES do
    local text = read_file(dir .. "/ready.json")
    if text then
      ready = decode(text, "ready file")
      os.remove(env_file) -- read by now: the emulator is listening
      break
    end
    if not spawned or not alive(spawned) then
      break
    end
    sleep(0.05)
  end
  if not ready then
    if spawned and alive(spawned) then
      execute("kill -KILL " .. spawned .. " 2>/dev/null")
    end
    local stderr = read_file(dir .. "/stderr") or ""
    execute("rm -rf -- " .. quote(dir))
    error(("emulator: did not become ready within %g s; its stderr:\n%s"):format(READY_TRIES * 0.05, stderr), 2)
  end
  emu.url, emu.scheme = ready.url, ready.scheme
  emu.port, emu.pid = math.floor(ready.port), math.floor(ready.pid) -- integers on 5.3+, not cjson's floats
  return emu
end

--- Environment variables a client uses to reach this emulator with AK/SK.
function M.client_env(emu)
  local env = {
    CODEARTSBUILD_ENDPOINT = emu.url,
    HUAWEICLOUD_SDK_AK = emu.ak,
    HUAWEICLOUD_SDK_SK = emu.sk,
    HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id,
  }
  if emu.ca_file then
    env.CODEARTSBUILD_CA_FILE = emu.ca_file
  end
  return env
end

return M
