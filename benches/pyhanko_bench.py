#!/usr/bin/env python3
"""pyHanko's side of `elicense bench`: the same inputs, the same levels, in one process.

Usage: pyhanko_bench.py KEY.pem CERT.pem TSA_KEY.pem TSA_CERT.pem SMALL.pdf BIG.pdf BIG_OUT.pdf SECONDS
Prints one JSON line: B-B and B-T seals per second on SMALL.pdf (in memory, invisible seal),
validations per second of a B-B result, and time + peak memory growth for sealing BIG.pdf from
file to file (measured first, before anything else grows the process). The time-stamp authority
is pyHanko's in-process one (RSA only, so an RSA key made here; TSA_KEY/TSA_CERT are unused),
as ours is in-process too."""
import io
import json
import resource
import sys
import time

from asn1crypto import keys, pem, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

key, cert, tsa_key, tsa_cert, small, big, big_out, seconds = sys.argv[1:9]
seconds = float(seconds)


def load(path):
    return pem.unarmor(open(path, "rb").read())[2]


signer = signers.SimpleSigner.load(key, cert)


def dummy_tsa():
    # pyHanko's in-process time-stamper signs with RSA only: a throwaway RSA TSA for this run.
    import datetime
    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = cx.Name([cx.NameAttribute(cx.oid.NameOID.COMMON_NAME, "bench tsa (RSA)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (cx.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
         .serial_number(cx.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(cx.ExtendedKeyUsage([cx.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
         .sign(k, hashes.SHA256()))
    der_key = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    return DummyTimeStamper(tsa_cert=x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)),
                            tsa_key=keys.PrivateKeyInfo.load(der_key))


ts = dummy_tsa()
meta = signers.PdfSignatureMetadata(field_name="Seal1", subfilter=SigSeedSubFilter.PADES)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# The big file first, so that the high-water mark before it is the baseline process.
before = peak_mb()
t0 = time.perf_counter()
with open(big, "rb") as inf, open(big_out, "wb") as outf:
    signers.sign_pdf(IncrementalPdfFileWriter(inf), meta, signer=signer, output=outf)
big_seconds = time.perf_counter() - t0
big_peak = peak_mb() - before

data = open(small, "rb").read()


def rate(fn):
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds and n >= 3:
            return n / el


def sign(timestamper=None):
    return signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer,
                            timestamper=timestamper).getvalue()


bb = rate(lambda: sign())
bt = rate(lambda: sign(ts))
signed = sign()
root = x509.Certificate.load(load(cert))


def validate():
    r = PdfFileReader(io.BytesIO(signed))
    st = validate_pdf_signature(r.embedded_signatures[0],
                                ValidationContext(trust_roots=[root], allow_fetching=False,
                                                  revocation_mode="soft-fail"))
    assert st.intact and st.valid


verify = rate(validate)
print(json.dumps({"bb_per_s": bb, "bt_per_s": bt, "verify_per_s": verify,
                  "big_seconds": big_seconds, "big_peak_mb": big_peak}))
