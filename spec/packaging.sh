#!/bin/sh
# Part of `make test`: the rockspec and `make install` each give a csvup that
# a plain lua5.4 can require.
set -eu
rockspec=rockspec/csvup-scm-1.rockspec
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in src/*.c $(find lua/csvup -name '*.lua'); do
  grep -q "\"$f\"" "$rockspec" || { echo "packaging: $rockspec does not list $f" >&2; exit 1; }
done

# requires csvup with the tree under $1 first on the paths, with $2 (lua5.4 or
# luajit) for Lua $3 (5.4 or 5.1), and checks the module came from there
check() {
  TREE="$1" LUA_PATH="$1/share/lua/$3/?.lua;$1/share/lua/$3/?/init.lua;;" LUA_CPATH="$1/lib/lua/$3/?.so;;" $2 -e '
    local csvup, tree = require "csvup", os.getenv("TREE")
    assert(package.searchpath("csvup", package.path):find(tree, 1, true))
    assert(package.searchpath("csvup.core", package.cpath):find(tree, 1, true))
    assert(csvup.metrika and csvup.carrotquest and csvup.csv)'
}

# luarocks builds in the source tree: give it a copy
mkdir "$tmp/source"
cp -r src lua rockspec "$tmp/source"
rock() { # $1: Lua version, then extra variables
  version=$1
  shift
  (cd "$tmp/source" && luarocks --lua-version="$version" make --deps-mode=none --tree "$tmp/rocks$version" "$rockspec" \
    CURL_INCDIR=/usr/include/x86_64-linux-gnu "$@") >"$tmp/luarocks.log" 2>&1 || { cat "$tmp/luarocks.log" >&2; exit 1; }
}
rock 5.4
check "$tmp/rocks5.4" lua5.4 5.4
test -x "$tmp/rocks5.4/bin/csvup"
rock 5.1 LUA_INCDIR=/usr/include/luajit-2.1
check "$tmp/rocks5.1" luajit 5.1

make --no-print-directory install DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local" lua5.4 5.4
test -x "$tmp/dest/usr/local/bin/csvup"
make --no-print-directory install-luajit DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local" luajit 5.1
echo "packaging: the rockspec (Lua 5.4 and LuaJIT), make install and make install-luajit give a working csvup"
