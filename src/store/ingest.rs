//! Taking in many feed records at once: one transaction per chunk, multi-row inserts, and one
//! read of what is stored instead of a query per record.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use super::params::Params;
use super::{Delivery, NewDelivery, Store, StoreError, storable};
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};

/// Rows per INSERT statement on PostgreSQL (one JSON parameter).
const ROWS_PER_STATEMENT: usize = 2000;

/// Rows per INSERT statement on SQLite (16 parameters each; SQLite takes up to 32,766).
const ROWS_PER_SQLITE_STATEMENT: usize = 500;

/// Keys per lookup statement.
const KEYS_PER_STATEMENT: usize = 400;

/// SQLite's page cache of the connection of a large ingest ([`Store::new_deliveries`])
/// (8 MiB) ... Measured on a first ingest of 100,000 records (86,911 new deliveries, 3 runs
/// each, alternated): 32 MiB 1.67 s / 190 MiB peak RSS, 8 MiB 1.70 s / 168 MiB, 2 MiB (the
/// default) 1.84 s / 155 MiB: past 8 MiB the cache buys no time.
const INGEST_CACHE: &str = "PRAGMA cache_size = -8192";

/// ... from this many new deliveries.
const LARGE_INGEST: usize = 5_000;

/// Ids per `last_seen_at` UPDATE statement.
const IDS_PER_STATEMENT: usize = 500;

/// What a poll needs to know of a stored delivery to tell whether a record changes it, and
/// what the upgrade rule ([`KnownDelivery::take`]) works on.
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
    pub renamed_in_feed: Option<String>,
    pub started_at: Option<Timestamp>,
    pub part_path: Option<String>,
}

/// The columns of [`KnownDelivery`].
const KNOWN_COLUMNS: &str = "id, dedupe_key, r2_key, r2_url, provider, kind, mode, record_format,
    original_filename, file_name, state, renamed_in_feed, started_at, part_path";

/// What a feed record changed of a delivery ([`KnownDelivery::take`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not started yet: it took the record's name, R2 copy, provider and classification.
    Upgraded,
    /// Started: the record's name is kept in `renamed_in_feed`, the file keeps its own.
    Renamed,
}

impl KnownDelivery {
    /// A delivery seen for the first time, as [`NewDeliveries::insert`] stores it; its
    /// identity, links and names are moved out of `d` (what is left there: the source links
    /// and the creation time).
    pub fn take_from(d: &mut NewDelivery) -> Self {
        let text = |s: Option<String>| s.map(|s| if s.contains('\0') { storable(&s) } else { s });
        Self {
            id: 0,
            dedupe_key: std::mem::take(&mut d.dedupe_key),
            r2_key: d.r2_key.take(),
            r2_url: d.r2_url.take(),
            provider: std::mem::take(&mut d.provider),
            kind: d.kind,
            mode: d.mode,
            record_format: d.record_format,
            original_filename: text(d.original_filename.take()),
            file_name: text(d.file_name.take()),
            state: d.initial_state,
            renamed_in_feed: None,
            started_at: None,
            part_path: None,
        }
    }

    /// The download has not started (see [`DeliveryState::not_started`]).
    pub fn not_started(&self) -> bool {
        self.state
            .not_started(self.started_at.as_ref(), self.part_path.as_deref())
    }

