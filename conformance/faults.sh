#!/usr/bin/env bash
# Load and faults, against real service processes (run alone: bash conformance/faults.sh):
#  1. load: oha drives POST /v1/verifications over mutual TLS with 64 connections for
#     LOAD_SECONDS (default 60): zero errors, every answer 200, and no memory growth;
#  2. PostgreSQL stopped and started again under load: only 200s and clean 503s (SYS-0503),
#     never a 500, and the service recovers by itself;
#  3. two service processes on one PostgreSQL database: a license revoked through one is
#     revoked on the other at once; both under load at once keep one unbroken audit chain;
#  4. kill -9 during bulk and single issuance, and during sealing: everything acknowledged is
#     there and verifies, the interrupted import resumes without issuing anything twice, and
#     `elicense audit verify` passes.
# Prints "faults: N passed, M failed" and exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/elicense-target}"
venv="${ELICENSE_VENV:-/var/cache/elicense-venv}"
oha="${ELICENSE_OHA:-/var/cache/elicense-tools/bin/oha}"
load_seconds="${LOAD_SECONDS:-60}"
pg_admin="${ELICENSE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo build --quiet --release --bin elicense || exit 1
bin="$CARGO_TARGET_DIR/release/elicense"
py="$venv/bin/python"
client_py="conformance/faults/crash_client.py"

work=$(mktemp -d)
db="elicense_faults_$$"
pids=()
pg_start() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true; }
pg_stop() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main stop -m fast >/dev/null 2>&1; }
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  pg_start
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "  ok   $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { local name=$1; shift; if "$@" >"$work/last.log" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/       /' "$work/last.log" | head -20; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 150); do curl -sf "$1/healthz" >/dev/null && return 0; sleep 0.2; done; return 1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start NAME DATA_DIR DB_URL -> sets ${NAME}_pid, ${NAME}_base, ${NAME}_tls (port)
start() {
  local name=$1 dir=$2 url=$3 port tls
  port=$(free_port); tls=$(free_port)
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$dir" --database-url "$url" serve --demo \
    --listen "127.0.0.1:$port" --tls-listen "127.0.0.1:$tls" >>"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  printf -v "${name}_pid" '%s' "$pid"
  printf -v "${name}_base" '%s' "http://127.0.0.1:$port"
  printf -v "${name}_tls" '%s' "$tls"
  wait_up "http://127.0.0.1:$port"
}

# verify_call TLS_PORT LICENSE_ID -> prints the JSON answer
verify_call() {
  curl -s --cacert "$work/root.pem" --cert "$work/bundle/faults.crt.pem" --key "$work/bundle/faults.key.pem" \
    --resolve "localhost:$1:127.0.0.1" -H 'Content-Type: application/json' \
    -d "{\"matter_code\":\"faults\",\"case_number\":\"f-1\",\"license_id\":\"$2\"}" \
    "https://localhost:$1/v1/verifications"
}

# oha_run SECONDS TLS_PORT OUT.json: 64 connections of verifications
oha_run() {
  "$oha" -z "${1}s" -c 64 --no-tui --output-format json --ipv4 \
    --cacert "$work/root.pem" --cert "$work/bundle/faults.crt.pem" --key "$work/bundle/faults.key.pem" \
    -m POST -T application/json -d "$(cat "$work/body.json")" \
    --connect-to "localhost:$2:127.0.0.1:$2" "https://localhost:$2/v1/verifications" >"$3" 2>"$3.err"
}

# summary OUT.json: "requests=N 200=N 503=N other=N errors=N rps=N p50=ms p99=ms"
summary() {
  "$py" - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
codes = {str(k): v for k, v in (r.get("statusCodeDistribution") or {}).items()}
# oha ends a -z run by cutting the requests in flight ("aborted due to deadline"): not errors.
errors = sum(v for k, v in (r.get("errorDistribution") or {}).items() if "deadline" not in k)
lat = r.get("latencyPercentiles") or {}
ok = codes.get("200", 0)
other = sum(v for k, v in codes.items() if k not in ("200", "503"))
print(f"requests={sum(codes.values())} 200={ok} 503={codes.get('503', 0)} other={other} errors={errors} "
      f"rps={r['summary'].get('requestsPerSec', 0):.0f} p50={1000 * (lat.get('p50') or 0):.2f}ms "
      f"p99={1000 * (lat.get('p99') or 0):.2f}ms codes={codes} error_kinds={list((r.get('errorDistribution') or {}).keys())[:3]}")
PY
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

pg_start
psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null || { echo "faults: cannot create $db"; exit 1; }
pg_url="${pg_admin%/*}/$db"

echo "== two nodes on one PostgreSQL database"
start a "$work/a" "$pg_url" || { fail "node A starts"; cat "$work/a.log"; exit 1; }
token=$(cat "$work/a/admin.token")
mkdir -p "$work/b" && cp "$work/a/master.key" "$work/b/master.key"
start b "$work/b" "$pg_url" || { fail "node B starts"; cat "$work/b.log"; exit 1; }
curl -sf "$a_base/v1/pki/root" >"$work/root.pem"
env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/a" --database-url "$pg_url" client add --id faults \
  --name "Faults case system" --department "测试" --types 11100000000013338W001 --fields sex \
  --statutory --out-dir "$work/bundle" >/dev/null || fail "client add"
ids=$(curl -sf -H "Authorization: Bearer $token" "$a_base/v1/licenses?type=11100000000013338W001&limit=2" \
  | "$py" -c 'import json,sys; print(" ".join(l["id"] for l in json.load(sys.stdin)["items"]))')
set -- $ids; lic=$1; victim=$2
printf '{"matter_code":"load","case_number":"l-1","license_id":"%s"}' "$lic" >"$work/body.json"
va=$(verify_call "$a_tls" "$victim"); vb=$(verify_call "$b_tls" "$victim")
check "node A and node B both verify the same license as valid" \
  sh -c "echo '$va' | grep -q '\"status_code\":\"01\"' && echo '$vb' | grep -q '\"status_code\":\"01\"'"
curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"status":"revoked","reason":"faults test"}' "$a_base/v1/licenses/$victim/status" >/dev/null \
  || fail "revoke through node A"
