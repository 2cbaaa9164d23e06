-- The REPL's start: `make repl` runs `lua5.4 -i examples/repl.lua` against the bundled emulator.
--
--   lua5.4 -i examples/repl.lua [JOB_ID]       (against the service configured in the environment)
--
-- Leaves globals for the session: `cb` (the module), `view` (codeartsbuild.view), `show` (cb.show:
-- prints a record, a list, a summary, info() the way it reads best), `client` (a client made
-- from the environment, as cb.new() makes it; nil when the environment has no credentials: the
-- REPL starts all the same and says how to make one) and `job` (a job id), then prints how to
-- begin.
-- luacheck: globals cb view show job client
cb = require "codeartsbuild"
view = require "codeartsbuild.view"
show = cb.show
job = arg and arg[1] or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

local made, message = cb.new()
client = made

if client then
  local info = client:info()
  print(("codeartsbuild %s: `client` reads %s (%s); `cb`, `view`, `show` and `job` are set."):format(
    cb._VERSION, info.endpoint, os.getenv("CODEARTSBUILD_EMULATOR") and "the bundled emulator" or info.auth))
else
  print(("codeartsbuild %s: no `client` yet: %s."):format(cb._VERSION, (message:gsub("^codeartsbuild: ", ""))))
  print("make one: client = cb.new{ region = \"cn-north-4\", ak = \"...\", sk = \"...\", project_id = \"...\" }")
  print("  (or set CODEARTSBUILD_REGION, HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK and HUAWEICLOUD_SDK_PROJECT_ID before"
    .. " starting; README, \"Configuration\"; `make repl` starts one against the bundled emulator)")
end
print("try: rec = client:record_info(job, 61)  rec  show(rec)"
  .. "  recs, errs = client:fetch(job, { from = 1191, to = 1200 })  show(recs, errs)  show(cb.summary(recs, errs))"
  .. "  show(client:info())")
