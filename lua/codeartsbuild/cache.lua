--- codeartsbuild.cache: the records of finished builds, on disk.
--
-- A build that has ended (a status that ends it, and a `finishTime`: `query.ended`) never changes,
-- so its record need not be asked for twice. The library keeps them when asked to
-- (`cb.new{ cache = true }`, or a directory); the command line does unless told `--no-cache`.
-- `client:records()` and `client:fetch()` read a cached build instead of asking the service,
-- and keep what they read; `client:record_info()` always asks.
--
--     local client = assert(cb.new{ cache = true })     -- $XDG_CACHE_HOME/codeartsbuild
--     local recs = client:fetch(job, { from = 1, to = 1000 })   -- the second time: no request
--                                                               -- for the builds that had ended
--
-- Layout: one directory (mode 0700, owned by the user; a symbolic link, or a directory of
-- another user, is refused), one JSON file per block of 1,000 builds of a job, named after the
-- endpoint, the project and the job, and holding them too: an entry that does not say the same
-- endpoint, project and job, that is not a record of a build that has ended, or that does not
-- parse, is ignored and replaced. Files are written whole to a temporary file in the same
-- directory, then renamed over the old one (atomic): two processes that share the cache never see
-- half a file, and at worst one of them writes a block the other has just written. The whole
-- cache is kept under `MAX_BYTES`: the files written longest ago go first. Only records are kept:
-- never a credential, a header or a token.
-- @module codeartsbuild.cache
local core = require "codeartsbuild.core"
local usage = require "codeartsbuild.usage"
local query = require "codeartsbuild.query"

local M = {}

--- The format tag every file carries.
M.FORMAT = "codeartsbuild-cache/1"
--- Builds per file.
M.BLOCK = 1000
--- The whole cache's size, at most, in bytes (about 50,000 records): past it, the files written
-- longest ago are removed.
M.MAX_BYTES = 64 * 1024 * 1024
--- A file larger than this is not read (it cannot be one of ours: 1,000 records take about 1.3 MB).
M.MAX_FILE_BYTES = 8 * 1024 * 1024

---------------------------------------------------------------------------------------------------
-- JSON: lua-cjson (an instance of our own), or Neovim's vim.json

local json
local function json_codec()
  if json then return json end
  local ok, cjson = pcall(require, "cjson")
  if ok then
    local codec = cjson.new()
    codec.encode_number_precision(14) -- the most lua-cjson 2.1 writes: milliseconds below 10^14 exactly
    codec.decode_max_depth(64)
    json = { encode = codec.encode, decode = codec.decode, null = cjson.null }
  else
    local vim = rawget(_G, "vim")
    if not (vim and vim.json) then error("codeartsbuild.cache: neither lua-cjson nor vim.json is there", 0) end
    json = { encode = vim.json.encode, decode = vim.json.decode, null = vim.NIL }
  end
  return json
end

---------------------------------------------------------------------------------------------------
-- Files

local process_id
--- This process's id (/proc/self is the process that opens it), for temporary file names.
local function pid()
  if process_id == nil then
    local f = io.open("/proc/self/stat", "r")
    local line = f and f:read("*l")
    if f then f:close() end
    process_id = line and line:match("^(%d+)") or tostring(os.time())
  end
  return process_id
end

local counter = 0
--- A name no other writer uses: this process's id, a counter, the clock, a table's address.
local function unique()
  counter = counter + 1
  return ("%s-%d-%d-%s"):format(pid(), counter, math.floor(os.clock() * 1e6),
    tostring({}):match("0x(%x+)") or "0")
end

--- A file's content when it is not larger than `limit`; nil otherwise (or when it cannot be read).
local function read_small(path, limit)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  if not size or size > limit then
    f:close()
    return nil
  end
  f:seek("set", 0)
  local text = f:read("*a")
  f:close()
  return text
end

--- Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
local function write_atomically(dir, name, text)
  local temporary = ("%s/.%s.%s.tmp"):format(dir, name, unique())
  local f = io.open(temporary, "wb")
  if not f then return false end
  local ok = f:write(text)
  ok = f:close() and ok
  if not ok or not os.rename(temporary, dir .. "/" .. name) then
    os.remove(temporary)
    return false
  end
  return true
end

