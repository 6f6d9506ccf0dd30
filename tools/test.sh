#!/usr/bin/env bash
# The project's test command (README.md): unit, property and integration tests, including
# real-socket tests on loopback and (as root) the network-namespace lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bins
cargo test --locked -- --test-threads="${TANDEM_TEST_THREADS:-2}" "$@"
