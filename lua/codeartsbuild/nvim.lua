--- codeartsbuild.nvim: the library inside Neovim, without ever blocking the editor.
--
-- Requests go through the same client engine as everywhere else, held for the adapter: a libuv
-- timer takes each one by id with a zero timeout (`client:take(id, 0)`, which runs the engine
-- without waiting) every few milliseconds while anything is pending, and stops when nothing is;
-- callbacks run through vim.schedule. The adapter never calls poll(), so it never takes results
-- of requests a script made on the same client. Batch walks (records, latest) run in coroutines
-- that the timer resumes: where a script would wait inside take(), they yield instead.
--
--     local cbn = require("codeartsbuild.nvim")
--     cbn.setup{ region = "cn-north-4" }            -- optional: the environment is used otherwise
--     cbn.record_info(job, 61, function(rec, message, err) print(rec or message) end)
--     cbn.records(job, { from = 1, to = 20 }, function(n, rec, err) ... end, function(count) ... end)
--     cbn.latest(job, function(n, message, err) ... end)
--     cbn.follow(job, 62, nil, function(text) ... end, function(rec, message, err) ... end)
--     cbn.wait(job, nil, { timeout = 1800 }, function(rec, message, err) ... end)
local cb = require("codeartsbuild")
local batch = require("codeartsbuild.batch")
local view = require("codeartsbuild.view")

local uv = vim.uv or vim.loop
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local M = {}

--- How often the engine is polled while requests are pending, in milliseconds.
M.TICK_MS = 10

local options -- setup()'s client options; nil: the environment's
local client -- made on first use
local timer
local callbacks = {} -- request id -> function(entry), for the held requests submitted here
local HOLD = { hold = true }
local tasks = {} -- coroutine -> true: walks the timer resumes
local followers = {} -- follower -> true: client:follow's event-loop form, which the timer steps

--- Runs fn(...) on the editor's main loop, later.
local function later(fn, ...)
  local n, args = select("#", ...), { ... }
  vim.schedule(function() fn(unpack(args, 1, n)) end)
end

local function notify_error(message)
  vim.notify(message, vim.log.levels.ERROR, { title = "codeartsbuild" })
end

--- Client options for the adapter (as for codeartsbuild.new); without setup(), or with nil,
-- the client is made from the environment.
---@param opts table|nil
function M.setup(opts)
  if client and client ~= cb.default_client() then client:close() end
  client, options, callbacks = nil, opts, {}
  M.options = opts
end

