#!/usr/bin/env bash
# Where verify's and forward auth's CPU goes: seeds KEYS keys on SQLite, serves them from one
# keyward node (release build, the benchmark's cache settings), loads each route with random keys
# of a SAMPLE as bench/run.sh does, and then loads it again under `perf record --call-graph dwarf`
# (all of keyward's threads, the usage flush's included). Prints, per route, keyward's CPU per
# request of the unprofiled run and how it splits over the named pieces of keyward's own work
# (bench/profile.py), the rest being mostly the HTTP stack. SQLite only: on PostgreSQL the flush's and
# the misses' work is in the database's processes, which this does not record.
# Usage: bash bench/profile.sh   (env: KEYS=200000 SAMPLE=100000 DURATION=10s FREQ=499
#                                 ROUTES="verify forward" PORT=3980 BIN=<a keyward binary>
#                                 PERF_DIR=<a directory to keep the recordings in>)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-200000}
SAMPLE=${SAMPLE:-100000}
DURATION=${DURATION:-10s}
FREQ=${FREQ:-499}
ROUTES=${ROUTES:-verify forward}
PORT=${PORT:-3980}
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
dpkg -s libluajit2-5.1-2 >/dev/null 2>&1 || missing+=(libluajit2-5.1-2)
command -v perf >/dev/null || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin keyward >&2
  BIN=$PWD/target/release/keyward
fi
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
export KEYWARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
# cpu_ticks, until_ready, warm.
. bench/common.sh

"$BIN" --database "sqlite://$work/bench.db" bench-seed --count "$KEYS" \
  --keys-out "$work/keys.txt" --verifier-out "$work/verifier.txt" | tail -1 >&2
shuf -n "$SAMPLE" "$work/keys.txt" > "$work/sample.txt"
export KEYWARD_KEYS_FILE="$work/sample.txt"
KEYWARD_VERIFIER=$(cat "$work/verifier.txt")
export KEYWARD_VERIFIER
"$BIN" --database "sqlite://$work/bench.db" serve --listen "127.0.0.1:$PORT" \
  --cache-capacity "$((SAMPLE * 3))" --cache-ttl 1800s --log-format json 2>"$work/server.log" &
server=$!
base="http://127.0.0.1:$PORT"
until_ready "$server" "$base/readyz" "$work/server.log"
warm "$base" 10s

# run <route> [perf output]: one wrk run of DURATION (under perf when given a file); prints
# keyward's CPU µs per request over it. Any non-2xx answer stops the script.
run() {
  local url script=() before after out requests
  case $1 in
    verify) url="$base/api/v1/keys/verify"; script=(-s bench/verify.lua) ;;
    forward) url="$base/api/v1/auth/forward?scopes=bench:read"; script=(-s bench/forward.lua) ;;
    *) echo "unknown route $1 (verify, forward)" >&2; exit 2 ;;
  esac
  if [ -n "${2:-}" ]; then
    perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$server" -o "$2" 2>"$work/perf.err" &
    local perf_pid=$!
    sleep 0.5
    kill -0 "$perf_pid" 2>/dev/null ||
      { echo "perf could not record keyward (root, or kernel.perf_event_paranoid <= 1, is needed):" >&2; cat "$work/perf.err" >&2; exit 1; }
  fi
  before=$(cpu_ticks "$server")
  out=$(wrk -t1 -c32 -d"$DURATION" "${script[@]}" "$url")
  after=$(cpu_ticks "$server")
  if [ -n "${2:-}" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  if echo "$out" | grep -q 'Non-2xx'; then echo "$1 answered non-2xx: $out" >&2; exit 1; fi
  requests=$(echo "$out" | awk '/ requests in / {print $1}')
  awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'
}
[ -n "${PERF_DIR:-}" ] && mkdir -p "$PERF_DIR"
echo "profile of $BIN: $KEYS keys on SQLite, random keys from $SAMPLE, wrk -t1 -c32 -d$DURATION, perf at $FREQ Hz"
for route in $ROUTES; do
  cpu=$(run "$route")
  recording=${PERF_DIR:-$work}/$route.perf
  run "$route" "$recording" >/dev/null
  echo
  perf script -i "$recording" 2>/dev/null | python3 bench/profile.py "$route" "$cpu"
done
