-- Case-handling systems (办件系统) that call the verification API over mutual TLS.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,         -- short identifier, also the certificate's CN
    name        TEXT NOT NULL,
    department  TEXT NOT NULL,
    types       TEXT NOT NULL,            -- JSON array of license type codes it may verify
    fields      TEXT NOT NULL,            -- JSON array of face fields it may see ("*" = all)
    statutory   INTEGER NOT NULL,         -- 1: may see fields without a holder grant (labelled in audit)
    cert_serial TEXT NOT NULL REFERENCES certificates (serial),
    created_at  INTEGER NOT NULL
);
CREATE INDEX clients_cert ON clients (cert_serial);
