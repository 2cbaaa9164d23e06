-- codeartsbuild.view: the REPL's and the command line's views of records, their alignment and
-- their colour rules; and `make repl`, driven through a pipe.
local view = require "codeartsbuild.view"
local query = require "codeartsbuild.query"
local run = require "spec.support.run"

-- Times in UTC here, whatever the machine's zone: the local zone has specs of its own (below), in
-- child processes with TZ set.
view.utc = true

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

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

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
      "   61  SUCCESS  master         c2be53c  MANUAL              52.3s  2022-09-09 06:31 +00:00",
      " 1200  FAILED   feature/login  c2be53c  MANUAL             23m52s  2022-09-09 06:31 +00:00",
      "    7  RUNNING  master         c2be53c  CODEHUB_TRIGGER         -  2022-09-09 06:31 +00:00",
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

  it("takes fetch's second value and counts and names the builds that could not be read", function()
    local errors = setmetatable({ [63] = { kind = "timeout", message = "record_info x/63: timed out" },
      [62] = { kind = "http", message = "HTTP 502\r\nInjected: yes" } }, query.ErrorMap)
    local f, text = sink()
    view.table({ rec(), rec{ buildNo = 64 } }, errors, { out = f, color = false })
    local lines = {}
    for line in text():gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(6, #lines)
    assert.truthy(lines[3]:find("^   64  SUCCESS"), lines[3])
    assert.are.equal("2 builds could not be read:", lines[4])
    assert.are.equal("  #62  http: HTTP 502  Injected: yes", lines[5]) -- no control character gets through
    assert.are.equal("  #63  timeout: record_info x/63: timed out", lines[6])
    -- A map made by hand, and the failed builds of an iterator, are shown the same way.
    f, text = sink()
    view.table({}, { [7] = { kind = "network", message = "reset" } }, { out = f })
    assert.are.equal("(no records)\n1 build could not be read:\n  #7  network: reset\n", text())
    local steps = { { 61, rec() }, { 62, nil, { kind = "tls", message = "bad certificate" } } }
    local i = 0
    f, text = sink()
    view.table(function()
      i = i + 1
      if steps[i] then return steps[i][1], steps[i][2], steps[i][3] end
    end, nil, { out = f })
    assert.truthy(text():find("\n   61  SUCCESS .*\n1 build could not be read:\n  #62  tls: bad certificate\n$"))
  end)
end)

describe("tostring of the lists the library returns, and view.show", function()
  local function shown(...)
    local f, text = sink()
    local args = { ... }
    local n = select("#", ...)
    args[n + 1] = { out = f, color = false }
    view.show(unpack(args, 1, n + 1))
    return text()
  end

  it("gives a filtered list's and a fetched list's tostring as the table", function()
    local list = query.filter({ rec(), rec{ buildNo = 62, status = "FAILED" } }, { status = "failed" })
    assert.are.equal(table.concat(view.table_lines(list), "\n"), tostring(list))
    assert.are.equal("(no records)", tostring(query.filter({}, {})))
    local errors = setmetatable({ [5] = { kind = "auth", message = "denied" } }, query.ErrorMap)
    assert.are.equal("#5  auth: denied", tostring(errors))
  end)

  it("shows a record, a list with its errors, a summary, an iterator, info() and plain values", function()
    local r = rec()
    assert.are.equal(table.concat(view.record_lines(r), "\n") .. "\n", shown(r))
    local errors = setmetatable({ [9] = { kind = "timeout", message = "slow" } }, query.ErrorMap)
    local text = shown({ r }, errors)
    assert.truthy(text:find("^BUILD  STATUS"), text)
    assert.truthy(text:find("\n1 build could not be read:\n  #9  timeout: slow\n$"), text)
    local summary = query.summary({ r }, errors)
    assert.are.equal(view.summary_text(summary) .. "\n", shown(summary))
    assert.truthy(shown(summary):find("\nunread:    1 build could not be read: #9 timeout\n$"))
    local steps, i = { r }, 0
    assert.truthy(shown(function() i = i + 1 return steps[i] and 61, steps[i] end):find("\n   61  SUCCESS"))
    local info = { endpoint = "https://x", auth = "aksk", timeout = 30.0, insecure = false, ids = { 1, 2 } }
    assert.are.equal(table.concat({
      "auth      aksk", "endpoint  https://x", "ids       { 1 = 1, 2 = 2 }", "insecure  false", "timeout   30",
    }, "\n") .. "\n", shown(info))
    assert.are.equal("283090\n", shown(283090.0))
    assert.are.equal("nil, fetch: invalid job_id\n", shown(nil, "fetch: invalid job_id"))
    assert.are.equal("hello\n", shown("hello"))
  end)

  it("is cb.show, and prints whole numbers of milliseconds without a decimal point", function()
    local cb = require "codeartsbuild"
    assert.are.equal(view.show, cb.show)
    local lines = view.record_lines(rec{ duration = 283090.0 })
    local duration
    for _, line in ipairs(lines) do duration = duration or line:match("^duration%s+(.*)$") end
    assert.are.equal("4m43s (283090 ms)", duration)
  end)
end)

