#!/usr/bin/env bash
# The verify benchmark: seeds KEYS keys straight through the store, starts keyward (release,
# embedded SQLite), and loads /healthz, verify and forward auth with wrk in the same run and
# with the same settings. Prints a table and writes it to BENCHMARKS.md.
#
# Usage: bash bench/run.sh            (env: KEYS=1000000 SAMPLE=100000 DURATION=10s
#                                            CONNECTIONS=32 THREADS=1 WARMUP=5s PORT=3999)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
SAMPLE=${SAMPLE:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-5s}
PORT=${PORT:-3999}

if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --locked --bin keyward >&2
bin=$PWD/target/release/keyward
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
db="sqlite://$work/bench.db"

echo "seeding $KEYS keys..." >&2
seed_line=$("$bin" --database "$db" bench-seed --count "$KEYS" \
  --keys-out "$work/keys.txt" --verifier-out "$work/verifier.txt" | tail -1)
echo "$seed_line" >&2
seed_rate=$(echo "$seed_line" | sed -E 's/.*\(([0-9]+) keys\/s\).*/\1/')
seed_secs=$(echo "$seed_line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')
shuf -n "$SAMPLE" "$work/keys.txt" > "$work/sample.txt"
export KEYWARD_KEYS_FILE="$work/sample.txt"
KEYWARD_VERIFIER=$(cat "$work/verifier.txt")
export KEYWARD_VERIFIER

start=$(date +%s%N)
"$bin" --database "$db" serve --listen "127.0.0.1:$PORT" --cache-capacity "$((SAMPLE * 2))" \
  --log-format json 2>"$work/server.log" &
server=$!
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.005
done
startup_ms=$(( ($(date +%s%N) - start) / 1000000 ))

one=$(head -1 "$work/sample.txt")
check=$(curl -s "http://127.0.0.1:$PORT/api/v1/keys/verify" -H "x-api-key: $KEYWARD_VERIFIER" \
  -H 'content-type: application/json' -d "{\"key\":\"$one\",\"scopes\":[\"bench:read\"]}")
case "$check" in *'"code":"VALID"'*) ;; *) echo "a seeded key does not verify: $check" >&2; exit 1 ;; esac

# wrk <name> <url> [script]: prints "<requests/s> <p50 ms> <p99 ms> <non-2xx>"
load() {
  local url=$1 script=${2:-}
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency ${script:+-s "$script"} "$url")
  echo "$out" >&2
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $5}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${errors:-0}"
}
to_ms() { # wrk prints 812.00us, 1.23ms or 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /s$/ && v !~ /ms$/) n *= 1000; printf "%.3f", n }'
}

echo "warming the cache for $WARMUP..." >&2
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s bench/verify.lua "http://127.0.0.1:$PORT/api/v1/keys/verify" >/dev/null
read -r h_rps h_p50 h_p99 h_err < <(load "http://127.0.0.1:$PORT/healthz")
read -r v_rps v_p50 v_p99 v_err < <(load "http://127.0.0.1:$PORT/api/v1/keys/verify" bench/verify.lua)
read -r f_rps f_p50 f_p99 f_err < <(load "http://127.0.0.1:$PORT/api/v1/auth/forward?scopes=bench:read" bench/forward.lua)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
hits=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^keyward_cache_hits_total/ {print $2}')
misses=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^keyward_cache_misses_total/ {print $2}')

ratio=$(awk -v v="$v_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", v / h }')
fratio=$(awk -v f="$f_rps" -v v="$v_rps" 'BEGIN { printf "%.2f", f / v }')
table=$(cat <<TABLE
| endpoint | requests/s | p50 ms | p99 ms | non-2xx |
| --- | ---: | ---: | ---: | ---: |
| \`GET /healthz\` | $h_rps | $h_p50 | $h_p99 | $h_err |
| \`POST /api/v1/keys/verify\` | $v_rps | $v_p50 | $v_p99 | $v_err |
| \`GET /api/v1/auth/forward\` | $f_rps | $f_p50 | $f_p99 | $f_err |

- verify / healthz requests/s: **$ratio** (target >= 0.85); forward / verify: **$fratio** (target >= 0.90)
- server peak RSS (VmHWM): **$((rss_kb / 1024)) MB** (target <= 400); start-up to ready: **$startup_ms ms** (target <= 1000)
- seeding: $KEYS keys in $seed_secs s (**$seed_rate keys/s**); cache hits/misses over the run: $hits / $misses
TABLE
)
header="## $(date -u +%Y-%m-%d) — SQLite, $(nproc) cores, $KEYS keys stored, wrk -t$THREADS -c$CONNECTIONS -d$DURATION (random keys from a sample of $SAMPLE, after a $WARMUP warm-up)"
echo
echo "$header"
echo
echo "$table"
# Keep earlier runs below the new one (the first four lines are the title and its note).
if [ -f BENCHMARKS.md ]; then tail -n +5 BENCHMARKS.md > "$work/rest.md"; else : > "$work/rest.md"; fi
{ printf '# Benchmarks\n\nWritten by `bash bench/run.sh`; newest first.\n\n%s\n\n%s\n\n' "$header" "$table"; cat "$work/rest.md"; } > BENCHMARKS.md
