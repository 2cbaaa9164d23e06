-- lazy.nvim reads this file (its "lazy" package source) before it looks at a rockspec. Without it,
-- lazy.nvim would take codeartsbuild-scm-1.rockspec (a C module and a dependency, lua-cjson) as a
-- recipe to build with LuaRocks, and set `build = "rockspec"` over the plugin spec's
-- `build = "make nvim"` (see the README, "Neovim"). The plugin needs nothing more from lazy.nvim.
return {}
