//! The notification outbox: rows made once each (by key) from what the store holds, claimed by
//! one instance to be sent, retried with backoff, done when posted and their command ran.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{DeliveryState, ReviewState, Timestamp, TransitionCause};

/// A review transition that changes an upload's verdict, with what a message needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerdictChange {
    pub transition_id: i64,
    pub upload_id: String,
    pub at: Timestamp,
    pub from_state: Option<ReviewState>,
    pub to_state: ReviewState,
    pub cause: TransitionCause,
    pub reason: String,
    pub name: Option<String>,
    pub file_id: String,
    pub decided_comment: Option<String>,
    pub view_url: Option<String>,
    pub version: Option<i64>,
}

/// A delivery that failed for good or was downloaded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FinishedDelivery {
    pub id: i64,
    pub state: DeliveryState,
    pub state_changed_at: Timestamp,
    pub file_name: Option<String>,
    pub original_filename: Option<String>,
    pub error: Option<String>,
    pub bytes_total: Option<i64>,
}

/// A message to send (and, for a verdict, a command to run).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub text: String,
    pub hook_env: Option<String>,
    pub created_at: Timestamp,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub hook_done_at: Option<Timestamp>,
    pub hook_exit_code: Option<i64>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, key, kind, text, hook_env, created_at, attempts, next_attempt_at, \
    sent_at, hook_done_at, hook_exit_code, last_error";

/// A new outbox row.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub key: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
    pub hook_env: Option<&'a str>,
    /// Nothing to post (no `NOTIFY_URL`).
    pub no_post: bool,
    /// No command to run.
    pub no_hook: bool,
}

impl Store {
    pub async fn notify_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM notify_cursor WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn set_notify_cursor(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO notify_cursor (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Verdict changes at or after `since` that have no outbox row yet, oldest first.
    pub async fn verdict_changes_since(
        &self,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<VerdictChange>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT t.id AS transition_id, t.upload_id, t.at, t.from_state, t.to_state, t.cause,
                    t.reason, u.name, u.file_id, u.decided_comment, s.view_url, s.version
             FROM frameio_transitions t
             JOIN frameio_uploads u ON u.id = t.upload_id
             LEFT JOIN frameio_sends s ON s.id = t.upload_id
             WHERE t.at >= $1
               AND (t.to_state IN ('approved', 'changes_requested', 'rejected')
                    OR (t.to_state = 'in_review'
                        AND t.from_state IN ('approved', 'changes_requested', 'rejected')))
               AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.key = 'transition:' || t.id)
             ORDER BY t.at, t.id LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// A stored comment's text and author.
    pub async fn comment_text(
        &self,
        upload_id: &str,
        comment_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT text, author FROM frameio_comments WHERE upload_id = $1 AND comment_id = $2",
        )
        .bind(upload_id)
        .bind(comment_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Deliveries that failed (and, with `downloaded`, were downloaded) at or after `since`
    /// without an outbox row yet.
    pub async fn finished_deliveries_since(
        &self,
        since: Timestamp,
        downloaded: bool,
        limit: i64,
    ) -> Result<Vec<FinishedDelivery>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, state, state_changed_at, file_name, original_filename, error, bytes_total
             FROM deliveries d
             WHERE d.state_changed_at >= $1 AND (d.state = $2 OR ($3 AND d.state = $4))
               AND NOT EXISTS (SELECT 1 FROM notify_outbox o
                               WHERE o.key = 'delivery:' || d.id || ':' || d.state || ':' || d.state_changed_at)
             ORDER BY d.state_changed_at, d.id LIMIT $5",
        )
        .bind(since)
        .bind(DeliveryState::Failed)
        .bind(downloaded)
        .bind(DeliveryState::Done)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Adds a message once (a second row with the same key is ignored).
    pub async fn enqueue_message(&self, m: &NewMessage<'_>) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO notify_outbox (key, kind, text, hook_env, created_at, next_attempt_at,
                 sent_at, hook_done_at)
             VALUES ($1, $2, $3, $4, $5, $5, CASE WHEN $6 THEN $5 END, CASE WHEN $7 THEN $5 END)
             ON CONFLICT (key) DO NOTHING
             RETURNING id",
        )
        .bind(m.key)
        .bind(m.kind)
        .bind(super::storable(m.text))
        .bind(m.hook_env.map(super::storable))
        .bind(now)
        .bind(m.no_post)
        .bind(m.no_hook)
        .fetch_optional(self.pool())
        .await?;
        Ok(id.is_some())
    }

    /// Due messages, claimed for `claimant` for one lease, oldest first.
    pub async fn claim_messages(
        &self,
        claimant: &str,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let _turn = self.write_turn().await;
        let now = Timestamp::now();
        let mut rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "UPDATE notify_outbox SET claimed_by = $1, claim_until = $2
             WHERE id IN (
                 SELECT id FROM notify_outbox
                 WHERE (sent_at IS NULL OR hook_done_at IS NULL) AND next_attempt_at <= $3
                   AND (claim_until IS NULL OR claim_until <= $3 OR claimed_by = $1)
                 ORDER BY id LIMIT $4{}
             )
             RETURNING {COLUMNS}",
            self.skip_locked()
        ))
        .bind(claimant)
        .bind(now.plus(self.lease()))
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    pub async fn message_sent(&self, id: i64) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE notify_outbox SET sent_at = $1, last_error = NULL WHERE id = $2")
            .bind(Timestamp::now())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn message_hook_done(
        &self,
        id: i64,
        exit_code: Option<i64>,
        output: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE notify_outbox SET hook_done_at = $1, hook_exit_code = $2,
                 last_error = CASE WHEN $2 = 0 THEN last_error ELSE $3 END
             WHERE id = $4",
        )
        .bind(Timestamp::now())
        .bind(exit_code)
        .bind(super::storable(output))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A failed post: tried again at `next_attempt_at`; the claim is let go.
    pub async fn message_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: Timestamp,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE notify_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2,
                 claimed_by = NULL, claim_until = NULL
             WHERE id = $3",
        )
        .bind(super::storable(error))
        .bind(next_attempt_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The outbox, newest first (inspection, tests).
    pub async fn messages(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM notify_outbox ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
