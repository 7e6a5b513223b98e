#!/usr/bin/env python3
"""Cuts every signature out of a PDF by its /ByteRange: OUTDIR/sigN.der (the CMS or time-stamp
token from the gap) and OUTDIR/sigN.bin (the signed bytes), N from 1 in file order. Prints one
line per signature: N, its SubFilter, and whether the ranges cover the whole file up to the end of
that revision. Used to hand our signatures to `openssl cms -verify` and `openssl ts -verify`."""
import re
import sys

data = open(sys.argv[1], "rb").read()
out = sys.argv[2]
n = 0
for m in re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", data):
    a, b, c, d = (int(x) for x in m.groups())
    gap = data[a + b:c].strip()
    if not (gap.startswith(b"<") and gap.endswith(b">")):
        continue
    n += 1
    der = bytes.fromhex(gap[1:-1].decode()).rstrip(b"\0")
    # DER length from the header, so trailing zero padding is cut exactly.
    if der[1] & 0x80:
        k = der[1] & 0x7F
        length = 2 + k + int.from_bytes(der[2:2 + k], "big")
    else:
        length = 2 + der[1]
    der = bytes.fromhex(gap[1:-1].decode())[:length]
    open(f"{out}/sig{n}.der", "wb").write(der)
    open(f"{out}/sig{n}.bin", "wb").write(data[a:a + b] + data[c:c + d])
    start = data.rfind(b"<<", 0, m.start())
    sub = re.search(rb"/SubFilter\s*/([A-Za-z0-9.]+)", data[start:m.start() + 400])
    print(n, sub.group(1).decode() if sub else "?", a == 0)
