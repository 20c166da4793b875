-- Segmented downloads (issue 15): the ranges of a delivery's .part and how much of each is on
-- disk (synced before it is written here), so that after a crash every segment resumes where it
-- was. Rows exist only while a segmented download is in progress.
CREATE TABLE download_segments (
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    start_byte   INTEGER NOT NULL,
    end_byte     INTEGER NOT NULL,   -- exclusive
    done_bytes   INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, seq)
);
