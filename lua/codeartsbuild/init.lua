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

local M = {
  _VERSION = core.version,
  --- The core module, for what this face does not wrap.
  core = core,
  --- Regions with a known endpoint.
  regions = core.regions,
  --- The environment variables the core reads, each `{ name =, what = }`, in the order it reads
  -- them (`:checkhealth codeartsbuild` and `codeartsbuild --help` list them). The core's own list
  -- once it exports one (core.environment); until then, stated here.
  environment = core.environment or {
    { name = "CODEARTSBUILD_ENDPOINT",
      what = "the endpoint, https://host[:port] (when neither endpoint nor region is given)" },
    { name = "CODEARTSBUILD_REGION", what = "the region (its endpoint, and the project IAM scopes tokens to)" },
    { name = "HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_<REGION>",
      what = "the endpoint of that region, as the official SDKs read it" },
    { name = "CODEARTSBUILD_TOKEN", what = "an IAM token, sent as X-Auth-Token" },
    { name = "CODEARTSBUILD_IAM_USER", what = "an IAM user who signs in for tokens (with _PASSWORD and _DOMAIN)" },
    { name = "CODEARTSBUILD_IAM_PASSWORD", what = "that IAM user's password" },
    { name = "CODEARTSBUILD_IAM_DOMAIN", what = "that IAM user's account (domain) name" },
    { name = "CODEARTSBUILD_AK", what = "an access key (with CODEARTSBUILD_SK)" },
    { name = "CODEARTSBUILD_SK", what = "its secret key" },
    { name = "CODEARTSBUILD_SECURITY_TOKEN", what = "the security token of temporary AK/SK" },
    { name = "HUAWEICLOUD_SDK_AK", what = "an access key, as the official SDKs read it (with HUAWEICLOUD_SDK_SK)" },
    { name = "HUAWEICLOUD_SDK_SK", what = "its secret key" },
    { name = "HUAWEICLOUD_SDK_SECURITY_TOKEN", what = "the security token of temporary AK/SK" },
    { name = "CLOUD_SDK_AK", what = "an access key, as the SDK samples read it (with CLOUD_SDK_SK)" },
    { name = "CLOUD_SDK_SK", what = "its secret key" },
    { name = "HUAWEICLOUD_SDK_CREDENTIALS_FILE", what = "the credentials file (default ~/.huaweicloud/credentials)" },
    { name = "CODEARTSBUILD_PROJECT_ID", what = "the project id, sent as X-Project-Id" },
    { name = "HUAWEICLOUD_SDK_PROJECT_ID", what = "the project id, as the official SDKs read it" },
    { name = "CODEARTSBUILD_IAM_ENDPOINT", what = "IAM's endpoint (default https://iam.<region>.myhuaweicloud.com)" },
    { name = "CODEARTSBUILD_CA_FILE", what = "a PEM file of trusted CAs (default: the system's)" },
    { name = "HOME", what = "where ~/.huaweicloud/credentials is" },
    { name = "http_proxy, https_proxy, all_proxy, no_proxy", what = "a proxy, as libcurl reads them (upper case too)" },
  },
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
    error(("option 'cache' must be a boolean or a directory, got %s"):format(type(cache)), 2)
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
