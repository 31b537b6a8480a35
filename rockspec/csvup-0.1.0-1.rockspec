-- LuaRocks build of csvup 0.1.0 from its checkout; see the README's "Building and
-- installing" for the command that works on Debian 12.
rockspec_format = "3.0"
package = "csvup"
version = "0.1.0-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Upload CSV data to Yandex Metrica and Carrot quest, streamed through libcurl",
  detailed = [[
    A Lua module in C on libcurl: offline conversions, calls, expenses, user
    parameters and CRM data for Yandex Metrica, user import for Carrot quest.
    Files are streamed from disk, rows are checked before anything is sent.
  ]],
  license = "MIT",
}
-- Lua 5.4 only. The C also builds against LuaJIT 2.1 (OpenResty: `make
-- install-luajit`), but LuaRocks names LuaJIT and PUC-Rio Lua 5.1 alike
-- ("5.1"), and the module does not load on PUC-Rio 5.1 (it needs
-- luaL_setfuncs, which LuaJIT has and 5.1 lacks), nor was it ever tried on
-- 5.2 or 5.3. Debian 12's luarocks defaults to PUC-Rio 5.1.
-- luasocket is no dependency: only `csvup sandbox` and the specs use it.
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
  "argparse", -- the csvup command; Debian's lua-argparse
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  SQLITE = { header = "sqlite3.h", library = "sqlite3" },
  CRYPTO = { header = "openssl/evp.h", library = "crypto" }, -- Debian's libssl-dev
}
build = {
  type = "builtin",
  modules = {
    ["csvup.core"] = {
      sources = {
        "src/check.c",
        "src/connection.c",
        "src/core.c",
        "src/cp1251.c",
        "src/csv.c",
        "src/digest.c",
        "src/error.c",
        "src/file.c",
        "src/journal.c",
        "src/json.c",
        "src/multi.c",
        "src/pass.c",
        "src/plan.c",
        "src/reader.c",
        "src/recode.c",
        "src/records.c",
        "src/request.c",
        "src/scan.c",
        "src/signals.c",
        "src/slots.c",
        "src/stage.c",
        "src/stage_check.c",
        "src/stage_recode.c",
        "src/stage_source.c",
        "src/stage_tee.c",
        "src/stage_journal.c",
        "src/stage_utf8.c",
        "src/utf8.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "$(CURL_INCDIR)", "$(SQLITE_INCDIR)", "$(CRYPTO_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(SQLITE_LIBDIR)", "$(CRYPTO_LIBDIR)" },
      libraries = { "curl", "sqlite3", "crypto", "pthread", "m" },
    },
    ["csvup"] = "lua/csvup/init.lua",
    ["csvup.batch"] = "lua/csvup/batch.lua",
    ["csvup.carrotquest"] = "lua/csvup/carrotquest.lua",
    ["csvup.cli"] = "lua/csvup/cli.lua",
    ["csvup.client"] = "lua/csvup/client.lua",
    ["csvup.csv"] = "lua/csvup/csv.lua",
    ["csvup.docs"] = "lua/csvup/docs.lua",
    ["csvup.errors"] = "lua/csvup/errors.lua",
    ["csvup.journal"] = "lua/csvup/journal.lua",
    ["csvup.json"] = "lua/csvup/json.lua",
    ["csvup.metrika"] = "lua/csvup/metrika.lua",
    ["csvup.ngx"] = "lua/csvup/ngx.lua",
    ["csvup.ngx.collector"] = "lua/csvup/ngx/collector.lua",
    ["csvup.ngx.fs"] = "lua/csvup/ngx/fs.lua",
    ["csvup.once"] = "lua/csvup/once.lua",
    ["csvup.options"] = "lua/csvup/options.lua",
    ["csvup.progress"] = "lua/csvup/progress.lua",
    ["csvup.registry"] = "lua/csvup/registry.lua",
    ["csvup.sandbox"] = "lua/csvup/sandbox/init.lua",
    ["csvup.sandbox.carrotquest"] = "lua/csvup/sandbox/carrotquest.lua",
    ["csvup.sandbox.csv"] = "lua/csvup/sandbox/csv.lua",
    ["csvup.sandbox.faults"] = "lua/csvup/sandbox/faults.lua",
    ["csvup.sandbox.http"] = "lua/csvup/sandbox/http.lua",
    ["csvup.sandbox.metrika"] = "lua/csvup/sandbox/metrika.lua",
    ["csvup.sandbox.state"] = "lua/csvup/sandbox/state.lua",
    ["csvup.sandbox.upload"] = "lua/csvup/sandbox/upload.lua",
    ["csvup.schema"] = "lua/csvup/schema.lua",
    ["csvup.validate"] = "lua/csvup/validate.lua",
  },
  install = {
    bin = { csvup = "lua/bin/csvup" },
  },
}
