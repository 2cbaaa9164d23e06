-- Showing records to people: one line each (tostring), an aligned field list, an aligned table.
--
--   lua5.4 examples/views.lua [JOB_ID]                           (default: the reference job)
--
-- The endpoint and credentials come from the environment (README, "Configuration");
-- `spec/support/with-emulator -- lua5.4 examples/views.lua` runs it against the emulator.
-- Colours appear on a terminal unless NO_COLOR is set.
local cb = require "codeartsbuild"
local view = require "codeartsbuild.view"

local job = arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
local client = assert(cb.new())

local rec = assert(client:record_info(job, 61))
print(rec)                                  -- one line: #61 SUCCESS develop 20756b9 MANUAL 4m43s ...
print()
view.record(rec)                            -- every field, aligned, in the reference page's order
print()

local newest = assert(client:latest(job))
local recs = assert(client:fetch(job, { from = newest - 9, to = newest }))
view.table(recs)                            -- one line per build under a line of titles
print()

-- The same as data: lines to write elsewhere (never coloured unless asked), and a row's cells.
local lines = view.table_lines(recs)
print(("%d lines, the first: %s"):format(#lines, lines[1]))
print("cells of the newest: " .. table.concat(view.row(recs[#recs]), " | "))
print(("the first field:    %s"):format(view.record_lines(rec)[1]))
print(("durations:          %s, %s, %s"):format(view.duration(52261), view.duration(283090), view.duration(3725000)))
print(("colours on stdout:  %s"):format(tostring(view.use_color(io.stdout))))
client:close()
