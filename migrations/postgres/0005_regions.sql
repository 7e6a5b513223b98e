-- Other regions whose licenses this region recognises (mutual recognition), from their signed
-- trust lists.
CREATE TABLE foreign_regions (
    code          TEXT PRIMARY KEY,       -- their division code
    name          TEXT NOT NULL,
    root_der      BYTEA NOT NULL,          -- their root CA (pinned by SHA-256 at import)
    trust_list    TEXT NOT NULL,          -- the signed trust list as imported (ELT1:...)
    authorities   TEXT NOT NULL,          -- JSON array of their authorities' credit codes
    endpoint      TEXT,                   -- their verification endpoint (https://...)
    client_cert   BYTEA,                   -- our client certificate issued by them
    client_key_id TEXT REFERENCES keys (id), -- its key, sealed in our key store
    issued_at     BIGINT NOT NULL,
    next_update   BIGINT NOT NULL,
    imported_at   BIGINT NOT NULL
);
