#!/usr/bin/env python3
"""kill -9 trials of a failover pair on loopback: gap at the switch and TS packets lost.

    tools/failover-trials.py [--bin target/release/tandem] [--trials 20] [--scheme udp]
                             [--switch-at seamless] ASSET [-- EXTRA SERVER FLAGS]

Each trial starts `tandem primary` and `tandem secondary` (fresh processes, ports and
groups), a `tandem recv --json` on the live group, waits until the secondary is
Secondary_synchronized, kills the primary with SIGKILL at a random moment 0.4-1.4 s later,
and reads the receiver's report: changes of sender, the gap from the primary's last
datagram to the secondary's first (kernel receive times), CC errors and TS packets missing
at the change. Prints one line per trial and a summary.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def status(binary, addr):
    try:
        out = subprocess.run([binary, "status", addr, "--json"], capture_output=True,
                             timeout=5)
        return json.loads(out.stdout) if out.returncode == 0 else None
    except Exception:
        return None


def wait_state(binary, addr, want, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = status(binary, addr)
        if s and s.get("state") == want:
            return True
        time.sleep(0.05)
    return False


def trial(a, n, logdir):
    base = 31000 + (os.getpid() % 500) * 10 + (n % 50) * 200 % 20000
    lo = lambda p: f"127.0.0.1:{base + p}"
    live = f"239.255.77.{1 + n % 200}:{base + 5}"
    muted = f"239.255.78.{1 + n % 200}:{base + 5}"
    common = [a.asset, "--loop", f"--dest={a.scheme}://{live}", f"--switch-at={a.switch_at}"]
    common += a.extra
    p_cmd = [a.bin, "primary"] + common + [f"--sync-listen={lo(0)}", f"--sync-peer={lo(1)}",
                                           f"--control-listen={lo(2)}"]
    s_cmd = [a.bin, "secondary"] + common + [f"--muted=udp://{muted}", f"--sync-listen={lo(1)}",
                                             f"--sync-peer={lo(0)}", f"--control-listen={lo(3)}"]
    recv = subprocess.Popen([a.bin, "recv", f"{a.scheme}://{live}", "--json", "--seconds=4"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.15)
    plog = open(os.path.join(logdir, f"p{n}.log"), "w")
    slog = open(os.path.join(logdir, f"s{n}.log"), "w")
    p = subprocess.Popen(p_cmd, stderr=plog, stdout=subprocess.DEVNULL)
    s = subprocess.Popen(s_cmd, stderr=slog, stdout=subprocess.DEVNULL)
    try:
        if not wait_state(a.bin, lo(3), "Secondary_synchronized", 3.0):
            return {"error": "secondary did not synchronise"}
        time.sleep(0.4 + random.random())
        p.send_signal(signal.SIGKILL)
        p.wait()
        out, _ = recv.communicate(timeout=10)
        r = json.loads(out)
        ch = r["sender_changes"]
        res = {"changes": ch["count"], "cc_errors": r["tr101290"]["cc_error"]["count"]}
        if ch["list"]:
            c = ch["list"][0]
            res.update(gap_us=c["gap_us"], cc_at_switch=c["cc_errors"],
                       ts_missing=c["ts_packets_missing_est"])
        return res
    finally:
        for x in (p, s, recv):
            if x.poll() is None:
                x.kill()
                x.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("asset")
    ap.add_argument("--bin", default="target/release/tandem")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--scheme", default="udp")
    ap.add_argument("--switch-at", default="seamless")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    logdir = tempfile.mkdtemp(prefix="tandem-trials-")
    subprocess.run([a.bin, "index", a.asset], check=True, capture_output=True)
    results = []
    for n in range(a.trials):
        r = trial(a, n, logdir)
        results.append(r)
        print(f"trial {n + 1:2}: {json.dumps(r)}", flush=True)
    ok = [r for r in results if "gap_us" in r]
    if ok:
        gaps = sorted(r["gap_us"] / 1000 for r in ok)
        print(f"\n{a.asset} ({a.scheme}, {a.switch_at}): {len(ok)}/{len(results)} trials with a "
              f"switch; gap ms min {gaps[0]:.2f} / median {statistics.median(gaps):.2f} / "
              f"max {gaps[-1]:.2f}; TS packets missing at the switch: "
              f"{sorted(set(r['ts_missing'] for r in ok))}; CC errors in all: "
              f"{sum(r['cc_errors'] for r in ok)}; sender changes per trial: "
              f"{sorted(set(r['changes'] for r in results if 'changes' in r))}; logs {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
