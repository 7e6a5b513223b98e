#!/usr/bin/env python3
"""Appends a blank page to a PDF as a valid incremental update (pyHanko's incremental writer): the
"page added after signing" case, which a verifier must report as a modification.
Usage: add_page.py IN.pdf OUT.pdf"""
import sys

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

with open(sys.argv[1], "rb") as f:
    w = IncrementalPdfFileWriter(f)
    page = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Page"),
        generic.NameObject("/MediaBox"): generic.ArrayObject([generic.NumberObject(x) for x in (0, 0, 595, 842)]),
        generic.NameObject("/Resources"): generic.DictionaryObject(),
    })
    w.insert_page(page)
    with open(sys.argv[2], "wb") as out:
        w.write(out)
