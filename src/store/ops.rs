//! What an operator watches and what keeps the database bounded (issue 28): the Frame.io event
//! backlog and the uploads by state for `/metrics`.

use super::{Store, StoreError};
use crate::domain::{ReviewState, Timestamp};

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
