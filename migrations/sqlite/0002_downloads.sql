-- Download engine: where a delivery's partial file lives and how to resume it, and every attempt.
ALTER TABLE deliveries ADD COLUMN part_path TEXT;
-- ETag or Last-Modified of the response the .part came from (sent back as If-Range).
ALTER TABLE deliveries ADD COLUMN validator TEXT;

-- One row per HTTP try of a delivery: which URL, what happened. The URL is stored without its
-- query string (signed links).
CREATE TABLE download_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    url_role     TEXT NOT NULL,      -- r2 | source
    url          TEXT NOT NULL,
    try_number   INTEGER NOT NULL,
    at           TEXT NOT NULL,
    outcome      TEXT NOT NULL,      -- ok | error
    error        TEXT
);
CREATE INDEX download_attempts_delivery ON download_attempts (delivery_id, id);