    /// The upgrade rule: what a record `d` of this delivery changes of it, applied in place.
    /// Legacy records carry nothing better and change nothing. Not started yet: the delivery
    /// takes the record's file name, R2 copy, provider and classification (a manual delivery
    /// that gains an automatic link takes the record's state; another spelling of the stored R2
    /// copy keeps the stored one). Started: the file keeps its name, a different name of the
    /// record is kept in `renamed_in_feed`. Text is compared and kept as it would be stored.
    /// `before` receives the values as they were before the change, unless it holds some
    /// already (the values before the first of several records).
    pub fn take(
        &mut self,
        d: &NewDelivery,
        before: &mut Option<Box<KnownDelivery>>,
    ) -> Option<Change> {
        if d.record_format != RecordFormat::New {
            return None;
        }
        if self.not_started() {
            let state = if self.state == DeliveryState::Manual && d.mode == DeliveryMode::Automatic
            {
                d.initial_state
            } else {
                self.state
            };
            let original_filename = d.original_filename.as_deref().map(storable);
            let file_name = d.file_name.as_deref().map(storable);
            // Another spelling of the same R2 copy keeps the one already stored.
            let new_r2 = d.r2_key.is_some() && d.r2_key != self.r2_key;
            let differs = self.original_filename != original_filename
                || self.file_name != file_name
                || (new_r2 && self.r2_url != d.r2_url)
                || self.provider != d.provider
                || self.record_format != d.record_format
                || self.kind != d.kind
                || self.mode != d.mode
                || self.state != state;
            if !differs {
                return None;
            }
            before.get_or_insert_with(|| Box::new(self.clone()));
            if new_r2 {
                self.r2_url.clone_from(&d.r2_url);
                self.r2_key.clone_from(&d.r2_key);
            }
            self.original_filename = original_filename;
            self.file_name = file_name;
            self.provider.clone_from(&d.provider);
            self.record_format = d.record_format;
            self.kind = d.kind;
            self.mode = d.mode;
            self.state = state;
            return Some(Change::Upgraded);
        }
        let name = storable(d.file_name.as_ref().or(d.original_filename.as_ref())?);
        let same_name = self.file_name.as_ref() == Some(&name)
            || (self.file_name.is_none() && self.original_filename.as_ref() == Some(&name));
        if same_name || self.renamed_in_feed.as_ref() == Some(&name) {
            return None;
        }
        before.get_or_insert_with(|| Box::new(self.clone()));
        self.renamed_in_feed = Some(name);
        Some(Change::Renamed)
    }
}

impl From<&Delivery> for KnownDelivery {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            dedupe_key: d.dedupe_key.clone(),
            r2_key: d.r2_key.clone(),
            r2_url: d.r2_url.clone(),
            provider: d.provider.clone(),
            kind: d.kind,
            mode: d.mode,
            record_format: d.record_format,
            original_filename: d.original_filename.clone(),
            file_name: d.file_name.clone(),
            state: d.state,
            renamed_in_feed: d.renamed_in_feed.clone(),
            started_at: d.started_at,
            part_path: d.part_path.clone(),
        }
    }
}

/// Writes what [`KnownDelivery::take`] changed of delivery `id` (read in state `read_state`):
/// `after` is what it holds now. An upgrade applies only while the delivery is still in the
/// state read and not started (a worker may claim it meanwhile); returns whether the row was
/// written.
pub(super) async fn write_change<'e, E>(
    executor: E,
    id: i64,
    read_state: DeliveryState,
    after: &KnownDelivery,
    change: Change,
) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let written: Option<i64> = match change {
        Change::Upgraded => {
            sqlx::query_scalar(
                "UPDATE deliveries SET original_filename = $2, file_name = $3, r2_url = $4,
                     r2_key = $5, provider = $6, record_format = $7, kind = $8, mode = $9,
                     state = $10,
                     state_changed_at = CASE WHEN state = $10 THEN state_changed_at ELSE $11 END
                 WHERE id = $1 AND state = $12 AND started_at IS NULL AND part_path IS NULL
                 RETURNING id",
            )
            .bind(id)
            .bind(&after.original_filename)
            .bind(&after.file_name)
            .bind(&after.r2_url)
            .bind(&after.r2_key)
            .bind(&after.provider)
            .bind(after.record_format)
            .bind(after.kind)
            .bind(after.mode)
            .bind(after.state)
            .bind(Timestamp::now())
            .bind(read_state)
            .persistent(true)
            .fetch_optional(executor)
            .await?
        }
        Change::Renamed => {
            sqlx::query_scalar(
                "UPDATE deliveries SET renamed_in_feed = $2 WHERE id = $1 RETURNING id",
            )
            .bind(id)
            .bind(&after.renamed_in_feed)
            .persistent(true)
            .fetch_optional(executor)
            .await?
        }
    };
    Ok(written.is_some())
}

/// A change of a stored delivery for [`Store::write_changes`].
#[derive(Debug, Clone, Copy)]
pub struct ChangedDelivery<'a> {
    pub id: i64,
    /// Its state when it was read (an upgrade applies only while it still holds).
    pub read_state: DeliveryState,
    pub after: &'a KnownDelivery,
    pub change: Change,
}

/// What one [`NewDeliveries::insert`] transaction did.
#[derive(Debug)]
pub struct Inserted {
    /// The id of each row of the batch it took (the first ones, in order); `None` for a row
    /// whose dedupe key was stored meanwhile (the caller takes it through
    /// [`Store::upsert_delivery`]).
    pub ids: Vec<Option<i64>>,
}