---------------------------------------------------------------------------------------------------
-- The directory

--- The default directory: `$XDG_CACHE_HOME/codeartsbuild` (an absolute XDG_CACHE_HOME only, as the
-- XDG specification says), else `$HOME/.cache/codeartsbuild`; nil and a message when neither is set.
---@param getenv? fun(name: string): string|nil
---@return string|nil
---@return string|nil message
function M.default_dir(getenv)
  getenv = getenv or os.getenv
  local xdg = getenv("XDG_CACHE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return (xdg:gsub("/+$", "")) .. "/codeartsbuild" end
  local home = getenv("HOME")
  if home and home:sub(1, 1) == "/" then return (home:gsub("/+$", "")) .. "/.cache/codeartsbuild" end
  return nil, "no cache directory: neither XDG_CACHE_HOME nor HOME is set"
end

--- Makes the directory when it is missing (mode 0700), and checks that it is one this user may
-- trust: a directory, not a symbolic link, owned by this user, writable; then makes it 0700.
local function prepare(dir)
  if dir:find("[%c]") then return nil, "the cache directory's name has a control character" end
  if #dir > 4000 then return nil, "the cache directory's name is too long" end
  local ok, why = core.private_dir(dir)
  if not ok then return nil, ("cannot use %s as the cache: %s"):format(dir, why) end
  return true
end

---------------------------------------------------------------------------------------------------
-- Checking what a file holds

-- The record's fields (the core's list) and what they hold: "i" integer, "n" number, "s" string.
local FIELD_TYPES = {}
do
  local NOT_STRINGS = { buildNo = "i", usePrivateSlave = "i", duration = "n" }
  for _, name in ipairs(core.fields) do FIELD_TYPES[name] = NOT_STRINGS[name] or "s" end
end

local to_integer = math.tointeger or function(x) return x end

--- The record an entry holds, made as the core makes records (integers, no JSON null, the record
-- metatable), or nil when the entry is not the record of build `build_no` of `job_id` that ended.
local function record_of(entry, job_id, build_no)
  if type(entry) ~= "table" then return nil end
  local rec = {}
  for name, value in pairs(entry) do
    if type(name) ~= "string" then return nil end
    if value ~= json.null then
      local kind = FIELD_TYPES[name]
      if kind == "s" and type(value) ~= "string" then return nil end
      if kind == "n" and (type(value) ~= "number" or value ~= value) then return nil end
      if kind == "i" then
        if type(value) ~= "number" or value ~= math.floor(value) then return nil end
        value = to_integer(value)
      end
      rec[name] = value
    end
  end
  if rec.buildNo ~= build_no or (rec.codeciJobId ~= nil and rec.codeciJobId ~= job_id) or not query.ended(rec) then
    return nil
  end
  return setmetatable(rec, core.record_metatable)
end

