-- Several instances on one database (issue 16). On SQLite there is only ever one instance (the
-- data-folder lock), but the columns exist on both backends so that every query is the same.

-- Who runs a download and until when its claim holds (renewed while it runs); an expired claim
-- is taken over by another instance, which resumes from the shared .part.
ALTER TABLE deliveries ADD COLUMN owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_until TEXT;

-- Stored Frame.io events are claimed by the instance that processes them.
ALTER TABLE frameio_events ADD COLUMN claimed_by TEXT;
ALTER TABLE frameio_events ADD COLUMN claim_until TEXT;

-- Named leases (the feed poll): one holder at a time, until `expires_at` unless renewed.
CREATE TABLE leases (
    name                 TEXT PRIMARY KEY,
    holder               TEXT NOT NULL,
    expires_at           TEXT NOT NULL,
    acquired_at          TEXT NOT NULL,
    refresh_requested_at TEXT
);

-- Instances seen on this database (for `rushes status` and the page).
CREATE TABLE instances (
    name        TEXT PRIMARY KEY,
    address     TEXT,
    started_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    version     TEXT NOT NULL
);
