-- The webhook inspector: refused deliveries (the last 100 kept) and running counts.

CREATE TABLE frameio_rejected (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    status       INTEGER NOT NULL,            -- HTTP status answered (401, 400, 503)
    verdict      TEXT NOT NULL,               -- missing_signature | bad_signature | stale | bad_body | no_secret | store_error
    reason       TEXT NOT NULL,
    event_type   TEXT,                        -- when the body could be read
    resource_id  TEXT,
    body         TEXT NOT NULL                -- cut to a few KiB
);

CREATE TABLE frameio_counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
