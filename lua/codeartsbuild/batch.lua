--- codeartsbuild.batch: many builds at once, on the C engine's held requests.
--
-- Requiring this module installs methods on every client (`core.client_methods`):
--
--     client:latest(job_id)                 newest build number, or nil, message, err
--     client:records(job_id, opts)          for build_no, record, err in ... (in build order)
--     client:fetch(job_id, builds, opts)    records (list), errors (build_no -> err)
--     client:history(job_id, opts)          for entry in ... (the history API, page by page)
--
-- A records() walk keeps at most `opts.concurrency` requests submitted and not yet yielded: that
-- window is both the in-flight bound and the reorder buffer, so memory does not grow with the range.
--
-- Every request made here is held (`submit(..., { hold = true })`): the client's poll() never
-- returns it, and the walk takes its result by id (`client:take(id)`). Walks, the caller's own
-- submit/poll and other walks share one client without seeing each other's results; a walk left
-- early cancels what it still has in flight.
local core = require "codeartsbuild.core"
local query = require "codeartsbuild.query"
local usage = require "codeartsbuild.usage"
local cache = require "codeartsbuild.cache"

local methods = core.client_methods

local M = {}

local MAX_BUILD_NO = core.MAX_BUILD_NO
local DEFAULT_CONCURRENCY = 8
local MAX_CONCURRENCY = 1024
local HOLD = { hold = true }

---------------------------------------------------------------------------------------------------
-- Errors

-- An error value shaped like the core's (`kind`, `message`, `retryable`, `attempts`, ...);
-- codeartsbuild.build makes its own with it.
local function new_error(kind, message, fields)
  local err = { kind = kind, message = message, retryable = false, attempts = 0 }
  for k, v in pairs(fields or {}) do err[k] = v end
  return core.error(err)
end
M.new_error = new_error

local function failure(kind, message, fields)
  return nil, message, new_error(kind, message, fields)
end

--- nil when job_id is fine; else nil, message, err (kind invalid). A non-string raises, as the core does.
local function check_job_id(caller, job_id)
  if type(job_id) ~= "string" then
    usage.error(("bad argument #1 to '%s' (string expected, got %s)"):format(caller, type(job_id)))
  end
  local ok, message, err = core.check_job_id(job_id, caller)
  if ok then return nil end
  return nil, message, err
end

---------------------------------------------------------------------------------------------------
-- Waiting for a held request

