-- Read markers: how far each user has read each private conversation and group (as SQLite's
-- migrations/m0006_read_markers.py). event_id is an id of the message sequence, allocated
-- when the marker last moved, so a resume finds the markers that moved after its cursor.
CREATE TABLE read_markers (
    user_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('private', 'group')),
    target_id BIGINT NOT NULL,
    last_read_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, target_id)
);
CREATE INDEX read_markers_by_event ON read_markers (user_id, event_id);
CREATE INDEX read_markers_by_peer ON read_markers (target_id, event_id) WHERE kind = 'private';
