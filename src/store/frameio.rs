//! Frame.io tables: received webhook events, tracked uploads, their transitions and comments,
//! and credentials rushes obtained itself.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{
    EventId, EventOutcome, ReviewState, Timestamp, TransitionCause, UploadId, Verdict,
};

/// The outcome of one processed event, for [`Store::finish_frameio_events`].
#[derive(Debug, Clone)]
pub struct FinishedEvent {
    pub id: EventId,
    pub outcome: EventOutcome,
    pub upload_id: Option<UploadId>,
    pub error: Option<String>,
}

/// A verified delivery, ready to be written.
#[derive(Debug, Clone)]
pub struct NewFrameioEvent {
    pub delivery_hash: String,
    /// When rushes verified it (kept through the webhook inbox, see `frameio/inbox.rs`).
    pub received_at: Timestamp,
    pub request_timestamp: i64,
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub account_id: Option<String>,
    pub workspace_id: Option<String>,
    pub body: String,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FrameioEvent {
    pub id: EventId,
    pub received_at: Timestamp,
    pub request_timestamp: i64,
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub account_id: Option<String>,
    pub workspace_id: Option<String>,
    pub body: String,
    pub processed_at: Option<Timestamp>,
    pub outcome: Option<EventOutcome>,
    pub upload_id: Option<UploadId>,
    pub attempts: i64,
    pub error: Option<String>,
}

/// A tracked upload; also the JSON shape of the API.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Upload {
    pub id: UploadId,
    pub file_id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub state: ReviewState,
    pub state_reason: String,
    pub state_changed_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub metadata_status: Option<String>,
    #[serde(skip)]
    pub decided_comment: Option<String>,
    pub last_polled_at: Option<Timestamp>,
    pub next_poll_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The reader was not sure of the deciding comment: a person should look.
    pub needs_look: Option<NeedsLook>,
}

/// Why an upload needs a person to look: the reader's guess for a comment and its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NeedsLook {
    /// The verdict the reader would give (null: no decision).
    pub guess: Option<Verdict>,
    pub reason: String,
    pub comment_id: String,
}

impl<DB: sqlx::Database> sqlx::Type<DB> for NeedsLook
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for NeedsLook
where
    String: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, DB>>::encode(serde_json::to_string(self)?, buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for NeedsLook
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        let raw = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
        Ok(serde_json::from_str(raw)?)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Transition {
    pub at: Timestamp,
    pub from_state: Option<ReviewState>,
    pub to_state: ReviewState,
    pub cause: TransitionCause,
    pub reason: String,
    pub event_id: Option<EventId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredComment {
    pub comment_id: String,
    pub text: String,
    pub author: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub completed_at: Option<String>,
    pub verdict: Option<Verdict>,
}

/// A state change to apply.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub to: ReviewState,
    pub cause: TransitionCause,
    pub reason: String,
    pub event_id: Option<EventId>,
}

/// Everything one processing step may change on an upload, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct UploadUpdate {
    pub state: Option<StateChange>,
    pub account_id: Option<String>,
    pub metadata_status: Option<String>,
    pub decided_comment: Option<String>,
    pub polled_at: Option<Timestamp>,
    /// `Some(None)` stops polling.
    pub next_poll_at: Option<Option<Timestamp>>,
    pub last_error: Option<Option<String>>,
    /// `Some(None)` clears the flag.
    pub needs_look: Option<Option<NeedsLook>>,
    /// Replaces the stored comments.
    pub comments: Option<Vec<StoredComment>>,
}

