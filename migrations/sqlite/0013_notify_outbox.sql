-- Notifications (issue 25): a durable outbox. Rows are made from what the store already holds
-- (review transitions, deliveries that failed or were downloaded), each once by its key, so a
-- crash between a change and its message still sends the message, once. A row is done when its
-- message was posted to NOTIFY_URL (sent_at) and its ON_REVIEW_CHANGE command ran (hook_done_at);
-- either is set at creation when there is nothing to do.
CREATE TABLE notify_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    key              TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,             -- verdict | failed | downloaded
    text             TEXT NOT NULL,
    hook_env         TEXT,                      -- JSON object of RUSHES_UPLOAD_* variables (verdict rows)
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    sent_at          TEXT,
    hook_done_at     TEXT,
    hook_exit_code   INTEGER,
    last_error       TEXT,
    claimed_by       TEXT,
    claim_until      TEXT
);
CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_at);

-- Where the outbox's filling has looked up to (RFC 3339 text), kept across restarts.
CREATE TABLE notify_cursor (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
