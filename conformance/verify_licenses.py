#!/usr/bin/env python3
"""Verifies every license the service returns, with cbor2 and cryptography only.

For each license: decode the COSE_Sign1 (RFC 9052), check alg ES256 and that kid is the first
8 bytes of SHA-256 of the issuer certificate, rebuild the Sig_structure, and verify the ECDSA
signature with the public key of the authority certificate. Then change each of several fields
of the payload and check that the signature no longer verifies.

usage: verify_licenses.py BASE_URL TOKEN
prints "verify_licenses: N passed, M failed"; exit 1 on any failure.
"""
import base64
import hashlib
import json
import sys
import urllib.request

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils


def get(base, token, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def verify(cose, cert, payload_override=None):
    obj = cbor2.loads(cose)
    if isinstance(obj, cbor2.CBORTag):
        obj = obj.value
    protected, _unprotected, payload, sig = obj
    hdr = cbor2.loads(protected)
    if hdr.get(1) != -7:
        raise ValueError("alg is not ES256")
    if hdr.get(4) != hashlib.sha256(cert.public_bytes(encoding=_DER)).digest()[:8]:
        raise ValueError("kid does not match the issuer certificate")
    if payload_override is not None:
        payload = payload_override
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    cert.public_key().verify(utils.encode_dss_signature(r, s), tbs, ec.ECDSA(hashes.SHA256()))
    return payload


from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

_DER = Encoding.DER

TAMPERS = [
    ("holder name", lambda v: v["holder"].__setitem__("name", v["holder"]["name"] + "x")),
    ("number", lambda v: v.__setitem__("number", v["number"] + "0")),
    ("valid_to", lambda v: v.__setitem__("valid_to", "2099-12-31")),
    ("a face field", lambda v: v["fields"].__setitem__(sorted(v["fields"])[0], "tampered")),
    ("issuer", lambda v: v["issuer"].__setitem__("code", "11100000000013338W")),
]


def main():
    base, token = sys.argv[1].rstrip("/"), sys.argv[2]
    certs = {
        a["credit_code"]: x509.load_pem_x509_certificate(a["certificate"].encode())
        for a in get(base, token, "/v1/authorities")
    }
    passed = failed = 0
    after = None
    seen = 0
    while True:
        page = get(base, token, "/v1/licenses?limit=200" + (f"&after={after}" if after else ""))
        for lic in page["items"]:
            seen += 1
            cose = base64.b64decode(lic["signature"]["cose_sign1"])
            cert = certs[lic["issuer"]]
            try:
                payload = verify(cose, cert)
                rec = json.loads(payload)
                assert rec["id"] == lic["id"], "payload id differs"
                assert rec["fields"] == lic["fields"], "payload fields differ"
                assert payload.decode() == lic["signature"]["record"], "payload differs from record"
                passed += 1
            except Exception as e:  # noqa: BLE001
                print(f"FAIL {lic['id']}: {e!r}")
                failed += 1
                continue
            for name, change in TAMPERS:
                v = json.loads(payload)
                change(v)
                try:
                    verify(cose, cert, json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode())
                    print(f"FAIL {lic['id']}: still verifies after changing the {name}")
                    failed += 1
                except InvalidSignature:
                    passed += 1
            # Another authority's certificate must not verify it.
            other = next((c for k, c in certs.items() if k != lic["issuer"]), None)
            if other is not None:
                try:
                    verify(cose, other)
                    print(f"FAIL {lic['id']}: verifies under another authority")
                    failed += 1
                except (InvalidSignature, ValueError):
                    passed += 1
        after = page.get("next")
        if not after:
            break
    if seen == 0:
        print("FAIL: no licenses to verify")
        failed += 1
    print(f"verify_licenses: {seen} licenses; {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