--- The options setup() was given (nil: the environment's), for :checkhealth.
M.options = nil

--- The adapter's client, or nil, message, err when none can be made.
function M.client()
  -- A client closed behind the adapter's back (by a hook, a callback, the user) is replaced.
  if client and not pcall(client.pending, client) then client = nil end
  if client then return client end
  local made, message, err
  if options then
    made, message, err = cb.new(options)
  else
    made, message, err = cb.default_client()
  end
  if not made then return nil, message, err end
  client = made
  return client
end

local function idle()
  return next(callbacks) == nil and next(tasks) == nil and next(followers) == nil
end

local function resume(co)
  local ok, err = coroutine.resume(co)
  if coroutine.status(co) == "dead" then
    tasks[co] = nil
    if not ok then later(notify_error, "codeartsbuild: " .. tostring(err)) end
  end
end

--- The adapter's own requests that are done, each { on_done, entry }, taken without waiting. A take
-- that raises (the request was cancelled behind the adapter's back) ends that request with its message.
local function take_done(c)
  local ids, done = {}, {}
  for id in pairs(callbacks) do ids[#ids + 1] = id end
  for _, id in ipairs(ids) do
    local ok, entry = pcall(c.take, c, id, 0)
    if not ok then entry = { id = id, message = tostring(entry) } end
    if entry then done[#done + 1] = { callbacks[id], entry } end
  end
  return done
end

--- One turn of the timer: whatever the engine has ready, without waiting for anything.
local function tick()
  if client and next(callbacks) ~= nil then
    for _, pair in ipairs(take_done(client)) do
      callbacks[pair[2].id] = nil
      pair[1](pair[2])
    end
  end
  for co in pairs(tasks) do resume(co) end
  for follower in pairs(followers) do
    local ok, going = pcall(follower.step, follower)
    if not ok then later(notify_error, "codeartsbuild: " .. tostring(going)) end
    if not (ok and going) then followers[follower] = nil end
  end
  if idle() and timer then timer:stop() end
end

local function run_timer()
  if not timer then timer = uv.new_timer() end
  if not timer:is_active() then
    timer:start(M.TICK_MS, M.TICK_MS, vim.schedule_wrap(tick))
  end
end

--- Starts fn() as a walk in a coroutine: its waits yield to the timer.
local function spawn(fn)
  local co = coroutine.create(fn)
  batch.yielding(co)
  tasks[co] = true
  run_timer()
  resume(co) -- up to its first wait; it may finish at once
end

--- True while any request or walk started here is pending.
function M.busy()
  return not idle()
end

--- record_info without blocking: callback(record, message, err) on the main loop.
---@param job_id string
---@param build_no integer
---@param callback fun(record: table|nil, message: string|nil, err: table|nil)
---@return integer|nil id the request's id, to cancel it
function M.record_info(job_id, build_no, callback)
  local c, message, err = M.client()
  local id
  if c then id, message, err = c:submit(job_id, build_no, HOLD) end
  if not id then
    later(callback, nil, message, err)
    return nil
  end
  callbacks[id] = function(result) later(callback, result.record, result.message, result.err) end
  run_timer()
  return id
end

--- The newest build number: callback(build_no, message, err).
function M.latest(job_id, callback)
  local c, message, err = M.client()
  if not c then return later(callback, nil, message, err) end
  spawn(function() later(callback, c:latest(job_id)) end)
end

--- Walks builds as client:records() does (same options), without blocking: on_record(build_no,
-- record, err) for each, in build order, then on_done(count) with the number of records, or
-- on_done(count, "cancelled") when the walk was cancelled. Returns a handle whose cancel() stops
-- the walk and drops its requests in flight.
function M.records(job_id, opts, on_record, on_done)
  local c, message, err = M.client()
  local cancelled = false
  local handle = { cancel = function() cancelled = true end }
  if not c then
    later(notify_error, message)
    if on_done then later(on_done, 0, message, err) end
    return handle
  end
  spawn(function()
    local count = 0
    local iterator, state, control, closer = c:records(job_id, opts)
    for n, rec, failure in iterator, state, control do
      if cancelled then break end
      if rec then count = count + 1 end
      later(on_record, n, rec, failure)
    end
    if closer then getmetatable(closer).__close(closer) end -- break does not close it before 5.4
    if on_done then later(on_done, count, cancelled and "cancelled" or nil) end
  end)
  return handle
end

---------------------------------------------------------------------------------------------------
-- :CodeArtsBuild: buffers that are reused and refreshed, errors as notifications

local api = vim.api

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = "codeartsbuild" })
end

--- fn(...) in protected mode: an error becomes a notification, never a traceback.
local function guarded(fn)
  return function(...)
    local ok, err = pcall(fn, ...)
    if not ok then notify_error("codeartsbuild: " .. tostring(err)) end
  end
end

--- The buffer of that name, or nil.
local function buffer_named(name)
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_valid(buf) and api.nvim_buf_get_name(buf) == name then return buf end
  end
  return nil
end

--- Replaces a buffer's lines (it stays not modifiable).
local function set_lines(buf, lines)
  if not api.nvim_buf_is_valid(buf) then return false end
  api.nvim_buf_set_option(buf, "modifiable", true)
  api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  api.nvim_buf_set_option(buf, "modifiable", false)
  return true
end

--- The scratch buffer of that name, made or reused (never E95), shown in a window (the one that
-- shows it already, else a new split) with `lines`, and the keys: `q` closes it, `r` calls refresh.
local function scratch_buffer(name, lines, refresh)
  local buf = buffer_named(name)
  if not buf then
    buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(buf, name)
    api.nvim_buf_set_option(buf, "bufhidden", "wipe")
    api.nvim_buf_set_option(buf, "swapfile", false)
  end
  set_lines(buf, lines)
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("split")
    api.nvim_win_set_buf(0, buf)
  else
    api.nvim_set_current_win(win)
  end
  local function key(lhs, fn, desc)
    api.nvim_buf_set_keymap(buf, "n", lhs, "", { callback = guarded(fn), noremap = true, silent = true, desc = desc })
  end
  key("q", function() if api.nvim_buf_is_valid(buf) then api.nvim_buf_delete(buf, { force = true }) end end, "close")
  if refresh then key("r", refresh, "refresh") end
  return buf
end

local command_record

local function record_buffer_name(job_id, build_no)
  return ("codeartsbuild://%s/%d"):format(job_id, build_no)
end

command_record = function(job_id, build_no)
  M.record_info(job_id, build_no, guarded(function(rec, message)
    if not rec then return notify_error(message) end
    local lines = view.record_lines(rec)
    table.insert(lines, 1, ("CodeArts Build %s #%d   r refresh  q close"):format(job_id, build_no))
    scratch_buffer(record_buffer_name(job_id, rec.buildNo), lines,
      function() command_record(job_id, build_no) end)
  end))
end

-- List buffers: buffer -> { job_id, count, walk, rows = { [n] = row }, failed = { [n] = err }, state }
local lists = {}

--- The lines of a list buffer: a header with the keys, the aligned table (newest first), the
-- builds that could not be read, and how the walk stands.
local function list_lines(list)
  local numbers = {}
  for n in pairs(list.rows) do numbers[#numbers + 1] = n end
  table.sort(numbers, function(a, b) return a > b end)
  local rows = {}
  for i, n in ipairs(numbers) do rows[i] = list.rows[n] end
  local lines = { ("CodeArts Build %s: the latest %d builds   <CR> open  L log  r refresh  q close"):format(
    list.job_id, list.count) }
  for _, line in ipairs(view.table_lines(rows)) do lines[#lines + 1] = line end
  for _, line in ipairs(view.errors_lines(list.failed)) do lines[#lines + 1] = "could not read " .. line end
  if list.state then lines[#lines + 1] = list.state end
  return lines
end

local command_list

--- Reads the latest `count` builds into the list buffer, newest first, as they arrive; a walk
-- already running for it is cancelled first.
local function fill_list(buf, list)
  if list.walk then list.walk.cancel() end
  list.rows, list.failed, list.walk, list.state = {}, {}, nil, "(reading...)"
  local generation = {}
  list.generation = generation
  set_lines(buf, list_lines(list))
  M.latest(list.job_id, guarded(function(last, message)
    if list.generation ~= generation then return end
    if not last then
      list.state = "(failed: " .. tostring(message):gsub("%c", " ") .. ")"
      set_lines(buf, list_lines(list))
      return notify_error(message)
    end
    local walk
    walk = M.records(list.job_id, { from = math.max(1, last - list.count + 1), to = last, order = "desc" },
      guarded(function(n, rec, err)
        if list.generation ~= generation then return end
        if rec then list.rows[n] = view.row(rec) else list.failed[n] = err end
        if not set_lines(buf, list_lines(list)) then walk.cancel() end -- the buffer was closed
      end),
      guarded(function(count, how)
        if how == "cancelled" then
          if list.generation == generation and api.nvim_buf_is_valid(buf) then
            list.state = ("(cancelled after %d builds)"):format(count)
            set_lines(buf, list_lines(list))
          elseif not api.nvim_buf_is_valid(buf) then
            notify(("codeartsbuild: the list of %s was cancelled after %d builds: its buffer was closed")
              :format(list.job_id, count))
          end
          return
        end
        if list.generation ~= generation then return end
        list.state = nil
        set_lines(buf, list_lines(list))
      end))
    list.walk = walk
  end))
end

---------------------------------------------------------------------------------------------------
-- After the record (issue 14): steps, follow, wait, and :CodeArtsBuild steps|log|wait

--- A build's steps (client:steps) without blocking: callback(steps, message, err).
---@param job_id string
---@param build_no integer
---@param callback fun(steps: table|nil, message: string|nil, err: table|nil)
function M.steps(job_id, build_no, callback)
  local c, message, err = M.client()
  if not c then return later(callback, nil, message, err) end
  spawn(function() later(callback, c:steps(job_id, build_no)) end)
end

--- Follows a build's log (client:follow) without blocking: on_text(text) for each piece as it
-- arrives, in order, then on_done(record, message, err) once the build has ended and its last bytes
-- are out. opts: interval, max_interval, length, as client:follow takes them. Returns a handle whose
-- cancel() stops it (no callback after it).
---@param job_id string
---@param build_no integer
---@param opts table|nil
---@param on_text fun(text: string)
---@param on_done fun(record: table|nil, message: string|nil, err: table|nil)|nil
function M.follow(job_id, build_no, opts, on_text, on_done)
  local stopped = false
  local handle = { cancel = function() stopped = true end }
  local c, message, err = M.client()
  local follower
  if c then
    local follow_options = {}
    for k, v in pairs(opts or {}) do follow_options[k] = v end
    follow_options.on_chunk = function(text) later(function() if not stopped then on_text(text) end end) end
    follow_options.on_done = function(rec, m, e)
      later(function() if not stopped and on_done then on_done(rec, m, e) end end)
    end
    follower, message, err = c:follow(job_id, build_no, follow_options)
  end
  if not follower then
    if on_done then later(on_done, nil, message, err) end
    return handle
  end
  followers[follower] = true
  run_timer()
  handle.cancel = function()
    stopped = true
    followers[follower] = nil
    follower:close()
  end
  return handle
end

--- Waits for a build to end (client:wait) without blocking: callback(record, message, err).
-- build_no nil: the newest build. opts as client:wait takes them (timeout, interval, on_change).
---@param job_id string
---@param build_no integer|nil
---@param opts table|nil
---@param callback fun(record: table|nil, message: string|nil, err: table|nil)
function M.wait(job_id, build_no, opts, callback)
  local c, message, err = M.client()
  if not c then return later(callback, nil, message, err) end
  spawn(function() later(callback, c:wait(job_id, build_no, opts)) end)
end

local command_steps
command_steps = function(job_id, build_no)
  M.steps(job_id, build_no, guarded(function(steps, message)
    if not steps then return notify_error(message) end
    local lines = { ("CodeArts Build %s #%d: %d steps   r refresh  q close"):format(job_id, build_no, #steps) }
    for _, step in ipairs(steps) do lines[#lines + 1] = tostring(step) end
    scratch_buffer(("codeartsbuild://%s/%d/steps"):format(job_id, build_no), lines,
      function() command_steps(job_id, build_no) end)
  end))
end

--- Appends text to a buffer that shows a log: its first line goes on at the end of the buffer's
-- last line (a line the previous text left unfinished). Windows whose cursor was on the last line
-- follow it. Returns false when the buffer is gone.
local function append_text(buf, text)
  if not api.nvim_buf_is_valid(buf) then return false end
  local lines = vim.split(text, "\n", { plain = true })
  local last = api.nvim_buf_line_count(buf)
  lines[1] = api.nvim_buf_get_lines(buf, last - 1, last, false)[1] .. lines[1]
  local following = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if api.nvim_win_get_cursor(win)[1] == last then following[#following + 1] = win end
  end
  api.nvim_buf_set_option(buf, "modifiable", true)
  api.nvim_buf_set_lines(buf, last - 1, last, false, lines)
  api.nvim_buf_set_option(buf, "modifiable", false)
  local count = api.nvim_buf_line_count(buf)
  for _, win in ipairs(following) do api.nvim_win_set_cursor(win, { count, 0 }) end
  return true
end

local log_follows = {} -- log buffer -> the handle of the follow that fills it

--- :CodeArtsBuild log: a buffer that shows the log and keeps growing while the build runs (r reads
-- it again); closing the buffer stops following.
local command_log
command_log = function(job_id, build_no)
  local buf = scratch_buffer(("codeartsbuild://%s/%d/log"):format(job_id, build_no), { "" },
    function() command_log(job_id, build_no) end)
  if log_follows[buf] then
    log_follows[buf].cancel() -- a follow that fills it already: start again
  else
    api.nvim_buf_attach(buf, false, { on_detach = function()
      if log_follows[buf] then log_follows[buf].cancel() end
      log_follows[buf] = nil
    end })
  end
  api.nvim_buf_set_var(buf, "codeartsbuild_log", { job_id = job_id, build_no = build_no, done = false })
  local handle
  handle = M.follow(job_id, build_no, nil, guarded(function(text)
    if not append_text(buf, text) then handle.cancel() end
  end), guarded(function(rec, message)
    if log_follows[buf] == handle then log_follows[buf] = nil end
    if not rec then return notify_error(message) end
    if api.nvim_buf_is_valid(buf) then
      api.nvim_buf_set_var(buf, "codeartsbuild_log", { job_id = job_id, build_no = build_no, done = true,
        status = rec.status })
    end
    notify(("codeartsbuild: %s #%d ended %s"):format(job_id, build_no, tostring(rec.status)))
  end))
  log_follows[buf] = handle
  return handle
end

local function command_wait(job_id, build_no)
  M.wait(job_id, build_no, nil, guarded(function(rec, message)
    if not rec then return notify_error(message) end
    local success = tostring(rec.status):upper() == "SUCCESS"
    notify(("codeartsbuild: %s #%d %s"):format(job_id, rec.buildNo or build_no or 0, tostring(rec.status)),
      success and vim.log.levels.INFO or vim.log.levels.WARN)
  end))
end

--- In a list buffer, L opens the log of the build under the cursor.
local function map_log_key(buf, job_id)
  api.nvim_buf_set_keymap(buf, "n", "L", "", { noremap = true, silent = true, desc = "open the build's log",
    callback = guarded(function()
      local n = tonumber(api.nvim_get_current_line():match("^%s*(%d+)%s"))
      if n then command_log(job_id, n) else notify_error("codeartsbuild: no build on this line") end
    end) })
end

--- A command that takes {job} {n} and nothing more.
local function of_one_build(command)
  return function(job_id, n, extra)
    if n and not extra then
      command(job_id, n)
      return true
    end
  end
end

-- :CodeArtsBuild steps|log {job} {n}, wait {job} [n]: each runs and returns true, or returns
-- nothing for arguments it does not take (the usage then).
local BUILD_COMMANDS = {
  steps = of_one_build(command_steps),
  log = of_one_build(command_log),
  wait = function(job_id, n, extra, given)
    if (n or not given) and not extra then
      command_wait(job_id, n)
      return true
    end
  end,
}

---------------------------------------------------------------------------------------------------

command_list = function(job_id, count)
  local name = ("codeartsbuild://%s/latest-%d"):format(job_id, count)
  local buf
  buf = scratch_buffer(name, {}, function() command_list(job_id, count) end)
  local list = lists[buf]
  if not list then
    list = { job_id = job_id, count = count }
    lists[buf] = list
    map_log_key(buf, job_id)
    api.nvim_buf_attach(buf, false, { on_detach = function() lists[buf] = nil end })
    api.nvim_buf_set_keymap(buf, "n", "<CR>", "", { noremap = true, silent = true, desc = "open the record",
      callback = guarded(function()
        local n = tonumber(api.nvim_get_current_line():match("^%s*(%d+)%s"))
        if n then command_record(job_id, n) end
      end) })
  end
  fill_list(buf, list)
end

local USAGE = "usage: :CodeArtsBuild record {job_id} {build_no} | :CodeArtsBuild list {job_id} [count]"
  .. " | :CodeArtsBuild steps|log {job_id} {build_no} | :CodeArtsBuild wait {job_id} [build_no]"

--- :CodeArtsBuild record {job} {n} | list {job} [count] | steps|log {job} {n} | wait {job} [n]. A
-- buffer of the same record, list, steps or log is reused and refreshed; any error is a notification.
---@param args string[]
function M.command(args)
  local ok, err = pcall(function()
    local action, job_id, number = args[1], args[2], args[3]
    if BUILD_COMMANDS[action] and job_id and BUILD_COMMANDS[action](job_id, tonumber(number), args[4], number) then
      return
    end
    if action == "record" and job_id and tonumber(number) and not args[4] then
      return command_record(job_id, tonumber(number))
    end
    if action == "list" and job_id and (number == nil or tonumber(number)) and not args[4] then
      local count = tonumber(number or 20)
      if count < 1 or count > 10000 or count ~= math.floor(count) then return notify_error(USAGE) end
      return command_list(job_id, count)
    end
    notify_error(USAGE)
  end)
  if not ok then notify_error("codeartsbuild: " .. tostring(err)) end
end

function M.complete(arg_lead, line)
  local words = vim.split(line, "%s+")
  if #words <= 2 then
    return vim.tbl_filter(function(a) return a:find(arg_lead, 1, true) == 1 end,
      { "record", "list", "steps", "log", "wait" })
  end
  return {}
end

return M
