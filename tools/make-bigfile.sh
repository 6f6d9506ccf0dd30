#!/usr/bin/env bash
# Makes a ~100 MB CBR MPEG-TS for the index benchmark (not committed):
# 60 s of 640x360 H.264 (nal-hrd CBR 8 Mb/s) + AAC, muxed at a constant 14 Mb/s with null
# padding and a PCR every 20 ms: about 105 MB, the size multicat's ingests was timed on
# (benches/index_build.rs compares the two).
#
#   tools/make-bigfile.sh [OUT]      # default: target/bench/bigfile-14mbps.ts
#
# Skips the work when OUT already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench/bigfile-14mbps.ts}
if [[ -s "$out" ]]; then
  echo "make-bigfile: $out exists ($(stat -c %s "$out") bytes)" >&2
  exit 0
fi
command -v ffmpeg >/dev/null || { echo "make-bigfile: ffmpeg not found (apt-get install -y ffmpeg)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$.ts"
trap 'rm -f "$tmp"' EXIT
nice -n 10 ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25" \
  -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
  -t 60 -map 0:v -map 1:a \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
  -x264-params "nal-hrd=cbr:force-cfr=1" -b:v 8M -minrate 8M -maxrate 8M -bufsize 4M \
  -g 25 -keyint_min 25 -sc_threshold 0 \
  -c:a aac -b:a 128k \
  -f mpegts -muxrate 14000000 -pcr_period 20 -mpegts_service_id 1 \
  "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "make-bigfile: wrote $out ($(stat -c %s "$out") bytes)" >&2
