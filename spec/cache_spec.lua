-- codeartsbuild.cache: the records of finished builds on disk, through a client (`cache =`) against
-- the emulator, whose request counts say what was asked; corrupt, foreign and oversized files;
-- directories it must refuse; the size bound; and two processes sharing one cache.
local cb = require "codeartsbuild"
local cache = require "codeartsbuild.cache"
local cjson = require "cjson"
local run = require "spec.support.run"
local emulator = require "spec.support.emulator"
local clients = require "spec.support.clients"

local JOB = emulator.job_ids.reference -- 1200 builds; 1200 is RUNNING, the others have ended

--- The files of a directory (names), sorted.
local function files_of(dir)
  local out = run.capture(("ls -A %s"):format(run.quote(dir)))
  local names = {}
  for name in out:gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end

describe("the cache of finished builds", function()
  local emu, dir

  setup(function()
    emu = emulator.start{}
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    dir = run.tmpdir() .. "/cache"
  end)

  after_each(function()
    os.execute("rm -rf " .. run.quote((dir:gsub("/cache$", ""))))
  end)

  local function client(extra)
    local options = clients.aksk_options(emu, extra)
    if options.cache == nil then options.cache = dir end
    return assert(cb.new(options))
  end

  local function requests()
    return emu:stats().requests
  end

  --- The block file of the reference job's builds 1001..1200.
  local function block_file()
    for _, name in ipairs(files_of(dir)) do
      if name:find(JOB .. "_1.json", 1, true) then return dir .. "/" .. name end
    end
  end

  it("is opt-in: without `cache`, a client keeps nothing and the core never sees the option", function()
    local c = clients.aksk(emu)
    assert.is_nil(cache.of(c))
    c:close()
    c = client()
    assert.truthy(cache.of(c))
    assert.are.equal(dir, cache.of(c).dir)
    c:close()
    assert.has_error(function() cb.new(clients.aksk_options(emu, { cache = 42 })) end)
    c = assert(cb.new(clients.aksk_options(emu, { cache = false })))
    assert.is_nil(cache.of(c))
    c:close()
  end)

  it("asks the service the second time only for the builds that had not ended", function()
    local c = client()
    local first = assert(c:fetch(JOB, { from = 1101, to = 1200 }))
    assert.are.equal(100, #first)
    assert.are.equal(100, requests())
    c:close()
    emu:reset()
    c = client() -- a new client: what it finds is on disk
    local second = assert(c:fetch(JOB, { from = 1101, to = 1200 }))
    assert.are.equal(100, #second)
    assert.are.equal(1, requests()) -- build 1200, still RUNNING
    assert.are.same({ hits = 99, misses = 1, stored = 0, rejected = 0 }, cache.of(c).stats)
    -- The same records as the service gives, as the core makes them: integers, the snake_case
    -- names, the one-line tostring.
    for i = 1, 100 do
      local a, b = first[i], second[i]
      for k, v in pairs(a) do assert.are.equal(v, b[k], k) end
      for k, v in pairs(b) do assert.are.equal(a[k], v, k) end
      assert.are.equal(tostring(a), tostring(b))
      assert.are.equal(a.buildNo, b.build_no)
      if math.type then assert.are.equal("integer", math.type(b.buildNo)) end
    end
    -- records() reads it too, in order, with where and limit as ever.
    emu:reset()
    local seen = {}
    for n, rec in assert(c:records(JOB, { from = 1181, to = 1199, where = { status = "success" }, limit = 5 })) do
      seen[#seen + 1] = n
      assert.are.equal("SUCCESS", rec.status)
    end
    assert.are.equal(5, #seen)
    assert.are.equal(0, requests())
    c:close()
  end)

  it("never keeps a build that has not ended, nor gives a copy that changes the cache", function()
    local c = client()
    assert(c:fetch(JOB, { 1199, 1200 }))
    local doc = cjson.decode((assert(run.read(block_file()))))
    assert.truthy(doc.records["1199"])
    assert.is_nil(doc.records["1200"])
    local got = cache.of(c):get(c, JOB, 1199)
    got.status = "CHANGED"
    assert.are.equal("SUCCESS", cache.of(c):get(c, JOB, 1199).status)
    assert.is_false(cache.of(c):put(c, JOB, { buildNo = 1200, status = "RUNNING" }))
    assert.is_false(cache.of(c):put(c, JOB, { buildNo = 5, status = "SUCCESS" })) -- no finishTime
    c:close()
  end)

  it("ignores and replaces a corrupt file, a foreign one, and entries that are not finished records", function()
    local c = client()
    assert(c:fetch(JOB, { from = 1191, to = 1199 }))
    c:close()
    local file = block_file()
    local good = assert(run.read(file))

    -- Not JSON at all.
    run.write(file, good:sub(1, math.floor(#good / 2)))
    emu:reset()
    c = client()
    assert.are.equal(9, #assert(c:fetch(JOB, { from = 1191, to = 1199 })))
    assert.are.equal(9, requests())
    assert.is_true(cache.of(c).stats.rejected >= 1)
    c:close()
    assert.are.equal(cjson.decode(good).records["1191"].commit, cjson.decode(run.read(file)).records["1191"].commit)

    -- Another endpoint's file under this name, and entries that lie about themselves.
    local doc = cjson.decode(good)
    doc.endpoint = "https://elsewhere.example"
    run.write(file, cjson.encode(doc))
    emu:reset()
    c = client()
    assert(c:fetch(JOB, { 1191 }))
    assert.are.equal(1, requests())
    c:close()
    doc = cjson.decode(good)
    doc.records["1192"].buildNo = 1193            -- another build's record
    doc.records["1193"].status = "RUNNING"        -- a build that has not ended
    doc.records["1194"].status = { "SUCCESS" }    -- not a string
    doc.records["1195"].finishTime = nil          -- no end
    doc.records["99999"] = doc.records["1196"]    -- not in this file's block
    doc.records["1197"].codeciJobId = ("f"):rep(32) -- another job's
    run.write(file, cjson.encode(doc))
    emu:reset()
    c = client()
    local recs = assert(c:fetch(JOB, { from = 1191, to = 1199 }))
    assert.are.equal(9, #recs)
    assert.are.equal(5, requests()) -- 1192 to 1195 and 1197; 1191, 1196, 1198 and 1199 were good
    for i, rec in ipairs(recs) do assert.are.equal(1190 + i, rec.buildNo) end
    c:close()
    -- Replaced: the file is whole and true again.
    local replaced = cjson.decode(run.read(file))
    assert.are.equal(cache.FORMAT, replaced.format)
    for n = 1191, 1199 do assert.are.equal(n, replaced.records[tostring(n)].buildNo) end
    assert.is_nil(replaced.records["99999"])
  end)

  it("does not read a file larger than any it writes", function()
    assert(os.execute("mkdir -p " .. run.quote(dir)))
    local c = client()
    assert(c:fetch(JOB, { 1191 }))
    c:close()
    local file = block_file()
    local f = assert(io.open(file, "wb"))
    local chunk = (" "):rep(1024 * 1024)
    for _ = 1, 9 do f:write(chunk) end
    f:close()
    emu:reset()
    c = client()
    assert(c:fetch(JOB, { 1191 }))
    assert.are.equal(1, requests())
    c:close()
    assert.is_true(#run.read(file) < 100000)
  end)

  it("holds records only: no credential, header or token", function()
    local c = client()
    assert(c:fetch(JOB, { from = 1151, to = 1200 }))
    c:close()
    local tc = assert(cb.new{ endpoint = emu.url, token = emu.token, project_id = emu.project_id, cache = dir })
    assert(tc:fetch(JOB, { 61 }))
    tc:close()
    for _, name in ipairs(files_of(dir)) do
      local text = assert(run.read(dir .. "/" .. name))
      for _, secret in ipairs{ emu.ak, emu.sk, emu.token, emu.security_token, "X-Auth-Token", "Authorization" } do
        assert.is_nil(text:find(secret, 1, true), name)
      end
    end
  end)

  it("rests on the core's file helpers: private_dir, dir_files, isatty", function()
    local core = require "codeartsbuild.core"
    local base = run.tmpdir()
    assert.is_true(core.private_dir(base .. "/a/b/c")) -- missing parents made too
    assert.are.equal("700", (run.capture("stat -c %a " .. run.quote(base .. "/a/b")):match("%d+")))
    assert(os.execute(("cd %s && printf 12345 > five && ln -s five link && mkdir sub && mkfifo fifo")
      :format(run.quote(base .. "/a"))))
    local files = assert(core.dir_files(base .. "/a"))
    assert.are.equal(1, #files) -- not the link, the directories or the FIFO
    assert.are.equal("five", files[1].name)
    assert.are.equal(5, files[1].size)
    assert.is_true(math.abs(files[1].time - os.time()) < 3600)
    local none, message = core.dir_files(base .. "/missing")
    assert.is_nil(none)
    assert.truthy(message:find("cannot read " .. base .. "/missing", 1, true), message)
    none, message = core.private_dir("")
    assert.is_nil(none)
    assert.truthy(message:find("not a usable directory name", 1, true), message)
    -- A child whose standard output is a pipe (run.lua_code reads it).
    local out = run.lua_code('io.write(tostring(require("codeartsbuild.core").isatty(1)))')
    assert.are.equal("false", out:match("(%a+)%s*$"))
    os.execute("rm -rf " .. run.quote(base))
  end)

  it("refuses a directory that is a symbolic link, a file, or another user's", function()
    local base = run.tmpdir()
    assert(os.execute(("mkdir %s/real && ln -s %s/real %s/link && touch %s/file"):format(run.quote(base),
      run.quote(base), run.quote(base), run.quote(base))))
    for _, path in ipairs{ base .. "/link", base .. "/file", base .. "/file/below" } do
      local c, message, err = cb.new(clients.aksk_options(emu, { cache = path }))
      assert.is_nil(c)
      assert.are.equal("config", err.kind)
      assert.truthy(message:find("cannot use " .. path .. " as the cache", 1, true), message)
    end
    -- Another user's directory (as root: given away; otherwise: one this user may not write).
    local other = base .. "/other"
    assert(os.execute("mkdir " .. run.quote(other)))
    local as_root = run.capture("id -u"):match("^0") ~= nil
    os.execute((as_root and "chown nobody %s" or "chmod 500 %s"):format(run.quote(other)))
    local c, message = cb.new(clients.aksk_options(emu, { cache = other }))
    assert.is_nil(c, "a directory of another user was taken")
    assert.truthy(message:find("that this user owns and may write", 1, true), message)
    -- A new directory is made private (0700).
    c = client()
    c:close()
    assert.are.equal("700", (run.capture("stat -c %a " .. run.quote(dir)):match("%d+")))
    os.execute("chmod 700 " .. run.quote(other) .. "; rm -rf " .. run.quote(base))
  end)

  it("stays under its size bound: the files written longest ago go first", function()
    local c = client({ cache = false })
    local bounded = assert(cache.open(dir, { max_bytes = 120 * 1024 }))
    cache.attach(c, bounded)
    assert(c:fetch(JOB, { from = 901, to = 1000 })) -- block 0, written first
    os.execute("sleep 0.05") -- a later modification time for the next file
    assert(c:fetch(JOB, { from = 1001, to = 1100 })) -- block 1: over the bound together
    c:close()
    local total, names = 0, files_of(dir)
    for _, name in ipairs(names) do total = total + #run.read(dir .. "/" .. name) end
    assert.is_true(total <= 120 * 1024, "the cache holds " .. total .. " bytes")
    assert.are.equal(1, #names)
    assert.truthy(names[1]:find("_1%.json$"), names[1])
  end)

  it("is safe when two processes fill the same cache, and when they write the same file over and over", function()
    local root = run.cwd()
    local env = {}
    for k, v in pairs(emulator.client_env(emu)) do env[#env + 1] = run.quote(k .. "=" .. v) end
    local function lua_command(code)
      return ("env -i PATH=%s %s LUA_PATH=%s LUA_CPATH=%s %s -e %s"):format(run.quote(os.getenv("PATH")),
        table.concat(env, " "), run.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
        run.quote(run.build_dir(root) .. "/?.so;;"), run.lua, run.quote(code))
    end
    -- Two walks over the same builds at once, each in its own process.
    local walk = ([[
      local cb = require "codeartsbuild"
      local c = assert(cb.new{ cache = %q })
      local recs, errors = assert(c:fetch(%q, { from = 1101, to = 1199 }, { concurrency = 4 }))
      assert(#recs == 99 and next(errors) == nil)
      print("walked")
    ]]):format(dir, JOB)
    local out, status = run.capture(("(%s & %s & wait)"):format(lua_command(walk), lua_command(walk)))
    assert.are.equal(0, status, out)
    assert.are.equal(2, select(2, out:gsub("walked", "")), out)
    local doc = cjson.decode((assert(run.read(block_file()))))
    for n = 1101, 1199 do assert.truthy(doc.records[tostring(n)], n) end
    -- Two writers rewriting the same file 40 times each while a reader reads it: the reader only
    -- ever sees a whole file, and no temporary file is left behind.
    local write = ([[
      local cb = require "codeartsbuild"
      local cache = require "codeartsbuild.cache"
      local c = assert(cb.new())
      local own = assert(cache.open(%q))
      local rec = assert(c:record_info(%q, 1150))
      for i = 1, 40 do
        rec.commitMessage = "round " .. i
        assert(own:put(c, %q, rec))
        assert(own:flush() == 1)
      end
      print("wrote")
    ]]):format(dir, JOB, JOB)
    local read = ([[
      local cjson = require "cjson"
      local torn = 0
      for _ = 1, 200 do
        local f = io.open(%q, "rb")
        local text = f and f:read("*a")
        if f then f:close() end
        if text and not pcall(cjson.decode, text) then torn = torn + 1 end
      end
      print("torn " .. torn)
    ]]):format(block_file())
    out, status = run.capture(("(%s & %s & %s & wait)"):format(lua_command(write), lua_command(write),
      lua_command(read)))
    assert.are.equal(0, status, out)
    assert.are.equal(2, select(2, out:gsub("wrote", "")), out)
    assert.truthy(out:find("torn 0", 1, true), out)
    assert.truthy(cjson.decode(run.read(block_file())).records["1150"].commitMessage:find("^round 40$"))
    for _, name in ipairs(files_of(dir)) do assert.is_nil(name:find("%.tmp$"), name) end
  end)
end)
