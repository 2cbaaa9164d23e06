--- :checkhealth codeartsbuild — the module, its JSON engine, every environment variable the module
-- reads (set or not, never a value), the credentials it would use, the endpoint, and one request
-- that shows whether the service accepts them.
local M = {}

-- Neovim 0.10 has vim.health.start/ok/...; 0.7 to 0.9 have require("health").report_*.
local function reporter()
  local h = vim.health
  if h and h.start then return h.start, h.ok, h.warn, h.error, h.info end
  h = require("health")
  return h.report_start, h.report_ok, h.report_warn, h.report_error, h.report_info
end

--- Whether a variable is set and not empty; a name with <REGION> stands for every variable of
-- that form, and "a, b" for each of them (upper case too).
local function is_set(name)
  local prefix = name:match("^(.-)<%u+>$")
  if prefix then
    for variable in pairs(vim.fn.environ()) do
      if variable:sub(1, #prefix) == prefix then return true end
    end
    return false
  end
  for each in name:gmatch("[^,%s]+") do
    if (os.getenv(each) or "") ~= "" or (os.getenv(each:upper()) or "") ~= "" then return true end
  end
  return false
end

function M.check()
  local start, ok, warn, error, info = reporter()
  start("codeartsbuild")
  local loaded, cb = pcall(require, "codeartsbuild")
  if not loaded then
    error("the module does not load: " .. tostring(cb):gsub("\n\tno field.*", ""),
      { "Run `make nvim` in the plugin's folder (needs libcurl4-openssl-dev, libssl-dev, liblua5.1-0-dev)." })
    return
  end
  local core = cb.core
  ok(("codeartsbuild.core %s is loaded"):format(core.version))
  ok("JSON engine: " .. core.json)

  start("codeartsbuild: the environment (values are never shown)")
  for _, variable in ipairs(cb.environment) do
    info(("%s %s: %s"):format(variable.name, is_set(variable.name) and "is set" or "is not set", variable.what))
  end

  start("codeartsbuild: the client")
  local nvim = require("codeartsbuild.nvim")
  local client, message = nvim.client()
  if not client then
    warn("no client can be made: " .. message, { "See the README, \"Configuration\"." })
    return
  end
  local settings = client:info()
  ok(("credentials: %s, from %s%s"):format(settings.auth == "token" and "IAM token" or "AK/SK",
    settings.credential_source, settings.temporary and " (temporary)" or ""))
  ok(("endpoint: %s%s"):format(settings.endpoint, settings.region and (" (" .. settings.region .. ")") or ""))
  if settings.insecure then
    warn("TLS verification is off (insecure = true)")
  end

  -- One request, on a client of its own that waits 10 s at most and does not retry (this blocks the
  -- editor while it runs): a job that does not exist, which the service says only to credentials
  -- it accepted.
  local options = {}
  for k, v in pairs(nvim.options or {}) do options[k] = v end
  options.timeout, options.connect_timeout, options.retries, options.on_event = 10, 10, 0, nil
  local checker = cb.new(options)
  if not checker then return end
  local _, failure, err = checker:record_info(("0"):rep(32), 1)
  checker:close()
  if err and err.kind == "not_found" then
    ok(("one request: the service answered %s for a job that does not exist: the credentials are accepted")
      :format(err.status and ("HTTP " .. err.status) or "not found"))
  else
    error("one request failed: " .. tostring(failure), { "See the README, \"Errors\": " .. tostring(err and err.kind) })
  end
end

return M
