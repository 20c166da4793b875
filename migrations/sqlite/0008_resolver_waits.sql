-- A delivery whose link resolver has to wait (issue 15): why (virus_check: the host is still
-- scanning the transfer, retried by itself at retry_at; password_needed / password_wrong: a
-- person gives the password from the page, the API or `rushes password`), when to try again,
-- and how many waits so far (the backoff).
ALTER TABLE deliveries ADD COLUMN wait_reason TEXT;
ALTER TABLE deliveries ADD COLUMN retry_at TEXT;
ALTER TABLE deliveries ADD COLUMN wait_count INTEGER NOT NULL DEFAULT 0;
