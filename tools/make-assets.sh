#!/usr/bin/env bash
# Rebuilds the bundled demo asset and the test fixtures with ffmpeg (Debian's ffmpeg 5.1+).
# The outputs are committed, so a fresh machine needs no ffmpeg to run the demo or the
# tests that read them; run this only to change them.
#
#   tools/make-assets.sh            # writes assets/ and fixtures/
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "make-assets: ffmpeg not found (apt-get install -y ffmpeg)" >&2; exit 1; }

# enc RATE SECONDS MUXRATE OUT [extra ffmpeg output args...]
# CBR H.264 (nal-hrd cbr) + AAC, constant mux rate with null padding, one GOP per second.
enc() {
  local rate=$1 secs=$2 muxrate=$3 out=$4; shift 4
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=${rate}" \
    -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
    -t "$secs" -map 0:v -map 1:a \
    -c:v libx264 -preset veryfast -tune zerolatency -pix_fmt yuv420p \
    -x264-params "nal-hrd=cbr:force-cfr=1" -b:v 1500k -minrate 1500k -maxrate 1500k -bufsize 750k \
    -g "$(gop "$rate")" -keyint_min "$(gop "$rate")" -sc_threshold 0 \
    -c:a aac -b:a 128k \
    -f mpegts -muxrate "$muxrate" -pcr_period 20 -mpegts_service_id 1 \
    -metadata service_name=tandem -metadata service_provider=tandem \
    "$@" "$out"
}

# GOP of about one second for a rate written as N or N/D.
gop() { awk -v r="$1" 'BEGIN { n = split(r, a, "/"); printf "%d", (n == 2 ? a[1] / a[2] : a[1]) + 0.5 }'; }

mkdir -p assets fixtures
# The demo asset: 25 fps, 12 s, 2.5 Mb/s CBR.
enc 25 12 2500000 assets/demo-25fps.ts

# Other frame rates (short).
enc 30000/1001 3 2500000 fixtures/cbr-29.97fps.ts
enc 60000/1001 3 3000000 fixtures/cbr-59.94fps.ts
enc 50 3 3000000 fixtures/cbr-50fps.ts
enc 25 3 2500000 fixtures/cbr-25fps.ts

# VBR without null padding (no -muxrate).
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=320x240:rate=25" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 3 -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p -c:a aac -b:a 96k \
  -f mpegts -pcr_period 20 fixtures/vbr-25fps.ts

# PCR wrap-around: timestamps start 2 s before 2^33 / 90 kHz (95443.717 s).
enc 25 4 2500000 fixtures/pcr-wrap-25fps.ts -output_ts_offset 95441.7

# Edge cases derived from cbr-25fps.ts with tools/ts-edit.py (no ffmpeg needed for these).
python3 tools/ts-edit.py truncate fixtures/cbr-25fps.ts fixtures/truncated-tail.ts
python3 tools/ts-edit.py syncloss fixtures/cbr-25fps.ts fixtures/sync-loss-middle.ts
python3 tools/ts-edit.py nopcr fixtures/cbr-25fps.ts fixtures/no-pcr.ts
python3 tools/ts-edit.py pcrpid fixtures/cbr-25fps.ts fixtures/pcr-own-pid.ts
python3 tools/ts-edit.py pmtchange fixtures/pcr-own-pid.ts fixtures/pmt-change.ts
python3 tools/ts-edit.py notts fixtures/cbr-25fps.ts fixtures/not-ts.bin
: > fixtures/empty.ts
ls -l assets fixtures
