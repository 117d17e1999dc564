#!/usr/bin/env bash
# A short run of every fuzz target (fuzz/README.md), from its committed seeds
# (fuzz/seeds/TARGET), FUZZ_SECONDS each (default 30). Fails on any crash, panic, leak, timeout
# or out-of-memory; libFuzzer leaves the input in fuzz/artifacts/TARGET/. Installs cargo-fuzz
# from the Rust registry if it is missing; RUSTC_BOOTSTRAP=1 lets the stable toolchain build
# with the nightly flags cargo-fuzz passes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
seconds=${FUZZ_SECONDS:-30}
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -a
for target in $(cargo fuzz list); do
  corpus=$(mktemp -d)
  echo "== fuzz $target for ${seconds}s"
  # The seeds are read, never written: new inputs go to a temporary corpus.
  log="$corpus.log"
  status=0
  cargo fuzz run -a "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$log" || true
  if [ "$status" != 0 ]; then
    tail -n 60 "$log" >&2
  fi
  rm -f "$log"
  rm -rf "$corpus"
  if [ "$status" != 0 ]; then
    echo "fuzz target $target failed (exit $status); see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
