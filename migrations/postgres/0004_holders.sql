-- Holder sign-in sessions (from the development provider or, later, an OpenID Connect
-- provider); only the SHA-256 of a session token is stored.
CREATE TABLE holder_sessions (
    token_hash  BYTEA PRIMARY KEY,
    holder_code TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Holder grants (用证授权): a holder lets a client (or any client working on a matter) see
-- some fields of one license until a time, optionally once.
CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    holder_code  TEXT NOT NULL,
    lineage      TEXT NOT NULL REFERENCES licenses (lineage),
    client_id    TEXT,                    -- exactly one of client_id and matter_code is set
    matter_code  TEXT,
    fields       TEXT NOT NULL,           -- JSON array
    valid_until  BIGINT NOT NULL,
    single_use   BIGINT NOT NULL,
    used_at      BIGINT,
    withdrawn_at BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX grants_lineage ON grants (lineage);
CREATE INDEX grants_holder ON grants (holder_code);
