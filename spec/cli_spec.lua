-- bin/codeartsbuild, run as a user runs it: a child process with a clean environment, against the
-- emulator, its stdout, stderr and exit status read separately; the progress bar and colours in a
-- real terminal (util-linux `script` gives the child a pseudo-terminal).
local run = require "spec.support.run"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local cjson = require "cjson"

local JOB = emulator.job_ids.reference -- 1200 builds
local NEWEST = 1200

local ROOT = run.cwd()

local function read(path)
  return run.read(path) or ""
end

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

--- The shell command that runs the tool with only `env` (plus PATH, a HOME and this checkout's
-- module paths) in its environment.
local function command(args, env, home)
  local vars = {
    PATH = os.getenv("PATH"), HOME = home,
    LUA_PATH = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;",
    LUA_CPATH = run.build_dir(ROOT) .. "/?.so;;",
  }
  for k, v in pairs(env or {}) do vars[k] = v end
  local words = { "env", "-i" }
  for k, v in pairs(vars) do
    if v ~= false then words[#words + 1] = run.quote(k .. "=" .. v) end
  end
  words[#words + 1] = run.lua
  words[#words + 1] = run.quote(ROOT .. "/bin/codeartsbuild")
  for _, arg in ipairs(args) do words[#words + 1] = run.quote(arg) end
  return table.concat(words, " ")
end

--- Runs the tool; returns stdout, stderr, exit status.
local function cli(args, env)
  local dir = run.tmpdir()
  local cmd = command(args, env, dir)
  local status = tonumber((select(1, run.capture(("%s >%s 2>%s </dev/null; echo \"rc=$?\""):format(
    cmd, run.quote(dir .. "/out"), run.quote(dir .. "/err")))):match("rc=(%d+)")))
  local out, err = read(dir .. "/out"), read(dir .. "/err")
  os.execute("rm -rf " .. run.quote(dir))
  return out, err, status
end

--- Runs the tool in a pseudo-terminal (stdout and stderr on it, unless `redirect` sends stdout to a
-- file); returns what the terminal showed, the file's content, and the exit status.
local function in_terminal(args, env, redirect)
  local dir = run.tmpdir()
  local cmd = command(args, env, dir)
  if redirect then cmd = cmd .. " >" .. run.quote(dir .. "/stdout") end
  local shown = run.capture(("script -qec %s /dev/null </dev/null; echo \"rc=$?\""):format(
    run.quote(cmd .. "; echo \"cli-status=$?\"")))
  local status = tonumber(shown:match("cli%-status=(%d+)"))
  shown = shown:gsub("cli%-status=%d+%s*", ""):gsub("rc=%d+%s*$", ""):gsub("\r\n", "\n")
  local file = read(dir .. "/stdout")
  os.execute("rm -rf " .. run.quote(dir))
  return shown, file, status
end

--- The fields of one CSV line (RFC 4180: a field in quotes may hold commas and doubled quotes).
local function csv_fields(line)
  local fields, pos = {}, 1
  for _ = 1, #line + 1 do
    local value
    if line:sub(pos, pos) == '"' then
      local parts, i = {}, pos + 1
      for _ = 1, #line do
        local q = assert(line:find('"', i, true), "unterminated quote: " .. line)
        parts[#parts + 1] = line:sub(i, q - 1)
        if line:sub(q + 1, q + 1) ~= '"' then
          pos = q + 1
          break
        end
        parts[#parts + 1] = '"'
        i = q + 2
      end
      value = table.concat(parts)
    else
      local stop = line:find(",", pos, true) or #line + 1
      value = line:sub(pos, stop - 1)
      pos = stop
    end
    fields[#fields + 1] = value
    if pos > #line then break end
    assert(line:sub(pos, pos) == ",", "a quoted field not followed by a comma: " .. line)
    pos = pos + 1
    if pos > #line then
      fields[#fields + 1] = ""
      break
    end
  end
  return fields
end

local function one_line(text)
  return #lines_of(text) == 1 and text:sub(-1) == "\n"
end

describe("bin/codeartsbuild", function()
  local emu, env
  local records = {} -- build_no -> record, read with the core, one at a time

  setup(function()
    emu = emulator.start{}
    env = emulator.client_env(emu)
    local ok, err = pcall(function()
      local client = clients.aksk(emu)
      for n = 1001, NEWEST do assert(client:submit(JOB, n)) end
      assert(client:submit(JOB, 61))
      for _, r in ipairs(clients.drain(client, 400)) do records[r.build_no] = assert(r.record, r.message) end
      client:close()
    end)
    if not ok then
      emu:stop()
      error(err)
    end
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  local function requests()
    return emu:stats().requests
  end

  describe("help", function()
    it("has a --help for every command, on stdout, exit status 0", function()
      for _, name in ipairs{ "record", "list", "summary", "latest", "help" } do
        local out, err, status = cli({ name, "--help" })
        assert.are.equal(0, status, err)
        assert.are.equal("", err)
        assert.truthy(out:find("^usage: codeartsbuild " .. name), out)
        local same = cli({ "help", name })
        assert.are.equal(out, same)
      end
    end)

    it("explains the commands, the configuration, the exit statuses and why no secret is taken", function()
      local out, _, status = cli({ "--help" })
      assert.are.equal(0, status)
      for _, text in ipairs{ "record JOB N", "list JOB", "summary JOB", "latest JOB", "--region", "--endpoint",
        "--profile", "--quiet", "HUAWEICLOUD_SDK_AK", "CODEARTSBUILD_TOKEN", "NO_COLOR", "no --ak, --sk or --token",
        "exit status: 0 success, 1 a request failed" } do
        assert.truthy(out:find(text, 1, true), text)
      end
      assert.are.same(out, (cli({ "-h" })))
    end)

    it("keeps every help line within 100 columns", function()
      for _, name in ipairs{ "record", "list", "summary", "latest" } do
        for _, line in ipairs(lines_of((cli({ name, "--help" })))) do
          assert.is_true(#line <= 100, line)
        end
      end
      for _, line in ipairs(lines_of((cli({ "--help" })))) do assert.is_true(#line <= 100, line) end
    end)

    it("prints the version", function()
      local out, _, status = cli({ "--version" })
      assert.are.equal(0, status)
      assert.truthy(out:match("^codeartsbuild %d+%.%d+%.%d+ %(.+%)\n$"), out)
    end)
  end)

  describe("usage errors", function()
    local cases = {
      { {}, "no command given" },
      { { "show", JOB }, "unknown command 'show'" },
      { { "list", JOB, "--colour" }, "unknown option --colour" },
      { { "list", JOB, "-x" }, "unknown option -x" },
      { { "record", JOB }, "missing N" },
      { { "record", JOB, "0" }, "N must be a whole number from 1 to 2147483647, got '0'" },
      { { "record", JOB, "61abc" }, "got '61abc'" },
      { { "record", "cb5fa20d", "61" }, "JOB must be a job id of 32 letters or digits" },
      { { "latest", JOB, "extra" }, "unexpected argument 'extra'" },
      { { "latest", JOB, "--json" }, "latest takes no --json" },
      { { "record", JOB, "61", "--last", "5" }, "record takes no --last" },
      { { "list", JOB, "--last", "5", "--from", "1" }, "--last cannot go with --from or --to" },
      { { "list", JOB, "--from", "9", "--to", "3" }, "--from 9 is after --to 3" },
      { { "list", JOB, "--json", "--csv" }, "--json and --csv go one at a time" },
      { { "list", JOB, "--since", "yesterday" }, "--since:" },
      { { "list", JOB, "--since", "2024-05-02", "--until", "2024-05-01" }, "--since must be before --until" },
      { { "list", JOB, "--concurrency", "0" }, "--concurrency must be a whole number from 1 to 1024" },
      { { "list", JOB, "--last" }, "--last needs a value" },
      { { "list", JOB, "--last", "3", "--last", "4" }, "--last is given twice" },
      { { "list", JOB, "--json=yes" }, "--json takes no value" },
      { { "latest", JOB, "--region", "mars-1" }, "unknown region 'mars-1'" },
      { { "latest", JOB, "--endpoint", "ftp://x" }, "--endpoint must be https://host[:port]" },
      { { "help", "nothing" }, "no command 'nothing'" },
    }
    for _, case in ipairs(cases) do
      it(("exit status 2, one line, nothing sent: %s"):format(table.concat(case[1], " ")), function()
        emu:reset()
        local out, err, status = cli(case[1], env)
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.is_true(one_line(err), err)
        assert.truthy(err:find("^codeartsbuild: "), err)
        assert.truthy(err:find(case[2], 1, true), err)
        assert.truthy(err:find("(see codeartsbuild", 1, true), err)
        assert.are.equal(0, requests())
      end)
    end

    it("refuses a secret on the command line, never echoing it", function()
      emu:reset()
      for _, args in ipairs{ { "latest", JOB, "--sk=" .. emu.sk }, { "latest", JOB, "--token", emu.token },
        { "--ak", emu.ak, "latest", JOB }, { "latest", JOB, "--security-token=abcSECRETdef" } } do
        local out, err, status = cli(args, env)
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.is_true(one_line(err), err)
        assert.truthy(err:find("secrets are never taken on the command line", 1, true), err)
        for _, secret in ipairs{ emu.sk, emu.token, emu.ak, "abcSECRETdef" } do
          assert.is_nil(err:find(secret, 1, true), err)
        end
      end
      assert.are.equal(0, requests())
    end)
  end)

  describe("record", function()
    it("prints the record as an aligned field list, in the reference page's order", function()
      local out, err, status = cli({ "record", JOB, "61" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal("", err)
      local expected = records[61]
      local lines = lines_of(out)
      local column
      local seen = {}
      for _, line in ipairs(lines) do
        local name, gap = line:match("^(%a+)(%s+)")
        assert.truthy(name, line)
        column = column or #name + #gap
        assert.are.equal(column, #name + #gap, line) -- every value starts in the same column
        seen[#seen + 1] = name
      end
      assert.are.same({ "buildNo", "status", "branch" }, { seen[1], seen[2], seen[3] })
      assert.truthy(out:find("\nstatus%s+" .. expected.status .. "\n"), out)
      assert.truthy(out:find("\ncommit%s+" .. expected.commit .. "\n"), out)
      -- whole milliseconds as the JSON had them (never 283090.0)
      assert.truthy(out:find(("\nduration%%s+%%S+ %%(%.0f ms%%)\n"):format(expected.duration)), out)
      -- times in the local zone with their offset (the child's zone is UTC: no TZ)
      assert.truthy(out:find("\nstartTime%s+" .. expected.startTime:sub(1, 10) .. " " .. expected.startTime:sub(12, 19)
        .. " %+00:00\n"), out)
      assert.is_nil(out:find("\27", 1, true)) -- not a terminal: no colours
    end)

    it("--json prints one JSON object with the API's field names, buildNo first", function()
      local out, err, status = cli({ "record", JOB, "61", "--json" }, env)
      assert.are.equal(0, status, err)
      assert.is_true(one_line(out), out)
      assert.truthy(out:find('^{"buildNo":61,"status":'), out)
      local decoded = cjson.decode(out)
      local expected = records[61]
      for k, v in pairs(expected) do assert.are.equal(v, decoded[k], k) end
      for k, v in pairs(decoded) do assert.are.equal(expected[k], v, k) end
      assert.is_nil(out:find("\\/", 1, true))
    end)

    it("exit status 1 and one line naming the failure when the build does not exist", function()
      local out, err, status = cli({ "record", JOB, "2147483647" }, env)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: build 2147483647 of job " .. JOB .. ": HTTP 404: CB.00062001"), err)
    end)
  end)

  describe("latest", function()
    it("prints the newest build number, from running-status or by probing", function()
      local out, err, status = cli({ "latest", JOB }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(NEWEST .. "\n", out)
      out = cli({ "latest", emulator.job_ids.no_status }, env)
      assert.are.equal("500\n", out)
    end)
  end)

  describe("list", function()
    --- The cells of a table line under the titles' columns.
    local function cell_at(header, line, title)
      local start = assert(header:find(title, 1, true))
      local rest = line:sub(start)
      return (rest:match("^(%S+ ?%S*)"):gsub(" $", "")) -- "2024-05-29 21:00" has one space
    end

    it("prints the last 20 builds by default, in build order, aligned under the titles", function()
      local out, err, status = cli({ "list", JOB }, env)
      assert.are.equal(0, status, err)
      assert.are.equal("", err) -- not a terminal: no progress bar
      local lines = lines_of(out)
      assert.are.equal(21, #lines)
      local header = lines[1]
      assert.truthy(header:find("^BUILD  STATUS%s+BRANCH%s+COMMIT%s+TRIGGER%s+DURATION  START$"), header)
      for i = 2, #lines do
        local n = 1180 + i - 1
        local rec = records[n]
        local line = lines[i]
        assert.are.equal(tostring(n), line:match("^%s*(%d+)"), line)
        assert.are.equal(rec.status, cell_at(header, line, "STATUS"), line)
        assert.are.equal(rec.branch, cell_at(header, line, "BRANCH"), line)
        assert.are.equal(rec.commit:sub(1, 7), cell_at(header, line, "COMMIT"), line)
        assert.are.equal(rec.triggerType, cell_at(header, line, "TRIGGER"), line)
        assert.are.equal(rec.startTime:sub(1, 10) .. " " .. rec.startTime:sub(12, 16), cell_at(header, line, "START"))
        -- durations are right-aligned: they end where the title ends
        local stop = header:find("DURATION", 1, true) + #"DURATION" - 1
        assert.truthy(line:sub(1, stop):find("%S$"), line)
        assert.is_nil(line:find("%s$"), "trailing blanks: " .. line)
      end
    end)

    it("filters by status (any case), branch, trigger and start time, and says so when nothing matched", function()
      local expected = {}
      for n = 1001, NEWEST do
        local rec = records[n]
        if (rec.status == "FAILED" or rec.status == "ABORTED") and rec.branch == "main"
          and rec.startTime >= "2024-05-10" and rec.startTime < "2024-05-28" then
          expected[#expected + 1] = n
        end
      end
      assert.is_true(#expected > 1)
      local out, err, status = cli({ "list", JOB, "--last", "200", "--status", "failed,Aborted", "--branch", "main",
        "--since", "2024-05-10", "--until", "2024-05-28T00:00:00Z" }, env)
      assert.are.equal(0, status, err)
      local listed = {}
      for n in out:gmatch("\n%s*(%d+)  ") do listed[#listed + 1] = tonumber(n) end
      assert.are.same(expected, listed)

      local trigger = {}
      for n = 1191, NEWEST do
        if records[n].triggerType == "MANUAL" or records[n].triggerType == "TIMED_EXECUTION" then
          trigger[#trigger + 1] = n
        end
      end
      out = cli({ "list", JOB, "--last", "10", "--trigger", "manual", "--trigger", "TIMED_EXECUTION" }, env)
      listed = {}
      for n in out:gmatch("\n%s*(%d+)  ") do listed[#listed + 1] = tonumber(n) end
      assert.are.same(trigger, listed)

      local none, note
      none, note, status = cli({ "list", JOB, "--last", "5", "--branch", "no-such-branch" }, env)
      assert.are.equal(0, status)
      assert.are.equal("", none)
      assert.are.equal("codeartsbuild: no build of 1196..1200 matched\n", note)
      none, note = cli({ "list", JOB, "--last", "5", "--branch", "no-such-branch", "--quiet" }, env)
      assert.are.equal("", none .. note)
    end)

    it("--reverse --limit N gives the newest N that match", function()
      local expected = {}
      for n = NEWEST, 1001, -1 do
        if records[n].status == "FAILED" and #expected < 3 then expected[#expected + 1] = n end
      end
      local out, err, status = cli({ "list", JOB, "--last", "200", "--status", "FAILED", "--reverse", "--limit", "3" },
        env)
      assert.are.equal(0, status, err)
      local listed = {}
      for n in out:gmatch("\n%s*(%d+)  ") do listed[#listed + 1] = tonumber(n) end
      assert.are.same(expected, listed)
    end)

    it("--from/--to walks a range; --json prints one object per line", function()
      local out, err, status = cli({ "list", JOB, "--from", "1050", "--to", "1080", "--json" }, env)
      assert.are.equal(0, status, err)
      local lines = lines_of(out)
      assert.are.equal(31, #lines)
      for i, line in ipairs(lines) do
        local decoded = cjson.decode(line)
        local rec = records[1049 + i]
        assert.are.equal(1049 + i, decoded.buildNo)
        assert.are.equal(rec.commit, decoded.commit)
        assert.are.equal(rec.startTime, decoded.startTime)
        assert.truthy(line:find('^{"buildNo":'), line)
      end
    end)

    it("--csv prints a header row and one quoted-as-needed row per build", function()
      local out, err, status = cli({ "list", JOB, "--last", "30", "--csv" }, env)
      assert.are.equal(0, status, err)
      local lines = lines_of(out)
      assert.are.equal("buildNo,status,branch,tag,commit,triggerType,buildType,startTime,finishTime,duration,"
        .. "dailyBuildNum,repoName,userId,errMsg", lines[1])
      assert.are.equal(31, #lines)
      for i = 2, #lines do
        local fields = csv_fields(lines[i])
        local rec = records[1169 + i]
        assert.are.equal(14, #fields, lines[i])
        assert.are.equal(tostring(rec.buildNo), fields[1])
        assert.are.equal(rec.status, fields[2])
        assert.are.equal(rec.commit, fields[5])
        assert.are.equal(rec.duration and ("%.0f"):format(rec.duration) or "", fields[10])
        assert.are.equal(rec.errMsg or "", fields[14])
      end
    end)

    it("names the builds that could not be read in one line, prints the others, exit status 1", function()
      emu:faults{ { action = "status", status = 400, job_id = JOB, build_no = { 1195, 1197 } } }
      local out, err, status = cli({ "list", JOB, "--last", "10" }, env)
      emu:clear_faults()
      assert.are.equal(1, status)
      local listed = {}
      for n in out:gmatch("\n%s*(%d+)  ") do listed[#listed + 1] = tonumber(n) end
      assert.are.same({ 1191, 1192, 1193, 1194, 1196, 1198, 1199, 1200 }, listed)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: 2 builds could not be read: #1195, #1197 %(build 1195 of job "), err)
      assert.truthy(err:find("HTTP 400", 1, true), err)
    end)

    it("stops at the first failure every request would meet (authentication), exit status 1", function()
      local bad = {}
      for k, v in pairs(env) do bad[k] = v end
      bad.HUAWEICLOUD_SDK_SK = emu.sk:reverse()
      emu:reset()
      local out, err, status = cli({ "list", JOB, "--from", "1", "--to", "1000" }, bad)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("HTTP 401", 1, true), err)
      assert.truthy(err:find("check the credentials", 1, true), err)
      assert.is_true(requests() < 100, "kept going after a 401: " .. requests())
    end)
  end)

  describe("summary", function()
    local function expected_counts(first, last)
      local by_status, finished, successes = {}, 0, 0
      for n = first, last do
        local s = records[n].status
        by_status[s] = (by_status[s] or 0) + 1
        if s ~= "RUNNING" then finished = finished + 1 end
        if s == "SUCCESS" then successes = successes + 1 end
      end
      return by_status, finished, successes
    end

    it("prints the report of the last 100 builds by default", function()
      local out, err, status = cli({ "summary", JOB }, env)
      assert.are.equal(0, status, err)
      assert.truthy(out:find("^job " .. JOB .. ", builds 1101..1200\n100 builds, started "), out)
      local by_status, finished, successes = expected_counts(1101, NEWEST)
      for name, count in pairs(by_status) do assert.truthy(out:find(name .. " " .. count, 1, true), name) end
      assert.truthy(out:find(("success:   %.1f%% of %d finished"):format(100 * successes / finished, finished),
        1, true), out)
    end)

    it("--json gives the numbers, --last chooses the range", function()
      local out, err, status = cli({ "summary", JOB, "--last", "50", "--json" }, env)
      assert.are.equal(0, status, err)
      local s = cjson.decode(out)
      local by_status, finished, successes = expected_counts(1151, NEWEST)
      assert.are.equal(JOB, s.job_id)
      assert.are.equal(1151, s.from)
      assert.are.equal(50, s.total)
      assert.are.same(by_status, s.by_status)
      assert.are.equal(finished, s.finished)
      assert.is_true(math.abs(successes / finished - s.success_rate) < 1e-9)
      assert.truthy(out:find('^{"job_id":"' .. JOB .. '","from":1151,"to":1200,"total":50,'), out)
    end)
  end)

  describe("configuration", function()
    it("says which credentials are missing, exit status 1", function()
      local out, err, status = cli({ "latest", JOB }, { CODEARTSBUILD_ENDPOINT = emu.url })
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: no credentials"), err)
    end)

    it("--endpoint, and --region with the SDK's endpoint override", function()
      local base = { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk,
        HUAWEICLOUD_SDK_PROJECT_ID = emu.project_id }
      local out, err, status = cli({ "latest", JOB, "--endpoint", emu.url }, base)
      assert.are.equal(0, status, err)
      assert.are.equal(NEWEST .. "\n", out)
      base.HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_AP_SOUTHEAST_3 = emu.url
      out, err, status = cli({ "--region", "ap-southeast-3", "latest", JOB }, base)
      assert.are.equal(0, status, err)
      assert.are.equal(NEWEST .. "\n", out)
    end)

    describe("--profile", function()
      local dir, file

      before_each(function()
        dir = run.tmpdir()
        file = dir .. "/credentials"
        run.write(file, table.concat({
          "[basic]", "ak = WRONGAKWRONGAKWRONG1", "sk = wrongSKwrongSKwrongSK", "",
          "; the emulator's keys", "[emu]", "ak = " .. emu.ak, "sk=" .. emu.sk, "project_id = " .. emu.project_id,
          "", "[half]", "ak = " .. emu.ak, "",
        }, "\n"))
      end)

      after_each(function()
        os.execute("rm -rf " .. run.quote(dir))
      end)

      it("reads the named section of the credentials file, over the environment's keys", function()
        local with_file = { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_CREDENTIALS_FILE = file }
        local out, err, status = cli({ "latest", JOB }, with_file) -- [basic]: wrong keys
        assert.are.equal("", out)
        assert.are.equal(1, status)
        assert.truthy(err:find("HTTP 401", 1, true), err)
        out, err, status = cli({ "latest", JOB, "--profile", "emu" }, with_file)
        assert.are.equal(0, status, err)
        assert.are.equal(NEWEST .. "\n", out)
        with_file.HUAWEICLOUD_SDK_AK, with_file.HUAWEICLOUD_SDK_SK = "ENVAKENVAKENVAKENVAK", "envSKenvSKenvSK"
        out, err, status = cli({ "--profile=emu", "latest", JOB }, with_file)
        assert.are.equal(0, status, err)
        assert.are.equal(NEWEST .. "\n", out)
      end)

      it("finds ~/.huaweicloud/credentials by itself", function()
        local home = run.tmpdir()
        os.execute("mkdir -p " .. run.quote(home .. "/.huaweicloud") .. " && cp " .. run.quote(file) .. " "
          .. run.quote(home .. "/.huaweicloud/credentials"))
        local out, err, status = cli({ "latest", JOB, "--profile", "emu" }, { CODEARTSBUILD_ENDPOINT = emu.url,
          HOME = home })
        os.execute("rm -rf " .. run.quote(home))
        assert.are.equal(0, status, err)
        assert.are.equal(NEWEST .. "\n", out)
      end)

      it("names a missing section, file or key, never a secret: exit status 1", function()
        local with_file = { CODEARTSBUILD_ENDPOINT = emu.url, HUAWEICLOUD_SDK_CREDENTIALS_FILE = file }
        local _, err, status = cli({ "latest", JOB, "--profile", "prod" }, with_file)
        assert.are.equal(1, status)
        assert.is_true(one_line(err), err)
        assert.truthy(err:find(("--profile prod: %s has no section [prod] (its sections: basic, emu, half)")
          :format(file), 1, true), err)
        _, err, status = cli({ "latest", JOB, "--profile", "half" }, with_file)
        assert.are.equal(1, status)
        assert.truthy(err:find("section [half] of " .. file .. " has no sk", 1, true), err)
        with_file.HUAWEICLOUD_SDK_CREDENTIALS_FILE = dir .. "/missing"
        _, err, status = cli({ "latest", JOB, "--profile", "emu" }, with_file)
        assert.are.equal(1, status)
        assert.truthy(err:find("cannot read the credentials file: " .. dir .. "/missing", 1, true), err)
        for _, secret in ipairs{ emu.sk, "wrongSKwrongSKwrongSK" } do assert.is_nil(err:find(secret, 1, true)) end
      end)
    end)
  end)

  describe("in a terminal", function()
    it("draws a progress bar on stderr for more than 20 builds, and keeps stdout clean", function()
      local shown, file, status = in_terminal({ "list", JOB, "--last", "50", "--json" }, env, true)
      assert.are.equal(0, status, shown)
      assert.truthy(shown:find("[##############################] 50/50 builds 100%", 1, true), shown)
      assert.truthy(shown:find("\r[", 1, true), shown)
      assert.truthy(shown:find("\r\27[K", 1, true), shown) -- cleared at the end
      local lines = lines_of(file)
      assert.are.equal(50, #lines)
      assert.is_nil(file:find("\27", 1, true))
      assert.is_nil(file:find("builds", 1, true))
      for i, line in ipairs(lines) do assert.are.equal(1150 + i, cjson.decode(line).buildNo) end
    end)

    it("draws none with --quiet, for 20 builds or fewer, or when stderr is not a terminal", function()
      local shown, _, status = in_terminal({ "list", JOB, "--last", "50", "--quiet" }, env)
      assert.are.equal(0, status, shown)
      assert.truthy(shown:find("1151", 1, true), shown)
      assert.is_nil(shown:find("/50 builds", 1, true), shown)
      shown = in_terminal({ "list", JOB, "--last", "20" }, env)
      assert.truthy(shown:find("1181", 1, true), shown)
      assert.is_nil(shown:find("/20 builds", 1, true), shown)
      local _, err = cli({ "list", JOB, "--last", "50" }, env)
      assert.are.equal("", err)
    end)

    it("colours the status on a terminal, and not with NO_COLOR", function()
      local shown = in_terminal({ "record", JOB, "61" }, env)
      assert.truthy(shown:find("\27[32mSUCCESS\27[0m", 1, true), shown)
      local plain = {}
      for k, v in pairs(env) do plain[k] = v end
      plain.NO_COLOR = "1"
      shown = in_terminal({ "record", JOB, "61" }, plain)
      assert.truthy(shown:find("status%s+SUCCESS"), shown)
      assert.is_nil(shown:find("\27[", 1, true), shown)
    end)
  end)
end)