/// A delivery seen for the first time for [`NewDeliveries::insert`]: its links and creation
/// time from its first record, the rest as every record of the feed left it.
#[derive(Debug, Clone, Copy)]
pub struct NewRow<'a> {
    pub dedupe_key: &'a str,
    pub source_url: &'a str,
    pub raw_source_url: &'a str,
    pub r2_url: Option<&'a str>,
    pub r2_key: Option<&'a str>,
    pub provider: &'a str,
    pub kind: LinkKind,
    pub mode: DeliveryMode,
    pub record_format: RecordFormat,
    pub original_filename: Option<&'a str>,
    pub file_name: Option<&'a str>,
    pub created_at: Timestamp,
    pub state: DeliveryState,
}

/// See [`Store::new_deliveries`].
pub struct NewDeliveries<'a> {
    store: &'a Store,
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    /// A large ingest on SQLite (own page cache, no checkpoint until [`NewDeliveries::finish`]).
    large: bool,
}

impl NewDeliveries<'_> {
    /// Ends the ingest: after a large one, copies the write-ahead log into the database here
    /// rather than in the next writer's commit.
    pub async fn finish(mut self) -> Result<(), StoreError> {
        if self.large {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *self.conn)
                .await?;
        }
        Ok(())
    }

    /// Inserts deliveries seen for the first time, in one transaction that ends once it has
    /// taken longer than `budget` (other writers wait for it meanwhile), at a statement's end:
    /// what it returns says how many of `batch` it took. Never duplicates, never resets a state.
    ///
    /// Few large transactions are what makes a first ingest fast: the dedupe key index is
    /// written in random order, so every commit rewrites most of its pages (100,000 deliveries
    /// in transactions of 2,000 took 4-5 s, in transactions of 20,000 2 s). How a statement
    /// takes its rows: [`insert_sqlite`], [`insert_postgres`].
    pub async fn insert(
        &mut self,
        batch: &[NewRow<'_>],
        budget: Duration,
    ) -> Result<Inserted, StoreError> {
        use sqlx::Connection as _;
        let now = Timestamp::now().text();
        let sqlite = self.store.backend() == super::Backend::Sqlite;
        let mut inserted = Inserted {
            ids: Vec::with_capacity(batch.len()),
        };
        let _turn = self.store.write_turn().await;
        let started = std::time::Instant::now();
        // IMMEDIATE: a deferred transaction would fail (not wait) if another connection wrote
        // between its first read and its first insert.
        let mut tx = if sqlite {
            self.conn.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.conn.begin().await?
        };
        // On SQLite, the largest id before the next statement (the rows it inserts are above).
        let mut largest: i64 = if sqlite {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM deliveries")
                .fetch_one(&mut *tx)
                .await?
        } else {
            0
        };
        let per_statement = if sqlite {
            ROWS_PER_SQLITE_STATEMENT
        } else {
            ROWS_PER_STATEMENT
        };
        for rows in batch.chunks(per_statement) {
            if !inserted.ids.is_empty() && started.elapsed() > budget {
                break;
            }
            let ids = if sqlite {
                insert_sqlite(&mut tx, rows, &now, &mut largest).await?
            } else {
                insert_postgres(&mut tx, rows, &now).await?
            };
            inserted.ids.extend(ids);
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

/// The columns [`NewDeliveries::insert`] writes: those of [`stored_texts`] and [`NewRow`]'s
/// other fields in the order bound, then `first_seen_at`, `last_seen_at`, `state_changed_at`.
const INSERT_COLUMNS: &str = "INSERT INTO deliveries (dedupe_key, source_url, raw_source_url,
    r2_url, r2_key, provider, kind, mode, record_format, original_filename, file_name,
    created_at, state, first_seen_at, last_seen_at, state_changed_at)";

/// SQLite's statement for `rows` rows (16 anonymous parameters each).
fn sqlite_insert(rows: usize) -> String {
    let mut sql = INSERT_COLUMNS.replacen("INSERT", "INSERT OR IGNORE", 1);
    sql.push_str(" VALUES ");
    Params::new(super::Backend::Sqlite).push_rows(&mut sql, rows, 16);
    sql
}

/// The statement for a full [`ROWS_PER_SQLITE_STATEMENT`] rows, made once.
static FULL_SQLITE_INSERT: LazyLock<String> =
    LazyLock::new(|| sqlite_insert(ROWS_PER_SQLITE_STATEMENT));

/// The texts of a row as both backends store them: dedupe key, source link, raw source link,
/// R2 link, R2 key, provider, original file name, planned file name.
fn stored_texts<'a>(d: &NewRow<'a>) -> [Option<Cow<'a, str>>; 8] {
    [
        Some(text(d.dedupe_key)),
        Some(text(d.source_url)),
        Some(text(d.raw_source_url)),
        d.r2_url.map(text),
        d.r2_key.map(text),
        Some(text(d.provider)),
        d.original_filename.map(text),
        d.file_name.map(text),
    ]
}

/// One SQLite statement of [`NewDeliveries::insert`]: the id of each of `rows` (`None` for a
/// row whose dedupe key was stored meanwhile); `largest` is the largest id before it, moved on.
///
/// The values are bound one by one (anonymous parameters: see [`Params`]), with `OR IGNORE`
/// rather than `ON CONFLICT (dedupe_key) DO NOTHING`: a statement that may fail half-way (one
/// that calls a function such as `->>`, or whose NOT NULL columns abort) makes SQLite keep a
/// statement journal, a copy of every page of the database it changes (16 MiB of a first
/// ingest's heap peak with JSON statements of 2,000 rows); binding was also faster than
/// SQLite's JSON functions (first ingest 1.29-1.46 s against 1.50-1.77 s, 7 runs each
/// alternated). Every value bound is present; a row left out is taken by the per-record path,
/// which says what is wrong with it.
async fn insert_sqlite(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
    now: &str,
    largest: &mut i64,
) -> Result<Vec<Option<i64>>, StoreError> {
    let full = rows.len() == ROWS_PER_SQLITE_STATEMENT;
    let partial;
    let sql = if full {
        &*FULL_SQLITE_INSERT
    } else {
        partial = sqlite_insert(rows.len());
        &partial
    };
    // Texts as stored, kept while the statement borrows them.
    let texts: Vec<_> = rows.iter().map(stored_texts).collect();
    let mut insert = sqlx::query(sql);
    for (d, t) in rows.iter().zip(&texts) {
        insert = insert
            .bind(t[0].as_deref())
            .bind(t[1].as_deref())
            .bind(t[2].as_deref())
            .bind(t[3].as_deref())
            .bind(t[4].as_deref())
            .bind(t[5].as_deref())
            .bind(d.kind)
            .bind(d.mode)
            .bind(d.record_format)
            .bind(t[6].as_deref())
            .bind(t[7].as_deref())
            .bind(d.created_at)
            .bind(d.state)
            .bind(now)
            .bind(now)
            .bind(now);
    }
    // Only the full statement is kept prepared: one of every other length would stay in the
    // connection's statement cache (a poll's new records vary).
    insert.persistent(full).execute(&mut *conn).await?;
    // This transaction is the only writer: when it inserted every row, they have the ids up to
    // `last`, one after the other in the order of `rows`.
    let (count, last): (i64, i64) = sqlx::query_as("SELECT changes(), last_insert_rowid()")
        .fetch_one(&mut *conn)
        .await?;
    let before = std::mem::replace(largest, last.max(*largest));
    if usize::try_from(count).ok() == Some(rows.len()) {
        return Ok((last - count + 1..=last).map(Some).collect());
    }
    // Some were stored meanwhile (and each of them used up an id all the same): the new rows
    // are read back once (as one JSON row: sqlx hands rows from its SQLite thread one by one).
    let json: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, dedupe_key)) FROM deliveries WHERE id > $1",
    )
    .bind(before)
    .fetch_one(&mut *conn)
    .await?;
    let stored: Vec<(i64, String)> = serde_json::from_str(json.as_deref().unwrap_or("[]"))?;
    Ok(ids_by_key(rows, &stored))
}

