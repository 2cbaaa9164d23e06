-- The rock: lint, `luarocks make` into temporary trees for Lua 5.1 and for the Lua running the
-- specs, the module required from each tree, the folders it copies (plugin/, docs/, share/),
-- `luarocks pack` of the installed rock, `luarocks test`, and released rockspecs whose tag exists.
local run = require "spec.support.run"

--- The files of a checkout copy, but the rock tree the specs install into.
local function files_of(dir)
  return (run.capture(("cd %s && find . -path ./tree -prune -o -type f -print | LC_ALL=C sort"):format(run.quote(dir))))
end

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

-- What a clone has (tracked and new files, nothing ignored such as a built core.so in lua/).
local function copy_checkout(dest)
  local out, status = run.capture(("git ls-files -co --exclude-standard -- csrc lua bin plugin docs share "
    .. "Makefile '*.rockspec' | "
    .. "tar -cf - -T - | tar -xf - -C %s"):format(run.quote(dest)))
  assert(status == 0, out)
end

local function interpreter(version)
  if version == "5.1" and run.version == "luajit" then return "luajit" end
  return "lua" .. version
end

-- The paths a tree gives to Lua `version`, and what `require` found there.
local function require_from_tree(tree, version)
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
    print(cb._VERSION, #cb.regions, type(cb.records), type(require("codeartsbuild.view").record_lines))
  ]]):format(lua_dir, lua_dir, lib_dir)
  local out, status = run.capture(interpreter(version) .. " -e " .. run.quote(code))
  assert.are.equal(0, status, out)
  local so, init, release, regions, records, view = out:match("^(%S+)\n(%S+)\n(%S+)\t(%d+)\t(%a+)\t(%a+)\n$")
  assert.are.equal(lib_dir .. "/codeartsbuild/core.so", so, out)
  assert.are.equal(lua_dir .. "/codeartsbuild/init.lua", init)
  assert.truthy(release:match("^%d+%.%d+%.%d+$"))
  assert.are.equal("12", regions)
  assert.are.equal("function", records)
  assert.are.equal("function", view)
end

describe("the rockspecs", function()
  local work

  local cloned -- what copy_checkout copied

  before_each(function()
    work = run.tmpdir()
    copy_checkout(work)
    cloned = files_of(work)
  end)

  after_each(function()
    os.execute("rm -rf " .. run.quote(work))
  end)

  -- Released rockspecs: each names a tag, and the tag must exist (rockspecs/README.md).
  local released = {}
  for name in run.capture("ls rockspecs"):gmatch("[^\n]+") do
    if name:find("%.rockspec$") then released[#released + 1] = "rockspecs/" .. name end
  end

  for _, rockspec in ipairs{ "codeartsbuild-scm-1.rockspec", unpack(released) } do
    it("passes luarocks lint: " .. rockspec, function()
      local out, status = run.capture("luarocks lint " .. run.quote(rockspec))
      assert.are.equal(0, status, out)
    end)
  end

  it("has no released rockspec that points at a tag the repository does not have", function()
    local tags = {}
    for tag in run.capture("git tag"):gmatch("[^\n]+") do tags[tag] = true end
    for _, rockspec in ipairs(released) do
      local text = run.read(rockspec)
      local tag = text:match("\n%s*tag%s*=%s*\"([^\"]+)\"")
      local version = text:match("\nversion%s*=%s*\"([^\"]+)%-%d+\"")
      assert.truthy(tag, rockspec .. " names no tag")
      assert.are.equal("v" .. version, tag)
      assert.is_true(tags[tag] == true, rockspec .. " points at " .. tag .. ", which does not exist")
    end
  end)

  it("runs the suite with `luarocks test` (here: busted lists the specs)", function()
    local lua_version = run.version == "luajit" and "5.1" or run.version
    -- Under make check-asan the child busted runs without the sanitizer runtime: it loads the
    -- plain build (run.build_dir's rule), not the instrumented one.
    local out, status = run.capture(("env -u CODEARTSBUILD_BUILD_DIR -u CODEARTSBUILD_PRELOAD "
      .. "luarocks --lua-version %s test codeartsbuild-scm-1.rockspec -- --list"):format(lua_version))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("spec/rockspec_spec.lua:%d+: the rockspecs runs the suite with `luarocks test`"), out)
  end)

  local versions = { "5.1" }
  local own = run.version == "luajit" and "5.1" or run.version -- LuaRocks calls LuaJIT 5.1
  if own ~= "5.1" then versions[2] = own end

  for _, version in ipairs(versions) do
    it("builds with luarocks make for Lua " .. version .. " and loads from that tree, and packs #builds", function()
      local tree = work .. "/tree"
      local out, status = run.capture(("cd %s && luarocks --lua-version %s make --deps-mode=none --tree %s %s")
        :format(run.quote(work), version, run.quote(tree), "codeartsbuild-scm-1.rockspec"))
      assert.are.equal(0, status, out)
      require_from_tree(tree, version)
      -- plugin/, docs/ and share/ are copied into the rock's folder (rocks.nvim sources plugin/).
      local rock_dir = ("%s/lib/luarocks/rocks-%s/codeartsbuild/scm-1"):format(tree, version)
      for _, file in ipairs{ "plugin/codeartsbuild.lua", "docs/index.html", "share/man/man1/codeartsbuild.1",
        "share/bash-completion/completions/codeartsbuild", "share/zsh/site-functions/_codeartsbuild" } do
        assert.truthy(run.read(rock_dir .. "/" .. file), file)
      end
      -- The command-line tool is installed too, and runs on the tree's modules (set up as a user
      -- of a tree of their own does: eval "$(luarocks path)").
      out, status = run.capture(('eval "$(luarocks --lua-version %s --tree %s path)" && codeartsbuild --version')
        :format(version, run.quote(tree)))
      assert.are.equal(0, status, out)
      assert.truthy(out:match("^codeartsbuild %d+%.%d+%.%d+ %("), out)

      -- `luarocks make` builds in the checkout (./codeartsbuild/core.so, csrc/*.o): `make clean`
      -- takes the checkout back to what it was.
      local built = run.capture(("cd %s && ls codeartsbuild/core.so csrc/*.o | wc -l"):format(run.quote(work)))
      assert.is_true(tonumber(built:match("%d+")) > 1, built)
      out, status = run.capture(("cd %s && make --no-print-directory clean"):format(run.quote(work)))
      assert.are.equal(0, status, out)
      assert.are.equal(cloned, files_of(work))
      out, status = run.capture(("cd %s && luarocks --lua-version %s --tree %s pack codeartsbuild")
        :format(run.quote(work), version, run.quote(tree)))
      assert.are.equal(0, status, out)
      local rock = out:match("Packed: (%S+%.rock)")
      assert.truthy(rock, out)
      local listing
      local list_zip = "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))"
      listing, status = run.capture(("python3 -c %s %s"):format(run.quote(list_zip), run.quote(rock)))
      assert.are.equal(0, status, listing)
      assert.truthy(listing:find("lib/codeartsbuild/core.so", 1, true), listing)
      assert.truthy(listing:find("lua/codeartsbuild/init.lua", 1, true), listing)
      assert.is_nil(listing:find("lua/codeartsbuild/core.so", 1, true), listing)
    end)
  end
end)
