-- :CodeArtsBuild record {job_id} {build_no}   the record in a scratch buffer
-- :CodeArtsBuild list {job_id} [count]        the latest builds, filled in as they arrive
-- :checkhealth codeartsbuild
if vim.g.loaded_codeartsbuild then return end
vim.g.loaded_codeartsbuild = true

vim.api.nvim_create_user_command("CodeArtsBuild", function(o)
  require("codeartsbuild.nvim").command(o.fargs)
end, {
  nargs = "+",
  complete = function(arg_lead, line) return require("codeartsbuild.nvim").complete(arg_lead, line) end,
  desc = "CodeArts Build records",
})
