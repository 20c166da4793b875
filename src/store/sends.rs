//! Files rushes sends to Frame.io itself (`rushes frameio upload`, the watch folder): one row per
//! local file, claimed like a download so that each file is sent once across restarts and
//! instances, and the parts the storage accepted (not sent again on resume).

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{Timestamp, UploadId};

/// Where a send is.
pub mod state {
    /// Claimed, no Frame.io file yet (or one being made again).
    pub const WAITING: &str = "waiting";
    /// The Frame.io file exists; parts are being sent.
    pub const SENDING: &str = "sending";
    /// Frame.io said the upload is complete.
    pub const COMPLETE: &str = "complete";
    /// Given up (the error says why); sending the same file again starts it anew.
    pub const FAILED: &str = "failed";
}

/// A send; also its JSON shape (without the presigned URLs, which are credentials).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Send {
    pub id: UploadId,
    #[serde(skip)]
    pub source_key: String,
    pub path: String,
    pub name: String,
    pub file_size: i64,
    pub folder_id: String,
    pub asset_key: String,
    pub version: i64,
    pub version_of: Option<String>,
    pub file_id: Option<String>,
    pub view_url: Option<String>,
    pub media_type: Option<String>,
    #[serde(skip)]
    pub upload_urls: Option<String>,
    #[serde(skip)]
    pub urls_expire_at: Option<Timestamp>,
    pub bytes_sent: i64,
    pub state: String,
    pub stack_id: Option<String>,
    pub error: Option<String>,
    pub claimed_by: Option<String>,
    #[serde(skip)]
    pub claim_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// A `local_upload` call was sent at this time and its answer is not recorded: Frame.io may
    /// hold a file of this send that rushes does not know of.
    #[serde(skip)]
    pub create_started_at: Option<Timestamp>,
}

/// A file to send.
#[derive(Debug, Clone)]
pub struct NewSend {
    pub id: UploadId,
    pub source_key: String,
    pub path: String,
    pub name: String,
    pub file_size: i64,
    pub folder_id: String,
    pub asset_key: String,
    pub version: i64,
    pub version_of: Option<String>,
}

/// What claiming a file gave.
#[derive(Debug, Clone, PartialEq)]
pub enum SendClaim {
    /// Ours to send (new, or unfinished and free).
    Claimed(Send),
    /// Already sent: nothing to do.
    Complete(Send),
    /// Another process holds it until its lease runs out.
    Busy(Send),
}

pub(super) const COLUMNS: &str = "id, source_key, path, name, file_size, folder_id, asset_key, version, \
    version_of, file_id, view_url, media_type, upload_urls, urls_expire_at, bytes_sent, state, \
    stack_id, error, claimed_by, claim_until, created_at, updated_at, create_started_at";

