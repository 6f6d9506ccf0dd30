#!/usr/bin/env python3
"""Derives the edge-case fixtures from a clean TS file (used by tools/make-assets.sh).

  truncate IN OUT   drop the last 100 bytes (a partial last packet)
  syncloss IN OUT   insert 77 garbage bytes after packet 500 (a sync loss mid-file)
  nopcr IN OUT      clear every PCR_flag (a file with no PCR)
  pcrpid IN OUT     move the PCRs onto a PID of their own (0x1FF), as some muxers do:
                    every PCR-bearing packet of the video PID becomes a PCR-only packet on
                    PID 0x1FF (adaptation field only) placed before a copy of it without PCR,
                    and the PMT's PCR_PID is rewritten (CRC recomputed)
  pmtchange IN OUT  from the first PMT after the middle of the file on, the video PID 0x100
                    becomes 0x200 and the PMT says so with version_number + 1 (CRC
                    recomputed); from the PAT after that, the PAT lists a second program
                    (2 -> PMT PID 0x1010, never sent) with version_number + 1. Made from
                    pcr-own-pid.ts, so the PCRs stay on their PID
  notts IN OUT      64 KiB of deterministic pseudo-random bytes (not a TS file)
"""
import sys, zlib, random

P = 188

def packets(data):
    return [bytearray(data[i:i + P]) for i in range(0, len(data) - len(data) % P, P)]

def pid(p):
    return ((p[1] & 0x1F) << 8) | p[2]

def crc32_mpeg2(b):
    crc = 0xFFFFFFFF
    for x in b:
        crc ^= x << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc

def has_pcr(p):
    return (p[3] & 0x20) and p[4] >= 7 and (p[5] & 0x10)

def pmt_pids(pkts):
    pids = set()
    for p in pkts:
        if pid(p) == 0 and p[1] & 0x40:
            sec = p[5 + p[4]:]
            n = ((sec[1] & 0x0F) << 8) | sec[2]
            for i in range(8, 3 + n - 4, 4):
                if (sec[i] << 8 | sec[i + 1]) != 0:
                    pids.add(((sec[i + 2] & 0x1F) << 8) | sec[i + 3])
    return pids

def main():
    op, src, dst = sys.argv[1:4]
    data = open(src, 'rb').read()
    if op == 'truncate':
        out = data[:-100]
    elif op == 'syncloss':
        cut = 500 * P
        out = data[:cut] + bytes(random.Random(7).randrange(256) for _ in range(77)) + data[cut:]
    elif op == 'nopcr':
        pk = packets(data)
        for p in pk:
            if has_pcr(p):
                p[5] &= ~0x10
                p[6:12] = b'\xff' * 6
        out = b''.join(pk)
    elif op == 'pcrpid':
        pk = packets(data)
        pmts = pmt_pids(pk)
        NEW = 0x1FF
        res, cc = [], 0
        for p in pk:
            if pid(p) in pmts and p[1] & 0x40:
                sec_start = 5 + p[4] if p[3] & 0x20 else 4
                s = sec_start + 1 + p[sec_start]
                p[s + 8] = (p[s + 8] & 0xE0) | (NEW >> 8)
                p[s + 9] = NEW & 0xFF
                n = ((p[s + 1] & 0x0F) << 8) | p[s + 2]
                body = bytes(p[s:s + 3 + n - 4])
                p[s + 3 + n - 4:s + 3 + n] = crc32_mpeg2(body).to_bytes(4, 'big')
                res.append(p)
            elif has_pcr(p) and pid(p) not in (0, NEW):
                q = bytearray(b'\xff' * P)
                q[0] = 0x47; q[1] = NEW >> 8; q[2] = NEW & 0xFF
                q[3] = 0x20 | cc  # adaptation only; CC does not advance without payload
                q[4] = 183; q[5] = 0x10; q[6:12] = p[6:12]
                res.append(q)
                p[5] &= ~0x10
                p[6:12] = b'\xff' * 6
                res.append(p)
            else:
                res.append(p)
        out = b''.join(res)
    elif op == 'pmtchange':
        pk = packets(data)
        pmts = pmt_pids(pk)
        OLD, NEW = 0x100, 0x200
        k = next(i for i in range(len(pk) // 2, len(pk)) if pid(pk[i]) in pmts and pk[i][1] & 0x40)
        for p in pk[k:]:
            if pid(p) == OLD:
                p[1] = (p[1] & 0xE0) | (NEW >> 8)
                p[2] = NEW & 0xFF
            elif pid(p) in pmts and p[1] & 0x40:
                sec_start = 5 + p[4] if p[3] & 0x20 else 4
                s = sec_start + 1 + p[sec_start]
                n = ((p[s + 1] & 0x0F) << 8) | p[s + 2]
                ver = (p[s + 5] >> 1) & 0x1F
                p[s + 5] = (p[s + 5] & 0xC1) | (((ver + 1) & 0x1F) << 1)
                i = s + 12 + (((p[s + 10] & 0x0F) << 8) | p[s + 11])
                while i + 5 <= s + 3 + n - 4:
                    if ((p[i + 1] & 0x1F) << 8 | p[i + 2]) == OLD:
                        p[i + 1] = (p[i + 1] & 0xE0) | (NEW >> 8)
                        p[i + 2] = NEW & 0xFF
                    i += 5 + (((p[i + 3] & 0x0F) << 8) | p[i + 4])
                body = bytes(p[s:s + 3 + n - 4])
                p[s + 3 + n - 4:s + 3 + n] = crc32_mpeg2(body).to_bytes(4, 'big')
        j = next(i for i in range(k, len(pk)) if pid(pk[i]) == 0 and pk[i][1] & 0x40)
        for p in pk[j:]:
            if pid(p) == 0 and p[1] & 0x40:
                sec_start = 5 + p[4] if p[3] & 0x20 else 4
                s = sec_start + 1 + p[sec_start]
                n = ((p[s + 1] & 0x0F) << 8) | p[s + 2]
                ver = (p[s + 5] >> 1) & 0x1F
                p[s + 5] = (p[s + 5] & 0xC1) | (((ver + 1) & 0x1F) << 1)
                end = s + 3 + n - 4
                p[end + 4:end + 8] = p[end:end + 4]  # room for one more entry
                p[end:end + 4] = bytes([0x00, 0x02, 0xE0 | 0x10, 0x10])
                n += 4
                p[s + 1] = (p[s + 1] & 0xF0) | (n >> 8)
                p[s + 2] = n & 0xFF
                body = bytes(p[s:s + 3 + n - 4])
                p[s + 3 + n - 4:s + 3 + n] = crc32_mpeg2(body).to_bytes(4, 'big')
        print(f'pmtchange: new PMT from packet {k} (byte {k * P}), new PAT from packet {j} (byte {j * P})')
        out = b''.join(pk)
    elif op == 'notts':
        r = random.Random(42)
        out = bytes(r.randrange(256) for _ in range(65536))
    else:
        sys.exit(__doc__)
    open(dst, 'wb').write(out)

if __name__ == '__main__':
    main()
