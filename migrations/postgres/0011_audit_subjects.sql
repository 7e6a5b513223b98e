-- The holder's access list reads the audit log by subject. As an index on audit_log, that
-- lookup was maintained inside every group commit of the log: one more random index page per
-- entry while the callers waited for the commit (docs/PERFORMANCE.md). Now the log's commit
-- writes the log alone, and each node's indexer copies (subject, seq) of the committed entries
-- into this table in bulk a few times a second. Entries after `audit_subjects_done.seq` are not
-- indexed yet; the access list scans that short tail of the log directly, so it is never behind
-- the log. `elicense audit verify` checks this table against the log.
CREATE TABLE audit_subjects (
    subject     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (subject, seq)
);

CREATE TABLE audit_subjects_done (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq         BIGINT NOT NULL           -- every entry up to this one is in audit_subjects
);

INSERT INTO audit_subjects (subject, seq) SELECT subject, seq FROM audit_log;
INSERT INTO audit_subjects_done (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_log;
DROP INDEX audit_subject;
