-- The API reference and its examples: docs/ is what LDoc makes of the sources (make docs), every
-- public function has a runnable example in examples/, and those examples run and print what the
-- emulator's data says. (quickstart.lua, failed_builds.lua and durations.lua run in
-- examples_spec.lua, as does cache.lua; repl.lua in view_spec.lua through `make repl`.)
local run = require "spec.support.run"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference

local read = run.read

local function list_files(dir)
  local out = run.capture(("cd %s && find . -type f | LC_ALL=C sort"):format(run.quote(dir)))
  local files = {}
  for name in out:gmatch("%./([^\n]+)") do files[#files + 1] = name end
  return files
end

local LUA_ENV = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
  run.quote(run.build_dir() .. "/?.so;;"))

--- Runs an example against a fresh emulator; returns its output and exit status.
local function run_example(command)
  return run.capture(("%s LUA=%s spec/support/with-emulator -- %s"):format(LUA_ENV, run.lua, command))
end

describe("docs/", function()
  it("is what `make docs` makes of the sources (run it after changing a doc comment)", function()
    assert(read("/usr/bin/ldoc"), "LDoc is not installed: `make deps` installs lua-ldoc and lua-markdown")
    local dir = run.tmpdir()
    local out, status = run.capture(("lua5.1 /usr/bin/ldoc --testing --quiet -d %s ."):format(run.quote(dir)))
    local generated = list_files(dir)
    local stale = {}
    for _, name in ipairs(generated) do
      if read(dir .. "/" .. name) ~= read("docs/" .. name) then stale[#stale + 1] = name end
    end
    local committed = {}
    for _, name in ipairs(list_files("docs")) do
      if not name:find("%.md$") then committed[#committed + 1] = name end -- the .md pages are written by hand
    end
    os.execute("rm -rf " .. run.quote(dir))
    assert.are.equal(0, status, out)
    assert.is_true(#generated > 10, out)
    assert.are.same(generated, committed)
    assert.are.same({}, stale)
  end)

  it("has a page for every module and links every example", function()
    local index = assert(read("docs/index.html"))
    for _, name in ipairs{ "codeartsbuild", "codeartsbuild.core", "codeartsbuild.batch", "codeartsbuild.query",
      "codeartsbuild.view", "codeartsbuild.cache", "codeartsbuild.cli", "codeartsbuild.nvim", "codeartsbuild.build" } do
      assert.truthy(index:find('href="modules/' .. name .. '.html"', 1, true), name)
    end
    for _, name in ipairs{ "quickstart", "client_tour", "sign", "failed_builds", "durations", "views", "cache",
      "repl", "nvim", "build_logs" } do
      assert.truthy(index:find('href="examples/' .. name .. '.lua.html"', 1, true), name)
    end
    local core = assert(read("docs/modules/codeartsbuild.core.html"))
    for _, method in ipairs{ "record_info", "submit", "submit_get", "poll", "take", "pending", "cancel", "get", "info",
      "close", "read" } do
      assert.truthy(core:find("client:" .. method .. "(", 1, true), method)
    end
  end)
end)

describe("types/codeartsbuild_core.lua", function()
  local core = require "codeartsbuild.core"
  local stubs = assert(read("types/codeartsbuild_core.lua"))

  it("lists the record's fields as the C module defines them, in its order", function()
    local record = stubs:match("---@class codeartsbuild%.Record\n(.-)\n\n")
    local listed = {}
    for name in record:gmatch("---@field ([%w_]+)") do listed[#listed + 1] = name end
    assert.are.same(core.fields, listed)
  end)

  it("has a stub for every function of the module and of a client", function()
    local missing = {}
    for name, value in pairs(core) do
      if type(value) == "function" and not stubs:find("function core." .. name .. "(", 1, true) then
        missing[#missing + 1] = name
      end
    end
    for name in pairs(core.client_methods) do
      -- codeartsbuild.batch's and codeartsbuild.build's methods are Lua, annotated where they are defined.
      local from_batch = ({ latest = true, records = true, fetch = true, history = true, steps = true, log = true,
        follow = true, wait = true })[name]
      if not from_batch and not stubs:find("function Client:" .. name .. "(", 1, true) then
        missing[#missing + 1] = "client:" .. name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
  end)
end)

describe("every public function", function()
  -- Files whose calls count as examples.
  local sources = {}
  for _, name in ipairs(list_files("examples")) do
    if name:find("%.lua$") or name:find("%.sh$") then sources[#sources + 1] = assert(read("examples/" .. name)) end
  end
  local corpus = table.concat(sources, "\n")

  local function has_call(prefixes, name)
    for _, prefix in ipairs(prefixes) do
      local pattern = prefix:gsub("%p", "%%%0") .. name .. "%s*[%({]"
      if corpus:find(pattern) then return true end
    end
    return false
  end

  local function missing(names, prefixes)
    local out = {}
    for _, name in ipairs(names) do
      if not has_call(prefixes, name) then out[#out + 1] = name end
    end
    table.sort(out)
    return out
  end

  local function functions_of(t)
    local names = {}
    for k, v in pairs(t) do
      if type(v) == "function" and type(k) == "string" and k:sub(1, 1) ~= "_" then names[#names + 1] = k end
    end
    return names
  end

  it("of the module and of a client is called in examples/", function()
    local cb = require "codeartsbuild"
    assert.are.same({}, missing(functions_of(cb), { "cb." }))
    assert.are.same({}, missing(functions_of(cb.core.client_methods), { ":" }))
    -- The C module's own functions are cb's, except the Lua layers' own: error(), their errors'
    -- constructor; format_duration(), which view.duration is; and the file-system helpers of the
    -- cache and the views.
    local layers_own = { error = true, format_duration = true, private_dir = true, dir_files = true, isatty = true }
    local core_only = {}
    for _, name in ipairs(functions_of(cb.core)) do
      local lua_layers_own = layers_own[name]
      if cb[name] == nil and not lua_layers_own then core_only[#core_only + 1] = name end
    end
    assert.are.same({}, core_only)
  end)

  it("of codeartsbuild.query, .view, .cache, .cli and .nvim is called in examples/", function()
    assert.are.same({}, missing(functions_of(require "codeartsbuild.query"), { "cb.", "query." }))
    assert.are.same({}, missing(functions_of(require "codeartsbuild.view"), { "view." }))
    assert.are.same({}, missing(functions_of(require "codeartsbuild.cache"), { "cache." }))
    -- A cache's methods (codeartsbuild.cache.open's object).
    assert.are.same({}, missing({ "get", "put", "flush" }, { "own:" }))
    -- cli.main is what bin/codeartsbuild runs; examples/cli.sh runs that.
    assert.are.same({ "main" }, functions_of(require "codeartsbuild.cli"))
    assert.truthy(corpus:find("bin/codeartsbuild", 1, true))
    -- The Neovim adapter loads only inside Neovim: its functions, read from its source.
    local nvim_names = {}
    for name in assert(read("lua/codeartsbuild/nvim.lua")):gmatch("\nfunction M%.([%w_]+)%(") do
      nvim_names[#nvim_names + 1] = name
    end
    assert.is_true(#nvim_names >= 6)
    assert.are.same({}, missing(nvim_names, { "cbn." }))
  end)
end)

describe("the examples", function()
  local records = {}
  local NEWEST = 1200

  setup(function()
    local emu = emulator.start{}
    local ok, err = pcall(function()
      local client = clients.aksk(emu)
      for n = 1151, NEWEST do assert(client:submit(JOB, n)) end
      assert(client:submit(JOB, 61))
      assert(client:submit(JOB, 59))
      for _, r in ipairs(clients.drain(client, 200)) do records[r.build_no] = assert(r.record, r.message) end
      client:close()
    end)
    emu:stop()
    assert(ok, err)
  end)

  local function short(n)
    local r = records[n]
    return ("#%d %s %s %s %s"):format(n, r.status, r.branch, r.commit:sub(1, 7), r.triggerType)
  end

  it("client_tour.lua: the default client, get, submit_get, take, cancel, history, queries, errors", function()
    local out, status = run_example(run.lua .. " examples/client_tour.lua")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("client:   http://127.0.0.1:%d+, aksk credentials from HUAWEICLOUD_SDK_AK/SK\n"), out)
    assert.truthy(out:find("regions:  12 known, cn-north-4 first\n", 1, true), out)
    assert.truthy(out:find("record:   " .. short(61), 1, true), out)
    assert.truthy(out:find("latest:   1200\nstatus:   last_build_no 1200\n", 1, true), out)
    assert.truthy(out:find("history:  %d+ entries in the last 7 days, the first page has 3\n"), out)
    assert.truthy(out:find(("take:     #59 %s, 0 held left\n"):format(records[59].status), 1, true), out)
    assert.truthy(out:find("cancel:   true, 0 pending\n", 1, true), out)
    assert.truthy(out:find("fetch:    2 records, 0 errors\n", 1, true), out)
    for n = 1198, 1200 do
      assert.truthy(out:find(("records:  #%d %s\n"):format(n, records[n].status), 1, true), out)
      assert.truthy(out:find(("history:  #%d %s\n"):format(n, records[n].status), 1, true), out)
    end
    local red = 0
    for n = 1151, NEWEST do
      local r = records[n]
      if (r.status == "FAILED" or r.status == "ABORTED") and r.branch == "master" then red = red + 1 end
    end
    assert.truthy(out:find(("where:    %d of the last 50 builds"):format(red), 1, true), out)
    assert.truthy(out:find("missing:  kind=not_found is_error=true not_found=true\n", 1, true), out)
    assert.truthy(out:find("invalid:  kind=invalid attempts=0\n", 1, true), out)
    local checks = "checks:   true 61 tour: invalid build_no: expected an integer from 1 to 2147483647, got 0\n"
    assert.truthy(out:find(checks, 1, true), out)
  end)

  it("sign.lua: a signature that HMAC-SHA256 of the string to sign confirms", function()
    local out, status = run.capture(("%s %s examples/sign.lua"):format(LUA_ENV, run.lua))
    assert.are.equal(0, status, out)
    local string_to_sign = assert(out:match("string to sign:\n  ([^\n]+)\n  ([^\n]+)\n  ([^\n]+)\n") and
      table.concat({ out:match("string to sign:\n  ([^\n]+)\n  ([^\n]+)\n  ([^\n]+)\n") }, "\n"))
    local signature = assert(out:match("Signature=(%x+)"))
    local dir = run.tmpdir()
    run.write(dir .. "/sts", string_to_sign)
    local mac = run.capture(("openssl dgst -sha256 -hmac %s %s"):format(
      run.quote("exampleSKexampleSKexampleSKexampleSK0000"), run.quote(dir .. "/sts")))
    os.execute("rm -rf " .. run.quote(dir))
    assert.are.equal(signature, mac:match("= (%x+)"))
    assert.truthy(out:find("SignedHeaders=host;x-project-id;x-sdk-date,", 1, true), out)
  end)

  it("views.lua: a line, a field list and a table of the last 10 builds", function()
    local out, status = run_example(run.lua .. " examples/views.lua")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("^" .. short(61):gsub("%p", "%%%0")), out)
    assert.truthy(out:find("\nbuildNo            61\nstatus             SUCCESS\n", 1, true), out)
    for n = 1191, NEWEST do
      local r = records[n]
      assert.truthy(out:find(("\n %d  %s +%s +%s "):format(n, r.status, r.branch:gsub("%p", "%%%0"),
        r.commit:sub(1, 7))), n)
    end
    assert.truthy(out:find("11 lines, the first: BUILD  STATUS", 1, true), out)
    assert.truthy(out:find("durations:          52.3s, 4m43s, 1h02m\n", 1, true), out)
    assert.truthy(out:find("colours on stdout:  false\n", 1, true), out)
  end)

  it("cli.sh: the command-line tool's commands and exit statuses", function()
    local out, status = run_example("sh examples/cli.sh")
    assert.are.equal(0, status, out)
    assert.truthy(out:find("== the newest build\n1200\n", 1, true), out)
    assert.truthy(out:find("\nstatus             SUCCESS\n", 1, true), out)
    assert.truthy(out:find("\nBUILD  STATUS ", 1, true), out)
    local failed = {}
    for n = NEWEST, 1151, -1 do
      if records[n].status == "FAILED" and #failed < 3 then failed[#failed + 1] = n end
    end
    local csv = out:match("as CSV\n(.-)\n==")
    local listed = {}
    for n in csv:gmatch("\n(%d+),FAILED,") do listed[#listed + 1] = tonumber(n) end
    assert.are.same(failed, listed)
    assert.truthy(out:find("\n" .. records[61].commit .. "\n", 1, true), out)
    assert.truthy(out:find("codeartsbuild: build 2147483647 of job " .. JOB .. " not found (HTTP 403", 1, true), out)
    assert.truthy(out:find("\nrequest       the service answered (HTTP 422): the credentials are accepted\n", 1,
      true), out)
    assert.truthy(out:find("== the builds of the last day, from the history API\nBUILD  RESULT ", 1, true), out)
    assert.truthy(out:find("\n 1200  RUNNING  ", 1, true), out)
    assert.truthy(out:find("== a raw GET\n1200\n", 1, true), out)
    assert.truthy(out:find("exit status 1\n", 1, true), out)
  end)

  -- #once: its host is Neovim, whatever Lua runs busted
  it("nvim.lua: the Neovim adapter's calls, in a headless Neovim #once", function()
    require("spec.support.nvim").build()
    local root = run.cwd()
    local home = run.tmpdir()
    local out, status = run.capture(("spec/support/with-emulator -- env HOME=%s timeout 120 nvim --headless -u NONE "
      .. "-i NONE --cmd %s --cmd %s -c %s"):format(run.quote(home), run.quote("set rtp^=" .. root),
      run.quote("runtime plugin/codeartsbuild.lua"), run.quote("luafile examples/nvim.lua")))
    os.execute("rm -rf " .. run.quote(home))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("client:   codeartsbuild.client{127.0.0.1:%d+, aksk, AK=EMUA%*%*%*%*}\n"), out)
    assert.truthy(out:find("busy:     true\n", 1, true), out)
    assert.truthy(out:find("record:   " .. short(61), 1, true), out)
    assert.truthy(out:find("latest:   1200\n", 1, true), out)
    local ok = {}
    for n = 1191, NEWEST do
      if records[n].status == "SUCCESS" then ok[#ok + 1] = tostring(n) end
    end
    assert.truthy(out:find(("records:  %d SUCCESS builds of 1191..1200: %s\n"):format(#ok, table.concat(ok, " ")),
      1, true), out)
    assert.truthy(out:find("complete: record list steps log wait\n", 1, true), out)
    assert.truthy(out:find("steps:    %s1  FAILED "), out)
    assert.truthy(out:find("follow:   %d+ bytes, then FAILED\n"), out)
    assert.truthy(out:find("wait:     #5 SUCCESS ", 1, true), out)
    assert.truthy(out:find("buffer:   codeartsbuild://" .. JOB .. "/61: buildNo            61", 1, true), out)
  end)
end)
