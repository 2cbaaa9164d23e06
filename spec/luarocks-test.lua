-- `luarocks test` (the rockspec's test section) runs this with the Lua it was told to use
-- (`luarocks --lua-version 5.1 test`): build the module for that Lua, then run the busted suite
-- under it, as `make test` does for Lua 5.4. Arguments go to busted. Under another Lua than 5.4,
-- the #once specs are left out, as `make test-all` leaves them out (they test hosts that do not
-- depend on the Lua running busted); the #soak specs are `make test-soak`'s.
local version = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
local lua = version == "luajit" and "luajit" or "lua" .. version

local function quote(word)
  return "'" .. tostring(word):gsub("'", "'\\''") .. "'"
end

local function execute(command)
  local ok, _, code = os.execute(command)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and (code == nil or code == 0)
end

if not execute("make --no-print-directory LUA=" .. lua .. " all") then
  io.stderr:write("luarocks-test: `make LUA=", lua, " all` failed (`make LUA=", lua, " deps` installs what it needs)\n")
  os.exit(1)
end
local busted = "/usr/bin/busted"
local found = io.open(busted)
if not found then
  io.stderr:write("luarocks-test: busted is not installed (Debian: apt-get install lua-busted)\n")
  os.exit(1)
end
found:close()
local words = { quote(lua), busted, version == "5.4" and "--exclude-tags=soak" or "--exclude-tags=soak,once" }
for i = 1, #arg do words[#words + 1] = quote(arg[i]) end
os.exit(execute(table.concat(words, " ")) and 0 or 1)
