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

# requires csvup with only the tree under $1 on the paths, and checks the module came from there
check() {
  TREE="$1" LUA_PATH="$1/share/lua/5.4/?.lua;$1/share/lua/5.4/?/init.lua;;" LUA_CPATH="$1/lib/lua/5.4/?.so;;" lua5.4 -e '
    local csvup, tree = require "csvup", os.getenv("TREE")
    assert(package.searchpath("csvup", package.path):find(tree, 1, true))
    assert(package.searchpath("csvup.core", package.cpath):find(tree, 1, true))
    assert(csvup.metrika and csvup.carrotquest and csvup.csv)'
}

# luarocks builds in the source tree: give it a copy
mkdir "$tmp/source"
cp -r src lua rockspec "$tmp/source"
(cd "$tmp/source" && luarocks --lua-version=5.4 make --deps-mode=none --tree "$tmp/rocks" "$rockspec" \
  CURL_INCDIR=/usr/include/x86_64-linux-gnu) >"$tmp/luarocks.log" 2>&1 || { cat "$tmp/luarocks.log" >&2; exit 1; }
check "$tmp/rocks"
test -x "$tmp/rocks/bin/csvup"

make --no-print-directory install DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local"
test -x "$tmp/dest/usr/local/bin/csvup"
echo "packaging: the rockspec and make install both give a working csvup"
