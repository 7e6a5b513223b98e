#!/usr/bin/env bash
# Runs what elicense produces through tools we did not write: OpenSSL (X.509, CRL, CMS, RFC 3161),
# pkilint (certificate profiles), an independent COSE verifier built on cbor2 + cryptography,
# zbarimg, Chromium, and for PDF seals pyHanko, poppler's pdfsig and qpdf.
# Prints "conformance: N passed, M failed" and exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/elicense-target}"
venv="${ELICENSE_VENV:-/var/cache/elicense-venv}"
cargo build --quiet --bin elicense || exit 1
bin="$CARGO_TARGET_DIR/debug/elicense"

work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/       /' "$work/last.log" | head -20; fi; }
check_fails() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then fail "$name (unexpectedly succeeded)"; else pass "$name"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
tls_port=$(free_port)
base="http://127.0.0.1:$port"
# A real DNS name in the server certificate (pkilint rejects single-label names such as the
# development default "localhost"); curl and openssl reach it on loopback.
tls_host=elicense.demo.gov.cn
tls_base="https://$tls_host:$tls_port"
data="$work/data"
printf 'tls_hostnames = ["%s", "127.0.0.1"]\npublic_url = "%s"\n' "$tls_host" "$base" >"$work/elicense.toml"
env -u ELICENSE_MASTER_KEY "$bin" --config "$work/elicense.toml" --data-dir "$data" serve --demo \
  --listen "127.0.0.1:$port" --tls-listen "127.0.0.1:$tls_port" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
token=$(cat "$data/admin.token")
auth() { curl -sf -H "Authorization: Bearer $token" "$@"; }

echo "== X.509: root and authority certificates (openssl, pkilint)"
curl -sf "$base/v1/pki/root" >"$work/root.pem"
auth "$base/v1/authorities" >"$work/authorities.json"
"$venv/bin/python" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
auths = json.load(open(f"{work}/authorities.json"))
with open(f"{work}/authorities.txt", "w") as out:
    for i, a in enumerate(auths):
        open(f"{work}/authority{i}.pem", "w").write(a["certificate"])
        out.write(f"{i} {a['credit_code']} {a['certificate_serial']}\n")
PY
check "pkilint: root CA profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/root.pem"
curl -sf "$base/v1/pki/service-signer" >"$work/signer.pem"
check "openssl verify: service signer chains to the root" openssl verify -CAfile "$work/root.pem" "$work/signer.pem"
check "pkilint: service signer profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/signer.pem"
check "pkilint: root -> service signer chain" "$venv/bin/lint_pkix_signer_signee_cert_chain" lint "$work/root.pem" "$work/signer.pem"
while read -r i code serial; do
  check "openssl verify: authority $code chains to the root" openssl verify -CAfile "$work/root.pem" "$work/authority$i.pem"
  check "pkilint: authority seal profile ($code)" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/authority$i.pem"
  check "pkilint: root -> authority chain ($code)" "$venv/bin/lint_pkix_signer_signee_cert_chain" lint "$work/root.pem" "$work/authority$i.pem"
done <"$work/authorities.txt"
# Control: pkilint does reject a bad certificate (serial 0, CA without key usage).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
  -subj "/CN=bad" -days 1 -set_serial 0 -out "$work/bad.pem" 2>/dev/null
check_fails "pkilint control: a bad certificate is rejected" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/bad.pem"

echo "== License signatures (COSE_Sign1 verified with cbor2 + cryptography)"
check "every demo license verifies with its authority certificate and fails when changed" \
  "$venv/bin/python" conformance/verify_licenses.py "$base" "$token"
grep -h "verify_licenses:" "$work/last.log" | sed 's/^/       /'

echo "== Identifiers and credit codes"
check "id check accepts 1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U" \
  "$bin" id check 1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U
check "id check accepts 1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9" \
  "$bin" id check 1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.9
check_fails "id check rejects ...20230000403.001.V" \
  "$bin" id check 1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.V
check_fails "id check rejects ...000000016.001.8" \
  "$bin" id check 1.2.156.3005.2.11100000MB03271699022.340100.000000016.001.8
