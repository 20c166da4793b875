-- The two partial indexes PostgreSQL has had since 0007 (a delivery's owner; the events not yet
-- processed), so both backends keep one schema (tests/it/schema.rs compares them).
CREATE INDEX IF NOT EXISTS deliveries_owner ON deliveries (owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS frameio_events_unprocessed ON frameio_events (id) WHERE processed_at IS NULL;
