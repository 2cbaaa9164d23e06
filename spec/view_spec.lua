-- codeartsbuild.view: the REPL's and the command line's views of records, their alignment and
-- their colour rules; and `make repl`, driven through a pipe.
local view = require "codeartsbuild.view"
local run = require "spec.support.run"

local function rec(fields)
  local r = {
    buildNo = 61, status = "SUCCESS", branch = "master", commit = "c2be53c0123456789abcdef0123456789abcdef0",
    triggerType = "MANUAL", duration = 52261, startTime = "2022-09-09T06:31:50.000+00:00",
  }
  for k, v in pairs(fields or {}) do
    if v == false then r[k] = nil else r[k] = v end
  end
  return r
end

--- A file handle that keeps what is written to it.
local function sink()
  local path = os.tmpname()
  local f = assert(io.open(path, "w+"))
  return f, function()
    f:seek("set", 0)
    local text = f:read("*a")
    f:close()
    os.remove(path)
    return text
  end
end

local function width(text)
  local _, n = text:gsub("[^\128-\191]", "")
  return n
end

describe("view.table_lines", function()
  it("aligns every column under its title, numbers to the right, no trailing blanks", function()
    local lines = view.table_lines({
      rec(),
      rec{ buildNo = 1200, status = "FAILED", branch = "feature/login", duration = 1432727 },
      rec{ buildNo = 7, status = "RUNNING", duration = false, triggerType = "CODEHUB_TRIGGER" },
    })
    assert.are.same({
      "BUILD  STATUS   BRANCH         COMMIT   TRIGGER          DURATION  START",
      "   61  SUCCESS  master         c2be53c  MANUAL              52.3s  2022-09-09 06:31",
      " 1200  FAILED   feature/login  c2be53c  MANUAL             23m52s  2022-09-09 06:31",
      "    7  RUNNING  master         c2be53c  CODEHUB_TRIGGER         -  2022-09-09 06:31",
    }, lines)
  end)

  it("shows '-' for what is absent, the tag where there is no branch, no control characters", function()
    local lines = view.table_lines({
      rec{ buildNo = false, status = false, branch = false, tag = "v1.2.0", commit = false, triggerType = false,
        duration = false, startTime = false },
      rec{ branch = "evil\27[31mred\nline" },
    })
    assert.truthy(lines[2]:find("^    %-  %-        tag:v1%.2%.0 +%-        %- +%-  %-$"), lines[2])
    assert.are.equal(lines[1]:find("START", 1, true), #lines[2]) -- the last "-" right under START
    assert.is_nil(lines[3]:find("[%c]"), lines[3])
    assert.truthy(lines[3]:find("evil [31mred line", 1, true), lines[3])
  end)

  it("counts characters, not bytes, so that UTF-8 branch names stay aligned", function()
    local lines = view.table_lines({ rec{ branch = "功能/登录" }, rec{ branch = "main" } })
    local a = lines[2]:find("c2be53c", 1, true)
    local b = lines[3]:find("c2be53c", 1, true)
    assert.are.equal(width(lines[2]:sub(1, a - 1)), width(lines[3]:sub(1, b - 1)))
  end)

  it("takes rows from view.row, and the records of an iterator, leaving failed builds out", function()
    local from_rows = view.table_lines({ view.row(rec()), view.row(rec{ buildNo = 62 }) })
    local from_records = view.table_lines({ rec(), rec{ buildNo = 62 } })
    assert.are.same(from_records, from_rows)
    local steps = { { 61, rec() }, { 62, nil, { kind = "http" } }, { 63, rec{ buildNo = 63 } } }
    local i = 0
    local lines = view.table_lines(function()
      i = i + 1
      local s = steps[i]
      if s then return s[1], s[2], s[3] end
    end)
    assert.are.equal(3, #lines)
    assert.truthy(lines[3]:find("^   63  "), lines[3])
  end)

  it("paints titles and statuses only when asked", function()
    local plain = view.table_lines({ rec(), rec{ status = "FAILED" } })
    assert.is_nil(table.concat(plain):find("\27", 1, true))
    local painted = view.table_lines({ rec(), rec{ status = "FAILED" } }, { color = true })
    assert.truthy(painted[1]:find("\27[1mBUILD\27[0m", 1, true), painted[1])
    assert.truthy(painted[2]:find("\27[32mSUCCESS\27[0m", 1, true), painted[2])
    assert.truthy(painted[3]:find("\27[31mFAILED \27[0m", 1, true), painted[3])
    -- the same text without the escapes
    for n = 1, 3 do assert.are.equal(plain[n], (painted[n]:gsub("\27%[%d+m", ""))) end
  end)
end)

describe("view.table", function()
  it("prints the lines to a file handle, and nothing else (a REPL prints no return value)", function()
    local f, text = sink()
    local returned = select("#", view.table({ rec() }, { out = f, color = false }))
    assert.are.equal(0, returned)
    assert.are.equal(table.concat(view.table_lines({ rec() }), "\n") .. "\n", text())
  end)

  it("says so for an empty list, and raises with the reason when given a failure", function()
    local f, text = sink()
    view.table({}, { out = f })
    assert.are.equal("(no records)\n", text())
    assert.has_error(function() view.table(nil, "fetch: invalid job_id") end, "view: no records: fetch: invalid job_id")
    assert.has_error(function() view.table(42) end)
  end)
end)

describe("view.record", function()
  it("prints record_lines, unchanged when colours are off", function()
    local r = rec{ errMsg = "npm ERR!", extraField = "kept" }
    local f, text = sink()
    view.record(r, { out = f, color = false })
    assert.are.equal(table.concat(view.record_lines(r), "\n") .. "\n", text())
    local lines = view.record_lines(r)
    assert.are.equal("buildNo      61", lines[1])
    assert.are.equal("extraField   kept", lines[#lines])
  end)

  it("dims the names and colours the status when colours are on", function()
    local f, text = sink()
    view.record(rec{ status = "ABORTED" }, { out = f, color = true })
    local out = text()
    assert.truthy(out:find("\27[2mstatus\27[0m", 1, true), out)
    assert.truthy(out:find("\27[33mABORTED\27[0m", 1, true), out)
    assert.truthy(out:find("\n\27%[2mbranch\27%[0m +master\n"), out)
  end)

  it("raises on something that is not a record", function()
    assert.has_error(function() view.record("61") end)
  end)
end)

describe("view.duration", function()
  it("reads as people write durations", function()
    assert.are.equal("52.3s", view.duration(52261))
    assert.are.equal("4m43s", view.duration(283090))
    assert.are.equal("1h02m", view.duration(3725000))
    assert.are.equal("-", view.duration(nil))
    assert.are.equal("-", view.duration(-1))
  end)
end)

describe("colour rules", function()
  local saved

  before_each(function() saved = view.color end)
  after_each(function() view.color = saved end)

  local function env(vars)
    return function(name) return vars[name] end
  end

  it("never colours with NO_COLOR set (not empty), TERM=dumb, or output that is not stdout or stderr", function()
    local f, text = sink()
    assert.is_false(view.use_color(io.stdout, nil, env{ NO_COLOR = "1", TERM = "xterm" }))
    assert.is_false(view.use_color(io.stderr, nil, env{ TERM = "dumb" }))
    assert.is_false(view.use_color(f, nil, env{ TERM = "xterm" }))
    text()
  end)

  it("follows opts.color, then view.color, before the rules", function()
    assert.is_true(view.use_color(io.stdout, true, env{ NO_COLOR = "1" }))
    assert.is_false(view.use_color(io.stdout, false, env{}))
    view.color = true
    assert.is_true(view.use_color(io.stdout, nil, env{ NO_COLOR = "1" }))
    view.color = false
    assert.is_false(view.use_color(io.stdout, nil, env{}))
  end)

  -- A fresh interpreter prints a record: in a pseudo-terminal (script), through a pipe, and in
  -- the terminal with NO_COLOR; what it printed tells whether colours were used.
  local CODE = [[
    local view = require "codeartsbuild.view"
    view.record({ buildNo = 61, status = "SUCCESS" })
    view.table({ { buildNo = 61, status = "FAILED" } })
  ]]

  local function lua_command(vars)
    local root = run.cwd()
    local words = { "env", "-i", "PATH=" .. run.quote(os.getenv("PATH")),
      "LUA_PATH=" .. run.quote(root .. "/lua/?.lua;;"), "LUA_CPATH=" .. run.quote(run.build_dir(root) .. "/?.so;;") }
    for k, v in pairs(vars) do words[#words + 1] = run.quote(k .. "=" .. v) end
    words[#words + 1] = run.lua .. " -e " .. run.quote(CODE)
    return table.concat(words, " ")
  end

  local function in_terminal(vars)
    local out, status = run.capture(("script -qec %s /dev/null </dev/null"):format(run.quote(lua_command(vars))))
    assert.are.equal(0, status, out)
    return out
  end

  it("colours a REPL's output on a terminal", function()
    local out = in_terminal({ TERM = "xterm" })
    assert.truthy(out:find("\27[32mSUCCESS\27[0m", 1, true), out)
    assert.truthy(out:find("\27[31mFAILED\27[0m", 1, true), out)
  end)

  it("does not with NO_COLOR, with TERM=dumb, or through a pipe", function()
    for _, vars in ipairs{ { TERM = "xterm", NO_COLOR = "1" }, { TERM = "dumb" } } do
      local out = in_terminal(vars)
      assert.truthy(out:find("SUCCESS", 1, true), out)
      assert.is_nil(out:find("\27[", 1, true), out)
    end
    local out, status = run.capture(lua_command({ TERM = "xterm" }) .. " </dev/null | cat")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("status   SUCCESS", 1, true), out)
    assert.is_nil(out:find("\27", 1, true), out)
  end)
end)

describe("make repl", function()
  it("starts an interactive Lua with `client` connected to the emulator and says how to begin", function()
    local input = table.concat({
      "print('latest=' .. client:latest(job))",
      "view.table(client:fetch(job, { from = 1199, to = 1200 }))",
      "print(client:record_info(job, 61))",
      "os.exit()",
    }, "\n") .. "\n"
    local dir = run.tmpdir()
    run.write(dir .. "/input", input)
    local out, status = run.capture(("make --no-print-directory -s LUA=%s repl <%s"):format(run.lua,
      run.quote(dir .. "/input")))
    os.execute("rm -rf " .. run.quote(dir))
    assert.are.equal(0, status, out)
    local intro = out:match("(codeartsbuild %d+%.%d+%.%d+: `client` reads http://127%.0%.0%.1:%d+ %(the bundled "
      .. "emulator%); `cb`, `view` and `job` are set%.\ntry: [^\n]+\n)")
    assert.truthy(intro, out)
    assert.truthy(out:find("latest=1200", 1, true), out)
    assert.truthy(out:find("BUILD  STATUS ", 1, true), out) -- after a prompt: LuaJIT echoes no input
    assert.truthy(out:find("\n%s*1199  %u+ "), out)
    assert.truthy(out:find("\n?#61 %u+ %S+ %x%x%x%x%x%x%x "), out)
    assert.is_nil(out:find("\27", 1, true), out) -- a pipe: no colours
  end)
end)
