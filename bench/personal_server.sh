# Sourced by bench/personal.sh and bench/personal_threads.sh, with BIN, CAT, DIR and PORT set:
# writes the 5,000-episode catalog's config, adds the officer `bench`, starts the release server
# on CPU 0 (loopback only) and waits until it answers. Sets PERSONAL (the path of the officer's
# personal members feed) and PID, and stops the server when the calling script exits.
printf 'public_url = "http://127.0.0.1:%s"\nlisten = "127.0.0.1:%s"\n[server]\nmax_connections = 19000\n' "$PORT" "$PORT" > "$CAT/config.toml"
rm -rf "$CAT/.rollcall"
echo "officer password 1" | "$BIN" --config "$CAT/config.toml" user add bench --role officer --password-stdin >/dev/null
PERSONAL=$("$BIN" --config "$CAT/config.toml" user token bench | grep '/feeds/members.xml$' | sed "s|http://127.0.0.1:$PORT||")
taskset -c 0 "$BIN" --config "$CAT/config.toml" serve > "$DIR/out" 2> "$DIR/log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
