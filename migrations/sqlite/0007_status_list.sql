-- Each license has a place in the region's status list (IETF Token Status List, 2 bits each),
-- assigned at issuance from the status-list counter (a row of serial_counters).
ALTER TABLE licenses ADD COLUMN status_index INTEGER NOT NULL DEFAULT -1;
