-- Digital seals (电子印章): an image and a certificate + key per seal.
CREATE TABLE seals (
    id          TEXT PRIMARY KEY,         -- 'seal-' + 16 hex
    owner       TEXT NOT NULL,            -- unified social credit code of the owning organisation
    kind        TEXT NOT NULL,            -- official | contract | license | finance
    name        TEXT NOT NULL,
    cert_serial TEXT NOT NULL REFERENCES certificates (serial),
    image       BLOB NOT NULL,            -- PNG with transparency
    status      TEXT NOT NULL,            -- active | suspended | revoked
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX seals_owner ON seals (owner, kind);
