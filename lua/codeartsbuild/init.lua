--- codeartsbuild: Huawei Cloud CodeArts Build records for Lua.
--
-- The C core (`codeartsbuild.core`) does the HTTP, the signing and the decoding; this module
-- is the face users require. Failures return `nil, message, err` (see README, "Errors").
--
--     local cb = require "codeartsbuild"
--     local rec = assert(cb.record_info("cb5fa20de5fd4cf8be681d4bd6fdd2f6", 61))
--     print(rec)  --> #61 SUCCESS master c2be53c MANUAL 52.3s 2022-09-09 06:31
local core = require "codeartsbuild.core"

-- codeartsbuild.batch (which installs client:latest/records/fetch/history) and
-- codeartsbuild.query are loaded on first use: a script that only asks for one record does not
-- pay for parsing them (about 1.5 ms of start-up).
local methods = core.client_methods
for _, name in ipairs{ "latest", "records", "fetch", "history" } do
  if methods[name] == nil then
    methods[name] = function(...)
      require "codeartsbuild.batch" -- replaces this function with the real method
      return methods[name](...)
    end
  end
end

-- codeartsbuild.build (client:steps/log/follow/wait: what follows a record) likewise.
for _, name in ipairs{ "steps", "log", "follow", "wait" } do
  if methods[name] == nil then
    methods[name] = function(...)
      require "codeartsbuild.build" -- replaces this function with the real method
      return methods[name](...)
    end
  end
end

local M = {
  _VERSION = core.version,
  --- The core module, for what this face does not wrap.
  core = core,
  --- Regions with a known endpoint.
  regions = core.regions,
}

--- A client: `cb.new{ region =, endpoint =, ak =, sk =, project_id =, security_token =, token =,
-- ca_file =, insecure =, allow_http =, timeout =, connect_timeout =, max_body =, user_agent = }`.
-- Options left out come from the environment. Returns the client, or `nil, message, err`.
M.new = core.new

--- `cb.record_info(job_id, build_no)` on a client made from the environment on first use.
M.record_info = core.record_info

--- The client module-level calls use (made from the environment), or `nil, message, err`.
M.default_client = core.default_client

--- Seconds on a monotonic clock, with a fraction (`os.clock` is CPU time, `os.time` whole seconds
-- of a clock that may jump): for deadlines and elapsed times, as the engine measures them.
M.monotonic = core.monotonic

--- `cb.sign{ method =, path =, query =, headers =, body =, ak =, sk = }` returns the
-- Authorization value, the canonical request, the string to sign and the X-Sdk-Date used.
M.sign = core.sign

local error_metatable = getmetatable(core.error{ kind = "invalid", message = "" })

--- True when `err` is an error value of this module (of any kind, or of the given kind).
function M.is_error(err, kind)
  return type(err) == "table" and getmetatable(err) == error_metatable and (kind == nil or err.kind == kind)
end

--- `fn(client, ...)` on the default client, or `nil, message, err` when it cannot be made.
local function on_default_client(method)
  return function(...)
    local client, message, err = core.default_client()
    if not client then return nil, message, err end
    return method(client, ...)
  end
end

--- `cb.latest(job_id)`, `cb.records(job_id, opts)`, `cb.fetch(job_id, builds, opts)` and
-- `cb.history(job_id, opts)`: the client methods of the same names, on `cb.default_client()`.
M.latest = on_default_client(function(...) return methods.latest(...) end)
M.records = on_default_client(function(...) return methods.records(...) end)
M.fetch = on_default_client(function(...) return methods.fetch(...) end)
M.history = on_default_client(function(...) return methods.history(...) end)

--- Working with lists of records (see codeartsbuild.query): `cb.where(spec)` builds a predicate,
-- `cb.filter(records_or_iterator, spec_or_predicate)` a list, `cb.summary(records)` counts and
-- durations (in seconds), `cb.time(iso)` epoch seconds. They are codeartsbuild.query's own
-- functions, loaded on first use.
-- @function where

--- `cb.filter(records_or_iterator, spec_or_predicate)`: codeartsbuild.query.filter.
-- @function filter

--- `cb.summary(records_or_iterator)`: codeartsbuild.query.summary.
-- @function summary

--- `cb.time(iso)`: codeartsbuild.query.time.
-- @function time

local FROM_QUERY = { where = true, filter = true, summary = true, time = true }
setmetatable(M, {
  __index = function(_, name)
    if FROM_QUERY[name] then
      local fn = require("codeartsbuild.query")[name]
      rawset(M, name, fn)
      return fn
    end
  end,
})

return M
