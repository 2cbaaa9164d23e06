-- The REPL's start: `make repl` runs `lua5.4 -i examples/repl.lua` against the bundled emulator.
--
--   lua5.4 -i examples/repl.lua [JOB_ID]       (against the service configured in the environment)
--
-- Leaves globals for the session: `cb` (the module), `view` (codeartsbuild.view), `client` (a
-- client made from the environment, as cb.new() makes it) and `job` (a job id), then prints two
-- lines of how to begin.
-- luacheck: globals cb view job client
cb = require "codeartsbuild"
view = require "codeartsbuild.view"
job = arg and arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

local made, message = cb.new()
if not made then
  io.stderr:write("repl: no client: ", message, "\n")
  os.exit(1)
end
client = made

local info = client:info()
print(("codeartsbuild %s: `client` reads %s (%s); `cb`, `view` and `job` are set."):format(
  cb._VERSION, info.endpoint, os.getenv("CODEARTSBUILD_EMULATOR") and "the bundled emulator" or info.auth))
print("try: rec = client:record_info(job, 61)  print(rec)  view.record(rec)"
  .. "  view.table(client:fetch(job, { from = 1191, to = 1200 }))")
