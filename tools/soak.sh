#!/usr/bin/env bash
# Soak test for false failovers (issue 3): a healthy pair on loopback for SECONDS (default
# 600) with the other core kept busy by a shell busy loop, a receiver (`tandem recv`, kernel
# timestamps) on the live group. Every change of the server on air is classified:
#   false  - a switch while the primary's datagrams were still reaching the live group
#            within the detection time (miss x heartbeat) before it was declared;
#   stall  - the primary's output had really stopped for at least the detection time
#            (a real stall of the primary: taking over was right).
# Prints the heartbeat settings used, the counts, and every switch with its figures.
#
#   tools/soak.sh [SECONDS] [ASSET]          env: MISS=3 HEARTBEAT_US= (pair default)
#                                            BUSY=1 (0: no busy loop) SWITCH_AT=seamless
#                                            OUT=DIR (keep logs; default: a temp dir)
# Exit code 1 when any false failover happened.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
asset=${2:-fixtures/cbr-59.94fps.ts}
miss=${MISS:-3}
busy=${BUSY:-1}
switch_at=${SWITCH_AT:-seamless}
out=${OUT:-$(mktemp -d /tmp/tandem-soak.XXXXXX)}
mkdir -p "$out"
bin=target/release/tandem
[ -x "$bin" ] || cargo build --release --quiet
port=$(( 24000 + $$ % 5000 ))
live="rtp://239.251.$(( $$ % 200 + 1 )).1:$port"
muted="rtp://239.251.$(( $$ % 200 + 1 )).2:$port"
hb=()
[ -n "${HEARTBEAT_US:-}" ] && hb=(--heartbeat-us "$HEARTBEAT_US")
pids=()
cleanup() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "soak: ${secs} s, asset $asset, live $live, muted $muted, --miss $miss ${hb[*]:-(heartbeat: pair default)}, switch-at $switch_at, busy loop: $busy, logs in $out"
"$bin" recv "$live" --json --seconds "$(( secs + 3 ))" > "$out/recv.json" 2> "$out/recv.log" &
pids+=($!)
sleep 0.3
common=("$asset" --dest "$live" --muted "$muted" --loop --session-id "soak-$$" --miss "$miss" "${hb[@]}"
        --switch-at "$switch_at")
"$bin" primary "${common[@]}" --sync-listen "127.0.0.1:$(( port + 1 ))" --sync-peer "127.0.0.1:$(( port + 2 ))" \
  --control-listen "127.0.0.1:$(( port + 3 ))" --event-log "$out/a.events" > "$out/a.log" 2>&1 &
pids+=($!)
"$bin" secondary "${common[@]}" --sync-listen "127.0.0.1:$(( port + 2 ))" --sync-peer "127.0.0.1:$(( port + 1 ))" \
  --control-listen "127.0.0.1:$(( port + 4 ))" --event-log "$out/b.events" > "$out/b.log" 2>&1 &
pids+=($!)
if [ "$busy" = 1 ]; then
  timeout "$(( secs + 3 ))" sh -c 'while :; do :; done' &
  pids+=($!)
fi
sleep 1
"$bin" status "127.0.0.1:$(( port + 4 ))" --json > "$out/status-start.json" 2>/dev/null || true
sleep "$(( secs + 2 ))"
"$bin" status "127.0.0.1:$(( port + 4 ))" --json > "$out/status-b-end.json" 2>/dev/null || true
"$bin" status "127.0.0.1:$(( port + 3 ))" --json > "$out/status-a-end.json" 2>/dev/null || true
cleanup
pids=()
python3 - "$out" "$miss" "${HEARTBEAT_US:-}" "$asset" <<'PY'
import json, sys, os
out, miss, hb_us, asset = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def events(name):
    p = os.path.join(out, name)
    ev = []
    if os.path.exists(p):
        for line in open(p):
            try: ev.append(json.loads(line))
            except ValueError: pass
    return ev
recv = json.load(open(os.path.join(out, "recv.json")))
hb_ns = int(hb_us) * 1000 if hb_us else None
window = None
for name in ("status-start.json", "status-b-end.json"):
    try:
        st = json.load(open(os.path.join(out, name)))
    except Exception:
        continue
    if st.get("heartbeat_us"):
        hb_ns = hb_ns or int(st["heartbeat_us"]) * 1000
    if st.get("detection_window_us"):
        window = window or int(st["detection_window_us"]) * 1000
if window is None and hb_ns:
    window = miss * hb_ns
print(f"heartbeat settings: period {hb_ns/1e3 if hb_ns else '?'} us, --miss {miss}, detection window "
      f"{window/1e6 if window else '?'} ms (from the secondary's tandem status)")
changes = recv["sender_changes"]["list"]
takeovers = []
for server, name in (("A", "a.events"), ("B", "b.events")):
    for e in events(name):
        if e.get("event") == "transition" and e.get("to") == "Secondary_no_primary":
            takeovers.append((e["t_real_ns"], server, e.get("trigger"), e.get("reason")))
takeovers.sort()
false_n = stall_n = 0
for t, server, trig, reason in takeovers:
    # The first change of sender on the live group after the declaration: the old sender's
    # last datagram before it is the primary's last output the receiver saw.
    after = [c for c in changes if c["rx_ns"] >= t]
    if after:
        c = after[0]
        last_old = c["rx_ns"] - int(c["gap_us"] * 1000)
        silent = t - last_old
    else:
        silent = None
    if silent is not None and window is not None and silent < window:
        kind = "false"; false_n += 1
    else:
        kind = "stall"; stall_n += 1
    print(f"  takeover by {server} at {t}: {trig}: {reason}; primary silent {silent/1e6 if silent is not None else '?'} ms before it -> {kind}")
dur = recv.get("duration_s", 0)
print(f"receiver: {recv['datagrams']} datagrams over {dur:.1f} s, {recv['sender_changes']['count']} changes of sender, "
      f"gaps >= 10 ms: {recv['gaps']['over_10ms']}, >= 20 ms: {recv['gaps']['over_20ms']}, max gap {recv['gaps']['max_us']/1e3:.1f} ms, "
      f"CC errors {recv['tr101290']['cc_error']['count']}, RTP lost {(recv.get('rtp') or {}).get('lost')}, "
      f"receiver socket drops {(recv.get('run') or {}).get('socket_drops')}")
print(f"RESULT: {len(takeovers)} takeover(s): {false_n} false failover(s), {stall_n} after a real stall of the primary's output")
sys.exit(1 if false_n else 0)
PY
