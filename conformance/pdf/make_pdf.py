#!/usr/bin/env python3
"""Writes a plain test PDF (A4 pages with a line of text each, classic xref table).

Usage: make_pdf.py OUT.pdf [PAGES] [--image-mb N]
With --image-mb, each page also carries an uncompressed noise image so the file reaches about
N megabytes in all: the "scan-heavy" document of the big-file benchmark.
"""
import os
import sys


def main():
    args = sys.argv[1:]
    image_mb = 0
    if "--image-mb" in args:
        i = args.index("--image-mb")
        image_mb = int(args[i + 1])
        del args[i:i + 2]
    out = args[0]
    pages = int(args[1]) if len(args) > 1 else 1
    objs = {}
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = []
    font = 3
    objs[font] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    nxt = 4
    per_page = (image_mb * 1024 * 1024) // max(pages, 1)
    side = int((per_page / 3) ** 0.5) if image_mb else 0
    for p in range(pages):
        page, content = nxt, nxt + 1
        nxt += 2
        res = b"/Font << /F1 %d 0 R >>" % font
        draw = b""
        if image_mb:
            img = nxt
            nxt += 1
            data = os.urandom(side * side * 3)
            objs[img] = (b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                         b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(data))) + data + b"\nendstream"
            res += b" /XObject << /Im1 %d 0 R >>" % img
            draw = b"q 400 0 0 400 97 300 cm /Im1 Do Q\n"
        text = b"BT /F1 24 Tf 72 760 Td (elicense test document, page %d of %d) Tj ET\n" % (p + 1, pages)
        stream = draw + text
        objs[content] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
        objs[page] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                      b"/Resources << %s >> >>" % (content, res))
        kids.append(page)
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), pages)
    buf = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(buf)
        buf += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    xref = len(buf)
    size = max(objs) + 1
    buf += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        buf += b"%010d 00000 n \n" % offsets[n]
    buf += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        size, os.urandom(16).hex().encode(), os.urandom(16).hex().encode(), xref)
    with open(out, "wb") as f:
        f.write(buf)


if __name__ == "__main__":
    main()
