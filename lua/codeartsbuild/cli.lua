--- The command-line tool's logic; `bin/codeartsbuild` is `os.exit(require("codeartsbuild.cli").main(arg))`.
--
--     codeartsbuild record JOB N [--json]
--     codeartsbuild list JOB [--last N | --from A --to B | --since DATE] [--status S] [--branch B]
--                            [--trigger T] [--until DATE] [--limit N] [--reverse] [--json | --csv]
--     codeartsbuild summary JOB [the same choice of builds] [--json]
--     codeartsbuild latest JOB | history JOB | get PATH | config [JOB]
--     codeartsbuild steps JOB N [--json]
--     codeartsbuild log JOB N [--tail N | --follow [--interval SECONDS] | --output FILE]
--     codeartsbuild wait JOB [N] [--timeout DURATION] [--interval SECONDS] [--json]
--     codeartsbuild completion bash|zsh | man | help [COMMAND]
--
-- Every command takes `--region`, `--endpoint`, `--profile`, `--timeout`, `--retries`,
-- `--no-cache`, `--utc`, `--verbose`, `--quiet` and `--help`. JOB is a job id or the console's URL
-- of the build task. Exit status: 0 success, 1 a request failed (or no client could be made), 2
-- usage error, 3 `wait` timed out (and 1 when the build it waited for did not succeed); an error
-- is one line on stderr. Secrets are never taken on the command line.
--
-- One table (`COMMANDS`, `OPTIONS` below) says what each command takes: the parser, the help
-- texts, the man page (`codeartsbuild man`) and the bash and zsh completions (`codeartsbuild
-- completion bash`) are all made from it, so that they cannot disagree.
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

-- The build-number range and the job-id check are the C core's (core.MAX_BUILD_NO,
-- core.check_job_id), as are the regions and the environment variables the help lists.
local core = require "codeartsbuild.core"

local MAX_BUILD_NO = core.MAX_BUILD_NO
local PROGRESS_THRESHOLD = 20 -- more builds than this: a progress bar (on a terminal)
local DEFAULT_CONCURRENCY = 16
local WIDTH = 100 -- help lines at most this wide

-- ------------------------------------------------------------------------------------------------
-- Text helpers

--- A word of the user's (or the service's), made safe to show in one line: no control
-- characters, not too long.
local function shown(word)
  word = tostring(word):gsub("%c", "?")
  if #word > 60 then word = word:sub(1, 57) .. "..." end
  return word
end

