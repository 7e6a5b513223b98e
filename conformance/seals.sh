# PDF seals, judged by validators we did not write. Sourced by conformance/run.sh (uses its
# check/fail helpers, $bin, $data, $work, $base and the running demo server, which serves the CRL
# that the seal certificates point at).
echo "== PDF seals (PAdES): pyHanko, pdfsig, openssl cms / ts, qpdf, pkilint"
pdfs="$work/pdfs"
mkdir -p "$pdfs/nss"
python3 conformance/pdf/make_pdf.py "$pdfs/one.pdf" 1
python3 conformance/pdf/make_pdf.py "$pdfs/three.pdf" 3
# The same document with object streams and a cross-reference stream.
qpdf --object-streams=generate "$pdfs/three.pdf" "$pdfs/three-xs.pdf"
certutil -N -d "sql:$pdfs/nss" --empty-password
certutil -A -d "sql:$pdfs/nss" -n root -t CT,C,C -i "$work/root.pem"

owner=$(head -n 1 "$work/authorities.txt" | cut -d' ' -f2)
seal_id=$("$bin" --config "$work/elicense.toml" --data-dir "$data" seal add --owner "$owner" --kind contract --name "Conformance contract seal" | cut -d' ' -f1)
check "seal add created a seal ($seal_id)" test -n "$seal_id"
sign() { "$bin" --config "$work/elicense.toml" --data-dir "$data" seal sign --seal "$seal_id" "$@"; }

# name | input | options
cases="bb-invisible|one|--invisible --level B-B
bt-visible|one|--page 1 --x 400 --y 80 --width 120 --level B-T
blt-xref-stream|three-xs|--page 2 --x 60 --y 60 --level B-LT
blta|three|--invisible --level B-LTA
cross-page|three|--cross-page all --width 150 --level B-T
certified|one|--certify 1 --page 1 --x 60 --y 80 --level B-T"
while IFS='|' read -r name input opts; do
  # shellcheck disable=SC2086
  check "seal sign $name" sign --in "$pdfs/$input.pdf" --out "$pdfs/$name.pdf" $opts
done <<<"$cases"
check "an approval seal fills the certified document's reserved field" \
  sign --in "$pdfs/certified.pdf" --out "$pdfs/certified-approved.pdf" --invisible --level B-T
check "a second seal on a sealed document (incremental, B-B)" \
  sign --in "$pdfs/bt-visible.pdf" --out "$pdfs/two-seals.pdf" --page 1 --x 60 --y 300 --level B-B

validate_pdf() { # file: every validator accepts every signature in it
  local f="$pdfs/$1.pdf" n
  check "pyHanko: $1 — every signature INTACT:TRUSTED" sh -c \
    "'$venv/bin/pyhanko' sign validate --trust '$work/root.pem' --trust-replace '$f' >'$pdfs/$1.pyhanko' 2>&1 \
     && ! grep -q INVALID '$pdfs/$1.pyhanko' && grep -c ':INTACT:TRUSTED' '$pdfs/$1.pyhanko' | grep -qv '^0$'"
  grep -v WARNING "$pdfs/$1.pyhanko" | cut -c1-160 | sed 's/^/       /' | head -4
  rm -rf "$pdfs/$1.sigs"; mkdir -p "$pdfs/$1.sigs"
  python3 conformance/pdf/extract_sigs.py "$f" "$pdfs/$1.sigs" >"$pdfs/$1.list"
  n=$(grep -c 'ETSI.CAdES.detached' "$pdfs/$1.list")
  # poppler 22 cannot validate ETSI.RFC3161 document time-stamps ("Unimplemented Feature"):
  # those are checked with openssl ts below.
  check "pdfsig: $1 — \"Signature is Valid.\" for each of its $n CAdES signatures" sh -c \
    "pdfsig -nssdir 'sql:$pdfs/nss' '$f' >'$pdfs/$1.pdfsig' 2>&1; \
     [ \$(grep -c 'Signature Validation: Signature is Valid.' '$pdfs/$1.pdfsig') -eq $n ] \
     && ! grep -q 'Digest Mismatch' '$pdfs/$1.pdfsig'"
  check "qpdf --check: $1" qpdf --check "$f"
  while read -r i sub whole; do
    if [ "$sub" = ETSI.RFC3161 ]; then
      check "openssl ts -verify: $1 document time-stamp $i over its byte ranges" \
        openssl ts -verify -in "$pdfs/$1.sigs/sig$i.der" -token_in -data "$pdfs/$1.sigs/sig$i.bin" -CAfile "$work/root.pem"
    else
      check "openssl cms -verify: $1 signature $i over its byte ranges" \
        openssl cms -verify -binary -inform DER -in "$pdfs/$1.sigs/sig$i.der" -content "$pdfs/$1.sigs/sig$i.bin" \
        -CAfile "$work/root.pem" -purpose any -out /dev/null
    fi
  done <"$pdfs/$1.list"
}
for name in bb-invisible bt-visible blt-xref-stream blta cross-page certified certified-approved two-seals; do
  validate_pdf "$name"
