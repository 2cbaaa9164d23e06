-- Clients for a running emulator, one per way of authenticating. `extra` options override.
local cb = require "codeartsbuild"

local M = {}

local function merge(base, extra)
  for k, v in pairs(extra or {}) do base[k] = v end
  return base
end

local function transport(emu)
  return { endpoint = emu.url, ca_file = emu.ca_file }
end

--- Options for a permanent AK/SK pair with the emulator's project id.
function M.aksk_options(emu, extra)
  return merge(merge(transport(emu), { ak = emu.ak, sk = emu.sk, project_id = emu.project_id }), extra)
end

function M.aksk(emu, extra)
  return assert(cb.new(M.aksk_options(emu, extra)))
end

function M.token(emu, extra)
  return assert(cb.new(merge(merge(transport(emu), { token = emu.token }), extra)))
end

function M.temporary(emu, extra)
  return assert(cb.new(merge(merge(transport(emu), {
    ak = emu.temp_ak, sk = emu.temp_sk, security_token = emu.security_token, project_id = emu.project_id,
  }), extra)))
end

--- Polls until nothing is pending, at most `rounds` times; returns every result.
function M.drain(client, rounds)
  local results = {}
  for _ = 1, rounds or 200 do
    if client:pending() == 0 then break end
    for _, r in ipairs(client:poll(1000)) do results[#results + 1] = r end
  end
  return results
end

return M