check "authority add rejects a credit code with a wrong check character (LIC-0002 at /credit_code)" \
  sh -c "! '$bin' --data-dir '$data' authority add --code 11340600MB00000110 --name x --types 11100000000013338W001 >'$work/cc.log' 2>&1 \
         && grep -q LIC-0002 '$work/cc.log' && grep -q /credit_code '$work/cc.log'"

echo "== CRL (openssl)"
read -r _ rcode rserial < <(sed -n 3p "$work/authorities.txt")
auth -X POST -H 'content-type: application/json' -d '{"reason":"keyCompromise"}' \
  "$base/v1/authorities/$rcode/certificate/revoke" >/dev/null || fail "revoke authority certificate via the API"
curl -sf "$base/v1/pki/crl" >"$work/crl.der"
check "openssl crl parses the CRL and verifies its signature with the root" \
  sh -c "openssl crl -inform DER -in '$work/crl.der' -CAfile '$work/root.pem' -noout 2>&1 | grep -q 'verify OK'"
openssl crl -inform DER -in "$work/crl.der" -noout -text >"$work/crl.txt" 2>&1
upper=$(echo "$rserial" | tr a-f A-F)
check "the CRL lists the revoked authority certificate ($upper)" grep -q "Serial Number: $upper" "$work/crl.txt"
check "the CRL carries a CRL number and an authority key identifier" \
  sh -c "grep -q 'X509v3 CRL Number' '$work/crl.txt' && grep -q 'Authority Key Identifier' '$work/crl.txt'"
openssl crl -inform DER -in "$work/crl.der" -out "$work/crl.pem" 2>/dev/null
check "openssl verify -crl_check refuses the revoked authority certificate as revoked" \
  sh -c "! openssl verify -crl_check -CAfile '$work/root.pem' -CRLfile '$work/crl.pem' '$work/authority2.pem' >'$work/rv.log' 2>&1 \
         && grep -q 'certificate revoked' '$work/rv.log'"
check "openssl verify -crl_check accepts an unrevoked authority certificate" \
  openssl verify -crl_check -CAfile "$work/root.pem" -CRLfile "$work/crl.pem" "$work/authority0.pem"

echo "== Mutual TLS with OpenSSL and curl as the peers"
"$bin" --config "$work/elicense.toml" --data-dir "$data" client add --id conformance-case --name "Conformance case system" \
  --department "测试" --types 11100000000013338W001 --fields sex --statutory --out-dir "$work/bundle" >/dev/null \
  || fail "client add"
check "openssl s_client verifies the server certificate chain against the root" \
  sh -c "echo | openssl s_client -connect 127.0.0.1:$tls_port -servername $tls_host -verify_hostname $tls_host -CAfile '$work/root.pem' \
         -verify_return_error -showcerts 2>&1 | tee '$work/sclient.txt' | grep -q 'Verify return code: 0 (ok)'"
awk '/BEGIN CERTIFICATE/{n++} n==1{print} /END CERTIFICATE/{if(n==1) exit}' "$work/sclient.txt" >"$work/server.pem"
check "pkilint: TLS server profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/server.pem"
check "pkilint: TLS client profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/bundle/conformance-case.crt.pem"
curl -sf "$base/v1/pki/client-ca" >"$work/client-ca.pem"
check "the bundle's client CA is the one the service publishes" cmp "$work/client-ca.pem" "$work/bundle/client-ca.pem"
check "pkilint: client CA profile" "$venv/bin/lint_pkix_cert" lint -s WARNING "$work/client-ca.pem"
check "pkilint: root -> client CA chain" "$venv/bin/lint_pkix_signer_signee_cert_chain" lint "$work/root.pem" "$work/client-ca.pem"
check "pkilint: client CA -> client chain" "$venv/bin/lint_pkix_signer_signee_cert_chain" lint "$work/client-ca.pem" "$work/bundle/conformance-case.crt.pem"
check "openssl verify: the client certificate chains through the client CA to the root for client use" \
  openssl verify -purpose sslclient -CAfile "$work/root.pem" -untrusted "$work/client-ca.pem" "$work/bundle/conformance-case.crt.pem"
check_fails "openssl verify control: without the client CA the client certificate does not chain" \
  openssl verify -purpose sslclient -CAfile "$work/root.pem" "$work/bundle/conformance-case.crt.pem"
