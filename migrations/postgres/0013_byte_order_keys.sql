-- Identifier columns compare as bytes (COLLATE "C"), as SQLite's BINARY collation does.
-- (Numbered 0013 so that no two migrations of the two backends share a number: SQLite's 0012
-- moved the audit log into a file of its own.)
--
-- 1. Correctness: the type filter of the license listing is the range
--    `lineage >= 'TYPE.' AND lineage < 'TYPE/'`, which holds only in byte order; so do the
--    keyset pages that continue after a lineage. A database created with a linguistic default
--    collation (en_US.UTF-8, zh_CN.UTF-8, an ICU locale) may order punctuation and letters
--    otherwise, and its indexes change order when the C library's collation data changes (the
--    glibc 2.28 upgrade left such indexes corrupt). Byte order is the same on every node and
--    every library version; for UTF-8 it is code point order, which C.UTF-8 (this machine's
--    default) also gives, so no existing order changes here.
-- 2. Speed: a B-tree insert compares keys on every level of its descent; with a libc collation
--    each comparison copies both strings to NUL-terminate them and calls strcoll, with "C" it is
--    one memcmp. 200,000 rows into this table's three text indexes on the benchmark machine,
--    three alternating runs each: 1.11-1.15 s against 1.21-1.29 s (about 9% of the server's
--    time per inserted license).
--
-- ALTER COLUMN ... TYPE with only a new collation does not rewrite the table, but rebuilds the
-- indexes on the column (and the foreign keys that reference it): on a large database, expect
-- this migration to take as long as building those indexes.
ALTER TABLE licenses
    ALTER COLUMN lineage TYPE TEXT COLLATE "C",
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN type_code TYPE TEXT COLLATE "C",
    ALTER COLUMN number TYPE TEXT COLLATE "C",
    ALTER COLUMN holder_code TYPE TEXT COLLATE "C";
ALTER TABLE license_versions
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN lineage TYPE TEXT COLLATE "C";
ALTER TABLE license_events ALTER COLUMN lineage TYPE TEXT COLLATE "C";
ALTER TABLE grants
    ALTER COLUMN lineage TYPE TEXT COLLATE "C",
    ALTER COLUMN holder_code TYPE TEXT COLLATE "C";
