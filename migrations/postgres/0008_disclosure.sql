-- Each type names the fields every show code must disclose (the rest of its disclosable fields
-- are the holder's choice).
ALTER TABLE license_types ADD COLUMN disclose_minimum TEXT NOT NULL DEFAULT '[]';
