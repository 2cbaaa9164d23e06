-- After the record: which step failed, the log's last lines, the whole log into a file, a build's
-- log followed, waiting for a build to end, and the engine's streams under them.
--
--   lua5.4 examples/build_logs.lua [JOB_ID [BUILD_NO [RUNNING_JOB_ID]]]
--
-- (default: the emulator's job with logs, build 4, and its reference job, whose newest build runs)
--
-- The endpoint and credentials come from the environment (README, "Configuration");
-- `spec/support/with-emulator -- lua5.4 examples/build_logs.lua` runs it against the emulator.
local cb = require "codeartsbuild"

local job = arg[1] or "5eed1065e1f04e0c9a7b3d2c1b0a9f8e"
local n = tonumber(arg[2] or 4)
local client = assert(cb.new())

local rec = assert(client:record_info(job, n))
print("record:  " .. tostring(rec))

-- The steps, in order: one aligned line each (position, status, duration, name).
local steps = assert(client:steps(job, n))
print(steps)
local failed = steps:find("FAILED")
if failed then print(("failed:  step %d, %s, after %s"):format(failed.index, failed.name, cb.core.format_duration(
  failed.duration))) end

-- The last lines of the log; then the whole of it into a file, streamed (a 50 MB log costs a few
-- hundred KB): written as PATH.partial and renamed once complete.
print("last 3 lines:")
io.write(assert(client:log(job, n, { tail = 3 })))
local path = os.tmpname()
local bytes = assert(client:log(job, n, { to_file = path }))
print(("to_file: %d bytes in %s"):format(bytes, path))
os.remove(path)

-- Following a build's log: on a running build the loop ends when the build has and its last bytes
-- are out; this one has ended, so it gives the whole log at once and ends.
local followed = 0
for text in assert(client:follow(job, n)) do followed = followed + #text end
print(("follow:  %d bytes"):format(followed))

-- The same with callbacks, for an event loop: step() from a timer (step(ms) waits at most that long).
local pieces, final = 0, nil
local follower = assert(client:follow(job, n, {
  on_chunk = function() pieces = pieces + 1 end,
  on_done = function(record, message) final = record or message end,
}))
for _ = 1, 1000 do -- bounded
  if not follower:step(100) then break end
end
print(("step:    %d piece(s), then %s"):format(pieces, tostring(final)))

-- Waiting for a build to end: at once for this one. Then the newest build of a job that is still
-- running (the emulator's reference job runs its newest build for ever), for 1 s at most: a
-- timeout is an error of kind "timeout".
local started = cb.monotonic()
local final_rec = assert(client:wait(job, n, { timeout = 1800 }))
print(("wait:    %s, in %.1f s"):format(final_rec.status, cb.monotonic() - started))
local running_job = arg[3] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local last, message, err = client:wait(running_job, nil, { timeout = 1, interval = 0.5 })
print("wait:    " .. (last and tostring(last) or err.kind .. ": " .. message))

-- Under these, held requests: poll() never returns them, their owner takes them by id; `after`
-- starts one later (a poll interval that sleeps in the engine, not in Lua).
local held = assert(client:submit(job, n, { hold = true, after = 200 }))
print("take:    " .. tostring(client:take(held).record))

-- And the engine's streams: a held download read a piece at a time.
local id = assert(client:submit_get("/v1/log/" .. rec.buildRecordId .. "/download-log", nil, { stream = true }))
local size, entry = 0
while true do
  local piece = client:read(id)
  if type(piece) ~= "string" then entry = piece break end
  size = size + #piece
end
print(("read:    %d bytes, then {bytes = %s}"):format(size, tostring(entry.bytes or entry.message)))
client:close()