/// One PostgreSQL statement of [`NewDeliveries::insert`] (see [`insert_sqlite`]): the rows as
/// one JSON array bound as a single parameter and unpacked by the database.
async fn insert_postgres(
    conn: &mut sqlx::AnyConnection,
    rows: &[NewRow<'_>],
    now: &str,
) -> Result<Vec<Option<i64>>, StoreError> {
    let json = serde_json::to_string(
        &rows
            .iter()
            .map(|d| {
                let [
                    key,
                    source,
                    raw,
                    r2_url,
                    r2_key,
                    provider,
                    original,
                    file_name,
                ] = stored_texts(d);
                (
                    key,
                    source,
                    raw,
                    r2_url,
                    r2_key,
                    provider,
                    d.kind,
                    d.mode,
                    d.record_format,
                    original,
                    file_name,
                    d.created_at.text(),
                    d.state,
                )
            })
            .collect::<Vec<_>>(),
    )?;
    let stored = sqlx::query_as::<_, (i64, String)>(&format!(
        "{INSERT_COLUMNS} SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
             value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10,
             value ->> 11, value ->> 12, $2, $2, $2
         FROM jsonb_array_elements($1::jsonb) WHERE true
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
    ))
    .bind(json)
    .bind(now)
    .persistent(true)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids_by_key(rows, &stored))
}

