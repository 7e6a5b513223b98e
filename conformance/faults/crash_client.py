"""Drives a running elicense service until it dies, writing down what it acknowledged.

Used by conformance/faults.sh for the kill -9 tests:

    crash_client.py issue BASE TOKEN ACKED_FILE SEQ_START   # single issues, 4 threads
    crash_client.py import BASE TOKEN JSONL_FILE            # one bulk import; prints its result
    crash_client.py seal BASE TOKEN SEAL_ID PDF ACKED_FILE  # seals, 2 threads
    crash_client.py requests N SEQ_START > FILE.jsonl       # synthetic ID-card requests

An acknowledgement is written (and fsynced) only after the service answered with success, so
every line of ACKED_FILE is something the service promised to keep.
"""

import json
import os
import random
import sys
import threading
import urllib.error
import urllib.request

TYPE = "11100000000013338W001"  # resident ID card
ISSUER = "11340600MB0000011X"  # demo public security bureau, see src/demo.rs
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(rng, seq):
    y, m, d = 1950 + rng.randrange(55), 1 + rng.randrange(12), 1 + rng.randrange(28)
    body = f"340602{y:04}{m:02}{d:02}{seq % 1000:03}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]
    return body + check, f"{y:04}-{m:02}-{d:02}", "男" if seq % 2 else "女"


def request(seq, issuer, prefix):
    rng = random.Random(seq)
    code, birth, sex = resident_id(rng, seq)
    return {
        "type": TYPE,
        "issuer": issuer,
        "number": f"{prefix}{seq:010}",
        "holder": {"name": "测试" + "甲乙丙丁"[seq % 4], "code": code, "code_type": "111"},
        "issue_date": "2024-05-01",
        "fields": {
            "sex": sex,
            "ethnicity": "汉",
            "birth_date": birth,
            "address": f"安徽省示范市相山路{1 + seq % 300}号",
            "issuing_office": "示范市公安局相山分局",
        },
    }


def post(base, token, path, body, ctype="application/json", timeout=60):
    req = urllib.request.Request(
        base + path,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def authority(base, token):
    req = urllib.request.Request(base + "/v1/authorities", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        for a in json.load(r):
            if TYPE in a.get("types", []):
                return a["credit_code"]
    return ISSUER


def record(out, lock, line):
    with lock:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def issue(base, token, acked, seq_start):
    issuer = authority(base, token)
    lock = threading.Lock()
    out = open(acked, "a")

    def worker(k):
        seq = seq_start + k
        while True:
            body = json.dumps(request(seq, issuer, "CR")).encode()
            try:
                status, resp = post(base, token, "/v1/licenses", body)
            except (urllib.error.URLError, ConnectionError, OSError):
                return  # the service is gone
            if status in (200, 201):
                record(out, lock, json.loads(resp)["id"])
            seq += 4

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def bulk(base, token, path):
    data = open(path, "rb").read()
    try:
        status, resp = post(base, token, "/v1/imports", data, "application/x-ndjson", timeout=600)
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "body": e.read().decode(errors="replace")}))
        return
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        print(json.dumps({"status": None, "error": str(e)}))
        return
    print(json.dumps({"status": status, "result": json.loads(resp)}))


def seal(base, token, seal_id, pdf, acked):
    data = open(pdf, "rb").read()
    lock = threading.Lock()
    out = open(acked, "a")

    def worker():
        while True:
            try:
                status, resp = post(base, token, f"/v1/seals/{seal_id}/sign", data, "application/pdf")
            except urllib.error.HTTPError as e:
                record(out, lock, f"refused {e.code}")
                continue
            except (urllib.error.URLError, ConnectionError, OSError):
                return
            if status == 200 and resp.startswith(b"%PDF"):
                record(out, lock, "sealed")

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def main():
    mode = sys.argv[1]
    if mode == "issue":
        issue(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif mode == "import":
        bulk(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "seal":
        seal(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
    elif mode == "requests":
        n, start = int(sys.argv[2]), int(sys.argv[3])
        issuer = sys.argv[4] if len(sys.argv) > 4 else ISSUER
        for seq in range(start, start + n):
            print(json.dumps(request(seq, issuer, "IM"), ensure_ascii=False))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
