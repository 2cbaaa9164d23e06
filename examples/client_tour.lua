-- A tour of the client past record_info: the default client and the module-level calls, signed
-- GETs with and without waiting, a held request taken by id, cancelling a request, the history
-- API, and telling errors apart.
--
--   lua5.4 examples/client_tour.lua [JOB_ID]                     (default: the reference job)
--
-- The endpoint and credentials come from the environment (README, "Configuration");
-- `spec/support/with-emulator -- lua5.4 examples/client_tour.lua` runs it against the emulator.
local cb = require "codeartsbuild"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

-- The module-level calls share one client, made from the environment on first use.
local client = assert(cb.default_client())
local info = client:info()                                   -- settings, never a secret
print(("client:   %s, %s credentials from %s"):format(info.endpoint, info.auth, info.credential_source))
print(("regions:  %d known, %s first"):format(#cb.regions, cb.regions[1]))

local rec = assert(cb.record_info(job, 61))
print("record:   " .. tostring(rec))
print(("started:  %s = %d seconds since 1970"):format(rec.startTime, cb.time(rec.startTime)))

local newest = assert(cb.latest(job))
print("latest:   " .. newest)

-- Any signed GET on the same endpoint, decoded.
local status = assert(client:get("/v1/job/" .. job .. "/running-status"))
print("status:   last_build_no " .. tostring(status.result.last_build_no))

-- The same without waiting: an id at once, the body from poll().
local id = assert(client:submit_get("/v3/jobs/" .. job .. "/history", { offset = 0, limit = 3, interval = 7 }))
local page
for _ = 1, 100 do -- bounded: each poll waits until a request finishes
  for _, result in ipairs(client:poll(1000)) do
    if result.id == id then page = assert(result.body, result.message) end
  end
  if page then break end
end
print(("history:  %d entries in the last 7 days, the first page has %d"):format(page.total, #page.history_records))

-- A held request: poll() never returns it; its owner takes it by id (take(id, 0) does not wait).
local held = assert(client:submit(job, 59, { hold = true }))
local taken = client:take(held, 0) or client:take(held)
print(("take:     #%d %s, %d held left"):format(taken.build_no, taken.record.status, client:pending("held")))

-- A request that is no longer wanted.
local unwanted = assert(client:submit(job, 60))
print(("cancel:   %s, %d pending"):format(tostring(client:cancel(unwanted)), client:pending()))

-- The batch calls, on the default client too.
local recs, errors = assert(cb.fetch(job, { newest - 4, newest - 3 }))
print(("fetch:    %d records, %d errors"):format(#recs, #(function() local l = {} for n in pairs(errors) do
  l[#l + 1] = n end return l end)()))
for n, r in assert(cb.records(job, { from = newest - 2, to = newest })) do
  print(("records:  #%d %s"):format(n, r and r.status or "unreadable"))
end
local newest_entry = assert(client:history(job, { days = 1, page_size = 1 }))()
print(("history:  the newest entry is #%d, %s"):format(newest_entry.build_number, newest_entry.result))
local shown = 0
for entry in assert(cb.history(job, { days = 7, page_size = 2 })) do
  print(("history:  #%d %s"):format(entry.build_number, entry.result))
  shown = shown + 1
  if shown == 3 then break end
end

-- Queries on lists of records: a predicate from a spec, a filtered list, a summary.
local failed_on_master = cb.where{ status = { "FAILED", "ABORTED" }, branch = "master" }
local last_50 = assert(cb.fetch(job, { from = newest - 49, to = newest }))
local red = cb.filter(last_50, failed_on_master)
print(("where:    %d of the last 50 builds FAILED or ABORTED on master"):format(#red))
print(("summary:  %d builds, %d finished"):format(cb.summary(last_50).total, cb.summary(last_50).finished))
-- Statuses and triggers in any case, checked against the known ones; which builds have ended.
local query = require "codeartsbuild.query"
local _, unknown = query.known_value("status", "gone")
print(("known:    %s, %s"):format(query.known_value("status", "failed"), unknown))
print(("ended:    #%d %s, #%d %s"):format(newest - 1, tostring(query.ended(last_50[#last_50 - 1])), newest,
  tostring(query.ended(last_50[#last_50]))))

-- Errors: nil, message, err; err.kind tells them apart, cb.is_error tells them from anything else.
local _, message, err = client:record_info(job, 2147483647)
print(("missing:  kind=%s is_error=%s not_found=%s"):format(err.kind, tostring(cb.is_error(err)),
  tostring(cb.is_error(err, "not_found"))))
print("          " .. message:gsub("%(request id %x+%)", "(request id ...)"))
local _, _, invalid = client:record_info(job, 0)             -- nothing is sent for bad input
print(("invalid:  kind=%s attempts=%d"):format(invalid.kind, invalid.attempts))
-- The same checks, for input of your own.
print(("checks:   %s %s %s"):format(tostring(cb.check_job_id(job)), tostring(cb.check_build_no("61")),
  select(2, cb.check_build_no(0, "tour"))))
client:close()