/// The id of each of `rows` among the (id, dedupe key) pairs a statement `stored`.
fn ids_by_key(rows: &[NewRow<'_>], stored: &[(i64, String)]) -> Vec<Option<i64>> {
    let ids: std::collections::HashMap<&str, i64> =
        stored.iter().map(|(id, key)| (key.as_str(), *id)).collect();
    rows.iter()
        .map(|row| ids.get(text(row.dedupe_key).as_ref()).copied())
        .collect()
}

impl Store {
    /// Every stored delivery, with what a feed record could change of it (one query).
    pub async fn known_deliveries(&self) -> Result<Vec<KnownDelivery>, StoreError> {
        Ok(
            sqlx::query_as::<_, KnownDelivery>(&format!("SELECT {KNOWN_COLUMNS} FROM deliveries"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// The stored deliveries whose dedupe key or R2 key is one of `keys` (indexed lookups: the
    /// cost follows the number of keys, not of deliveries stored).
    pub async fn known_deliveries_matching(
        &self,
        keys: &[&str],
    ) -> Result<Vec<KnownDelivery>, StoreError> {
        let mut rows: Vec<KnownDelivery> = Vec::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let mut params = Params::new(self.backend());
            let mut sql = format!("SELECT {KNOWN_COLUMNS} FROM deliveries WHERE dedupe_key IN ");
            params.push_rows(&mut sql, 1, chunk.len());
            sql.push_str(" OR r2_key IN ");
            params.push_rows(&mut sql, 1, chunk.len());
            let mut select = sqlx::query_as::<_, KnownDelivery>(&sql);
            for key in chunk.iter().chain(chunk) {
                select = select.bind(*key);
            }
            rows.extend(select.fetch_all(self.pool()).await?);
        }
        rows.sort_unstable_by_key(|r: &KnownDelivery| r.id);
        rows.dedup_by_key(|r| r.id);
        Ok(rows)
    }

    /// A connection for inserting `rows` new deliveries in a row of transactions
    /// ([`NewDeliveries::insert`]). For many rows on SQLite its page cache is raised to 8 MiB
    /// for the time of the ingest and the connection is closed afterwards, not returned to the
    /// pool with that cache: with SQLite's default 2 MiB every transaction spilled and re-read
    /// pages of the randomly written dedupe key index (a first ingest of 100,000 deliveries
    /// took 4.5-5 s instead of 3 s on a loaded machine).
    pub async fn new_deliveries(&self, rows: usize) -> Result<NewDeliveries<'_>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut large = false;
        if self.backend() == super::Backend::Sqlite && rows >= LARGE_INGEST {
            conn.close_on_drop();
            sqlx::query(INGEST_CACHE).execute(&mut *conn).await?;
            // Checkpointed once at the end instead of after every transaction (pages of the
            // indexes written by several transactions are copied once).
            sqlx::query("PRAGMA wal_autocheckpoint = 0")
                .execute(&mut *conn)
                .await?;
            large = true;
        }
        Ok(NewDeliveries {
            store: self,
            conn,
            large,
        })
    }
    /// Refreshes `last_seen_at` of known deliveries seen again, in one transaction.
    pub async fn touch_deliveries(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut params = Params::new(self.backend());
            let mut sql = String::from("UPDATE deliveries SET last_seen_at = ");
            params.push(&mut sql);
            sql.push_str(" WHERE id IN ");
            params.push_rows(&mut sql, 1, chunk.len());
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

/// Text as both backends store it (PostgreSQL cannot hold U+0000: see [`storable`]).
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(storable(s))
    } else {
        Cow::Borrowed(s)
    }
}

/// Changes per transaction.
const CHANGES_PER_TRANSACTION: usize = 500;

impl Store {
    /// Writes the changes a poll made to stored deliveries (transactions of a few hundred).
    /// Returns, for each, whether it was written (an upgrade of a delivery a worker started
    /// meanwhile is not).
    pub async fn write_changes(
        &self,
        changes: &[ChangedDelivery<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let mut written = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(CHANGES_PER_TRANSACTION) {
            let _turn = self.write_turn().await;
            let mut tx = self.begin_write().await?;
            for c in chunk {
                written.push(write_change(&mut *tx, c.id, c.read_state, c.after, c.change).await?);
            }
            tx.commit().await?;
        }
        Ok(written)
    }
}
