-- The rock: `luarocks make` into a temporary tree, then the module is required from that tree.
local run = require "spec.support.run"

describe("the rockspec", function()
  local work

  before_each(function()
    work = run.tmpdir()
    -- Build from a copy so the checkout stays clean of luarocks' object files.
    assert(os.execute(("cp -r csrc lua codeartsbuild-scm-1.rockspec %s/"):format(run.quote(work))))
  end)

  after_each(function()
    os.execute("rm -rf " .. run.quote(work))
  end)

  it("passes luarocks lint", function()
    local out, status = run.capture("luarocks lint codeartsbuild-scm-1.rockspec")
    assert.are.equal(0, status, out)
  end)

  it("builds with luarocks make and loads from the tree it installed into", function()
    local version = run.version == "luajit" and "5.1" or run.version -- LuaRocks calls LuaJIT 5.1
    local tree = work .. "/tree"
    local out, status = run.capture(("cd %s && luarocks --lua-version %s make --deps-mode=none --tree %s %s")
      :format(run.quote(work), version, run.quote(tree), "codeartsbuild-scm-1.rockspec"))
    assert.are.equal(0, status, out)
    local lua_dir = ("%s/share/lua/%s"):format(tree, version)
    local lib_dir = ("%s/lib/lua/%s"):format(tree, version)
    local code = ([[
      package.path = %q .. "/?.lua;" .. %q .. "/?/init.lua;" .. package.path
      package.cpath = %q .. "/?.so;" .. package.cpath
      local cb = require "codeartsbuild"
      local function search(name, path) -- package.searchpath, which Lua 5.1 lacks
        for template in path:gmatch("[^;]+") do
          local file = template:gsub("%%?", (name:gsub("%%.", "/")))
          local f = io.open(file)
          if f then f:close() return file end
        end
      end
      print(search("codeartsbuild.core", package.cpath))
      print(search("codeartsbuild", package.path))
      print(cb._VERSION, #cb.regions)
    ]]):format(lua_dir, lua_dir, lib_dir)
    out, status = run.capture(run.lua .. " -e " .. run.quote(code))
    assert.are.equal(0, status, out)
    local so, init, release, regions = out:match("^(%S+)\n(%S+)\n(%S+)\t(%d+)\n$")
    assert.are.equal(lib_dir .. "/codeartsbuild/core.so", so)
    assert.are.equal(lua_dir .. "/codeartsbuild/init.lua", init)
    assert.truthy(release:match("^%d+%.%d+%.%d+$"))
    assert.are.equal("12", regions)
  end)
end)
