#!/usr/bin/env python3
"""Independent check of `tandem bench failover` gap figures from packet captures.

Reads the per-trial captures written by `tandem bench failover --capture-dir DIR`
(tcpdump -w with --time-stamp-precision=nano, one file per trial: trial-NNNN.pcap), finds
on the live group the first sender's last datagram before the first datagram of another
sender, and prints that gap (the benchmark captures only the live group's port: `udp and
dst port P`; give --dst G:P for other captures). With --json BENCH.json it compares every trial with the
benchmark's own `gap_ns` (kernel SO_TIMESTAMPNS at the benchmark's receiver) and exits 1
when any differs by more than --tolerance-us (default 1000).

This shares no code with tandem: pcap parsing (the classic format, microsecond or
nanosecond magic; link types Ethernet, Linux cooked v1/v2, raw IP, BSD loopback), IPv4 and
UDP headers are decoded here.

    tools/pcap-gap.py --json k25.json captures/
    tools/pcap-gap.py captures/trial-0001.pcap
"""
import argparse
import json
import os
import re
import struct
import sys


def read_pcap(path):
    """Yields (t_ns, link_type, frame bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        end, scale = "<", 1000
    elif magic == b"\x4d\x3c\xb2\xa1":
        end, scale = "<", 1
    elif magic == b"\xa1\xb2\xc3\xd4":
        end, scale = ">", 1000
    elif magic == b"\xa1\xb2\x3c\x4d":
        end, scale = ">", 1
    else:
        raise ValueError(f"{path}: not a classic pcap file (magic {magic.hex()})")
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if len(frame) < incl:
            break  # truncated last record (capture stopped mid-write)
        yield sec * 1_000_000_000 + frac * scale, linktype, frame


def ip_payload(linktype, frame):
    """The IPv4 packet inside a frame, or None."""
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return None
        etype = struct.unpack(">H", frame[12:14])[0]
        off = 14
        while etype == 0x8100 and len(frame) >= off + 4:  # VLAN
            etype = struct.unpack(">H", frame[off + 2:off + 4])[0]
            off += 4
        return frame[off:] if etype == 0x0800 else None
    if linktype == 113:  # Linux cooked v1
        return frame[16:] if struct.unpack(">H", frame[14:16])[0] == 0x0800 else None
    if linktype == 276:  # Linux cooked v2
        return frame[20:] if struct.unpack(">H", frame[0:2])[0] == 0x0800 else None
    if linktype in (101, 228, 12):  # raw IP
        return frame
    if linktype == 0:  # BSD loopback
        return frame[4:]
    return None


def udp_datagrams(path, port=None, dst_ip=None):
    """Yields (t_ns, (src_ip, src_port), (dst_ip, dst_port), payload) of UDP/IPv4."""
    for t, lt, frame in read_pcap(path):
        ip = ip_payload(lt, frame)
        if not ip or len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or len(ip) < ihl + 8:
            continue
        frag = struct.unpack(">H", ip[6:8])[0]
        if frag & 0x1FFF:
            continue  # not the first fragment
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        sport, dport, ulen = struct.unpack(">HHH", ip[ihl:ihl + 6])
        if port is not None and dport != port:
            continue
        if dst_ip is not None and dst != dst_ip:
            continue
        yield t, (src, sport), (dst, dport), ip[ihl + 8:ihl + ulen]


def switch_gap(path, port=None, dst_ip=None):
    """(gap_ns, last_primary_ns, first_secondary_ns, datagrams, duplicates) or None."""
    seen = set()
    first = None
    last_primary = None
    dups = 0
    n = 0
    for t, src, dst, payload in udp_datagrams(path, port, dst_ip):
        if not dst[0].startswith(("224.", "225.", "226.", "227.", "228.", "229.", "23")):
            continue
        key = (src, hash(payload))
        if key in seen:
            dups += 1  # the same datagram captured twice (loopback multicast)
            continue
        seen.add(key)
        n += 1
        if first is None:
            first = src
        if src == first:
            last_primary = t
        elif last_primary is not None:
            return t - last_primary, last_primary, t, n, dups
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="pcap files or directories of trial-NNNN.pcap")
    ap.add_argument("--json", help="the benchmark's JSON report to compare with")
    ap.add_argument("--dst", help="only datagrams to this GROUP:PORT")
    ap.add_argument("--tolerance-us", type=float, default=1000.0)
    a = ap.parse_args()
    files = []
    for p in a.paths:
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".pcap"))
        else:
            files.append(p)
    port = dst_ip = None
    if a.dst:
        dst_ip, p = a.dst.rsplit(":", 1)
        port = int(p)
    bench = {}
    if a.json:
        with open(a.json) as f:
            for t in json.load(f)["trials"]:
                bench[t["n"]] = t.get("gap_ns")
    worst = 0.0
    compared = 0
    bad = 0
    for path in files:
        m = re.search(r"trial-(\d+)\.pcap$", path)
        n = int(m.group(1)) if m else None
        r = switch_gap(path, port, dst_ip)
        if r is None:
            print(f"{path}: no change of sender captured")
            continue
        gap, _, _, count, dups = r
        line = f"{os.path.basename(path)}: gap {gap / 1e6:.6f} ms ({count} datagrams, {dups} captured twice)"
        if n in bench and bench[n] is not None:
            diff = (gap - bench[n]) / 1e3
            worst = max(worst, abs(diff))
            compared += 1
            flag = "" if abs(diff) <= a.tolerance_us else "  DISAGREES"
            bad += flag != ""
            line += f"; benchmark {bench[n] / 1e6:.6f} ms; difference {diff:+.3f} us{flag}"
        print(line)
    if a.json:
        print(f"compared {compared} trials: largest difference {worst:.3f} us "
              f"(tolerance {a.tolerance_us:.0f} us): {'AGREE' if bad == 0 and compared else 'DISAGREE'}")
        sys.exit(0 if bad == 0 and compared else 1)


if __name__ == "__main__":
    main()
