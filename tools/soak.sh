#!/usr/bin/env bash
# Soak test for false failovers: a healthy pair on loopback for SECONDS (default
# 600) with the other core kept busy by a shell busy loop, a receiver (`tandem recv`, kernel
# timestamps) on the live group. Every change of the server on air is classified:
#   false  - a switch while the primary's datagrams were still reaching the live group
#            within the detection time (miss x heartbeat) before it was declared;
#   stall  - the primary's output had really stopped for at least the detection time
#            (a real stall of the primary: taking over was right).
# Also lists the servers' failures (-> Failed, by kernel or self detection), their
# recoveries (Failed -> Secondary_synchronizing: Recover) and the step-downs of a woken
# owner. Prints the heartbeat settings and the kernel's pacer tolerance used, every such
# state change with its time and reason, the receiver's figures, and one RESULT line.
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
cargo build --release --quiet   # never soak a stale binary
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
"$bin" status "127.0.0.1:$(( port + 3 ))" --json > "$out/status-a-start.json" 2>/dev/null || true
sleep "$(( secs + 2 ))"
"$bin" status "127.0.0.1:$(( port + 4 ))" --json > "$out/status-b-end.json" 2>/dev/null || true
"$bin" status "127.0.0.1:$(( port + 3 ))" --json > "$out/status-a-end.json" 2>/dev/null || true
cleanup
pids=()
python3 - "$out" "$miss" "${HEARTBEAT_US:-}" "$asset" "$secs" <<'PY'
import json, sys, os
out, miss, hb_us, asset, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def events(name):
    p = os.path.join(out, name)
    ev = []
    if os.path.exists(p):
        for line in open(p):
            try: ev.append(json.loads(line))
            except ValueError: pass
    return ev
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception:
        return None
recv = json.load(open(os.path.join(out, "recv.json")))
hb_ns = int(hb_us) * 1000 if hb_us else None
window = None
pacer_tol = None
for name in ("status-a-start.json", "status-start.json", "status-b-end.json", "status-a-end.json"):
    st = load(name)
    if not st:
        continue
    if st.get("heartbeat_us"):
        hb_ns = hb_ns or int(st["heartbeat_us"]) * 1000
    if st.get("detection_window_us"):
        window = window or int(st["detection_window_us"]) * 1000
    if st.get("state") == "Primary" and pacer_tol is None:
        for c in st.get("kernel") or []:
            if c.get("name") == "pacer":
                pacer_tol = c.get("deadline_us")
if window is None and hb_ns:
    window = miss * hb_ns
ms = lambda ns: f"{ns/1e6:.2f}" if ns is not None else "?"
print()
print(f"=== soak {secs} s, {asset} ===")
print(f"settings: heartbeat {hb_ns/1e3 if hb_ns else '?'} us x --miss {miss} = detection window {ms(window)} ms; "
      f"kernel pacer tolerance (past its next due send, while Primary) {pacer_tol/1e3 if pacer_tol else '?'} ms")
changes = recv["sender_changes"]["list"]
trans = []
for server, name in (("A", "a.events"), ("B", "b.events")):
    for e in events(name):
        if e.get("event") == "transition":
            trans.append((e["t_real_ns"], server, e))
trans.sort(key=lambda x: x[0])
t0 = trans[0][0] if trans else 0
rel = lambda t: f"{(t - t0)/1e9:8.3f} s"
takeovers = [(t, s, e) for t, s, e in trans if e.get("to") == "Secondary_no_primary"]
failed = [(t, s, e) for t, s, e in trans if e.get("to") == "Failed"]
recovered = [(t, s, e) for t, s, e in trans if e.get("from") == "Failed" and e.get("trigger") == "Recover"]
stepdowns = [(t, s, e) for t, s, e in trans if e.get("trigger") in ("HigherEpoch", "PeerOnAir")]
print("state changes after start-up (time from the first transition):")
for t, s, e in trans:
    if e.get("to") in ("Secondary_no_primary", "Failed") or e.get("from") == "Failed" or e.get("trigger") in ("HigherEpoch", "PeerOnAir"):
        print(f"  {rel(t)} {s}: {e.get('from')} -> {e.get('to')}: {e.get('trigger')}: {e.get('reason')}")
false_n = stall_n = 0
print("takeovers, classified by how long the old sender's output had been silent at the receiver when it was declared:")
for t, server, e in takeovers:
    after = [c for c in changes if c["rx_ns"] >= t]
    silent = None
    if after:
        c = after[0]
        last_old = c["rx_ns"] - int(c["gap_us"] * 1000)
        silent = t - last_old
    if silent is not None and window is not None and silent < window:
        kind = "FALSE (old sender still on the live group within the window)"; false_n += 1
    else:
        kind = "real stall (old sender silent >= the window)"; stall_n += 1
    print(f"  {rel(t)} by {server} on {e.get('trigger')}: silent {ms(silent)} ms -> {kind}")
if not takeovers:
    print("  (none)")
dur = recv.get("duration_s", 0)
rtp = recv.get("rtp") or {}
print(f"receiver: {recv['datagrams']} datagrams over {dur:.1f} s, {recv['sender_changes']['count']} changes of sender, "
      f"gaps >= 10 ms: {recv['gaps']['over_10ms']}, >= 20 ms: {recv['gaps']['over_20ms']}, max gap {recv['gaps']['max_us']/1e3:.1f} ms, "
      f"CC errors {recv['tr101290']['cc_error']['count']}, RTP lost {rtp.get('lost')}, duplicates {rtp.get('duplicates')}, "
      f"receiver socket drops {(recv.get('run') or {}).get('socket_drops')}")
ends = []
for name, who in (("status-a-end.json", "A"), ("status-b-end.json", "B")):
    st = load(name)
    ends.append(f"{who} {st.get('state') if st else '?'}")
print(f"end states: {', '.join(ends)}")
by = lambda lst: ", ".join(f"{k} {v}" for k, v in sorted({x: sum(1 for _, _, e in lst if e.get('trigger') == x) for x in {e.get('trigger') for _, _, e in lst}}.items())) or "-"
print(f"RESULT: {len(takeovers)} takeover(s) [{by(takeovers)}]: {false_n} false failover(s), {stall_n} after a real stall; "
      f"{len(failed)} server failure(s) [{by(failed)}], {len(recovered)} recovery(ies), {len(stepdowns)} step-down(s) of a woken owner")
sys.exit(1 if false_n else 0)
PY
