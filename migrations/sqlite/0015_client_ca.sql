-- Client certificates of case-handling systems are issued by the region's client CA, an
-- intermediate of the root, from now on; that CA publishes its own CRL. CRL numbers stay one
-- sequence over both issuers (each issuer's numbers still only increase, RFC 5280 5.2.3);
-- `issuer` says whose CRL a row is. Every CRL before this one is the root's.
ALTER TABLE crls ADD COLUMN issuer TEXT NOT NULL DEFAULT 'root';
CREATE INDEX crls_issuer ON crls (issuer, number);