describe("times", function()
  -- A fresh interpreter, in a given time zone, shows a record's times.
  local function in_zone(zone, code)
    local root = run.cwd()
    local out, status = run.capture(("env -i PATH=%s TZ=%s LUA_PATH=%s LUA_CPATH=%s %s -e %s"):format(
      run.quote(os.getenv("PATH")), run.quote(zone), run.quote(root .. "/lua/?.lua;;"),
      run.quote(run.build_dir(root) .. "/?.so;;"), run.lua, run.quote(code)))
    assert.are.equal(0, status, out)
    return out
  end

  it("are shown in the local zone with their offset, daylight saving time included", function()
    local code = [[
      local view = require "codeartsbuild.view"
      print(view.time("2024-05-29T13:00:05.000+00:00"))
      print(view.time("2024-01-15T13:00:05Z", { seconds = true }))
      print(view.row({ buildNo = 1, startTime = "2024-05-29T21:00:00+08:00" })[7])
      view.utc = true
      print(view.time("2024-05-29T21:00:05.000+08:00"))
    ]]
    assert.are.equal("2024-05-29 21:00 +08:00\n2024-01-15 21:00:05 +08:00\n2024-05-29 21:00 +08:00\n"
      .. "2024-05-29 13:00 +00:00\n", in_zone("Asia/Shanghai", code))
    assert.are.equal("2024-05-29 09:00 -04:00\n2024-01-15 08:00:05 -05:00\n2024-05-29 09:00 -04:00\n"
      .. "2024-05-29 13:00 +00:00\n", in_zone("America/New_York", code))
    assert.are.equal("2024-05-29 18:30 +05:30\n2024-01-15 18:30:05 +05:30\n2024-05-29 18:30 +05:30\n"
      .. "2024-05-29 13:00 +00:00\n", in_zone("Asia/Kolkata", code))
  end)

  it("leave what is not a time as it is, without control characters", function()
    assert.are.equal("soon", view.time("soon"))
    assert.are.equal("2024-13-01 x", view.time("2024-13-01\nx"))
    assert.are.equal("nil", view.time(nil))
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
      .. "emulator%); `cb`, `view`, `show` and `job` are set%.\ntry: [^\n]+\n)")
    assert.truthy(intro, out)
    assert.truthy(out:find("latest=1200", 1, true), out)
    assert.truthy(out:find("BUILD  STATUS ", 1, true), out) -- after a prompt: LuaJIT echoes no input
    assert.truthy(out:find("\n%s*1199  %u+ "), out)
    assert.truthy(out:find("\n?#61 %u+ %S+ %x%x%x%x%x%x%x "), out)
    assert.is_nil(out:find("\27", 1, true), out) -- a pipe: no colours
  end)

  it("starts without credentials too, and says how to make a client", function()
    local root = run.cwd()
    local out, status = run.capture(("printf 'print(client == nil, type(show))\\nos.exit()\\n' | env -i PATH=%s "
      .. "LUA_PATH=%s LUA_CPATH=%s %s -i %s"):format(run.quote(os.getenv("PATH")),
      run.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"), run.quote(run.build_dir(root) .. "/?.so;;"),
      run.lua, run.quote(root .. "/examples/repl.lua")))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("codeartsbuild %d+%.%d+%.%d+: no `client` yet: no region: "), out)
    assert.truthy(out:find('\nmake one: client = cb.new{ region = "cn-north-4", ak = "...", sk = "...", project_id = '
      .. '"..." }\n', 1, true), out)
    assert.truthy(out:find("true\tfunction", 1, true), out)
  end)
end)