vb=$(verify_call "$b_tls" "$victim")
check "revoked through node A, node B answers revoked at once" sh -c "echo '$vb' | grep -q '\"status\":\"revoked\"'"
oha_run 10 "$a_tls" "$work/two-a.json" & l1=$!
oha_run 10 "$b_tls" "$work/two-b.json" & l2=$!
wait $l1 $l2
sa=$(summary "$work/two-a.json"); sb=$(summary "$work/two-b.json")
echo "       node A: $sa"; echo "       node B: $sb"
check "both nodes under load at once: zero errors, only 200s" \
  sh -c "[ '$(field other "$sa")$(field errors "$sa")$(field 503 "$sa")' = 000 ] && [ '$(field other "$sb")$(field errors "$sb")$(field 503 "$sb")' = 000 ] && [ '$(field 200 "$sa")' -gt 0 ] && [ '$(field 200 "$sb")' -gt 0 ]"
check "audit verify: one unbroken chain after two writers" \
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/a" --database-url "$pg_url" audit verify
kill "$b_pid" 2>/dev/null; wait "$b_pid" 2>/dev/null

echo "== load: ${load_seconds} s of verifications over mutual TLS, 64 connections (oha)"
oha_run 5 "$a_tls" "$work/warm.json"
rss0=$(rss_kb "$a_pid")
oha_run "$load_seconds" "$a_tls" "$work/load.json" &
lp=$!
sleep $((load_seconds / 4)); rss1=$(rss_kb "$a_pid")
wait $lp
rss2=$(rss_kb "$a_pid")
s=$(summary "$work/load.json")
echo "       $s"
echo "       RSS: ${rss0} kB after warm-up, ${rss1} kB at a quarter, ${rss2} kB at the end"
check "load: zero errors, every answer 200" \
  sh -c "[ '$(field other "$s")' = 0 ] && [ '$(field errors "$s")' = 0 ] && [ '$(field 503 "$s")' = 0 ] && [ '$(field 200 "$s")' -gt 0 ]"
check "load: no memory growth (end within 16 MiB of the quarter mark)" \
  sh -c "[ $rss2 -le $((rss1 + 16384)) ]"

echo "== PostgreSQL stopped and started again under load"
oha_run 24 "$a_tls" "$work/outage.json" &
lp=$!
sleep 6; pg_stop; sleep 6
down=$(verify_call "$a_tls" "$lic")
pg_start
wait $lp
s=$(summary "$work/outage.json")
echo "       $s"
echo "       during the outage: $down"
grep -E "SYS-0500" "$work/a.log" | head -5 | cut -c1-300 | sed 's/^/       log: /'
check "outage: answers are 200 or 503, never a 500 or a dropped connection" \
  sh -c "[ '$(field other "$s")' = 0 ] && [ '$(field errors "$s")' = 0 ]"
check "outage: the service said 503 SYS-0503 while the database was down" \
  sh -c "[ '$(field 503 "$s")' -gt 0 ] && echo '$down' | grep -q SYS-0503"
recovered=""
for _ in $(seq 1 50); do
  verify_call "$a_tls" "$lic" | grep -q '"authentic":true' && { recovered=1; break; }
  sleep 0.2
done
check "outage: the service recovered by itself" test -n "$recovered"
check "outage: the service process is still the same one" kill -0 "$a_pid"
check "audit verify after load and outage" \
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/a" --database-url "$pg_url" audit verify
kill "$a_pid" 2>/dev/null; wait "$a_pid" 2>/dev/null

echo "== kill -9 during bulk and single issuance (SQLite)"
start c "$work/c" "sqlite://$work/c/elicense.db" || { fail "node C starts"; cat "$work/c.log"; exit 1; }
token=$(cat "$work/c/admin.token")
issuer=$(curl -sf -H "Authorization: Bearer $token" "$c_base/v1/authorities" \
  | "$py" -c 'import json,sys; print(next(a["credit_code"] for a in json.load(sys.stdin) if "11100000000013338W001" in a["types"]))')
