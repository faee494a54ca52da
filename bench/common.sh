# Sourced by the bench scripts (run.sh, ab.sh, ab_keys.sh, profile.sh): what they all measure
# the same way.

# cpu_ticks <pid>...: the processes' user + system CPU so far, in clock ticks (proc_pid_stat(5)
# fields 14 and 15; `getconf CLK_TCK` a second).
cpu_ticks() {
  local pid total=0
  for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}

# until_ready <pid> <url> <log>: waits until the process answers the URL (shows its log and
# stops if it exited instead).
until_ready() {
  until curl -sf "$2" >/dev/null; do
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.005
  done
}

# to_ms <wrk latency>: milliseconds (wrk prints 812.00us, 1.23ms or 1.02s).
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /s$/ && v !~ /ms$/) n *= 1000; printf "%.3f", n }'
}

# wrk_p99 <wrk output, run with --latency>: its p99 in milliseconds.
wrk_p99() {
  to_ms "$(echo "$1" | awk '$1 == "99%" {print $2}')"
}

# warm <base url> [duration] [connections]: verifies the sample's keys in order (bench/verify.lua,
# KEYWARD_KEYS_FILE) for `duration` (default $WARMUP, else 10s), so that the runs after it answer
# from the cache, then waits one flush interval and until the usage this caused is written:
# every run then starts from the same steady state.
warm() {
  local duration=${2:-${WARMUP:-10s}}
  echo "warming the cache for $duration..." >&2
  KEYWARD_KEY_ORDER=sequential wrk -t1 -c"${3:-${CONNECTIONS:-32}}" -d"$duration" -s bench/verify.lua \
    "$1/api/v1/keys/verify" >/dev/null
  sleep 6
  until grep -q '^keyward_usage_pending 0$' <<<"$(curl -s "$1/metrics")"; do sleep 0.5; done
}
