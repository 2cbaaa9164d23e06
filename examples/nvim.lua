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

  -- After the record: a build's steps, its log followed (a finished build's: the whole of it, then
  -- the end), waiting for a build to end. The emulator's job with logs; its build 4 FAILED.
  local logs_job = vim.env.CODEARTSBUILD_LOGS_JOB or "5eed1065e1f04e0c9a7b3d2c1b0a9f8e"
  local steps_line, followed, follow_end, waited
  cbn.steps(logs_job, 4, function(steps, message) steps_line = steps and tostring(steps[1]) or message end)
  local bytes = 0
  cbn.follow(logs_job, 4, nil, function(text) bytes = bytes + #text end,   -- each piece, as it arrives
    function(rec, message) followed, follow_end = bytes, rec and rec.status or message end)
  cbn.wait(logs_job, nil, { timeout = 60 }, function(rec, message) waited = rec and tostring(rec) or message end)
  assert(vim.wait(20000, function() return steps_line and follow_end and waited end, 10), "no answer")
  say("steps:    " .. steps_line)
  say(("follow:   %d bytes, then %s"):format(followed, follow_end))
  say("wait:     " .. waited)

  -- What :CodeArtsBuild does, and what its completion offers.
  say("complete: " .. table.concat(cbn.complete("", "CodeArtsBuild "), " "))
  cbn.command({ "record", job, "61" })
  assert(vim.wait(20000, function() return vim.api.nvim_buf_get_name(0):find("codeartsbuild://", 1, true) end, 10),
    "no record buffer")
  say("buffer:   " .. vim.api.nvim_buf_get_name(0) .. ": " .. vim.api.nvim_buf_get_lines(0, 1, 2, false)[1])
end)
if not ok then io.stderr:write("examples/nvim.lua: ", tostring(err), "\n") end
vim.cmd(ok and "qa!" or "cq!")
