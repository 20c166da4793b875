-- The feed's invalid items (issue 26): how many the last body taken in had, and the first of
-- them with their reasons (JSON [{"index", "reason"}]), so the dashboard can show them.
ALTER TABLE feed_state ADD COLUMN records_invalid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feed_state ADD COLUMN invalid_items TEXT;
