std = "max"
max_line_length = 120
exclude_files = { "build/" }
files["spec"] = { std = "+busted" }
-- Code that runs inside Neovim.
files["lua/codeartsbuild/nvim.lua"] = { read_globals = { "vim" } }
files["lua/codeartsbuild/health.lua"] = { read_globals = { "vim" } }
files["plugin"] = { globals = { "vim" } }
-- Type stubs for lua-language-server: signatures only, never run.
files["types"] = { ignore = { "211", "212", "241", "631" } }
