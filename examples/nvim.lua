-- The Neovim adapter, codeartsbuild.nvim: the same client, driven by the editor's event loop,
-- never blocking it. Run in a headless Neovim with this checkout as a plugin (after `make nvim`):
--
--   spec/support/with-emulator -- nvim --headless -u NONE -i NONE --cmd 'set rtp^=.' \
--     --cmd 'runtime plugin/codeartsbuild.lua' -c 'luafile examples/nvim.lua'
--
-- It prints what each call gave and quits (exit status 1 if something failed).
-- luacheck: read globals vim
local cbn = require("codeartsbuild.nvim")
local job = vim.env.CODEARTSBUILD_JOB or "cb5fa20de5fd4cf8be681d4bd6fdd2f6"

local function say(text) io.stdout:write(text, "\n") end

local ok, err = pcall(function()
  cbn.setup(nil)                                          -- nil: the client comes from the environment
  say("client:   " .. tostring(assert(cbn.client())):gsub(": 0x%x+$", ""))

  local record_line, newest, walked, count
  cbn.record_info(job, 61, function(rec, message) record_line = rec and tostring(rec) or message end)
  cbn.latest(job, function(n, message) newest = n or message end)
  say("busy:     " .. tostring(cbn.busy()))               -- true: requests in flight, the editor still free
  assert(vim.wait(20000, function() return record_line ~= nil and newest ~= nil end, 10), "no answer")
  say("record:   " .. record_line)
  say("latest:   " .. tostring(newest))

  walked = {}
  cbn.records(job, { from = 1191, to = 1200, where = { status = "SUCCESS" } },
    function(n) walked[#walked + 1] = n end,             -- each build, in build order
    function(total) count = total end)                   -- then once, at the end (a second value
                                                         -- "cancelled" when walk.cancel() stopped it)
  assert(vim.wait(20000, function() return count ~= nil end, 10), "the walk did not end")
  say(("records:  %d SUCCESS builds of 1191..1200: %s"):format(count, table.concat(walked, " ")))

  -- What :CodeArtsBuild does, and what its completion offers.
  say("complete: " .. table.concat(cbn.complete("", "CodeArtsBuild "), " "))
  cbn.command({ "record", job, "61" })
  assert(vim.wait(20000, function() return vim.api.nvim_buf_get_name(0):find("codeartsbuild://", 1, true) end, 10),
    "no record buffer")
  say("buffer:   " .. vim.api.nvim_buf_get_name(0) .. ": " .. vim.api.nvim_buf_get_lines(0, 1, 2, false)[1])
end)
if not ok then io.stderr:write("examples/nvim.lua: ", tostring(err), "\n") end
vim.cmd(ok and "qa!" or "cq!")