impl Store {
    /// Claims `new` for `claimant` (a process: instance name and pid): inserts it when its file
    /// was never seen, else takes the unfinished row over when no live claim holds it. A failed
    /// row is taken again too (sending the same file again retries it).
    pub async fn claim_send(&self, new: &NewSend, claimant: &str) -> Result<SendClaim, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        let until = now.plus(self.lease());
        let inserted: Option<Send> = sqlx::query_as(&format!(
            "INSERT INTO frameio_sends (id, source_key, path, name, file_size, folder_id, asset_key,
                 version, version_of, state, claimed_by, claim_until, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
             ON CONFLICT (source_key) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.source_key)
        .bind(super::storable(&new.path))
        .bind(super::storable(&new.name))
        .bind(new.file_size)
        .bind(&new.folder_id)
        .bind(super::storable(&new.asset_key))
        .bind(new.version)
        .bind(&new.version_of)
        .bind(state::WAITING)
        .bind(claimant)
        .bind(until)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if let Some(send) = inserted {
            return Ok(SendClaim::Claimed(send));
        }
        let taken: Option<Send> = sqlx::query_as(&format!(
            "UPDATE frameio_sends SET claimed_by = $1, claim_until = $2, updated_at = $3,
                 state = CASE WHEN state = $6 THEN $7 ELSE state END, error = NULL,
                 version_of = COALESCE(version_of, $8)
             WHERE source_key = $4 AND state <> $5
               AND (claimed_by IS NULL OR claim_until IS NULL OR claim_until <= $3 OR claimed_by = $1)
             RETURNING {COLUMNS}"
        ))
        .bind(claimant)
        .bind(until)
        .bind(now)
        .bind(&new.source_key)
        .bind(state::COMPLETE)
        .bind(state::FAILED)
        .bind(state::WAITING)
        .bind(&new.version_of)
        .fetch_optional(self.pool())
        .await?;
        if let Some(send) = taken {
            return Ok(SendClaim::Claimed(send));
        }
        let existing = self
            .send_by_key(&new.source_key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("send {:?} vanished", new.source_key)))?;
        Ok(if existing.state == state::COMPLETE {
            SendClaim::Complete(existing)
        } else {
            SendClaim::Busy(existing)
        })
    }

    pub async fn send_by_key(&self, source_key: &str) -> Result<Option<Send>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM frameio_sends WHERE source_key = $1"
        ))
        .bind(source_key)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn send(&self, id: &UploadId) -> Result<Option<Send>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM frameio_sends WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The send of a Frame.io file, if rushes sent it.
    pub async fn send_by_file(&self, file_id: &str) -> Result<Option<Send>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM frameio_sends WHERE file_id = $1"
        ))
        .bind(file_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every send, newest first (at most `limit`).
    pub async fn sends(&self, limit: i64) -> Result<Vec<Send>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM frameio_sends ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the Frame.io file made for a send and its presigned URLs; forgets the parts of
    /// an earlier file (a file made again starts from its first byte).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_send_file(
        &self,
        id: &UploadId,
        file_id: &str,
        view_url: Option<&str>,
        media_type: Option<&str>,
        upload_urls: &str,
        urls_expire_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM frameio_send_parts WHERE send_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE frameio_sends SET file_id = $1, view_url = $2, media_type = $3, upload_urls = $4,
                 urls_expire_at = $5, bytes_sent = 0, state = $6, updated_at = $7,
                 create_started_at = NULL
             WHERE id = $8",
        )
        .bind(file_id)
        .bind(view_url)
        .bind(media_type)
        .bind(upload_urls)
        .bind(urls_expire_at)
        .bind(state::SENDING)
        .bind(Timestamp::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records, before the call, that a `local_upload` for this send is on its way (now); returns
    /// the time recorded.
    pub async fn begin_create(&self, id: &UploadId) -> Result<Timestamp, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        sqlx::query(
            "UPDATE frameio_sends SET create_started_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(now)
    }

    /// No create of this send is in flight any more (it was refused, or the files an unknown
    /// outcome may have left were looked for and deleted).
    pub async fn end_create(&self, id: &UploadId) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE frameio_sends SET create_started_at = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(Timestamp::now())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets the Frame.io file of a send (deleted because its URLs expired).
    pub async fn clear_send_file(&self, id: &UploadId) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM frameio_send_parts WHERE send_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE frameio_sends SET file_id = NULL, view_url = NULL, upload_urls = NULL,
                 urls_expire_at = NULL, bytes_sent = 0, state = $1, updated_at = $2
             WHERE id = $3",
        )
        .bind(state::WAITING)
        .bind(Timestamp::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The parts of a send the storage accepted.
    pub async fn send_parts_done(&self, id: &UploadId) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT idx FROM frameio_send_parts WHERE send_id = $1 ORDER BY idx",
            )
            .bind(id)
            .fetch_all(self.pool())
            .await?,
        )
    }

    /// Records an accepted part (durably, before the next one counts on it).
    pub async fn mark_send_part(&self, id: &UploadId, idx: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO frameio_send_parts (send_id, idx) VALUES ($1, $2)
             ON CONFLICT (send_id, idx) DO NOTHING",
        )
        .bind(id)
        .bind(idx)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Bytes sent so far, and the claim renewed. `false` when `claimant` lost the claim.
    pub async fn send_progress(
        &self,
        id: &UploadId,
        claimant: &str,
        bytes_sent: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        let held: Option<String> = sqlx::query_scalar(
            "UPDATE frameio_sends SET bytes_sent = $1, claim_until = $2, updated_at = $3
             WHERE id = $4 AND claimed_by = $5
             RETURNING id",
        )
        .bind(bytes_sent)
        .bind(now.plus(self.lease()))
        .bind(now)
        .bind(id)
        .bind(claimant)
        .fetch_optional(self.pool())
        .await?;
        Ok(held.is_some())
    }

    /// The end of a send: `complete` or `failed` with its error; the claim is released.
    pub async fn finish_send(
        &self,
        id: &UploadId,
        final_state: &str,
        bytes_sent: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE frameio_sends SET state = $1, bytes_sent = $2, error = $3, claimed_by = NULL,
                 claim_until = NULL, upload_urls = CASE WHEN $1 = $4 THEN NULL ELSE upload_urls END,
                 updated_at = $5
             WHERE id = $6",
        )
        .bind(final_state)
        .bind(bytes_sent)
        .bind(error.map(super::storable))
        .bind(state::COMPLETE)
        .bind(Timestamp::now())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Lets go of an unfinished send (Ctrl-C, shutdown): the next run may take it at once.
    pub async fn release_send(&self, id: &UploadId, claimant: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE frameio_sends SET claimed_by = NULL, claim_until = NULL, updated_at = $1
             WHERE id = $2 AND claimed_by = $3",
        )
        .bind(Timestamp::now())
        .bind(id)
        .bind(claimant)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records that the sends of `file_ids` are in `stack_id`.
    pub async fn set_send_stack(
        &self,
        file_ids: &[&str],
        stack_id: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        for file_id in file_ids {
            sqlx::query(
                "UPDATE frameio_sends SET stack_id = $1, updated_at = $2 WHERE file_id = $3",
            )
            .bind(stack_id)
            .bind(Timestamp::now())
            .bind(*file_id)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Points a tracked upload at the Frame.io file made again for it (the first one, whose
    /// URLs expired, was deleted). `false` when no such upload is tracked.
    pub async fn repoint_upload(
        &self,
        upload_id: &UploadId,
        file_id: &str,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let moved: Option<String> = sqlx::query_scalar(
            "UPDATE frameio_uploads SET file_id = $1, updated_at = $2 WHERE id = $3 RETURNING id",
        )
        .bind(file_id)
        .bind(Timestamp::now())
        .bind(upload_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(moved.is_some())
    }
}