--- `text` wrapped to WIDTH columns, each line after the first indented by `indent` blanks.
local function wrap(text, indent, first_width)
  local lines, line = {}, ""
  local width = first_width or WIDTH
  for word in text:gmatch("%S+") do
    if line ~= "" and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line, width = (" "):rep(indent) .. word, WIDTH
    else
      line = line == "" and (#lines > 0 and (" "):rep(indent) or "") .. word or line .. " " .. word
    end
  end
  if line ~= "" then lines[#lines + 1] = line end
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------------------------------------------
-- What the tool takes: every option once, and the commands with what they take

-- Options: name, the value's placeholder (nil for a flag), what it does, and
--   short       a one-letter name
--   repeatable  given more than once (or with commas), the values add up: "any of these"
--   values      the values completion offers (a list, or a function that returns one)
--   number      the range of a whole number { low, high }
--   global      taken by every command
local OPTIONS = {
  { "region", "REGION", "the service's region, e.g. cn-north-4", global = true,
    values = function() return core.regions end },
  { "endpoint", "URL", "https://host[:port] instead of the region's endpoint", global = true },
  { "profile", "NAME", "credentials from section [NAME] of the credentials file", global = true },
  { "timeout", "SECONDS", "give up an attempt after this long (default 30)", global = true },
  { "retries", "N", "attempts after a failure that may pass (a timeout, HTTP 5xx, 429), 0 to 10 (default 3)",
    global = true, number = { 0, 10 } },
  { "no-cache", nil, "ask the service for every build, also for those in the cache of finished builds",
    global = true },
  { "utc", nil, "times in UTC (default: the local time zone), with their offset either way", global = true },
  { "verbose", nil, "one line on stderr per request: method, path, status, attempts, time, request id",
    short = "v", global = true },
  { "quiet", nil, "no progress bar and no notes on stderr (errors are still printed)", short = "q", global = true },
  { "help", nil, "this help, or a command's (`codeartsbuild COMMAND --help`)", short = "h", global = true },
  { "version", nil, "the version", global = true },
  -- Which builds (list, summary)
  { "last", "N", "the newest N builds", number = { 1, MAX_BUILD_NO } },
  { "from", "A", "builds from A (--from alone: up to the newest)", number = { 1, MAX_BUILD_NO } },
  { "to", "B", "builds up to B (--to alone: from 1); past the newest build, up to the newest",
    number = { 1, MAX_BUILD_NO } },
  { "since", "DATE", "started at or after DATE: 2024-05-01 or 2024-05-01T08:00 (in the local time zone; "
    .. "in UTC with --utc), or with an offset, 2024-05-01T08:00:00+08:00. Without --last, --from or --to, "
    .. "the builds from the newest back to the first that started before DATE" },
  { "until", "DATE", "started before DATE. Without --last, --from, --to or --since, the last %d builds "
    .. "that started before DATE" },
  { "status", "S", "the status, any case: " .. table.concat(query.KNOWN.status, ", "), repeatable = true,
    values = query.KNOWN.status },
  { "branch", "B", "the branch, exactly", repeatable = true },
  { "trigger", "T", "the trigger, any case: " .. table.concat(query.KNOWN.trigger, ", "), repeatable = true,
    values = query.KNOWN.trigger },
  { "concurrency", "N", "requests in flight at once, 1 to 1024 (default 16)", number = { 1, 1024 } },
  -- Output
  { "limit", "N", "stop after N", number = { 1, MAX_BUILD_NO } },
  { "reverse", nil, "newest first" },
  { "json", nil, "JSON" },
  { "csv", nil, "comma-separated values (RFC 4180 quoting) under a header row; duration in milliseconds" },
  { "days", "N", "the last N days, 1 to 30 (default 30)", number = { 1, 30 } },
  -- After the record (steps, log, wait: issue 14)
  { "tail", "N", "only the last N lines", number = { 0, MAX_BUILD_NO } },
  { "follow", nil, "a running build's log as it grows, until the build has ended and its last bytes are out" },
  { "output", "FILE", "into FILE instead (written as FILE.partial, renamed once complete)" },
  { "interval", "SECONDS", "seconds between requests while nothing changes, at first (default 2)" },
}

local OPTION = {}
for _, option in ipairs(OPTIONS) do
  option.name, option.value, option.help = option[1], option[2], option[3]
  OPTION[option.name] = option
end
local SHORT = {}
for _, option in ipairs(OPTIONS) do
  if option.short then SHORT[option.short] = option.name end
end

-- Names people reach for to pass a secret: refused with an explanation.
local SECRET = {
  ak = true, sk = true, token = true, ["security-token"] = true, security_token = true, password = true,
  ["secret-key"] = true, ["access-key"] = true, ["auth-token"] = true,
}

local SELECT_OPTIONS = { "last", "from", "to", "since", "until" }
local FILTER_OPTIONS = { "status", "branch", "trigger" }

local EXAMPLE_JOB = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

-- Commands: name, positional arguments (`optional` ones after), a one-line summary, what it does,
-- its own options (name, or { name, what it does for this command }), whether it chooses builds
-- (`select`: the default number of them), and examples.
local COMMANDS = {
  {
    name = "record", args = { "JOB", "N" },
    summary = "build N of job JOB, one field a line",
    about = "Prints build N of job JOB as an aligned field list: the fields of the API reference page in its "
      .. "order (absent ones left out), then any others the service sent; times in the local zone with their "
      .. "offset. A build that has ended is read from the cache when it is there.",
    options = { { "json", "the record as one JSON object, with the API's camelCase names and values" } },
    examples = { "codeartsbuild record $job 61", "codeartsbuild record $job 61 --json | jq -r .commit" },
  },
  {
    name = "list", args = { "JOB" }, select = 20,
    summary = "one line per build: the last 20, a range, or since a date, filtered",
    about = "Prints one line per build of job JOB, in build order: build, status, branch, commit, trigger, "
      .. "duration and start time, aligned under a line of titles. Builds that no longer exist are skipped; "
      .. "builds that could not be read are named in one line on stderr, and the exit status is then 1. A "
      .. "progress bar shows on stderr when it is a terminal and more than 20 builds of a range are read.",
    options = {
      { "limit", "print at most N matching builds: the oldest N, or the newest N with --reverse" },
      "reverse",
      { "json", "one JSON object per line, every field, the API's camelCase names" },
      "csv", "concurrency",
    },
    examples = {
      "codeartsbuild list $job", "codeartsbuild list $job --since 2024-05-01 --status failed",
      "codeartsbuild list $job --last 1000 --status failed --reverse --limit 5    # the 5 newest failures",
      "codeartsbuild list $job --from 1 --to 500 --csv > builds.csv",
    },
  },
  {
    name = "summary", args = { "JOB" }, select = 100,
    summary = "counts, success rate and durations of the last 100 builds, a range, or since a date",
    about = "Prints the summary of builds of job JOB: how many, by status, the success rate of the finished "
      .. "ones, durations (min, p50, p95, max), branches and triggers, and the builds that could not be read.",
    options = { { "json", "the summary as one JSON object (durations in seconds)" }, "concurrency" },
    examples = { "codeartsbuild summary $job --since 2024-05-01",
      "codeartsbuild summary $job --last 500 --branch main" },
  },
  {
    name = "latest", args = { "JOB" },
    summary = "the newest build number",
    about = "Prints the newest build number of job JOB: from the running-status API, or by probing record-info "
      .. "(about 2 log2(n) requests) where that API is not published.",
    examples = { 'codeartsbuild list "$job" --from "$(codeartsbuild latest "$job")"' },
  },
  -- After the record (issue 14): steps, log, wait
  {
    name = "steps", args = { "JOB", "N" },
    summary = "the steps of build N: status, duration, name",
    about = "Prints the steps of build N of job JOB in order, one aligned line each: position, status (SUCCESS, "
      .. "FAILED, RUNNING, NOT_RUN), duration and name.",
    options = { { "json", "the steps as one JSON array of {index, name, status, duration, start, finish}" } },
    examples = { "codeartsbuild steps $job 61",
      "codeartsbuild steps $job 61 --json | jq -r '.[] | select(.status == \"FAILED\") | .name'" },
  },
  {
    name = "log", args = { "JOB", "N" },
    summary = "the log of build N (--tail N, --follow, --output FILE)",
    about = "Prints the log of build N of job JOB as it comes, byte for byte (streamed: a log of any size costs "
      .. "a few hundred KB). --follow prints a running build's log as it grows, until the build has ended and "
      .. "its last bytes are out; --output writes it into a file, whole or not at all, and says how many bytes "
      .. "on stderr.",
    options = { "tail", "follow", "output",
      { "interval", "with --follow: seconds between requests at the log's end, at first (default 2)" } },
    examples = { "codeartsbuild log $job 61 --tail 100", "codeartsbuild log $job 62 --follow",
      "codeartsbuild log $job 61 --output 61.log" },
  },
  {
    name = "wait", args = { "JOB" }, optional = { "N" },
    summary = "waits until build N (default: the newest) has ended; exit 0 on SUCCESS",
    about = "Waits until build N of job JOB (default: the newest build) is no longer running, then prints its "
      .. "record in one line. On a terminal, a progress line on stderr shows the status and the running step. "
      .. "Exit status: 0 the build ended SUCCESS, 1 it ended otherwise (FAILED, ABORTED, ...) or a request "
      .. "failed, 3 timed out (the build still runs).",
    options = {
      { "timeout", "for wait, the whole wait: give up after this long, 90s, 30m, 1h30m or seconds (default: "
        .. "never); each request keeps the default 30 s" },
      { "interval", "seconds between polls at first (default 2; it grows to 30 while nothing changes)" },
      { "json", "the final record as one JSON object" },
    },
    examples = { "codeartsbuild wait $job --timeout 30m && echo deployed",
      "codeartsbuild wait $job 62 --json | jq -r .status" },
  },
  {
    name = "history", args = { "JOB" },
    summary = "the builds of the last days, from the history API",
    about = "Prints the builds of job JOB of the last 30 days (--days), newest first, from the history API (one "
      .. "request per 100 builds): build, result, start and end.",
    options = { "days", { "limit", "print at most N builds" },
      { "json", "one JSON object per line, as the API sent it" } },
    examples = { "codeartsbuild history $job --days 7" },
  },
  {
    name = "get", args = { "PATH" },
    summary = "any signed GET on the service's endpoint, its JSON printed",
    about = "Sends GET PATH (with its ?query) to the endpoint, signed as every request is, and prints the JSON "
      .. "it answered: indented on a terminal, one line otherwise. PATH starts with a /; the API reference "
      .. "lists the paths.",
    examples = { "codeartsbuild get /v1/job/$job/running-status",
      "codeartsbuild get '/v3/jobs/'$job'/history?offset=0&limit=10&interval=7' | jq .total" },
  },
  {
    name = "config", args = {}, optional = { "JOB" },
    summary = "what the tool would use, and one request to check it",
    about = "Prints the endpoint, the API, where the credentials come from (never their values), the project "
      .. "id and the cache, then sends one request: with JOB, the newest build of that job; without, a "
      .. "record that does not exist, which the service answers only once it has accepted the credentials. "
      .. "The exit status is 1 when that request fails.",
    examples = { "codeartsbuild config", "codeartsbuild config $job --verbose" },
  },
  {
    name = "completion", args = { "SHELL" },
    summary = "the bash or zsh completion script",
    about = "Prints the completion script for SHELL, bash or zsh, made from the tool's own table of commands "
      .. "and options (the rock installs both under share/).",
    examples = { 'eval "$(codeartsbuild completion bash)"    # in ~/.bashrc',
      'codeartsbuild completion zsh > "${fpath[1]}/_codeartsbuild"' },
  },
  {
    name = "man", args = {},
    summary = "the manual page, in roff",
    about = "Prints the manual page (roff), made from the tool's own table of commands and options, as "
      .. "share/man/man1/codeartsbuild.1 has it.",
    examples = { "codeartsbuild man | man -l -" },
  },
  {
    name = "help", args = {}, optional = { "COMMAND" },
    summary = "this text, or a command's (as COMMAND --help)",
    about = "Prints the help of COMMAND, or the general help.",
    examples = { "codeartsbuild help list" },
  },
}

local COMMAND = {}
local COMMAND_NAMES = {}
for _, command in ipairs(COMMANDS) do
  COMMAND[command.name] = command
  COMMAND_NAMES[#COMMAND_NAMES + 1] = command.name
  -- What the command takes: the global options, its own, the choice of builds and the filters.
  command.takes, command.own = {}, {}
  for _, item in ipairs(command.options or {}) do
    local name = type(item) == "table" and item[1] or item
    command.own[#command.own + 1] = { name = name, help = type(item) == "table" and item[2] or OPTION[name].help }
    command.takes[name] = true
  end
  if command.select then
    for _, name in ipairs(SELECT_OPTIONS) do command.takes[name] = true end
    for _, name in ipairs(FILTER_OPTIONS) do command.takes[name] = true end
  end
  for _, option in ipairs(OPTIONS) do
    if option.global then command.takes[option.name] = true end
  end
end

--- The option as the help writes it: `--last N`, `-q, --quiet`.
local function option_words(option)
  local words = "--" .. option.name .. (option.value and (" " .. option.value) or "")
  if option.short then words = "-" .. option.short .. ", " .. words end
  return words
end

--- One option's help line(s): the option in a column of 22, what it does after.
local function option_line(option, help)
  local words = "  " .. option_words(option)
  if #words > 21 then return words .. "\n" .. (" "):rep(22) .. wrap(help, 22, WIDTH - 22) end
  return words .. (" "):rep(22 - #words) .. wrap(help, 22, WIDTH - 22)
end

local function usage_of(command)
  local words = { "codeartsbuild", command.name }
  if next(command.takes) then words[#words + 1] = "[options]" end
  for _, arg in ipairs(command.args) do words[#words + 1] = arg end
  for _, arg in ipairs(command.optional or {}) do words[#words + 1] = "[" .. arg .. "]" end
  return table.concat(words, " ")
end

-- ------------------------------------------------------------------------------------------------
-- Help texts

local function configuration_text()
  local lines = {
    "configuration (as the library reads it; the options win over the environment):",
    "  endpoint      --endpoint, else --region, else CODEARTSBUILD_ENDPOINT, else",
    "                CODEARTSBUILD_REGION (https://cloudbuild-ext.REGION.myhuaweicloud.com)",
    "  credentials   --profile NAME: ak, sk, project_id, security_token of section [NAME] of the",
    "                credentials file; else CODEARTSBUILD_TOKEN, CODEARTSBUILD_AK/_SK,",
    "                HUAWEICLOUD_SDK_AK/_SK, CLOUD_SDK_AK/_SK, then section [basic] of the",
    "                credentials file (HUAWEICLOUD_SDK_CREDENTIALS_FILE, default",
    "                ~/.huaweicloud/credentials)",
    "  project id    CODEARTSBUILD_PROJECT_ID, HUAWEICLOUD_SDK_PROJECT_ID, the file's project_id",
    "  CA file       CODEARTSBUILD_CA_FILE (default: the system's trusted CAs)",
    "  cache         finished builds' records in $XDG_CACHE_HOME/codeartsbuild (default",
    "                ~/.cache/codeartsbuild); --no-cache asks the service for every build",
    "  colours       only when stdout is a terminal; NO_COLOR=1 turns them off",
    "  times         the local time zone (TZ), with the offset; --utc for UTC",
    "`codeartsbuild config` shows what is used; `codeartsbuild man` lists every variable.",
    "Secrets are never taken on the command line, where other users of the machine can read them",
    "(ps, /proc): there is no --ak, --sk or --token option. Use the environment or the file.",
  }
  return table.concat(lines, "\n")
end

local function main_help()
  local lines = {
    "usage: codeartsbuild [options] COMMAND [arguments]",
    "",
    "Reads Huawei Cloud CodeArts Build records.",
    "",
    "commands:",
  }
  for _, command in ipairs(COMMANDS) do
    local head = "  " .. command.name .. (#command.args > 0 and (" " .. table.concat(command.args, " ")) or "")
    for _, arg in ipairs(command.optional or {}) do head = head .. " [" .. arg .. "]" end
    lines[#lines + 1] = head .. (" "):rep(math.max(1, 22 - #head)) .. wrap(command.summary, 22, WIDTH - 22)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options for every command:"
  for _, option in ipairs(OPTIONS) do
    if option.global then lines[#lines + 1] = option_line(option, option.help) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = wrap("JOB is the 32-character job id at the end of the build task's URL in the console, "
    .. "or that URL.", 0)
  lines[#lines + 1] = ""
  lines[#lines + 1] = configuration_text()
  lines[#lines + 1] = ""
  lines[#lines + 1] = "exit status: 0 success, 1 a request failed (or no client could be made: no credentials,"
  lines[#lines + 1] = "unknown region...), 2 usage error (the command line is wrong)."
  lines[#lines + 1] = ""
  lines[#lines + 1] = "examples:"
  lines[#lines + 1] = "  export CODEARTSBUILD_REGION=cn-north-4 HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=..."
  lines[#lines + 1] = "  codeartsbuild record " .. EXAMPLE_JOB .. " 61"
  lines[#lines + 1] = "  codeartsbuild list " .. EXAMPLE_JOB .. " --last 200 --status failed --branch main"
  lines[#lines + 1] = "  codeartsbuild summary " .. EXAMPLE_JOB .. " --since 2024-05-01"
  return table.concat(lines, "\n") .. "\n"
end

local function command_help(command)
  local lines = { "usage: " .. usage_of(command), "", wrap(command.about, 0), "" }
  if command.select then
    lines[#lines + 1] = ("which builds (default: the last %d):"):format(command.select)
    for _, name in ipairs(SELECT_OPTIONS) do
      lines[#lines + 1] = option_line(OPTION[name], OPTION[name].help:format(command.select))
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = "which of them (each filter given must match; repeat an option, or separate values with"
    lines[#lines + 1] = "commas, for \"any of these\"; --since and --until filter too):"
    for _, name in ipairs(FILTER_OPTIONS) do lines[#lines + 1] = option_line(OPTION[name], OPTION[name].help) end
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "options:"
  for _, own in ipairs(command.own) do lines[#lines + 1] = option_line(OPTION[own.name], own.help) end
  lines[#lines + 1] = "  --region, --endpoint, --profile, --timeout, --retries, --no-cache, --utc, -v/--verbose,"
  lines[#lines + 1] = "  -q/--quiet: see `codeartsbuild --help`"
  lines[#lines + 1] = ""
  lines[#lines + 1] = #command.examples > 1 and "examples:" or "example:"
  if table.concat(command.examples):find("$job", 1, true) then
    lines[#lines + 1] = "  job=" .. EXAMPLE_JOB
  end
  for _, example in ipairs(command.examples) do lines[#lines + 1] = "  " .. example end
  return table.concat(lines, "\n") .. "\n"
end

local function help_text(name)
  if name == nil then return main_help() end
  return command_help(COMMAND[name])
end

-- ------------------------------------------------------------------------------------------------
-- The man page and the completions, from the same tables

--- The environment variables the tool reads: the library's, then its own.
local function environment()
  local list = {}
  for _, variable in ipairs(core.environment) do list[#list + 1] = variable end
  for _, variable in ipairs{
    { name = "XDG_CACHE_HOME", what = "the cache of finished builds is $XDG_CACHE_HOME/codeartsbuild "
      .. "(default ~/.cache/codeartsbuild)" },
    { name = "TZ", what = "the time zone times are shown in (unless --utc)" },
    { name = "NO_COLOR", what = "when set and not empty, no colours" },
    { name = "TERM", what = "dumb: no colours" },
    { name = "CODEARTSBUILD_DEBUG", what = "when set, an internal error prints its traceback" },
  } do
    list[#list + 1] = variable
  end
  return list
end

--- Text for roff: backslashes and hyphens escaped, a leading dot or quote neutralised.
local function roff(text)
  text = text:gsub("\\", "\\e"):gsub("%-", "\\-")
  return (text:gsub("^([.'])", "\\&%1"):gsub("\n([.'])", "\n\\&%1"))
end

local function man_page()
  local version = core.version
  local out = {
    ('.TH CODEARTSBUILD 1 "" "codeartsbuild %s" "User Commands"'):format(version),
    ".\\\" Made by `codeartsbuild man` from the tool's own table of commands (lua/codeartsbuild/cli.lua).",
    ".SH NAME",
    "codeartsbuild \\- Huawei Cloud CodeArts Build records from the command line",
    ".SH SYNOPSIS",
    ".B codeartsbuild",
    "[\\fIoptions\\fR] \\fICOMMAND\\fR [\\fIarguments\\fR]",
    ".SH DESCRIPTION",
    roff("Reads Huawei Cloud CodeArts Build records: one build, a list of builds, their summary, the newest "
      .. "build number, the history API, or any signed GET. JOB is the 32-character job id at the end of the "
      .. "build task's URL in the console, or that URL. The records of builds that have ended are kept in a "
      .. "cache and not asked for again (--no-cache asks for every build)."),
    ".SH COMMANDS",
  }
  local function option_items(list)
    for _, item in ipairs(list) do
      local option = OPTION[item.name]
      local head = "\\fB\\-\\-" .. roff(option.name) .. "\\fR"
        .. (option.value and (" \\fI" .. option.value .. "\\fR") or "")
      if option.short then head = "\\fB\\-" .. option.short .. "\\fR, " .. head end
      out[#out + 1] = ".TP"
      out[#out + 1] = head
      out[#out + 1] = roff(item.help)
    end
  end
  for _, command in ipairs(COMMANDS) do
    out[#out + 1] = ".SS " .. roff(usage_of(command))
    out[#out + 1] = roff(command.about)
    local list = {}
    if command.select then
      for _, name in ipairs(SELECT_OPTIONS) do
        list[#list + 1] = { name = name, help = OPTION[name].help:format(command.select) }
      end
      for _, name in ipairs(FILTER_OPTIONS) do list[#list + 1] = { name = name, help = OPTION[name].help } end
    end
    for _, own in ipairs(command.own) do list[#list + 1] = own end
    if #list > 0 then
      out[#out + 1] = ".RS"
      option_items(list)
      out[#out + 1] = ".RE"
    end
  end
  out[#out + 1] = ".SH OPTIONS"
  out[#out + 1] = roff("Every command takes these.")
  local globals = {}
  for _, option in ipairs(OPTIONS) do
    if option.global then globals[#globals + 1] = { name = option.name, help = option.help } end
  end
  option_items(globals)
  out[#out + 1] = ".SH ENVIRONMENT"
  out[#out + 1] = roff("Explicit options win over the environment. Secrets are never taken on the command line.")
  for _, variable in ipairs(environment()) do
    out[#out + 1] = ".TP"
    out[#out + 1] = ".B " .. roff(variable.name)
    out[#out + 1] = roff(variable.what)
  end
  out[#out + 1] = ".SH FILES"
  out[#out + 1] = ".TP"
  out[#out + 1] = ".I ~/.huaweicloud/credentials"
  out[#out + 1] = roff("The official SDKs' credentials file: sections of ak, sk, project_id and security_token; "
    .. "[basic] by default, another with --profile.")
  out[#out + 1] = ".TP"
  out[#out + 1] = ".I ~/.cache/codeartsbuild/"
  out[#out + 1] = roff("The records of finished builds, one JSON file per 1,000 builds of a job, at most 64 MB in "
    .. "all; never a credential.")
  out[#out + 1] = ".SH EXIT STATUS"
  out[#out + 1] = roff("0 success; 1 a request failed, or no client could be made (no credentials, profile not "
    .. "found...); 2 usage error: the command line is wrong and nothing was sent.")
  out[#out + 1] = ".SH EXAMPLES"
  out[#out + 1] = ".nf"
  out[#out + 1] = roff("job=" .. EXAMPLE_JOB)
  for _, command in ipairs(COMMANDS) do
    for _, example in ipairs(command.examples) do out[#out + 1] = roff(example) end
  end
  out[#out + 1] = ".fi"
  out[#out + 1] = ".SH SEE ALSO"
  out[#out + 1] = roff("The README of codeartsbuild, and its API reference (docs/index.html).")
  return table.concat(out, "\n") .. "\n"
end

--- The values completion offers for an option, or nil.
local function values_of(option)
  local values = option.values
  if type(values) == "function" then values = values() end
  return values
end

local function bash_completion()
  local out = {
    "# bash completion for codeartsbuild. Made by `codeartsbuild completion bash` from the tool's own table",
    "# of commands and options: do not edit.",
    "_codeartsbuild() {",
    "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} command= i",
  }
  local with_value = {}
  for _, option in ipairs(OPTIONS) do
    if option.value then with_value[#with_value + 1] = "--" .. option.name end
  end
  out[#out + 1] = "  for ((i = 1; i < COMP_CWORD; i++)); do"
  out[#out + 1] = "    case ${COMP_WORDS[i]} in"
  out[#out + 1] = "      " .. table.concat(with_value, "|") .. ") ((i++)) ;;"
  out[#out + 1] = "      -*) ;;"
  out[#out + 1] = "      *) command=${COMP_WORDS[i]}; break ;;"
  out[#out + 1] = "    esac"
  out[#out + 1] = "  done"
  out[#out + 1] = "  case $prev in"
  for _, option in ipairs(OPTIONS) do
    local values = option.value and values_of(option)
    if values then
      out[#out + 1] = ("    --%s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); return ;;"):format(option.name,
        table.concat(values, " "))
    end
  end
  out[#out + 1] = "    --profile) COMPREPLY=($(compgen -W \"$(sed -n 's/^[[:space:]]*\\[\\([^]]*\\)\\].*/\\1/p' \\"
  out[#out + 1] = "      \"${HUAWEICLOUD_SDK_CREDENTIALS_FILE:-$HOME/.huaweicloud/credentials}\" 2>/dev/null)\" \\"
  out[#out + 1] = "      -- \"$cur\")); return ;;"
  out[#out + 1] = "    " .. table.concat(with_value, "|") .. ") return ;;"
  out[#out + 1] = "  esac"
  local globals = {}
  for _, option in ipairs(OPTIONS) do
    if option.global then globals[#globals + 1] = "--" .. option.name end
  end
  out[#out + 1] = "  local words"
  out[#out + 1] = "  case $command in"
  out[#out + 1] = ("    '') words='%s %s' ;;"):format(table.concat(COMMAND_NAMES, " "), table.concat(globals, " "))
  for _, command in ipairs(COMMANDS) do
    local names = {}
    for _, option in ipairs(OPTIONS) do
      if command.takes[option.name] and not option.global then names[#names + 1] = "--" .. option.name end
    end
    for _, name in ipairs(globals) do names[#names + 1] = name end
    local extra = ""
    if command.name == "help" then extra = table.concat(COMMAND_NAMES, " ") .. " " end
    if command.name == "completion" then extra = "bash zsh " end
    out[#out + 1] = ("    %s) words='%s%s' ;;"):format(command.name, extra, table.concat(names, " "))
  end
  out[#out + 1] = "    *) return ;;"
  out[#out + 1] = "  esac"
  out[#out + 1] = "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))"
  out[#out + 1] = "}"
  out[#out + 1] = "complete -F _codeartsbuild codeartsbuild"
  return table.concat(out, "\n") .. "\n"
end

--- One option as zsh's _arguments takes it: '--name[what it does]:VALUE:(values)'.
local function zsh_spec(option, help)
  local what = (help or option.help):gsub("%%d", "N"):gsub("%s+", " ")
  if #what > 70 then what = what:sub(1, 67) .. "..." end
  what = what:gsub("\\", ""):gsub("[%[%]]", "\\%0"):gsub("'", "'\\''")
  local spec = "--" .. option.name .. "[" .. what .. "]"
  if option.value then
    local values = values_of(option)
    spec = spec .. ":" .. option.value:lower() .. ":" .. (values and ("(" .. table.concat(values, " ") .. ")") or "")
  end
  if option.repeatable then spec = "*" .. spec end
  if option.short then
    spec = ("(-%s --%s)'{-%s,--%s}'%s"):format(option.short, option.name, option.short, option.name,
      spec:gsub("^%*?%-%-" .. option.name:gsub("%p", "%%%0"), ""))
  end
  return "'" .. spec .. "'"
end

local function zsh_completion()
  local out = {
    "#compdef codeartsbuild",
    "# zsh completion for codeartsbuild. Made by `codeartsbuild completion zsh` from the tool's own table",
    "# of commands and options: do not edit.",
    "_codeartsbuild() {",
    "  local curcontext=$curcontext state line",
    "  local -a globals commands",
    "  globals=(",
  }
  for _, option in ipairs(OPTIONS) do
    if option.global then out[#out + 1] = "    " .. zsh_spec(option) end
  end
  out[#out + 1] = "  )"
  out[#out + 1] = "  commands=("
  for _, command in ipairs(COMMANDS) do
    out[#out + 1] = ("    '%s:%s'"):format(command.name, (command.summary:gsub(":", "\\:"):gsub("'", "'\\''")))
  end
  out[#out + 1] = "  )"
  out[#out + 1] = "  _arguments -C $globals '1:command:->command' '*::argument:->argument'"
  out[#out + 1] = "  case $state in"
  out[#out + 1] = "    command) _describe -t commands 'codeartsbuild command' commands ;;"
  out[#out + 1] = "    argument)"
  out[#out + 1] = "      case $words[1] in"
  for _, command in ipairs(COMMANDS) do
    local specs = { "$globals" }
    for _, option in ipairs(OPTIONS) do
      if command.takes[option.name] and not option.global then
        local help
        for _, own in ipairs(command.own) do
          if own.name == option.name then help = own.help end
        end
        specs[#specs + 1] = zsh_spec(option, help or option.help:format(command.select or 0))
      end
    end
    local position = 0
    local function argument(name, optional)
      position = position + 1
      local action = ""
      if name == "COMMAND" then action = "(" .. table.concat(COMMAND_NAMES, " ") .. ")" end
      if name == "SHELL" then action = "(bash zsh)" end
      specs[#specs + 1] = ("'%s%d:%s:%s'"):format(optional and ":" or "", position, name:lower(), action)
    end
    for _, arg in ipairs(command.args) do argument(arg) end
    for _, arg in ipairs(command.optional or {}) do argument(arg, true) end
    out[#out + 1] = ("        %s) _arguments %s ;;"):format(command.name, table.concat(specs, " "))
  end
  out[#out + 1] = "      esac ;;"
  out[#out + 1] = "  esac"
  out[#out + 1] = "}"
  out[#out + 1] = '_codeartsbuild "$@"'
  return table.concat(out, "\n") .. "\n"
end

-- ------------------------------------------------------------------------------------------------
-- Command-line parsing

--- A usage error: raised inside main(), caught there, exit status 2.
local UsageError = {}
UsageError.__index = UsageError

local function usage_error(command, message, no_pointer)
  error(setmetatable({ command = command, message = message, no_pointer = no_pointer }, UsageError), 0)
end

--- Splits argv into the command, its positional arguments, a map of options and their order.
local function parse(args)
  local options, positional, command = {}, {}, nil
  local seen_order = {}
  local i, only_positional = 1, false
  local count = args.n or #args
  for _ = 1, count do
    if i > count then break end
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
          .. "them; use the environment or the credentials file (see codeartsbuild --help)"):format(shown(name)), true)
      end
      local option = OPTION[name]
      if option == nil then
        usage_error(command, ("unknown option --%s"):format(shown(name)))
      end
      if option.value then
        if not has_value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error(command, ("--%s needs a value"):format(name)) end
        end
        if option.repeatable then
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

--- The job id of JOB: a job id of 32 letters or digits, or the console's URL of the build task
-- (the job id is the 32-character part at its end, or after /job/).
local function check_job(command, job)
  local given = job
  if type(job) == "string" and job:match("^[Hh][Tt][Tt][Pp][Ss]?://") and not job:find("%c") then
    local id = job:match("/jobs?/(%w+)") -- .../job/<id>/detail
    if not (id and #id == 32) then
      id = nil
      for part in job:gmatch("%w+") do -- else the last 32-character run of letters and digits
        if #part == 32 then id = part end
      end
    end
    job = id
  end
  if type(job) ~= "string" or core.check_job_id(job) ~= true then
    usage_error(command, ("JOB must be a job id of 32 letters or digits, or the console's URL of the build task "
      .. "(which ends with the job id), got %s"):format(given == nil and "nothing" or ("'" .. shown(given) .. "'")))
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

--- The values of a repeatable option, split at commas.
local function list_of(values)
  local set = {}
  for _, value in ipairs(values) do
    for item in value:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then set[#set + 1] = item end
    end
  end
  return set
end

--- The values of --status or --trigger, upper case; a usage error for one that is not known.
local function known_values(command, key, values)
  local out = {}
  for _, value in ipairs(list_of(values)) do
    local known, message = query.known_value(key, value)
    if not known then usage_error(command, "--" .. key .. ": " .. message) end
    out[#out + 1] = known
  end
  return out
end

--- Epoch seconds of --since or --until: an ISO time with an offset, or a date or a time without
-- one, read in the local time zone (in UTC with --utc), as the tool shows times.
local function date(command, name, text, utc)
  local year, month, day, hour, minute, second = tostring(text):match(
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ]?(%d?%d?):?(%d?%d?):?(%d?%d?)$")
  local parts_fit = year and (hour == "" or #hour == 2) and (minute == "" or #minute == 2)
    and (second == "" or #second == 2) and not (hour ~= "" and minute == "")
  if parts_fit then
    local function part(p) return p ~= "" and p or "00" end
    local in_utc = query.time(("%s-%s-%sT%s:%s:%sZ"):format(year, month, day, part(hour), part(minute),
      part(second)))
    if in_utc and utc then return in_utc end
    if in_utc then -- a real date and time of day: in the local zone
      return os.time{ year = tonumber(year), month = tonumber(month), day = tonumber(day),
        hour = tonumber(part(hour)), min = tonumber(part(minute)), sec = tonumber(part(second)) }
    end
  end
  local seconds = query.time(text)
  if not seconds then
    usage_error(command, ("--%s: '%s' is not a date or a time: 2024-05-01, 2024-05-01T08:00, or with an "
      .. "offset, 2024-05-01T08:00:00+08:00"):format(name, shown(text)))
  end
  return seconds
end

--- The builds a list or summary asks for: { last =, from =, to =, since =, before =, back =,
-- match =, limit =, order =, concurrency = }.
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
  if options.since then sel.since = date(command, "since", options.since, options.utc) end
  if options["until"] then sel.before = date(command, "until", options["until"], options.utc) end
  if sel.since and sel.before and sel.since >= sel.before then
    usage_error(command, "--since must be before --until")
  end
  if not (sel.last or sel.from or sel.to) then
    if sel.since or sel.before then
      -- The dates decide the range: from the newest build back to the first one that started
      -- before --since (or, with --until alone, the last `default_last` that started before it).
      sel.back = true
      if not sel.since then sel.count = default_last end
    else
      sel.last = default_last
    end
  end
  local spec = {}
  if options.status then spec.status = known_values(command, "status", options.status) end
  if options.trigger then spec.trigger = known_values(command, "trigger", options.trigger) end
  if options.branch then spec.branch = list_of(options.branch) end
  if sel.since or sel.before then
    local since, before = sel.since, sel.before
    spec.match = function(rec)
      local start = query.time(rec.startTime)
      return start ~= nil and (since == nil or start >= since) and (before == nil or start < before)
    end
  end
  sel.match = next(spec) and query.where(spec) or nil
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
  local text = json().encode(value)
  if type(value) ~= "string" or not value:find("/", 1, true) then return text end
  -- In cjson's output a backslash is either the start of an escape or written as "\\"; so "\/"
  -- can only be an escaped slash, however many backslashes precede it.
  return (text:gsub("\\/", "/"))
end

local key_texts = {} -- key -> its JSON text: a record's 33 names are written for every record
local function key_text(key)
  local text = key_texts[key]
  if not text then
    text = json_scalar(tostring(key))
    key_texts[key] = text
  end
  return text
end

local ordered_names = setmetatable({}, { __mode = "k" }) -- rank -> the names it ranks, in order

--- Ranks of keys: the names in `names` first, in that order.
local function ranks(names)
  local rank = {}
  for i, name in ipairs(names) do rank[name] = i end
  ordered_names[rank] = names
  return rank
end

local RECORD_ORDER = ranks(view.FIELDS)
local SUMMARY_ORDER = ranks({
  "job_id", "from", "to", "total", "finished", "success_rate", "by_status", "duration", "by_branch",
  "by_trigger", "first_start", "last_start", "failed", "unread", "min", "p50", "p95", "max", "count",
})

--- JSON text with a stable key order: the keys `rank` knows first, in its order, then the others
-- sorted (in nested objects too). Lists (1..n, n > 0) become arrays. `indent` (a string of
-- blanks): one key a line, nested ones further in.
local function encode(value, rank, indent, depth)
  if type(value) ~= "table" then
    if value == json().null then return "null" end
    return json_scalar(value)
  end
  rank, depth = rank or {}, depth or 0
  local open, close, between = "", "", ","
  if indent then
    open = "\n" .. indent:rep(depth + 1)
    close = "\n" .. indent:rep(depth)
    between = "," .. open
  end
  local n = #value
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  if n > 0 and #keys == n then
    local parts = {}
    for i = 1, n do parts[i] = encode(value[i], rank, indent, depth + 1) end
    return "[" .. open .. table.concat(parts, between) .. close .. "]"
  end
  -- The ranked keys in their order, then the others sorted.
  local parts, others = {}, {}
  local sep = indent and ": " or ":"
  for _, k in ipairs(keys) do
    if not rank[k] then others[#others + 1] = k end
  end
  for _, k in ipairs(ordered_names[rank] or {}) do
    local v = rawget(value, k)
    if v ~= nil then parts[#parts + 1] = key_text(k) .. sep .. encode(v, rank, indent, depth + 1) end
  end
  table.sort(others, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(others) do
    parts[#parts + 1] = key_text(k) .. sep .. encode(value[k], rank, indent, depth + 1)
  end
  return "{" .. open .. table.concat(parts, between) .. close .. "}"
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
    -- A cell a spreadsheet would run as a formula (=, +, -, @, a tab or CR first: a branch named
    -- =HYPERLINK(...)) gets a ' before it, as OWASP advises for CSV exports.
    if text:find("^[=+%-@\t\r]") then text = "'" .. text end
  end
  if text:find('[,"\r\n]') then text = '"' .. text:gsub('"', '""') .. '"' end
  return text
end

local function csv_record(rec)
  local parts = {}
  for i, name in ipairs(CSV_FIELDS) do parts[i] = csv_value(rec[name]) end
  return table.concat(parts, ",")
end

--- A progress bar on stderr: redrawn when the percentage changes, cleared before stdout is
-- written to and at the end, so that the two streams do not mix on one terminal.
local function new_progress(stderr)
  local bar = { shown = false, drawn_percent = -1, done = 0, total = 0 }
  local BAR = 30
  function bar.draw()
    local total = bar.total
    local percent = total > 0 and math.floor(bar.done * 100 / total) or 100
    local filled = total > 0 and math.floor(bar.done * BAR / total) or BAR
    stderr:write(("\r[%s%s] %d/%d builds %3d%%\27[K"):format(("#"):rep(filled), ("."):rep(BAR - filled),
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
  timeout = "--timeout gives an attempt longer; --retries more attempts",
}

-- The library's words (its option names) in the tool's: a pattern of the library's message, and
-- the message the tool writes instead.
local IN_OUR_WORDS = {
  { "^no region: ", "no endpoint: give --region or --endpoint, or set CODEARTSBUILD_REGION or "
    .. "CODEARTSBUILD_ENDPOINT" },
  { "^no credentials: ", "no credentials: set CODEARTSBUILD_TOKEN, CODEARTSBUILD_AK and CODEARTSBUILD_SK, "
    .. "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or CLOUD_SDK_AK and CLOUD_SDK_SK), write "
    .. "~/.huaweicloud/credentials, or give --profile NAME" },
  { "allow_http", "http:// is used only for a loopback host (127.0.0.1, localhost, [::1]): give an https:// "
    .. "endpoint" },
  { "^endpoint must start with https://", "the endpoint must start with https:// (or http:// for a loopback host)" },
  { "^iam needs a region or iam_endpoint=", "an IAM user needs a region (--region) or CODEARTSBUILD_IAM_ENDPOINT" },
}

--- The message of a failure, in the tool's words: what the library calls `record_info JOB/N` is
-- `build N of job JOB`, its option names are the tool's options, and a hint follows when the
-- kind of failure has one. Never longer than a line.
local function failure_message(message, err)
  message = tostring(message):gsub("^codeartsbuild: ", "")
  for _, rule in ipairs(IN_OUR_WORDS) do
    if message:find(rule[1]) then
      message = rule[2]
      break
    end
  end
  -- A missing job or build says which already: "build 7 of job ... not found (HTTP 403: ...)".
  if type(err) == "table" and err.kind == "not_found" and err.what then
    message = message:gsub("^record_info %w+/%d+: ", "")
  end
  message = message:gsub("^record_info (%w+)/(%d+): ", "build %2 of job %1: ")
    :gsub("^latest (%w+): ", "the newest build of job %1: "):gsub("^get (%S+): ", "GET %1: ")
  message = message:gsub("%c", " ")
  local hint = type(err) == "table" and HINTS[err.kind]
  if hint and not message:find(hint, 1, true) then return message .. " (" .. hint .. ")" end
  return message
end

local function load_library()
  local ok, cb = pcall(require, "codeartsbuild")
  if not ok then
    -- The first lines say why (a loader's message and the dynamic linker's), not the search list.
    local why = tostring(cb):gsub("\n\tno field.*", ""):gsub("%s*\n%s*", " ")
    fail(("cannot load the codeartsbuild module: %s (from a checkout: make; see the README, "
      .. "\"Building, installing, testing\")"):format(why))
  end
  return cb
end

--- The client options from the command line: --region, --endpoint, --profile, --timeout,
-- --retries, and --verbose's on_event hook.
local function client_options(run, cb)
  local options, getenv = run.options, run.getenv
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
    if not options.endpoint:match("^[Hh][Tt][Tt][Pp][Ss]?://") or options.endpoint:find("%c") then
      usage_error(nil, ("--endpoint must be https://host[:port], got '%s'"):format(shown(options.endpoint)))
    end
    opts.endpoint = options.endpoint
  end
  if options.timeout and run.command ~= "wait" then -- wait's --timeout is the whole wait's
    local seconds = options.timeout:match("^%d+%.?%d*$") and #options.timeout <= 10 and tonumber(options.timeout)
    if not seconds or seconds <= 0 or seconds > 3600 then
      usage_error(nil, ("--timeout must be a number of seconds above 0, at most 3600, got '%s'")
        :format(shown(options.timeout)))
    end
    opts.timeout = seconds
  end
  if options.retries then
    opts.retries = whole(nil, "--retries", options.retries, OPTION.retries.number[1], OPTION.retries.number[2])
  end
  if options.verbose then
    opts.on_event = function(e) run:request_line(e) end
  end
  -- The credentials file is the C module's to read (one parser, the SDK's rules).
  if options.profile then opts.profile = options.profile end
  return opts
end

-- ------------------------------------------------------------------------------------------------
-- One invocation

local Run = {} -- streams, options, client
Run.__index = Run

function Run:note(text)
  if not self.options.quiet then
    if self.progress_clear then self.progress_clear() end
    self.stderr:write("codeartsbuild: ", text, "\n")
  end
end

--- --verbose: one line per request, from the client's on_event hook (it carries no credential).
function Run:request_line(e)
  local outcome = e.status and tostring(e.status) or tostring(e.kind or (e.ok and "ok" or "failed"))
  self.stderr:write(("codeartsbuild: %s %s %s, %d attempt%s, %d ms%s\n"):format(shown(e.method or "GET"),
    tostring(e.path or "?"):gsub("%c", "?"), shown(outcome), e.attempts or 0, (e.attempts or 0) == 1 and "" or "s",
    math.floor((e.duration_ms or 0) + 0.5), e.request_id and (", request id " .. shown(e.request_id)) or ""))
  self.requests = (self.requests or 0) + 1
end

function Run:client_for()
  if not self.client then
    local cb = load_library()
    local client, message, err = cb.new(client_options(self, cb))
    if not client then
      message = failure_message(message, err)
      -- The module names the file and the section; the tool says which option asked for it.
      if self.options.profile and err.kind == "config" then
        message = ("--profile %s: %s"):format(shown(self.options.profile), message)
      end
      fail(message)
    end
    self.client = client
    if not self.options["no-cache"] then
      local cache, why = require("codeartsbuild.cache").attach(client, true, { getenv = self.getenv })
      self.cache, self.cache_problem = cache, why
      if not cache and self.options.verbose then self:note("no cache: " .. why) end
    end
  end
  return self.client
end

function Run:color()
  return view.use_color(self.stdout, nil, self.getenv)
end

function Run:view_options(extra)
  local opts = { utc = self.options.utc and true or false }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return opts
end

--- The newest build of a job, or the failure (exit status 1).
function Run:newest(job)
  local newest, message, err = self:client_for():latest(job)
  if not newest then fail(failure_message(message, err)) end
  return newest
end

--- The range a list or summary walks: from, to (`from > to`: nothing), and the walk's order.
function Run:range(job, sel)
  if sel.back then
    return 1, self:newest(job), "desc"
  end
  local newest = self:newest(job) -- also for --from and --to: --to stops at the newest build
  local from, to
  if sel.last then
    from, to = math.max(1, newest - sel.last + 1), newest
  else
    from, to = sel.from or 1, sel.to or newest
    if to > newest then
      if sel.to then self:note(("--to %d is past the newest build of %s: up to %d"):format(sel.to, job, newest)) end
      to = newest
    end
  end
  return from, to, sel.order
end

-- Failures that every other request would meet too: the walk stops at the first.
local FATAL = { auth = true, tls = true, config = true, network = true, invalid = true }

--- Runs the walk of a list or summary, calling emit(record) for each matching record in output
-- order; returns the failed builds, and the lowest and highest build of the walk.
-- `writes`: emit writes to stdout at once (the progress bar steps aside for it).
function Run:each_record(job, sel, emit, writes)
  local client = self:client_for()
  local from, to, order = self:range(job, sel)
  local failed = {}
  if from > to then return failed, from, to end
  local progress, step_aside -- step_aside: the bar is cleared around each line written to stdout
  local function on_progress(done, total)
    if progress == nil then
      progress = false
      if not self.options.quiet and not self.options.verbose and not sel.back and total > PROGRESS_THRESHOLD
        and self.stderr_is_terminal() then
        progress = new_progress(self.stderr)
        -- Only when both streams share the terminal: stdout to a file or a pipe needs no room.
        step_aside = writes and self.stdout_is_terminal()
      end
    end
    if progress then progress.update(done, total) end
  end
  self.progress_clear = function() if progress then progress.clear() end end
  local iterator, message, err = client:records(job, {
    from = from, to = to, order = order, concurrency = sel.concurrency, on_progress = on_progress,
  })
  if not iterator then fail(failure_message(message, err)) end
  -- A walk back (--since, --until) keeps what it finds, to give it in build order at the end.
  local kept = sel.back and {} or nil
  local matched, counted, lowest = 0, 0, to
  local function give(rec)
    if step_aside then progress.around(function() emit(rec) end) else emit(rec) end
  end
  for n, rec, failure in iterator do
    if rec then
      local start = sel.back and query.time(rec.startTime)
      if sel.back and sel.since and start and start < sel.since then break end -- the walk back is over
      lowest = math.min(lowest, n)
      if sel.back and sel.count and start and start < sel.before then counted = counted + 1 end
      if not sel.match or sel.match(rec) then
        matched = matched + 1
        if kept then kept[#kept + 1] = rec else give(rec) end
        if sel.limit and matched >= sel.limit and (not kept or order == sel.order) then break end
      end
      if sel.count and counted >= sel.count then break end
    else
      failed[#failed + 1] = { n = n, err = failure }
      if FATAL[failure.kind] then
        failed.fatal = failure
        break
      end
    end
  end
  if progress then progress.clear() end
  if kept then
    -- Walked newest first: give them oldest first unless --reverse; --limit keeps the oldest N
    -- (the newest N with --reverse, where the walk stopped at N).
    local first, last, step = #kept, 1, -1
    if sel.order == "desc" then first, last, step = 1, #kept, 1 end
    if sel.limit and sel.order ~= "desc" then last = math.max(1, #kept - sel.limit + 1) end
    for i = first, last, step do give(kept[i]) end
  end
  table.sort(failed, function(a, b) return a.n < b.n end)
  return failed, sel.back and lowest or from, to
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

-- ------------------------------------------------------------------------------------------------
-- Commands

local commands = {}

function commands.record(run, args)
  local job = check_job("record", args[1])
  local n = whole("record", "N", args[2], 1, MAX_BUILD_NO)
  local client = run:client_for()
  local rec = run.cache and run.cache:get(client, job, n)
  if not rec then
    local message, err
    rec, message, err = client:record_info(job, n)
    if not rec then fail(failure_message(message, err)) end
    if run.cache then run.cache:put(client, job, rec) end
  end
  if run.options.json then
    run.stdout:write(encode(rec, RECORD_ORDER), "\n")
  else
    view.record(rec, run:view_options{ out = run.stdout, color = run:color() })
  end
end

function commands.latest(run, args)
  local job = check_job("latest", args[1])
  run.stdout:write(("%d\n"):format(run:newest(job)))
end

function commands.list(run, args)
  local job = check_job("list", args[1])
  local options = run.options
  if options.json and options.csv then usage_error("list", "--json and --csv go one at a time") end
  local sel = selection("list", options, COMMAND.list.select)
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
    local opts = run:view_options()
    emit = function(rec) rows[#rows + 1] = view.row(rec, opts) end
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
  local sel = selection("summary", run.options, COMMAND.summary.select)
  -- The summary needs only a few fields of each record: keep those, not the records.
  local slim = {}
  local failed, from, to = run:each_record(job, sel, function(rec)
    slim[#slim + 1] = {
      status = rec.status, branch = rec.branch, triggerType = rec.triggerType, duration = rec.duration,
      startTime = rec.startTime,
    }
  end)
  local errors = {}
  if not failed.fatal then
    for _, f in ipairs(failed) do errors[f.n] = f.err end
  end
  local summary = query.summary(slim, errors)
  if run.options.json then
    local unread = {}
    for _, f in ipairs(failed) do
      unread[#unread + 1] = { build_no = f.n, kind = f.err.kind, message = f.err.message }
    end
    local out = {
      job_id = job, from = from, to = to, total = summary.total, finished = summary.finished,
      success_rate = summary.success_rate, by_status = summary.by_status, by_branch = summary.by_branch,
      by_trigger = summary.by_trigger, duration = summary.duration, first_start = summary.first_start,
      last_start = summary.last_start, failed = summary.failed, unread = #unread > 0 and unread or nil,
    }
    run.stdout:write(encode(out, SUMMARY_ORDER), "\n")
  else
    if from > to then
      run:note(("no builds: the newest build of %s is %d"):format(job, to))
    else
      run.stdout:write(("job %s, builds %d..%d\n"):format(job, from, to))
    end
    run.stdout:write(view.summary_text(summary, run:view_options()), "\n")
  end
  report_failed(failed)
end

function commands.history(run, args)
  local job = check_job("history", args[1])
  local options = run.options
  local days = options.days and whole("history", "--days", options.days, 1, 30) or 30
  local limit = options.limit and whole("history", "--limit", options.limit, 1, MAX_BUILD_NO)
  local client = run:client_for()
  local iterator, message, err = client:history(job, { days = days })
  if not iterator then fail(failure_message(message, err)) end
  local entries, count = {}, 0
  local ok, failure = pcall(function()
    for entry in iterator do
      count = count + 1
      if options.json then
        run.stdout:write(encode(entry, ranks{ "build_number", "result", "start_time", "end_time" }), "\n")
      else
        entries[#entries + 1] = entry
      end
      if limit and count >= limit then break end
    end
  end)
  if not ok then fail(failure_message(type(failure) == "table" and failure.message or failure, failure)) end
  if options.json then return end
  if count == 0 then
    run:note(("no build of %s in the last %d days"):format(job, days))
    return
  end
  local opts = run:view_options()
  local rows = { { "BUILD", "RESULT", "START", "END" } }
  for _, entry in ipairs(entries) do
    rows[#rows + 1] = {
      entry.build_number ~= nil and ("%d"):format(tonumber(entry.build_number) or 0) or "-",
      shown(entry.result or "-"),
      entry.start_time and view.time(entry.start_time, opts) or "-",
      entry.end_time and view.time(entry.end_time, opts) or "-",
    }
  end
  local widths = { 0, 0, 0 }
  for _, row in ipairs(rows) do
    for c = 1, 3 do widths[c] = math.max(widths[c], #row[c]) end
  end
  for _, row in ipairs(rows) do
    run.stdout:write(("%" .. widths[1] .. "s  %-" .. widths[2] .. "s  %-" .. widths[3] .. "s  %s\n"):format(
      row[1], row[2], row[3], row[4]))
  end
end

--- PATH and its query: "/v1/x?a=1&b=2" -> "/v1/x", { {"a", "1"}, {"b", "2"} } (percent-decoded).
local function split_path(text)
  if type(text) ~= "string" or text:sub(1, 1) ~= "/" or text:find("[%c%s]") or #text > 2000 then
    usage_error("get", ("PATH must start with / and hold no blank or control character, got '%s'")
      :format(shown(text)))
  end
  local path, rest = text:match("^([^?#]*)%??([^#]*)")
  local function decode(s)
    return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end
  local params = {}
  for pair in rest:gmatch("[^&]+") do
    local key, value = pair:match("^([^=]*)=?(.*)$")
    params[#params + 1] = { decode(key), decode(value) }
  end
  return path, #params > 0 and params or nil
end

function commands.get(run, args)
  local path, params = split_path(args[1])
  local client = run:client_for()
  local body, message, err = client:get(path, params)
  if body == nil then fail(failure_message(message, err)) end
  local indent = run.stdout_is_terminal() and "  " or nil
  run.stdout:write(encode(body, nil, indent), "\n")
end

--- Where a setting came from, for `config`: the option, or the first variable that is set.
local function source_of(run, option, variables)
  if run.options[option] then return "--" .. option end
  for _, name in ipairs(variables) do
    if (run.getenv(name) or "") ~= "" then return name end
  end
  return nil
end

function commands.config(run, args)
  local job = args[1] and check_job("config", args[1])
  local client = run:client_for()
  local out = run.stdout
  local function line(name, value) out:write(("%-13s %s\n"):format(name, value)) end
  local function show_settings(info)
    local from = source_of(run, "endpoint", { "CODEARTSBUILD_ENDPOINT" })
      or source_of(run, "region", { "CODEARTSBUILD_REGION" })
    line("endpoint", shown(info.endpoint) .. (from and (" (from " .. from .. ")") or ""))
    line("region", info.region and shown(info.region) or "-")
    line("api", shown(info.api) .. (info.api_in_use and info.api_in_use ~= info.api and
      (", in use: " .. shown(info.api_in_use)) or ""))
    local auth = info.auth == "token" and "IAM token" or info.auth == "aksk" and "AK/SK" or shown(info.auth)
    local source = run.options.profile and ("--profile " .. shown(run.options.profile))
      or shown(info.credential_source or "?")
    line("credentials", ("%s, from %s%s"):format(auth, source, info.temporary and " (temporary)" or ""))
    line("project id", info.project_id and shown(info.project_id) or "- (asked of IAM at the first request)")
    line("timeouts", ("%gs an attempt, %gs to connect; %d retries"):format(info.timeout or 0, info.connect_timeout or 0,
      info.retries or 0))
    if info.insecure then line("TLS", "VERIFICATION OFF") end
    if run.cache then
      line("cache", run.cache.dir)
    else
      line("cache", run.options["no-cache"] and "off (--no-cache)" or ("off: " .. shown(run.cache_problem)))
    end
  end
  show_settings(client:info())
  local ok, message, err
  if job then
    local newest
    newest, message, err = client:latest(job)
    ok = newest ~= nil
    line("request", ok and ("the newest build of %s is %d"):format(job, newest) or failure_message(message, err))
  else
    -- A job that does not exist: the service says so only to credentials it accepted.
    local _
    _, message, err = client:record_info(("0"):rep(32), 1)
    ok = err ~= nil and err.kind == "not_found"
    line("request", ok and ("the service answered (%s): the credentials are accepted"):format(
      err.status and ("HTTP " .. err.status) or err.kind) or failure_message(message, err))
  end
  if not ok then fail(failure_message(message, err)) end
end

function commands.completion(_, args)
  local shell = args[1]
  if shell ~= "bash" and shell ~= "zsh" then
    usage_error("completion", ("SHELL must be bash or zsh, got '%s'"):format(shown(shell)))
  end
  return shell == "bash" and bash_completion() or zsh_completion()
end

function commands.man()
  return man_page()
end

function commands.help(_, args)
  local topic = args[1]
  if topic ~= nil and not COMMAND[topic] then
    usage_error("help", ("no command '%s' (commands: %s)"):format(shown(topic), table.concat(COMMAND_NAMES, ", ")))
  end
  return help_text(topic)
end

-- ------------------------------------------------------------------------------------------------
-- After the record (issue 14): steps, log, wait

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
  return nil, tostring(rec.status):upper() == "SUCCESS" and M.OK or M.FAILED
end

-- ------------------------------------------------------------------------------------------------
-- main

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
      run.stdout:write(help_text())
      return M.OK
    end
    usage_error(nil, "no command given (commands: " .. table.concat(COMMAND_NAMES, ", ") .. ")")
  end
  local spec = COMMAND[command]
  if not spec then
    usage_error(nil, ("unknown command '%s' (commands: %s)"):format(shown(command), table.concat(COMMAND_NAMES, ", ")))
  end
  if options.help then
    run.stdout:write(help_text(command))
    return M.OK
  end
  if options.version then
    run.stdout:write(version_line())
    return M.OK
  end
  for _, name in ipairs(order) do
    if not spec.takes[name] then
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
  local text, status = commands[command](run, positional)
  if text then run.stdout:write(text) end
  return status or M.OK
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
    stderr_is_terminal = env.stderr_is_terminal or function() return view.is_terminal(2) end,
    stdout_is_terminal = env.stdout_is_terminal or function() return view.is_terminal(1) end,
    options = {},
  }, Run)
  local ok, result = xpcall(function() return dispatch(run, args or {}) end, function(e)
    if type(e) == "table" then return e end
    return { internal = tostring(e), traceback = debug.traceback(tostring(e), 2) }
  end)
  if run.progress_clear then run.progress_clear() end
  if run.cache then
    pcall(run.cache.flush, run.cache)
    if run.options.verbose then
      local stats = run.cache.stats
      run:note(("cache %s: %d build%s read from it, %d kept"):format(run.cache.dir, stats.hits,
        stats.hits == 1 and "" or "s", stats.stored))
    end
  end
  if run.client then run.client:close() end
  run.stdout:flush()
  if ok then return result end
  local stderr = run.stderr
  if getmetatable(result) == UsageError then
    local help = result.command and COMMAND[result.command] and result.command ~= "help"
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
  stderr:write("codeartsbuild: internal error: ", tostring(result.internal or result.message):gsub("%c", " "), "\n")
  if (run.getenv("CODEARTSBUILD_DEBUG") or "") ~= "" and result.traceback then
    stderr:write(result.traceback, "\n")
  end
  return M.FAILED
end

return M
