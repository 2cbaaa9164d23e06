--- codeartsbuild.query: questions asked of lists of build records.
--
-- Pure Lua, no I/O and no C: these work on any list of record tables (from `client:fetch`, a
-- `client:records` loop, or tables made by hand), on Lua 5.1 to 5.4 and LuaJIT.
--
--     local q = require "codeartsbuild.query"          -- also re-exported as cb.where, cb.filter, ...
--     local red = q.filter(recs, q.where{ status = "FAILED", branch = "main", since = "2024-01-01" })
--     print(q.summary(recs))
--
-- Units: the API's `duration` is in milliseconds; everything here that takes or gives a duration
-- speaks seconds (min_duration, max_duration, summary().duration) and says so.
--
-- Data only: the text of a summary, of a list of records and of a map of failed builds (their
-- `tostring`) is codeartsbuild.view's, loaded when first asked for.
local usage = require "codeartsbuild.usage"

local M = {}

--- `tostring` of the values this module (and client:fetch) returns: codeartsbuild.view's text.
local function text_of(name)
  return function(value) return require("codeartsbuild.view")[name](value) end
end

--- The metatable of the lists of records that filter() and client:fetch() return: `tostring(list)`
-- is the aligned table (codeartsbuild.view.table_lines), one line per build.
M.RecordList = { __tostring = text_of("list_text"), __name = "codeartsbuild.records" }

--- The metatable of the map `build_no -> err` that client:fetch() returns for the builds that could
-- not be read: `tostring(errors)` names them, one line each.
M.ErrorMap = { __tostring = text_of("errors_text"), __name = "codeartsbuild.errors" }

---------------------------------------------------------------------------------------------------
-- Known values

--- The values of `status` and `triggerType` this module knows, upper case: the reference page's
-- (SUCCESS, FAILED, ABORTED, RUNNING; the four triggers) and those seen from the service
-- (FAILURE, SCHEDULE_FAILURE, INQUEUE). where() and the command line compare them ignoring case
-- and refuse others, so that a typo does not silently match nothing.
M.KNOWN = {
  status = { "SUCCESS", "FAILED", "ABORTED", "RUNNING", "FAILURE", "SCHEDULE_FAILURE", "INQUEUE" },
  trigger = { "MANUAL", "TIMED_EXECUTION", "CODEHUB_TRIGGER", "PIPELINE_TRIGGER" },
}

local KNOWN_SET = {}
for key, values in pairs(M.KNOWN) do
  KNOWN_SET[key] = {}
  for _, value in ipairs(values) do KNOWN_SET[key][value] = true end
end

--- `value` (a status or a trigger, any case) in upper case when it is a known one of `key`
-- ("status" or "trigger"); else nil and a message that lists the known ones.
---@param key string
---@param value string
---@return string|nil
---@return string|nil message
function M.known_value(key, value)
  local upper = type(value) == "string" and value:upper() or nil
  if upper and KNOWN_SET[key][upper] then return upper end
  return nil, ("unknown %s '%s' (known: %s)"):format(key, tostring(value):gsub("%c", "?"),
    table.concat(M.KNOWN[key], ", "))
end

-- Statuses of builds that have ended; any case.
local ENDED = { SUCCESS = true, FAILED = true, FAILURE = true, ABORTED = true, SCHEDULE_FAILURE = true }

--- Whether a record's build has ended for good: a status that ends a build (SUCCESS, FAILED,
-- FAILURE, ABORTED, SCHEDULE_FAILURE, any case) and a `finishTime`. Such a record never changes
-- (what codeartsbuild.cache keeps); a record without both is taken as not ended.
---@param rec table
---@return boolean
function M.ended(rec)
  return type(rec) == "table" and type(rec.status) == "string" and ENDED[rec.status:upper()] == true
    and type(rec.finishTime) == "string" and rec.finishTime ~= ""
end

