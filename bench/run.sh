#!/usr/bin/env bash
# The verify benchmark: for each backend, seeds KEYS keys straight through the store, starts
# keyward (release build), and loads /healthz, verify and forward auth with wrk in the same run
# and with the same settings. On PostgreSQL (a throwaway cluster this script starts) it also
# loads two nodes behind one nginx. Prints the tables and writes them to BENCHMARKS.md.
# A further verify row loads keys that carry verify's richer decisions (an IP allowlist checked
# against the body's `ip`, an owner's shared rate limit, and a permission expression), seeded
# `--with-policies` (SAMPLE of them), to compare with plain verify's CPU per request; another
# loads a SAMPLE of KEYS Estuary tokens brought in by `keyward import` (whose rate it reports).
# Beside them, the stack's ceiling for verify's request: `examples/ceiling.rs`, keyward's router
# and layers with one route that takes verify's request through verify's extractors and answers
# a real verify answer's bytes without doing any of verify's work, loaded with verify's script.
#
# Then cold keys: a node with the default cache loaded with keys drawn from all the stored keys.
# With PEERS=1 (the default), after the first backend's rows, the peers of bench/peers.sh (nginx
# checking keys itself, keyward and OpenBao behind nginx auth_request, OpenBao itself).
#
# Usage: bash bench/run.sh   (env: BACKENDS="sqlite postgres" KEYS=1000000 SAMPLE=100000
#                             DURATION=10s CONNECTIONS=32 THREADS=1 WARMUP=10s PORT=3999
#                             COLD_SAMPLE=1000000 PEERS=1 PEER_KEYS=$SAMPLE ROUNDS=5)
#
# The warm-up verifies every sampled key, then waits until the usage it caused (each key's first
# last_used_at, its counters) has been flushed, so that every run starts from the same steady
# state: answers from the cache, counters flushed every 5 s. The server runs with a cache TTL of
# 1800 s: the warm-up fills every entry within seconds, and with the default 30 s they would all
# expire together in the middle of a run, which a real cache filled over time does not do (the
# rows after it, the peers' included, take longer than 300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BACKENDS=${BACKENDS:-"sqlite postgres"}
KEYS=${KEYS:-1000000}
SAMPLE=${SAMPLE:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-10s}
PORT=${PORT:-3999}
COLD_SAMPLE=${COLD_SAMPLE:-1000000}
IMPORT_KEYS=${IMPORT_KEYS:-$(( KEYS < 1000000 ? KEYS : 1000000 ))}
PEERS=${PEERS:-1}
ROUNDS=${ROUNDS:-5}
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "ROUNDS must be a whole number, at least 1" >&2; exit 2; }

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
command -v wrk >/dev/null || missing+=(wrk)
# wrk's LuaJIT: OpenResty's (libluajit2), whose string hash always covers a string's last 8
# bytes, where bench/verify.lua and forward.lua put the key (see verify.lua). It replaces
# Debian's other LuaJIT, which wrk accepts as well.
dpkg -s libluajit2-5.1-2 >/dev/null 2>&1 || missing+=(libluajit2-5.1-2)
case " $BACKENDS " in *" postgres "*)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx) ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --locked --bin keyward --example ceiling >&2
bin=$PWD/target/release/keyward
ceiling_bin=$PWD/target/release/examples/ceiling
work=$(mktemp -d)
chmod 755 "$work"
pids=()
pg_stop=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$pg_stop" ] && eval "$pg_stop" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
export KEYWARD_JWT_SECRET=bench-secret-bench-secret-bench-secret-42

# start_postgres (a throwaway cluster in $work/pg; sets pg_url and pg_stop).
. bench/postgres.sh
# cpu_ticks, until_ready, to_ms, warm.
. bench/common.sh

# serve <db> <port>: starts a node, waits until it is ready, sets node_pid and startup_ms.
serve() {
  local db=$1 port=$2 start
  start=$(date +%s%N)
  "$bin" --database "$db" serve --listen "127.0.0.1:$port" --cache-capacity "$((SAMPLE * 3))" --cache-ttl 1800s \
    --log-format json 2>"$work/server-$port.log" &
  node_pid=$!
  pids+=("$node_pid")
  until_ready "$node_pid" "http://127.0.0.1:$port/readyz" "$work/server-$port.log"
  startup_ms=$(( ($(date +%s%N) - start) / 1000000 ))
}

