--- Text views of records, for the REPL, the command line and Neovim buffers.
--
-- `view.record(rec)` prints a record as an aligned field list, `view.table(records)` prints an
-- aligned table with one line per build; `view.record_lines` and `view.table_lines` return the
-- same lines (without colours unless asked) for code that writes them somewhere else.
--
--     local view = require "codeartsbuild.view"
--     view.record(rec)                          -- buildNo  61 / status  SUCCESS / ...
--     view.table(client:fetch(job, { from = 1181, to = 1200 }))
--     for _, line in ipairs(view.record_lines(rec)) do print(line) end
--
-- Colours: only when the output is a terminal and `NO_COLOR` is unset (or empty), and `TERM` is
-- not `dumb`. Whether `io.stdout` (or `io.stderr`) is a terminal is asked of the system
-- (`isatty(1)`, `isatty(2)`) when a view prints in colour-deciding mode.
-- `view.color = true` or `false` decides for every call; `opts.color` for one call.
--
-- Times: shown in the local time zone with their UTC offset (`2024-05-29 21:00 +08:00`);
-- `view.utc = true` (or `opts.utc`) shows them in UTC. `view.show(x)` prints whatever the library
-- returned (a record, a list of records, a summary, errors, `client:info()`) the way it reads best.
-- @module codeartsbuild.view
local core = require "codeartsbuild.core"
local usage = require "codeartsbuild.usage"

local M = {}

-- The fields people read first, in this order; the others follow in the reference page's order.
local FIRST = {
  "buildNo", "status", "branch", "tag", "commit", "commitMessage", "triggerType", "buildType",
  "startTime", "finishTime", "duration",
}

