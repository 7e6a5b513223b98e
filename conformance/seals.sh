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
check "the seal certificate names the seal (CN) and its owner (organizationIdentifier NTRCN-credit code)" \
  sh -c "openssl x509 -in '$pdfs/seal.pem' -noout -subject -nameopt RFC2253,sep_comma_plus,-esc_msb >'$pdfs/seal.subject' \
         && grep -q 'CN=Conformance contract seal' '$pdfs/seal.subject' \
         && grep -q 'organizationIdentifier=NTRCN-$owner' '$pdfs/seal.subject'"
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

echo "== Our seal verifier agrees with pyHanko"
ours() { "$bin" seal verify "$@" >"$pdfs/ours.log" 2>&1; }
for name in bb-invisible bt-visible blt-xref-stream blta cross-page certified certified-approved two-seals; do
  # Our verifier's whole report goes to the check's log, which a failure prints.
  check "agree on $name: pyHanko INTACT:TRUSTED and ours VALID" \
    sh -c "'$bin' seal verify '$pdfs/$name.pdf' --trust '$work/root.pem' >'$pdfs/$name.ours' 2>&1; \
           cat '$pdfs/$name.ours'; head -n 1 '$pdfs/$name.ours' | grep -q ': VALID'"
done
# A signature pyHanko made, with a key and CA of its own (no CRL exists for that CA, so pyHanko
# runs without revocation checking; ours reports revocation "unknown").
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pdfs/other-ca.key" \
  -subj "/CN=Other CA" -days 30 -out "$pdfs/other-ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pdfs/other.key" \
  -subj "/CN=pyHanko signer" -out "$pdfs/other.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n' >"$pdfs/other.ext"
openssl x509 -req -in "$pdfs/other.csr" -CA "$pdfs/other-ca.pem" -CAkey "$pdfs/other-ca.key" -CAcreateserial \
  -days 10 -extfile "$pdfs/other.ext" -out "$pdfs/other.pem" 2>/dev/null
check "pyHanko signs a document with its own key" "$venv/bin/pyhanko" sign addsig --field Sig1 pemder \
  --key "$pdfs/other.key" --cert "$pdfs/other.pem" --no-pass "$pdfs/one.pdf" "$pdfs/pyhanko-signed.pdf"
check "agree on pyHanko's signature: pyHanko INTACT:TRUSTED" \
  "$venv/bin/pyhanko" sign validate --no-revocation-check --trust "$pdfs/other-ca.pem" --trust-replace "$pdfs/pyhanko-signed.pdf"
check "agree on pyHanko's signature: ours VALID" \
  sh -c "'$bin' seal verify '$pdfs/pyhanko-signed.pdf' --trust '$pdfs/other-ca.pem' | head -n 1 | grep -q ': VALID'"
check "pyHanko's signature on top of ours: both validators accept both signatures" sh -c \
  "'$venv/bin/pyhanko' sign addsig --field Sig9 pemder --key '$pdfs/other.key' --cert '$pdfs/other.pem' --no-pass \
     '$pdfs/bt-visible.pdf' '$pdfs/mixed.pdf' \
   && '$bin' seal verify '$pdfs/mixed.pdf' --trust '$work/root.pem' --trust '$pdfs/other-ca.pem' | head -n 1 | grep -q ': VALID' \
   && [ \$('$venv/bin/pyhanko' sign validate --no-revocation-check --trust '$work/root.pem' --trust '$pdfs/other-ca.pem' \
           --trust-replace '$pdfs/mixed.pdf' 2>/dev/null | grep -c ':INTACT:TRUSTED') -eq 2 ]"
check "agree on a flipped byte: pyHanko INVALID" \
  sh -c "'$venv/bin/pyhanko' sign validate --trust '$work/root.pem' --trust-replace '$pdfs/flipped.pdf' 2>&1 | grep -q INVALID"
check "agree on a flipped byte: ours INVALID (exit 1)" \
  sh -c "! '$bin' seal verify '$pdfs/flipped.pdf' --trust '$work/root.pem' >'$pdfs/flip.log'; grep -q ': INVALID' '$pdfs/flip.log'"
"$venv/bin/python" conformance/pdf/add_page.py "$pdfs/bt-visible.pdf" "$pdfs/page-added.pdf"
check "agree on a page added after signing: pyHanko ILLEGAL_MODIFICATIONS" \
  sh -c "'$venv/bin/pyhanko' sign validate --trust '$work/root.pem' --trust-replace '$pdfs/page-added.pdf' 2>&1 | grep -q ILLEGAL_MODIFICATIONS"
check "agree on a page added after signing: ours MODIFIED, naming the page tree" \
  sh -c "! '$bin' seal verify '$pdfs/page-added.pdf' --trust '$work/root.pem' >'$pdfs/added.log'; \
         grep -q ': MODIFIED' '$pdfs/added.log' && grep -q 'page tree' '$pdfs/added.log'"
check "ours with the region's own trust (no --trust): the seal is named and revocation is good" \
  sh -c "'$bin' --config '$work/elicense.toml' --data-dir '$data' seal verify '$pdfs/bt-visible.pdf' >'$pdfs/named.log' \
         && grep -q 'seal:        $seal_id' '$pdfs/named.log' && grep -q 'revocation:  good' '$pdfs/named.log'"
check "POST /v1/seals/verify answers the same verdict as JSON" \
  sh -c "curl -sf -H 'content-type: application/pdf' --data-binary @'$pdfs/page-added.pdf' '$base/v1/seals/verify' | grep -q '\"verdict\":\"modified\"'"