# load <url> [script]: prints "<requests/s> <p50 ms> <p99 ms> <non-2xx> <server µs> <wrk µs>",
# the last two being CPU time per request of the nodes in $measured (all of their threads,
# the usage flush included) and of wrk, both on the same cores: they explain a ratio that the
# machine's own speed moves.
load() {
  local url=$1 script=${2:-}
  local out before after
  before=$(cpu_ticks "${measured[@]}")
  out=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    ${script:+-s "$script"} "$url"; } 2>"$work/wrk.time")
  after=$(cpu_ticks "${measured[@]}")
  echo "$out" >&2
  local rps p50 p99 errors requests
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $5}')
  requests=$(echo "$out" | awk '/ requests in / {print $1}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") ${errors:-0}" \
    "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')" \
    "$(tail -1 "$work/wrk.time" | awk -v n="$requests" '{ printf "%.1f", ($1 + $2) * 1e6 / n }')"
}
row() { echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"; }

tables=""
declare -A verify_rps
for backend in $BACKENDS; do
  case $backend in
    sqlite) db="sqlite://$work/bench.db" ;;
    postgres) start_postgres; db=$pg_url ;;
    *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
  esac
  echo "[$backend] seeding $KEYS keys..." >&2
  seed_line=$("$bin" --database "$db" bench-seed --count "$KEYS" \
    --keys-out "$work/keys-$backend.txt" --verifier-out "$work/verifier-$backend.txt" | tail -1)
  echo "$seed_line" >&2
  seed_rate=$(echo "$seed_line" | sed -E 's/.*\(([0-9]+) keys\/s\).*/\1/')
  seed_secs=$(echo "$seed_line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')
  shuf -n "$SAMPLE" "$work/keys-$backend.txt" > "$work/sample.txt"
  echo "[$backend] seeding $SAMPLE keys with an allowlist, an owner limit and expression scopes..." >&2
  "$bin" --database "$db" bench-seed --count "$SAMPLE" --with-policies \
    --keys-out "$work/policies.txt" --verifier-out "$work/verifier-policies.txt" | tail -1 >&2
  echo "[$backend] importing $IMPORT_KEYS Estuary tokens (keyward import)..." >&2
  python3 - "$IMPORT_KEYS" "$work/imported.jsonl" "$work/imported-keys.txt" <<'PY'
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
  import_line=$("$bin" --database "$db" import --format estuary "$work/imported.jsonl" | head -1)
  echo "$import_line" >&2
  import_secs=$(echo "$import_line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')
  import_rate=$(echo "$import_line" | sed -E 's/.*\(([0-9]+) rows\/s\).*/\1/')
  shuf -n "$SAMPLE" "$work/imported-keys.txt" > "$work/imported-sample.txt"
  if [ "$backend" = postgres ]; then
    # The bulk load would wake autovacuum on a million fresh rows in the middle of the runs (on
    # the same cores: verify's CPU per request rose by half). Do its work now. Only the seeded
    # table: analysing the still empty key_last_used would plan its join as a scan.
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/psql" "$pg_url" \
      -qc 'VACUUM (ANALYZE) api_keys' -c 'CHECKPOINT' >/dev/null
  fi
  export KEYWARD_KEYS_FILE="$work/sample.txt"
  KEYWARD_VERIFIER=$(cat "$work/verifier-$backend.txt")
  export KEYWARD_VERIFIER

  serve "$db" "$PORT"
  server=$node_pid
  measured=("$server")
  base="http://127.0.0.1:$PORT"
  one=$(head -1 "$work/sample.txt")
  check=$(curl -s "$base/api/v1/keys/verify" -H "x-api-key: $KEYWARD_VERIFIER" \
    -H 'content-type: application/json' -d "{\"key\":\"$one\",\"scopes\":[\"bench:read\"]}")
  case "$check" in *'"code":"VALID"'*) ;; *) echo "a seeded key does not verify: $check" >&2; exit 1 ;; esac
  printf '%s' "$check" > "$work/answer.json"

  warm "$base"
  # The first plain run, for the policies' ratio below (the table's verify row is the median of
  # the interleaved rounds further on).
  read -r _ _ _ _ v_cpu _ < <(load "$base/api/v1/keys/verify" bench/verify.lua)
  # Right after it, the same verify of keys whose answer needs their allowlist, their owner's limit and an
  # expression; the sample and the body change, nothing else.
  # (Their own verifier: a member's verifier sees its owner's keys only.)
  policy_body='"scopes":"bench:read AND (bench:write OR bench:admin)","ip":"10.1.2.3"'
  policy_verifier=$(cat "$work/verifier-policies.txt")
  check=$(curl -s "$base/api/v1/keys/verify" -H "x-api-key: $policy_verifier" \
    -H 'content-type: application/json' -d "{\"key\":\"$(head -1 "$work/policies.txt")\",$policy_body}")
  case "$check" in *'"code":"VALID"'*'"owner_ratelimit"'*) ;; *) echo "a key with policies does not verify: $check" >&2; exit 1 ;; esac
  KEYWARD_KEYS_FILE="$work/policies.txt" KEYWARD_VERIFIER=$policy_verifier \
    KEYWARD_VERIFY_EXTRA=$policy_body warm "$base"
  read -r p_rps p_p50 p_p99 p_err p_cpu p_wrk < <(KEYWARD_KEYS_FILE="$work/policies.txt" \
    KEYWARD_VERIFIER=$policy_verifier KEYWARD_VERIFY_EXTRA=$policy_body \
    load "$base/api/v1/keys/verify" bench/verify.lua)
  # Plain verify, the policies once more, plain again (unshown): the ratio compares the mean of
  # both policy runs with the plain runs around them, weighted so that both sides sit at the
  # same point in time (drift between consecutive runs has reached 14%, more than the effect).
  read -r _ _ _ _ v2_cpu _ < <(load "$base/api/v1/keys/verify" bench/verify.lua)
  read -r _ _ _ _ p2_cpu _ < <(KEYWARD_KEYS_FILE="$work/policies.txt" \
    KEYWARD_VERIFIER=$policy_verifier KEYWARD_VERIFY_EXTRA=$policy_body \
    load "$base/api/v1/keys/verify" bench/verify.lua)
  read -r _ _ _ _ v3_cpu _ < <(load "$base/api/v1/keys/verify" bench/verify.lua)
  pcpu=$(awk -v p="$p_cpu" -v q="$p2_cpu" -v a="$v_cpu" -v b="$v2_cpu" -v c="$v3_cpu" \
    'BEGIN { printf "%.2f", ((p + q) / 2) / ((a + 2 * b + c) / 4) }')
  # The memory target is the node's with the plain and policy samples cached (200,000 keys, as
  # before imported keys had a row); the imported row caches 100,000 more.
  rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
  # Imported Estuary tokens (of no keyward shape: found through the imported shape), then plain
  # verify once more, for the same kind of ratio.
  one=$(head -1 "$work/imported-sample.txt")
  check=$(curl -s "$base/api/v1/keys/verify" -H "x-api-key: $KEYWARD_VERIFIER" \
    -H 'content-type: application/json' -d "{\"key\":\"$one\",\"scopes\":[\"bench:read\"]}")
  case "$check" in *'"code":"VALID"'*) ;; *) echo "an imported key does not verify: $check" >&2; exit 1 ;; esac
  KEYWARD_KEYS_FILE="$work/imported-sample.txt" warm "$base"
  read -r i_rps i_p50 i_p99 i_err i_cpu i_wrk < <(KEYWARD_KEYS_FILE="$work/imported-sample.txt" \
    load "$base/api/v1/keys/verify" bench/verify.lua)
  read -r _ _ _ _ v4_cpu _ < <(load "$base/api/v1/keys/verify" bench/verify.lua)
  icpu=$(awk -v i="$i_cpu" -v a="$v3_cpu" -v b="$v4_cpu" 'BEGIN { printf "%.2f", i / ((a + b) / 2) }')
  # The four rows the targets compare (verify with the ceiling, forward auth with healthz) run
  # interleaved: ROUNDS rounds, each loading all four in turn, in an order that rotates from
  # round to round; each row shows its median round by requests/s. The machine drifts by up to
  # 25% between consecutive runs: interleaved, the drift moves both sides of a ratio alike. The
  # ceiling is a process of its own, idle while keyward is loaded (and keyward while it is).
  "$ceiling_bin" "127.0.0.1:$((PORT + 3))" "$work/answer.json" 2>"$work/ceiling.log" &
  ceiling=$!
  pids+=("$ceiling")
  until_ready "$ceiling" "http://127.0.0.1:$((PORT + 3))/healthz" "$work/ceiling.log"
  declare -A runs=([verify]="" [forward]="" [healthz]="" [ceiling]="")
  kinds=(verify forward healthz ceiling)
  for ((r = 0; r < ROUNDS; r++)); do
    for ((j = 0; j < ${#kinds[@]}; j++)); do
      kind=${kinds[(r + j) % ${#kinds[@]}]}
      case $kind in
        verify) measured=("$server"); run=$(load "$base/api/v1/keys/verify" bench/verify.lua) ;;
        forward) measured=("$server"); run=$(load "$base/api/v1/auth/forward?scopes=bench:read" bench/forward.lua) ;;
        healthz) measured=("$server"); run=$(load "$base/healthz") ;;
        ceiling) measured=("$ceiling"); run=$(load "http://127.0.0.1:$((PORT + 3))/bench/ceiling" bench/verify.lua) ;;
      esac
      runs[$kind]+="$run"$'\n'
    done
  done
  measured=("$server")
  kill "$ceiling" 2>/dev/null || echo "WARNING [$backend]: the ceiling had stopped" >&2
  wait "$ceiling" 2>/dev/null || true
  # median <kind>: that row's round of the median requests/s (the lower middle one of an even count).
  median() { printf '%s' "${runs[$1]}" | sort -g -k1,1 | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)'; }
  # per_round <a> <b>: the requests/s of a over b's, round by round.
  per_round() {
    paste -d' ' <(printf '%s' "${runs[$1]}" | cut -d' ' -f1) <(printf '%s' "${runs[$2]}" | cut -d' ' -f1) |
      awk '{ printf "%s%.2f", sep, $1 / $2; sep = ", " }'
  }
  read -r m_rps m_p50 m_p99 m_err m_cpu m_wrk < <(median verify)
  read -r f_rps f_p50 f_p99 f_err f_cpu f_wrk < <(median forward)
  read -r h_rps h_p50 h_p99 h_err h_cpu h_wrk < <(median healthz)
  read -r c_rps c_p50 c_p99 c_err c_cpu c_wrk < <(median ceiling)
  # Failed answers count over every round, not the median's alone.
  errors() { printf '%s' "${runs[$1]}" | awk '{ n += $4 } END { print n + 0 }'; }
  m_err=$(errors verify) f_err=$(errors forward) h_err=$(errors healthz) c_err=$(errors ceiling)
  vc_rounds=$(per_round verify ceiling)
  fh_rounds=$(per_round forward healthz)
  # Cold keys: a node of its own with the default cache capacity (250,000), loaded with keys drawn
  # uniformly from COLD_SAMPLE of all the seeded keys (all of them, up to 1,000,000), so that most
  # lookups miss the cache and read storage. Warmed with the same random draw until steady (the
  # cache full, evicting), then measured; the main node stays up, idle.
  main_startup_ms=$startup_ms
  cold_sample=$(( KEYS < COLD_SAMPLE ? KEYS : COLD_SAMPLE ))
  shuf -n "$cold_sample" "$work/keys-$backend.txt" > "$work/cold.txt"
  "$bin" --database "$db" serve --listen "127.0.0.1:$((PORT + 4))" --cache-ttl 300s \
    --log-format json 2>"$work/server-cold.log" &
  cold=$!
  pids+=("$cold")
  until_ready "$cold" "http://127.0.0.1:$((PORT + 4))/readyz" "$work/server-cold.log"
  measured=("$cold")
  KEYWARD_KEYS_FILE="$work/cold.txt" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -s bench/verify.lua \
    "http://127.0.0.1:$((PORT + 4))/api/v1/keys/verify" >/dev/null
  cold_before=$(curl -s "http://127.0.0.1:$((PORT + 4))/metrics")
  read -r k_rps k_p50 k_p99 k_err k_cpu k_wrk < <(KEYWARD_KEYS_FILE="$work/cold.txt" \
    load "http://127.0.0.1:$((PORT + 4))/api/v1/keys/verify" bench/verify.lua)
  cold_after=$(curl -s "http://127.0.0.1:$((PORT + 4))/metrics")
  cold_hit_pct=$( { echo "$cold_before" | sed 's/^/before /'; echo "$cold_after" | sed 's/^/after /'; } | awk '
    $2 == "keyward_cache_hits_total" { h[$1] = $3 } $2 == "keyward_cache_misses_total" { m[$1] = $3 }
    END { dh = h["after"] - h["before"]; dm = m["after"] - m["before"]; if (dh + dm > 0) printf "%.0f", 100 * dh / (dh + dm); else print 0 }')
  cold_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$cold/status")
  kill "$cold" 2>/dev/null || echo "WARNING [$backend]: the cold-keys node had stopped" >&2
  wait "$cold" 2>/dev/null || true
  startup_ms=$main_startup_ms
  measured=("$server")
  verify_rps[$backend]=$m_rps
  rss_all_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
  metrics=$(curl -s "$base/metrics")
  hits=$(echo "$metrics" | awk '/^keyward_cache_hits_total/ {print $2}')
  flushes=$(echo "$metrics" | awk '/^keyward_usage_flush_duration_seconds_count/ {print $2}')
  flush_ms=$(echo "$metrics" | awk '/^keyward_usage_flush_duration_seconds_sum/ {s = $2} /^keyward_usage_flush_duration_seconds_count/ {c = $2} END { if (c > 0) printf "%.0f", s / c * 1000; else print 0 }')
  misses=$(echo "$metrics" | awk '/^keyward_cache_misses_total/ {print $2}')
  ratio=$(awk -v v="$m_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", v / h }')
  fratio=$(awk -v f="$f_rps" -v v="$m_rps" 'BEGIN { printf "%.2f", f / v }')
  cratio=$(awk -v c="$c_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", c / h }')
  vcratio=$(awk -v v="$m_rps" -v c="$c_rps" 'BEGIN { printf "%.2f", v / c }')
  rows="$(row '`GET /healthz`' "$h_rps" "$h_p50" "$h_p99" "$h_err" "$h_cpu" "$h_wrk")
$(row '`POST /api/v1/keys/verify`' "$m_rps" "$m_p50" "$m_p99" "$m_err" "$m_cpu" "$m_wrk")
$(row '`GET /api/v1/auth/forward`' "$f_rps" "$f_p50" "$f_p99" "$f_err" "$f_cpu" "$f_wrk")
$(row 'ceiling: verify'"'"'s request, a fixed answer (`examples/ceiling.rs`)' "$c_rps" "$c_p50" "$c_p99" "$c_err" "$c_cpu" "$c_wrk")
$(row '`POST /api/v1/keys/verify`: allowlist + owner limit + expression' "$p_rps" "$p_p50" "$p_p99" "$p_err" "$p_cpu" "$p_wrk")
$(row '`POST /api/v1/keys/verify`: imported Estuary tokens' "$i_rps" "$i_p50" "$i_p99" "$i_err" "$i_cpu" "$i_wrk")
$(row "\`POST /api/v1/keys/verify\`: cold keys (uniform over $cold_sample of the stored keys, default cache)" "$k_rps" "$k_p50" "$k_p99" "$k_err" "$k_cpu" "$k_wrk")"
  notes="- the first four rows: the median of $ROUNDS interleaved rounds each (by requests/s; non-2xx over all rounds)
- verify / ceiling requests/s: **$vcratio** (target >= 0.90; round by round: $vc_rounds); verify's own work, keyward CPU above the ceiling's: **$(awk -v v="$m_cpu" -v c="$c_cpu" 'BEGIN { printf "%.1f", v - c }') µs** per request (target <= 1.5)
- forward auth / healthz requests/s: **$(awk -v f="$f_rps" -v h="$h_rps" 'BEGIN { printf "%.2f", f / h }')** (target >= 0.85; round by round: $fh_rounds); forward auth's own work, keyward CPU above healthz's: **$(awk -v f="$f_cpu" -v h="$h_cpu" 'BEGIN { printf "%.1f", f - h }') µs** per request (target <= 2)
- p99: verify $m_p99 ms, healthz $h_p99 ms (target: verify's no worse); verify / healthz requests/s: $ratio; forward / verify: $fratio
- verify with an allowlist, an owner limit and an expression / plain verify, keyward CPU µs per request (the policies twice, $p_cpu and $p2_cpu µs, between plain runs of $v_cpu, $v2_cpu and $v3_cpu µs): **$pcpu** (target <= 1.10)
- the stack's ceiling for verify's request (verify's extractors and a real answer's bytes, none of verify's work) / healthz: **$cratio**
- server peak RSS (VmHWM) with 200,000 keys cached: **$((rss_kb / 1024)) MB** (target <= 400); with the imported row's 100,000 more: $((rss_all_kb / 1024)) MB; start-up to ready: **$startup_ms ms** (target <= 1000)
- imported Estuary tokens / plain verify (the mean of the runs before and after, $v3_cpu and $v4_cpu µs), keyward CPU µs per request: **$icpu** (target <= 1.10)
- \`keyward import\`: $IMPORT_KEYS Estuary tokens in **$import_secs s** ($import_rate rows/s; target: 1,000,000 in under 60 s on SQLite)
- cold keys / warm verify requests/s: **$(awk -v k="$k_rps" -v v="$m_rps" 'BEGIN { printf "%.2f", k / v }')** (target >= 0.50 on SQLite); cache hits over the cold run: $cold_hit_pct%; the cold node's peak RSS: $((cold_rss_kb / 1024)) MB
- seeding: $KEYS keys in $seed_secs s (**$seed_rate keys/s**); cache hits/misses over the run: $hits / $misses; usage flushes: $flushes, $flush_ms ms each on average"

  if [ "$backend" = postgres ]; then
    # Two nodes on the same database behind one nginx (round robin, keep-alive upstreams).
    serve "$db" "$((PORT + 1))"
    measured=("$server" "$node_pid")
    mkdir -p "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream keyward { server 127.0.0.1:$PORT; server 127.0.0.1:$((PORT + 1)); keepalive 64; }
  server {
    listen 127.0.0.1:$((PORT + 2));
    location / { proxy_pass http://keyward; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    "$nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr" &
    pids+=("$!")
    lb="http://127.0.0.1:$((PORT + 2))"
    until curl -sf "$lb/readyz" >/dev/null; do sleep 0.01; done
    # Each node keeps its own cache: warm both, then load them together through nginx.
    warm "$base"
    warm "http://127.0.0.1:$((PORT + 1))"
    read -r lv_rps lv_p50 lv_p99 lv_err lv_cpu lv_wrk < <(load "$lb/api/v1/keys/verify" bench/verify.lua)
    read -r lh_rps lh_p50 lh_p99 lh_err lh_cpu lh_wrk < <(load "$lb/healthz")
    rows="$rows
$(row '2 nodes behind nginx: `GET /healthz`' "$lh_rps" "$lh_p50" "$lh_p99" "$lh_err" "$lh_cpu" "$lh_wrk")
$(row '2 nodes behind nginx: `POST /api/v1/keys/verify`' "$lv_rps" "$lv_p50" "$lv_p99" "$lv_err" "$lv_cpu" "$lv_wrk")"
    lratio=$(awk -v v="$lv_rps" -v h="$lh_rps" 'BEGIN { printf "%.2f", v / h }')
    notes="$notes
- two nodes behind nginx, verify / healthz through the same nginx: **$lratio** (nginx, two nodes and wrk share the machine's cores)"
    if [ -n "${verify_rps[sqlite]:-}" ]; then
      pratio=$(awk -v p="$m_rps" -v s="${verify_rps[sqlite]}" 'BEGIN { printf "%.2f", p / s }')
      notes="$notes
- cache-hit verify on PostgreSQL / on SQLite, one node each: **$pratio** (target >= 0.90)"
    fi
  fi
  if [ "$PEERS" = 1 ] && [ -z "${peers_table:-}" ]; then
    # The peers, once, beside this backend's node (its cache warm with the sample).
    . bench/peers.sh
    run_peers "$base" "$KEYWARD_VERIFIER" "$work/sample.txt"
    peers_table="### peers (beside keyward on $backend)

| endpoint | requests/s | p50 ms | p99 ms | non-2xx | peer CPU µs/request | wrk CPU µs/request |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
$peer_rows

$peer_notes
$PEER_WORK"
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
  table="### $backend

| endpoint | requests/s | p50 ms | p99 ms | non-2xx | keyward CPU µs/request | wrk CPU µs/request |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
$rows

$notes"
  tables="$tables$table

"
  # A run with failed answers measured something else than keyward's answers: say so loudly.
  if echo "$rows" | awk -F'|' '$6 + 0 > 0 { bad = 1 } END { exit !bad }'; then
    echo "WARNING [$backend]: some runs had non-2xx answers (last column); their figures do not count" >&2
  fi
done

[ -n "${peers_table:-}" ] && tables="$tables$peers_table

"
header="## $(date -u +%Y-%m-%d) — $(nproc) cores, $KEYS keys stored, wrk -t$THREADS -c$CONNECTIONS -d$DURATION (random keys from a sample of $SAMPLE, after a $WARMUP warm-up)"
echo
echo "$header"
echo
echo "$tables"
# Keep earlier runs below the new one (the first four lines are the title and its note).
if [ -f BENCHMARKS.md ]; then tail -n +5 BENCHMARKS.md > "$work/rest.md"; else : > "$work/rest.md"; fi
{ printf '# Benchmarks\n\nWritten by `bash bench/run.sh`; newest first.\n\n%s\n\n%s' "$header" "$tables"; cat "$work/rest.md"; } > BENCHMARKS.md
