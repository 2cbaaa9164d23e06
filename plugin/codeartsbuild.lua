-- :CodeArtsBuild record {job_id} {build_no}   the record in a scratch buffer (r refresh, q close)
-- :CodeArtsBuild list {job_id} [count]        the latest builds, filled in as they arrive
--                                             (<CR> opens the record under the cursor)
-- :checkhealth codeartsbuild
if vim.g.loaded_codeartsbuild then return end
vim.g.loaded_codeartsbuild = true

--- The adapter, or nil after a notification that says why it does not load (the C module not
-- built yet, most often) and what to do: never a traceback.
local function adapter()
  local ok, nvim = pcall(require, "codeartsbuild.nvim")
  if ok then return nvim end
  local why = tostring(nvim):gsub("\n\tno field.*", ""):gsub("%s*\n%s*", " ")
  vim.notify("codeartsbuild: the module does not load (" .. why .. "). Run `make nvim` in the plugin's folder "
    .. "(it needs libcurl4-openssl-dev, libssl-dev and liblua5.1-0-dev); :checkhealth codeartsbuild says more.",
    vim.log.levels.ERROR, { title = "codeartsbuild" })
  return nil
end

vim.api.nvim_create_user_command("CodeArtsBuild", function(o)
  local nvim = adapter()
  if not nvim then return end
  local ok, err = pcall(nvim.command, o.fargs)
  if not ok then vim.notify("codeartsbuild: " .. tostring(err), vim.log.levels.ERROR, { title = "codeartsbuild" }) end
end, {
  nargs = "+",
  complete = function(arg_lead, line)
    local ok, nvim = pcall(require, "codeartsbuild.nvim")
    if not ok then return {} end
    return nvim.complete(arg_lead, line)
  end,
  desc = "CodeArts Build records",
})
