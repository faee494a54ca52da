#!/usr/bin/env bash
# Alternating A/B of two kinds of keys on one node and one database: native keys (bench-seed)
# and Estuary tokens brought in by `keyward import`, each loaded in turn ROUNDS times after a
# warm-up of both, so that the machine's and the database's drift falls on both alike. Prints
# requests/s and keyward's CPU per verify (all its threads, from /proc).
# Usage: bash bench/ab_keys.sh   (env: BACKEND=sqlite|postgres KEYS=200000 SAMPLE=100000
#                                 ROUNDS=3 DURATION=10s PORT=3980)
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND=${BACKEND:-postgres}
KEYS=${KEYS:-200000}
SAMPLE=${SAMPLE:-100000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
PORT=${PORT:-3980}
command -v wrk >/dev/null || { echo "wrk is missing (Debian package wrk)" >&2; exit 2; }
dpkg -s libluajit2-5.1-2 >/dev/null 2>&1 ||
  { echo "wrk should run on OpenResty's LuaJIT (Debian package libluajit2-5.1-2; see bench/verify.lua)" >&2; exit 2; }
cargo build --release -p keyward-server --bin keyward >&2
bin=target/release/keyward
work=$(mktemp -d)
chmod 755 "$work"
pg_stop=""
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pg_stop" ] && eval "$pg_stop" >/dev/null 2>&1; rm -rf "$work"' EXIT
export KEYWARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42
. bench/postgres.sh
. bench/common.sh
if [ "$BACKEND" = postgres ]; then
  start_postgres
  db=$pg_url
else
  db="sqlite://$work/bench.db"
fi
"$bin" --database "$db" bench-seed --count "$KEYS" --keys-out "$work/keys.txt" \
  --verifier-out "$work/verifier.txt" | tail -1
shuf -n "$SAMPLE" "$work/keys.txt" > "$work/native.txt"
python3 - "$SAMPLE" "$work/imported.jsonl" "$work/imported.txt" <<'PY'
import json, sys, uuid
count, rows, keys = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(rows, "w") as r, open(keys, "w") as k:
    for i in range(count):
        token = f"EST{uuid.uuid4()}ARY"
        r.write(json.dumps({"token": token, "owner_email": "bench@keyward.invalid",
                            "tenant": "bench", "label": f"imported {i}",
                            "scopes": ["bench:read"]}) + "\n")
        k.write(token + "\n")
PY
"$bin" --database "$db" import --format estuary "$work/imported.jsonl" | head -1
KEYWARD_VERIFIER=$(cat "$work/verifier.txt")
export KEYWARD_VERIFIER
"$bin" --database "$db" serve --listen "127.0.0.1:$PORT" --cache-capacity "$((SAMPLE * 2))" \
  --cache-ttl 3000s --log-format json 2>"$work/server.log" &
pid=$!
until_ready "$pid" "http://127.0.0.1:$PORT/readyz" "$work/server.log"
url="http://127.0.0.1:$PORT/api/v1/keys/verify"
for kind in native imported; do
  KEYWARD_KEYS_FILE="$work/$kind.txt" warm "http://127.0.0.1:$PORT" 10s
done
for round in $(seq "$ROUNDS"); do
  for kind in native imported; do
    before=$(cpu_ticks "$pid")
    out=$(KEYWARD_KEYS_FILE="$work/$kind.txt" wrk -t1 -c32 -d"$DURATION" -s bench/verify.lua "$url")
    after=$(cpu_ticks "$pid")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    cpu_ns=$(( (after - before) * 1000000000 / $(getconf CLK_TCK) / requests ))
    echo "round $round $kind: $rps requests/s, keyward CPU $((cpu_ns / 1000)).$(( (cpu_ns % 1000) / 100 )) µs per verify${non2xx:+, $non2xx non-2xx}"
  done
done