"$py" "$client_py" requests 150000 1 "$issuer" >"$work/bulk.jsonl"
"$py" "$client_py" import "$c_base" "$token" "$work/bulk.jsonl" >"$work/import1.json" & ip=$!
"$py" "$client_py" issue "$c_base" "$token" "$work/acked.txt" 1 & sp=$!
sleep 4
kill -9 "$c_pid"; wait "$ip" "$sp" 2>/dev/null
acked=$(wc -l <"$work/acked.txt")
echo "       single issues acknowledged before the kill: $acked; import answer: $(cat "$work/import1.json")"
start c "$work/c" "sqlite://$work/c/elicense.db" || { fail "node C restarts"; cat "$work/c.log"; exit 1; }
missing=0
while read -r id; do
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "$c_base/v1/licenses/$id" || missing=$((missing + 1))
done <"$work/acked.txt"
check "every acknowledged single issue is there after kill -9 ($acked acknowledged)" \
  sh -c "[ $acked -gt 0 ] && [ $missing = 0 ]"
"$py" "$client_py" import "$c_base" "$token" "$work/bulk.jsonl" >"$work/import2.json"
"$py" "$client_py" import "$c_base" "$token" "$work/bulk.jsonl" >"$work/import3.json"
echo "       re-run: $(cut -c1-200 "$work/import2.json")"
check "the interrupted import resumes: all 150,000 issued, none failed, a third run issues nothing" \
  "$py" -c "
import json
a = json.load(open('$work/import2.json'))['result']; b = json.load(open('$work/import3.json'))['result']
assert a['issued'] == 150000 and a['failed'] == 0, a
assert b['issued_this_run'] == 0 and b['already_complete'], b"
check "every license in the database verifies (cbor2 + cryptography, no half-written record)" \
  "$py" conformance/verify_licenses.py "$c_base" "$token"
check "SQLite integrity_check after kill -9 (the database and its audit file)" \
  "$py" -c "
import sqlite3
for f in ('elicense.db', 'elicense-audit.db'):
    r = sqlite3.connect('$work/c/' + f).execute('PRAGMA integrity_check').fetchone()[0]
    assert r == 'ok', (f, r)"

echo "== kill -9 during sealing"
curl -sf "$c_base/v1/pki/root" >"$work/c-root.pem"
seal=$(curl -sf -H "Authorization: Bearer $token" "$c_base/v1/seals" \
  | "$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$py" conformance/pdf/make_pdf.py "$work/doc.pdf" 2
"$py" "$client_py" seal "$c_base" "$token" "$seal" "$work/doc.pdf" "$work/sealed.txt" & sp=$!
sleep 3
kill -9 "$c_pid"; wait "$sp" 2>/dev/null
sealed=$(grep -c '^sealed' "$work/sealed.txt" || true)
logged=$("$py" -c "import sqlite3; print(sqlite3.connect('$work/c/elicense-audit.db').execute(\"SELECT count(*) FROM audit_log WHERE action = 'seal.sign'\").fetchone()[0])")
echo "       seals acknowledged before the kill: $sealed; seal.sign entries in the audit log: $logged"
check "every acknowledged seal is in the audit log after kill -9" sh -c "[ $sealed -gt 0 ] && [ $logged -ge $sealed ]"
big="$work/big.pdf"
"$py" conformance/pdf/make_pdf.py "$big" 4 --image-mb 400
caught=0; bad=0
for delay in 0.1 0.2 0.3 0.4 0.5 0.6 0.8 1.0 1.3 1.6 2.0; do
  out="$work/kill-$delay"; mkdir -p "$out"
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/c" --database-url "sqlite://$work/c/elicense.db" \
    seal sign --seal "$seal" --in "$big" --out "$out/sealed.pdf" >/dev/null 2>&1 & cp_=$!
  sleep "$delay"; kill -9 "$cp_" 2>/dev/null; wait "$cp_" 2>/dev/null
  if [ -e "$out/sealed.pdf" ]; then
    # Finished before the kill: then it must be whole.
    "$bin" seal verify "$out/sealed.pdf" --trust "$work/c-root.pem" >/dev/null 2>&1 || bad=$((bad + 1))
  elif ls "$out"/.tmp* >/dev/null 2>&1; then
    caught=$((caught + 1))
  fi
  rm -rf "$out"
done
echo "       CLI seal of a 400 MB PDF killed at 11 moments: $caught mid-write, $bad partial outputs"
check "a CLI seal killed mid-way leaves no output file, only a temporary one (renamed when whole)" \
  sh -c "[ $caught -gt 0 ] && [ $bad = 0 ]"
check "audit verify after the kills" \
  env -u ELICENSE_MASTER_KEY "$bin" --data-dir "$work/c" --database-url "sqlite://$work/c/elicense.db" audit verify

echo "faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