done
check "pyHanko: the certified document is certified (DocMDP) and the approval seal an allowed change" \
  sh -c "'$venv/bin/pyhanko' sign validate --pretty-print --trust '$work/root.pem' --trust-replace '$pdfs/certified-approved.pdf' 2>/dev/null \
         | grep -qi 'certif'"
check "pyHanko offline, revocation only from the DSS (hard-fail): B-LT validates" \
  "$venv/bin/python" conformance/pdf/pyhanko_ltv.py "$work/root.pem" "$pdfs/blt-xref-stream.pdf"
check "pyHanko offline, revocation only from the DSS (hard-fail): B-LTA and its document time-stamp validate" \
  "$venv/bin/python" conformance/pdf/pyhanko_ltv.py "$work/root.pem" "$pdfs/blta.pdf"
check_fails "pyHanko offline control: B-T (no DSS) does not validate that way" \
  "$venv/bin/python" conformance/pdf/pyhanko_ltv.py "$work/root.pem" "$pdfs/bt-visible.pdf"

# Certificate profiles of the seal and the time-stamp authority, taken from the signatures.
# (The CMS certificate set is a DER SET OF: pick each certificate by its subject.)
cert_from() { # DER-FILE SUBJECT-PATTERN OUT
  openssl pkcs7 -inform DER -in "$1" -print_certs 2>/dev/null \
    | awk -v pat="$2" '/^subject=/{take = ($0 ~ pat)} take && /BEGIN CERTIFICATE/{on=1} on{print} /END CERTIFICATE/{on=0}' >"$3"
}
cert_from "$pdfs/bt-visible.sigs/sig1.der" "Conformance contract seal" "$pdfs/seal.pem"
cert_from "$pdfs/blta.sigs/sig2.der" "time-stamp authority" "$pdfs/tsa.pem"
check "the seal certificate names the seal and its owner" grep -q "BEGIN CERTIFICATE" "$pdfs/seal.pem"
check "openssl verify: the seal certificate chains to the root" openssl verify -CAfile "$work/root.pem" "$pdfs/seal.pem"
check "openssl verify: the TSA certificate chains to the root for time-stamping" \
  openssl verify -CAfile "$work/root.pem" -purpose timestampsign "$pdfs/tsa.pem"
check "pkilint: seal certificate profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$pdfs/seal.pem"
check "pkilint: time-stamp authority profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$pdfs/tsa.pem"
check "openssl: the TSA certificate has the critical timeStamping usage" \
  sh -c "openssl x509 -in '$pdfs/tsa.pem' -noout -text | grep -A1 'Extended Key Usage: critical' | grep -q 'Time Stamping'"

# Controls: the validators do catch a broken signature.
python3 - "$pdfs/bt-visible.pdf" "$pdfs/flipped.pdf" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.find(b"elicense test document")  # inside the first signed range
d[i] ^= 0x01
open(sys.argv[2], "wb").write(d)
PY
check_fails "pyHanko control: a byte flipped inside the signed range is not accepted" \
  "$venv/bin/pyhanko" sign validate --trust "$work/root.pem" --trust-replace "$pdfs/flipped.pdf"
check "pdfsig control: the flipped byte gives \"Digest Mismatch.\"" \
  sh -c "pdfsig -nssdir 'sql:$pdfs/nss' '$pdfs/flipped.pdf' | grep -q 'Digest Mismatch'"