--- The record's fields (the core's `fields`, the reference page's names) in the order a field list
-- shows them: buildNo, status, branch, tag, commit, commitMessage, triggerType, buildType,
-- startTime, finishTime, duration, then the others in the reference page's order.
M.FIELDS = {}
do
  local first = {}
  for _, name in ipairs(FIRST) do
    first[name] = true
    M.FIELDS[#M.FIELDS + 1] = name
  end
  for _, name in ipairs(core.fields) do
    if not first[name] then M.FIELDS[#M.FIELDS + 1] = name end
  end
end

local KNOWN = {}
for _, name in ipairs(M.FIELDS) do KNOWN[name] = true end

--- A duration in milliseconds as people read it: 52.3s, 4m43s, 1h02m (the C core's format, the
-- one `tostring(record)` uses too).
---@param ms number|nil
---@return string
-- @usage view.duration(283090) --> "4m43s"
-- @function duration
M.duration = core.format_duration

--- A number as the JSON had it: a whole number without a ".0" (Lua 5.3+ prints floats so).
local function number_text(value)
  if value == math.floor(value) and value > -2 ^ 53 and value < 2 ^ 53 then return ("%.0f"):format(value) end
  return tostring(value)
end

-- ------------------------------------------------------------------------------------------------
-- Times

--- `true`: times are shown in UTC; `false` or `nil` (the default): in the local time zone. Both
-- with their offset. `opts.utc` decides for one call.
M.utc = nil

-- The record's time fields: shown as times, in the zone asked for.
local TIME_FIELDS = {
  createTime = true, scheduleTime = true, queuedTime = true, startTime = true, runnableTime = true,
  finishTime = true, commitCreateTime = true,
}

local function use_utc(opts)
  if type(opts) == "table" and opts.utc ~= nil then return opts.utc and true or false end
  return M.utc and true or false
end

--- The local zone's offset from UTC at epoch `t`, in seconds (daylight saving time included).
local function local_offset(t)
  local here, there = os.date("*t", t), os.date("!*t", t)
  here.isdst, there.isdst = false, false
  return os.difftime(os.time(here), os.time(there))
end

--- An API time (`2024-05-29T13:00:05.000+00:00`) in the zone asked for, with its offset:
-- `2024-05-29 21:00 +08:00` (`seconds = true`: `21:00:05`). Anything that is not such a time is
-- returned as it is, without control characters.
---@param iso string
---@param opts? {utc?: boolean, seconds?: boolean}
---@return string
-- @usage print(view.time("2024-05-29T13:00:05.000+00:00", { utc = true })) --> 2024-05-29 13:00 +00:00
function M.time(iso, opts)
  local epoch = type(iso) == "string" and require("codeartsbuild.query").time(iso)
  if not epoch then return (tostring(iso):gsub("%c", " ")) end
  epoch = math.floor(epoch)
  local format = (type(opts) == "table" and opts.seconds) and "%Y-%m-%d %H:%M:%S" or "%Y-%m-%d %H:%M"
  if use_utc(opts) then return os.date("!" .. format, epoch) .. " +00:00" end
  local offset = local_offset(epoch)
  local sign = offset < 0 and "-" or "+"
  offset = math.abs(offset)
  return ("%s %s%02d:%02d"):format(os.date(format, epoch), sign, math.floor(offset / 3600),
    math.floor(offset % 3600 / 60))
end

local function shown(name, value, opts)
  if name == "duration" and type(value) == "number" then
    return ("%s (%s ms)"):format(M.duration(value), number_text(value))
  end
  if TIME_FIELDS[name] then
    return M.time(value, { utc = use_utc(opts), seconds = true })
  end
  if type(value) == "number" then return number_text(value) end
  return (tostring(value):gsub("[%c]", " "))
end

--- The record as aligned "name  value" lines: the page's fields in its order, then any others
-- the service sent, sorted. Absent fields are left out. Times are shown in the local zone with
-- their offset (`opts.utc`: in UTC), the duration as people read it and in milliseconds.
---@param rec table
---@param opts? {utc?: boolean}
---@return string[]
-- @usage for _, line in ipairs(view.record_lines(rec)) do print(line) end
function M.record_lines(rec, opts)
  local names = {}
  for _, name in ipairs(M.FIELDS) do
    if rec[name] ~= nil then names[#names + 1] = name end
  end
  local extra = {}
  for name in pairs(rec) do
    if type(name) == "string" and not KNOWN[name] then extra[#extra + 1] = name end
  end
  table.sort(extra)
  for _, name in ipairs(extra) do names[#names + 1] = name end
  local width = 0
  for _, name in ipairs(names) do width = math.max(width, #name) end
  local lines = {}
  for _, name in ipairs(names) do
    lines[#lines + 1] = ("%-" .. width .. "s  %s"):format(name, shown(name, rec[name], opts))
  end
  return lines
end

-- ------------------------------------------------------------------------------------------------
-- Colours

--- `true` or `false` decides colours for every view that is not told otherwise (`opts.color`);
-- `nil` (the default) lets each view decide: a terminal, and `NO_COLOR` unset.
M.color = nil

-- SGR sequences: status colours, and the looks of a table's header and a field list's names.
local SGR = {
  SUCCESS = "32", FAILED = "31", ABORTED = "33", RUNNING = "36", header = "1", name = "2",
}

local function paint(text, code)
  if not code then return text end
  return "\27[" .. code .. "m" .. text .. "\27[0m"
end

--- Whether file descriptor `fd` (1 or 2) of this process is a terminal.
---@param fd integer
---@return boolean
-- @usage if view.is_terminal(2) then io.stderr:write("\r[####......]") end
function M.is_terminal(fd)
  return core.isatty(fd)
end

--- Whether output to `out` (a file handle, default io.stdout) gets colours, following
-- `opts.color`, then `view.color`, then the rules: `NO_COLOR` unset or empty, `TERM` not `dumb`,
-- and `out` is io.stdout or io.stderr on a terminal. `getenv` defaults to os.getenv (for tests).
---@param out? file*
---@param color? boolean
---@param getenv? fun(name: string): string|nil
---@return boolean
-- @usage if view.use_color(io.stdout) then print("\27[1mbold\27[0m") end
function M.use_color(out, color, getenv)
  if color ~= nil then return color and true or false end
  if M.color ~= nil then return M.color and true or false end
  getenv = getenv or os.getenv
  local no_color = getenv("NO_COLOR")
  if no_color ~= nil and no_color ~= "" then return false end
  if getenv("TERM") == "dumb" then return false end
  out = out or io.stdout
  if out == io.stdout then return M.is_terminal(1) end
  if out == io.stderr then return M.is_terminal(2) end
  return false
end

--- The width of a string on a terminal: its UTF-8 characters (wide characters count as one).
local function width_of(text)
  local _, count = text:gsub("[^\128-\191]", "")
  return count
end

local function pad(text, width, right)
  local fill = (" "):rep(width - width_of(text))
  if right then return fill .. text end
  return text .. fill
end

--- A value made safe for one cell: no control characters (a terminal escape from the service
-- stays text), "-" when absent.
local function cell(value)
  if value == nil or value == "" then return "-" end
  return (tostring(value):gsub("%c", " "))
end

-- ------------------------------------------------------------------------------------------------
-- Field lists

--- Prints a record as an aligned field list (`record_lines`), the status in colour on a terminal.
-- `opts`: `out` (a file handle, default io.stdout), `color` (true/false: decide instead of the
-- rules above), `utc` (times in UTC).
---@param rec table
---@param opts? {out?: file*, color?: boolean, utc?: boolean}
-- @usage view.record(assert(client:record_info(job, 61)))
function M.record(rec, opts)
  if type(rec) ~= "table" then
    usage.error(("bad argument #1 to 'record' (table expected, got %s)"):format(type(rec)))
  end
  opts = opts or {}
  local out = opts.out or io.stdout
  local colored = M.use_color(out, opts.color)
  local lines = M.record_lines(rec, opts)
  for i, line in ipairs(lines) do
    if colored then
      local name, gap, value = line:match("^(%S+)(%s+)(.*)$")
      if name then
        local code = name == "status" and SGR[value] or nil
        line = paint(name, SGR.name) .. gap .. paint(value, code)
      end
    end
    lines[i] = line
  end
  out:write(table.concat(lines, "\n"), #lines > 0 and "\n" or "")
end

-- ------------------------------------------------------------------------------------------------
-- Tables

--- The table's column titles, in order.
M.COLUMNS = { "BUILD", "STATUS", "BRANCH", "COMMIT", "TRIGGER", "DURATION", "START" }

-- Right-aligned columns: the numbers.
local RIGHT = { [1] = true, [6] = true }

local Row = {}

local function is_row(x)
  return getmetatable(x) == Row
end

--- The table's cells of one record: build number, status, branch (or `tag:NAME`), short commit,
-- trigger, duration and start time (`YYYY-MM-DD hh:mm +hh:mm`, in the local zone, or in UTC with
-- `opts.utc`), "-" for what is absent. A row holds only these seven strings: a long list of rows
-- takes far less memory than the records (what the command line keeps).
---@param rec table
---@param opts? {utc?: boolean}
---@return string[]
-- @usage print(table.concat(view.row(rec), " | "))
function M.row(rec, opts)
  local branch = rec.branch
  if (branch == nil or branch == "") and type(rec.tag) == "string" and rec.tag ~= "" then
    branch = "tag:" .. rec.tag
  end
  local start = type(rec.startTime) == "string" and M.time(rec.startTime, opts) or nil
  return setmetatable({
    type(rec.buildNo) == "number" and ("%d"):format(rec.buildNo) or "-",
    cell(rec.status),
    cell(branch),
    type(rec.commit) == "string" and cell(rec.commit:sub(1, 7)) or "-",
    cell(rec.triggerType),
    type(rec.duration) == "number" and M.duration(rec.duration) or "-",
    cell(start),
  }, Row)
end

--- Whether `x` is a map `build_no -> err` of builds that could not be read (client:fetch()'s second
-- value): its metatable says so, or its keys are numbers and its values error tables.
local function is_errors(x)
  if type(x) ~= "table" then return false end
  local mt = getmetatable(x)
  if mt ~= nil then return mt.__name == "codeartsbuild.errors" end
  local k, v = next(x)
  return type(k) == "number" and type(v) == "table" and v.kind ~= nil
end

--- The items of a list, or the records of an iterator such as `client:records(...)` (whose failed
-- builds, given as `n, nil, err`, are left out, or put into `failed` when it is given).
local function items_of(source, message, failed)
  if type(source) == "table" then return source end
  if source == nil and type(message) == "string" then
    -- view.table(client:fetch(...)) where fetch failed: say why, not "got nil".
    usage.error("view: no records: " .. message)
  end
  if type(source) ~= "function" then
    usage.error(("bad argument #1 to 'table' (list of records or iterator expected, got %s)"):format(type(source)))
  end
  local list = {}
  for _ = 1, math.huge do
    local first, second, third = source()
    if first == nil then break end
    local rec = type(first) == "table" and first or second
    if rec ~= nil then
      list[#list + 1] = rec
    elseif failed and type(first) == "number" and third ~= nil then
      failed[first] = third
    end
  end
  return list
end

--- The builds of `errors` (`build_no -> err`) as lines, in build order: `#1187  timeout: ...`.
---@param errors table<integer, table>
---@return string[]
-- @usage for _, line in ipairs(view.errors_lines(errs)) do print(line) end
function M.errors_lines(errors)
  local numbers = {}
  for n in pairs(errors or {}) do
    if type(n) == "number" then numbers[#numbers + 1] = n end
  end
  table.sort(numbers)
  local lines = {}
  for _, n in ipairs(numbers) do
    local err = errors[n]
    local kind = type(err) == "table" and err.kind or "error"
    local message = type(err) == "table" and err.message or tostring(err)
    lines[#lines + 1] = ("#%d  %s: %s"):format(n, cell(kind), cell(message))
  end
  return lines
end

--- The aligned table as a list of lines, the first one the column titles: one line per record of
-- `source`, in its order. `source` is a list of records (or of `view.row` rows), or an iterator
-- such as `client:records(...)`. `opts.color = true` paints the titles and the statuses (the
-- default here is no colour: these lines may go anywhere); `opts.utc`: start times in UTC. An
-- empty source gives the titles alone.
---@param source table|function
---@param opts? {color?: boolean, utc?: boolean}
---@return string[]
-- @usage for _, line in ipairs(view.table_lines(recs)) do print(line) end
function M.table_lines(source, opts)
  local items = items_of(source, opts)
  if type(opts) ~= "table" then opts = {} end
  local rows = {}
  for i, item in ipairs(items) do
    rows[i] = is_row(item) and item or M.row(item, opts)
  end
  local widths = {}
  for c, title in ipairs(M.COLUMNS) do widths[c] = #title end
  for _, row in ipairs(rows) do
    for c = 1, #M.COLUMNS do widths[c] = math.max(widths[c], width_of(row[c])) end
  end
  local last = #M.COLUMNS
  local function line(cells, paint_cell)
    local parts = {}
    for c = 1, last do
      -- No trailing blanks: the last column is not padded.
      local text = c == last and not RIGHT[c] and cells[c] or pad(cells[c], widths[c], RIGHT[c])
      parts[c] = paint_cell and paint_cell(c, text, cells[c]) or text
    end
    return table.concat(parts, "  ")
  end
  local lines = {}
  if opts.color then
    lines[1] = line(M.COLUMNS, function(_, text) return paint(text, SGR.header) end)
  else
    lines[1] = line(M.COLUMNS)
  end
  local function paint_status(c, text, value)
    if c == 2 then return paint(text, SGR[value]) end
    return text
  end
  for _, row in ipairs(rows) do
    lines[#lines + 1] = line(row, opts.color and paint_status or nil)
  end
  return lines
end

--- Prints an aligned table of records, one line per build (build, status, branch, commit,
-- trigger, duration, start) under a line of titles; statuses in colour on a terminal. Then, when
-- some builds could not be read, a line that counts them and one line per build. `source` as
-- `table_lines` takes; `errors` (optional) the map `build_no -> err` that client:fetch() returns
-- second, so that `view.table(client:fetch(...))` shows them; `opts`: `out` (default
-- io.stdout), `color`, `utc`. Prints `(no records)` for an empty source. Returns nothing, so that
-- a REPL prints nothing more.
---@param source table|function
---@param errors? table<integer, table>
---@param opts? {out?: file*, color?: boolean, utc?: boolean}
-- @usage view.table(client:fetch(job, { from = 1181, to = 1200 }))
function M.table(source, errors, opts)
  if source == nil and type(errors) == "string" then items_of(source, errors) end -- raises the reason
  if not is_errors(errors) and opts == nil and type(errors) == "table" and next(errors) ~= nil then
    errors, opts = nil, errors -- view.table(records, opts)
  end
  local failed = {}
  for n, err in pairs(type(errors) == "table" and errors or {}) do failed[n] = err end
  local items = items_of(source, nil, failed)
  if type(opts) ~= "table" then opts = {} end
  local out = opts.out or io.stdout
  local lines
  if #items == 0 then
    lines = { "(no records)" }
  else
    lines = M.table_lines(items, { color = M.use_color(out, opts.color), utc = opts.utc })
  end
  local unread = M.errors_lines(failed)
  if #unread > 0 then
    lines[#lines + 1] = ("%d build%s could not be read:"):format(#unread, #unread == 1 and "" or "s")
    for _, line in ipairs(unread) do lines[#lines + 1] = "  " .. line end
  end
  out:write(table.concat(lines, "\n"), "\n")
end

-- ------------------------------------------------------------------------------------------------
-- Text of the library's values: tostring() of lists, errors and summaries

--- `tostring` of a list of records (what client:fetch() and cb.filter() return): the table.
---@param list table
---@return string
function M.list_text(list)
  if #list == 0 then return "(no records)" end
  return table.concat(M.table_lines(list), "\n")
end

--- `tostring` of the map `build_no -> err` of builds that could not be read.
---@param errors table<integer, table>
---@return string
function M.errors_text(errors)
  local lines = M.errors_lines(errors)
  if #lines == 0 then return "(no errors)" end
  return table.concat(lines, "\n")
end

--- "SUCCESS 35, FAILED 5": most frequent first, then by name.
local function format_counts(map)
  local keys = {}
  for key in pairs(map) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b)
    if map[a] ~= map[b] then return map[a] > map[b] end
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for i, key in ipairs(keys) do parts[i] = ("%s %d"):format(cell(key), map[key]) end
  return #parts > 0 and table.concat(parts, ", ") or "-"
end

--- The short multi-line report of a summary (codeartsbuild.query.summary): `tostring(summary)`.
-- Durations as `view.duration` writes them; the first and last start in the local zone with their
-- offset (`opts.utc`: in UTC); the builds that could not be read, when there are any.
---@param s table a summary
---@param opts? {utc?: boolean}
---@return string
-- @usage print(view.summary_text(cb.summary(recs), { utc = true }))
function M.summary_text(s, opts)
  local lines = {}
  local range = s.first_start and (", started %s .. %s"):format(M.time(s.first_start, opts),
    M.time(s.last_start, opts)) or ""
  lines[#lines + 1] = ("%d build%s%s"):format(s.total, s.total == 1 and "" or "s", range)
  if s.total > 0 then
    lines[#lines + 1] = "status:    " .. format_counts(s.by_status)
    if s.success_rate then
      lines[#lines + 1] = ("success:   %.1f%% of %d finished"):format(s.success_rate * 100, s.finished)
    else
      lines[#lines + 1] = "success:   - (no finished build)"
    end
    local d = s.duration
    if d then
      lines[#lines + 1] = ("duration:  min %s  p50 %s  p95 %s  max %s  (%d timed)"):format(
        M.duration(d.min * 1000), M.duration(d.p50 * 1000), M.duration(d.p95 * 1000), M.duration(d.max * 1000),
        d.count)
    else
      lines[#lines + 1] = "duration:  - (no build with a duration)"
    end
    lines[#lines + 1] = "branches:  " .. format_counts(s.by_branch)
    lines[#lines + 1] = "triggers:  " .. format_counts(s.by_trigger)
  end
  if (s.failed or 0) > 0 then
    local numbers = {}
    for n in pairs(s.errors or {}) do numbers[#numbers + 1] = n end
    table.sort(numbers)
    local named = {}
    for i = 1, math.min(#numbers, 10) do
      local err = s.errors[numbers[i]]
      named[i] = ("#%d %s"):format(numbers[i], cell(type(err) == "table" and err.kind or "error"))
    end
    if #numbers > 10 then named[#named + 1] = "..." end
    lines[#lines + 1] = ("unread:    %d build%s could not be read: %s"):format(s.failed, s.failed == 1 and "" or "s",
      table.concat(named, ", "))
  end
  return table.concat(lines, "\n")
end

-- ------------------------------------------------------------------------------------------------
-- show(): whatever the library gave, printed the way it reads best

--- Aligned "key  value" lines of a plain table (client:info(), a history entry...): its keys
-- sorted, nested tables on one line, nothing longer than a line.
---@param t table
---@return string[]
-- @usage for _, line in ipairs(view.fields_lines(client:info())) do print(line) end
function M.fields_lines(t)
  local keys, width = {}, 0
  for k in pairs(t) do
    keys[#keys + 1] = k
    width = math.max(width, #tostring(k))
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local function inline(value, depth)
    if type(value) == "number" then return number_text(value) end
    if type(value) ~= "table" or depth > 2 then return cell(value) end
    local parts, count = {}, 0
    for k, v in pairs(value) do
      count = count + 1
      if count > 20 then
        parts[#parts + 1] = "..."
        break
      end
      parts[#parts + 1] = ("%s = %s"):format(cell(k), inline(v, depth + 1))
    end
    table.sort(parts)
    return "{ " .. table.concat(parts, ", ") .. " }"
  end
  local lines = {}
  for _, k in ipairs(keys) do
    local text = inline(t[k], 1)
    if #text > 200 then text = text:sub(1, 197) .. "..." end
    lines[#lines + 1] = ("%-" .. width .. "s  %s"):format(cell(k), text)
  end
  return lines
end

local function is_record(x)
  if type(x) ~= "table" then return false end
  local mt = getmetatable(x)
  if mt ~= nil and mt == core.record_metatable then return true end
  return type(x.buildNo) == "number" and type(x.status) == "string"
end

--- A list of records: client:fetch()'s and cb.filter()'s (their metatable says so), or a plain
-- list whose first item is a record.
local function is_record_list(x)
  if type(x) ~= "table" then return false end
  local mt = getmetatable(x)
  if mt ~= nil then return mt.__name == "codeartsbuild.records" end
  return is_record(x[1])
end

--- Prints `x` the way it reads best, for the REPL (also `cb.show`): a record as its field list, a
-- list of records (client:fetch(), cb.filter()) as a table, a summary as its report, the builds
-- that could not be read one a line, an iterator such as client:records(...) as a table (it
-- reads it to its end), any other table (client:info(), a history entry) as aligned fields, and
-- anything else as print() would. A second value is used too: `cb.show(client:fetch(...))` shows
-- the records and then the builds that could not be read, and `cb.show(nil, message)` the
-- message of a failure. `opts` (last): `out`, `color`, `utc`. Returns nothing.
---@param x any
---@param second? any
---@param opts? {out?: file*, color?: boolean, utc?: boolean}
-- @usage view.show(client:info())
function M.show(x, second, opts)
  if opts == nil and type(second) == "table" and getmetatable(second) == nil and next(second) ~= nil
    and not is_errors(second) then
    second, opts = nil, second -- view.show(x, opts)
  end
  opts = opts or {}
  local out = opts.out or io.stdout
  local mt = type(x) == "table" and getmetatable(x) or nil
  if x == nil and type(second) == "string" then
    out:write("nil, ", cell(second), "\n") -- a failure: nil, message, err
  elseif type(x) == "function" or is_record_list(x) then
    M.table(x, is_errors(second) and second or nil, opts)
  elseif is_record(x) then
    M.record(x, opts)
  elseif mt ~= nil and mt.__name == "codeartsbuild.summary" then
    out:write(M.summary_text(x, opts), "\n")
  elseif is_errors(x) then
    out:write(M.errors_text(x), "\n")
  elseif type(x) == "table" and (mt == nil or mt.__tostring == nil) then
    local lines = M.fields_lines(x)
    out:write(#lines > 0 and table.concat(lines, "\n") or "{}", "\n")
  else
    out:write(type(x) == "number" and number_text(x) or tostring(x), "\n")
  end
end

return M
