-- The producer's word (issue 25): comment verdicts a person corrected (kept with the comment's
-- text, since the stored comments are replaced on each fetch), for `rushes frameio corrections`.
CREATE TABLE frameio_comment_labels (
    upload_id    TEXT NOT NULL,
    comment_id   TEXT NOT NULL,
    text         TEXT NOT NULL,
    analysed     TEXT,                         -- what the analysis said (approved | changes_requested | rejected | NULL)
    expected     TEXT NOT NULL,                -- what the person says: approved | changes_requested | rejected | none
    labelled_by  TEXT NOT NULL,
    labelled_at  TEXT NOT NULL,
    PRIMARY KEY (upload_id, comment_id)
);
CREATE INDEX frameio_comment_labels_at ON frameio_comment_labels (labelled_at);