-- Coroutines whose walks must not block (the Neovim adapter's): where others wait inside take(),
-- they take without waiting and yield, to be resumed by their driver. Weak: a finished coroutine
-- goes away by itself.
local yielding = setmetatable({}, { __mode = "k" })

--- Marks a coroutine as one whose walks yield instead of waiting (see codeartsbuild.nvim).
---@param co thread
function M.yielding(co)
  yielding[co] = true
end

--- Whether a coroutine was marked by `yielding` (codeartsbuild.build waits the same way).
---@param co thread
---@return boolean
function M.is_yielding(co)
  return yielding[co] == true
end

--- Forgets a held request: cancelled wherever it is. A closed client has nothing left to cancel.
local function forget(client, id)
  if id then pcall(client.cancel, client, id) end
end
M.forget = forget

-- The entry of a held request once it is done: a blocking take, or in a yielding coroutine a take
-- that waits at most holder.step_ms (default 0), then a yield until it is there. With a
-- `deadline` (on core.monotonic's clock) that passes first: nil, the request cancelled. While it
-- waits in a coroutine, holder.pending (when a holder is given) is the request's id, so that
-- whoever closes the holder's owner meanwhile can cancel it. codeartsbuild.build waits with it too.
local function await(client, id, deadline, holder)
  local co = coroutine.running()
  if co and yielding[co] then
    if holder then holder.pending = id end
    while true do
      local wait_ms = holder and holder.step_ms or 0
      if deadline then wait_ms = math.max(0, math.min(wait_ms, (deadline - core.monotonic()) * 1000)) end
      local entry = client:take(id, wait_ms)
      if entry then
        if holder then holder.pending = nil end
        return entry
      end
      if deadline and core.monotonic() >= deadline then
        forget(client, id)
        if holder then holder.pending = nil end
        return nil
      end
      coroutine.yield()
    end
  end
  local entry
  if deadline then
    entry = client:take(id, math.max(0, (deadline - core.monotonic()) * 1000))
  else
    entry = client:take(id)
  end
  if not entry then forget(client, id) end
  return entry
end
M.await = await

--- client:get() as a held request, so that it waits (or yields) like the walk's requests.
local function get_held(client, path, query_table)
  local id, message, err = client:submit_get(path, query_table, HOLD)
  if not id then return nil, message, err end
  local entry = await(client, id)
  return entry.body, entry.message, entry.err
end

---------------------------------------------------------------------------------------------------
-- latest()

-- Probing for the newest build can land on a deleted build and take it for the end of the job.
-- Before answering n, it checks that this many builds after n+1 are missing too, so that runs of
-- up to GAP_TOLERANCE deleted builds next to a probe do not hide newer builds.
local GAP_TOLERANCE = 2
local MAX_PROBES = 400 -- far above what 2^31 builds need: a guard against a service that flickers

--- A probe function: probe(n) -> true (exists), false (404), or nil, message, err.
local function prober(client, job_id)
  local count = 0
  local first_miss = nil -- message, err of the first 404: the answer when no build exists at all
  return function(n)
    count = count + 1
    if count > MAX_PROBES then
      return failure("api", ("latest %s: no answer after %d probes"):format(job_id, MAX_PROBES), { job_id = job_id })
    end
    local id, message, err = client:submit(job_id, n, HOLD)
    if id then
      local result = await(client, id)
      if result.record then return true end
      message, err = result.message, result.err
    end
    -- A missing build is a miss; a missing job (or API) is the answer to give.
    if err.kind ~= "not_found" or err.what ~= "build" then return nil, message, err end
    first_miss = first_miss or { message, err }
    return false
  end, function() return first_miss end
end

--- From a known build `lo` (0: none known), probes lo+1, lo+2, lo+4, ... until a miss.
-- Returns the last hit and the first miss (nil when MAX_BUILD_NO exists), or nil, message, err.
local function gallop(probe, lo)
  local start, step = lo, 1
  while true do
    local n = math.min(start + step, MAX_BUILD_NO)
    local hit, message, err = probe(n)
    if hit == nil then return nil, message, err end
    if not hit then return lo, n end
    if n == MAX_BUILD_NO then return n, nil end
    lo, step = n, step * 2
  end
end

--- Binary search between a hit (or 0) and a miss: the last hit before the first miss.
local function bisect(probe, lo, hi)
  while hi - lo > 1 do
    local mid = math.floor((lo + hi) / 2)
    local hit, message, err = probe(mid)
    if hit == nil then return nil, message, err end
    if hit then lo = mid else hi = mid end
  end
  return lo
end

--- The first build that exists among the GAP_TOLERANCE after n+1 (n+1 is known missing), or false.
local function build_past_gap(probe, n)
  for candidate = n + 2, math.min(n + 1 + GAP_TOLERANCE, MAX_BUILD_NO) do
    local hit, message, err = probe(candidate)
    if hit == nil then return nil, message, err end
    if hit then return candidate end
  end
  return false
end

--- The newest build by probing record-info: O(log n) requests.
local function probe_latest(client, job_id)
  local probe, first_miss = prober(client, job_id)
  local lo = 0
  while true do
    local last_hit, first_missing, err = gallop(probe, lo)
    if last_hit == nil then return nil, first_missing, err end
    if first_missing == nil then return last_hit end
    last_hit, first_missing, err = bisect(probe, last_hit, first_missing)
    if last_hit == nil then return nil, first_missing, err end
    local newer
    newer, first_missing, err = build_past_gap(probe, last_hit)
    if newer == nil then return nil, first_missing, err end
    if not newer then
      if last_hit > 0 then return last_hit end
      local miss = first_miss()
      return nil, miss[1], miss[2]
    end
    lo = newer
  end
end

--- The build number from a running-status body, or nil, message, err. `last_build_no` is a string
-- of digits in the reference ("166"); a number is taken too, but only a whole one in range: not
-- 1e12, 1.5e300 or "0x10".
local function build_no_from_status(job_id, body)
  local result = type(body) == "table" and body.result
  local raw = type(result) == "table" and result.last_build_no
  if raw == 0 or raw == "0" then
    return failure("not_found", ("latest %s: the job has no builds"):format(job_id),
      { job_id = job_id, what = "build" })
  end
  local n = (type(raw) == "number" or (type(raw) == "string" and raw:find("^%d+$"))) and core.check_build_no(raw)
  if not n then
    return failure("decode", ("latest %s: running-status has no build number (last_build_no = %s)"):format(job_id,
      type(raw) == "string" and ("%q"):format(raw:sub(1, 40)) or tostring(raw)), { job_id = job_id })
  end
  return n
end

--- The newest build number of a job: `GET /v1/job/{job_id}/running-status`, and when that API is
-- missing (`not_found`, but not a missing job), probing record-info: builds 1, 2, 4, 8, ... until
-- one is missing, then a
-- binary search between the last hit and that miss, O(log n) requests. Probing assumes that the
-- job's numbers run without gaps, except for runs of at most 2 deleted builds (it looks that far
-- past a miss before believing it); a longer run of deleted builds can make it answer too low.
---@param client userdata a codeartsbuild client
---@param job_id string
---@return integer|nil build_no
---@return string|nil message
---@return table|nil err
function methods.latest(client, job_id)
  local _, message, err = check_job_id("latest", job_id)
  if message then return nil, message, err end
  local body
  body, message, err = get_held(client, "/v1/job/" .. job_id .. "/running-status")
  if body then return build_no_from_status(job_id, body) end
  -- Probing where the API is missing; a missing job is the answer.
  if err.kind ~= "not_found" or err.what == "job" then return nil, message, err end
  return probe_latest(client, job_id)
end

---------------------------------------------------------------------------------------------------
-- Options of records() and fetch()

local OPTION_TYPES = {
  from = "number", to = "number", order = "string", concurrency = "number", where = "function|table",
  limit = "number", skip_missing = "boolean", on_progress = "function",
}

local function is_whole(x, low, high)
  return x == math.floor(x) and x >= low and x <= high
end

--- Checks the option table: unknown names, wrong types and impossible values raise (they are
-- mistakes in the calling code). `excluded` names are refused too (fetch takes no from/to).
local function read_options(caller, opts, excluded)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    usage.error(("%s: options must be a table, got %s"):format(caller, type(opts)))
  end
  for name, value in pairs(opts) do
    local expected = OPTION_TYPES[name]
    if expected == nil or (excluded and excluded[name]) then
      usage.error(("%s: unknown option %s"):format(caller, tostring(name)))
    end
    if not expected:find(type(value), 1, true) then
      usage.error(("%s: option %s must be a %s, got %s"):format(caller, name, (expected:gsub("|", " or ")),
        type(value)))
    end
  end
  if opts.order ~= nil and opts.order ~= "asc" and opts.order ~= "desc" then
    usage.error(("%s: order must be \"asc\" or \"desc\", got %q"):format(caller, opts.order))
  end
  if opts.concurrency ~= nil and not is_whole(opts.concurrency, 1, MAX_CONCURRENCY) then
    usage.error(("%s: concurrency must be an integer from 1 to %d"):format(caller, MAX_CONCURRENCY))
  end
  if opts.limit ~= nil and not is_whole(opts.limit, 0, math.huge) then
    usage.error(("%s: limit must be an integer >= 0"):format(caller))
  end
  return {
    order = opts.order or "asc",
    concurrency = opts.concurrency or DEFAULT_CONCURRENCY,
    where = opts.where ~= nil and query.where(opts.where) or nil,
    limit = opts.limit,
    skip_missing = opts.skip_missing ~= false,
    on_progress = opts.on_progress,
    from = opts.from,
    to = opts.to,
  }
end

--- nil when n is a build number; else nil, message, err (kind invalid), as record_info says it.
local function check_build_no(caller, name, n)
  if not is_whole(n, 1, MAX_BUILD_NO) then
    return failure("invalid", ("%s: invalid %s: expected an integer from 1 to %d, got %s"):format(
      caller, name, MAX_BUILD_NO, tostring(n)))
  end
  return nil
end

--- The builds of a walk, { count =, at = function(i) }, from a range; `to` defaults to latest().
-- Returns nil, message, err when a bound is not a build number or latest() fails.
local function range_builds(client, caller, job_id, from, to, order)
  from = from or 1
  local _, message, err = check_build_no(caller, "from", from)
  if message then return nil, message, err end
  if to == nil then
    to, message, err = methods.latest(client, job_id)
    if not to then return nil, message, err end
  else
    _, message, err = check_build_no(caller, "to", to)
    if message then return nil, message, err end
  end
  local count = math.max(0, to - from + 1) -- from > to: nothing, as in a numeric for
  if order == "desc" then
    return { count = count, at = function(i) return to - i + 1 end }
  end
  return { count = count, at = function(i) return from + i - 1 end }
end

--- The builds of a walk from a list; order "desc" walks it from its end.
local function list_builds(list, order)
  local count = #list
  if order == "desc" then
    return { count = count, at = function(i) return list[count - i + 1] end }
  end
  return { count = count, at = function(i) return list[i] end }
end

---------------------------------------------------------------------------------------------------
-- The walk: a window of submitted requests over a sequence of builds, yielded in order

-- An object whose collection (and, on 5.4, closing as a to-be-closed variable) calls release: a
-- walk's, and codeartsbuild.build's followers. Lua 5.1 and LuaJIT run __gc only for userdata, hence
-- newproxy there; 5.2+ run it for tables.
local function new_guard(release)
  local newproxy = rawget(_G, "newproxy")
  if newproxy then
    local proxy = newproxy(true)
    local mt = getmetatable(proxy)
    mt.__gc, mt.__close = release, release
    return proxy
  end
  return setmetatable({}, { __gc = release, __close = release })
end
M.new_guard = new_guard

---------------------------------------------------------------------------------------------------
-- The client's cache of finished builds (codeartsbuild.cache), when it has one: a walk reads a
-- cached build instead of asking for it, and keeps the records of builds that have ended.

--- The cached record of a build, as a settled result ({ record = }), or nil.
local function from_cache(walk, build_no)
  local rec = walk.cache and walk.cache:get(walk.client, walk.job_id, build_no)
  return rec and { record = rec } or nil
end

--- Keeps a result's record in the cache (only a build that has ended is kept).
local function to_cache(walk, result)
  if walk.cache and result.record then walk.cache:put(walk.client, walk.job_id, result.record) end
end

--- Writes what the walk left in the cache (at its end). A cache that cannot be written to costs
-- the walk nothing: its records are not lost, only not kept.
local function flush_cache(walk)
  if walk.cache then pcall(walk.cache.flush, walk.cache) end
end

local function new_walk(client, job_id, builds, options)
  return {
    client = client, job_id = job_id, builds = builds, cache = cache.of(client),
    options = options, capacity = options.concurrency,
    next_index = 1,           -- the next build (in walk order) to submit
    -- The window, a ring of `capacity` positions in three arrays (no table per build): the build
    -- number, the request id (false when the core refused the build) and that refusal.
    build_nos = {}, ids = {}, refusals = {},
    head = 1, tail = 0,       -- sequence numbers of the oldest and newest build in the window
    done = 0, yielded = 0, finished = false,
  }
end

local function ring_index(walk, seq)
  return (seq - 1) % walk.capacity + 1
end

--- Submits builds until the window is full or the sequence ends. A build the core refuses
-- (an invalid number from a list) takes its place in the window with its failure, and a build
-- the cache has, with its record.
local function fill(walk)
  while walk.tail - walk.head + 1 < walk.capacity and walk.next_index <= walk.builds.count do
    local build_no = walk.builds.at(walk.next_index)
    walk.next_index = walk.next_index + 1
    local cached = from_cache(walk, build_no) -- settled without a request
    local id, message, err
    if not cached then id, message, err = walk.client:submit(walk.job_id, build_no, HOLD) end
    walk.tail = walk.tail + 1
    local i = ring_index(walk, walk.tail)
    walk.build_nos[i], walk.ids[i] = build_no, id or false
    if cached then walk.refusals[i] = cached elseif not id then walk.refusals[i] = { message = message, err = err } end
  end
end

--- Takes the oldest build out of the window: its number, and its request id or its refusal.
local function pop_oldest(walk)
  local i = ring_index(walk, walk.head)
  local build_no, id, refusal = walk.build_nos[i], walk.ids[i], walk.refusals[i]
  walk.ids[i], walk.refusals[i] = false, nil
  walk.head = walk.head + 1
  return build_no, id, refusal
end

--- Cancels what is still in flight and drops what arrived early. Safe to call more than once.
local function release(walk)
  if walk.finished then return end
  walk.finished = true
  flush_cache(walk)
  for seq = walk.head, walk.tail do
    local id = walk.ids[ring_index(walk, seq)]
    forget(walk.client, id)
  end
  walk.build_nos, walk.ids, walk.refusals, walk.head, walk.tail = {}, {}, {}, 1, 0
end

--- What one settled build gives the caller: build_no, record / build_no, nil, err / nothing (skip).
local function outcome(walk, build_no, result)
  local options = walk.options
  if result.record then
    if options.where and not options.where(result.record) then return nil end
    walk.yielded = walk.yielded + 1
    if options.limit and walk.yielded >= options.limit then
      release(walk) -- cancel the rest now, not when the loop asks again
    end
    return build_no, result.record
  end
  -- A missing (deleted, or never run) build is skipped; a missing job is an error for every build.
  if options.skip_missing and result.err.kind == "not_found" and result.err.what == "build" then return nil end
  return build_no, nil, result.err
end

--- The next build_no, record, err of the walk, or nothing when it is over.
local function step(walk)
  local options = walk.options
  while not walk.finished do
    if options.limit and walk.yielded >= options.limit then break end
    fill(walk)
    if walk.head > walk.tail then break end
    local build_no, id, refusal = pop_oldest(walk)
    local result = refusal or await(walk.client, id)
    if not refusal then to_cache(walk, result) end
    walk.done = walk.done + 1
    if options.on_progress then options.on_progress(walk.done, walk.builds.count) end
    local n, record, err = outcome(walk, build_no, result)
    if n ~= nil then return n, record, err end
  end
  release(walk)
  return nil
end

--- The generic-for values of a walk: the iterator, nil, nil and the guard (to-be-closed on 5.4).
local function iterate(walk)
  local guard = new_guard(function() release(walk) end)
  walk.guard = guard -- the guard lives as long as the iterator does, and no longer
  return function() return step(walk) end, nil, nil, guard
end

---------------------------------------------------------------------------------------------------
-- records(), fetch(), history()

--- Walks builds `from`..`to` of a job with up to `concurrency` requests in flight, yielding
-- `build_no, record` or `build_no, nil, err` in build order (the first value is never nil):
--
--     for n, rec, err in assert(client:records(job, { from = 1, to = 200, concurrency = 16 })) do
--       if rec then print(rec) else print(n, err) end
--     end
--
-- Options: `from` (1), `to` (default `client:latest(job_id)`), `order` ("asc" or "desc"),
-- `concurrency` (8), `where` (a predicate or a `where` spec: non-matching records are skipped, errors
-- still yielded), `limit` (stop after that many records), `skip_missing` (true: a not_found build
-- is skipped), `on_progress(done, total)` (after each build, done counting skipped ones too).
-- A wrong option raises; a bad `from`/`to` or a failing latest() returns `nil, message, err`.
-- The fourth value closes the walk (cancelling requests in flight) when a 5.4 loop ends or breaks;
-- on older Lua, collecting the iterator does it.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param opts? table
---@return function|nil iterator
---@return any message
---@return any err
---@return any closer
function methods.records(client, job_id, opts)
  local options = read_options("records", opts, nil)
  local _, message, err = check_job_id("records", job_id)
  if message then return nil, message, err end
  local builds
  builds, message, err = range_builds(client, "records", job_id, options.from, options.to, options.order)
  if not builds then return nil, message, err end
  return iterate(new_walk(client, job_id, builds, options))
end

local FETCH_EXCLUDED = { from = true, to = true }

--- Fetches builds of a job concurrently: `builds` is a list of build numbers or `{ from =, to = }`
-- (`to` defaults to latest()). Returns `records`, a list in the input order (order "desc" reverses
-- it) without the builds that failed or are missing, and `errors`, a map build_no -> err (with
-- skip_missing, the default, missing builds are in neither). Options as `records` takes, without
-- from/to. Returns `nil, message, err` when it cannot start. `tostring(records)` is the table of the
-- builds, `tostring(errors)` the failed builds one a line (`cb.show(client:fetch(...))` shows both).
---@param client userdata a codeartsbuild client
---@param job_id string
---@param builds integer[]|{from: integer, to: integer}
---@param opts? table
---@return table[]|nil records
---@return table<integer, table>|string errors_or_message
---@return table|nil err
function methods.fetch(client, job_id, builds, opts)
  local options = read_options("fetch", opts, FETCH_EXCLUDED)
  if type(builds) ~= "table" then
    usage.error(("bad argument #2 to 'fetch' (table expected, got %s)"):format(type(builds)))
  end
  local _, message, err = check_job_id("fetch", job_id)
  if message then return nil, message, err end
  local sequence
  if builds[1] == nil and (builds.from ~= nil or builds.to ~= nil) then
    sequence, message, err = range_builds(client, "fetch", job_id, builds.from, builds.to, options.order)
    if not sequence then return nil, message, err end
  else
    sequence = list_builds(builds, options.order)
  end
  -- Their tostring is the table of the builds, and the failed builds one a line (query.RecordList).
  local records, errors = setmetatable({}, query.RecordList), setmetatable({}, query.ErrorMap)
  for build_no, record, failed in iterate(new_walk(client, job_id, sequence, options)) do
    if record then records[#records + 1] = record else errors[build_no] = failed end
  end
  return records, errors
end

local function read_history_options(opts)
  opts = opts or {}
  if type(opts) ~= "table" then usage.error("history: options must be a table") end
  for name in pairs(opts) do
    if name ~= "days" and name ~= "page_size" then usage.error("history: unknown option " .. tostring(name)) end
  end
  local days, page_size = opts.days or 30, opts.page_size or 100
  if type(days) ~= "number" or not is_whole(days, 1, 30) then
    usage.error("history: days must be an integer from 1 to 30")
  end
  if type(page_size) ~= "number" or not is_whole(page_size, 1, 100) then
    usage.error("history: page_size must be an integer from 1 to 100")
  end
  return days, page_size
end

--- One page of history, or raises the err (an iterator has no other way to say it failed).
local function history_page(client, job_id, page_index, page_size, days)
  local body, _, err = get_held(client, "/v3/jobs/" .. job_id .. "/history",
    { offset = page_index, limit = page_size, interval = days })
  if not body then error(err, 0) end
  if type(body.history_records) ~= "table" or type(body.total) ~= "number" then
    error(new_error("decode", ("history %s: the page has no history_records or total"):format(job_id),
      { job_id = job_id }), 0)
  end
  return body.history_records, body.total
end

--- Iterates over the builds of the last `days` days (1..30, default 30) from
-- `GET /v3/jobs/{job_id}/history`, newest first, yielding each entry
-- `{ build_number =, result =, start_time =, end_time =, record_id =, job_id = }`. Pages of
-- `page_size` entries (1..100, default 100) are fetched as the loop reaches them; the walk stops
-- after `total` entries. A page that fails raises its err (a table: `pcall` to read `err.kind`).
-- Returns `nil, message, err` for an invalid job_id.
---@param client userdata a codeartsbuild client
---@param job_id string
---@param opts? {days?: integer, page_size?: integer}
---@return (fun(): table|nil)|nil iterator
---@return string|nil message
---@return table|nil err
function methods.history(client, job_id, opts)
  local days, page_size = read_history_options(opts)
  local _, message, err = check_job_id("history", job_id)
  if message then return nil, message, err end
  local page, position, page_index, seen, total = {}, 0, 0, 0, nil
  return function()
    if position >= #page then
      if total and seen >= total then return nil end
      page, total = history_page(client, job_id, page_index, page_size, days)
      page_index, position = page_index + 1, 0
      if #page == 0 then -- the service announced more entries than it had
        total = seen
        return nil
      end
    end
    position, seen = position + 1, seen + 1
    return page[position]
  end
end

--- The methods this module installs, by name.
M.methods = { latest = methods.latest, records = methods.records, fetch = methods.fetch, history = methods.history }

return M
