-- Never two copies on Frame.io when `local_upload` fails ambiguously (issue 25): the time a
-- create call was sent whose answer is not recorded yet. While it is set, Frame.io may hold a
-- file of this send that rushes does not know; before creating again, rushes lists the folder
-- and deletes the files of the same name and size made since then that no send owns.
ALTER TABLE frameio_sends ADD COLUMN create_started_at TEXT;

-- Whose turn it is to arrange an asset's version stack (one process at a time, also across
-- instances on PostgreSQL): versions finishing at the same moment never make two stacks.
CREATE TABLE frameio_stack_turns (
    folder_id  TEXT NOT NULL,
    asset_key  TEXT NOT NULL,
    holder     TEXT NOT NULL,
    turn_until TEXT NOT NULL,
    PRIMARY KEY (folder_id, asset_key)
);
