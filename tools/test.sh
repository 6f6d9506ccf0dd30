#!/usr/bin/env bash
# The project's test command (README.md): unit, property and integration tests, including
# real-socket tests on loopback and (as root) the network-namespace lab tests.
#
# Unit, property and light integration tests run in parallel (TANDEM_TEST_THREADS, 2).
# The integration tests that run real-time server processes (paced playout, failover
# detection windows of a few ms) run one at a time: two of them side by side on a 2-core
# machine stall each other's pacers and event loops past their detection windows.
set -euo pipefail
cd "$(dirname "$0")/.."
HEAVY="failover netns_failover bench demo vlc play http systemd serve chaos api"
light=() heavy=()
for f in tests/*.rs; do
  t=$(basename "$f" .rs)
  if [[ " $HEAVY " == *" $t "* ]]; then heavy+=(--test "$t"); else light+=(--test "$t"); fi
done
cargo build --locked --bins
cargo test --locked --no-fail-fast --lib --bins "${light[@]}" -- --test-threads="${TANDEM_TEST_THREADS:-2}" "$@"
cargo test --locked --doc -- --test-threads="${TANDEM_TEST_THREADS:-2}" "$@"
cargo test --locked --no-fail-fast "${heavy[@]}" -- --test-threads=1 "$@"
