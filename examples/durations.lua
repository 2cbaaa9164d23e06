-- How long did the last N builds take? A summary, and the slowest five.
--
--   lua5.4 examples/durations.lua [JOB_ID [N]]                    (defaults: the reference job, 200)
--
-- The endpoint and credentials come from the environment, as for examples/quickstart.lua (see
-- README, "Configuration"); `spec/support/with-emulator -- lua5.4 examples/durations.lua` runs it
-- against the bundled emulator.
local cb = require "codeartsbuild"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local count = tonumber(arg[2] or "200")

local client = assert(cb.new())
local last = assert(client:latest(job))
local first = math.max(1, last - count + 1)

-- All of them at once, 16 requests in flight: a list of records and a map of failures.
local records, errors = assert(client:fetch(job, { from = first, to = last }, { concurrency = 16 }))
print(("job %s, builds %d..%d"):format(job, first, last))
print(cb.summary(records)) -- counts, success rate, min/p50/p95/max duration in seconds

local timed = cb.filter(records, function(rec) return rec.duration ~= nil end)
table.sort(timed, function(a, b) return a.duration > b.duration end)
print("slowest:")
for i = 1, math.min(5, #timed) do
  print("  " .. tostring(timed[i]))
end
for n, err in pairs(errors) do
  print(("could not read #%d: %s"):format(n, tostring(err)))
end
client:close()
