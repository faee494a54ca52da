#!/usr/bin/env bash
# Side-by-side A/B of two keyward binaries on one seeded database: both serve at once (OLD on
# PORT, NEW on PORT+1), each warmed with a sequential pass over the sample, then loaded in turn,
# route by route (verify, forward auth, /healthz, random keys of the sample), for ROUNDS short
# rounds whose order alternates. The machine drifts by up to 25% between runs of the same
# binary here: interleaved in short slices, the drift falls on both alike, and each round is a
# pair. Prints keyward's CPU per request (all its threads, from /proc) and wrk's p99 latency
# round by round, then per route the medians, the median paired difference, in how many rounds
# NEW was cheaper (and had the lower p99), and each binary's peak RSS.
# Usage: bash bench/ab.sh OLD_BINARY NEW_BINARY
#        (env: BACKEND=sqlite|postgres KEYS=200000 SAMPLE=100000 ROUNDS=10 DURATION=3s PORT=3990)
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}
new=${2:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}
BACKEND=${BACKEND:-sqlite}
KEYS=${KEYS:-200000}
SAMPLE=${SAMPLE:-100000}
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-3s}
PORT=${PORT:-3990}
command -v wrk >/dev/null || { echo "wrk is missing (Debian package wrk)" >&2; exit 2; }
dpkg -s libluajit2-5.1-2 >/dev/null 2>&1 ||
  { echo "wrk should run on OpenResty's LuaJIT (Debian package libluajit2-5.1-2; see bench/verify.lua)" >&2; exit 2; }
work=$(mktemp -d)
chmod 755 "$work"
pg_stop=""
trap '[ -n "$pg_stop" ] && eval "$pg_stop" >/dev/null 2>&1; rm -rf "$work"' EXIT
export KEYWARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
. bench/postgres.sh
. bench/common.sh
if [ "$BACKEND" = postgres ]; then
  start_postgres
  db=$pg_url
else
  db="sqlite://$work/bench.db"
fi

"$old" --database "$db" bench-seed --count "$KEYS" --keys-out "$work/keys.txt" \
  --verifier-out "$work/verifier.txt" | tail -1
shuf -n "$SAMPLE" "$work/keys.txt" > "$work/sample.txt"
# On SQLite each binary runs on a copy of its own: a newer binary's migrations would leave the
# file to an older one that does not know them (sqlx refuses such a database). On PostgreSQL both
# serve the one database: OLD starts first, and NEW's migrations (if any) run under it, so
# compare binaries whose schemas OLD can still read.
db_old=$db
db_new=$db
if [ "$BACKEND" = sqlite ]; then
  "$old" --database "$db" backup --to "$work/bench-new.db" >/dev/null
  db_new="sqlite://$work/bench-new.db"
fi
export KEYWARD_KEYS_FILE="$work/sample.txt"
KEYWARD_VERIFIER=$(cat "$work/verifier.txt")
export KEYWARD_VERIFIER
declare -A pid=()
# The servers stop with the script, however it ends (before PostgreSQL does).
trap 'kill ${pid[old]:-} ${pid[new]:-} 2>/dev/null; [ -n "$pg_stop" ] && eval "$pg_stop" >/dev/null 2>&1; rm -rf "$work"' EXIT
for which in old new; do
  if [ "$which" = old ]; then bin=$old; db=$db_old; port=$PORT; else bin=$new; db=$db_new; port=$((PORT + 1)); fi
  "$bin" --database "$db" serve --listen "127.0.0.1:$port" --cache-capacity "$((SAMPLE * 2))" \
    --cache-ttl 1800s --log-format json 2>"$work/server-$which.log" &
  pid[$which]=$!
  until_ready "${pid[$which]}" "http://127.0.0.1:$port/readyz" "$work/server-$which.log"
  warm "http://127.0.0.1:$port" 5s
done
# load <old|new> <route>: keyward's CPU µs per request over one run and wrk's p99 in ms (a failed
# answer fails it).
load() {
  local port=$PORT url script=() before after out requests
  [ "$1" = new ] && port=$((PORT + 1))
  case $2 in
    verify) url="http://127.0.0.1:$port/api/v1/keys/verify"; script=(-s bench/verify.lua) ;;
    forward) url="http://127.0.0.1:$port/api/v1/auth/forward?scopes=bench:read"; script=(-s bench/forward.lua) ;;
    healthz) url="http://127.0.0.1:$port/healthz" ;;
  esac
  before=$(cpu_ticks "${pid[$1]}")
  out=$(wrk -t1 -c32 -d"$DURATION" --latency "${script[@]}" "$url")
  after=$(cpu_ticks "${pid[$1]}")
  if echo "$out" | grep -q 'Non-2xx'; then echo "$1 $2: failed answers" >&2; echo "$out" >&2; exit 1; fi
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }') $(wrk_p99 "$out")"
}
for round in $(seq "$ROUNDS"); do
  for route in verify forward healthz; do
    if [ $((round % 2)) = 1 ]; then first=old second=new; else first=new second=old; fi
    read -r a a99 < <(load "$first" "$route")
    read -r b b99 < <(load "$second" "$route")
    if [ "$first" = old ]; then echo "$round $route $a $b $a99 $b99"; else echo "$round $route $b $a $b99 $a99"; fi
  done
done | tee "$work/rounds.txt" |
  awk '{ printf "round %s %-8s old %6s  new %6s  µs per request; p99 old %s  new %s ms\n", $1, $2, $3, $4, $5, $6 }'
python3 - "$work/rounds.txt" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, route, old, new, old99, new99 = line.split()
    runs[route].append((float(old), float(new), float(old99), float(new99)))
for route, rows in runs.items():
    old = statistics.median(r[0] for r in rows)
    new = statistics.median(r[1] for r in rows)
    diff = statistics.median(r[1] - r[0] for r in rows)
    cheaper = sum(1 for r in rows if r[1] < r[0])
    print(f"{route:8} median old {old:6.2f}  new {new:6.2f} µs; paired new - old {diff:+.2f} µs; new cheaper in {cheaper} of {len(rows)} rounds")
    old99 = statistics.median(r[2] for r in rows)
    new99 = statistics.median(r[3] for r in rows)
    lower = sum(1 for r in rows if r[3] < r[2])
    print(f"{'':8} p99 median old {old99:.3f}  new {new99:.3f} ms; new lower in {lower} of {len(rows)} rounds")
PY
for which in old new; do
  echo "$which: peak RSS $(awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/${pid[$which]}/status") MB"
done
