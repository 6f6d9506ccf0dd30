#!/usr/bin/env python3
"""Stall noise: make this machine behave like a noisy shared CI machine.

One process per CPU, pinned to it, at SCHED_FIFO priority (root), sleeps a random
0.3-1.5 s and then takes its CPU away for a burst: mostly 2-8 ms, sometimes 10-25 ms
(--max-ms). Every thread on that CPU (pacers, event loops, receivers) is held off for the
burst, much as a hypervisor that steals a vCPU does: the stalls that made self-failovers
on CI (a pacer woken 20 ms late) can be reproduced here, and the tests made to ride them.

    sudo tools/stall-noise.py [--seconds S] [--max-ms M] [--seed N]

Ends after S seconds (default 600) or on Ctrl-C. The kernel's RT throttling
(/proc/sys/kernel/sched_rt_runtime_us) bounds what it can take in any case.
"""
import argparse
import os
import random
import signal
import sys
import time


def burst_loop(cpu, seconds, max_ms, seed):
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except PermissionError:
        sys.exit("stall-noise: SCHED_FIFO needs root (or CAP_SYS_NICE)")
    rnd = random.Random(seed * 1000 + cpu)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        time.sleep(rnd.uniform(0.3, 1.5))
        ms = rnd.uniform(10, max_ms) if rnd.random() < 0.15 else rnd.uniform(2, 8)
        t = time.monotonic() + ms / 1000
        while time.monotonic() < t:
            pass
        n += 1
    print(f"stall-noise: cpu {cpu}: {n} bursts", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--max-ms", type=float, default=25)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    kids = []
    for cpu in sorted(os.sched_getaffinity(0)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            burst_loop(cpu, a.seconds, a.max_ms, a.seed)
            os._exit(0)
        kids.append(pid)
    try:
        for pid in kids:
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        for pid in kids:
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
