-- Show codes seen by the online check: a second sighting of the same cti is a replay.
CREATE TABLE show_code_sightings (
    cti           TEXT PRIMARY KEY,       -- hex of the code's unique id
    license_id    TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    first_seen_at_place TEXT NOT NULL     -- what the checker said where it was (officer, post, ...)
);
