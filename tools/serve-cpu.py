#!/usr/bin/env python3
"""CPU of protected channels in two `tandem serve` hosts against one multicat per channel,
measured AT THE SAME TIME on this machine (docs/serve.md, issue 10's measurement).

Two hosts (a and b, loopback) serve N channels of ASSET, primaries split 50/50, each channel
looping; once every channel is synchronised on both hosts, N multicat processes play the same
asset to N other groups, and the CPU time of both hosts and of every multicat is read from
/proc/PID/task/*/schedstat (nanoseconds on a CPU) over the same window. Also reported: the
time from start to every channel synchronised, the resident memory per channel, and the
takeovers (FailureDeclared) during the window.

    tools/serve-cpu.py [--channels N] [--seconds S] [--asset FILE] [--bin PATH]

Defaults: 10 channels, 8 s, assets/demo-25fps.ts (12 s: multicat does not loop, so the
window must end before the asset does), target/release/tandem. Needs multicat and ingests
(apt-get install multicat). Only loopback is used.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def host_toml(name, sync, peer, ctl, asset, n):
    out = [
        "[host]",
        f'name = "{name}"',
        f'sync_listen = "127.0.0.1:{sync}"',
        f'sync_peer = "127.0.0.1:{peer}"',
        f'control_listen = "127.0.0.1:{ctl}"',
        "",
    ]
    for k in range(n):
        out += [
            "[[channel]]",
            f'name = "ch{k:03}"',
            f'asset = "{asset}"',
            f'live = "rtp://239.255.{60 + k // 200}.{k % 200 + 1}:6{k:03}"',
            f'muted = "rtp://239.255.{70 + k // 200}.{k % 200 + 1}:6{k:03}"',
            f'primary = "{"a" if k % 2 == 0 else "b"}"',
            "loop = true",
            "",
        ]
    return "\n".join(out)


def listing(binary, ctl):
    r = subprocess.run(
        [binary, "status", f"127.0.0.1:{ctl}", "--json"], capture_output=True, text=True
    )
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return None


def all_synchronised(la, lb, n):
    if not la or not lb:
        return False
    ok = 0
    for x, y in zip(la["channels"], lb["channels"]):
        pair = {x.get("state"), y.get("state")}
        if pair == {"Primary", "Secondary_synchronized"}:
            ok += 1
    return ok == n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--asset", default=os.path.join(ROOT, "assets/demo-25fps.ts"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/tandem"))
    a = ap.parse_args()
    n = a.channels
    asset = os.path.abspath(a.asset)
    for t in ("multicat", "ingests"):
        if subprocess.run(["sh", "-c", f"command -v {t}"], capture_output=True).returncode:
            sys.exit(f"serve-cpu: {t} not found (apt-get install multicat)")
    work = tempfile.mkdtemp(prefix="tandem-serve-cpu-")
    # multicat's auxiliary file (PCR PID 256 in the bundled assets).
    local = os.path.join(work, os.path.basename(asset))
    os.symlink(asset, local)
    subprocess.run(["ingests", "-p", "256", local], check=True, capture_output=True, cwd=work)
    procs = []
    try:
        for name, sync, peer, ctl in (("a", 7451, 7452, 7461), ("b", 7452, 7451, 7462)):
            path = os.path.join(work, f"{name}.toml")
            with open(path, "w") as fh:
                fh.write(host_toml(name, sync, peer, ctl, asset, n))
        t0 = time.monotonic()
        hosts = []
        for name in ("a", "b"):
            log = open(os.path.join(work, f"{name}.log"), "w")
            p = subprocess.Popen([a.bin, "serve", os.path.join(work, f"{name}.toml")],
                                 stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            hosts.append(p)
        synced = None
        while time.monotonic() - t0 < 60:
            if all_synchronised(listing(a.bin, 7461), listing(a.bin, 7462), n):
                synced = time.monotonic() - t0
                break
            time.sleep(0.2)
        if synced is None:
            sys.exit(f"serve-cpu: the {n} channels did not all synchronise in 60 s (logs in {work})")
        time.sleep(1.0)
        mcs = []
        for k in range(n):
            g = f"239.255.{80 + k // 200}.{k % 200 + 1}:7{k:03}"
            p = subprocess.Popen(["multicat", "-U", "-t", "1", local, f"{g}@127.0.0.1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
            procs.append(p)
            mcs.append(p)
        time.sleep(1.0)  # multicat's start-up is not its steady state
        declared0 = sum(open(os.path.join(work, f"{h}.log")).read().count("FailureDeclared")
                        for h in ("a", "b"))
        c0 = [cpu_ns(p.pid) for p in hosts], [cpu_ns(p.pid) for p in mcs]
        w0 = time.monotonic()
        time.sleep(a.seconds)
        c1 = [cpu_ns(p.pid) for p in hosts], [cpu_ns(p.pid) for p in mcs]
        w = time.monotonic() - w0
        alive = sum(1 for p in mcs if p.poll() is None)
        declared = sum(open(os.path.join(work, f"{h}.log")).read().count("FailureDeclared")
                       for h in ("a", "b")) - declared0
        rss = sum(rss_kib(p.pid) for p in hosts)
        serve_ms = sum(y - x for x, y in zip(c0[0], c1[0])) / 1e6
        mc_ms = sum(y - x for x, y in zip(c0[1], c1[1])) / 1e6
        per_ch = serve_ms / (n * w)
        per_mc = mc_ms / (n * w)
        res = {
            "channels": n,
            "window_s": round(w, 2),
            "all_synchronised_after_s": round(synced, 2),
            "serve_cpu_ms_per_channel_second": round(per_ch, 2),
            "multicat_cpu_ms_per_channel_second": round(per_mc, 2),
            "ratio": round(per_ch / per_mc, 2) if per_mc else None,
            "rss_kib_per_channel_both_hosts": round(rss / n),
            "takeovers_in_window": declared,
            "multicats_still_playing": alive,
        }
        print(json.dumps(res))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
