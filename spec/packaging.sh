#!/bin/sh
# Part of `make test`: `make install` and `make install-luajit` each give a
# csvup that a plain lua5.4 (or luajit) can require; `make install` also
# installs the man page. The rockspecs are
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

# an ldoc that fails: make install must not need it (the man page does not)
mkdir "$tmp/bin"
printf '#!/bin/sh\nexit 1\n' >"$tmp/bin/ldoc"
chmod +x "$tmp/bin/ldoc"
PATH="$tmp/bin:$PATH" make --no-print-directory install DESTDIR="$tmp/dest" PREFIX=/usr/local DOCS="$tmp/docs" >/dev/null
check "$tmp/dest/usr/local" lua5.4 5.4
test -x "$tmp/dest/usr/local/bin/csvup"
# the installed command runs with no Lua paths in the environment, from anywhere,
# by its full path, by a relative one, and found on PATH
make --no-print-directory install PREFIX="$tmp/any where" DOCS="$tmp/docs" >/dev/null
fixture=$(pwd)/spec/fixtures/offline_conversions.csv
for run in "'$tmp/any where/bin/csvup'" "cd '$tmp/any where' && bin/csvup" "PATH='$tmp/any where/bin':/usr/bin:/bin csvup"; do
  out=$(cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 sh -c "$run validate offline-conversions '$fixture'") \
    || { echo "packaging: the installed csvup does not run ($run)" >&2; exit 1; }
  [ "$out" = "$fixture: valid for offline-conversions" ] || { echo "packaging: $run said: $out" >&2; exit 1; }
done
grep -q '^\.TH CSVUP 1' "$tmp/dest/usr/local/share/man/man1/csvup.1" || { echo "packaging: no man page installed" >&2; exit 1; }
make --no-print-directory install-luajit DESTDIR="$tmp/dest" PREFIX=/usr/local >/dev/null
check "$tmp/dest/usr/local" luajit 5.1
echo "packaging: make install (with its man page, without ldoc, runnable without LUA_PATH) and make install-luajit give a working csvup"