---------------------------------------------------------------------------------------------------
-- time(): ISO 8601 / RFC 3339 to epoch seconds, without os.time (which uses the local time zone)

local SECONDS_PER_DAY = 86400

local function floor_div(a, b)
  return math.floor(a / b) -- `//` does not exist before 5.3
end

--- Days from 1970-01-01 to the given proleptic Gregorian date (negative before 1970).
-- The "days from civil" algorithm: shift the year to start in March so that the leap day is the
-- last day of the (shifted) year, then count whole 400-year eras and the days inside the era.
local function days_from_civil(year, month, day)
  if month <= 2 then year = year - 1 end
  local era = floor_div(year, 400)
  local year_of_era = year - era * 400                                     -- 0..399
  local shifted_month = month > 2 and month - 3 or month + 9               -- March = 0
  local day_of_year = floor_div(153 * shifted_month + 2, 5) + day - 1      -- 0..365
  local day_of_era = year_of_era * 365 + floor_div(year_of_era, 4) - floor_div(year_of_era, 100) + day_of_year
  return era * 146097 + day_of_era - 719468                                -- 719468: 0000-03-01 to 1970-01-01
end

local function is_leap_year(year)
  return (year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0
end

local DAYS_IN_MONTH = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function days_in_month(year, month)
  if month == 2 and is_leap_year(year) then return 29 end
  return DAYS_IN_MONTH[month]
end

--- The UTC offset in seconds for "Z", "+hh:mm", "-hh:mm", "+hhmm" or "+hh"; nil when malformed.
local function parse_offset(text)
  if text == "Z" or text == "z" then return 0 end
  local sign, hours, minutes = text:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then
    sign, hours = text:match("^([+-])(%d%d)$")
    minutes = "00"
  end
  if not sign then return nil end
  hours, minutes = tonumber(hours), tonumber(minutes)
  if hours > 23 or minutes > 59 then return nil end
  local offset = hours * 3600 + minutes * 60
  return sign == "-" and -offset or offset
end

--- Epoch seconds for an ISO 8601 time as the API writes it, `2022-09-09T06:31:50.000+00:00`:
-- any UTC offset or `Z`, with or without a fraction of a second; a space may stand for the `T`.
-- A bare date (`2024-01-01`) is midnight UTC. A time without an offset is refused rather than
-- guessed. Returns an integer when there is no fraction (or a zero one), else a float; malformed
-- input, `nil` included (a running build's `finishTime`), returns `nil, message`.
---@param iso string
---@return number|nil seconds
---@return string|nil message
function M.time(iso)
  if type(iso) ~= "string" then
    return nil, "time: expected an ISO 8601 string, got " .. type(iso)
  end
  local year, month, day, rest = iso:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not year then
    return nil, ("time: %q is not an ISO 8601 time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"):format(iso)
  end
  year, month, day = tonumber(year), tonumber(month), tonumber(day)
  if month < 1 or month > 12 or day < 1 or day > days_in_month(year, month) then
    return nil, ("time: %q has no such date"):format(iso)
  end
  local seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY
  if rest == "" then
    return seconds
  end
  local hour, minute, second, tail = rest:match("^[T t](%d%d):(%d%d):(%d%d)(.*)$")
  if not hour then
    return nil, ("time: %q is not an ISO 8601 time (expected YYYY-MM-DDThh:mm:ss+hh:mm)"):format(iso)
  end
  hour, minute, second = tonumber(hour), tonumber(minute), tonumber(second)
  if hour > 23 or minute > 59 or second > 59 then
    return nil, ("time: %q has no such time of day"):format(iso)
  end
  local fraction, zone = tail:match("^(%.%d+)(.*)$") -- ".000+00:00"
  if not fraction then fraction, zone = "", tail end
  if zone == "" then
    return nil, ("time: %q has no UTC offset (add Z or +hh:mm)"):format(iso)
  end
  local offset = parse_offset(zone)
  if not offset then
    return nil, ("time: %q has a malformed UTC offset %q"):format(iso, zone)
  end
  seconds = seconds + hour * 3600 + minute * 60 + second - offset
  local part = fraction ~= "" and tonumber("0" .. fraction) or 0
  if part == 0 then
    return seconds -- an integer on 5.3+: every term above is one
  end
  return seconds + part
end

---------------------------------------------------------------------------------------------------
-- where(): a predicate from a spec table

--- A set (value -> true) from a string, a list of strings or a set of strings; raises otherwise.
local function string_set(key, value)
  if type(value) == "string" then
    return { [value] = true }
  end
  if type(value) ~= "table" then
    usage.error(("where: %s must be a string or a list/set of strings, got %s"):format(key, type(value)))
  end
  local set = {}
  for k, v in pairs(value) do
    if type(k) == "number" and type(v) == "string" then
      set[v] = true -- list form: { "FAILED", "ABORTED" }
    elseif type(k) == "string" and v == true then
      set[k] = true -- set form: { FAILED = true }
    elseif not (type(k) == "string" and v == false) then
      usage.error(("where: %s must be a string or a list/set of strings"):format(key))
    end
  end
  return set
end

--- Epoch seconds from an ISO string or a number; raises for anything else.
local function epoch_seconds(key, value)
  if type(value) == "number" then return value end
  local seconds, message = M.time(value)
  if not seconds then
    usage.error(("where: %s: %s"):format(key, message))
  end
  return seconds
end

local function number_of_seconds(key, value)
  if type(value) ~= "number" or value ~= value then
    usage.error(("where: %s must be a number of seconds, got %s"):format(key, tostring(value)))
  end
  return value
end

-- The string fields where() knows, by spec key -> record field.
local FIELD_OF = {
  status = "status", branch = "branch", trigger = "triggerType", build_type = "buildType",
  user = "userId", repo = "repoName", tag = "tag",
}

local function field_check(field, set)
  return function(rec) return set[rec[field]] == true end
end

--- A check for `status` or `trigger`: the values known (any case), compared ignoring case.
local function known_check(key, field, set)
  local upper = {}
  for value in pairs(set) do
    local known, message = M.known_value(key, value)
    if not known then usage.error("where: " .. message) end
    upper[known] = true
  end
  return function(rec)
    local value = rec[field]
    return type(value) == "string" and upper[value:upper()] == true
  end
end

-- The keys whose values are known ones, compared ignoring case.
local KNOWN_KEY = { status = true, trigger = true }

local function commit_check(prefixes)
  local lowered = {}
  for prefix in pairs(prefixes) do lowered[#lowered + 1] = prefix:lower() end
  return function(rec)
    local commit = type(rec.commit) == "string" and rec.commit:lower()
    if not commit then return false end
    for _, prefix in ipairs(lowered) do
      if commit:sub(1, #prefix) == prefix then return true end
    end
    return false
  end
end

local function start_check(since, before)
  return function(rec)
    local start = M.time(rec.startTime)
    return start ~= nil and (since == nil or start >= since) and (before == nil or start < before)
  end
end

local function duration_check(min_seconds, max_seconds)
  return function(rec)
    local ms = rec.duration
    if type(ms) ~= "number" then return false end
    local seconds = ms / 1000
    return (min_seconds == nil or seconds >= min_seconds) and (max_seconds == nil or seconds <= max_seconds)
  end
end

local KNOWN_KEYS = {
  status = true, branch = true, trigger = true, build_type = true, user = true, repo = true, tag = true,
  commit = true, since = true, ["until"] = true, min_duration = true, max_duration = true, match = true,
}

local function check_keys(spec)
  for key in pairs(spec) do
    if not KNOWN_KEYS[key] then
      usage.error(("where: unknown key %s (known: branch, build_type, commit, match, max_duration, min_duration, "
        .. "repo, since, status, tag, trigger, until, user)"):format(tostring(key)))
    end
  end
end

--- A predicate `function(record) -> boolean` that is true when the record matches every key given:
--
-- * `status`, `branch`, `trigger` (triggerType), `build_type` (buildType), `user` (userId),
--   `repo` (repoName), `tag`: a string, or a list or set of strings (`{"FAILED", "ABORTED"}`);
--   `status` and `trigger` in any case, and only the values of `query.KNOWN` (another raises);
-- * `commit`: a prefix of the commit id (or a list of prefixes), case-insensitive;
-- * `since`, `until`: startTime in [since, until) (ISO time, a date, or epoch seconds);
-- * `min_duration`, `max_duration`: duration in **seconds**, inclusive;
-- * `match`: `function(record) -> truthy` for anything else.
--
-- A record without the field a key asks about does not match. An unknown key or a value of the
-- wrong shape raises. A function given instead of a spec is returned as it is.
---@param spec table|fun(record: table): boolean
---@return fun(record: table): boolean
function M.where(spec)
  if type(spec) == "function" then return spec end
  if type(spec) ~= "table" then
    usage.error("where: expected a spec table or a predicate function, got " .. type(spec))
  end
  check_keys(spec)
  local checks = {}
  for key, field in pairs(FIELD_OF) do
    if spec[key] ~= nil then
      local set = string_set(key, spec[key])
      checks[#checks + 1] = KNOWN_KEY[key] and known_check(key, field, set) or field_check(field, set)
    end
  end
  if spec.commit ~= nil then checks[#checks + 1] = commit_check(string_set("commit", spec.commit)) end
  if spec.since ~= nil or spec["until"] ~= nil then
    local since = spec.since ~= nil and epoch_seconds("since", spec.since) or nil
    local before = spec["until"] ~= nil and epoch_seconds("until", spec["until"]) or nil
    checks[#checks + 1] = start_check(since, before)
  end
  if spec.min_duration ~= nil or spec.max_duration ~= nil then
    local low = spec.min_duration ~= nil and number_of_seconds("min_duration", spec.min_duration) or nil
    local high = spec.max_duration ~= nil and number_of_seconds("max_duration", spec.max_duration) or nil
    checks[#checks + 1] = duration_check(low, high)
  end
  if spec.match ~= nil then
    if type(spec.match) ~= "function" then
      usage.error("where: match must be a function, got " .. type(spec.match))
    end
    checks[#checks + 1] = spec.match
  end
  return function(rec)
    for i = 1, #checks do
      if not checks[i](rec) then return false end
    end
    return true
  end
end

---------------------------------------------------------------------------------------------------
-- filter()

--- Calls visit(record) for each record of a list, or of an iterator function. From an iterator, a
-- table first value is the item (`history()`); otherwise the second one is (`records()` yields
-- `build_no, record, err`), and a step without a record (a failed build) is passed over.
local function each_record(source, visit)
  if type(source) == "table" then
    for _, rec in ipairs(source) do visit(rec) end
  elseif type(source) == "function" then
    while true do
      local first, second = source()
      if first == nil then break end
      local rec = type(first) == "table" and first or second
      if rec ~= nil then visit(rec) end
    end
  else
    usage.error("expected a list of records or an iterator function, got " .. type(source))
  end
end

--- The records of `source` (a list, or an iterator such as `client:records(...)`) that match, as
-- a new list in the same order (`tostring` of it is a table of the builds). `spec_or_predicate` is
-- a `where` spec table or a function. From an iterator, failed builds (no record) are left out.
---@param source table|function
---@param spec_or_predicate table|fun(record: table): boolean
---@return table[]
function M.filter(source, spec_or_predicate)
  local keep = M.where(spec_or_predicate)
  local out = setmetatable({}, M.RecordList)
  each_record(source, function(rec)
    if keep(rec) then out[#out + 1] = rec end
  end)
  return out
end

---------------------------------------------------------------------------------------------------
-- summary()

--- The nearest-rank percentile of a sorted list: the smallest value with at least p% of the values
-- at or below it, i.e. sorted[ceil(p/100 * n)]. Always one of the values, never interpolated.
local function nearest_rank(sorted, percent)
  local rank = math.ceil(percent / 100 * #sorted)
  if rank < 1 then rank = 1 end
  return sorted[rank]
end

local function count_into(map, key)
  if key ~= nil then map[key] = (map[key] or 0) + 1 end
end

local Summary = {
  --- A short multi-line report, for print() at a REPL: codeartsbuild.view.summary_text.
  __tostring = text_of("summary_text"),
  __name = "codeartsbuild.summary",
}
Summary.__index = Summary

--- The metatable of summary()'s tables (to tell one from another table).
M.Summary = Summary

-- Statuses of builds that have not finished: they count in total and by_status, not in the rate.
local UNFINISHED = { RUNNING = true }

--- Counts and statistics of a list of records (or of an iterator, as `filter` takes), and of the
-- builds that could not be read (`errors`, the map `build_no -> err` that client:fetch() returns
-- second, so that `cb.summary(client:fetch(...))` counts them):
--
-- * `total`; `by_status` (status -> count; a record without a status counts as "UNKNOWN");
-- * `finished`: records with a status other than RUNNING; `success_rate`: SUCCESS / finished,
--   from 0 to 1, `nil` when nothing finished (RUNNING builds are left out of the rate; FAILED,
--   ABORTED and any other status count as finished and not successful);
-- * `duration`: `{ min, p50, p95, max, count }` in **seconds** over the records that have a
--   duration (p50/p95 are nearest-rank percentiles: always a measured value), `nil` when none;
-- * `by_branch`, `by_trigger` (triggerType): value -> count, records without the field left out;
-- * `first_start`, `last_start`: the earliest and latest `startTime` (the record's own strings);
-- * `failed`: how many builds could not be read, and `errors`, those builds (`build_no -> err`):
--   they are in none of the counts above.
--
-- `tostring(summary)` gives a short multi-line report.
---@param source table|function
---@param errors? table<integer, table>
---@return table
function M.summary(source, errors)
  if source == nil and type(errors) == "string" then
    -- cb.summary(client:fetch(...)) where fetch failed: say why, not "got nil".
    usage.error("summary: no records: " .. errors)
  end
  if errors ~= nil and type(errors) ~= "table" then
    usage.error(("bad argument #2 to 'summary' (table of errors expected, got %s)"):format(type(errors)))
  end
  local s = setmetatable({ total = 0, finished = 0, by_status = {}, by_branch = {}, by_trigger = {}, failed = 0,
    errors = setmetatable({}, M.ErrorMap) }, Summary)
  for build_no, err in pairs(errors or {}) do
    s.errors[build_no] = err
    s.failed = s.failed + 1
  end
  local successes, durations = 0, {}
  local first_seconds, last_seconds
  each_record(source, function(rec)
    s.total = s.total + 1
    local status = rec.status or "UNKNOWN"
    count_into(s.by_status, status)
    if rec.status ~= nil and not UNFINISHED[status] then
      s.finished = s.finished + 1
      if status == "SUCCESS" then successes = successes + 1 end
    end
    count_into(s.by_branch, rec.branch)
    count_into(s.by_trigger, rec.triggerType)
    if type(rec.duration) == "number" then durations[#durations + 1] = rec.duration / 1000 end
    local start = M.time(rec.startTime)
    if start then
      if not first_seconds or start < first_seconds then first_seconds, s.first_start = start, rec.startTime end
      if not last_seconds or start > last_seconds then last_seconds, s.last_start = start, rec.startTime end
    end
  end)
  if s.finished > 0 then s.success_rate = successes / s.finished end
  if #durations > 0 then
    table.sort(durations)
    s.duration = {
      min = durations[1], max = durations[#durations], count = #durations,
      p50 = nearest_rank(durations, 50), p95 = nearest_rank(durations, 95),
    }
  end
  return s
end

return M
