-- Deliveries taken in from the feed: one row per distinct (normalised) source link.
-- Timestamps are RFC 3339 text in UTC so the SQL stays portable to PostgreSQL.
CREATE TABLE deliveries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key        TEXT NOT NULL UNIQUE,
    source_url        TEXT NOT NULL,
    raw_source_url    TEXT NOT NULL,
    r2_url            TEXT,
    provider          TEXT NOT NULL,
    kind              TEXT NOT NULL,
    mode              TEXT NOT NULL,
    record_format     TEXT NOT NULL,
    original_filename TEXT,
    file_name         TEXT,
    created_at        TEXT NOT NULL,
    first_seen_at     TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    state             TEXT NOT NULL,
    state_changed_at  TEXT NOT NULL,
    error             TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    bytes_done        INTEGER NOT NULL DEFAULT 0,
    bytes_total       INTEGER,
    served_by         TEXT,
    served_url        TEXT,
    sha256            TEXT,
    final_path        TEXT,
    started_at        TEXT,
    finished_at       TEXT,
    duration_ms       INTEGER,
    mean_speed_bps    INTEGER,
    hook_exit_code    INTEGER,
    hook_output       TEXT
);
CREATE INDEX deliveries_state ON deliveries (state);
CREATE INDEX deliveries_created ON deliveries (created_at, id);

-- Every fetch attempt series of the feed (one row per poll, after retries).
CREATE TABLE feed_fetches (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    outcome         TEXT NOT NULL,      -- ok | not_modified | error
    attempts        INTEGER NOT NULL,
    records_valid   INTEGER NOT NULL DEFAULT 0,
    records_invalid INTEGER NOT NULL DEFAULT 0,
    records_new     INTEGER NOT NULL DEFAULT 0,
    error           TEXT
);

-- The feed's current state: one row. HTTP validators and the TTL clock survive restarts.
CREATE TABLE feed_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    etag              TEXT,
    last_modified     TEXT,
    last_success_at   TEXT,
    last_attempt_at   TEXT,
    last_error        TEXT,
    records_processed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO feed_state (id) VALUES (1);
