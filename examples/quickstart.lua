-- Quickstart: read one build record, then a few more at once, then show what a failure looks like.
--
--   lua5.4 examples/quickstart.lua [JOB_ID [BUILD_NO]]
--
-- The endpoint and credentials come from the environment (see README, "Configuration"):
-- for example CODEARTSBUILD_REGION=cn-north-4 with HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK and
-- HUAWEICLOUD_SDK_PROJECT_ID. `make demo` runs this against the bundled emulator.
local cb = require "codeartsbuild"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local build_no = tonumber(arg[2] or "61")

local client = assert(cb.new())
print("client:   " .. tostring(client))

-- One record, blocking.
local rec = assert(client:record_info(job, build_no))
print("record:   " .. tostring(rec))
print(("          status=%s branch=%s commit=%s trigger=%s duration=%.1fs"):format(
  rec.status, tostring(rec.branch), tostring(rec.commit):sub(1, 12), rec.triggerType,
  (rec.duration or 0) / 1000))

-- The five builds before it, all in flight at once on the client's connections.
local first = math.max(1, build_no - 5)
for n = first, build_no - 1 do
  assert(client:submit(job, n)) -- returns the request's id at once
end
local results = {}
for _ = 1, 100 do -- bounded: each poll waits for at least one request to finish
  if client:pending() == 0 then break end
  for _, r in ipairs(client:poll(1000)) do results[#results + 1] = r end
end
table.sort(results, function(a, b) return a.build_no < b.build_no end)
print(("builds %d..%d, fetched concurrently:"):format(first, build_no - 1))
for _, r in ipairs(results) do
  print("          " .. (r.record and tostring(r.record) or ("#" .. r.build_no .. " " .. r.message)))
end

-- A failure is `nil, message, err`; err.kind says what went wrong.
local missing, message, err = client:record_info(job, 2147483647)
assert(missing == nil)
print("missing:  " .. message)
print(("          kind=%s what=%s status=%s code=%s"):format(err.kind, tostring(err.what), tostring(err.status),
  tostring(err.code)))

client:close()
