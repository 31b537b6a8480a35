#!/bin/sh
# Part of `make test`: `make install` and `make install-luajit` each give a
# csvup that a plain lua5.4 (or luajit) can require. The rockspecs are
# spec/rockspec_spec.lua's, the README's LuaRocks command spec/readme_spec.lua's.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# requires csvup with the tree under $1 first on the paths, with $2 (lua5.4 or
# luajit) for Lua $3 (5.4 or 5.1), and checks the module came from there
check() {
  TREE="$1" LUA_PATH="$1/share/lua/$3/?.lua;$1/share/lua/$3/?/init.lua;;" LUA_CPATH="$1/lib/lua/$3/?.so;;" $2 -e '
    local csvup, tree = require "csvup", os.getenv("TREE")
    assert(package.searchpath("csvup", package.path):find(tree, 1, true))
    assert(package.searchpath("csvup.core", package.cpath):find(tree, 1, true))
    assert(csvup.metrika and csvup.carrotquest and csvup.csv)'
}

make --no-print-directory install DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local" lua5.4 5.4
test -x "$tmp/dest/usr/local/bin/csvup"
make --no-print-directory install-luajit DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local" luajit 5.1
echo "packaging: make install and make install-luajit give a working csvup"
