-- Frame.io review tracking. Timestamps are RFC 3339 text in UTC (portable to PostgreSQL).

-- Every signed webhook delivery, written before it is acknowledged; processed afterwards.
-- Frame.io deliveries carry no id: the same (timestamp, body) twice is one delivery.
CREATE TABLE frameio_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_hash     TEXT NOT NULL UNIQUE,   -- hex SHA-256 of "{timestamp}:{body}"
    received_at       TEXT NOT NULL,
    request_timestamp INTEGER NOT NULL,
    event_type        TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    account_id        TEXT,
    workspace_id      TEXT,
    body              TEXT NOT NULL,
    processed_at      TEXT,
    outcome           TEXT,                   -- applied | unchanged | untracked | ignored | failed
    upload_id         TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT,
    error             TEXT
);
CREATE INDEX frameio_events_pending ON frameio_events (processed_at, id);

-- Uploads being followed through review, one per Frame.io file.
CREATE TABLE frameio_uploads (
    id                 TEXT PRIMARY KEY,
    file_id            TEXT NOT NULL UNIQUE,
    name               TEXT,
    account_id         TEXT,
    state              TEXT NOT NULL,
    state_reason       TEXT NOT NULL,
    state_changed_at   TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    metadata_status    TEXT,                  -- last "Status" option seen
    decided_comment    TEXT,                  -- "{comment id}@{updated_at}" of the last applied comment decision
    last_polled_at     TEXT,
    next_poll_at       TEXT,                  -- NULL once the state is final
    last_error         TEXT
);
CREATE INDEX frameio_uploads_next_poll ON frameio_uploads (next_poll_at);

-- Every state change of an upload with its cause.
CREATE TABLE frameio_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upload_id   TEXT NOT NULL REFERENCES frameio_uploads (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    cause       TEXT NOT NULL,                -- registered | event | comment | metadata | poll
    reason      TEXT NOT NULL,
    event_id    INTEGER
);
CREATE INDEX frameio_transitions_upload ON frameio_transitions (upload_id, id);

-- The comments last fetched for a tracked file (replaced on each fetch).
CREATE TABLE frameio_comments (
    upload_id     TEXT NOT NULL REFERENCES frameio_uploads (id) ON DELETE CASCADE,
    comment_id    TEXT NOT NULL,
    text          TEXT NOT NULL,
    author        TEXT,
    created_at    TEXT,
    updated_at    TEXT,
    completed_at  TEXT,
    verdict       TEXT,                       -- approved | changes_requested | rejected | NULL
    PRIMARY KEY (upload_id, comment_id)
);

-- Credentials rushes obtained itself: the webhook signing secret, the rotated IMS refresh token.
CREATE TABLE frameio_credentials (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    origin      TEXT,                         -- for the refresh token: hash of the configured one it descends from
    updated_at  TEXT NOT NULL
);
