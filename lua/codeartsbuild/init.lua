--- codeartsbuild: Huawei Cloud CodeArts Build records for Lua.
--
-- The C core (`codeartsbuild.core`) does the HTTP, the signing and the decoding; this module
-- is the face users require. Failures return `nil, message, err` (see README, "Errors").
--
--     local cb = require "codeartsbuild"
--     local rec = assert(cb.record_info("cb5fa20de5fd4cf8be681d4bd6fdd2f6", 61))
--     print(rec)  --> #61 SUCCESS master c2be53c MANUAL 52.3s 2022-09-09 06:31
local core = require "codeartsbuild.core"
local usage = require "codeartsbuild.usage"

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
  --- The environment variables the core reads, each `{ name =, what = }`, in the order it reads
  -- them (`:checkhealth codeartsbuild` and `codeartsbuild man` list them): the core's own list.
  environment = core.environment,
}

--- A client: `cb.new{ region =, endpoint =, ak =, sk =, project_id =, security_token =, token =,
-- ca_file =, insecure =, allow_http =, timeout =, connect_timeout =, max_body =, user_agent =,
-- cache = }`. Options left out come from the environment. `cache = true` (or a directory) keeps
-- the records of finished builds on disk, in `$XDG_CACHE_HOME/codeartsbuild` (see
-- codeartsbuild.cache): `client:records()` and `client:fetch()` then ask the service only for
-- the builds they do not have. Returns the client, or `nil, message, err`.
---@param options? table
function M.new(options)
  if type(options) ~= "table" or options.cache == nil then return core.new(options) end
  local cache = options.cache
  if type(cache) ~= "boolean" and type(cache) ~= "string" then
    usage.error(("option 'cache' must be a boolean or a directory, got %s"):format(type(cache)))
  end
  -- The core takes no cache option (it refuses unknown ones): the rest go to it.
  local rest = {}
  for name, value in pairs(options) do
    if name ~= "cache" then rest[name] = value end
  end
  local client, message, err = core.new(rest)
  if not client or cache == false then return client, message, err end
  local attached
  attached, message, err = require("codeartsbuild.cache").attach(client, cache)
  if not attached then
    client:close()
    return nil, message, err
  end
  return client
end

--- `cb.record_info(job_id, build_no)` on a client made from the environment on first use.
M.record_info = core.record_info

--- The client module-level calls use (made from the environment), or `nil, message, err`.
M.default_client = core.default_client

--- Seconds on a monotonic clock, with a fraction (`os.clock` is CPU time, `os.time` whole seconds
-- of a clock that may jump): for deadlines and elapsed times, as the engine measures them.
M.monotonic = core.monotonic

--- `cb.check_job_id(job_id[, caller])` and `cb.check_build_no(n[, caller])`: the checks every call
-- makes before sending anything, for input of your own: `true` (the build number as an integer),
-- or `nil, message, err` of kind `invalid`.
M.check_job_id = core.check_job_id
M.check_build_no = core.check_build_no

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

--- `cb.show(x)` prints what the library returned the way it reads best, for the REPL: a record,
-- a list of records with the builds that could not be read (`cb.show(client:fetch(...))`), a
-- summary, `client:info()`. It is codeartsbuild.view.show, loaded on first use.
-- @function show

local LAZY = {
  where = "codeartsbuild.query", filter = "codeartsbuild.query", summary = "codeartsbuild.query",
  time = "codeartsbuild.query", show = "codeartsbuild.view",
}
setmetatable(M, {
  __index = function(_, name)
    if LAZY[name] then
      local fn = require(LAZY[name])[name]
      rawset(M, name, fn)
      return fn
    end
  end,
})

return M
