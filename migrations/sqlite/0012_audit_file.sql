-- The audit log and its checkpoints live in a file of their own from now on (the `audit`
-- schema, attached to every connection: migrations/sqlite-audit). store::connect has copied
-- this file's rows there before this migration runs, in a transaction of the audit file alone;
-- a transaction over both files is atomic per file only, so the copy and this drop are two.
-- The drop is refused (the migration fails, nothing is dropped) unless every entry and
-- checkpoint here is in the audit file with the same hash; the next start copies again.
-- The subject index stays here: the indexer writes it on a connection of its own, so the
-- log's commits never wait for it.

-- The audit file this database belongs to (its `audit_meta.file_id`). Bound here, in the
-- transaction that drops the old log, so no crash leaves the log moved and its file unbound
-- (a later start would then take any audit file, or a new empty one, for it).
CREATE TABLE audit_file (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    file_id     TEXT NOT NULL,
    bound_at    INTEGER NOT NULL
);
INSERT INTO audit_file (singleton, file_id, bound_at)
SELECT 1, file_id, CAST(strftime('%s', 'now') AS INTEGER) FROM audit.audit_meta;

CREATE TEMP TABLE audit_moved (ok INTEGER NOT NULL CHECK (ok = 1));
INSERT INTO audit_moved
SELECT NOT EXISTS (
           SELECT 1 FROM main.audit_log m WHERE NOT EXISTS
               (SELECT 1 FROM audit.audit_log a WHERE a.seq = m.seq AND a.hash = m.hash))
   AND NOT EXISTS (
           SELECT 1 FROM main.audit_checkpoints m WHERE NOT EXISTS
               (SELECT 1 FROM audit.audit_checkpoints a
                WHERE a.seq = m.seq AND a.signature = m.signature));
DROP TABLE audit_moved;

DROP TABLE main.audit_log;
DROP TABLE main.audit_checkpoints;
