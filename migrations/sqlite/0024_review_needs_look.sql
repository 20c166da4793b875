-- A comment the review reader is not sure about (issue 24): the upload needs a person to look.
-- JSON {"guess", "reason", "comment_id"}; NULL when nothing needs a look.
ALTER TABLE frameio_uploads ADD COLUMN needs_look TEXT;