echo "== Sealed e-license PDF (rendered by poppler, read by zbarimg, validated by pyHanko and pdfsig)"
lic=$(auth "$base/v1/licenses?limit=1&status=valid&type=11100000000013338W001" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
holder=$(auth "$base/v1/licenses/$lic" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["holder"]["name"])')
check "elicense license pdf renders and seals license $lic" \
  "$bin" --config "$work/elicense.toml" --data-dir "$data" license pdf "$lic" --out "$pdfs/license.pdf"
check "GET /v1/licenses/{id}/pdf answers a sealed PDF" \
  sh -c "curl -sf -H 'Authorization: Bearer $token' '$base/v1/licenses/$lic/pdf' -o '$pdfs/license-api.pdf' && head -c 5 '$pdfs/license-api.pdf' | grep -q '%PDF-'"
validate_pdf license
check "agree on the sealed license: ours VALID" \
  sh -c "'$bin' seal verify '$pdfs/license.pdf' --trust '$work/root.pem' | head -n 1 | grep -q ': VALID'"
check "pdffonts: the Chinese font is embedded as a subset with a ToUnicode map" \
  sh -c "pdffonts '$pdfs/license.pdf' | awk 'NR>2' | grep -q 'yes yes yes'"
check "pdftotext extracts the holder's Chinese name ($holder) and the type name 居民身份证" \
  sh -c "pdftotext '$pdfs/license.pdf' - | grep -q '$holder' && pdftotext '$pdfs/license.pdf' - | grep -q '居民身份证'"
shots="${ELICENSE_SCREENSHOTS:-$PWD/conformance/out/screenshots}"
mkdir -p "$shots"
check "pdftoppm renders page 1 (saved for review: $shots/license-page1.png)" \
  sh -c "pdftoppm -r 110 -png -singlefile '$pdfs/license.pdf' '$shots/license-page1'"
check "the seal is visible: red pixels where the seal was placed" \
  "$venv/bin/python" - "$shots/license-page1.png" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], "rb").read()
# Minimal PNG reader (8-bit RGB, as pdftoppm writes): count strongly red pixels in the lower right.
pos, idat, w, h = 8, b"", 0, 0
while pos < len(data):
    n, t = struct.unpack(">I4s", data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if t == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", body[:10]); assert depth == 8 and ctype == 2
    if t == b"IDAT": idat += body
raw = zlib.decompress(idat); stride = w * 3; prev = bytearray(stride); red = 0; i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - 3] if x >= 3 else 0; b = prev[x]; c = prev[x - 3] if x >= 3 else 0
        p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        line[x] = (line[x] + [0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else (b if pb <= pc else c)][f]) & 255
    prev = line
    if y > h * 0.6:
        for x in range(w // 2, w):
            r, g, bl = line[3 * x:3 * x + 3]
            red += r > 180 and g < 90 and bl < 90
print("red pixels in the seal area:", red)
sys.exit(0 if red > 500 else 1)
PY
check "zbarimg reads the printed code off the rendered page and elicense check accepts it" \
  sh -c "zbarimg -q --raw '$shots/license-page1.png' >'$pdfs/license-code.txt' \
         && '$bin' --data-dir '$work/nowhere' check \"\$(cat '$pdfs/license-code.txt')\" --trust '$work/trust-list.txt' | grep -q '\"verdict\": \"valid\"'"

echo "== The time-stamp authority through OpenSSL, and sealing with an external (HTTP) TSA"
echo "elicense time-stamp test data" >"$pdfs/ts-data.txt"
openssl ts -query -data "$pdfs/ts-data.txt" -sha256 -cert -out "$pdfs/req.tsq" 2>/dev/null
check "POST /tsa answers an openssl ts -query" \
  curl -sf -H 'Content-Type: application/timestamp-query' --data-binary @"$pdfs/req.tsq" "$base/tsa" -o "$pdfs/resp.tsr"
check "openssl ts -verify accepts the reply for the data" \
  openssl ts -verify -in "$pdfs/resp.tsr" -data "$pdfs/ts-data.txt" -CAfile "$work/root.pem"
check "openssl ts -reply -text: granted, with the ETSI baseline policy" \
  sh -c "openssl ts -reply -in '$pdfs/resp.tsr' -text 2>/dev/null | grep -q 'Status: Granted' \
         && openssl ts -reply -in '$pdfs/resp.tsr' -text 2>/dev/null | grep -q '0.4.0.2023.1.1'"
check_fails "openssl ts -verify control: other data does not verify" \
  openssl ts -verify -in "$pdfs/resp.tsr" -data "$pdfs/one.pdf" -CAfile "$work/root.pem"
check "seal sign with tsa_url = this service's /tsa over HTTP (B-T)" \
  env ELICENSE_TSA_URL="$base/tsa" "$bin" --config "$work/elicense.toml" --data-dir "$data" seal sign --seal "$seal_id" \
  --in "$pdfs/one.pdf" --out "$pdfs/external-tsa.pdf" --invisible --level B-T
validate_pdf external-tsa
check "POST /v1/seals/{id}/sign accepts the PDF as multipart/form-data" \
  sh -c "curl -sf -H 'Authorization: Bearer $token' -F 'file=@$pdfs/one.pdf;type=application/pdf' \
         '$base/v1/seals/$seal_id/sign?level=B-B' -o '$pdfs/multipart.pdf' \
         && '$bin' seal verify '$pdfs/multipart.pdf' --trust '$work/root.pem' | head -n 1 | grep -q ': VALID'"
