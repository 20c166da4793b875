//! Taking in many feed records at once: one transaction per chunk, multi-row inserts, and one
//! read of what is stored instead of a query per record.

use super::{NewDelivery, Store, StoreError};
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};

/// Rows per INSERT statement (16 parameters each: well under SQLite's parameter limit).
const ROWS_PER_STATEMENT: usize = 64;

/// Keys per lookup statement.
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
            // Each key bound once, read by both lists.
            let mut list = String::new();
            push_rows(&mut list, 1, chunk.len(), 1);
            let sql = format!(
                "SELECT id, dedupe_key, r2_key, r2_url, provider, kind, mode, record_format,
                     original_filename, file_name, state
                 FROM deliveries WHERE dedupe_key IN {list} OR r2_key IN {list}"
            );
            let mut select = sqlx::query_as::<_, KnownDelivery>(&sql);
            for key in chunk {
                select = select.bind(*key);
            }
            rows.extend(select.fetch_all(self.pool()).await?);
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
            let mut sql = String::from(
                "INSERT INTO deliveries (dedupe_key, source_url, raw_source_url, r2_url, r2_key,
                     provider, kind, mode, record_format, original_filename, file_name,
                     created_at, first_seen_at, last_seen_at, state, state_changed_at) VALUES ",
            );
            push_rows(&mut sql, rows.len(), 16, 1);
            sql.push_str(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key");
            let mut insert = sqlx::query_as::<_, (i64, String)>(&sql);
            for d in rows {
                insert = insert
                    .bind(&d.dedupe_key)
                    .bind(&d.source_url)
                    .bind(&d.raw_source_url)
                    .bind(&d.r2_url)
                    .bind(&d.r2_key)
                    .bind(&d.provider)
                    .bind(d.kind)
                    .bind(d.mode)
                    .bind(d.record_format)
                    .bind(d.original_filename.as_deref().map(super::storable))
                    .bind(d.file_name.as_deref().map(super::storable))
                    .bind(d.created_at)
                    .bind(now)
                    .bind(now)
                    .bind(d.initial_state)
                    .bind(now);
            }
            let new = insert.persistent(true).fetch_all(&mut *tx).await?;
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
            let mut sql = String::from("UPDATE deliveries SET last_seen_at = $1 WHERE id IN ");
            push_rows(&mut sql, 1, chunk.len(), 2);
            let mut update = sqlx::query(&sql).bind(now);
            for id in chunk {
                update = update.bind(*id);
            }
            update.persistent(true).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Appends `rows` groups of `per_row` numbered parameters, `($first, $first+1, …), (…)`: both
/// backends read `$N` (sqlx's query builder writes `?` for the `Any` driver, which PostgreSQL
/// does not take).
pub(super) fn push_rows(sql: &mut String, rows: usize, per_row: usize, first: usize) {
    use std::fmt::Write as _;
    let mut n = first;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..per_row {
            let _ = write!(sql, "{}${n}", if column == 0 { "" } else { ", " });
            n += 1;
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_numbered_across_rows() {
        let mut sql = String::new();
        super::push_rows(&mut sql, 2, 3, 1);
        assert_eq!(sql, "($1, $2, $3), ($4, $5, $6)");
        let mut sql = String::new();
        super::push_rows(&mut sql, 1, 3, 2);
        assert_eq!(sql, "($2, $3, $4)");
    }
}
