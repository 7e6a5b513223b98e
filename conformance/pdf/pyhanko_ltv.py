#!/usr/bin/env python3
"""pyHanko validates every signature of a PDF offline, with revocation data taken only from the
document's DSS (PAdES B-LT/B-LTA): hard-fail revocation checking, no fetching. Document
time-stamps (B-LTA) are validated too. Exit 0 only when all are intact, valid and trusted.
Usage: pyhanko_ltv.py ROOT.pem FILE.pdf"""
import sys

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore

root_pem, path = sys.argv[1:3]
with open(root_pem, "rb") as f:
    _, _, der = pem.unarmor(f.read())
root = x509.Certificate.load(der)
ok = True
with open(path, "rb") as f:
    r = PdfFileReader(f)
    dss = DocumentSecurityStore.read_dss(r)
    if dss is None:
        print("no DSS")
        sys.exit(1)
    vc = lambda: dss.as_validation_context(
        {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"})
    sigs = r.embedded_signatures
    if not sigs:
        print("no signatures")
        sys.exit(1)
    for s in sigs:
        if s.sig_object.get("/Type") == "/DocTimeStamp":
            st = validate_pdf_timestamp(s, validation_context=vc())
        else:
            st = validate_pdf_signature(s, signer_validation_context=vc(), ts_validation_context=vc())
        print(s.field_name, st.summary())
        ok = ok and st.intact and st.valid and st.trusted
sys.exit(0 if ok else 1)
