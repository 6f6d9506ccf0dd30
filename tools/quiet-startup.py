#!/usr/bin/env python3
"""Quiet start-up, measured (issue 13): does a server starting up beside a live output stall it?

One live output, `tandem play LIVE --dest udp://239.255.77.1:5077 --loop` (loopback), runs
for the whole run; each phase of P seconds has its own `tandem recv --json` on it. The
phases of a round alternate in the same run, in an order that rotates from round to round
(--modes, first one "none" for the paired figures):

  none          nothing else happens
  quiet         every S seconds a new server process starts beside it (the "restart
                fault"): the big asset is touched (so its identity is re-hashed: XXH3-128
                of the whole file, and the index re-stamped), `tandem play BIG --loop`
                starts on another group (offset map, hash, the 1 s read-ahead ring), plays
                for --hold seconds and is stopped (SIGTERM)
  loud          the same with `--no-quiet-startup` (start-up work at normal priority)
  quiet-nice    the same with `--quiet-cpu nice` (SCHED_BATCH nice 19 instead of SCHED_IDLE)
  notouch-quiet the same without touching the asset: its saved index is trusted (size and
  notouch-loud  mtime match), no re-hash, no re-stamp
  nosend-quiet  the same with the session 60 s ahead: start-up work only, nothing sent
  nosend-loud
  small-quiet   restarts of a small asset (fixtures/cbr-25fps.ts): process start and a
  small-loud    second output, next to no start-up work
  index-quiet   `tandem index --force BIG` (a full scan + hash) run back to back
  index-loud

Per phase it counts the receiver's inter-arrival gaps >= 5 ms (`gaps.over_5ms`; also
>= 10 / 20 ms and the largest) and prints, per mode, gaps per minute (the median over
phases and the total over all phases), the same paired with the round's "none" phase, and
how long the restarted servers took to start (spawn to their "playing" line: what quiet
start-up costs them).

  cargo build --release
  tools/quiet-startup.py --rounds 6 --phase-seconds 20 [--pin 1] [--live-args '--rt-priority 10'] [--json out.json]

The big asset defaults to target/bench/quiet-big.ts: assets/demo-25fps.ts concatenated
--big-copies times (130: ~490 MB), made once. Loopback only (TTL 1, --iface 127.0.0.1).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIVE_GROUP = "udp://239.255.77.1:5077"
OTHER_GROUP = "udp://239.255.77.2:5078"
ALL_MODES = ["none", "quiet", "loud", "quiet-nice", "notouch-quiet", "notouch-loud", "nosend-quiet", "nosend-loud", "small-quiet", "small-loud",
             "index-quiet", "index-loud"]
MODES = []


def pin(a):
    """`taskset -c CPU` when --pin is given: the live output and the restarted servers share
    one CPU (the worst case of two servers on one host: start-up work right on the pacer's
    CPU)."""
    return ["taskset", "-c", str(a.pin)] if a.pin is not None else []


def make_big(path, copies, tandem):
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    src = open(os.path.join(ROOT, "assets/demo-25fps.ts"), "rb").read()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for _ in range(copies):
            f.write(src)
    os.replace(tmp, path)
    subprocess.run([tandem, "index", path], check=True, stdout=subprocess.DEVNULL)
    print(f"quiet-startup: made {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


class Disturber:
    """Restarts a server process every `every` seconds until stopped."""

    def __init__(self, a, mode):
        self.a, self.mode = a, mode
        self.stop = threading.Event()
        self.startups = []  # seconds from spawn to "playing" (play) or exit (index)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def cmd(self):
        a, m = self.a, self.mode
        flags = ["--no-quiet-startup"] if m.endswith("loud") else []
        if m.endswith("nice"):
            flags = ["--quiet-cpu", "nice"]
        if m.startswith("index"):
            return pin(a) + [a.tandem, "index", "--force", a.big] + flags
        asset = a.small if m.startswith("small") else a.big
        if m.startswith("nosend"):
            # Start-up work only: the session starts in a minute, nothing is sent.
            flags += ["--start-at", str(int(time.time() * 1000) + 60_000)]
        return pin(a) + [a.tandem, "play", asset, "--dest", OTHER_GROUP, "--loop"] + flags

    def one(self):
        a = self.a
        if not self.mode.startswith("notouch"):
            os.utime(a.big)  # a new mtime: the server re-hashes the asset to trust its index
        t0 = time.monotonic()
        p = subprocess.Popen(self.cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if self.mode.startswith("index"):
            p.communicate()
            self.startups.append(time.monotonic() - t0)
            return
        ready = None
        deadline = t0 + a.hold
        for line in p.stderr:
            if "playing" in line:
                ready = time.monotonic() - t0
                break
            if time.monotonic() > deadline + 30:
                break
        if ready is not None:
            self.startups.append(ready)
        left = deadline - time.monotonic()
        if left > 0:
            self.stop.wait(left)
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.one()
            self.stop.wait(max(0.0, self.a.every - (time.monotonic() - t0)))

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join()


def phase(a, mode):
    out = subprocess.Popen(
        [a.tandem, "recv", LIVE_GROUP, "--seconds", str(a.phase_seconds), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    d = None
    if mode != "none":
        time.sleep(0.2)
        d = Disturber(a, mode)
        d.start()
    report = json.loads(out.communicate()[0])
    if d:
        d.finish()
    g = report["gaps"]
    minutes = report.get("duration_s", a.phase_seconds) / 60.0
    return {
        "mode": mode,
        "minutes": minutes,
        "datagrams": report.get("datagrams"),
        "over_5ms": g["over_5ms"],
        "over_10ms": g["over_10ms"],
        "over_20ms": g["over_20ms"],
        "max_gap_ms": g["max_us"] / 1000.0,
        "p999_gap_ms": g["p999_us"] / 1000.0,
        "startups_s": d.startups if d else [],
        "loadavg_1m": float(open("/proc/loadavg").read().split()[0]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--phase-seconds", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=3.0, help="seconds between restarts")
    ap.add_argument("--hold", type=float, default=1.5, help="seconds a restarted play runs")
    ap.add_argument("--modes", default="none,quiet,loud",
                    help="phases of a round, from: " + ", ".join(ALL_MODES))
    ap.add_argument("--small", default=os.path.join(ROOT, "fixtures/cbr-25fps.ts"))
    ap.add_argument("--live", default=os.path.join(ROOT, "assets/demo-25fps.ts"))
    ap.add_argument("--live-args", default="", help="extra flags of the live play, e.g. '--rt-priority 10'")
    ap.add_argument("--big", default=os.path.join(ROOT, "target/bench/quiet-big.ts"))
    ap.add_argument("--big-copies", type=int, default=130)
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target/release/tandem"))
    ap.add_argument("--pin", type=int, help="run the live play and the restarted servers on this CPU")
    ap.add_argument("--json", help="write every phase's figures here")
    a = ap.parse_args()
    MODES[:] = a.modes.split(",")
    for m in MODES:
        if m not in ALL_MODES:
            ap.error(f"unknown mode {m}")
    make_big(a.big, a.big_copies, a.tandem)
    live = subprocess.Popen(
        pin(a) + [a.tandem, "play", a.live, "--dest", LIVE_GROUP, "--loop"] + a.live_args.split(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    phases = []
    try:
        time.sleep(1.0)
        for r in range(a.rounds):
            k = r % len(MODES)
            order = MODES[k:] + MODES[:k]
            for mode in order:
                ph = phase(a, mode)
                ph["round"] = r
                phases.append(ph)
                su = ph["startups_s"]
                print(
                    f"round {r} {mode:12s}: gaps>=5ms {ph['over_5ms']:3d} >=10ms {ph['over_10ms']:3d} "
                    f">=20ms {ph['over_20ms']:3d} max {ph['max_gap_ms']:6.2f} ms load {ph['loadavg_1m']:.1f}"
                    + (f"  restarts {len(su)}, start-up median {statistics.median(su):.3f} s" if su else ""),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=10)
    print(f"live {os.path.basename(a.live)} {a.live_args}; pin {a.pin}; every {a.every} s, "
          f"{a.rounds} rounds of {a.phase_seconds} s phases")
    print("mode   phases  gaps>=5ms/min median [min..max]  total>=5ms/min  >=10ms/min  >=20ms/min  max gap ms  start-up s (median)")
    summary = {}
    for mode in MODES:
        ps = [p for p in phases if p["mode"] == mode]
        if not ps:
            continue
        rates = [p["over_5ms"] / p["minutes"] for p in ps]
        mins = sum(p["minutes"] for p in ps)
        su = [s for p in ps for s in p["startups_s"]]
        row = {
            "phases": len(ps),
            "per_min_median": statistics.median(rates),
            "per_min_min": min(rates),
            "per_min_max": max(rates),
            "per_min_total_5ms": sum(p["over_5ms"] for p in ps) / mins,
            "per_min_total_10ms": sum(p["over_10ms"] for p in ps) / mins,
            "per_min_total_20ms": sum(p["over_20ms"] for p in ps) / mins,
            "max_gap_ms": max(p["max_gap_ms"] for p in ps),
            "startup_median_s": statistics.median(su) if su else None,
            "restarts": len(su),
        }
        summary[mode] = row
        print(
            f"{mode:12s}  {len(ps):6d}  {row['per_min_median']:8.1f} [{row['per_min_min']:.1f}..{row['per_min_max']:.1f}]"
            f"{row['per_min_total_5ms']:17.1f}{row['per_min_total_10ms']:12.1f}{row['per_min_total_20ms']:12.1f}"
            f"{row['max_gap_ms']:12.2f}  "
            + (f"{row['startup_median_s']:.3f} ({row['restarts']} restarts)" if su else "-")
        )
    # Paired by round (the three phases of a round are adjacent in time, so they share
    # the host's load): restart phase minus the round's "none" phase.
    paired = {}
    for mode in MODES[1:] if MODES[0] == "none" else []:
        diffs = []
        for r in range(a.rounds):
            by = {p["mode"]: p for p in phases if p["round"] == r}
            if mode in by and "none" in by:
                diffs.append(by[mode]["over_5ms"] / by[mode]["minutes"] - by["none"]["over_5ms"] / by["none"]["minutes"])
        if diffs:
            paired[mode] = {
                "median_diff_per_min": statistics.median(diffs),
                "rounds_not_above_none": sum(1 for d in diffs if d <= 0),
                "rounds": len(diffs),
            }
            print(
                f"{mode} - none, paired by round: median {statistics.median(diffs):+.1f} gaps>=5ms/min, "
                f"{paired[mode]['rounds_not_above_none']}/{len(diffs)} rounds not above none"
            )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "phases": phases, "summary": summary, "paired": paired}, f, indent=1)


if __name__ == "__main__":
    main()
