#!/usr/bin/env bash
# The whole test suite. Installs what the tests need on a fresh machine, then runs them.
# Usage: bash scripts/test.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests spawn the real binary; build everything once, then run.
cargo test --workspace --locked --no-fail-fast "$@"
