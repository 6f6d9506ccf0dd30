#!/usr/bin/env bash
# Side-by-side pacing comparison of `tandem play` and VideoLAN multicat, run AT THE SAME
# TIME on the same asset, each measured by its own `tandem recv` (kernel timestamps) on a
# loopback multicast group. Prints per-run tables and the medians (benches/pacing.rs).
#
#   tools/pacing-compare.sh [RUNS] [SECONDS] [ASSET]
#   tools/pacing-compare.sh 5 10 assets/demo-25fps.ts
#
# Needs multicat/ingests (apt-get install multicat). Only loopback is used: tandem names
# its source bound to 127.0.0.1 with TTL 1; multicat's source is bound to 127.0.0.1, which
# Linux routes out of lo (checked below before anything is sent).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-10}
asset=${3:-assets/demo-25fps.ts}
for g in 239.255.77.1 239.255.77.2; do
  dev=$(ip route get "$g" from 127.0.0.1 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)
  if [ "$dev" != "lo" ]; then
    echo "pacing-compare: $g from 127.0.0.1 would leave via '${dev:-?}', not lo; refusing" >&2
    exit 1
  fi
done
for t in multicat ingests; do
  command -v "$t" >/dev/null || { echo "pacing-compare: $t not found (apt-get install multicat)" >&2; exit 1; }
done
PACING_RUNS=$runs PACING_SECONDS=$secs PACING_ASSET=$asset exec cargo bench --bench pacing
