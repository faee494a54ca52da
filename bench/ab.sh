#!/usr/bin/env bash
# Alternating A/B of two keyward binaries on one seeded database: verify (random keys of a
# sample, after a sequential warm-up that touches each) and /healthz, each binary in turn, ROUNDS
# times, so that the machine's drift falls on both alike. Prints requests/s and keyward's CPU per
# verify (all its threads, from /proc).
# Usage: bash bench/ab.sh OLD_BINARY NEW_BINARY
#        (env: BACKEND=sqlite|postgres KEYS=200000 SAMPLE=100000 ROUNDS=2 DURATION=10s PORT=3990)
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}
new=${2:?usage: bench/ab.sh OLD_BINARY NEW_BINARY}
BACKEND=${BACKEND:-sqlite}
KEYS=${KEYS:-200000}
SAMPLE=${SAMPLE:-100000}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
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
# file to an older one that does not know them (sqlx refuses such a database).
db_old=$db
db_new=$db
if [ "$BACKEND" = sqlite ]; then
  "$old" --database "$db" backup --to "$work/bench-new.db" >/dev/null
  db_new="sqlite://$work/bench-new.db"
fi
export KEYWARD_KEYS_FILE="$work/sample.txt"
KEYWARD_VERIFIER=$(cat "$work/verifier.txt")
export KEYWARD_VERIFIER
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for which in old new; do
    if [ "$which" = old ]; then bin=$old; db=$db_old; else bin=$new; db=$db_new; fi
    "$bin" --database "$db" serve --listen "127.0.0.1:$PORT" --cache-capacity "$((SAMPLE * 2))" \
      --cache-ttl 300s --log-format json 2>"$work/server-$which.log" &
    pid=$!
    until curl -sf "127.0.0.1:$PORT/readyz" >/dev/null; do
      kill -0 "$pid" || { cat "$work/server-$which.log" >&2; exit 1; }
      sleep 0.05
    done
    KEYWARD_KEY_ORDER=sequential wrk -t1 -c32 -d5s -s bench/verify.lua \
      "http://127.0.0.1:$PORT/api/v1/keys/verify" >/dev/null
    before=$(ticks "$pid")
    out=$(wrk -t1 -c32 -d"$DURATION" -s bench/verify.lua "http://127.0.0.1:$PORT/api/v1/keys/verify")
    after=$(ticks "$pid")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    verify=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    healthz=$(wrk -t1 -c32 -d"$DURATION" "http://127.0.0.1:$PORT/healthz" | awk '/Requests\/sec/ {print $2}')
    ticks_per_second=$(getconf CLK_TCK)
    cpu_ns=$(( (after - before) * 1000000000 / ticks_per_second / requests ))
    echo "round $round $which: verify $verify requests/s, keyward CPU $((cpu_ns / 1000)).$(( (cpu_ns % 1000) / 100 )) µs per verify; /healthz $healthz requests/s"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done
