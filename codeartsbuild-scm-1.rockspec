rockspec_format = "3.0"
package = "codeartsbuild"
version = "scm-1"

source = {
  url = "git+https://github.com/codeartsbuild/codeartsbuild.git",
}

description = {
  summary = "Huawei Cloud CodeArts Build records for Lua, with a libcurl/OpenSSL core",
  detailed = [[
Fetches CodeArts Build records (GET /v3/jobs/{job_id}/{build_no}/record-info) as Lua tables.
The C core signs requests with SDK-HMAC-SHA256 (or sends an IAM token), runs them
concurrently on one libcurl multi handle with connection reuse, and normalises records.
]],
  homepage = "https://github.com/codeartsbuild/codeartsbuild",
  license = "MIT",
  labels = { "huaweicloud", "codearts", "http", "libcurl" },
}

dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}

-- Only libraries: on Debian/Ubuntu curl.h lives in /usr/include/<multiarch>/, which the
-- compiler searches by itself but a header check under $(CURL_INCDIR) would not find.
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
}

build = {
  type = "builtin",
  modules = {
    ["codeartsbuild.core"] = {
      sources = {
        "csrc/buffer.c", "csrc/check.c", "csrc/client.c", "csrc/codes.c", "csrc/config.c", "csrc/core.c",
        "csrc/easy.c", "csrc/envelope.c", "csrc/error.c", "csrc/files.c", "csrc/headers.c", "csrc/iam.c",
        "csrc/index.c", "csrc/mailbox.c", "csrc/options.c", "csrc/pace.c", "csrc/reader.c", "csrc/record.c",
        "csrc/request.c", "csrc/response.c", "csrc/sign.c", "csrc/sockets.c", "csrc/stream.c",
        "csrc/transport.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    ["codeartsbuild"] = "lua/codeartsbuild/init.lua",
    ["codeartsbuild.batch"] = "lua/codeartsbuild/batch.lua",
    ["codeartsbuild.build"] = "lua/codeartsbuild/build.lua",
    ["codeartsbuild.query"] = "lua/codeartsbuild/query.lua",
    ["codeartsbuild.usage"] = "lua/codeartsbuild/usage.lua",
    ["codeartsbuild.view"] = "lua/codeartsbuild/view.lua",
    ["codeartsbuild.cache"] = "lua/codeartsbuild/cache.lua",
    ["codeartsbuild.cli"] = "lua/codeartsbuild/cli.lua",
    ["codeartsbuild.nvim"] = "lua/codeartsbuild/nvim.lua",
    ["codeartsbuild.health"] = "lua/codeartsbuild/health.lua",
  },
  install = {
    bin = { codeartsbuild = "bin/codeartsbuild" },
  },
  -- Into the rock's own folder: plugin/ makes the rock a Neovim plugin for rocks.nvim (the
  -- :CodeArtsBuild command), docs/ is the API reference, share/ the man page and the shell
  -- completions (see the README, "Command line").
  copy_directories = { "plugin", "docs", "share" },
}

-- `luarocks test` runs the busted suite with the Lua LuaRocks was told to use (--lua-version):
-- spec/luarocks-test.lua builds the module for it and starts busted (Debian's lua-busted; the
-- LuaRocks server is not needed). Arguments after the rockspec go to busted.
test = {
  type = "command",
  script = "spec/luarocks-test.lua",
}
