//! The `deliveries` table: one row per distinct delivery, its state and download outcome.

use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};

/// A delivery as stored; also the JSON shape of the API (one serializer).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub dedupe_key: String,
    pub source_url: String,
    pub raw_source_url: String,
    pub r2_url: Option<String>,
    pub provider: String,
    pub kind: LinkKind,
    pub mode: DeliveryMode,
    pub record_format: RecordFormat,
    pub original_filename: Option<String>,
    pub file_name: Option<String>,
    pub created_at: Timestamp,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub state: DeliveryState,
    pub state_changed_at: Timestamp,
    pub error: Option<String>,
    pub attempts: i64,
    pub bytes_done: i64,
    pub bytes_total: Option<i64>,
    pub served_by: Option<String>,
    pub served_url: Option<String>,
    pub sha256: Option<String>,
    pub final_path: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    pub mean_speed_bps: Option<i64>,
    pub hook_exit_code: Option<i64>,
    pub hook_output: Option<String>,
    /// Partial file of an unfinished download (`<name>.part`), kept for a resume.
    pub part_path: Option<String>,
    /// ETag or Last-Modified the `.part` came from (`If-Range` of a resume).
    pub validator: Option<String>,
}

/// What the feed knows about a delivery.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub dedupe_key: String,
    pub source_url: String,
    pub raw_source_url: String,
    pub r2_url: Option<String>,
    pub provider: String,
    pub kind: LinkKind,
    pub mode: DeliveryMode,
    pub record_format: RecordFormat,
    pub original_filename: Option<String>,
    pub file_name: Option<String>,
    pub created_at: Timestamp,
    pub initial_state: DeliveryState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub id: i64,
    pub inserted: bool,
}

/// Filters and pagination of the deliveries list (newest first).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub kind: Option<LinkKind>,
    /// Only deliveries older than this one (cursor pagination).
    pub before: Option<i64>,
    pub limit: u32,
}

impl Store {
    /// Inserts a delivery seen for the first time; for a known one only refreshes `last_seen_at`
    /// and its R2 copy. Never duplicates, never resets a state.
    pub async fn upsert_delivery(&self, d: &NewDelivery) -> Result<UpsertOutcome, StoreError> {
        let now = Timestamp::now();
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deliveries (dedupe_key, source_url, raw_source_url, r2_url, provider, kind, mode,
                 record_format, original_filename, file_name, created_at, first_seen_at, last_seen_at,
                 state, state_changed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $12)
             ON CONFLICT (dedupe_key) DO NOTHING
             RETURNING id",
        )
        .bind(&d.dedupe_key)
        .bind(&d.source_url)
        .bind(&d.raw_source_url)
        .bind(&d.r2_url)
        .bind(&d.provider)
        .bind(d.kind)
        .bind(d.mode)
        .bind(d.record_format)
        .bind(&d.original_filename)
        .bind(&d.file_name)
        .bind(d.created_at)
        .bind(now)
        .bind(d.initial_state)
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = inserted {
            return Ok(UpsertOutcome { id, inserted: true });
        }
        let id: i64 = sqlx::query_scalar(
            "UPDATE deliveries SET last_seen_at = $2, r2_url = COALESCE($3, r2_url)
             WHERE dedupe_key = $1 RETURNING id",
        )
        .bind(&d.dedupe_key)
        .bind(now)
        .bind(&d.r2_url)
        .fetch_one(self.pool())
        .await?;
        Ok(UpsertOutcome {
            id,
            inserted: false,
        })
    }

    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        Ok(
            sqlx::query_as::<_, Delivery>("SELECT * FROM deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Newest first (feed time, then arrival), filtered, at most `filter.limit` rows.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let mut sql = String::from("SELECT * FROM deliveries WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if filter.state.is_some() {
            sql.push_str(&format!(" AND state = {}", next()));
        }
        if filter.kind.is_some() {
            sql.push_str(&format!(" AND kind = {}", next()));
        }
        if filter.before.is_some() {
            let p = next();
            sql.push_str(&format!(
                " AND (created_at, id) < (SELECT created_at, id FROM deliveries WHERE id = {p})"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            next()
        ));
        let mut query = sqlx::query_as::<_, Delivery>(&sql);
        if let Some(state) = filter.state {
            query = query.bind(state);
        }
        if let Some(kind) = &filter.kind {
            query = query.bind(kind);
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        query = query.bind(i64::from(filter.limit));
        Ok(query.fetch_all(self.pool()).await?)
    }

    /// Number of deliveries in each state (states with none are absent).
    pub async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT state, COUNT(*) FROM deliveries GROUP BY state ORDER BY state")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Moves a delivery to `to` if it is in one of `from`; returns the updated row, or `None`
    /// when the delivery does not exist or was in another state.
    pub async fn transition(
        &self,
        id: i64,
        from: &[DeliveryState],
        to: DeliveryState,
        error: Option<&str>,
    ) -> Result<Option<Delivery>, StoreError> {
        if from.is_empty() {
            return Ok(None);
        }
        // `from` is a short list of known names, never user text: inline it as literals.
        let allowed = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE deliveries SET state = $2, state_changed_at = $3, error = $4
             WHERE id = $1 AND state IN ({allowed}) RETURNING *"
        );
        Ok(sqlx::query_as::<_, Delivery>(&sql)
            .bind(id)
            .bind(to)
            .bind(Timestamp::now())
            .bind(error)
            .fetch_optional(self.pool())
            .await?)
    }
}
