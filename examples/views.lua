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
print(("stdout a terminal:  %s"):format(tostring(view.is_terminal(1))))
print(("a time, in UTC:     %s"):format(view.time("2024-05-29T21:00:05.000+08:00", { utc = true })))
print()

-- What the library returns, printed the way it reads best (the REPL's cb.show), and as text.
local some, errors = client:fetch(job, { newest - 1, newest, 2147483647 }, { skip_missing = false })
cb.show(some, errors)                        -- the table, then the builds that could not be read
print(("tostring of a list: %d lines"):format(select(2, tostring(some):gsub("[^\n]+", ""))))
print(("the errors:         %s"):format(view.errors_text(errors):gsub("%(request id %x+%)", "(request id ...)")))
print(("error lines:        %d"):format(#view.errors_lines(errors)))
print(("a list as text:     %s"):format(view.list_text(some):match("^[^\n]*")))
local summary = cb.summary(some, errors)    -- counts the unread builds too
print(view.summary_text(summary, { utc = true }))
for _, line in ipairs(view.fields_lines({ endpoint = client:info().endpoint, api = client:info().api })) do
  print("info:  " .. line)
end
view.show(client:info().api)                 -- anything else, as print() would
client:close()
