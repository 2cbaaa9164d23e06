--- codeartsbuild.build: what follows a record: its steps, its log, a running build's log as it
-- grows, and waiting for a build to end. On the engine every request goes through (signed,
-- retried, rate-limited, told to `on_event`), with the module's one error shape.
--
-- Requiring this module installs methods on every client (`core.client_methods`); `require
-- "codeartsbuild"` does it on first use of any of them:
--
--     client:steps(job_id, build_no)           the steps, in order: name, status, duration, ...
--     client:log(job_id, build_no, opts)       the whole log, its last lines, or streamed to a file
--     client:follow(job_id, build_no, opts)    for text in ... (a running build's log as it grows)
--     client:wait(job_id, build_no, opts)      the record once the build has ended
--
-- Every request made here is held and taken by id, as the batch walks' are; waits between polls
-- are the engine's (a request submitted with `after = ms` starts no earlier than that, and taking
-- it sleeps in libcurl's poll), so nothing spins. In a coroutine marked by
-- `codeartsbuild.batch.yielding` (the Neovim adapter's), every wait yields instead.
local core = require "codeartsbuild.core"
local batch = require "codeartsbuild.batch"
local usage = require "codeartsbuild.usage"
local rules = require "codeartsbuild.query" -- which builds have ended, which statuses are known

local methods = core.client_methods
local monotonic = core.monotonic

local M = {}

local HOLD = { hold = true }
local STREAM = { stream = true }
-- PUC Lua 5.1 cannot yield across pcall; 5.2+ and LuaJIT can.
local CAN_YIELD_IN_PCALL = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil

---------------------------------------------------------------------------------------------------
-- Errors and arguments

local new_error = batch.new_error

local function failure(kind, message, fields)
  return nil, message, new_error(kind, message, fields)
end

--- A get()'s message for a missing job or build, in the words record_info uses ("build 7 of job
-- ... not found (HTTP 403: ...)"): the C core, given a path, can only say "no such build".
local function named_missing(where, job_id, n, message, err)
  local said = err and err.kind == "not_found" and message:match("no such %a+ (%(.*)$")
  if not said then return message end
  local thing = err.what == "job" and ("job " .. job_id) or ("build %d of job %s"):format(n, job_id)
  err.message = ("%s: %s not found %s"):format(where, thing, said)
  return err.message
end

--- The build's job and number (checked as every call checks them), or nil, message, err.
local function check_build(caller, job_id, build_no)
  if type(job_id) ~= "string" then
    usage.error(("bad argument #1 to '%s' (string expected, got %s)"):format(caller, type(job_id)))
  end
  local ok, message, err = core.check_job_id(job_id, caller)
  if not ok then return nil, message, err end
  if type(build_no) ~= "number" and type(build_no) ~= "string" then
    usage.error(("bad argument #2 to '%s' (number expected, got %s)"):format(caller, type(build_no)))
  end
  return core.check_build_no(build_no, caller)
end

--- Checks an option table against `types` (name -> "number", "string", "function", ...): an
-- unknown name or a wrong type raises, as a mistake in the calling code.
local function read_options(caller, opts, types)
  if opts == nil then return {} end
  if type(opts) ~= "table" then usage.error(("%s: options must be a table, got %s"):format(caller, type(opts))) end
  for name, value in pairs(opts) do
    local expected = types[name]
    if expected == nil then usage.error(("%s: unknown option %s"):format(caller, tostring(name))) end
    if type(value) ~= expected then
      usage.error(("%s: option %s must be a %s, got %s"):format(caller, name, expected, type(value)))
    end
  end
  return opts
end

local function is_whole(x, low)
  return x == math.floor(x) and x >= low and x < math.huge
end

--- A positive number of seconds from an option (or its default); raises when it is not one.
local function seconds(caller, name, value, default)
  if value == nil then return default end
  if not (value > 0 and value < math.huge) then
    usage.error(("%s: %s must be a number of seconds above 0"):format(caller, name))
  end
  return value
end

--- A poll's `interval` and `max_interval` (seconds), with their defaults; max_interval is at
-- least interval, whichever was given.
local function intervals(caller, options, default_interval, default_max)
  local interval = seconds(caller, "interval", options.interval, default_interval)
  local max_interval = seconds(caller, "max_interval", options.max_interval, math.max(default_max, interval))
  if max_interval < interval then usage.error(caller .. ": max_interval must be at least interval") end
  return interval, max_interval
end

--- Whether an error says that the route itself is not there (an API retired at the gateway, 404
-- APIG(W).0101, or at the backend, 404 CB.00060214: SERVICE-CONTRACTS sections 8.3 and 1.3), as
-- opposed to a missing job or build: the caller then asks the older or newer route.
local function route_missing(err)
  return type(err) == "table" and err.kind == "not_found" and err.what == "api" -- the core's codes.c
end

---------------------------------------------------------------------------------------------------
-- Waiting for held requests (blocking, or yielding in a marked coroutine)

local function yielding()
  local co = coroutine.running()
  return co ~= nil and batch.is_yielding(co)
end

local forget = batch.forget -- cancels a held request wherever it is
local take = batch.await -- (client, id, deadline, holder): a held request's entry, or nil after deadline

--- The next piece (a string) of a streamed request, or its entry (a table).
local function read(client, id)
  if yielding() then
    while true do
      local piece = client:read(id, 0)
      if piece then return piece end
      coroutine.yield()
    end
  end
  return client:read(id)
end

--- The options of a held request whose start waits `after_ms`.
local function held_options(after_ms)
  if after_ms and after_ms > 0 then return { hold = true, after = math.ceil(after_ms) } end
  return HOLD
end

--- Waits for a submitted request (submit's answer: id, or nil, message, err) and gives its entry's
-- `field`, message, err; nil, false when the deadline passed (the request is cancelled).
local function answer(client, field, deadline, holder, id, message, err)
  if not id then return nil, message, err end
  local entry = take(client, id, deadline, holder)
  if not entry then return nil, false end
  return entry[field], entry.message, entry.err
end

--- A held GET, decoded: body, or nil, message, err; `after_ms` delays its start, `deadline` bounds
-- the wait (nil, false when it passed: the request is cancelled); `holder` as take() has it.
local function get(client, path, query, after_ms, deadline, holder)
  return answer(client, "body", deadline, holder, client:submit_get(path, query, held_options(after_ms)))
end

--- A held record request, as `get`.
local function record(client, job_id, build_no, after_ms, deadline, holder)
  return answer(client, "record", deadline, holder, client:submit(job_id, build_no, held_options(after_ms)))
end

--- Runs fn(); when it raises, runs cleanup() first and raises again. Where a yield cannot cross
-- pcall (PUC 5.1 in a yielding coroutine), fn runs unprotected and cleanup only on return.
local function protected(fn, cleanup)
  if not CAN_YIELD_IN_PCALL and yielding() then
    local a, b, c = fn()
    cleanup(a)
    return a, b, c
  end
  local ok, a, b, c = pcall(fn)
  cleanup(ok and a)
  if not ok then error(a, 0) end
  return a, b, c
end

local new_guard = batch.new_guard -- collected or closed: calls release

---------------------------------------------------------------------------------------------------
-- Build states

--- Whether a record says its build is no longer running: a status that ends a build (query.lua's
-- rule: SUCCESS, FAILED, FAILURE, ABORTED, SCHEDULE_FAILURE, any case), or a finish time beside a
-- status the library does not know (SERVICE-CONTRACTS section 11: unknown values are "in
-- progress" unless the build has a finish time); a known status that does not end a build
-- (RUNNING, INQUEUE) is running whatever else the record says.
local function has_ended(rec)
  local status = type(rec.status) == "string" and rec.status:upper() or ""
  if rules.ended{ status = status, finishTime = "-" } then return true end
  if type(rec.finishTime) ~= "string" or rec.finishTime == "" then return false end
  for _, known in ipairs(rules.KNOWN.status) do
    if known == status then return false end
  end
  return true
end
M.has_ended = has_ended

---------------------------------------------------------------------------------------------------
-- steps()

local Step = {}
Step.__index = Step

--- One aligned line: position, status, duration, name (the name last, so that names of any
-- width keep the columns straight).
function Step.__tostring(step)
  local duration = step.status == "NOT_RUN" and "-" or core.format_duration(step.duration)
  return ("%2d  %-7s  %7s  %s"):format(step.index, step.status, duration, step.name)
end

local StepList = {}
StepList.__index = StepList

function StepList.__tostring(list)
  local lines = {}
  for i, step in ipairs(list) do lines[i] = tostring(step) end
  return table.concat(lines, "\n")
end

--- The first step with this status ("FAILED", "RUNNING", ...), or nil.
---@param status string
function StepList:find(status)
  for _, step in ipairs(self) do
    if step.status == status then return step end
  end
  return nil
end

-- history-details' step statuses (section 4: running|success|error|"", "" = not run).
local DETAIL_STATUS = { success = "SUCCESS", error = "FAILED", running = "RUNNING" }

local function number_or_nil(x)
  x = tonumber(x)
  return x
end

--- Steps from `GET /v3/jobs/{job_id}/{n}/history-details` (build_steps: name, status, build_time ms).
local function steps_from_details(body, where)
  local list = type(body) == "table" and body.build_steps
  if type(list) ~= "table" then return failure("decode", where .. ": the answer has no build_steps") end
  local steps = {}
  for i, item in ipairs(list) do
    if type(item) ~= "table" then return failure("decode", where .. ": a step is not an object") end
    local raw = type(item.status) == "string" and item.status or ""
    local duration = number_or_nil(item.build_time)
    local status = DETAIL_STATUS[raw:lower()]
    if not status then
      -- "" is "not run" (section 4); one that took time has no status the reference knows.
      status = raw ~= "" and raw:upper() or ((duration or 0) > 0 and "UNKNOWN" or "NOT_RUN")
    end
    steps[i] = setmetatable({ index = i, name = tostring(item.name or ""), status = status, raw_status = raw,
      duration = duration }, Step)
  end
  return setmetatable(steps, StepList)
end

--- Steps from `GET /v1/record/{record_id}/full-stages` (build_stages: a map of stages, each with
-- display_name, status, start_time, finish_time, duration ms, sequence), in sequence order.
local function steps_from_stages(body, where)
  local stages = type(body) == "table" and type(body.result) == "table" and body.result.build_stages
  if type(stages) ~= "table" then return failure("decode", where .. ": the answer has no build_stages") end
  local steps = {}
  for key, stage in pairs(stages) do
    if type(stage) == "table" then
      steps[#steps + 1] = setmetatable({
        name = tostring(stage.display_name or stage.execution_stage_name or key),
        status = type(stage.status) == "string" and stage.status:upper() or "UNKNOWN",
        raw_status = stage.status,
        duration = number_or_nil(stage.duration or stage.build_duration),
        start = stage.start_time, finish = stage.finish_time,
        sequence = number_or_nil(stage.sequence) or number_or_nil(tostring(key):match("%d+")) or 0,
      }, Step)
    end
  end
  table.sort(steps, function(a, b) return a.sequence < b.sequence end)
  for i, step in ipairs(steps) do step.index = i end
  return setmetatable(steps, StepList)
end

--- The steps of a build, in order: each `{ index, name, status, duration, start, finish }`,
-- `tostring(step)` one aligned line, `tostring(steps)` all of them. From
-- `GET /v3/jobs/{job_id}/{n}/history-details` (the best documented: every step of the job, run or
-- not, with `status` SUCCESS, FAILED, RUNNING or NOT_RUN and `duration` in ms; no times); where
-- that route is gone (404 APIG.0101 / CB.00060214), from `GET /v1/record/{record_id}/full-stages`
-- (the steps that ran, with `start` and `finish`), the record id read from the record.
-- `steps:find("FAILED")` is the first step with that status.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param build_no integer|string
---@return table|nil steps
---@return string|nil message
---@return table|nil err
function methods.steps(client, job_id, build_no)
  local n, message, err = check_build("steps", job_id, build_no)
  if not n then return nil, message, err end
  local where = ("steps %s/%d"):format(job_id, n)
  local body
  body, message, err = get(client, ("/v3/jobs/%s/%d/history-details"):format(job_id, n))
  if body then return steps_from_details(body, where) end
  if not route_missing(err) then return nil, named_missing(where, job_id, n, message, err), err end
  local rec
  rec, message, err = record(client, job_id, n)
  if not rec then return nil, message, err end
  if type(rec.buildRecordId) ~= "string" or rec.buildRecordId == "" then
    return failure("decode", where .. ": the record has no buildRecordId", { job_id = job_id, build_no = n })
  end
  body, message, err = get(client, ("/v1/record/%s/full-stages"):format(rec.buildRecordId))
  if not body then return nil, message, err end
  return steps_from_stages(body, where)
end

---------------------------------------------------------------------------------------------------
-- The real-time log (SERVICE-CONTRACTS section 5.2): pieces by offset, the offsets the server gave

-- The v3 route is the one documented end to end; v1 where v3 is gone (its offset chaining is the
-- reference's guess: next start_offset = the last end_offset).
local REAL_TIME = {
  {
    path = "/v3/jobs/%s/%d/real-time-log",
    query = function(offset, length) return { offset = offset, length = length } end,
    read = function(r) return r.content, r.offset, r.has_more_data end,
  },
  {
    path = "/v1/log/%s/%d/real-time-log",
    query = function(offset, length) return { start_offset = offset, size = tostring(length) } end,
    read = function(r) return r.log, r.end_offset, r.has_more end,
  },
}

local DEFAULT_LENGTH = 1000000 -- the documented default of `length`

--- A piece's length: the documented default, or less where max_body could not hold its JSON.
local function piece_length(client, length)
  if length then return length end
  local max_body = client:info().max_body
  return math.max(1024, math.min(DEFAULT_LENGTH, math.floor(max_body / 8)))
end

local function truthy(x)
  return x == true or x == "true"
end

--- One request of the real-time log at `reader.offset`: text (maybe ""), next offset (a number or
-- nil), has_more; or nil, message, err (nil, false: the deadline passed). Moves to v1 when v3 is gone.
local function real_time_piece(reader, after_ms, deadline)
  while true do
    local route = REAL_TIME[reader.route]
    reader.requests = reader.requests + 1
    local body, message, err = get(reader.client, route.path:format(reader.job_id, reader.build_no),
      route.query(reader.offset, reader.length), after_ms, deadline, reader.holder)
    if body then
      local result = body.result
      if type(result) ~= "table" then
        return failure("decode", reader.where .. ": the real-time log answer has no result",
          { job_id = reader.job_id, build_no = reader.build_no })
      end
      local text, following, more = route.read(result)
      if text ~= nil and type(text) ~= "string" then
        return failure("decode", reader.where .. ": the real-time log's text is not a string",
          { job_id = reader.job_id, build_no = reader.build_no })
      end
      return text or "", tonumber(following), truthy(more)
    end
    if message == false or not (route_missing(err) and reader.route < #REAL_TIME) then
      return nil, message, err
    end
    reader.route = reader.route + 1
    after_ms = 0
  end
end

--- Takes a piece in: returns it, or nil, message, err when the server gave text without moving
-- its offset forward (the same text would come again).
local function advance(reader, text, following)
  if text == "" then
    if following and following > reader.offset then reader.offset = following end
    return ""
  end
  if not following or following <= reader.offset then
    return failure("decode", ("%s: the real-time log gave %d bytes at offset %d and no offset after them")
      :format(reader.where, #text, reader.offset), { job_id = reader.job_id, build_no = reader.build_no })
  end
  reader.offset = following
  return text
end

local function new_reader(client, job_id, build_no, length, where, holder)
  return { client = client, job_id = job_id, build_no = build_no, offset = 0, route = 1, requests = 0,
    length = piece_length(client, length), where = where, holder = holder }
end

--- Whether a piece came back as long as asked: more is there already (the unit of `length` is
-- unknown, bytes or characters, and a piece ends on a character: a few bytes short still counts).
local function full_piece(reader, text)
  return #text >= reader.length - 4
end

---------------------------------------------------------------------------------------------------
-- log()

local DEFAULT_MAX_BYTES = 64 * 1024 * 1024

--- A sink for the whole log as a string, up to max_bytes.
local function string_sink(max_bytes, where)
  local parts, size = {}, 0
  return function(piece)
    size = size + #piece
    if size > max_bytes then
      return failure("decode", ("%s: the log is larger than max_bytes (%d bytes): pass to_file or on_chunk to "
        .. "stream it, or a larger max_bytes"):format(where, max_bytes))
    end
    parts[#parts + 1] = piece
    return true
  end, function() return table.concat(parts) end
end

local function count_newlines(text)
  local count, at = 0, 0
  while true do
    at = text:find("\n", at + 1, true)
    if not at then return count end
    count = count + 1
  end
end

--- The last n lines of text (a last line without "\n" counts as one).
local function last_lines(text, n)
  if n == 0 then return "" end
  local need = text:sub(-1) == "\n" and n + 1 or n
  local skip = count_newlines(text) - need + 1 -- the newline after which the tail starts
  if skip < 1 then return text end
  local at = 0
  for _ = 1, skip do at = text:find("\n", at + 1, true) end
  return text:sub(at + 1)
end

--- A sink that keeps only the pieces the last n lines can be in: memory for n lines and a piece.
local function tail_sink(n)
  -- pieces[first..last]; newlines counts the line ends in pieces[first + 1..last]
  local pieces, counts, first, last, newlines = {}, {}, 1, 0, 0
  return function(piece)
    last = last + 1
    pieces[last], counts[last] = piece, count_newlines(piece)
    if last > first then newlines = newlines + counts[last] end
    -- pieces[first] can go when the pieces after it hold n + 1 line ends.
    while last > first and newlines - counts[first + 1] >= n + 1 do
      pieces[first], counts[first] = nil, nil
      first = first + 1
      newlines = newlines - counts[first]
    end
    return true
  end, function()
    return last_lines(table.concat(pieces, "", first, last), n)
  end
end

--- A sink into `path`: the bytes go to path .. ".partial", renamed to path at the end; the
-- partial file is removed when anything fails. Returns sink, finish(ok), or nil, message, err when
-- the file cannot be made (before anything is sent).
local function file_sink(path)
  local partial = path .. ".partial"
  local file, why = io.open(partial, "wb")
  if not file then
    -- io.open's message starts with the path already
    return failure("invalid", ("log: cannot write %s"):format(tostring(why)), { path = path })
  end
  local size = 0
  local function fail(what, detail)
    if file then file:close() end
    file = nil
    os.remove(partial)
    return failure("invalid", ("log: %s %s: %s (removed; %s was left as it was)"):format(what, partial,
      tostring(detail), path), { path = path })
  end
  return function(piece)
    local ok, message = file:write(piece)
    if not ok then return fail("cannot write", message) end
    size = size + #piece
    return true
  end, function(ok)
    if not file then return nil end
    if not ok then
      file:close()
      file = nil
      os.remove(partial)
      return nil
    end
    local closed, message = file:close()
    file = nil
    if not closed then
      os.remove(partial)
      return fail("cannot write", message)
    end
    local renamed, rename_message = os.rename(partial, path)
    if not renamed then
      os.remove(partial)
      return failure("invalid", ("log: cannot move %s to %s: %s"):format(partial, path, tostring(rename_message)),
        { path = path })
    end
    return size
  end
end

--- Streams a download route into sink. Returns the byte count, or nil, message, err; `gave` says
-- whether any piece reached the sink (then no other route may be asked).
local function download(client, path, query, sink, where)
  local id, message, err = client:submit_get(path, query, STREAM)
  if not id then return nil, message, err, false end
  local gave, stopped = false, nil
  local result = { protected(function()
    while true do
      local piece = read(client, id)
      if type(piece) ~= "string" then return piece end
      gave = true
      local ok, m, e = sink(piece)
      if not ok then
        stopped = { m, e }
        return nil
      end
    end
  end, function(finished_entry)
    if not finished_entry then forget(client, id) end
  end) }
  local entry = result[1]
  if stopped then return nil, stopped[1], stopped[2], true end
  if entry.bytes then return entry.bytes, nil, nil, gave end
  if entry.err then
    if gave then
      local text = ("%s: the log was cut short: %s"):format(where, entry.message)
      local cut = {}
      for k, v in pairs(entry.err) do cut[k] = v end
      cut.message = text
      return nil, text, core.error(cut), true
    end
    return nil, entry.message, entry.err, false
  end
  -- A file route that answered JSON without an error in it (section 5.1: a failure all the same).
  return failure("decode", ("%s: %s answered JSON, not a log file"):format(where, path))
end

--- The log as the real-time route has it now (a running build's, or where no file route is
-- there), into sink, without waiting: until a piece comes back empty.
local function real_time_now(client, job_id, build_no, length, sink, where)
  local reader = new_reader(client, job_id, build_no, length, where)
  local size = 0
  for _ = 1, 1000000 do
    local text, following, message = real_time_piece(reader, 0, nil)
    if not text then return nil, following, message end
    local err
    text, message, err = advance(reader, text, following)
    if not text then return nil, message, err end
    if text == "" then return size end
    size = size + #text
    local ok
    ok, message, err = sink(text)
    if not ok then return nil, message, err end
  end
  return failure("decode", where .. ": the real-time log never ended")
end

local LOG_OPTIONS = { tail = "number", to_file = "string", on_chunk = "function", max_bytes = "number",
  level = "string", length = "number" }

--- The log of a build. By default the whole log as a string (at most `max_bytes`, default
-- 64 MiB: more is an error of kind `decode` that says to stream it); `tail = n` its last n lines
-- (holding no more than those in memory); `to_file = path` streams it into that file (written
-- as path .. ".partial" and renamed when complete: a failure leaves nothing behind) and returns
-- the byte count; `on_chunk = function(text)` hands it over a piece at a time (64 KiB at most)
-- and returns the byte count. `level = "DEBUG"` asks for the debug log.
--
-- A finished build's log comes from `GET /v1/log/{record_id}/download-log` (the record id read
-- from the record), streamed through the engine (compressed if the server offers it), else the
-- v4 route; a running build's (or where no file route answers) from the real-time log, as far as
-- it is now. Returns `nil, message, err` on failure; a file that cannot be written is `invalid`
-- (`err.path`), a download cut short after some pieces went to `on_chunk` says so.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param build_no integer|string
---@param opts? {tail?: integer, to_file?: string, on_chunk?: fun(text: string), max_bytes?: integer, level?: string}
---@return string|integer|nil log_or_bytes
---@return string|nil message
---@return table|nil err
function methods.log(client, job_id, build_no, opts)
  local options = read_options("log", opts, LOG_OPTIONS)
  local forms = (options.tail and 1 or 0) + (options.to_file and 1 or 0) + (options.on_chunk and 1 or 0)
  if forms > 1 then usage.error("log: tail, to_file and on_chunk exclude each other") end
  if options.tail and not is_whole(options.tail, 0) then usage.error("log: tail must be an integer >= 0") end
  if options.max_bytes and not is_whole(options.max_bytes, 0) then
    usage.error("log: max_bytes must be an integer >= 0")
  end
  if options.length and not is_whole(options.length, 1) then usage.error("log: length must be an integer >= 1") end
  if options.level and options.level ~= "INFO" and options.level ~= "DEBUG" then
    usage.error('log: level must be "INFO" or "DEBUG"')
  end
  local n, message, err = check_build("log", job_id, build_no)
  if not n then return nil, message, err end
  local where = ("log %s/%d"):format(job_id, n)

  local sink, finish
  if options.to_file then
    sink, finish, err = file_sink(options.to_file)
    if not sink then return nil, finish, err end
  elseif options.on_chunk then
    local on_chunk = options.on_chunk
    sink = function(piece) on_chunk(piece) return true end
    finish = function(ok, size) return ok and size or nil end
  elseif options.tail then
    local result
    sink, result = tail_sink(options.tail)
    finish = function(ok) return ok and result() or nil end
  else
    local result
    sink, result = string_sink(options.max_bytes or DEFAULT_MAX_BYTES, where)
    finish = function(ok) return ok and result() or nil end
  end

  local size
  local outcome = { protected(function()
    local rec, m, e = record(client, job_id, n)
    if not rec then return nil, m, e end
    local record_id = type(rec.buildRecordId) == "string" and rec.buildRecordId ~= "" and rec.buildRecordId
    if has_ended(rec) and record_id then
      local query = options.level and { log_level = options.level } or nil
      local bytes, gave
      for _, path in ipairs{ "/v1/log/%s/download-log", "/v4/%s/download-log" } do
        bytes, m, e, gave = download(client, path:format(record_id), query, sink, where)
        if bytes or gave or not route_missing(e) then break end
      end
      if bytes or gave or not route_missing(e) then return bytes, m, e end
    end
    return real_time_now(client, job_id, n, options.length, sink, where)
  end, function(completed)
    if not completed and finish then finish(false) end
  end) }
  size, message, err = outcome[1], outcome[2], outcome[3]
  if not size then return nil, message, err end
  if options.to_file then
    local done
    done, message, err = finish(true, size)
    if not done then return nil, message, err end
    return done
  end
  return finish(true, size)
end

---------------------------------------------------------------------------------------------------
-- follow()

local FOLLOW_OPTIONS = { interval = "number", max_interval = "number", length = "number", on_chunk = "function",
  on_done = "function" }
local DEFAULT_FOLLOW_INTERVAL, DEFAULT_FOLLOW_MAX = 2, 10
local BACKOFF = 1.5
local STATUS_CHECK_EVERY = 5 -- empty rounds in a row that say more is coming before the status is asked anyway
local FAILED_ROUNDS = 5      -- throttled rounds in a row before giving up

--- A round that failed because the service throttled it (after the engine's own retries):
-- the next comes after the longest interval; FAILED_ROUNDS of them in a row end the loop.
local function throttled(state, err)
  if type(err) ~= "table" or err.kind ~= "throttled" then return false end
  state.failed_rounds = state.failed_rounds + 1
  return state.failed_rounds < FAILED_ROUNDS
end

--- The next text of a followed build ("" never); nil at the end; nil, message, err on failure.
local function follow_next(f)
  while not f.closed do
    if f.check then
      -- SERVICE-CONTRACTS section 5.2, step 6: has the build ended?
      f.check = false
      f.reader.requests = f.reader.requests + 1
      local rec, message, err = record(f.client, f.job_id, f.build_no, 0, nil, f)
      if f.closed then return nil end
      if rec then
        f.failed_rounds = 0
        if has_ended(rec) then
          f.record, f.ended, f.wait_ms = rec, true, 0 -- one more request at once: the last bytes
        else
          f.wait_ms = f.interval * 1000
          f.interval = math.min(f.interval * BACKOFF, f.max_interval)
        end
      elseif throttled(f, err) then
        f.wait_ms, f.check = f.max_interval * 1000, true
      else
        return nil, message, err
      end
    else
      local text, following, more = real_time_piece(f.reader, f.wait_ms, nil)
      f.wait_ms = 0
      if f.closed then return nil end
      if not text then
        if not throttled(f, more) then return nil, following, more end
        f.wait_ms = f.max_interval * 1000
      else
        f.failed_rounds = 0
        local message, err
        text, message, err = advance(f.reader, text, following)
        if not text then return nil, message, err end
        if text ~= "" then
          f.interval, f.empty_rounds = f.first_interval, 0
          if f.ended or (more and full_piece(f.reader, text)) then
            f.wait_ms = 0 -- the rest of a backlog, or the last bytes: at once
          elseif more then
            f.wait_ms = f.interval * 1000 -- at the log's current end
          else
            f.check = true -- the log says nothing more is coming
          end
          return text
        end
        if f.ended then return nil end -- the request after the end brought nothing new
        f.empty_rounds = f.empty_rounds + 1
        if not more or f.empty_rounds % STATUS_CHECK_EVERY == 0 then
          f.check = true
        else
          f.wait_ms = f.interval * 1000
          f.interval = math.min(f.interval * BACKOFF, f.max_interval)
        end
      end
    end
  end
  return nil
end

--- Stops a follow: the request it waits for (a yielding one's) is cancelled.
local function close_follower(f)
  f.closed = true
  if f.pending then
    forget(f.client, f.pending)
    f.pending = nil
  end
end

local Follower = {}
Follower.__index = Follower

--- Runs the follow as far as it can go, waiting at most `timeout_ms` (default 0: never) for an
-- answer: hands new text to on_chunk, and at the end calls on_done(record) (or on_done(nil,
-- message, err)). Returns true while the follow goes on. Errors raised by on_chunk or on_done end
-- the follow and are raised again here.
---@param timeout_ms? number
function Follower:step(timeout_ms)
  if self.closed or coroutine.status(self.co) == "dead" then return false end
  self.state.step_ms = timeout_ms or 0
  local ok, why = coroutine.resume(self.co)
  if not ok then
    self.closed = true
    error(why, 0)
  end
  return coroutine.status(self.co) ~= "dead" and not self.closed
end

--- Stops following (also from inside on_chunk): no callback after it, no request left behind.
function Follower:close()
  close_follower(self.state)
  self.closed = true
end

--- Follows a running build's log as it grows, through the real-time log API (v3, or v1 where v3
-- is gone): requests at the offsets the server returns (never computed from the text), until the
-- build has ended and the last bytes are out (SERVICE-CONTRACTS section 5.2). While the log is at
-- its current end it asks at most once every `interval` seconds (default 2), backing off by half
-- each time nothing new came, up to `max_interval` (default 10); while a backlog comes back in
-- full pieces (`length`, default 1000000), the next request goes at once. When the log says no
-- more is coming (or after 5 empty answers), it reads the record to know whether the build ended.
-- A throttled round waits `max_interval` and goes on (5 in a row fail). On a finished build it
-- gives the whole log and ends.
--
-- Without callbacks: `iterator, follower, nil, closer` for a generic for, each step a piece of
-- text; a failure raises its err (a table: `pcall` to read `err.kind`); `break` (and on 5.4 the
-- closer, to-be-closed) stops it. With `on_chunk = function(text)` (and `on_done = function(record,
-- message, err)`): a follower for an event loop: `step()` does what is due without waiting (from
-- a timer), `step(ms)` waits at most that long for an answer; it returns false once it is over;
-- `close()` stops it (also from inside on_chunk).
-- Returns `nil, message, err` for a bad job id or build number.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param build_no integer|string
---@param opts? {interval?: number, max_interval?: number, length?: integer, on_chunk?: function, on_done?: function}
function methods.follow(client, job_id, build_no, opts)
  local options = read_options("follow", opts, FOLLOW_OPTIONS)
  local interval, max_interval = intervals("follow", options, DEFAULT_FOLLOW_INTERVAL, DEFAULT_FOLLOW_MAX)
  if options.length and not is_whole(options.length, 1) then usage.error("follow: length must be an integer >= 1") end
  if options.on_done and not options.on_chunk then usage.error("follow: on_done goes with on_chunk") end
  local n, message, err = check_build("follow", job_id, build_no)
  if not n then return nil, message, err end
  local where = ("follow %s/%d"):format(job_id, n)
  local f = {
    client = client, job_id = job_id, build_no = n, where = where,
    first_interval = interval, interval = interval, max_interval = max_interval,
    wait_ms = 0, empty_rounds = 0, failed_rounds = 0, ended = false, closed = false, check = false,
  }
  f.reader = new_reader(client, job_id, n, options.length, where, f)

  if not options.on_chunk then
    local guard = new_guard(function() close_follower(f) end)
    f.guard = guard
    local function iterator()
      local text, _, e = follow_next(f)
      if text then return text end
      close_follower(f)
      if e then error(e, 0) end
      return nil
    end
    return iterator, f, nil, guard
  end

  local on_chunk, on_done = options.on_chunk, options.on_done
  -- collected without close(): the guard cancels the request it waited for
  local follower = setmetatable({ state = f, guard = new_guard(function() close_follower(f) end) }, Follower)
  follower.co = coroutine.create(function()
    while true do
      local text, m, e = follow_next(f)
      if f.closed then return end
      if not text then
        f.closed = true
        if on_done then
          if e then on_done(nil, m, e) else on_done(f.record) end
        end
        return
      end
      on_chunk(text)
    end
  end)
  batch.yielding(follower.co)
  return follower
end

---------------------------------------------------------------------------------------------------
-- wait()

local WAIT_OPTIONS = { timeout = "number", interval = "number", max_interval = "number", on_change = "function" }
local DEFAULT_WAIT_INTERVAL, DEFAULT_WAIT_MAX = 2, 30

--- The step that runs now (the first RUNNING one), or nil.
local function current_step(steps)
  if type(steps) ~= "table" then return nil end
  for _, step in ipairs(steps) do
    if step.status == "RUNNING" then return step end
  end
  return nil
end

--- Waits until a build is no longer running and returns its final record. `build_no` left out
-- (nil) means the newest build (`client:latest`). Polls the record, first at once, then every
-- `interval` seconds (default 2), backing off by half while nothing changes, up to
-- `max_interval` (default 30); a throttled poll waits `max_interval` and goes on. `timeout`
-- (seconds; default none) bounds the wait after the first poll (which is always answered:
-- `timeout = 0` looks once): then it returns `nil, message, err` with `err.kind == "timeout"` and
-- `err.record`, the last record seen. `on_change(record, steps)` is
-- called when the status or the running step changes (the first poll included; the steps are
-- read only when on_change is given). The waits between polls are the engine's (or yields, in the
-- Neovim adapter): nothing spins.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param build_no integer|string|nil
---@param opts? {timeout?: number, interval?: number, max_interval?: number, on_change?: function}
---@return table|nil record
---@return string|nil message
---@return table|nil err
function methods.wait(client, job_id, build_no, opts)
  local options = read_options("wait", opts, WAIT_OPTIONS)
  local interval, max_interval = intervals("wait", options, DEFAULT_WAIT_INTERVAL, DEFAULT_WAIT_MAX)
  if options.timeout ~= nil and (options.timeout ~= options.timeout or options.timeout < 0) then
    usage.error("wait: timeout must be a number of seconds >= 0")
  end
  local deadline = options.timeout and options.timeout < math.huge and monotonic() + options.timeout or nil
  local message, err
  if build_no == nil then
    if type(job_id) ~= "string" then
      usage.error(("bad argument #1 to 'wait' (string expected, got %s)"):format(type(job_id)))
    end
    build_no, message, err = methods.latest(client, job_id)
    if not build_no then return nil, message, err end
  end
  local n
  n, message, err = check_build("wait", job_id, build_no)
  if not n then return nil, message, err end

  local state = { failed_rounds = 0 }
  local step_interval, after_ms = interval, 0
  local last_rec, last_key = nil, nil
  local function timed_out()
    local text = ("wait %s/%d: the build is still %s after %g s"):format(job_id, n,
      tostring(last_rec and last_rec.status or "unknown"), options.timeout)
    return failure("timeout", text, { job_id = job_id, build_no = n, record = last_rec })
  end
  local first = true
  while true do
    if deadline then after_ms = math.max(0, math.min(after_ms, (deadline - monotonic()) * 1000)) end
    local rec
    -- the first poll is answered whatever the timeout (timeout = 0: look once)
    rec, message, err = record(client, job_id, n, after_ms, not first and deadline or nil)
    first = false
    if message == false then return timed_out() end
    if rec then
      state.failed_rounds = 0
      local steps = options.on_change and methods.steps(client, job_id, n) or nil
      local running = current_step(steps)
      local key = tostring(rec.status) .. "\0" .. (running and running.index .. "\0" .. running.name or "")
      last_rec = rec
      if key ~= last_key then
        last_key, step_interval = key, interval
        if options.on_change then options.on_change(rec, steps) end
      else
        step_interval = math.min(step_interval * BACKOFF, max_interval)
      end
      if has_ended(rec) then return rec end
      after_ms = step_interval * 1000
    elseif throttled(state, err) then
      after_ms = max_interval * 1000
    else
      return nil, message, err
    end
    if deadline and monotonic() >= deadline then return timed_out() end
  end
end

--- The methods this module installs, by name.
M.methods = { steps = methods.steps, log = methods.log, follow = methods.follow, wait = methods.wait }

return M
