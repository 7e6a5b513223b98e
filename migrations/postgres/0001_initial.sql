-- elicense schema, PostgreSQL flavour. Times are Unix seconds (UTC); dates are ISO 8601 text.
-- Released migrations are never edited: add a new file instead (sqlx checksums them).

-- The region this deployment serves; exactly one row once `elicense init` has run.
CREATE TABLE region (
    singleton   BIGINT PRIMARY KEY CHECK (singleton = 1),
    code        TEXT NOT NULL,            -- administrative division code, e.g. 340600
    name        TEXT NOT NULL,
    root_serial TEXT NOT NULL,            -- serial (hex) of the root CA certificate
    created_at  BIGINT NOT NULL
);

-- Private keys, sealed with AES-256-GCM under the master key. Never leave the key store.
CREATE TABLE keys (
    id          TEXT PRIMARY KEY,         -- random identifier, also the AEAD associated data
    algorithm   TEXT NOT NULL,            -- 'ES256'
    public_key  BYTEA NOT NULL,            -- uncompressed SEC1 point
    sealed      BYTEA NOT NULL,            -- nonce (12) || ciphertext+tag of the PKCS#8 document
    created_at  BIGINT NOT NULL
);

-- Every certificate the region CA issued (and the root itself).
CREATE TABLE certificates (
    serial      TEXT PRIMARY KEY,         -- lower-case hex
    kind        TEXT NOT NULL,            -- root | authority | server | client
    subject     TEXT NOT NULL,
    owner       TEXT,                     -- credit code of the owning organisation
    key_id      TEXT REFERENCES keys (id), -- NULL when the key is not ours (client certificates)
    der         BYTEA NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    revoked_at  BIGINT,
    revocation_reason TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX certificates_owner ON certificates (owner);

-- Issued CRLs; the newest is served.
CREATE TABLE crls (
    number      BIGINT PRIMARY KEY,
    der         BYTEA NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL
);

-- Issuing authorities (颁发机构).
CREATE TABLE authorities (
    credit_code TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    level       TEXT NOT NULL,            -- national | provincial | municipal | district
    cert_serial TEXT NOT NULL REFERENCES certificates (serial),
    created_at  BIGINT NOT NULL
);

-- License types (证照类型): face fields as JSON Schema.
CREATE TABLE license_types (
    code        TEXT PRIMARY KEY,         -- 21 chars: definer's credit code + 3 digits
    name        TEXT NOT NULL,
    holder_kind TEXT NOT NULL,            -- person | organisation
    schema      TEXT NOT NULL,            -- JSON Schema of the face fields
    validity_years BIGINT,               -- default validity; NULL = long-term
    disclosable TEXT NOT NULL,            -- JSON array of fields shown by default in a show code
    builtin     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Which types an authority may issue.
CREATE TABLE authority_types (
    authority   TEXT NOT NULL REFERENCES authorities (credit_code),
    type_code   TEXT NOT NULL REFERENCES license_types (code),
    PRIMARY KEY (authority, type_code)
);

-- Serial counters per type, issuer and year.
CREATE TABLE serial_counters (
    type_code   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    year        BIGINT NOT NULL,
    next        BIGINT NOT NULL,
    PRIMARY KEY (type_code, issuer, year)
);

-- The current state of each license (one row per lineage type.issuer.serial).
CREATE TABLE licenses (
    lineage     TEXT PRIMARY KEY,
    id          TEXT NOT NULL,            -- full identifier of the current version (found by lineage)
    version     BIGINT NOT NULL,
    type_code   TEXT NOT NULL REFERENCES license_types (code),
    number      TEXT NOT NULL,            -- printed license number (证照编号)
    issuer      TEXT NOT NULL REFERENCES authorities (credit_code),
    holder_name TEXT NOT NULL,
    holder_code TEXT NOT NULL,
    holder_code_type TEXT NOT NULL,
    issue_date  TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    valid_to    TEXT,                     -- NULL = long-term (长期)
    status      TEXT NOT NULL,            -- 01 02 03 04 07 (05 is derived from valid_to)
    record      TEXT NOT NULL,            -- canonical JSON that was signed
    signature   BYTEA NOT NULL,            -- COSE_Sign1 (ES256) over record, payload detached
    source_hash BYTEA,                     -- SHA-256 of the issuing request (idempotent import)
    issued_by   TEXT NOT NULL,            -- actor that issued it (the history's first entry)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (type_code, number)
);
CREATE INDEX licenses_holder ON licenses (holder_code);
-- Type filters use the lineage prefix (type.issuer.serial); status filters this index.
CREATE INDEX licenses_status ON licenses (status, lineage);

-- Superseded versions (the current one lives in licenses), moved here by each amendment.
CREATE TABLE license_versions (
    id          TEXT PRIMARY KEY,
    lineage     TEXT NOT NULL REFERENCES licenses (lineage),
    version     BIGINT NOT NULL,
    record      TEXT NOT NULL,
    signature   BYTEA NOT NULL,            -- detached COSE_Sign1 over record
    reason      TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (lineage, version)
);

-- Every change after issuance (status changes, amendments) in order; issuance itself is
-- recorded in licenses (created_at, issued_by).
CREATE TABLE license_events (
    lineage     TEXT NOT NULL REFERENCES licenses (lineage),
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,            -- status | amended
    from_status TEXT,
    to_status   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    reason      TEXT,
    actor       TEXT NOT NULL,
    PRIMARY KEY (lineage, seq)
);

-- Bulk import progress: committed in the same transaction as the licenses it covers.
CREATE TABLE import_runs (
    file_hash   TEXT PRIMARY KEY,         -- SHA-256 of the file (hex)
    file_name   TEXT NOT NULL,
    lines_done  BIGINT NOT NULL,         -- lines 1..=lines_done are settled
    issued      BIGINT NOT NULL,
    skipped     BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    finished    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- API bearer tokens for operators; only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    token_hash  BYTEA PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
