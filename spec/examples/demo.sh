#!/bin/sh
# `make demo`: starts the sandbox on a free port, runs crm_to_metrika.lua
# against it, and stops the sandbox. Exits non-zero on any failure.
set -eu
LUA=${LUA:-lua5.4}
log=$(mktemp)
$LUA lua/bin/csvup sandbox --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT INT TERM
url=
for _ in $(seq 100); do
  url=$(sed -n 's/^csvup sandbox listening on //p' "$log")
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { cat "$log" >&2; exit 1; }
echo "sandbox: $url"
CSVUP_BASE_URL=$url CSVUP_METRIKA_TOKEN=sandbox-token \
  $LUA spec/examples/crm_to_metrika.lua spec/fixtures/crm_orders.csv 2215573
