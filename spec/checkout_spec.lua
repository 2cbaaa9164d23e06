-- A fresh clone, as a new user has it: `make demo`, then the README's Quickstart and command-line
-- commands run verbatim (every `$ ` line of its console blocks, in order, in one shell, against the
-- emulator) with Debian's `lua` being Lua 5.1, their outputs checked against what the README shows;
-- bin/codeartsbuild before anything is built; `make clean` after. Tagged "once": it builds with
-- make, whatever Lua runs busted.
local run = require "spec.support.run"

local ROOT = run.cwd()

--- The files of a tree, sorted (for "as cloned").
local function listing(dir)
  local out = run.capture(("cd %s && find . -type f -o -type l | LC_ALL=C sort"):format(run.quote(dir)))
  return out
end

--- The README's commands: { command =, shown = { lines } } for each `$ ` line of the console blocks
-- of the given sections, in order; `shown` is what the README prints under it.
local function readme_commands(sections)
  local text = assert(run.read(ROOT .. "/README.md"))
  local commands, section, in_block = {}, nil, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^## ") then section = line:sub(4) end
    if line:match("^```console$") then
      in_block = sections[section] or false
    elseif line:match("^```") then
      in_block = false
    elseif in_block then
      local command = line:match("^%$ (.+)$")
      if command then
        commands[#commands + 1] = { command = command, shown = {} }
      elseif #commands > 0 then
        table.insert(commands[#commands].shown, line)
      end
    end
  end
  return commands
end

--- Whether `shown` (the README's lines, where "..." stands for anything) appear in `actual` in
-- order; nil and the first line not found otherwise.
local function appears(shown, actual)
  local lines = {}
  for line in actual:gmatch("([^\n]*)\n?") do lines[#lines + 1] = line end
  local at = 1
  for _, want in ipairs(shown) do
    if want ~= "..." then
      local pattern = "^" .. want:gsub("%p", "%%%0"):gsub("%%%.%%%.%%%.", ".-") .. "$"
      local found = false
      for i = at, #lines do
        if lines[i]:find(pattern) then
          at, found = i + 1, true
          break
        end
      end
      if not found then return nil, want end
    end
  end
  return true
end

describe("a fresh clone #once", function()
  local clone, bin

  setup(function()
    clone = run.tmpdir() .. "/codeartsbuild"
    local out, status = run.capture(("mkdir -p %s && git ls-files -co --exclude-standard | tar -cf - -T - | "
      .. "tar -xf - -C %s"):format(run.quote(clone), run.quote(clone)))
    assert(status == 0, out)
    -- Debian's `lua` once Lua 5.1 is installed: 5.1.
    bin = clone .. "/../lua-is-5.1"
    assert(os.execute(("mkdir -p %s && ln -s /usr/bin/lua5.1 %s/lua"):format(run.quote(bin), run.quote(bin))))
  end)

  teardown(function()
    if clone then os.execute("rm -rf " .. run.quote((clone:gsub("/codeartsbuild$", "")))) end
  end)

  local function env(extra)
    local words = { "env", "-i", "PATH=" .. run.quote(bin .. ":" .. os.getenv("PATH")), "TZ=Asia/Shanghai",
      "HOME=" .. run.quote(clone .. "/../home") }
    for k, v in pairs(extra or {}) do words[#words + 1] = run.quote(k .. "=" .. v) end
    return table.concat(words, " ")
  end

  it("has a bin/codeartsbuild that names the command that builds the module, before anything is built", function()
    local out, status = run.capture(("cd %s && %s bin/codeartsbuild latest cb5fa20de5fd4cf8be681d4bd6fdd2f6")
      :format(run.quote(clone), env()))
    assert.are.equal(1, status, out)
    assert.truthy(out:find("has no module built for Lua 5.1, the Lua running this; build it with\n  make -C ", 1, true),
      out)
    assert.truthy(out:find(" LUA=lua5.1\n(it needs liblua5.1-0-dev", 1, true), out)
  end)

  it("runs the README's Quickstart and command-line commands verbatim after `make demo`", function()
    local before = listing(clone)
    local commands = readme_commands{ ["Quickstart"] = true, ["Command line"] = true }
    assert.are.equal("make demo", commands[1].command)
    assert.is_true(#commands > 10)
    -- One shell runs them all, in order, each followed by a marker with its exit status.
    local script = { "cd " .. run.quote(clone) }
    for i, c in ipairs(commands) do
      script[#script + 1] = c.command
      script[#script + 1] = ('echo "@@@ %d $?"'):format(i)
    end
    local file = clone .. "/../readme.sh"
    run.write(file, table.concat(script, "\n") .. "\n")
    local out, status = run.capture(("cd %s && %s spec/support/with-emulator -- bash %s 2>&1"):format(
      run.quote(clone), env(), run.quote(file)))
    assert.are.equal(0, status, out)
    local from = 1
    for i, c in ipairs(commands) do
      local stop, finish, code = out:find("@@@ " .. i .. " (%d+)\n", from)
      assert.truthy(stop, ("no marker after `%s`:\n%s"):format(c.command, out:sub(from)))
      local output = out:sub(from, stop - 1)
      assert.are.equal("0", code, ("`%s` failed:\n%s"):format(c.command, output))
      local ok, missing = appears(c.shown, output)
      assert.is_true(ok, ("`%s` did not print the README's line\n  %s\nit printed:\n%s"):format(c.command,
        tostring(missing), output))
      from = finish + 1
    end
    -- The demo's own output, and the CLI that ran under Lua 5.1 with the 5.4 build.
    assert.truthy(out:find("record:   #61 SUCCESS develop 20756b9 MANUAL 4m43s", 1, true), out)
    -- make clean: the tree as it was cloned (the files the commands wrote aside: builds.csv).
    out, status = run.capture(("cd %s && rm -f builds.csv && make --no-print-directory clean"):format(run.quote(clone)))
    assert.are.equal(0, status, out)
    assert.are.equal(before, listing(clone))
  end)
end)
