-- The status index lists only licenses that are not plainly valid: listings filter by the rare
-- statuses (suspended, revoked, ...) through it, while a filter for valid licenses, the vast
-- majority, walks the primary key anyway. New licenses are valid, so issuance no longer writes
-- to it. Queries for another status add `status <> '01'` so the index applies.
-- (PostgreSQL's 0010 also drops the foreign keys of licenses to license_types and authorities,
-- a query per inserted row there; SQLite checks them with an index probe inside the engine,
-- and dropping them would mean rebuilding the largest table.)
DROP INDEX licenses_status;
CREATE INDEX licenses_status ON licenses (status, lineage) WHERE status <> '01';