--- A copy of a record (the caller may change it; the cache's stays as it was read).
local function copy(rec)
  local out = {}
  for k, v in pairs(rec) do out[k] = v end
  return setmetatable(out, getmetatable(rec))
end

---------------------------------------------------------------------------------------------------
-- The cache

local Cache = {}
Cache.__index = Cache

--- Where a client's records go: its endpoint (without any user information) and project id
-- ("-" for a token without one); nil while the project id is still to be asked of IAM (AK/SK
-- without one: it is known after the first request).
local function identity(client)
  local info = client:info()
  local endpoint = tostring(info.endpoint or ""):gsub("//[^/@]*@", "//")
  if info.project_id == nil and info.auth ~= "token" then return nil end
  return endpoint, info.project_id or "-"
end

local function file_name(endpoint, project_id, job_id, block)
  local function part(text, length)
    return (text:gsub("^%a+://", ""):gsub("[^%w%.%-]", "-"):sub(1, length))
  end
  return ("%s_%s_%s_%d.json"):format(part(endpoint, 80), part(project_id, 64), part(job_id, 64), block)
end

--- The block of a job's builds that `build_no` is in (0: builds 1 to 1000).
local function block_of(build_no)
  return math.floor((build_no - 1) / M.BLOCK)
end

--- The entries of a file, by build number, as they were read: each is checked (record_of) when it
-- is asked for, so a walk that reads part of a block pays for that part only. An empty table for a
-- missing, foreign or corrupt file: it is replaced at the next write.
local function load(self, endpoint, project_id, job_id, block)
  local text = read_small(self.dir .. "/" .. file_name(endpoint, project_id, job_id, block), M.MAX_FILE_BYTES)
  local entries = {}
  if not text then return entries, false end
  local ok, doc = pcall(json_codec().decode, text)
  if not ok or type(doc) ~= "table" or doc.format ~= M.FORMAT or doc.endpoint ~= endpoint
    or doc.project_id ~= project_id or doc.job_id ~= job_id or doc.block ~= block or type(doc.records) ~= "table" then
    self.stats.rejected = self.stats.rejected + 1
    return entries, true
  end
  local first, last = block * M.BLOCK + 1, (block + 1) * M.BLOCK
  for key, entry in pairs(doc.records) do
    local n = type(key) == "string" and key:match("^%d+$") and #key <= 10 and tonumber(key)
    if n and n >= first and n <= last then
      entries[n] = entry
    else
      self.stats.rejected = self.stats.rejected + 1
    end
  end
  return entries, true
end

--- The loaded block of a job (read from disk once, kept while it is one of the last few used).
local function block_key(endpoint, project_id, job_id, block)
  return endpoint .. "\0" .. project_id .. "\0" .. job_id .. "\0" .. block
end

local function block_entries(self, endpoint, project_id, job_id, block)
  local key = block_key(endpoint, project_id, job_id, block)
  local loaded = self.loaded[key]
  if not loaded then
    loaded = load(self, endpoint, project_id, job_id, block)
    self.loaded[key] = loaded
    self.order[#self.order + 1] = key
    if #self.order > 4 then -- a few blocks at a time: a long walk does not keep every record
      self.loaded[table.remove(self.order, 1)] = nil
    end
  end
  return loaded
end

--- The cached record of a build (made for the caller, who may change it), or nil when the cache
-- does not have it.
---@param client userdata the client whose endpoint and project the record is from
---@param job_id string
---@param build_no integer
---@return table|nil
function Cache:get(client, job_id, build_no)
  local endpoint, project_id = identity(client)
  if not endpoint then
    self.stats.misses = self.stats.misses + 1
    return nil
  end
  local entries = block_entries(self, endpoint, project_id, job_id, block_of(build_no))
  local entry = entries[build_no]
  local rec = entry ~= nil and record_of(entry, job_id, build_no)
  if rec then
    self.stats.hits = self.stats.hits + 1
    return rec
  end
  if entry ~= nil then
    entries[build_no] = nil
    self.stats.rejected = self.stats.rejected + 1
  end
  self.stats.misses = self.stats.misses + 1
  return nil
end

--- Keeps a record when its build has ended (else does nothing); written by flush(), which runs
-- by itself once a block's worth is waiting.
---@param client userdata
---@param job_id string
---@param rec table
---@return boolean kept
function Cache:put(client, job_id, rec)
  if not query.ended(rec) or type(rec.buildNo) ~= "number" or type(job_id) ~= "string" then return false end
  local endpoint, project_id = identity(client)
  if not endpoint then return false end
  local key = block_key(endpoint, project_id, job_id, block_of(rec.buildNo))
  local waiting = self.pending[key]
  if not waiting then
    waiting = { endpoint = endpoint, project_id = project_id, job_id = job_id, block = block_of(rec.buildNo),
      records = {} }
    self.pending[key] = waiting
  end
  if waiting.records[rec.buildNo] == nil then self.pending_count = self.pending_count + 1 end
  waiting.records[rec.buildNo] = copy(rec)
  if self.pending_count >= M.BLOCK then self:flush() end
  return true
end

--- The files of the cache, oldest first: { name =, size =, time = }.
local function listing(dir)
  local files = {}
  for _, file in ipairs(core.dir_files(dir) or {}) do
    if file.name:find("%.json$") and file.name:sub(1, 1) ~= "." then files[#files + 1] = file end
  end
  table.sort(files, function(a, b) return a.time < b.time end)
  return files
end

--- Keeps the cache under MAX_BYTES (the files written longest ago go first) and removes the
-- temporary files a writer that died left behind (older than an hour).
local function prune(self)
  local files, total = listing(self.dir), 0
  for _, file in ipairs(files) do total = total + file.size end
  for _, file in ipairs(files) do
    if total <= self.max_bytes then break end
    os.remove(self.dir .. "/" .. file.name)
    self.loaded, self.order = {}, {} -- read again what is left
    total = total - file.size
  end
  local hour_ago = os.time() - 3600
  for _, file in ipairs(core.dir_files(self.dir) or {}) do
    if file.name:find("^%..*%.tmp$") and file.time < hour_ago then os.remove(self.dir .. "/" .. file.name) end
  end
end

--- Writes the records waiting to be written: each block is read again (another process may have
-- added to it), merged, and written whole, atomically. Failures (a full disk, a directory that
-- went away) lose only what was waiting.
---@return integer written records written
function Cache:flush()
  local written, created = 0, false
  for key, waiting in pairs(self.pending) do
    self.pending[key] = nil
    local name = file_name(waiting.endpoint, waiting.project_id, waiting.job_id, waiting.block)
    local stored, existed = load(self, waiting.endpoint, waiting.project_id, waiting.job_id, waiting.block)
    local entries = {}
    for n, entry in pairs(stored) do
      if not waiting.records[n] and record_of(entry, waiting.job_id, n) then entries[("%d"):format(n)] = entry end
    end
    for n, rec in pairs(waiting.records) do entries[("%d"):format(n)] = rec end
    local ok, text = pcall(json_codec().encode, {
      format = M.FORMAT, endpoint = waiting.endpoint, project_id = waiting.project_id, job_id = waiting.job_id,
      block = waiting.block, records = entries,
    })
    if ok and write_atomically(self.dir, name, text) then
      local count = 0
      for _ in pairs(waiting.records) do count = count + 1 end
      written = written + count
      created = created or not existed
      -- read again when next asked for
      self.loaded[block_key(waiting.endpoint, waiting.project_id, waiting.job_id, waiting.block)] = nil
    end
  end
  self.pending_count = 0
  self.stats.stored = self.stats.stored + written
  if created then prune(self) end
  return written
end

---------------------------------------------------------------------------------------------------
-- Opening, and the clients that use one

--- Opens the cache in `dir` (`true`: the default directory), making the directory when needed.
-- `opts.getenv` replaces os.getenv, `opts.max_bytes` the size bound. Returns the cache, or nil
-- and a message when the directory cannot be used.
---@param dir string|true
---@param opts? {getenv?: fun(name: string): string|nil, max_bytes?: integer}
---@return table|nil
---@return string|nil message
function M.open(dir, opts)
  opts = opts or {}
  local message
  if dir == true then
    dir, message = M.default_dir(opts.getenv)
    if not dir then return nil, message end
  end
  if type(dir) ~= "string" or dir == "" then
    usage.error(("cache: a directory (string) or true expected, got %s"):format(type(dir)))
  end
  local ok
  ok, message = prepare(dir)
  if not ok then return nil, message end
  return setmetatable({
    dir = dir, max_bytes = opts.max_bytes or M.MAX_BYTES,
    loaded = {}, order = {}, pending = {}, pending_count = 0,
    stats = { hits = 0, misses = 0, stored = 0, rejected = 0 },
  }, Cache)
end

-- client -> its cache. Weak keys: a client that is collected takes its entry with it (the cache
-- keeps no reference to its clients).
local caches = setmetatable({}, { __mode = "k" })

--- Gives `client` a cache: `cache` is one M.open made, a directory, or `true` (the default
-- directory). `client:records()` and `client:fetch()` use it from then on. Returns the cache, or
-- nil, message, err (kind `config`) when the directory cannot be used.
---@param client userdata
---@param cache table|string|true
---@param opts? table as M.open takes
---@return table|nil
---@return string|nil message
---@return table|nil err
function M.attach(client, cache, opts)
  if getmetatable(cache) ~= Cache then
    local message
    cache, message = M.open(cache, opts)
    if not cache then
      return nil, message, core.error{ kind = "config", message = message, retryable = false, attempts = 0 }
    end
  end
  caches[client] = cache
  return cache
end

--- The cache a client uses, or nil.
---@param client userdata
---@return table|nil
function M.of(client)
  return caches[client]
end

return M
