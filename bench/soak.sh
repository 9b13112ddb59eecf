#!/usr/bin/env bash
# Mixed-load soak on loopback: feeds, personal feeds and pages, ranges and whole downloads, admin
# adds and edits, reloads from disk, with download measurement on (the default), against a copy of
# the demo catalog. Fails on any error, on resident memory more than 10% over its level after
# warm-up, or on a file-descriptor leak (see bench/soak.py).
#
# Usage: bash bench/soak.sh [SECONDS] [BINARY]
#   SECONDS defaults to 600 (the 10-minute soak of RELIABILITY.md); .ci/run runs 60.
#   BINARY defaults to a release build (made here); .ci/run passes target/debug/rollcall.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
bin=${2:-}
if [[ -z "$bin" ]]; then
  cargo build --release --quiet
  bin=target/release/rollcall
fi
work=$(mktemp -d /tmp/rollcall-soak.XXXXXX)
pid=
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cp -r episodes feeds "$work/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'public_url = "http://127.0.0.1:%s"\nlisten = "127.0.0.1:%s"\n' "$port" "$port" > "$work/config.toml"
cfg=(--config "$work/config.toml")
echo "soak admin password" | "$bin" "${cfg[@]}" user add soak-admin --role admin --password-stdin >/dev/null
echo "soak officer password" | "$bin" "${cfg[@]}" user add soak-officer --role officer --password-stdin >/dev/null
token=$("$bin" "${cfg[@]}" token create --user soak-admin 2>/dev/null)
personal=$("$bin" "${cfg[@]}" user token soak-officer | grep '/feeds/valor-members.xml$' | sed "s|http://127.0.0.1:$port||")
RUST_LOG=warn "$bin" "${cfg[@]}" serve >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
status=0
python3 bench/soak.py "http://127.0.0.1:$port" "$pid" "$secs" "$token" "$personal" "$work" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "FAILED: the server exited during the soak"; cat "$work/log"; exit 1
fi
ready=$(curl -s "http://127.0.0.1:$port/readyz")
echo "readyz after the soak: $ready"
[[ "$ready" == "ready" ]] || status=1
if grep -E ' ERROR | panicked' "$work/log" >/dev/null; then
  echo "FAILED: errors in the server log:"; grep -E ' ERROR | panicked' "$work/log" | head -20; status=1
fi
exit $status
