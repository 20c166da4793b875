//! Taking in many feed records at once: one transaction per chunk, multi-row inserts, and one
//! read of what is stored instead of a query per record.

use sqlx::{QueryBuilder, Sqlite};

use super::{NewDelivery, Store, StoreError};
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};

/// Rows per INSERT statement (16 parameters each: well under SQLite's parameter limit).
const ROWS_PER_STATEMENT: usize = 64;

/// Keys per lookup statement (each bound twice).
const KEYS_PER_STATEMENT: usize = 400;

/// Ids per `last_seen_at` UPDATE statement.
const IDS_PER_STATEMENT: usize = 500;

/// What a poll needs to know of a stored delivery to tell whether a record changes it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KnownDelivery {
    pub id: i64,
    pub dedupe_key: String,
    pub r2_key: Option<String>,
    pub r2_url: Option<String>,
    pub provider: String,
    pub kind: LinkKind,
    pub mode: DeliveryMode,
    pub record_format: RecordFormat,
    pub original_filename: Option<String>,
    pub file_name: Option<String>,
    pub state: DeliveryState,
}

impl Store {
    /// Every stored delivery, with what a feed record could change of it (one query).
    pub async fn known_deliveries(&self) -> Result<Vec<KnownDelivery>, StoreError> {
        Ok(sqlx::query_as::<_, KnownDelivery>(
            "SELECT id, dedupe_key, r2_key, r2_url, provider, kind, mode, record_format,
                 original_filename, file_name, state
             FROM deliveries",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The stored deliveries whose dedupe key or R2 key is one of `keys` (indexed lookups: the
    /// cost follows the number of keys, not of deliveries stored).
    pub async fn known_deliveries_matching(
        &self,
        keys: &[&str],
    ) -> Result<Vec<KnownDelivery>, StoreError> {
        let mut rows: Vec<KnownDelivery> = Vec::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let mut select: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT id, dedupe_key, r2_key, r2_url, provider, kind, mode, record_format,
                     original_filename, file_name, state
                 FROM deliveries WHERE dedupe_key IN (",
            );
            let mut list = select.separated(", ");
            for key in chunk {
                list.push_bind(*key);
            }
            select.push(") OR r2_key IN (");
            let mut list = select.separated(", ");
            for key in chunk {
                list.push_bind(*key);
            }
            select.push(")");
            rows.extend(select.build_query_as().fetch_all(self.pool()).await?);
        }
        rows.sort_unstable_by_key(|r: &KnownDelivery| r.id);
        rows.dedup_by_key(|r| r.id);
        Ok(rows)
    }

    /// Inserts deliveries seen for the first time, in one transaction. Returns the id and dedupe
    /// key of each row inserted; a row whose dedupe key was stored meanwhile is left out (the
    /// caller takes it through [`Store::upsert_delivery`]). Never duplicates, never resets a state.
    pub async fn insert_new_deliveries(
        &self,
        batch: &[NewDelivery],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let now = Timestamp::now();
        let mut inserted: Vec<(i64, String)> = Vec::with_capacity(batch.len());
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        for rows in batch.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO deliveries (dedupe_key, source_url, raw_source_url, r2_url, r2_key,
                     provider, kind, mode, record_format, original_filename, file_name,
                     created_at, first_seen_at, last_seen_at, state, state_changed_at) ",
            );
            insert.push_values(rows, |mut row, d| {
                row.push_bind(&d.dedupe_key)
                    .push_bind(&d.source_url)
                    .push_bind(&d.raw_source_url)
                    .push_bind(&d.r2_url)
                    .push_bind(&d.r2_key)
                    .push_bind(&d.provider)
                    .push_bind(d.kind)
                    .push_bind(d.mode)
                    .push_bind(d.record_format)
                    .push_bind(&d.original_filename)
                    .push_bind(&d.file_name)
                    .push_bind(d.created_at)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(d.initial_state)
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key");
            let new: Vec<(i64, String)> = insert
                .build_query_as()
                .persistent(true)
                .fetch_all(&mut *tx)
                .await?;
            inserted.extend(new);
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Refreshes `last_seen_at` of known deliveries seen again, in one transaction.
    pub async fn touch_deliveries(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut update: QueryBuilder<Sqlite> =
                QueryBuilder::new("UPDATE deliveries SET last_seen_at = ");
            update.push_bind(now).push(" WHERE id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            update.push(")");
            update.build().persistent(true).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
