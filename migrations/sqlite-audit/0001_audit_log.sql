-- The audit log of a SQLite deployment, in a file of its own beside the main database
-- (elicense-audit.db beside elicense.db). Every verification appends to it and waits for the
-- commit; in the main file, each of those commits made every license reader drop its whole
-- page cache (WAL mode does that on any change to the file) and read the license pages again.
-- In a file of its own the readers keep their caches, and its small pages make each commit's
-- WAL frames small (docs/PERFORMANCE.md). The main file's own migrations (0012) drop the old
-- tables there once store::connect has copied their rows here. PostgreSQL keeps the log in its
-- database. Released migrations are never edited: add a new file instead.

-- Which file this is: the main database records the id it was first opened with
-- (`audit_file`), and refuses to start with another audit file or without one.
CREATE TABLE audit_meta (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    file_id     TEXT NOT NULL,            -- random, 32 hex digits
    created_at  INTEGER NOT NULL
);
INSERT INTO audit_meta (singleton, file_id, created_at)
VALUES (1, lower(hex(randomblob(16))), CAST(strftime('%s', 'now') AS INTEGER));

-- Tamper-evident audit log: each entry's hash covers the previous entry's hash and its own
-- content; signed checkpoints pin the chain so a truncated tail is detected too. The holder's
-- access list finds entries by subject through `audit_subjects` in the main file.
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

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,      -- the last entry covered
    hash        BLOB NOT NULL,            -- that entry's hash
    at          INTEGER NOT NULL,
    signature   BLOB NOT NULL,            -- COSE_Sign1 (ES256, root key) over {seq, hash, at}
    cert_serial TEXT NOT NULL
);
