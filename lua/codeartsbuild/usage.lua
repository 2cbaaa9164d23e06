--- codeartsbuild.usage: a mistake in the calling code (a wrong type, an unknown option, an
-- impossible value) raised at the caller's line, however many of the library's own frames
-- (wrappers, lazy loaders, tail calls) lie between: the first frame outside the library's files is
-- the caller. The one way the Lua layers raise for a mistake; failures at run time return
-- `nil, message, err` instead.
local M = {}

-- The folder of the library's Lua files, as the loader named them ("@lua/codeartsbuild/").
local OURS = debug.getinfo(1, "S").source:match("^(@.*[/\\])[^/\\]*$")

local function ours(info)
  return info.what == "tail" or (OURS ~= nil and info.source:sub(1, #OURS) == OURS)
end

--- Raises `message` at the first frame outside the library.
---@param message string
function M.error(message)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil or not ours(info) then break end
    level = level + 1
  end
  error(message, level)
end

return M
