#!/usr/bin/env python3
"""Markdown table of `tandem bench failover --json` reports (the README's benchmark section).

    tools/bench-table.py k25.json k5994.json stop25.json ...
One row per report: asset frame rate, fault, switch mode, trials, detection / switch / gap
percentiles (ms), the verdict against one frame, losses, self-failures and stalls.
"""
import json
import sys


def ms(ns):
    return f"{ns / 1e6:.1f}"


def fps(rate):
    n, d = (int(x) for x in rate.split("/"))
    f = n / d
    return f"{f:.0f}" if abs(f - round(f)) < 1e-9 else f"{f:.2f}"


def pct(m):
    if not m["samples"]:
        return "-"
    # Percentiles are hdrhistogram bucket values (3 significant digits): capped at the max.
    return f"{ms(min(m['p50'], m['max']))} / {ms(min(m['p99'], m['max']))} / {ms(m['max'])}"


def main():
    print("| fps (frame) | fault | switch at | trials | detection p50 / p99 / max ms | switch p50 / p99 / max ms "
          "| gap p50 / p99 / max ms | inside one frame | datagrams lost (max) | CC errors (max) "
          "| self-failures | trials with a stall >= 5 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        r = json.load(open(path))
        v, m, s, a = r["verdict"], r["metrics"], r["settings"], r["asset"]
        fault = s["fault"] + (f" ({s['inject']})" if s.get("inject") else "")
        inside = v["trials"] - len(v["failures"])
        verdict = f"{'PASS' if v['pass'] else 'FAIL'} {inside}/{v['trials']}"
        if v["not_switched"]:
            verdict += f" ({v['not_switched']} no switch)"
        if v["errors"]:
            verdict += f" ({v['errors']} not run)"
        selff = v.get("switched_before_fault", 0) + v.get("secondary_not_ready", 0)
        print(f"| {fps(a['frame_rate'])} ({a['frame_ns'] / 1e6:.2f} ms) | {fault} | {s['switch_at']} | {v['trials']} "
              f"| {pct(m['detection'])} | {pct(m['switch'])} | {pct(m['gap'])} | {verdict} "
              f"| {m['datagrams_lost']['max']} | {m['cc_errors']['max']} | {selff} | {v['spoiled_by_stalls']} |")


if __name__ == "__main__":
    main()