/// Result of registering an upload.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    Created(Upload),
    /// The same file was already tracked under this id.
    Existing(Upload),
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("file {file_id} is already tracked as upload \"{existing}\"")]
    FileTaken { file_id: String, existing: UploadId },
    #[error("upload id \"{0}\" is already used for another file")]
    IdTaken(UploadId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RegisterError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

const UPLOAD_COLUMNS: &str = "id, file_id, name, account_id, state, state_reason, state_changed_at, \
    created_at, updated_at, metadata_status, decided_comment, last_polled_at, next_poll_at, last_error, needs_look";

/// The columns of [`FrameioEvent`].
pub(super) const EVENT_COLUMNS: &str = "id, received_at, request_timestamp, event_type, resource_type, \
    resource_id, account_id, workspace_id, body, processed_at, outcome, upload_id, attempts, error";

impl Store {
    /// Writes verified deliveries in one transaction (group commit). For each, `Some(id)` when new,
    /// `None` when the same delivery was already stored. Durable (WAL) once this returns.
    pub async fn insert_frameio_events(
        &self,
        events: &[&NewFrameioEvent],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(events.len());
        for e in events {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO frameio_events (delivery_hash, received_at, request_timestamp, event_type,
                     resource_type, resource_id, account_id, workspace_id, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (delivery_hash) DO NOTHING
                 RETURNING id",
            )
            .bind(&e.delivery_hash)
            .bind(e.received_at)
            .bind(e.request_timestamp)
            .bind(&e.event_type)
            .bind(&e.resource_type)
            .bind(&e.resource_id)
            .bind(&e.account_id)
            .bind(&e.workspace_id)
            .bind(&e.body)
            .fetch_optional(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Unprocessed events whose retry time has come, oldest first.
    pub async fn pending_frameio_events(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<FrameioEvent>, StoreError> {
        if !self.backend().shared() {
            return Ok(sqlx::query_as::<_, FrameioEvent>(&format!(
                "SELECT {EVENT_COLUMNS} FROM frameio_events
                 WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                 ORDER BY id LIMIT $2"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?);
        }
        // Several instances: claim them, so that each event is processed by one of them; a
        // claim of an instance that died runs out after the lease and another takes the event.
        let mut claimed = sqlx::query_as::<_, FrameioEvent>(&format!(
            "UPDATE frameio_events SET claimed_by = $3, claim_until = $4
             WHERE id IN (
                 SELECT id FROM frameio_events
                 WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                   AND (claim_until IS NULL OR claim_until <= $1 OR claimed_by = $3)
                 ORDER BY id LIMIT $2{}
             )
             RETURNING {EVENT_COLUMNS}",
            self.skip_locked()
        ))
        .bind(now)
        .bind(limit)
        .bind(self.instance())
        .bind(now.plus(self.lease()))
        .fetch_all(self.pool())
        .await?;
        claimed.sort_by_key(|e| e.id);
        Ok(claimed)
    }

    /// When the next deferred event is due, if any.
    pub async fn next_frameio_retry(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM frameio_events
             WHERE processed_at IS NULL AND next_attempt_at IS NOT NULL",
        )
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn finish_frameio_event(
        &self,
        id: EventId,
        outcome: EventOutcome,
        upload_id: Option<&UploadId>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE frameio_events SET processed_at = $1, outcome = $2, upload_id = $3, error = $4,
                 attempts = attempts + 1, next_attempt_at = NULL
             WHERE id = $5",
        )
        .bind(Timestamp::now())
        .bind(outcome)
        .bind(upload_id)
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// [`Store::finish_frameio_event`] for many events in one transaction (one write lock taken
    /// per batch of the processor instead of one per event).
    pub async fn finish_frameio_events(&self, done: &[FinishedEvent]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        for d in done {
            sqlx::query(
                "UPDATE frameio_events SET processed_at = $1, outcome = $2, upload_id = $3, error = $4,
                     attempts = attempts + 1, next_attempt_at = NULL
                 WHERE id = $5",
            )
            .bind(now)
            .bind(d.outcome)
            .bind(&d.upload_id)
            .bind(&d.error)
            .bind(d.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn defer_frameio_event(
        &self,
        id: EventId,
        error: &str,
        next_attempt_at: Timestamp,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE frameio_events SET attempts = attempts + 1, error = $1, next_attempt_at = $2
             WHERE id = $3",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn frameio_events(&self, limit: i64) -> Result<Vec<FrameioEvent>, StoreError> {
        Ok(sqlx::query_as::<_, FrameioEvent>(&format!(
            "SELECT {EVENT_COLUMNS} FROM frameio_events ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn frameio_event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM frameio_events")
            .fetch_one(self.pool())
            .await?)
    }

    /// Tracks `file_id` under `id`. Registering the same pair again is not an error.
    pub async fn register_upload(
        &self,
        id: &UploadId,
        file_id: &str,
        name: Option<&str>,
        next_poll_at: Option<Timestamp>,
    ) -> Result<Registered, RegisterError> {
        let now = Timestamp::now();
        let reason = "registered";
        let mut tx = self.begin_write().await?;
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO frameio_uploads (id, file_id, name, state, state_reason, state_changed_at,
                 created_at, updated_at, next_poll_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(id)
        .bind(file_id)
        .bind(name)
        .bind(ReviewState::Uploading)
        .bind(reason)
        .bind(now)
        .bind(next_poll_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_some() {
            sqlx::query(
                "INSERT INTO frameio_transitions (upload_id, at, from_state, to_state, cause, reason)
                 VALUES ($1, $2, NULL, $3, $4, $5)",
            )
            .bind(id)
            .bind(now)
            .bind(ReviewState::Uploading)
            .bind(TransitionCause::Registered)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let upload = self.upload(id).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("upload {id:?} vanished after insert"))
            })?;
            return Ok(Registered::Created(upload));
        }
        tx.rollback().await?;
        if let Some(existing) = self.upload_by_file(file_id).await? {
            return if existing.id == *id {
                Ok(Registered::Existing(existing))
            } else {
                Err(RegisterError::FileTaken {
                    file_id: file_id.to_string(),
                    existing: existing.id,
                })
            };
        }
        Err(RegisterError::IdTaken(id.clone()))
    }

    pub async fn upload(&self, id: &UploadId) -> Result<Option<Upload>, StoreError> {
        Ok(sqlx::query_as::<_, Upload>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM frameio_uploads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn upload_by_file(&self, file_id: &str) -> Result<Option<Upload>, StoreError> {
        Ok(sqlx::query_as::<_, Upload>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM frameio_uploads WHERE file_id = $1"
        ))
        .bind(file_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Every tracked upload, most recently changed first.
    pub async fn uploads(&self) -> Result<Vec<Upload>, StoreError> {
        Ok(sqlx::query_as::<_, Upload>(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM frameio_uploads ORDER BY updated_at DESC, id"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn upload_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM frameio_uploads")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn upload_transitions(&self, id: &UploadId) -> Result<Vec<Transition>, StoreError> {
        Ok(sqlx::query_as::<_, Transition>(
            "SELECT at, from_state, to_state, cause, reason, event_id FROM frameio_transitions
             WHERE upload_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The stored comments of an upload, newest first.
    pub async fn upload_comments(&self, id: &UploadId) -> Result<Vec<StoredComment>, StoreError> {
        Ok(sqlx::query_as::<_, StoredComment>(
            "SELECT comment_id, text, author, created_at, updated_at, completed_at, verdict
             FROM frameio_comments WHERE upload_id = $1 ORDER BY created_at DESC, comment_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Applies `update` in one transaction. A state change equal to the current state is skipped.
    /// Returns whether the state changed.
    pub async fn update_upload(
        &self,
        id: &UploadId,
        update: &UploadUpdate,
    ) -> Result<bool, StoreError> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let current: Option<ReviewState> =
            sqlx::query_scalar("SELECT state FROM frameio_uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Err(StoreError::Corrupt(format!("no upload {id:?}")));
        };
        let mut changed = false;
        if let Some(change) = &update.state
            && change.to != current
        {
            sqlx::query(
                "UPDATE frameio_uploads SET state = $1, state_reason = $2, state_changed_at = $3
                 WHERE id = $4",
            )
            .bind(change.to)
            .bind(&change.reason)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO frameio_transitions (upload_id, at, from_state, to_state, cause, reason, event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(now)
            .bind(current)
            .bind(change.to)
            .bind(change.cause)
            .bind(&change.reason)
            .bind(change.event_id)
            .execute(&mut *tx)
            .await?;
            changed = true;
        }
        sqlx::query(
            "UPDATE frameio_uploads SET updated_at = $1,
                 account_id = COALESCE($2, account_id),
                 metadata_status = COALESCE($3, metadata_status),
                 decided_comment = COALESCE($4, decided_comment),
                 last_polled_at = COALESCE($5, last_polled_at),
                 next_poll_at = CASE WHEN $6 THEN $7 ELSE next_poll_at END,
                 last_error = CASE WHEN $8 THEN $9 ELSE last_error END,
                 needs_look = CASE WHEN $10 THEN $11 ELSE needs_look END
             WHERE id = $12",
        )
        .bind(now)
        .bind(&update.account_id)
        .bind(&update.metadata_status)
        .bind(&update.decided_comment)
        .bind(update.polled_at)
        .bind(update.next_poll_at.is_some())
        .bind(update.next_poll_at.flatten())
        .bind(update.last_error.is_some())
        .bind(update.last_error.clone().flatten())
        .bind(update.needs_look.is_some())
        .bind(update.needs_look.clone().flatten())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(comments) = &update.comments {
            sqlx::query("DELETE FROM frameio_comments WHERE upload_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for c in comments {
                sqlx::query(
                    "INSERT INTO frameio_comments (upload_id, comment_id, text, author, created_at,
                         updated_at, completed_at, verdict)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (upload_id, comment_id) DO NOTHING",
                )
                .bind(id)
                .bind(&c.comment_id)
                .bind(super::storable(&c.text))
                .bind(c.author.as_deref().map(super::storable))
                .bind(&c.created_at)
                .bind(&c.updated_at)
                .bind(&c.completed_at)
                .bind(c.verdict)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Uploads due for a poll at `now`, soonest first.
    pub async fn uploads_due(&self, now: Timestamp, limit: i64) -> Result<Vec<Upload>, StoreError> {
        if !self.backend().shared() {
            return Ok(sqlx::query_as::<_, Upload>(&format!(
                "SELECT {UPLOAD_COLUMNS} FROM frameio_uploads
                 WHERE next_poll_at IS NOT NULL AND next_poll_at <= $1
                 ORDER BY next_poll_at LIMIT $2"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?);
        }
        // Several instances: a due poll is claimed by moving it one lease ahead (the poll then
        // sets the real next time); an instance that dies mid-poll leaves it due again later.
        let mut claimed = sqlx::query_as::<_, Upload>(&format!(
            "UPDATE frameio_uploads SET next_poll_at = $3
             WHERE id IN (
                 SELECT id FROM frameio_uploads
                 WHERE next_poll_at IS NOT NULL AND next_poll_at <= $1
                 ORDER BY next_poll_at LIMIT $2{}
             )
             RETURNING {UPLOAD_COLUMNS}",
            self.skip_locked()
        ))
        .bind(now)
        .bind(limit.min(1000))
        .bind(now.plus(self.lease()))
        .fetch_all(self.pool())
        .await?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    pub async fn next_upload_poll(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(next_poll_at) FROM frameio_uploads")
                .fetch_one(self.pool())
                .await?,
        )
    }

    pub async fn set_next_poll(
        &self,
        id: &UploadId,
        next_poll_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE frameio_uploads SET next_poll_at = $1 WHERE id = $2")
            .bind(next_poll_at)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A credential rushes stored (`value`, `origin`).
    pub async fn frameio_credential(
        &self,
        name: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT value, origin FROM frameio_credentials WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn set_frameio_credential(
        &self,
        name: &str,
        value: &str,
        origin: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO frameio_credentials (name, value, origin, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, origin = excluded.origin,
                 updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(origin)
        .bind(Timestamp::now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn delete_frameio_credential(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM frameio_credentials WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
