--- The command-line tool's logic; `bin/codeartsbuild` is `os.exit(require("codeartsbuild.cli").main(arg))`.
--
--     codeartsbuild record JOB N [--json]
--     codeartsbuild list JOB [--last N | --from A --to B] [--status S] [--branch B] [--trigger T]
--                            [--since DATE] [--until DATE] [--limit N] [--reverse] [--json | --csv]
--     codeartsbuild summary JOB [--last N | --from A --to B] [filters] [--json]
--     codeartsbuild latest JOB
--     codeartsbuild steps JOB N [--json]
--     codeartsbuild log JOB N [--tail N | --follow | --output FILE]
--     codeartsbuild wait JOB [N] [--timeout DURATION] [--interval SECONDS] [--json]
--
-- Every command takes `--region`, `--endpoint`, `--profile`, `--quiet` and `--help`. Exit status:
-- 0 success, 1 a request failed (or no client could be made), 2 usage error, 3 `wait` timed out
-- (and 1 when the build it waited for did not succeed); an error is one line on stderr. Secrets
-- are never taken on the command line.
-- @module codeartsbuild.cli
local view = require "codeartsbuild.view"
local query = require "codeartsbuild.query"

local M = {}

--- Exit status 0: the command did what was asked.
M.OK = 0
--- Exit status 1: a request failed, or no client could be made (configuration).
M.FAILED = 1
--- Exit status 2: usage error, the command line is wrong; nothing was sent.
M.USAGE = 2
--- Exit status 3: `wait` gave up at its --timeout (the build still runs).
M.TIMED_OUT = 3

local MAX_BUILD_NO = 2147483647
local PROGRESS_THRESHOLD = 20 -- more builds than this: a progress bar (on a terminal)
local DEFAULT_LIST = 20
local DEFAULT_SUMMARY = 100
local DEFAULT_CONCURRENCY = 16

-- ------------------------------------------------------------------------------------------------
-- Help texts

