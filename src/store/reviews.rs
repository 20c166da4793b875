//! The producer's word: a review state set by a person (always recorded as a transition with
//! cause `person`, even when the state does not change: it is a decision), and comment verdicts
//! a person corrected.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{ReviewState, Timestamp, TransitionCause, UploadId, Verdict};

/// A corrected comment verdict.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CommentLabel {
    pub upload_id: String,
    pub comment_id: String,
    pub text: String,
    pub analysed: Option<Verdict>,
    pub expected: String,
    pub labelled_by: String,
    pub labelled_at: Timestamp,
}

impl Store {
    /// Sets an upload's state by a person's decision; `false` when there is no such upload.
    pub async fn person_review(
        &self,
        id: &UploadId,
        to: ReviewState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        // A write first: the transaction holds the write lock before it reads (no failed
        // upgrade from a read snapshot when another writer committed in between).
        sqlx::query("UPDATE frameio_uploads SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let current: Option<ReviewState> =
            sqlx::query_scalar("SELECT state FROM frameio_uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE frameio_uploads SET state = $1, state_reason = $2, state_changed_at = $3,
                 updated_at = $3
             WHERE id = $4",
        )
        .bind(to)
        .bind(super::storable(reason))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO frameio_transitions (upload_id, at, from_state, to_state, cause, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(now)
        .bind(current)
        .bind(to)
        .bind(TransitionCause::Person)
        .bind(super::storable(reason))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When a person last decided an upload's state, if ever.
    pub async fn person_decided_at(&self, id: &UploadId) -> Result<Option<Timestamp>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(at) FROM frameio_transitions WHERE upload_id = $1 AND cause = $2",
        )
        .bind(id)
        .bind(TransitionCause::Person)
        .fetch_one(self.pool())
        .await?)
    }

    /// Records (or replaces) a person's verdict on a stored comment; `None` when the upload has
    /// no such comment.
    pub async fn label_comment(
        &self,
        upload_id: &UploadId,
        comment_id: &str,
        expected: &str,
        by: &str,
    ) -> Result<Option<CommentLabel>, StoreError> {
        let found: Option<(String, Option<Verdict>)> = sqlx::query_as(
            "SELECT text, verdict FROM frameio_comments WHERE upload_id = $1 AND comment_id = $2",
        )
        .bind(upload_id)
        .bind(comment_id)
        .fetch_optional(self.pool())
        .await?;
        let Some((text, analysed)) = found else {
            return Ok(None);
        };
        let _turn = self.write_turn().await;
        Ok(Some(
            sqlx::query_as(
                "INSERT INTO frameio_comment_labels (upload_id, comment_id, text, analysed, expected,
                     labelled_by, labelled_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (upload_id, comment_id) DO UPDATE SET text = excluded.text,
                     analysed = excluded.analysed, expected = excluded.expected,
                     labelled_by = excluded.labelled_by, labelled_at = excluded.labelled_at
                 RETURNING upload_id, comment_id, text, analysed, expected, labelled_by, labelled_at",
            )
            .bind(upload_id)
            .bind(comment_id)
            .bind(text)
            .bind(analysed)
            .bind(expected)
            .bind(super::storable(by))
            .bind(Timestamp::now())
            .fetch_one(self.pool())
            .await?,
        ))
    }

    /// Every corrected comment, oldest correction first.
    pub async fn comment_labels(&self) -> Result<Vec<CommentLabel>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT upload_id, comment_id, text, analysed, expected, labelled_by, labelled_at
             FROM frameio_comment_labels ORDER BY labelled_at, upload_id, comment_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The corrections of one upload's comments, by comment id.
    pub async fn upload_labels(
        &self,
        upload_id: &UploadId,
    ) -> Result<Vec<CommentLabel>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT upload_id, comment_id, text, analysed, expected, labelled_by, labelled_at
             FROM frameio_comment_labels WHERE upload_id = $1",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await?)
    }
}
