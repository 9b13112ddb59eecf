# Sourced by bench/personal.sh and bench/personal_threads.sh, with BIN, CAT, DIR and PORT set:
# starts the release server on the 5,000-episode catalog (see `start_personal`) on PORT. Sets
# PERSONAL (the path of the officer's personal members feed) and PID, and stops every server it
# started when the calling script exits.

PERSONAL_PIDS=()
trap 'kill "${PERSONAL_PIDS[@]}" 2>/dev/null || true' EXIT

# start_personal PORT [SUFFIX]: writes the catalog's config$SUFFIX.toml (state in
# .rollcall$SUFFIX, emptied first), adds the officer `bench` to that state, starts the server on
# CPU 0 (loopback only, output to $DIR/out$SUFFIX and log$SUFFIX) and waits until it answers.
# Sets STARTED_PID and STARTED_PERSONAL.
start_personal() {
  local port=$1 suffix=${2:-}
  local conf=$CAT/config$suffix.toml
  printf 'public_url = "http://127.0.0.1:%s"\nlisten = "127.0.0.1:%s"\nstate_dir = ".rollcall%s"\n[server]\nmax_connections = 19000\n' "$port" "$port" "$suffix" > "$conf"
  rm -rf "$CAT/.rollcall$suffix"
  echo "officer password 1" | "$BIN" --config "$conf" user add bench --role officer --password-stdin >/dev/null
  STARTED_PERSONAL=$("$BIN" --config "$conf" user token bench | grep '/feeds/members.xml$' | sed "s|http://127.0.0.1:$port||")
  taskset -c 0 "$BIN" --config "$conf" serve > "$DIR/out$suffix" 2> "$DIR/log$suffix" &
  STARTED_PID=$!
  PERSONAL_PIDS+=("$STARTED_PID")
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
}

start_personal "$PORT"
PID=$STARTED_PID
PERSONAL=$STARTED_PERSONAL
