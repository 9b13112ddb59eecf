#!/usr/bin/env bash
# Checks contrib/rollcall.service with systemd-analyze verify, against a built binary
# (systemd-analyze insists that ExecStart's program exists). Usage: bash contrib/verify-unit.sh BIN
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/debug/rollcall}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/rollcall|$bin|" contrib/rollcall.service > "$dir/rollcall.service"
out=$(systemd-analyze verify --man=no "$dir/rollcall.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some warnings; any line about the unit is a problem to fix.
if grep -q "rollcall.service" <<<"$out"; then echo "$out"; exit 1; fi
echo "contrib/rollcall.service: systemd-analyze verify found nothing"
