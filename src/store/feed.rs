//! The feed's fetch history (`feed_fetches`) and current state (`feed_state`).

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{FeedFetchOutcome, Timestamp};

/// One poll of the feed (after its retries).
#[derive(Debug, Clone)]
pub struct FeedFetch {
    pub started_at: Timestamp,
    pub outcome: FeedFetchOutcome,
    pub attempts: u32,
    pub records_valid: i64,
    pub records_invalid: i64,
    pub records_new: i64,
    /// The first invalid items of the body (index in the array, why), for the dashboard.
    pub invalid_items: Vec<(usize, String)>,
    pub error: Option<String>,
    /// HTTP validators the server gave (kept as they were when `None`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The feed as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FeedState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_success_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub records_processed: i64,
    /// Invalid items of the last body taken in (all of them counted).
    pub records_invalid: i64,
    /// The first of them with their reasons: a JSON array of `{"index", "reason"}`.
    #[serde(skip)]
    pub invalid_items: Option<String>,
}

/// One invalid item of the feed, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InvalidFeedItem {
    pub index: usize,
    pub reason: String,
}

impl FeedState {
    /// The invalid items kept with their reasons (empty when none, or unreadable).
    pub fn invalid_items(&self) -> Vec<InvalidFeedItem> {
        self.invalid_items
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }
}

/// `[{"index", "reason"}, ...]`.
fn invalid_json(items: &[(usize, String)]) -> String {
    let items: Vec<InvalidFeedItem> = items
        .iter()
        .map(|(index, reason)| InvalidFeedItem {
            index: *index,
            reason: reason.clone(),
        })
        .collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_string())
}

/// Polls kept in the history at most.
pub const FEED_HISTORY_ROWS: i64 = 5000;
/// Polls older than this leave the history.
pub const FEED_HISTORY_DAYS: i64 = 30;

impl Store {
    /// Keeps the newest `max_rows` polls of the last `max_age`; returns how many were removed.
    pub async fn prune_feed_history(
        &self,
        max_rows: i64,
        max_age: chrono::Duration,
    ) -> Result<u64, StoreError> {
        let cutoff = Timestamp::from(chrono::Utc::now() - max_age).text();
        let done = sqlx::query(
            "DELETE FROM feed_fetches WHERE finished_at < $1
                 OR id <= (SELECT id FROM feed_fetches ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(&cutoff)
        .bind(max_rows)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Records a poll in the history and updates the current state, in one transaction.
    pub async fn record_feed_fetch(&self, fetch: &FeedFetch) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO feed_fetches (started_at, finished_at, outcome, attempts, records_valid,
                 records_invalid, records_new, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(fetch.started_at)
        .bind(now)
        .bind(fetch.outcome)
        .bind(i64::from(fetch.attempts))
        .bind(fetch.records_valid)
        .bind(fetch.records_invalid)
        .bind(fetch.records_new)
        .bind(&fetch.error)
        .execute(&mut *tx)
        .await?;
        match fetch.outcome {
            FeedFetchOutcome::Ok => {
                sqlx::query(
                    "UPDATE feed_state SET last_success_at = $1, last_attempt_at = $1, last_error = NULL,
                         records_processed = $2, etag = $3, last_modified = $4,
                         records_invalid = $5, invalid_items = $6 WHERE id = 1",
                )
                .bind(now)
                .bind(fetch.records_valid)
                .bind(&fetch.etag)
                .bind(&fetch.last_modified)
                .bind(fetch.records_invalid)
                .bind(invalid_json(&fetch.invalid_items))
                .execute(&mut *tx)
                .await?;
            }
            FeedFetchOutcome::NotModified => {
                sqlx::query(
                    "UPDATE feed_state SET last_success_at = $1, last_attempt_at = $1, last_error = NULL
                     WHERE id = 1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            FeedFetchOutcome::Error => {
                sqlx::query(
                    "UPDATE feed_state SET last_attempt_at = $1, last_error = $2 WHERE id = 1",
                )
                .bind(now)
                .bind(&fetch.error)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.prune_feed_history(FEED_HISTORY_ROWS, chrono::Duration::days(FEED_HISTORY_DAYS))
            .await?;
        Ok(())
    }

    pub async fn feed_state(&self) -> Result<FeedState, StoreError> {
        Ok(sqlx::query_as::<_, FeedState>(
            "SELECT etag, last_modified, last_success_at, last_attempt_at, last_error, records_processed,
                    records_invalid, invalid_items
             FROM feed_state WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Number of polls by outcome, for /metrics.
    pub async fn feed_fetch_counts(&self) -> Result<Vec<(FeedFetchOutcome, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT outcome, COUNT(*) FROM feed_fetches GROUP BY outcome ORDER BY outcome",
        )
        .fetch_all(self.pool())
        .await?)
    }
}
