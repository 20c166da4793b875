//! What an operator watches and what keeps the database bounded (issue 28): the Frame.io event
//! backlog and the uploads by state for `/metrics`; the retention of processed events, pruned
//! in small batches by a background task.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};
use crate::domain::{EventId, ReviewState, Timestamp};

/// Events deleted per statement: a short write lock each, so webhook writes are not held up.
pub const PRUNE_BATCH: i64 = 500;
/// Pause between two batches of one pruning pass.
const PRUNE_PAUSE: Duration = Duration::from_millis(200);

/// Unprocessed Frame.io events: how many, and when the oldest was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBacklog {
    pub pending: i64,
    pub oldest: Option<Timestamp>,
}

impl Store {
    /// The Frame.io events not processed yet (deferred ones included).
    pub async fn frameio_backlog(&self) -> Result<EventBacklog, StoreError> {
        let (pending, oldest): (i64, Option<Timestamp>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(received_at) FROM frameio_events WHERE processed_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(EventBacklog { pending, oldest })
    }

    /// Tracked uploads by review state.
    pub async fn upload_counts(&self) -> Result<Vec<(ReviewState, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, COUNT(*) FROM frameio_uploads GROUP BY state ORDER BY state",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

impl Store {
    /// Bytes SQLite holds in this process (page caches, schemas, prepared statements), for
    /// `/metrics` and the soak: what it may keep is bounded by [`super::SQLITE_CONNECTIONS`]
    /// times [`super::PAGE_CACHE_KIB`] of pages, plus the statements each connection caches.
    /// `None` on PostgreSQL (its memory is the server's).
    pub fn sqlite_memory_bytes(&self) -> Option<i64> {
        (self.backend() == super::Backend::Sqlite).then(sqlite_memory_used)
    }
}

/// SQLite's own count of the heap it holds (`sqlite3_memory_used`, kept by the bundled build).
#[allow(unsafe_code)]
fn sqlite_memory_used() -> i64 {
    // SAFETY: takes no argument, reads a counter SQLite keeps under its own mutex; callable from
    // any thread at any time, before or after any connection is opened.
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

impl Store {
    /// Deletes at most `limit` processed events whose processing ended before `cutoff`; returns
    /// how many. Unprocessed events are never deleted, whatever their age.
    pub async fn prune_frameio_events(
        &self,
        cutoff: Timestamp,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "DELETE FROM frameio_events WHERE id IN (
                 SELECT id FROM frameio_events
                 WHERE processed_at IS NOT NULL AND processed_at < $1
                 ORDER BY processed_at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// One pass: batches of [`PRUNE_BATCH`] until none is full; returns how many were deleted.
    pub async fn prune_expired_events(&self, retention: Duration) -> Result<u64, StoreError> {
        let age = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = Timestamp::from(
            chrono::Utc::now()
                .checked_sub_signed(age)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
        );
        let mut total = 0;
        loop {
            let n = self.prune_frameio_events(cutoff, PRUNE_BATCH).await?;
            total += n;
            if n < PRUNE_BATCH as u64 {
                return Ok(total);
            }
            tokio::time::sleep(PRUNE_PAUSE).await;
        }
    }
}

/// Prunes processed events older than `retention` every tenth of it (between 1 s and 1 hour),
/// off the request and processing paths.
pub async fn prune_events(store: Store, retention: Duration, cancel: CancellationToken) {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let pass = tokio::select! {
            () = cancel.cancelled() => return,
            r = store.prune_expired_events(retention) => r,
        };
        match pass {
            Ok(0) => tracing::debug!("Frame.io: no processed event past its retention"),
            Ok(n) => tracing::info!(
                events = n,
                retention_s = retention.as_secs(),
                "Frame.io: processed events past RUSHES_EVENT_RETENTION deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "Frame.io: cannot prune old events"),
        }
    }
}

/// `next_attempt_at` of an event that waits for the Frame.io settings: never due by itself.
fn waiting() -> Timestamp {
    use chrono::TimeZone as _;
    Timestamp::from(
        chrono::Utc
            .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
            .single()
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    )
}

impl Store {
    /// Keeps event `id` unprocessed, with `reason`, until [`Store::release_waiting_frameio_events`]
    /// (no attempt counted).
    pub async fn wait_frameio_event(&self, id: EventId, reason: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE frameio_events SET error = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(waiting())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Makes every unprocessed event that waits (for the settings, or for a retry) due now;
    /// returns how many.
    pub async fn release_waiting_frameio_events(&self) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "UPDATE frameio_events SET next_attempt_at = NULL
             WHERE processed_at IS NULL AND next_attempt_at IS NOT NULL",
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
