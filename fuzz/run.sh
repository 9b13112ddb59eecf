#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) and prints, per target, the executions,
# the corpus size and the crashes. Exits 1 if any target crashed. See fuzz/README.md.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
# Environment: FUZZ_SANITIZER (address, the default, or none), CARGO_BUILD_JOBS.
#
# cargo-fuzz passes nightly flags (-Zsanitizer, -Cpasses=sancov-module); RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them, so no nightly toolchain is needed.
set -uo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift $(($# > 0 ? 1 : 0))
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 2
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

started=$(date +%s)
if ! cargo fuzz build --sanitizer "$sanitizer"; then
  echo "the fuzz targets do not build" >&2
  exit 2
fi
echo "built in $(($(date +%s) - started)) s"

logs=target/fuzz-logs
mkdir -p "$logs"
failed=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(ls "artifacts/$t" | sort)
  # The harnesses make their temporary catalogs here; libFuzzer exits without dropping them.
  scratch="$PWD/target/fuzz-tmp/$t"
  rm -rf "$scratch" && mkdir -p "$scratch"
  TMPDIR="$scratch" cargo fuzz run --sanitizer "$sanitizer" "$t" -- \
    -max_total_time="$seconds" -timeout=25 -print_final_stats=1 >"$logs/$t.log" 2>&1
  rc=$?
  rm -rf "$scratch"
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$t.log" | tail -1 | awk '{print $2}')
  [ -n "$runs" ] || runs=$(grep -o '^Done [0-9]* runs' "$logs/$t.log" | tail -1 | awk '{print $2}')
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$logs/$t.log" | tail -1 | tr -d '#')
  corpus=$(find "corpus/$t" -type f | wc -l)
  new=$(comm -13 <(echo "$before") <(ls "artifacts/$t" | sort) | grep -v '^$' || true)
  crashes=$(echo -n "$new" | grep -c . || true)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "== $t: exit $rc, new artifacts: ${new:-none}; the end of $logs/$t.log:"
    grep -v '^"' "$logs/$t.log" | tail -60
  fi
  summary+=("$(printf '%-12s executions %10s   corpus %6s files   crashes %s' "$t" "${runs:-?}" "$corpus" "$crashes")")
done

echo
echo "fuzzed ${seconds} s per target (sanitizer: $sanitizer):"
printf '%s\n' "${summary[@]}"
exit $failed
