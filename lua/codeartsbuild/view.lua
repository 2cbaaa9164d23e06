--- Text views of records, for the REPL, the command line and Neovim buffers.
--
--     local view = require "codeartsbuild.view"
--     for _, line in ipairs(view.record_lines(rec)) do print(line) end
local M = {}

--- The record fields in the order of the API reference page.
M.FIELDS = {
  "buildNo", "status", "branch", "tag", "commit", "commitMessage", "triggerType", "buildType",
  "startTime", "finishTime", "duration", "dailyBuildNum", "repoName", "repoId", "commitCreateTime",
  "createTime", "scheduleTime", "queuedTime", "runnableTime", "recordStatus", "errMsg", "buildConfigType",
  "usePrivateSlave", "region", "id", "buildProjectId", "buildRecordId", "parentRecordId",
  "devcloudProjectId", "codeciJobId", "userId", "domainId", "executionId",
}

local KNOWN = {}
for _, name in ipairs(M.FIELDS) do KNOWN[name] = true end

--- A duration in milliseconds as people read it: 52.3s, 4m43s, 1h02m.
---@param ms number|nil
---@return string
function M.duration(ms)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then return "-" end
  local s = ms / 1000
  if s < 60 then return ("%.1fs"):format(s) end
  if s < 3600 then return ("%dm%02ds"):format(math.floor(s / 60), math.floor(s % 60)) end
  return ("%dh%02dm"):format(math.floor(s / 3600), math.floor(s / 60 % 60))
end

local function shown(name, value)
  if name == "duration" then
    return ("%s (%s ms)"):format(M.duration(value), tostring(value))
  end
  return (tostring(value):gsub("[%c]", " "))
end

--- The record as aligned "name  value" lines: the page's fields in its order, then any others
-- the service sent, sorted. Absent fields are left out.
---@param rec table
---@return string[]
function M.record_lines(rec)
  local names = {}
  for _, name in ipairs(M.FIELDS) do
    if rec[name] ~= nil then names[#names + 1] = name end
  end
  local extra = {}
  for name in pairs(rec) do
    if type(name) == "string" and not KNOWN[name] then extra[#extra + 1] = name end
  end
  table.sort(extra)
  for _, name in ipairs(extra) do names[#names + 1] = name end
  local width = 0
  for _, name in ipairs(names) do width = math.max(width, #name) end
  local lines = {}
  for _, name in ipairs(names) do
    lines[#lines + 1] = ("%-" .. width .. "s  %s"):format(name, shown(name, rec[name]))
  end
  return lines
end

return M
