-- Issue 28: an index for every dashboard and /metrics query that read a whole table, and for
-- the retention of processed Frame.io events.

-- Last webhook received (MAX), the merged list of received calls (ORDER BY received_at DESC),
-- the oldest pending event (lag).
CREATE INDEX frameio_events_received ON frameio_events (received_at);
CREATE INDEX frameio_rejected_received ON frameio_rejected (received_at);
-- Last poll (MAX(last_polled_at)) and the uploads list (ORDER BY updated_at DESC, id).
CREATE INDEX frameio_uploads_polled ON frameio_uploads (last_polled_at);
CREATE INDEX frameio_uploads_updated ON frameio_uploads (updated_at DESC, id);
-- The activity list of one mode (WHERE mode = $1 ORDER BY state_changed_at DESC, id DESC).
CREATE INDEX deliveries_mode_activity ON deliveries (mode, state_changed_at, id);
