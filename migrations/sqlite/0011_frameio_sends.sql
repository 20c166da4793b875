-- Files rushes sends to Frame.io itself (issue 25): `rushes frameio upload` and the watch folder.
-- One row per local file, from the creation of the Frame.io file (local_upload) to the end of the
-- transfer. `source_key` (the file's path, size and modification time) makes each file be sent
-- once, across restarts and instances: the row is claimed like a download (claimed_by,
-- claim_until) and another instance takes over an unfinished one only after its lease ran out.
CREATE TABLE frameio_sends (
    id              TEXT PRIMARY KEY,
    source_key      TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL,
    name            TEXT NOT NULL,
    file_size       INTEGER NOT NULL,
    folder_id       TEXT NOT NULL,
    asset_key       TEXT NOT NULL,             -- the name without its version mark, lowercased
    version         INTEGER NOT NULL,          -- the version mark's number (1 without a mark)
    version_of      TEXT,                      -- Frame.io file id of the version before, if any
    file_id         TEXT,                      -- once local_upload answered
    view_url        TEXT,
    media_type      TEXT,
    upload_urls     TEXT,                      -- JSON list of presigned URLs: never shown, never logged
    urls_expire_at  TEXT,
    bytes_sent      INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,             -- waiting | sending | complete | failed
    stack_id        TEXT,                      -- the version stack the file went into
    error           TEXT,
    claimed_by      TEXT,
    claim_until     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX frameio_sends_file ON frameio_sends (file_id);
CREATE INDEX frameio_sends_asset ON frameio_sends (folder_id, asset_key, version);

-- The parts of a send that the storage accepted (2xx to their PUT): not sent again on resume.
CREATE TABLE frameio_send_parts (
    send_id  TEXT NOT NULL REFERENCES frameio_sends (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    PRIMARY KEY (send_id, idx)
);
