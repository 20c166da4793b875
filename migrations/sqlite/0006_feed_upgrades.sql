-- Feed upgrades (issue 11): a delivery is also found by its R2 copy, and a name the feed gives
-- after the download started is recorded beside the file's own name.

-- Normalised R2 link: two records with the same R2 copy are one delivery. Rows written before
-- this migration keep their R2 link as it was (it was not normalised then).
ALTER TABLE deliveries ADD COLUMN r2_key TEXT;
UPDATE deliveries SET r2_key = r2_url WHERE r2_url IS NOT NULL;
CREATE INDEX deliveries_r2_key ON deliveries (r2_key);

-- The file name a later (new-format) record gave once the download had started: the file keeps
-- its name, this one is shown beside it.
ALTER TABLE deliveries ADD COLUMN renamed_in_feed TEXT;

-- The compatibility route lists the latest activity first.
CREATE INDEX deliveries_activity ON deliveries (state_changed_at, id);