check "openssl verify: the client CA may issue client certificates only (path length 0, EKU clientAuth)" \
  sh -c "openssl x509 -in '$work/client-ca.pem' -noout -ext basicConstraints,extendedKeyUsage | tr -d ' ' >'$work/cca.txt' \
         && grep -q 'CA:TRUE,pathlen:0' '$work/cca.txt' && grep -q 'TLSWebClientAuthentication' '$work/cca.txt'"
lic_id=$(auth "$base/v1/licenses?limit=1" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
verify_body="{\"matter_code\": \"conformance\", \"case_number\": \"c-1\", \"license_id\": \"$lic_id\"}"
check "curl with the client certificate: the license verifies as authentic" \
  sh -c "curl -sf --resolve $tls_host:$tls_port:127.0.0.1 --cacert '$work/root.pem' --cert '$work/bundle/conformance-case.crt.pem' \
         --key '$work/bundle/conformance-case.key.pem' -H 'content-type: application/json' \
         -d '$verify_body' '$tls_base/v1/verifications' | grep -q '\"authentic\":true'"
check "curl without a client certificate: refused with MTLS-0001" \
  sh -c "curl -s --resolve $tls_host:$tls_port:127.0.0.1 --cacert '$work/root.pem' -H 'content-type: application/json' -d '$verify_body' \
         '$tls_base/v1/verifications' | grep -q 'MTLS-0001'"
check "the plain-HTTP listener does not verify: 401 MTLS-0001 (a client certificate is required)" \
  sh -c "curl -s -w ' %{http_code}' -H 'content-type: application/json' -d '$verify_body' '$base/v1/verifications' \
         | tee /dev/stderr | grep -q 'MTLS-0001.* 401\$'"
check "elicense client revoke (a second process, the service still running)" \
  "$bin" --data-dir "$data" client revoke --id conformance-case --reason keyCompromise
check "curl with the revoked client certificate: refused with MTLS-0004" \
  sh -c "curl -s --resolve $tls_host:$tls_port:127.0.0.1 --cacert '$work/root.pem' --cert '$work/bundle/conformance-case.crt.pem' \
         --key '$work/bundle/conformance-case.key.pem' -H 'content-type: application/json' \
         -d '$verify_body' '$tls_base/v1/verifications' | grep -q 'MTLS-0004'"
client_dp=$(openssl x509 -in "$work/bundle/conformance-case.crt.pem" -noout -ext crlDistributionPoints | sed -n 's/.*URI://p' | head -1)
check "the client certificate names its client CA's CRL ($client_dp)" \
  sh -c "case '$client_dp' in '$base'/v1/pki/client-ca/*/crl) true;; *) false;; esac && curl -sf '$client_dp' -o '$work/client-crl.der'"
check "openssl crl verifies the client CA's CRL with the client CA" \
  sh -c "openssl crl -inform DER -in '$work/client-crl.der' -CAfile '$work/client-ca.pem' -noout 2>&1 | grep -q 'verify OK'"
openssl crl -inform DER -in "$work/client-crl.der" -out "$work/client-crl.pem" 2>/dev/null
check "openssl verify -crl_check refuses the revoked client certificate as revoked" \
  sh -c "! openssl verify -crl_check -purpose sslclient -CAfile '$work/root.pem' -untrusted '$work/client-ca.pem' \
         -CRLfile '$work/client-crl.pem' '$work/bundle/conformance-case.crt.pem' >'$work/crv.log' 2>&1 \
         && grep -q 'certificate revoked' '$work/crv.log'"
check "elicense audit verify: the log is intact" "$bin" --data-dir "$data" audit verify

echo "== Another region imports this region's trust list by URL (pinned root)"
env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/b" init --region 340100 --name "Region B" >/dev/null
pin=$(openssl x509 -in "$work/root.pem" -outform DER | sha256sum | cut -d' ' -f1)
check "region import over http:// with the root pinned by SHA-256" \
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/b" region import "$base/v1/trust-list" --root-sha256 "$pin"
check "region import refuses a wrong pin (TRL-0001)" \
  sh -c "env -u ELICENSE_MASTER_KEY '$bin' --data-dir '$work/b' region import '$base/v1/trust-list' \
         --root-sha256 $(printf '0%.0s' $(seq 64)) 2>&1 | grep -q TRL-0001"
check "region import over https:// from the HTTPS listener (no client certificate, the pin decides)" \
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/b" region import "https://127.0.0.1:$tls_port/v1/trust-list" --root-sha256 "$pin"
check "serve refuses a plain-HTTP listener on a non-loopback address (REQ-0001)" \
  sh -c "! timeout 30 env -u ELICENSE_MASTER_KEY '$bin' --data-dir '$work/b' serve --listen 0.0.0.0:0 >'$work/nl.log' 2>&1 \
         && grep -q 'REQ-0001.*loopback only' '$work/nl.log'"
check "the imported region is listed" \
  sh -c "env -u ELICENSE_MASTER_KEY '$bin' --data-dir '$work/b' region list | grep -q '^340600'"

echo "== Show codes: QR images decoded by zbarimg, checked offline against the trust list"
curl -sf "$base/v1/trust-list" >"$work/trust-list.txt"
for printed in "" "--printed"; do
  code=$("$bin" --data-dir "$data" license show-code "$lic_id" --fields sex,birth_date $printed --png "$work/sc.png" 2>/dev/null)
  check "zbarimg decodes the ${printed:-phone} QR code to the exact show code" \
    sh -c "[ -n '$code' ] && [ \"\$(zbarimg -q --raw '$work/sc.png' 2>/dev/null)\" = '$code' ]"
  check "elicense check accepts the ${printed:-phone} code with the trust list only" \
    "$bin" --data-dir "$work/nowhere" check "$code" --trust "$work/trust-list.txt"
done
check "elicense check reads the code from the QR image itself" \
  "$bin" --data-dir "$work/nowhere" check "$work/sc.png" --trust "$work/trust-list.txt"
auth -X POST -H 'content-type: application/json' -d '{"status":"suspended","reason":"conformance"}' \
  "$base/v1/licenses/$lic_id/status" >/dev/null || fail "suspend the license"
curl -sf "$base/v1/status-list" >"$work/status-list.txt"
check "with the fresh status list, the offline check of the earlier code says suspended" \
  sh -c "'$bin' --data-dir '$work/nowhere' check '$code' --trust '$work/trust-list.txt' --status '$work/status-list.txt' \
         | grep -q '\"verdict\": \"suspended\"'"

echo "== The wallet and the officer page in a real browser (Chromium)"
shots="${ELICENSE_SCREENSHOTS:-$PWD/conformance/out/screenshots}"
mkdir -p "$shots"
web_lic=$(auth "$base/v1/licenses?limit=5&status=valid" | "$venv/bin/python" -c 'import json,sys; l=json.load(sys.stdin)["items"][-1]; print(l["id"], l["holder"]["code"])')
check "a browser signs in to /wallet, shows a QR, and /check says valid (exact fields), then revoked" \
  env ELICENSE_NODE_MODULES="${ELICENSE_NODE_DIR:-/var/cache/elicense-node}/node_modules" \
  node conformance/browser.mjs "$base" "${web_lic#* }" "${web_lic% *}" "$token" "$shots"
grep -h "^browser:" "$work/last.log" | sed 's/^/       /'
echo "       screenshots: $shots"

# PDF seals (PAdES): pyHanko, poppler's pdfsig, openssl cms/ts, qpdf, pkilint.
. conformance/seals.sh

# Last, because it creates and changes data at random: schemathesis against the live OpenAPI
# document: no 5xx, and every response conforms to the document (status code, content type,
# headers, body schema), invalid requests are refused, undeclared methods get 405. Not gated:
# positive_data_acceptance, because identifiers in paths carry check characters (GB/T 36904
# MOD 37,36; GB 32100) that a JSON Schema cannot express, so a random string matching the
# documented type is rightly refused. The operations with binary bodies (PDF, RFC 3161, NDJSON)
# are exercised by the fuzzers, the seal checks and the fault tests instead.
echo "== API robustness: schemathesis (--checks all)"
check "schemathesis: every generated request answered per the OpenAPI document (seed 42)" \
  "$venv/bin/st" run "$base/openapi.json" --checks all --exclude-checks positive_data_acceptance \
  -H "Authorization: Bearer $token" --max-examples 20 --seed 42 --exclude-path /tsa --exclude-path /v1/imports \
  --exclude-path /v1/seals/verify --exclude-path '/v1/seals/{id}/sign'
grep -E '^  (Selected|Tested)|generated' "$work/last.log" | sed 's/^/       /'

echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
