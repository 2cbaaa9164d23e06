-- The cache of finished builds: the same builds read twice, the second time from the cache. Prints
-- the requests each run sent and the time it took, and what the cache holds.
--
--   lua5.4 examples/cache.lua [JOB_ID [COUNT [CACHE_DIR]]]     (default: the last 1000 builds, a new
--                                                              temporary cache, removed at the end)
--
-- The endpoint and credentials come from the environment (README, "Configuration");
-- `spec/support/with-emulator -- lua5.4 examples/cache.lua` runs it against the emulator. The
-- last line is a summary for scripts (bench/ may call this):
--   cache: first N requests S s, second N requests S s
local cb = require "codeartsbuild"
local cache = require "codeartsbuild.cache"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local count = tonumber(arg[2] or "1000")
local dir = arg[3]
local temporary = dir == nil
if temporary then
  dir = os.tmpname() -- a name nobody else uses; the cache makes it a directory
  os.remove(dir)
end

--- Wall-clock seconds (os.time counts whole seconds only).
local function now()
  local pipe = io.popen("date +%s.%N")
  local seconds = tonumber(pipe:read("*l"))
  pipe:close()
  return seconds
end

local runs = {}
for round = 1, 2 do
  local requests = 0
  local client = assert(cb.new{ cache = dir, on_event = function() requests = requests + 1 end })
  local started = now()
  local newest = assert(client:latest(job))
  local recs, errors = assert(client:fetch(job, { from = math.max(1, newest - count + 1), to = newest },
    { concurrency = 16 }))
  local seconds = now() - started
  local failed = 0
  for _ in pairs(errors) do failed = failed + 1 end
  local stats = cache.of(client).stats                     -- what this client's cache did
  print(("run %d: %d records, %d errors, %d requests, %.3f s; cache: %d read, %d kept"):format(round, #recs,
    failed, requests, seconds, stats.hits, stats.stored))
  runs[round] = { requests = requests, seconds = seconds }
  client:close()
end

-- The cache on its own: where it is by default, and a record read from it by hand.
print("default directory: " .. tostring(cache.default_dir()))
local own = assert(cache.open(dir))                         -- the same files, another handle
local client = assert(cb.new())
local newest = assert(client:latest(job))
cache.attach(client, own)                                   -- client:records() and fetch() use it now
local rec = own:get(client, job, newest - 1)                -- nil when that build had not ended
print(("build %d from the cache: %s"):format(newest - 1, rec and tostring(rec) or "not there"))
print(("kept by hand: %s, written: %d"):format(tostring(own:put(client, job, assert(client:record_info(job, 61)))),
  own:flush()))
client:close()

if temporary then os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'") end
print(("cache: first %d requests %.3f s, second %d requests %.3f s"):format(runs[1].requests, runs[1].seconds,
  runs[2].requests, runs[2].seconds))
