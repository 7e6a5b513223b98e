#!/usr/bin/env bash
# Creates an INSECURE throw-away development PKI in certs/dev/: a demo region with its root CA
# and three authorities, and exports their certificates and the CRL as files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=certs/dev
rm -rf "$out" && mkdir -p "$out"
bin=(cargo run --quiet --release --)
"${bin[@]}" --data-dir "$out/data" init --region 340600 --name "示范市 Demo City (INSECURE dev PKI)" >/dev/null
"${bin[@]}" --data-dir "$out/data" pki root >"$out/root.pem"
i=0
for code in 11340600MB0000011Q 11340600MB0000021R 11340600MB0000031T; do
  "${bin[@]}" --data-dir "$out/data" authority add --code "$code" --name "Dev authority $i" \
    --types 11100000000013338W001,11100000000013338W002,11100000000013338W003,11100000000013338W004 >/dev/null
  "${bin[@]}" --data-dir "$out/data" authority cert --code "$code" >"$out/authority-$code.pem"
  i=$((i + 1))
done
"${bin[@]}" --data-dir "$out/data" pki crl --out "$out/crl.der" >/dev/null
echo "INSECURE development PKI written to $out/"
