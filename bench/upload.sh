#!/usr/bin/env bash
# Uploads one large MP3 through the admin API of a release build on loopback and reports the
# server's peak resident memory before and after (VmHWM), the time the request took (streaming,
# SHA-256 while writing, duration measured by counting every MP3 frame, staging, rename, reload),
# and the measured duration. Usage: bash bench/upload.sh [COPIES]  (60 s at 320 kbit/s per copy;
# the default 125 copies make 300 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-125}
work=$(mktemp -d /tmp/rollcall-upload.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --quiet
bin=target/release/rollcall
cp -r episodes feeds "$work/"
port=18095
printf 'public_url = "http://127.0.0.1:%s"\n' "$port" > "$work/config.toml"
ffmpeg -loglevel error -y -f lavfi -i "sine=f=440:d=60" -c:a libmp3lame -b:a 320k "$work/one.mp3"
python3 - "$work" "$copies" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
one = open(f"{work}/one.mp3", "rb").read()
with open(f"{work}/big.mp3", "wb") as f:
    for _ in range(n):
        f.write(one)
PY
echo "bench upload password" | "$bin" --config "$work/config.toml" user add bench --role admin --password-stdin >/dev/null
token=$("$bin" --config "$work/config.toml" token create --user bench 2>/dev/null)
"$bin" --config "$work/config.toml" serve --listen "127.0.0.1:$port" >/dev/null 2>"$work/log" &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
before=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
size=$(stat -c %s "$work/big.mp3")
out=$(curl -s -o "$work/resp.json" -w "%{http_code} %{time_total}" -H "Authorization: Bearer $token" \
  -F 'metadata={"title":"Big Upload","published":"2016-07-01"}' -F "audio=@$work/big.mp3" \
  "http://127.0.0.1:$port/admin/api/episodes")
after=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
duration=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['duration_secs'])" "$work/resp.json")
echo "upload of $size bytes: status ${out% *}, ${out#* } s; peak RSS ${before} kB before, ${after} kB after; measured duration ${duration} s"
