#!/usr/bin/env python3
"""CPU per second of stream of several senders running AT THE SAME TIME (an A/B test).

Each sender plays to its own loopback multicast group (239.255.77.1:5001, .2:5002, ...),
received by its own `tandem recv`; CPU time is summed over the sender's threads from
/proc/PID/task/*/schedstat (nanoseconds on a CPU) over a steady window that starts 1 s after
the senders. The senders rotate through the slots (group, and the order receivers and
senders start in) from run to run: on this VM the first-started pair runs measurably
cheaper (an A/A run of one binary in two fixed slots came out ~10 % apart). Use a multiple
of the number of senders for RUNS. Prints each run and, per sender, the median ratio to the
first one.

    tools/cpu-ab.py RUNS SECONDS NAME=COMMAND [NAME=COMMAND ...]

COMMAND is split like a shell line; `{g}` stands for the sender's GROUP:PORT and `{asset}`
for the asset (--asset, default assets/demo-25fps.ts; commands run in its directory).
Example (the session 3 comparison in CHANGELOG.md):

    tools/cpu-ab.py 12 8 \\
      'multicat=multicat -U {asset} {g}@127.0.0.1' \\
      'tandem=target/release/tandem play {asset} --dest udp://{g} --iface 127.0.0.1 --loop' \\
      'floor=/tmp/minimal-pacer {asset} {g} 4209000'

(`cc -O2 -o /tmp/minimal-pacer tools/minimal-pacer.c`; multicat needs `ingests -p PCRPID
ASSET` first.) Only loopback is used: every receiver joins on 127.0.0.1 and the script
refuses to run if the groups would not be routed out of lo from 127.0.0.1.
"""
import argparse
import glob
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_ns(pid):
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(f) as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def routed_via_lo(group):
    out = subprocess.run(
        ["ip", "route", "get", group, "from", "127.0.0.1"],
        capture_output=True,
        text=True,
    ).stdout
    return " dev lo" in out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("senders", nargs="+", metavar="NAME=COMMAND")
    ap.add_argument("--asset", default=os.path.join(ROOT, "assets/demo-25fps.ts"))
    ap.add_argument("--tandem", default=os.path.join(ROOT, "target/release/tandem"))
    ap.add_argument("--pin", action="store_true",
                    help="run slot k's receiver and sender on CPU k modulo the CPU count "
                         "(taskset): no cross-CPU wakes, the slots rotate over the CPUs")
    a = ap.parse_args()
    specs = []
    for s in a.senders:
        name, sep, cmd = s.partition("=")
        if not sep or not cmd:
            sys.exit(f"cpu-ab: '{s}' is not NAME=COMMAND")
        specs.append((name, cmd))
    asset = os.path.abspath(a.asset)
    groups = [f"239.255.77.{i + 1}:{5001 + i}" for i in range(len(specs))]
    for g in groups:
        if not routed_via_lo(g.split(":")[0]):
            sys.exit(f"cpu-ab: {g} from 127.0.0.1 would not leave via lo; refusing")
    if not os.access(a.tandem, os.X_OK):
        sys.exit(f"cpu-ab: {a.tandem} not found (cargo build --release)")
    res = {n: [] for n, _ in specs}
    for r in range(a.runs):
        # Sender i takes slot (i + r) % n this run; slot k = group k, started k-th.
        n = len(specs)
        slot_of = [(i + r) % n for i in range(n)]
        ncpu = os.cpu_count() or 1
        pin = (lambda k: ["taskset", "-c", str(k % ncpu)]) if a.pin else (lambda k: [])
        recvs = [
            subprocess.Popen(
                pin(k) + [a.tandem, "recv", f"udp://{g}", "--iface", "127.0.0.1",
                          "--seconds", str(a.seconds + 3), "--json"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for k, g in enumerate(groups)
        ]
        time.sleep(0.5)
        procs = {}
        try:
            for i in sorted(range(n), key=lambda i: slot_of[i]):
                g = groups[slot_of[i]]
                argv = shlex.split(specs[i][1].format(g=g, asset=asset))
                if "/" in argv[0]:
                    argv[0] = os.path.abspath(argv[0])  # commands run in the asset's directory
                procs[i] = subprocess.Popen(
                    pin(slot_of[i]) + argv, cwd=os.path.dirname(asset),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            c0 = {i: cpu_ns(p.pid) for i, p in procs.items()}
            t0 = time.monotonic()
            time.sleep(a.seconds)
            c1 = {i: cpu_ns(p.pid) for i, p in procs.items()}
            dt = time.monotonic() - t0
            dead = [specs[i][0] for i, p in procs.items() if p.poll() is not None]
        finally:
            for p in list(procs.values()) + recvs:
                p.kill()
                p.wait()
        if dead:
            sys.exit(f"cpu-ab: run {r}: {', '.join(dead)} exited early (check the command)")
        for i, (n, _) in enumerate(specs):
            res[n].append((c1[i] - c0[i]) / 1e6 / dt)
        base = res[specs[0][0]][-1]
        print(f"run {r}: " + "  ".join(f"{n} {res[n][-1]:.2f}" for n, _ in specs)
              + " ms/s   ratio to " + specs[0][0] + ": "
              + " ".join(f"{res[n][-1] / base:.3f}" for n, _ in specs[1:]), flush=True)
    print("median CPU ms per s of stream: "
          + "  ".join(f"{n} {statistics.median(v):.2f}" for n, v in res.items()))
    b = specs[0][0]
    for n, _ in specs[1:]:
        rr = [x / y for x, y in zip(res[n], res[b])]
        below = sum(1 for x in rr if x < 1)
        print(f"{n}/{b}: median ratio {statistics.median(rr):.3f}, {below}/{len(rr)} runs below 1, "
              "runs " + " ".join(f"{x:.2f}" for x in rr))


if __name__ == "__main__":
    main()
