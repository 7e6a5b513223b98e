#!/usr/bin/env bash
# Installs what the tests need, idempotently, and makes sure PostgreSQL runs. Safe to re-run.
set -euo pipefail

need_apt=()
for pkg in openssl curl postgresql zbar-tools chromium fonts-noto-cjk poppler-utils poppler-data qpdf libnss3-tools; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Node.js may come with the machine rather than from Debian: install it only when absent.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL on 127.0.0.1:5432 (trust auth on this kind of machine).
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432
fi

# Python tools for conformance runs, in a venv outside the clone so CI reuses it.
venv="${ELICENSE_VENV:-/var/cache/elicense-venv}"
if ! "$venv/bin/python" -c 'import pkilint, cbor2, cryptography, pyhanko.cli, schemathesis' >/dev/null 2>&1; then
  echo "setup: creating $venv (pkilint, cbor2, cryptography, pyhanko, schemathesis)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'pkilint>=0.13' 'cbor2>=5' 'cryptography>=42' \
    'pyhanko>=0.29' 'pyhanko-cli>=0.1' 'schemathesis>=4'
fi

# playwright-core (drives Debian's Chromium; downloads no browser of its own), outside the clone.
node_dir="${ELICENSE_NODE_DIR:-/var/cache/elicense-node}"
if [ ! -d "$node_dir/node_modules/playwright-core" ]; then
  echo "setup: installing playwright-core in $node_dir"
  mkdir -p "$node_dir"
  (cd "$node_dir" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null)
fi

# cargo-fuzz for the fuzz smoke (the nightly toolchain comes with the machine image).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi

# oha (HTTP load generator with client-certificate support) for the load test, outside the clone.
tools="${ELICENSE_TOOLS:-/var/cache/elicense-tools}"
if ! "$tools/bin/oha" --version >/dev/null 2>&1; then
  echo "setup: installing oha in $tools"
  CARGO_TARGET_DIR=/var/cache/elicense-tools-target cargo install --quiet --locked oha --version 1.16.0 --root "$tools"
fi
