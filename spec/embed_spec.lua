-- A C host that links the module in (make static) and registers it with luaL_requiref: built
-- with `make embed-example`, run against the emulator. Only meaningful for Lua 5.4, the Lua the
-- example embeds; under other interpreters this spec builds and runs the same 5.4 host.
local emulator = require "spec.support.emulator"
local run = require "spec.support.run"

describe("examples/embed #once", function()
  it("builds, registers the module without a core.so, and fetches records", function()
    local out, status = run.capture("make --no-print-directory LUA=lua5.4 embed-example")
    assert.are.equal(0, status, out)
    local emu = emulator.start{}
    local env = {}
    for k, v in pairs(emulator.client_env(emu)) do env[#env + 1] = k .. "=" .. run.quote(v) end
    out, status = run.capture(("env -i PATH=%s %s examples/embed/embed %s 61"):format(
      run.quote(os.getenv("PATH")), table.concat(env, " "), emulator.job_ids.reference))
    local stats = emu:stats()
    emu:stop()
    assert.are.equal(0, status, out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(3, #lines, out)
    for i, n in ipairs{ 59, 60, 61 } do
      assert.truthy(lines[i]:match("^#" .. n .. " %u+ "), lines[i])
    end
    assert.are.equal(3, stats.requests)
  end)
end)