local CONFIGURATION = [[
configuration (as the library reads it; options win over the environment):
  endpoint      --endpoint, else --region, else CODEARTSBUILD_ENDPOINT, else
                CODEARTSBUILD_REGION (https://cloudbuild-ext.REGION.myhuaweicloud.com)
  credentials   --profile NAME: ak, sk, project_id, security_token of section [NAME] of the
                credentials file; else CODEARTSBUILD_TOKEN, CODEARTSBUILD_AK/_SK,
                HUAWEICLOUD_SDK_AK/_SK, CLOUD_SDK_AK/_SK, then section [basic] of the
                credentials file (HUAWEICLOUD_SDK_CREDENTIALS_FILE, default
                ~/.huaweicloud/credentials)
  project id    CODEARTSBUILD_PROJECT_ID, HUAWEICLOUD_SDK_PROJECT_ID, the file's project_id
  CA file       CODEARTSBUILD_CA_FILE (default: the system's trusted CAs)
  colours       only when stdout is a terminal; NO_COLOR=1 turns them off
Secrets are never taken on the command line, where other users of the machine can read them
(ps, /proc): there is no --ak, --sk or --token option. Use the environment or the file.]]

local HELP = {}

HELP.main = [[
usage: codeartsbuild [options] COMMAND [arguments]

Reads Huawei Cloud CodeArts Build records.

commands:
  record JOB N        build N of job JOB, one field a line (--json: a JSON object)
  list JOB            one line per build: the last 20, or a range, filtered (--json, --csv)
  summary JOB         counts, success rate and durations of the last 100 builds, or a range
  latest JOB          the newest build number
  steps JOB N         the steps of build N: status, duration, name (--json)
  log JOB N           the log of build N (--tail N, --follow, --output FILE)
  wait JOB [N]        waits until build N (default: the newest) ends; exit 0 on SUCCESS
  help [COMMAND]      this text, or a command's (as COMMAND --help)

options for every command:
  --region REGION     the service's region, e.g. cn-north-4
  --endpoint URL      https://host[:port] instead of the region's endpoint
  --profile NAME      credentials from section [NAME] of the credentials file
  -q, --quiet         no progress bar and no notes on stderr (errors are still printed)
  -h, --help          help; `codeartsbuild COMMAND --help` for a command's
  --version           the version

JOB is the 32-character job id at the end of the build task's URL in the console.

]] .. CONFIGURATION .. [[


exit status: 0 success, 1 a request failed (or no client could be made: no credentials,
unknown region...), 2 usage error (the command line is wrong), 3 wait timed out.

examples:
  export CODEARTSBUILD_REGION=cn-north-4 HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=...
  codeartsbuild record cb5fa20de5fd4cf8be681d4bd6fdd2f6 61
  codeartsbuild list cb5fa20de5fd4cf8be681d4bd6fdd2f6 --last 200 --status failed --branch main
  codeartsbuild summary cb5fa20de5fd4cf8be681d4bd6fdd2f6 --since 2024-05-01
]]

HELP.record = [[
usage: codeartsbuild record [options] JOB N

Prints build N of job JOB as an aligned field list: the fields of the API reference page in
its order (absent ones left out), then any others the service sent.

options:
  --json              the record as one JSON object, with the API's camelCase field names
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

examples:
  codeartsbuild record cb5fa20de5fd4cf8be681d4bd6fdd2f6 61
  codeartsbuild record cb5fa20de5fd4cf8be681d4bd6fdd2f6 61 --json | jq -r .commit
]]

local SELECTION = [[
which builds (default: --last %d):
  --last N            the newest N builds
  --from A, --to B    builds A to B (--from alone: up to the newest; --to alone: from 1)

which of them (each filter given must match; repeat an option, or separate values with
commas, for "any of these"):
  --status S          SUCCESS, FAILED, ABORTED, RUNNING, ... (any case)
  --branch B          the branch, exactly
  --trigger T         MANUAL, TIMED_EXECUTION, CODEHUB_TRIGGER, PIPELINE_TRIGGER (any case)
  --since DATE        started at or after DATE: 2024-05-01 (midnight UTC) or an ISO time
                      with an offset, 2024-05-01T08:00:00+08:00
  --until DATE        started before DATE
]]

HELP.list = [[
usage: codeartsbuild list [options] JOB

Prints one line per build of job JOB, in build order: build, status, branch, commit, trigger,
duration and start time, aligned under a line of titles.

]] .. SELECTION:format(DEFAULT_LIST) .. [[
  --limit N           stop after N matching builds (with --reverse: the newest N)

output:
  --reverse           newest first
  --json              one JSON object per line, every field, the API's camelCase names
  --csv               comma-separated values (RFC 4180 quoting) under a header row;
                      duration in milliseconds, as the API gives it
  --concurrency N     requests in flight at once, 1 to 1024 (default 16)
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

Builds that no longer exist are skipped. Builds that could not be read are named in one
line on stderr, and the exit status is then 1. A progress bar shows on stderr when it is a
terminal and more than 20 builds are read (not with --quiet).

examples:
  job=cb5fa20de5fd4cf8be681d4bd6fdd2f6
  codeartsbuild list $job
  codeartsbuild list $job --last 1000 --status failed --reverse --limit 5    # the 5 newest failures
  codeartsbuild list $job --from 1 --to 500 --csv > builds.csv
]]

HELP.summary = [[
usage: codeartsbuild summary [options] JOB

Prints the summary report of builds of job JOB: how many, by status, the success rate of the
finished ones, durations (min, p50, p95, max), branches and triggers.

]] .. SELECTION:format(DEFAULT_SUMMARY) .. [[

output:
  --json              the summary as one JSON object (durations in seconds)
  --concurrency N     requests in flight at once, 1 to 1024 (default 16)
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

examples:
  codeartsbuild summary cb5fa20de5fd4cf8be681d4bd6fdd2f6
  codeartsbuild summary cb5fa20de5fd4cf8be681d4bd6fdd2f6 --last 500 --branch main
]]

HELP.latest = [[
usage: codeartsbuild latest [options] JOB

Prints the newest build number of job JOB: from the running-status API, or by probing
record-info (about 2 log2(n) requests) where that API is not published.

options:
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

example:
  codeartsbuild list "$job" --from "$(codeartsbuild latest "$job")"
]]

HELP.help = [[
usage: codeartsbuild help [COMMAND]

Prints the help of COMMAND (record, list, summary, latest, steps, log, wait), or the general help.
]]

-- ------------------------------------------------------------------------------------------------
-- Command-line parsing

-- Options and whether they take a value.
local TAKES_VALUE = {
  region = true, endpoint = true, profile = true, last = true, from = true, to = true,
  status = true, branch = true, trigger = true, since = true, ["until"] = true, limit = true,
  concurrency = true,
  json = false, csv = false, reverse = false, quiet = false, help = false, version = false,
}
local SHORT = { h = "help", q = "quiet" }
-- Options that may be given more than once: their values add up ("any of these").
local REPEATABLE = { status = true, branch = true, trigger = true }
-- Names people reach for to pass a secret: refused with an explanation.
local SECRET = {
  ak = true, sk = true, token = true, ["security-token"] = true, security_token = true, password = true,
  ["secret-key"] = true, ["access-key"] = true, ["auth-token"] = true,
}

local GLOBAL = { region = true, endpoint = true, profile = true, quiet = true, help = true, version = true }
local SELECT_OPTIONS = {
  last = true, from = true, to = true, status = true, branch = true, trigger = true, since = true,
  ["until"] = true, concurrency = true,
}

local COMMANDS = {
  record = { args = { "JOB", "N" }, options = { json = true } },
  list = { args = { "JOB" }, options = { limit = true, reverse = true, json = true, csv = true }, select = true },
  summary = { args = { "JOB" }, options = { json = true }, select = true },
  latest = { args = { "JOB" }, options = {} },
  help = { args = {}, optional = { "COMMAND" }, options = {} },
}
local COMMAND_NAMES = "record, list, summary, latest, help"

local function allowed(command, name)
  local spec = COMMANDS[command]
  return GLOBAL[name] or spec.options[name] or (spec.select and SELECT_OPTIONS[name]) or false
end

--- A usage error: raised inside main(), caught there, exit status 2.
local UsageError = {}
UsageError.__index = UsageError

local function usage_error(command, message, no_pointer)
  error(setmetatable({ command = command, message = message, no_pointer = no_pointer }, UsageError), 0)
end

--- A word of the user's, made safe to show in one line (no control characters, not too long).
local function shown(word)
  word = tostring(word):gsub("%c", "?")
  if #word > 60 then word = word:sub(1, 57) .. "..." end
  return word
end

--- Splits argv into the command, its positional arguments and a map of options.
local function parse(args)
  local options, positional, command = {}, {}, nil
  local seen_order = {}
  local i, only_positional = 1, false
  local count = args.n or #args
  while i <= count do
    local word = args[i]
    if type(word) ~= "string" then word = tostring(word) end
    local name, value, has_value
    if only_positional or word == "-" or word:sub(1, 1) ~= "-" then
      if command == nil then command = word else positional[#positional + 1] = word end
    elseif word == "--" then
      only_positional = true
    else
      if word:sub(1, 2) == "--" then
        name, value = word:match("^%-%-([^=]+)=(.*)$")
        has_value = name ~= nil
        name = name or word:sub(3)
      elseif #word == 2 and SHORT[word:sub(2)] then
        name = SHORT[word:sub(2)]
      else
        usage_error(command, ("unknown option %s"):format(shown(word)))
      end
      if SECRET[name:lower()] then
        usage_error(command, ("--%s: secrets are never taken on the command line, where other users can read "
          .. "them; use the environment or the credentials file (see codeartsbuild --help)"):format(name), true)
      end
      local takes = TAKES_VALUE[name]
      if takes == nil then
        usage_error(command, ("unknown option --%s"):format(shown(name)))
      end
      if takes then
        if not has_value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error(command, ("--%s needs a value"):format(name)) end
        end
        if REPEATABLE[name] then
          options[name] = options[name] or {}
          table.insert(options[name], value)
        elseif options[name] ~= nil then
          usage_error(command, ("--%s is given twice"):format(name))
        else
          options[name] = value
        end
      else
        if has_value then usage_error(command, ("--%s takes no value"):format(name)) end
        options[name] = true
      end
      seen_order[#seen_order + 1] = name
    end
    i = i + 1
  end
  return command, positional, options, seen_order
end

local function check_job(command, job)
  if type(job) ~= "string" or #job ~= 32 or job:find("[^%w]") then
    usage_error(command, ("JOB must be a job id of 32 letters or digits (the end of the build task's URL), "
      .. "got %s"):format(job == nil and "nothing" or ("'" .. shown(job) .. "'")))
  end
  return job
end

--- A whole number from low to high, from the user's text; a usage error otherwise.
local function whole(command, what, text, low, high)
  local n = type(text) == "string" and text:match("^%d+$") and #text <= 10 and tonumber(text) or nil
  if n == nil or n < low or n > high then
    usage_error(command, ("%s must be a whole number from %d to %d, got '%s'"):format(what, low, high, shown(text)))
  end
  return math.floor(n) -- an integer on 5.3+
end

local function list_of(values, upper)
  local set = {}
  for _, value in ipairs(values) do
    for item in value:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then set[#set + 1] = upper and item:upper() or item end
    end
  end
  return set
end

local function date(command, name, text)
  local seconds, message = query.time(text)
  if not seconds then
    usage_error(command, ("--%s: %s"):format(name, (message:gsub("^time: ", ""))))
  end
  return seconds
end

--- The walk a list or summary asks for: { last =, from =, to =, where =, ... }.
local function selection(command, options, default_last)
  local sel = {}
  if options.last and (options.from or options.to) then
    usage_error(command, "--last cannot go with --from or --to")
  end
  if options.last then sel.last = whole(command, "--last", options.last, 1, MAX_BUILD_NO) end
  if options.from then sel.from = whole(command, "--from", options.from, 1, MAX_BUILD_NO) end
  if options.to then sel.to = whole(command, "--to", options.to, 1, MAX_BUILD_NO) end
  if sel.from and sel.to and sel.from > sel.to then
    usage_error(command, ("--from %d is after --to %d"):format(sel.from, sel.to))
  end
  if not (sel.last or sel.from or sel.to) then sel.last = default_last end
  local spec = {}
  if options.status then spec.status = list_of(options.status, true) end
  if options.trigger then spec.trigger = list_of(options.trigger, true) end
  if options.branch then spec.branch = list_of(options.branch, false) end
  if options.since then spec.since = date(command, "since", options.since) end
  if options["until"] then spec["until"] = date(command, "until", options["until"]) end
  if spec.since and spec["until"] and spec.since >= spec["until"] then
    usage_error(command, "--since must be before --until")
  end
  if next(spec) then sel.where = query.where(spec) end
  sel.concurrency = options.concurrency and whole(command, "--concurrency", options.concurrency, 1, 1024)
    or DEFAULT_CONCURRENCY
  if options.limit then sel.limit = whole(command, "--limit", options.limit, 1, MAX_BUILD_NO) end
  sel.order = options.reverse and "desc" or "asc"
  return sel
end

-- ------------------------------------------------------------------------------------------------
-- Output helpers

local json_cache
local function json()
  if not json_cache then json_cache = require "cjson" end
  return json_cache
end

--- One JSON value, without lua-cjson's escaping of "/" (valid, but noisy in branch names).
local function json_scalar(value)
  -- In cjson's output a backslash is either the start of an escape or written as "\\"; so "\/"
  -- can only be an escaped slash, however many backslashes precede it.
  return (json().encode(value):gsub("\\/", "/"))
end

--- Ranks of keys: the names in `names` first, in that order.
local function ranks(names)
  local rank = {}
  for i, name in ipairs(names) do rank[name] = i end
  return rank
end

local RECORD_ORDER = ranks(view.FIELDS)
local SUMMARY_ORDER = ranks({
  "job_id", "from", "to", "total", "finished", "success_rate", "by_status", "duration", "by_branch",
  "by_trigger", "first_start", "last_start", "min", "p50", "p95", "max", "count",
})

--- JSON text with a stable key order: the keys `rank` knows first, in its order, then the others
-- sorted (in nested objects too). Lists (1..n, n > 0) become arrays.
local function encode(value, rank)
  if type(value) ~= "table" then return json_scalar(value) end
  rank = rank or {}
  local n = #value
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  if n > 0 and #keys == n then
    local parts = {}
    for i = 1, n do parts[i] = encode(value[i], rank) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  table.sort(keys, function(a, b)
    local ra, rb = rank[a], rank[b]
    if ra and rb then return ra < rb end
    if ra or rb then return ra ~= nil end
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = json_scalar(tostring(k)) .. ":" .. encode(value[k], rank)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local CSV_FIELDS = {
  "buildNo", "status", "branch", "tag", "commit", "triggerType", "buildType", "startTime", "finishTime",
  "duration", "dailyBuildNum", "repoName", "userId", "errMsg",
}

local function csv_value(value)
  if value == nil then return "" end
  local text
  if type(value) == "number" then
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      text = ("%.0f"):format(value)
    else
      text = ("%.14g"):format(value)
    end
  else
    text = tostring(value)
  end
  if text:find('[,"\r\n]') then text = '"' .. text:gsub('"', '""') .. '"' end
  return text
end

local function csv_line(values)
  local parts = {}
  for i = 1, #CSV_FIELDS do parts[i] = csv_value(values[i]) end
  return table.concat(parts, ",")
end

local function csv_record(rec)
  local values = {}
  for i, name in ipairs(CSV_FIELDS) do values[i] = rec[name] end
  return csv_line(values)
end

--- A progress bar on stderr: redrawn when the percentage changes, cleared before stdout is
-- written to and at the end, so that the two streams do not mix on one terminal.
local function new_progress(stderr)
  local bar = { shown = false, drawn_percent = -1, done = 0, total = 0 }
  local WIDTH = 30
  function bar.draw()
    local total = bar.total
    local percent = total > 0 and math.floor(bar.done * 100 / total) or 100
    local filled = total > 0 and math.floor(bar.done * WIDTH / total) or WIDTH
    stderr:write(("\r[%s%s] %d/%d builds %3d%%\27[K"):format(("#"):rep(filled), ("."):rep(WIDTH - filled),
      bar.done, total, percent))
    stderr:flush()
    bar.shown, bar.drawn_percent = true, percent
  end
  function bar.update(done, total)
    bar.done, bar.total = done, total
    local percent = total > 0 and math.floor(done * 100 / total) or 100
    if percent ~= bar.drawn_percent then bar.draw() end
  end
  function bar.clear()
    if bar.shown then
      stderr:write("\r\27[K")
      stderr:flush()
      bar.shown = false
    end
  end
  function bar.around(write)
    local was = bar.shown
    bar.clear()
    write()
    if was then bar.draw() end
  end
  return bar
end

-- ------------------------------------------------------------------------------------------------
-- The client

--- ak, sk, project_id, security_token of section [name] of the credentials file (the SDK's INI
-- format), or nil and a message that names the file and the section, never a value.
local function read_profile(name, getenv)
  local path = getenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE")
  if path == nil or path == "" then
    local home = getenv("HOME")
    if home == nil or home == "" then
      return nil, ("--profile %s: no credentials file: neither HUAWEICLOUD_SDK_CREDENTIALS_FILE nor HOME is set")
        :format(shown(name))
    end
    path = home .. "/.huaweicloud/credentials"
  end
  local file, open_error = io.open(path, "r")
  if not file then
    return nil, ("--profile %s: cannot read the credentials file: %s"):format(shown(name), open_error)
  end
  local text, read_error = file:read("*a")
  file:close()
  if not text then
    return nil, ("--profile %s: cannot read the credentials file %s: %s"):format(shown(name), path,
      tostring(read_error))
  end
  local sections, order, current = {}, {}, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local section = line:match("^%s*%[%s*(.-)%s*%]%s*$")
    if section then
      current = sections[section] or {}
      if not sections[section] then order[#order + 1] = section end
      sections[section] = current
    elseif current and not line:match("^%s*[;#]") then
      local key, value = line:match("^%s*([%w_%-]+)%s*[=:]%s*(.-)%s*$")
      if key then current[key:lower()] = value end
    end
  end
  local values = sections[name]
  if not values then
    return nil, ("--profile %s: %s has no section [%s]%s"):format(shown(name), path, shown(name),
      #order > 0 and (" (its sections: " .. table.concat(order, ", ") .. ")") or "")
  end
  local ak, sk = values.ak, values.sk
  if ak == "" then ak = nil end
  if sk == "" then sk = nil end
  if not ak or not sk then
    return nil, ("--profile %s: section [%s] of %s has no %s (a profile needs both ak and sk)"):format(
      shown(name), shown(name), path, ak and "sk" or "ak")
  end
  local out = { ak = ak, sk = sk }
  if values.project_id and values.project_id ~= "" then out.project_id = values.project_id end
  if values.security_token and values.security_token ~= "" then out.security_token = values.security_token end
  return out
end

--- A failure that ends the command with status 1: raised inside main(), caught there.
local Failure = {}
Failure.__index = Failure

local function fail(message)
  error(setmetatable({ message = message }, Failure), 0)
end

local HINTS = {
  auth = "check the credentials and the project id; the clock must be right within 15 minutes",
  tls = "CODEARTSBUILD_CA_FILE names the CA file that verifies the endpoint",
  config = "see codeartsbuild --help, \"configuration\"",
  throttled = "the service asks to slow down: try again later, or with a lower --concurrency",
}

local function failure_message(message, err)
  message = tostring(message):gsub("^codeartsbuild: ", "")
  local hint = type(err) == "table" and HINTS[err.kind]
  if hint and not message:find(hint, 1, true) then return message .. " (" .. hint .. ")" end
  return message
end

local function load_library()
  local ok, cb = pcall(require, "codeartsbuild")
  if not ok then
    -- The first lines say why (a loader's message and the dynamic linker's), not the search list.
    local why = tostring(cb):gsub("\n\tno field.*", ""):gsub("%s*\n%s*", " ")
    fail(("cannot load the codeartsbuild module: %s"):format(why))
  end
  return cb
end

local function new_client(cb, options, getenv)
  local opts = {}
  if options.region then
    local region = options.region
    local override = "HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_" .. region:upper():gsub("-", "_")
    local known = false
    for _, name in ipairs(cb.regions) do known = known or name == region end
    if not known and not options.endpoint and (getenv(override) or "") == "" then
      usage_error(nil, ("unknown region '%s' (known: %s; or set %s to its endpoint)"):format(
        shown(region), table.concat(cb.regions, ", "), shown(override)))
    end
    opts.region = region
  end
  if options.endpoint then
    if not options.endpoint:match("^[Hh][Tt][Tt][Pp][Ss]?://") then
      usage_error(nil, ("--endpoint must be https://host[:port], got '%s'"):format(shown(options.endpoint)))
    end
    opts.endpoint = options.endpoint
  end
  if options.profile then
    local profile, message = read_profile(options.profile, getenv)
    if not profile then fail(message) end
    for k, v in pairs(profile) do opts[k] = v end
  end
  local client, message, err = cb.new(opts)
  if not client then fail(failure_message(message, err)) end
  return client
end

-- ------------------------------------------------------------------------------------------------
-- Commands

local Run = {} -- one invocation: streams, options, client
Run.__index = Run

function Run:note(text)
  if not self.options.quiet then
    self.stderr:write("codeartsbuild: ", text, "\n")
  end
end

function Run:client_for()
  if not self.client then
    local cb = load_library()
    self.client = new_client(cb, self.options, self.getenv)
  end
  return self.client
end

function Run:color()
  return view.use_color(self.stdout, nil, self.getenv)
end

--- The walk of a list or summary: an iterator over `n, record, err`, and the range it covers.
function Run:walk(job, sel, on_progress)
  local client = self:client_for()
  local from, to = sel.from, sel.to
  if sel.last then
    local newest, message, err = client:latest(job)
    if not newest then fail(failure_message(message, err)) end
    to = newest
    from = math.max(1, newest - sel.last + 1)
  elseif to == nil then
    local newest, message, err = client:latest(job)
    if not newest then fail(failure_message(message, err)) end
    to = newest
  end
  from = from or 1
  local iterator, message, err = client:records(job, {
    from = from, to = to, order = sel.order, concurrency = sel.concurrency, where = sel.where,
    limit = sel.limit, on_progress = on_progress,
  })
  if not iterator then fail(failure_message(message, err)) end
  return iterator, from, to
end

-- Failures that every other request would meet too: the walk stops at the first.
local FATAL = { auth = true, tls = true, config = true, network = true, invalid = true }

--- Runs a walk, calling emit(record) for each record in order; returns the failed builds and the
-- range. `writes`: emit writes to stdout (the progress bar steps aside for it).
function Run:each_record(job, sel, emit, writes)
  local progress, step_aside -- step_aside: the bar is cleared around each line written to stdout
  local function on_progress(done, total)
    if progress == nil then
      progress = false
      if not self.options.quiet and total > PROGRESS_THRESHOLD and self.stderr_is_terminal() then
        progress = new_progress(self.stderr)
        -- Only when both streams share the terminal: stdout to a file or a pipe needs no room.
        step_aside = writes and self.stdout_is_terminal()
      end
    end
    if progress then progress.update(done, total) end
  end
  self.progress_clear = function() if progress then progress.clear() end end
  local iterator, from, to = self:walk(job, sel, on_progress)
  local failed = {}
  for n, rec, err in iterator do
    if rec then
      if step_aside then progress.around(function() emit(rec) end) else emit(rec) end
    else
      failed[#failed + 1] = { n = n, err = err }
      if FATAL[err.kind] then
        failed.fatal = err
        break
      end
    end
  end
  if progress then progress.clear() end
  return failed, from, to
end

--- One line about the builds that could not be read; raises the failure (exit status 1).
local function report_failed(failed)
  if failed.fatal then fail(failure_message(failed.fatal.message, failed.fatal)) end
  if #failed == 0 then return end
  local numbers = {}
  for i = 1, math.min(#failed, 10) do numbers[i] = "#" .. failed[i].n end
  if #failed > 10 then numbers[#numbers + 1] = "..." end
  local first = failed[1]
  fail(("%d build%s could not be read: %s (%s)"):format(#failed, #failed == 1 and "" or "s",
    table.concat(numbers, ", "), failure_message(first.err.message, first.err)))
end

local commands = {}

function commands.record(run, args)
  local job = check_job("record", args[1])
  local n = whole("record", "N", args[2], 1, MAX_BUILD_NO)
  local client = run:client_for()
  local rec, message, err = client:record_info(job, n)
  if not rec then fail(failure_message(message, err)) end
  if run.options.json then
    run.stdout:write(encode(rec, RECORD_ORDER), "\n")
  else
    view.record(rec, { out = run.stdout, color = run:color() })
  end
end

function commands.latest(run, args)
  local job = check_job("latest", args[1])
  local client = run:client_for()
  local n, message, err = client:latest(job)
  if not n then fail(failure_message(message, err)) end
  run.stdout:write(("%d\n"):format(n))
end

function commands.list(run, args)
  local job = check_job("list", args[1])
  local options = run.options
  if options.json and options.csv then usage_error("list", "--json and --csv go one at a time") end
  local sel = selection("list", options, DEFAULT_LIST)
  local out = run.stdout
  local rows, count = {}, 0
  local emit
  if options.json then
    emit = function(rec)
      out:write(encode(rec, RECORD_ORDER), "\n")
      out:flush()
    end
  elseif options.csv then
    out:write(table.concat(CSV_FIELDS, ","), "\n")
    emit = function(rec)
      out:write(csv_record(rec), "\n")
      out:flush()
    end
  else
    emit = function(rec) rows[#rows + 1] = view.row(rec) end
  end
  local counted = function(rec)
    count = count + 1
    emit(rec)
  end
  local failed, from, to = run:each_record(job, sel, counted, options.json or options.csv)
  if not options.json and not options.csv and #rows > 0 then
    local lines = view.table_lines(rows, { color = run:color() })
    out:write(table.concat(lines, "\n"), "\n")
  end
  if count == 0 and not failed.fatal then
    if from > to then
      run:note(("no builds: the newest build of %s is %d"):format(job, to))
    else
      run:note(("no build of %d..%d matched"):format(from, to))
    end
  end
  report_failed(failed)
end

function commands.summary(run, args)
  local job = check_job("summary", args[1])
  local sel = selection("summary", run.options, DEFAULT_SUMMARY)
  -- The summary needs only a few fields of each record: keep those, not the records.
  local slim = {}
  local failed, from, to = run:each_record(job, sel, function(rec)
    slim[#slim + 1] = {
      status = rec.status, branch = rec.branch, triggerType = rec.triggerType, duration = rec.duration,
      startTime = rec.startTime,
    }
  end)
  local summary = query.summary(slim)
  if run.options.json then
    local out = {
      job_id = job, from = from, to = to, total = summary.total, finished = summary.finished,
      success_rate = summary.success_rate, by_status = summary.by_status, by_branch = summary.by_branch,
      by_trigger = summary.by_trigger, duration = summary.duration, first_start = summary.first_start,
      last_start = summary.last_start,
    }
    run.stdout:write(encode(out, SUMMARY_ORDER), "\n")
  else
    if from > to then
      run:note(("no builds: the newest build of %s is %d"):format(job, to))
    else
      run.stdout:write(("job %s, builds %d..%d\n"):format(job, from, to))
    end
    run.stdout:write(tostring(summary), "\n")
  end
  report_failed(failed)
end

function commands.help(run, args)
  local topic = args[1]
  if topic ~= nil and not HELP[topic] then
    usage_error("help", ("no command '%s' (commands: %s)"):format(shown(topic), COMMAND_NAMES))
  end
  run.stdout:write(HELP[topic or "main"])
end


-- ------------------------------------------------------------------------------------------------
-- After the record (issue 14): steps, log, wait. Their help, options and commands, in one block.

HELP.steps = [[
usage: codeartsbuild steps [options] JOB N

Prints the steps of build N of job JOB in order, one aligned line each: position, status
(SUCCESS, FAILED, RUNNING, NOT_RUN), duration, name.

options:
  --json              the steps as one JSON array of {index, name, status, duration, start, finish}
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

examples:
  codeartsbuild steps cb5fa20de5fd4cf8be681d4bd6fdd2f6 61
  codeartsbuild steps $job 61 --json | jq -r '.[] | select(.status == "FAILED") | .name'
]]

HELP.log = [[
usage: codeartsbuild log [options] JOB N

Prints the log of build N of job JOB as it comes (streamed: a log of any size costs a few hundred
KB), byte for byte.

options:
  --tail N            only its last N lines
  --follow            a running build's log as it grows, until the build has ended and its last
                      bytes are out (a finished build's: the whole log, then it ends)
  --output FILE       into FILE instead (written as FILE.partial, renamed once complete; a failure
                      leaves FILE as it was); the byte count on stderr
  --interval SECONDS  with --follow: seconds between requests at the log's end (default 2)
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

examples:
  codeartsbuild log cb5fa20de5fd4cf8be681d4bd6fdd2f6 61 --tail 100
  codeartsbuild log $job 62 --follow
  codeartsbuild log $job 61 --output 61.log
]]

HELP.wait = [[
usage: codeartsbuild wait [options] JOB [N]

Waits until build N of job JOB (default: the newest build) is no longer running, then prints its
record in one line. On a terminal, a progress line on stderr shows the status and the running step.

options:
  --timeout DURATION  give up after DURATION: 90s, 30m, 1h30m, or seconds (default: never)
  --interval SECONDS  seconds between polls at first (default 2; it grows to 30 while nothing changes)
  --json              the final record as one JSON object
  --region REGION, --endpoint URL, --profile NAME, -q/--quiet: see `codeartsbuild --help`

exit status: 0 the build ended SUCCESS, 1 it ended otherwise (FAILED, ABORTED, ...) or a request
failed, 2 usage error, 3 timed out (the build still runs).

examples:
  codeartsbuild wait $job --timeout 30m && echo deployed
  codeartsbuild wait $job 62 --json | jq -r .status
]]

COMMANDS.steps = { args = { "JOB", "N" }, options = { json = true } }
COMMANDS.log = { args = { "JOB", "N" }, options = { tail = true, follow = true, output = true, interval = true } }
COMMANDS.wait = { args = { "JOB" }, optional = { "N" }, options = { timeout = true, interval = true, json = true } }
TAKES_VALUE.tail, TAKES_VALUE.output, TAKES_VALUE.timeout, TAKES_VALUE.interval = true, true, true, true
TAKES_VALUE.follow = false
COMMAND_NAMES = "record, list, summary, latest, steps, log, wait, help"

--- Seconds from the user's text: 90, 90s, 30m, 1h30m, 2.5h; a usage error otherwise.
local function duration_seconds(command, what, text)
  local total, rest = 0, type(text) == "string" and text or ""
  if rest:match("^%d+%.?%d*$") then rest = rest .. "s" end
  local units = { s = 1, m = 60, h = 3600, d = 86400 }
  while rest ~= "" do
    local number, unit, after = rest:match("^(%d+%.?%d*)([smhd])(.*)$")
    if not number then
      usage_error(command, ("%s must be a duration such as 90s, 30m or 1h30m, got '%s'"):format(what, shown(text)))
    end
    total, rest = total + tonumber(number) * units[unit], after
  end
  if text == "" then usage_error(command, what .. " needs a duration") end
  return total
end

--- Writes text to stdout, or fails (a closed pipe, a full disk): exit status 1.
local function write_out(run, text)
  local ok, why = run.stdout:write(text)
  if not ok then fail(("cannot write the output: %s"):format(tostring(why))) end
end

function commands.steps(run, args)
  local job = check_job("steps", args[1])
  local n = whole("steps", "N", args[2], 1, MAX_BUILD_NO)
  local steps, message, err = run:client_for():steps(job, n)
  if not steps then fail(failure_message(message, err)) end
  if run.options.json then
    local plain = {}
    for i, step in ipairs(steps) do
      plain[i] = { index = step.index, name = step.name, status = step.status, duration = step.duration,
        start = step.start, finish = step.finish }
    end
    write_out(run, (#plain > 0 and encode(plain, ranks{ "index", "name", "status", "duration", "start", "finish" })
      or "[]") .. "\n")
  elseif #steps > 0 then
    write_out(run, tostring(steps) .. "\n")
  else
    run:note(("build %d of %s has no steps"):format(n, job))
  end
end

function commands.log(run, args)
  local job = check_job("log", args[1])
  local n = whole("log", "N", args[2], 1, MAX_BUILD_NO)
  local options = run.options
  local given = (options.tail and 1 or 0) + (options.follow and 1 or 0) + (options.output and 1 or 0)
  if given > 1 then usage_error("log", "--tail, --follow and --output go one at a time") end
  if options.interval and not options.follow then usage_error("log", "--interval goes with --follow") end
  local interval = options.interval and duration_seconds("log", "--interval", options.interval)
  if interval and interval <= 0 then usage_error("log", "--interval must be more than 0") end
  local client = run:client_for()
  if options.follow then
    local iterator, message, err = client:follow(job, n, { interval = interval })
    if not iterator then fail(failure_message(message, err)) end
    local ok, failure = pcall(function()
      for text in iterator do
        write_out(run, text)
        run.stdout:flush()
      end
    end)
    if not ok then
      -- the follow's own failure is an err table; anything else (a Failure, an interrupt) goes on up
      if type(failure) == "table" and failure.kind and getmetatable(failure) ~= Failure then
        fail(failure_message(failure.message, failure))
      end
      error(failure, 0)
    end
    return
  end
  local result, message, err
  if options.tail then
    result, message, err = client:log(job, n, { tail = whole("log", "--tail", options.tail, 0, MAX_BUILD_NO) })
    if result then write_out(run, result) end
  elseif options.output then
    result, message, err = client:log(job, n, { to_file = options.output })
    if result then run:note(("%d bytes written to %s"):format(result, options.output)) end
  else
    result, message, err = client:log(job, n, { on_chunk = function(text) write_out(run, text) end })
  end
  if not result then fail(failure_message(message, err)) end
end

function commands.wait(run, args)
  local job = check_job("wait", args[1])
  local n = args[2] and whole("wait", "N", args[2], 1, MAX_BUILD_NO) or nil
  local options = run.options
  local timeout = options.timeout and duration_seconds("wait", "--timeout", options.timeout)
  local interval = options.interval and duration_seconds("wait", "--interval", options.interval)
  if interval and interval <= 0 then usage_error("wait", "--interval must be more than 0") end
  local client = run:client_for()
  local progress = not options.quiet and run.stderr_is_terminal()
  local shown_line = false
  local function on_change(rec, steps)
    if not progress then return end
    local running, count = nil, steps and #steps or 0
    for _, step in ipairs(steps or {}) do
      if step.status == "RUNNING" then running = step break end
    end
    local line = ("#%s %s"):format(tostring(rec.buildNo or n or "?"), tostring(rec.status))
    if running then line = line .. ("  step %d/%d %s"):format(running.index, count, running.name) end
    run.stderr:write("\r", (line:gsub("%c", "?")), "\27[K")
    run.stderr:flush()
    shown_line = true
  end
  local rec, message, err = client:wait(job, n, { timeout = timeout, interval = interval,
    on_change = progress and on_change or nil })
  if shown_line then
    run.stderr:write("\r\27[K")
    run.stderr:flush()
  end
  if not rec then
    if err and err.kind == "timeout" and err.record then
      error(setmetatable({ message = failure_message(message, err), status = M.TIMED_OUT }, Failure), 0)
    end
    fail(failure_message(message, err))
  end
  write_out(run, (options.json and encode(rec, RECORD_ORDER) or tostring(rec)) .. "\n")
  return tostring(rec.status):upper() == "SUCCESS" and M.OK or M.FAILED
end

-- ------------------------------------------------------------------------------------------------
-- main

--- Whether file descriptor fd of this process is a terminal (the shell inherits Lua's streams).
local function is_terminal(fd)
  local ok, _, code = os.execute(("test -t %d"):format(fd))
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1: the status
  return ok == true and (code == nil or code == 0)
end

local function version_line()
  local ok, cb = pcall(require, "codeartsbuild")
  local lua = rawget(_G, "jit") and rawget(_G, "jit").version or _VERSION
  if ok then return ("codeartsbuild %s (%s)\n"):format(cb._VERSION, lua) end
  return ("codeartsbuild (the module does not load: %s) (%s)\n"):format((tostring(cb):gsub("\n.*", "")), lua)
end

local function dispatch(run, args)
  local command, positional, options, order = parse(args)
  run.command, run.options = command, options
  if command == nil then
    if options.version then
      run.stdout:write(version_line())
      return M.OK
    end
    if options.help then
      run.stdout:write(HELP.main)
      return M.OK
    end
    usage_error(nil, "no command given (commands: " .. COMMAND_NAMES .. ")")
  end
  local spec = COMMANDS[command]
  if not spec then
    usage_error(nil, ("unknown command '%s' (commands: %s)"):format(shown(command), COMMAND_NAMES))
  end
  if options.help then
    run.stdout:write(HELP[command])
    return M.OK
  end
  if options.version then
    run.stdout:write(version_line())
    return M.OK
  end
  for _, name in ipairs(order) do
    if not allowed(command, name) then
      usage_error(command, ("%s takes no --%s"):format(command, name))
    end
  end
  local most = #spec.args + (spec.optional and #spec.optional or 0)
  if #positional < #spec.args then
    usage_error(command, ("missing %s"):format(spec.args[#positional + 1]))
  end
  if #positional > most then
    usage_error(command, ("unexpected argument '%s'"):format(shown(positional[most + 1])))
  end
  return commands[command](run, positional) or M.OK
end

--- Runs the tool with the words of its command line; returns the exit status (0, 1 or 2).
-- `env` replaces the process's streams and environment, for tests: `stdout`, `stderr` (file
-- handles), `getenv` (a function), `stderr_is_terminal`, `stdout_is_terminal` (functions).
---@param args string[]
---@param env? table
---@return integer
-- @usage os.exit(require("codeartsbuild.cli").main({ "latest", "cb5fa20de5fd4cf8be681d4bd6fdd2f6" }))
function M.main(args, env)
  env = env or {}
  local run = setmetatable({
    stdout = env.stdout or io.stdout,
    stderr = env.stderr or io.stderr,
    getenv = env.getenv or os.getenv,
    stderr_is_terminal = env.stderr_is_terminal or function() return is_terminal(2) end,
    stdout_is_terminal = env.stdout_is_terminal or function() return is_terminal(1) end,
    options = {},
  }, Run)
  local ok, result = xpcall(function() return dispatch(run, args or {}) end, function(e)
    if type(e) == "table" then return e end
    return { internal = tostring(e), traceback = debug.traceback(tostring(e), 2) }
  end)
  if run.progress_clear then run.progress_clear() end
  if run.client then run.client:close() end
  run.stdout:flush()
  if ok then return result end
  local stderr = run.stderr
  if getmetatable(result) == UsageError then
    local help = result.command and COMMANDS[result.command] and result.command ~= "help"
      and ("codeartsbuild " .. result.command .. " --help") or "codeartsbuild --help"
    if result.no_pointer then
      stderr:write(("codeartsbuild: %s\n"):format(result.message))
    else
      stderr:write(("codeartsbuild: %s (see %s)\n"):format(result.message, help))
    end
    return M.USAGE
  end
  if getmetatable(result) == Failure then
    stderr:write("codeartsbuild: ", result.message, "\n")
    return result.status or M.FAILED
  end
  if result.internal and result.internal:find("interrupted!", 1, true) then
    stderr:write("codeartsbuild: interrupted\n")
    return 130
  end
  stderr:write("codeartsbuild: internal error: ", tostring(result.internal or result.message), "\n")
  if (run.getenv("CODEARTSBUILD_DEBUG") or "") ~= "" and result.traceback then
    stderr:write(result.traceback, "\n")
  end
  return M.FAILED
end

return M
