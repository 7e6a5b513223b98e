-- Tamper-evident audit log: each entry's hash covers the previous entry's hash and its own
-- content; signed checkpoints pin the chain so a truncated tail is detected too.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,      -- 1, 2, 3, ... without gaps
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,            -- token name, client id, or "system"
    action      TEXT NOT NULL,            -- e.g. license.issue, license.status, verification
    subject     TEXT NOT NULL,            -- what it is about (a license id, a client id, ...)
    details     TEXT NOT NULL,            -- canonical JSON
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX audit_subject ON audit_log (subject, seq);

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,      -- the last entry covered
    hash        BLOB NOT NULL,            -- that entry's hash
    at          INTEGER NOT NULL,
    signature   BLOB NOT NULL,            -- COSE_Sign1 (ES256, root key) over {seq, hash, at}
    cert_serial TEXT NOT NULL
);
