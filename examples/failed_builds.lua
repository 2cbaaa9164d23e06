-- Which of the last N builds failed on a branch, and how long did they take?
--
--   lua5.4 examples/failed_builds.lua [JOB_ID [N [BRANCH]]]      (defaults: the reference job, 200, main)
--
-- The endpoint and credentials come from the environment, as for examples/quickstart.lua (see
-- README, "Configuration"); `spec/support/with-emulator -- lua5.4 examples/failed_builds.lua`
-- runs it against the bundled emulator.
local cb = require "codeartsbuild"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local count = tonumber(arg[2] or "200")
local branch = arg[3] or "main"

--- "52.3s", or "12m05s" past a minute (the API's durations are milliseconds).
local function seconds_text(ms)
  local seconds = ms / 1000
  if seconds < 60 then return ("%.1fs"):format(seconds) end
  return ("%dm%02ds"):format(math.floor(seconds / 60), math.floor(seconds % 60))
end

local client = assert(cb.new())
local last = assert(client:latest(job))
local first = math.max(1, last - count + 1)
print(("job %s, builds %d..%d: FAILED on %s"):format(job, first, last, branch))

-- Sixteen requests in flight at a time; the loop sees the builds in order, only those that match.
local failed, unreadable = {}, 0
local walk = assert(client:records(job, {
  from = first, to = last, concurrency = 16,
  where = { status = "FAILED", branch = branch },
}))
for n, rec, err in walk do
  if rec then
    failed[#failed + 1] = rec
    print(("  #%d  %8s  %s  %s  %s"):format(n, seconds_text(rec.duration or 0),
      ((rec.startTime or "-"):sub(1, 16):gsub("T", " ")), (rec.commit or "-"):sub(1, 7), rec.errMsg or "-"))
  else
    unreadable = unreadable + 1
    print(("  #%d  could not be read: %s"):format(n, tostring(err)))
  end
end

local total_ms = 0
for _, rec in ipairs(failed) do total_ms = total_ms + (rec.duration or 0) end
print(("%d of the last %d builds failed on %s, %s spent in them%s"):format(#failed, last - first + 1, branch,
  seconds_text(total_ms), unreadable > 0 and (" (" .. unreadable .. " could not be read)") or ""))
client:close()
