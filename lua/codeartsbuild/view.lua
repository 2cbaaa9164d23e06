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
-- not `dumb`. Whether `io.stdout` (or `io.stderr`) is a terminal is asked once per process, the
-- first time a view prints in colour-deciding mode, with `test -t 1` (`test -t 2`): the shell that
-- `os.execute` starts inherits Lua's own standard streams, so this is the REPL user's terminal.
-- `view.color = true` or `false` decides for every call; `opts.color` for one call.
-- @module codeartsbuild.view
local core = require "codeartsbuild.core"

local M = {}

--- The record fields in the order of the API reference page.
M.FIELDS = {
  "buildNo", "status", "branch", "tag", "commit", "commitMessage", "triggerType", "buildType",
  "startTime", "finishTime", "duration", "dailyBuildNum", "repoName", "repoId", "commitCreateTime",
  "createTime", "scheduleTime", "queuedTime", "runnableTime", "recordStatus", "errMsg", "buildConfigType",
  "usePrivateSlave", "region", "id", "buildProjectId", "buildRecordId", "parentRecordId",
  "devcloudProjectId", "codeciJobId", "userId", "domainId", "executionId",
}

local KNOWN = {}
for _, name in ipairs(M.FIELDS) do KNOWN[name] = true end

--- A duration in milliseconds as people read it: 52.3s, 4m43s, 1h02m (the C core's format, the
-- one `tostring(record)` uses too).
---@param ms number|nil
---@return string
-- @usage view.duration(283090) --> "4m43s"
-- @function duration
M.duration = core.format_duration

local function shown(name, value)
  if name == "duration" then
    return ("%s (%s ms)"):format(M.duration(value), tostring(value))
  end
  return (tostring(value):gsub("[%c]", " "))
end

--- The record as aligned "name  value" lines: the page's fields in its order, then any others
-- the service sent, sorted. Absent fields are left out.
---@param rec table
---@return string[]
-- @usage for _, line in ipairs(view.record_lines(rec)) do print(line) end
function M.record_lines(rec)
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
    lines[#lines + 1] = ("%-" .. width .. "s  %s"):format(name, shown(name, rec[name]))
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

local terminal_cache = {}

--- Whether file descriptor `fd` (1 or 2) of this process is a terminal; asked once.
local function is_terminal(fd)
  if terminal_cache[fd] == nil then
    local ok, _, code = os.execute(("test -t %d"):format(fd))
    if type(ok) == "number" then -- Lua 5.1 and LuaJIT without 5.2 compatibility: the status
      terminal_cache[fd] = ok == 0
    else
      terminal_cache[fd] = ok == true and (code == nil or code == 0)
    end
  end
  return terminal_cache[fd]
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
  if out == io.stdout then return is_terminal(1) end
  if out == io.stderr then return is_terminal(2) end
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
-- rules above).
---@param rec table
---@param opts? {out?: file*, color?: boolean}
-- @usage view.record(assert(client:record_info(job, 61)))
function M.record(rec, opts)
  if type(rec) ~= "table" then
    error(("bad argument #1 to 'record' (table expected, got %s)"):format(type(rec)), 2)
  end
  opts = opts or {}
  local out = opts.out or io.stdout
  local colored = M.use_color(out, opts.color)
  local lines = M.record_lines(rec)
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
-- trigger, duration and start time (`YYYY-MM-DD hh:mm`, the record's own clock, as `tostring`
-- shows it), "-" for what is absent. A row holds only these seven strings: a long list of rows
-- takes far less memory than the records (what the command line keeps).
---@param rec table
---@return string[]
-- @usage print(table.concat(view.row(rec), " | "))
function M.row(rec)
  local branch = rec.branch
  if (branch == nil or branch == "") and type(rec.tag) == "string" and rec.tag ~= "" then
    branch = "tag:" .. rec.tag
  end
  local start = type(rec.startTime) == "string" and rec.startTime or nil
  if start and #start >= 16 then start = start:sub(1, 10) .. " " .. start:sub(12, 16) end
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

--- The items of a list, or the records of an iterator such as `client:records(...)` (whose failed
-- builds, given as `n, nil, err`, are left out).
local function items_of(source, message)
  if type(source) == "table" then return source end
  if source == nil and type(message) == "string" then
    -- view.table(client:fetch(...)) where fetch failed: say why, not "got nil".
    error("view: no records: " .. message, 3)
  end
  if type(source) ~= "function" then
    error(("bad argument #1 to 'table' (list of records or iterator expected, got %s)"):format(type(source)), 3)
  end
  local list = {}
  for _ = 1, math.huge do
    local first, second = source()
    if first == nil then break end
    local rec = type(first) == "table" and first or second
    if rec ~= nil then list[#list + 1] = rec end
  end
  return list
end

--- The aligned table as a list of lines, the first one the column titles: one line per record of
-- `source`, in its order. `source` is a list of records (or of `view.row` rows), or an iterator
-- such as `client:records(...)`. `opts.color = true` paints the titles and the statuses (the
-- default here is no colour: these lines may go anywhere). An empty source gives the titles alone.
---@param source table|function
---@param opts? {color?: boolean}
---@return string[]
-- @usage for _, line in ipairs(view.table_lines(recs)) do print(line) end
function M.table_lines(source, opts)
  local items = items_of(source, opts)
  if type(opts) ~= "table" then opts = {} end
  local rows = {}
  for i, item in ipairs(items) do
    rows[i] = is_row(item) and item or M.row(item)
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
-- trigger, duration, start) under a line of titles; statuses in colour on a terminal.
-- `source` as `table_lines` takes; `opts`: `out` (default io.stdout), `color`. Prints
-- `(no records)` for an empty source. Returns nothing, so that a REPL prints nothing more.
---@param source table|function
---@param opts? {out?: file*, color?: boolean}
-- @usage view.table(client:fetch(job, { from = 1181, to = 1200 }))
function M.table(source, opts)
  local items = items_of(source, opts)
  if type(opts) ~= "table" then opts = {} end
  local out = opts.out or io.stdout
  if #items == 0 then
    out:write("(no records)\n")
    return
  end
  local lines = M.table_lines(items, { color = M.use_color(out, opts.color) })
  out:write(table.concat(lines, "\n"), "\n")
end

return M
