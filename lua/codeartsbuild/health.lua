--- :checkhealth codeartsbuild — the module, its JSON engine, the credentials it would use (never
-- their values) and the endpoint.
local M = {}

-- Neovim 0.10 has vim.health.start/ok/...; 0.7 to 0.9 have require("health").report_*.
local function reporter()
  local h = vim.health
  if h and h.start then return h.start, h.ok, h.warn, h.error, h.info end
  h = require("health")
  return h.report_start, h.report_ok, h.report_warn, h.report_error, h.report_info
end

local CREDENTIAL_VARIABLES = {
  "CODEARTSBUILD_TOKEN", "CODEARTSBUILD_AK", "CODEARTSBUILD_SK", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK",
  "HUAWEICLOUD_SDK_SECURITY_TOKEN", "CLOUD_SDK_AK", "CLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID",
  "CODEARTSBUILD_PROJECT_ID", "CODEARTSBUILD_REGION", "CODEARTSBUILD_ENDPOINT", "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
}

function M.check()
  local start, ok, warn, error, info = reporter()
  start("codeartsbuild")
  local loaded, core = pcall(require, "codeartsbuild.core")
  if not loaded then
    error("the C module codeartsbuild.core does not load: " .. tostring(core),
      { "Run `make nvim` in the plugin's folder (needs libcurl4-openssl-dev, libssl-dev, liblua5.1-0-dev)." })
    return
  end
  ok(("codeartsbuild.core %s is loaded"):format(core.version))
  ok("JSON engine: " .. core.json)
  local set = {}
  for _, name in ipairs(CREDENTIAL_VARIABLES) do
    if (os.getenv(name) or "") ~= "" then set[#set + 1] = name end
  end
  info(#set > 0 and ("set in the environment: " .. table.concat(set, ", ")) or "no CODEARTSBUILD_*, "
    .. "HUAWEICLOUD_SDK_* or CLOUD_SDK_* variable is set")
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
end

return M
