-- The shared module as built for the Lua running the specs: one exported symbol, no liblua.
local run = require "spec.support.run"

describe("the built module", function()
  local so = "build/" .. run.version .. "/codeartsbuild/core.so"

  it("exports only luaopen_codeartsbuild_core", function()
    local out, status = run.capture("nm -D --defined-only " .. run.quote(so))
    assert.are.equal(0, status, out)
    local exported = {}
    for kind, name in out:gmatch("%x+ (%a) ([%w_@.]+)") do
      if kind ~= "w" and kind ~= "U" then exported[#exported + 1] = name end
    end
    assert.are.same({ "luaopen_codeartsbuild_core" }, exported)
  end)

  it("does not link liblua: the host provides the Lua API", function()
    local out, status = run.capture("readelf -d " .. run.quote(so))
    assert.are.equal(0, status, out)
    assert.is_nil(out:find("liblua", 1, true), out)
    assert.is_nil(out:find("libluajit", 1, true), out)
    assert.truthy(out:find("libcurl", 1, true), out)
  end)
end)
