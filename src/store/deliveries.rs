//! The `deliveries` table: one row per distinct delivery, its state and download outcome.

use serde::Serialize;

use super::ingest::{KnownDelivery, write_change};
use super::{Store, StoreError, storable};
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
    /// A file name the feed gave after the download had started (the file keeps its own name).
    pub renamed_in_feed: Option<String>,
    /// The normalised R2 link (an identity, like `dedupe_key`; not part of the API).
    #[serde(skip)]
    pub r2_key: Option<String>,
    /// The instance that runs (or last ran) the download (`RUSHES_INSTANCE_NAME`).
    #[sqlx(default)]
    pub owner: Option<String>,
    /// Why the link resolver waits (virus check, password), if it does (`waits.rs`).
    #[sqlx(default)]
    pub wait_reason: Option<crate::domain::WaitReason>,
    /// A queued delivery is not started before this time (virus check backoff).
    #[sqlx(default)]
    pub retry_at: Option<Timestamp>,
    /// Waits so far (the backoff grows with them).
    #[sqlx(default)]
    pub wait_count: i64,
}

impl Delivery {
    /// The download has not started: nothing fetched, no partial file, not running or done.
    /// Until then a better record of the same delivery may still change its name and links.
    pub fn not_started(&self) -> bool {
        self.state
            .not_started(self.started_at.as_ref(), self.part_path.as_deref())
    }
}

/// What the feed knows about a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub dedupe_key: String,
    pub source_url: String,
    pub raw_source_url: String,
    pub r2_url: Option<String>,
    /// The normalised R2 link: a second identity of the delivery.
    pub r2_key: Option<String>,
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
    /// A known delivery took better information from this record (name, R2 copy, provider).
    pub updated: bool,
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
    /// Inserts a delivery seen for the first time. A known one (same normalised source link, or
    /// same R2 copy, in either role) is never duplicated and never has its state reset: its
    /// `last_seen_at` is refreshed and a new-format record upgrades it (see [`Self::upgrade`]).
    pub async fn upsert_delivery(&self, d: &NewDelivery) -> Result<UpsertOutcome, StoreError> {
        let now = Timestamp::now();
        let known = match self.find_known(d).await? {
            Some(known) => Some(known),
            None => {
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO deliveries (dedupe_key, source_url, raw_source_url, r2_url, r2_key,
                         provider, kind, mode, record_format, original_filename, file_name,
                         created_at, first_seen_at, last_seen_at, state, state_changed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $13)
                     ON CONFLICT (dedupe_key) DO NOTHING
                     RETURNING id",
                )
                .bind(&d.dedupe_key)
                .bind(&d.source_url)
                .bind(&d.raw_source_url)
                .bind(&d.r2_url)
                .bind(&d.r2_key)
                .bind(&d.provider)
                .bind(d.kind)
                .bind(d.mode)
                .bind(d.record_format)
                .bind(d.original_filename.as_deref().map(storable))
                .bind(d.file_name.as_deref().map(storable))
                .bind(d.created_at)
                .bind(now)
                .bind(d.initial_state)
                .fetch_optional(self.pool())
                .await?;
                if let Some(id) = inserted {
                    return Ok(UpsertOutcome {
                        id,
                        inserted: true,
                        updated: false,
                    });
                }
                // Inserted by someone else in between: it is known now.
                self.find_known(d).await?
            }
        };
        let Some(known) = known else {
            return Err(StoreError::Corrupt(format!(
                "delivery {} neither inserted nor found",
                d.dedupe_key
            )));
        };
        sqlx::query("UPDATE deliveries SET last_seen_at = $2 WHERE id = $1")
            .bind(known.id)
            .bind(now)
            .execute(self.pool())
            .await?;
        let updated = self.upgrade(&known, d).await?;
        Ok(UpsertOutcome {
            id: known.id,
            inserted: false,
            updated,
        })
    }

    /// The delivery a record belongs to: same source key, or an R2 key equal to either of the
    /// record's keys (a legacy record may list the R2 copy itself as its link).
    async fn find_known(&self, d: &NewDelivery) -> Result<Option<Delivery>, StoreError> {
        Ok(sqlx::query_as::<_, Delivery>(
            // `IN` lists (a NULL `$2` matches nothing) so that SQLite looks both keys up in the
            // two indexes; the first form (`… OR ($2 IS NOT NULL AND …)`) scanned the whole table.
            "SELECT * FROM deliveries
             WHERE dedupe_key IN ($1, $2) OR r2_key IN ($1, $2)
             ORDER BY CASE WHEN dedupe_key = $1 THEN 0 ELSE 1 END, id ASC
             LIMIT 1",
        )
        .bind(&d.dedupe_key)
        .bind(&d.r2_key)
        .fetch_optional(self.pool())
        .await?)
    }

    /// A record seen for a known delivery: the upgrade rule ([`KnownDelivery::take`]), written.
    async fn upgrade(&self, current: &Delivery, d: &NewDelivery) -> Result<bool, StoreError> {
        let mut after = KnownDelivery::from(current);
        match after.take(d, &mut None) {
            Some(change) => {
                write_change(self.pool(), current.id, current.state, &after, change).await
            }
            None => Ok(false),
        }
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

    /// The latest activity first (state changes), at most `limit`; manual deliveries only when
    /// `include_manual` (the original app's `/api/csv_downloads_status`).
    pub async fn recent_activity(
        &self,
        include_manual: bool,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let query = if include_manual {
            sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries ORDER BY state_changed_at DESC, id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
        } else {
            sqlx::query_as::<_, Delivery>(
                "SELECT * FROM deliveries WHERE mode = $1
                 ORDER BY state_changed_at DESC, id DESC LIMIT $2",
            )
            .bind(DeliveryMode::Automatic)
            .bind(i64::from(limit))
        };
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
            .bind(error.map(storable))
            .fetch_optional(self.pool())
            .await?)
    }
}
