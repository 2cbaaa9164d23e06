--- bench/client.lua: the codeartsbuild side of the benchmark, one measured run per process.
--
--   lua5.4 bench/client.lua MODE ENDPOINT [key=value ...]
--
-- MODE
--   seq       client:record_info(job, n) in a loop, one request at a time
--   fetch     client:fetch(job, { from =, to = }, { concurrency = c }), one call per job (and pass)
--   range     one client:fetch(job, { from = 1, to = count }, { concurrency = c }) on the first job
--             (the distance bench's 1,000-build walk)
--   records   for n, rec, err in client:records(job, { from =, to =, concurrency = c })
--   startup   the time from before `require "codeartsbuild"` to the first record in hand
--   walk      records() over `count` builds of the walk job, sampling the RSS as it goes
--
-- keys: count (records in the run, default 20000), builds (documents per job on the server,
-- default 10000), concurrency (default 16), auth ("token", default, or "aksk": nginx checks
-- neither, but aksk makes the client sign every request), jobs (comma-separated: the camelCase job,
-- then the snake_case one), walk_job, ca_file (the CA that signed an https endpoint's certificate).
--
-- A run reads half its records from each job (so both spellings are normalised), build numbers
-- 1, 2, ... wrapping after `builds`. Every record is checked (its buildNo must be the number asked
-- for): a run that got errors or wrong records exits 1 instead of reporting a rate.
--
-- The last line of the output is `RESULT {json}`: records, errors, wall_s and cpu_s of the measured
-- loop (the client is made before the clock starts; the first connection is inside the loop), and
-- for walk the RSS samples. The harness measures the whole process as well (wait4).
local system = require "system" -- lua-system (a busted dependency): a monotonic clock

local mode, endpoint = arg[1], arg[2]
local opt = {
  count = 20000, builds = 4000, concurrency = 16, auth = "token",
  jobs = "benchcamel0000000000000000000000,benchsnake0000000000000000000000",
  walk_job = "benchwalk00000000000000000000000", ca_file = "",
}
for i = 3, #arg do
  local key, value = arg[i]:match("^([%w_]+)=(.*)$")
  if not key or opt[key] == nil then error("unknown argument " .. arg[i]) end
  opt[key] = tonumber(value) or value
end
if not (mode and endpoint) then
  io.stderr:write("usage: lua5.4 bench/client.lua seq|fetch|range|records|startup|walk ENDPOINT [key=value ...]\n")
  os.exit(2)
end

local jobs = {}
for job in opt.jobs:gmatch("[^,]+") do jobs[#jobs + 1] = job end

local function options()
  local o = {
    -- The documents wrk, curl and h2load read: the v3 record path (the server has v1 copies of
    -- the camelCase job only, for the first-record and cache runs of a client left on "auto").
    endpoint = endpoint, retries = 0, api = "v3",
    -- The client's own cap must not be what limits a walk: at least the walk's concurrency.
    concurrency = math.max(64, opt.concurrency),
    ca_file = opt.ca_file ~= "" and opt.ca_file or nil,
  }
  if opt.auth == "aksk" then
    o.ak, o.sk = "BENCHAKEXAMPLE0000000", "benchSKexample000000000000000000000000000"
    o.project_id = "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b"
  else
    o.token = "bench-token-not-checked-by-nginx"
  end
  return o
end

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- A JSON object of numbers, strings and lists of numbers (all this script reports).
local function json(t)
  local parts = {}
  for k, v in pairs(t) do
    local value
    if type(v) == "table" then
      local items = {}
      for i, x in ipairs(v) do items[i] = string.format("%.17g", x) end
      value = "[" .. table.concat(items, ",") .. "]"
    elseif type(v) == "string" then
      value = string.format("%q", v)
    else
      value = string.format("%.17g", v)
    end
    parts[#parts + 1] = string.format("%q:%s", k, value)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function report(t)
  io.write("RESULT ", json(t), "\n")
  io.flush()
end

--- The segments of a run: { job, from, to } with `count` records in all, half per job, each
-- segment within 1..builds.
local function segments(count)
  local out = {}
  local half = math.floor(count / 2)
  for j, n in ipairs({ half, count - half }) do
    local start = 1
    while n > 0 do
      local len = math.min(n, opt.builds - start + 1)
      out[#out + 1] = { job = jobs[j], from = start, to = start + len - 1 }
      n = n - len
      start = start + len
      if start > opt.builds then start = 1 end
    end
  end
  return out
end

local errors, first_error = 0, nil
local function bad(n, rec, err)
  errors = errors + 1
  first_error = first_error or string.format("build %s: %s", tostring(n), err and tostring(err) or
    ("buildNo " .. tostring(rec and rec.buildNo)))
end

if mode == "startup" then
  -- Everything a one-shot script pays: load the module and its dependencies, make a client, get
  -- one record (connection set-up included).
  local t0, c0 = system.monotime(), os.clock()
  local cb = require "codeartsbuild"
  local t1 = system.monotime()
  local client = assert(cb.new(options()))
  local rec, message = client:record_info(jobs[1], 1)
  local t2, c2 = system.monotime(), os.clock()
  if not rec or rec.buildNo ~= 1 then
    io.stderr:write("startup: ", tostring(message), "\n")
    os.exit(1)
  end
  report { total_ms = (t2 - t0) * 1000, require_ms = (t1 - t0) * 1000, cpu_ms = (c2 - c0) * 1000 }
  os.exit(0)
end

local cb = require "codeartsbuild"
local client = assert(cb.new(options()))
local count, conc = opt.count, opt.concurrency
local records = 0

if mode == "walk" then
  -- The RSS from the start of the walk to its end, sampled every `count / 20` builds. The
  -- walk job's location answers every build number with a record of that number.
  local samples, every = {}, math.max(1, math.floor(count / 20))
  collectgarbage("collect")
  local rss0, heap0 = rss_kb(), collectgarbage("count")
  local t0, c0 = system.monotime(), os.clock()
  for n, rec, err in client:records(opt.walk_job, { from = 1, to = count, concurrency = conc }) do
    if rec and rec.buildNo == n then records = records + 1 else bad(n, rec, err) end
    if n % every == 0 then samples[#samples + 1] = rss_kb() end
  end
  local t1, c1 = system.monotime(), os.clock()
  local rss1 = rss_kb()
  local peak = rss0
  for _, s in ipairs(samples) do peak = math.max(peak, s) end
  report {
    records = records, errors = errors, wall_s = t1 - t0, cpu_s = c1 - c0, rss_start_kb = rss0, rss_end_kb = rss1,
    rss_peak_kb = peak, heap_start_kb = heap0, heap_end_kb = collectgarbage("count"), rss_samples_kb = samples,
  }
else
  local plan = mode == "range" and { { job = jobs[1], from = 1, to = count } } or segments(count)
  local t0, c0 = system.monotime(), os.clock()
  if mode == "seq" then
    for _, seg in ipairs(plan) do
      local job = seg.job
      for n = seg.from, seg.to do
        local rec, _, err = client:record_info(job, n)
        if rec and rec.buildNo == n then records = records + 1 else bad(n, rec, err) end
      end
    end
  elseif mode == "fetch" or mode == "range" then
    for _, seg in ipairs(plan) do
      local recs, errs = client:fetch(seg.job, { from = seg.from, to = seg.to }, { concurrency = conc })
      if not recs then error(errs) end
      for i, rec in ipairs(recs) do
        if rec.buildNo == seg.from + i - 1 then records = records + 1 else bad(seg.from + i - 1, rec) end
      end
      for n, err in pairs(errs) do bad(n, nil, err) end
    end
  elseif mode == "records" then
    for _, seg in ipairs(plan) do
      for n, rec, err in client:records(seg.job, { from = seg.from, to = seg.to, concurrency = conc }) do
        if rec and rec.buildNo == n then records = records + 1 else bad(n, rec, err) end
      end
    end
  else
    error("unknown mode " .. mode)
  end
  local t1, c1 = system.monotime(), os.clock()
  report { records = records, errors = errors, wall_s = t1 - t0, cpu_s = c1 - c0 }
end
client:close()
if errors > 0 then
  io.stderr:write(string.format("%d errors; the first: %s\n", errors, first_error))
  os.exit(1)
end
