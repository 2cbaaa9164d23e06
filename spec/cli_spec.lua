-- bin/codeartsbuild, run as a user runs it (spec/support/cli.lua), against the emulator; the
-- progress bar and colours in a real terminal.
local run = require "spec.support.run"
local tool = require "spec.support.cli"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"
local cjson = require "cjson"

local JOB = emulator.job_ids.reference -- 1200 builds
local NEWEST = 1200

local ROOT = run.cwd()
local cli, in_terminal = tool.run, tool.in_terminal

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
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
      for _, name in ipairs{ "record", "list", "summary", "latest", "history", "get", "config", "completion", "man",
        "help" } do
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
      for _, name in ipairs{ "record", "list", "summary", "latest", "history", "get", "config", "completion", "man" } do
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
      { { "list", JOB, "--status", "nope" }, "--status: unknown status 'nope' (known: SUCCESS, FAILED," },
      { { "summary", JOB, "--trigger", "MANUAL,push" }, "--trigger: unknown trigger 'push'" },
      { { "record", "https://console.example/cloudbuild2/job/123/detail", "61" }, "JOB must be a job id" },
      { { "record", JOB .. "\r\nX-Injected: yes", "61" }, "got '" .. JOB .. "??X-Injected: yes'" },
      { { "list", JOB, "--since", "2024-05-01\n" }, "--since: '2024-05-01?' is not a date or a time" },
      { { "list", JOB, "--branch", "main", "--since", ("9"):rep(100000) }, "--since: '999999999" },
      { { "get", "v1/job" }, "PATH must start with /" },
      { { "get", "/v1/job/x\r\nHost: evil" }, "PATH must start with / and hold no blank or control character" },
      { { "completion", "fish" }, "SHELL must be bash or zsh, got 'fish'" },
      { { "latest", JOB, "--timeout", "0" }, "--timeout must be a number of seconds above 0" },
      { { "latest", JOB, "--timeout", "1e3" }, "--timeout must be a number of seconds above 0" },
      { { "latest", JOB, "--retries", "11" }, "--retries must be a whole number from 0 to 10" },
      { { "history", JOB, "--days", "31" }, "--days must be a whole number from 1 to 30" },
      { { "history", JOB, "--last", "5" }, "history takes no --last" },
      { { "config", JOB, JOB }, "unexpected argument" },
    }
    setup(function() emu:reset() end)

    for _, case in ipairs(cases) do
      it(("exit status 2, one line: %s"):format(table.concat(case[1], " "):gsub("%c", "?"):sub(1, 100)), function()
        local out, err, status = cli(case[1], env)
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.is_true(one_line(err), err)
        assert.truthy(err:find("^codeartsbuild: "), err)
        assert.truthy(err:find(case[2], 1, true), err)
        assert.truthy(err:find("(see codeartsbuild", 1, true), err)
      end)
    end

    it("sent nothing for any of them", function()
      assert.are.equal(0, requests())
    end)

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
      local start = expected.startTime:sub(1, 10) .. " " .. expected.startTime:sub(12, 19) .. " +00:00"
      assert.truthy(out:find("\nstartTime%s+" .. start:gsub("%p", "%%%0") .. "\n"), out)
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

    it("exit status 1 and one line saying so when the job does not exist", function()
      local missing = ("9"):rep(32)
      local out, err, status = cli({ "record", missing, "1" }, env)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: job " .. missing .. " not found %(HTTP 422: DEVCB.00031006"), err)
    end)

    it("exit status 1 and one line naming the failure when the build does not exist", function()
      local out, err, status = cli({ "record", JOB, "2147483647" }, env)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: build 2147483647 of job " .. JOB .. " not found %(HTTP 403: CB.00031059"),
        err)
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

    it("--csv keeps a cell a spreadsheet would run as a formula from being one", function()
      emu:faults{ { action = "field", field = "result.branch", json = '"=HYPERLINK(\\"http://evil.example\\")"',
        job_id = JOB, build_no = 1199 }, { action = "field", field = "result.errMsg", json = '"-1+2"', job_id = JOB,
        build_no = 1198 } }
      local out, err, status = cli({ "list", JOB, "--from", "1198", "--to", "1199", "--csv", "--no-cache" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal("'-1+2", csv_fields(lines_of(out)[2])[14])
      assert.are.equal("'=HYPERLINK(\"http://evil.example\")", csv_fields(lines_of(out)[3])[3])
      emu:clear_faults()
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

  describe("JOB", function()
    it("is also the console's URL of the build task", function()
      local by_id = cli({ "record", JOB, "61", "--json" }, env)
      for _, url in ipairs{
        "https://devcloud.cn-north-4.huaweicloud.com/cloudbuild2/project/" .. emu.project_id .. "/job/" .. JOB
          .. "/detail",
        "https://devcloud.cn-north-4.huaweicloud.com/cloudbuild2/#/job/" .. JOB,
        "HTTPS://console.example/build/" .. JOB .. "?tab=history",
      } do
        local out, err, status = cli({ "record", url, "61", "--json" }, env)
        assert.are.equal(0, status, err)
        assert.are.equal(by_id, out)
      end
      local out, err, status = cli({ "list", "https://x.example/job/" .. JOB .. "/detail", "--last", "2" }, env)
      assert.are.equal(0, status, err)
      assert.truthy(out:find("\n 1199  .*\n 1200  "), out)
    end)
  end)

  describe("--since and --until", function()
    local function listed(out)
      local numbers = {}
      for n in out:gmatch("\n%s*(%d+)  ") do numbers[#numbers + 1] = tonumber(n) end
      return numbers
    end

    local function epoch(iso) return require("codeartsbuild.query").time(iso) end

    it("decide the range: back from the newest build until builds start before --since", function()
      local since = records[1170].startTime -- an ISO time with its offset
      local expected = {}
      for n = 1001, NEWEST do
        if epoch(records[n].startTime) >= epoch(since) then expected[#expected + 1] = n end
      end
      emu:reset()
      local out, err, status = cli({ "list", JOB, "--since", since, "--no-cache" }, env)
      assert.are.equal(0, status, err)
      assert.are.same(expected, listed(out))
      -- It stopped soon after the first build that started before --since: the newest build,
      -- the builds it lists, and at most a window (16) past them.
      assert.is_true(requests() <= 1 + #expected + 1 + 16, "requests: " .. requests())
      out, err, status = cli({ "summary", JOB, "--since", since, "--json" }, env)
      assert.are.equal(0, status, err)
      local summary = cjson.decode(out)
      assert.are.equal(#expected, summary.total)
      assert.are.equal(expected[1], summary.from)
      assert.are.equal(NEWEST, summary.to)
      -- --until alone: the last 20 builds that started before it.
      local before = records[1150].startTime
      expected = {}
      for n = NEWEST, 1001, -1 do
        if #expected < 20 and epoch(records[n].startTime) < epoch(before) then table.insert(expected, 1, n) end
      end
      out, err, status = cli({ "list", JOB, "--until", before }, env)
      assert.are.equal(0, status, err)
      assert.are.same(expected, listed(out))
      -- With --reverse --limit: the newest N, newest first.
      out = cli({ "list", JOB, "--since", since, "--reverse", "--limit", "3" }, env)
      assert.are.same({ NEWEST, NEWEST - 1, NEWEST - 2 }, listed(out))
    end)

    it("read a date without an offset in the local time zone (with --utc: in UTC)", function()
      local function count(zone, extra)
        local vars = { TZ = zone }
        for k, v in pairs(env) do vars[k] = v end
        local args = { "summary", JOB, "--since", "2024-05-29", "--json" }
        for _, a in ipairs(extra or {}) do args[#args + 1] = a end
        local out, err, status = cli(args, vars)
        assert.are.equal(0, status, err)
        return cjson.decode(out).total
      end
      local function expected(since)
        local n = 0
        for b = 1001, NEWEST do
          if epoch(records[b].startTime) >= epoch(since) then n = n + 1 end
        end
        return n
      end
      assert.are.equal(expected("2024-05-29T00:00:00+08:00"), count("Asia/Shanghai"))
      assert.are.equal(expected("2024-05-29T00:00:00-04:00"), count("America/New_York"))
      assert.are.equal(expected("2024-05-29T00:00:00Z"), count("Asia/Shanghai", { "--utc" }))
      assert.are_not.equal(count("Asia/Shanghai"), count("America/New_York"))
    end)
  end)

  describe("--to", function()
    it("stops at the newest build, saying so, without asking for builds that do not exist", function()
      emu:reset()
      local out, err, status = cli({ "list", JOB, "--from", "1195", "--to", "3000", "--no-cache" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(7, #lines_of(out))
      assert.are.equal("codeartsbuild: --to 3000 is past the newest build of " .. JOB .. ": up to 1200\n", err)
      assert.are.equal(1 + 6, requests())
      local _, quiet = cli({ "list", JOB, "--from", "1195", "--to", "3000", "-q" }, env)
      assert.are.equal("", quiet)
    end)
  end)

  describe("times", function()
    it("are shown in the local time zone with their offset, or in UTC with --utc", function()
      local vars = { TZ = "Asia/Shanghai" }
      for k, v in pairs(env) do vars[k] = v end
      local query = require "codeartsbuild.query"
      local start = query.time(records[1200].startTime)
      local out = cli({ "list", JOB, "--last", "1" }, vars)
      assert.truthy(out:find(os.date("!%Y-%m-%d %H:%M", start + 8 * 3600) .. " +08:00\n", 1, true), out)
      out = cli({ "list", JOB, "--last", "1", "--utc" }, vars)
      assert.truthy(out:find(os.date("!%Y-%m-%d %H:%M", start) .. " +00:00\n", 1, true), out)
      out = cli({ "record", JOB, "1200" }, vars)
      local shown = os.date("!%Y-%m-%d %H:%M:%S", start + 8 * 3600) .. " +08:00"
      assert.truthy(out:find("\nstartTime +" .. shown:gsub("%p", "%%%0") .. "\n"), out)
      -- JSON and CSV keep the API's own strings.
      out = cli({ "list", JOB, "--last", "1", "--json" }, vars)
      assert.are.equal(records[1200].startTime, cjson.decode(out).startTime)
    end)
  end)

  describe("--verbose", function()
    it("writes one line per request on stderr: method, path, status, attempts, time, request id", function()
      emu:reset()
      local out, err, status = cli({ "list", JOB, "--last", "3", "--verbose", "--no-cache" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(4, #lines_of(out))
      local lines = lines_of(err)
      assert.are.equal(4, #lines, err) -- running-status and three builds
      assert.are.equal(4, requests())
      assert.truthy(lines[1]:find("^codeartsbuild: GET /v1/job/" .. JOB .. "/running%-status 200, 1 attempt, %d+ ms, "
        .. "request id %x+$"), lines[1])
      for i = 2, 4 do
        assert.truthy(lines[i]:find("^codeartsbuild: GET /v1/record/" .. JOB .. "/1[12]%d%d/record%-info 200, "
          .. "1 attempt, %d+ ms, request id %x+$"), lines[i])
      end
      for _, secret in ipairs{ emu.ak, emu.sk, emu.project_id } do assert.is_nil(err:find(secret, 1, true)) end
      -- A failed request says how it ended; with the cache, the cache's line ends the report.
      out, err = cli({ "record", JOB, "2147483647", "-v" }, env)
      assert.are.equal("", out)
      assert.truthy(err:find("record%-info 403, 1 attempt, %d+ ms, request id %x+\n"), err)
      assert.truthy(err:find("\ncodeartsbuild: cache .+: 0 builds read from it, 0 kept\n"), err)
    end)
  end)

  describe("--timeout and --retries", function()
    it("give an attempt that long and make that many more attempts", function()
      emu:reset()
      emu:faults{ { action = "delay", seconds = 5, path_contains = "/61/record-info" } }
      local out, err, status = cli({ "record", JOB, "61", "--timeout", "0.3", "--retries", "0" }, env)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.truthy(err:find("^codeartsbuild: build 61 of job " .. JOB .. ": "), err)
      assert.truthy(err:find("(--timeout gives an attempt longer; --retries more attempts)", 1, true), err)
      assert.are.equal(1, requests())
      emu:reset()
      emu:faults{ { action = "delay", seconds = 5, path_contains = "/61/record-info" } }
      out, err, status = cli({ "record", JOB, "61", "--timeout", "0.3", "--retries", "2" }, env)
      assert.are.equal("", out)
      assert.is_true(one_line(err), err)
      assert.are.equal(1, status)
      assert.are.equal(3, requests())
      emu:clear_faults()
    end)
  end)

  describe("config", function()
    it("shows what would be used, never a secret, and checks it with one request", function()
      emu:reset()
      local out, err, status = cli({ "config" }, env)
      assert.are.equal(0, status, err)
      local endpoint = emu.url:gsub("%p", "%%%0")
      assert.truthy(out:find("^endpoint      " .. endpoint .. " %(from CODEARTSBUILD_ENDPOINT%)\n"), out)
      assert.truthy(out:find("\napi           auto, in use: v1\n", 1, true), out)
      assert.truthy(out:find("\ncredentials   AK/SK, from HUAWEICLOUD_SDK_AK/SK\n", 1, true), out)
      assert.truthy(out:find("\nproject id    " .. emu.project_id .. "\n", 1, true), out)
      assert.truthy(out:find("\ncache         /.-/%.cache/codeartsbuild\n"), out)
      assert.truthy(out:find("\nrequest       the service answered (HTTP 422): the credentials are accepted\n",
        1, true), out)
      assert.are.equal(1, requests())
      out = cli({ "config", JOB, "--no-cache" }, env)
      assert.truthy(out:find("\ncache         off (--no-cache)\n", 1, true), out)
      assert.truthy(out:find("\nrequest       the newest build of " .. JOB .. " is 1200\n", 1, true), out)
      local bad = {}
      for k, v in pairs(env) do bad[k] = v end
      bad.HUAWEICLOUD_SDK_SK = emu.sk:reverse()
      out, err, status = cli({ "config" }, bad)
      assert.are.equal(1, status)
      assert.truthy(out:find("\nrequest       .*HTTP 401"), out)
      assert.truthy(err:find("check the credentials", 1, true), err)
      for _, secret in ipairs{ emu.sk, emu.sk:reverse(), emu.ak } do
        assert.is_nil((out .. err):find(secret, 1, true))
      end
    end)
  end)

  describe("history", function()
    it("prints the history API's builds, newest first; --json as the API sent them", function()
      local out, err, status = cli({ "history", JOB, "--days", "2", "--utc" }, env)
      assert.are.equal(0, status, err)
      local lines = lines_of(out)
      assert.truthy(lines[1]:find("^BUILD  RESULT   START +END$"), lines[1])
      assert.truthy(lines[2]:find("^ 1200  RUNNING  %d%d%d%d%-%d%d%-%d%d %d%d:%d%d %+00:00  %-$"), lines[2])
      assert.truthy(lines[3]:find("^ 1199  " .. records[1199].status), lines[3])
      out = cli({ "history", JOB, "--days", "2", "--json", "--limit", "2" }, env)
      lines = lines_of(out)
      assert.are.equal(2, #lines)
      assert.are.equal(1199, cjson.decode(lines[2]).build_number)
      assert.are.equal(records[1199].startTime, cjson.decode(lines[2]).start_time)
    end)
  end)

  describe("get", function()
    it("prints the JSON a signed GET answered; a path's query goes as the query", function()
      local out, err, status = cli({ "get", "/v1/job/" .. JOB .. "/running-status" }, env)
      assert.are.equal(0, status, err)
      assert.is_true(one_line(out), out)
      assert.are.equal("1200", cjson.decode(out).result.last_build_no)
      out, err, status = cli({ "get", "/v3/jobs/" .. JOB .. "/history?offset=0&limit=2&interval=7" }, env)
      assert.are.equal(0, status, err)
      assert.are.equal(2, #cjson.decode(out).history_records)
      out, err, status = cli({ "get", "/v3/jobs/" .. JOB .. "/1/nowhere" }, env)
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.truthy(err:find("^codeartsbuild: GET /v3/jobs/"), err)
    end)
  end)

  describe("in its own words", function()
    it("says what to set or give, in the tool's options, never the library's", function()
      local _, err = cli({ "latest", JOB }, { CODEARTSBUILD_ENDPOINT = emu.url })
      assert.truthy(err:find("^codeartsbuild: no credentials: set CODEARTSBUILD_TOKEN, "), err)
      assert.truthy(err:find("or give --profile NAME", 1, true), err)
      _, err = cli({ "latest", JOB }, { HUAWEICLOUD_SDK_AK = emu.ak, HUAWEICLOUD_SDK_SK = emu.sk })
      assert.truthy(err:find("^codeartsbuild: no endpoint: give %-%-region or %-%-endpoint"), err)
      _, err = cli({ "latest", JOB, "--endpoint", "http://build.example.com" }, env)
      assert.truthy(err:find("http:// is used only for a loopback host", 1, true), err)
      local all = table.concat({ (select(2, cli({ "latest", JOB }, { CODEARTSBUILD_ENDPOINT = emu.url }))),
        (select(2, cli({ "latest", JOB }, {}))), err }, "\n")
      for _, text in ipairs{ "region=", "endpoint=", "token=", "allow_http", "pass " } do
        assert.is_nil(all:find(text, 1, true), text .. " in: " .. all)
      end
    end)
  end)

  describe("the cache", function()
    it("makes a second `list JOB --last 1000` ask the service only for the builds that had not ended", function()
      local shared = run.tmpdir()
      local vars = { XDG_CACHE_HOME = shared }
      for k, v in pairs(env) do vars[k] = v end
      emu:reset()
      local first, err, status = cli({ "list", JOB, "--last", "1000" }, vars)
      assert.are.equal(0, status, err)
      assert.are.equal(1 + 1000, requests()) -- the newest build, then each build
      emu:reset()
      local second
      second, err, status = cli({ "list", JOB, "--last", "1000" }, vars)
      assert.are.equal(0, status, err)
      assert.are.equal(first, second)
      assert.are.equal(1 + 1, requests()) -- the newest build, and build 1200 (RUNNING)
      emu:reset()
      cli({ "record", JOB, "1100" }, vars)
      assert.are.equal(0, requests())
      cli({ "list", JOB, "--last", "100", "--no-cache" }, vars)
      assert.are.equal(1 + 100, requests())
      os.execute("rm -rf " .. run.quote(shared))
    end)

    it("is passed over when its directory cannot be used, which --verbose says", function()
      local dir = run.tmpdir()
      run.write(dir .. "/file", "not a directory")
      local vars = { XDG_CACHE_HOME = dir .. "/file" }
      for k, v in pairs(env) do vars[k] = v end
      local out, err, status = cli({ "list", JOB, "--last", "2" }, vars)
      assert.are.equal(0, status, err)
      assert.are.equal("", err)
      assert.are.equal(3, #lines_of(out))
      out, err = cli({ "latest", JOB, "-v" }, vars)
      assert.are.equal("1200\n", out)
      assert.truthy(err:find("codeartsbuild: no cache: cannot use " .. dir .. "/file/codeartsbuild as the cache", 1,
        true), err)
      os.execute("rm -rf " .. run.quote(dir))
    end)
  end)

  describe("completion and man page", function()
    local generated = {
      { { "completion", "bash" }, "share/bash-completion/completions/codeartsbuild" },
      { { "completion", "zsh" }, "share/zsh/site-functions/_codeartsbuild" },
      { { "man" }, "share/man/man1/codeartsbuild.1" },
    }

    it("are what the tool makes of its command table (run `make docs` after changing it)", function()
      for _, case in ipairs(generated) do
        local out, err, status = cli(case[1])
        assert.are.equal(0, status, err)
        assert.are.equal(out, run.read(case[2]), case[2] .. " is not what `codeartsbuild " .. table.concat(case[1], " ")
          .. "` makes: run `make docs`")
      end
    end)

    --- The options each command's --help names (read once).
    local help_options
    local function options_in_help()
      if help_options then return help_options end
      local by_command = {}
      for _, name in ipairs{ "record", "list", "summary", "latest", "history", "get", "config" } do
        local help = cli({ name, "--help" })
        local set = {}
        for option in help:gmatch("\n  %-%-([%w%-]+)") do set[#set + 1] = option end
        by_command[name] = set
      end
      help_options = by_command
      return by_command
    end

    it("complete in bash: commands, each command's options, and the values of --status, --trigger, --region", function()
      --- What bash completes for each line (one bash for all of them).
      local function complete_all(lines)
        local script = { "source " .. run.quote(ROOT .. "/" .. generated[1][2]) }
        for _, line in ipairs(lines) do
          script[#script + 1] = ([=[
            read -ra COMP_WORDS <<<%s
            [[ %s == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
            _codeartsbuild
            echo "${COMPREPLY[*]}"]=]):format(run.quote(line), run.quote(line))
        end
        local out, status = run.capture("bash -c " .. run.quote(table.concat(script, "\n")))
        assert.are.equal(0, status, out)
        return lines_of(out)
      end
      local cases = {
        "codeartsbuild ", "codeartsbuild su", "codeartsbuild list " .. JOB .. " --status F",
        "codeartsbuild -q summary J --trigger P", "codeartsbuild --region cn-n", "codeartsbuild completion b",
        "codeartsbuild list J --last ",
      }
      local names = {}
      for name in pairs(options_in_help()) do
        names[#names + 1] = name
        cases[#cases + 1] = "codeartsbuild " .. name .. " J --"
      end
      local results = complete_all(cases)
      local function complete(line)
        for i, case in ipairs(cases) do
          if case == line then return results[i] end
        end
      end
      local first = complete("codeartsbuild ")
      assert.truthy(first:find("^record list summary latest steps log wait history get config completion man help "),
        first)
      assert.are.equal("summary", complete("codeartsbuild su"))
      assert.are.equal("FAILED FAILURE", complete("codeartsbuild list " .. JOB .. " --status F"))
      assert.are.equal("PIPELINE_TRIGGER", complete("codeartsbuild -q summary J --trigger P"))
      assert.are.equal("cn-north-4 cn-north-1", complete("codeartsbuild --region cn-n"))
      assert.are.equal("bash", complete("codeartsbuild completion b"))
      assert.are.equal("", complete("codeartsbuild list J --last "))
      for _, name in ipairs(names) do
        local options = options_in_help()[name]
        local offered = " " .. complete("codeartsbuild " .. name .. " J --") .. " "
        for _, option in ipairs(options) do
          assert.truthy(offered:find(" --" .. option .. " ", 1, true), name .. " --" .. option .. ":" .. offered)
        end
      end
    end)

    it("complete in zsh: the specs it hands to _arguments and _describe", function()
      -- zsh's completion functions, replaced by ones that print what they were given.
      local function specs(words, state)
        local script = ([=[
          _arguments() { if [[ $1 == -C ]]; then state=%s; else print -rl -- "$@"; fi }
          _describe() { print -rl -- "${(@P)4}"; }
          words=(%s)
          source %s
        ]=]):format(state, words, run.quote(ROOT .. "/" .. generated[2][2]))
        local out, status = run.capture("zsh -f -c " .. run.quote(script))
        assert.are.equal(0, status, out)
        return out
      end
      local commands = specs("codeartsbuild", "command")
      assert.truthy(commands:find("^record:build N of job JOB, one field a line\n"), commands)
      assert.truthy(commands:find("\nlist:one line per build\\: the last 20", 1, true), commands)
      local list = specs("list " .. JOB .. " --status", "argument")
      assert.truthy(list:find("\n%*%-%-status%[the status, any case[^\n]*%]:s:%(SUCCESS FAILED ABORTED RUNNING"), list)
      assert.truthy(list:find("\n%-%-reverse%[newest first%]\n"), list)
      assert.truthy(list:find("\n1:job:\n"), list)
      local help = specs("help", "argument")
      assert.truthy(help:find("\n:1:command:%(record list summary "), help)
      local out, status = run.capture("zsh -n " .. run.quote(generated[2][2]))
      assert.are.equal(0, status, out)
    end)

    it("has a man page that groff reads without a warning, with every command, option and variable", function()
      local out, status = run.capture("groff -man -ww -z " .. run.quote(generated[3][2]))
      assert.are.equal(0, status, out)
      assert.are.equal("", out)
      local text = run.capture("MANWIDTH=100 man -l " .. run.quote(generated[3][2]) .. " | col -b")
      for _, name in ipairs{ "record", "list", "summary", "latest", "history", "get", "config", "completion", "man" } do
        assert.truthy(text:find("codeartsbuild " .. name .. " ", 1, true), name)
      end
      for _, options in pairs(options_in_help()) do
        for _, option in ipairs(options) do assert.truthy(text:find("--" .. option, 1, true), option) end
      end
      for _, variable in ipairs(require("codeartsbuild").environment) do
        assert.truthy(text:find(variable.name, 1, true), variable.name)
      end
      for _, variable in ipairs{ "XDG_CACHE_HOME", "NO_COLOR", "TZ" } do assert.truthy(text:find(variable, 1, true)) end
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
