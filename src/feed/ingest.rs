//! Taking a fetched feed into the store without a store round trip per known record.
//!
//! - The body is read by [`scan_body`] (borrowed records, worker threads); only records that
//!   need the store become owned rows ([`NewDelivery`]).
//! - An unchanged body (same SHA-256 as the last one fully taken in) is not even parsed.
//! - A record identical to one fully applied by an earlier poll of this process (same 128-bit
//!   fingerprint of format, links, provider, file name: [`Memo`]) needs nothing: it is skipped
//!   (its `last_seen_at` is not refreshed). So a poll costs the parse plus the records that are
//!   new or changed, whatever the number of deliveries stored. (Two records of one delivery with
//!   different names are both applied once, last wins, instead of rewriting the name twice at
//!   every poll; an upgrade that lost the race to a download starting at that moment records
//!   the feed's name in `renamed_in_feed` only after a restart or a lease takeover.)
//! - For the others, what the store holds is read once: every delivery at the first poll of a
//!   process ([`Store::known_deliveries`]), afterwards only the rows matching their keys
//!   ([`Store::known_deliveries_matching`]). Each record is then matched to its delivery the
//!   way [`Store::upsert_delivery`] does (same source key, else the oldest delivery holding one
//!   of the record's keys as its source or R2 key; new deliveries of this feed included) and
//!   the upgrade rule ([`KnownDelivery::take`]) is applied **in memory**, in feed order. Then:
//!   - new deliveries are inserted in large transactions ([`BATCH`] rows, [`BATCH_TIME`]);
//!   - stored deliveries the records changed get one UPDATE each (a delivery changed back to
//!     what it held gets none); an upgrade is written only while the delivery is still in the
//!     state read and not started, else its records go through [`Store::upsert_delivery`];
//!   - stored deliveries seen again get their `last_seen_at` refreshed in bulk.
//!
//!   The outcome is the record-by-record path's (property-tested in `tests/it/feed_scale.rs`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use super::error::FeedError;
use super::packed::Packed;
use super::record::FeedRecord;
use super::scan::{Scan, scan_body};
use super::stream::StreamScan;
use crate::domain::{DeliveryState, Timestamp};
use crate::events::{Event, EventBus};
use crate::store::{Change, ChangedDelivery, KnownDelivery, NewRow, Store, StoreError};

/// A record's fingerprint: what decides how it changes the store (128 bits, keyed per process).
type Fingerprint = u128;

/// What the poller remembers between polls (in memory: a restart starts afresh).
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// SHA-256 of the last body fully taken in.
    last_body: Option<[u8; 32]>,
    /// Fingerprints of the records of that body, each applied to the store.
    applied: Arc<HashSet<Fingerprint>>,
    /// Whether a poll of this process fully took a body in (the store was read whole once).
    warm: bool,
    /// Valid records and invalid items of that body.
    counts: (usize, usize),
    /// The first invalid items of that body and why (shown on the dashboard).
    invalid_items: InvalidItems,
    keys: Keys,
}

/// The keys of the fingerprint hash, drawn once per process.
#[derive(Debug, Default, Clone)]
struct Keys(RandomState, RandomState);

impl Keys {
    fn fingerprint(&self, record: &FeedRecord<'_>) -> Fingerprint {
        let hash = |state: &RandomState| {
            let mut h = state.build_hasher();
            (record.format as u8).hash(&mut h);
            record.raw_source_url.hash(&mut h);
            record.r2_url.hash(&mut h);
            record.provider.hash(&mut h);
            record.original_filename.hash(&mut h);
            h.finish()
        };
        (u128::from(hash(&self.0)) << 64) | u128::from(hash(&self.1))
    }
}

/// The first [`SHOWN_INVALID`] invalid items of a body: index in the array, and why.
pub type InvalidItems = Arc<Vec<(usize, String)>>;

/// Invalid items whose reason is kept for the dashboard (all are counted).
pub const SHOWN_INVALID: usize = 20;

/// A fetched body, read.
#[derive(Debug)]
pub(super) struct ReadFeed {
    pub valid: usize,
    pub invalid: usize,
    pub invalid_items: InvalidItems,
    sha256: [u8; 32],
    /// `None`: the body is the last one fully taken in.
    records: Option<Vec<Seen>>,
}

/// A valid record of the body.
#[derive(Debug)]
pub(super) enum Seen {
    /// Applied by an earlier poll: nothing to do.
    Applied(Fingerprint),
    /// To be taken in.
    Pending(Fingerprint, Packed),
}

impl Memo {
    /// Whether the next body can be compared with the last one fully taken in (its SHA-256 is
    /// known): such a poll collects the body and hashes it before reading it ([`Self::reader`]);
    /// the others read it while it arrives ([`Self::streamed`]).
    pub(super) fn knows_a_body(&self) -> bool {
        self.last_body.is_some()
    }

    /// What a valid record of this poll's body becomes.
    fn seen(
        &self,
        max_age: Option<Duration>,
        now: Timestamp,
    ) -> impl Fn(FeedRecord<'_>) -> Option<Seen> + Send + Sync + 'static + use<> {
        let applied = Arc::clone(&self.applied);
        let keys = self.keys.clone();
        move |record| {
            let fingerprint = keys.fingerprint(&record);
            Some(if applied.contains(&fingerprint) {
                Seen::Applied(fingerprint)
            } else {
                Seen::Pending(fingerprint, Packed::new(&record, max_age, now)?)
            })
        }
    }

    /// What reads a fetched body for this poll, collected whole (see the module doc).
    pub(super) fn reader(
        &self,
        tz: chrono_tz::Tz,
        max_age: Option<Duration>,
        now: Timestamp,
    ) -> impl Fn(&[u8]) -> Result<ReadFeed, FeedError> + use<> {
        let last_body = self.last_body;
        let counts = self.counts;
        let invalid_items = Arc::clone(&self.invalid_items);
        let seen = self.seen(max_age, now);
        move |body: &[u8]| {
            let sha256: [u8; 32] = sha2::Sha256::digest(body).into();
            if last_body == Some(sha256) {
                return Ok(ReadFeed {
                    valid: counts.0,
                    invalid: counts.1,
                    invalid_items: Arc::clone(&invalid_items),
                    sha256,
                    records: None,
                });
            }
            let scan = scan_body(body, tz, &seen)?;
            Ok(ReadFeed::of(scan, sha256))
        }
    }

    /// What reads a body while it arrives (one reader per attempt), for a poll with no body to
    /// compare it with: the body is never held whole and its records are read meanwhile.
    pub(super) fn streamed(
        &self,
        tz: chrono_tz::Tz,
        max_age: Option<Duration>,
        now: Timestamp,
    ) -> impl Fn() -> StreamScan<Seen> + use<> {
        let seen = Arc::new(self.seen(max_age, now));
        move || {
            let seen = Arc::clone(&seen);
            StreamScan::new(tz, move |record| seen(record)).with_sha256()
        }
    }
}

impl ReadFeed {
    /// The records of a body read, with its SHA-256.
    fn of(scan: Scan<Seen>, sha256: [u8; 32]) -> Self {
        let shown = scan
            .invalid
            .iter()
            .take(SHOWN_INVALID)
            .map(|(index, reason)| (*index, super::error::cap_text(&reason.to_string(), 300)))
            .collect();
        ReadFeed {
            valid: scan.valid,
            invalid: scan.invalid.len(),
            invalid_items: Arc::new(shown),
            sha256,
            records: Some(scan.kept),
        }
    }

    /// A body read while it arrived ([`Memo::streamed`], which hashes it).
    pub(super) fn streamed(scan: Scan<Seen>) -> Self {
        let sha256 = scan.sha256.unwrap_or_default();
        Self::of(scan, sha256)
    }
}

/// At most this many new deliveries per transaction ...
pub const BATCH: usize = 20_000;

/// ... and a transaction ends after this long (other writers wait for it meanwhile).
const BATCH_TIME: Duration = Duration::from_millis(250);

/// No record (end of a row's list).
const NONE: u32 = u32::MAX;

/// A delivery the poll's records belong to: stored, or new in this feed.
struct Row {
    /// What it holds after the records applied so far (the upgrade rule, in memory); `None`:
    /// a new row as its first record made it (read from that record: most new rows are never
    /// changed by another record, and hold no copy of it).
    now: Option<Box<KnownDelivery>>,
    /// Its state as read (a stored row's upgrade is written only while it still holds).
    read_state: DeliveryState,
    /// What the records changed of a stored row (the last change: a row does not start
    /// in memory, so all its changes are of one kind).
    change: Option<Change>,
    /// What it held before a record changed it (as read, or as its first record made it).
    before: Option<Box<KnownDelivery>>,
    /// A new row: its first record (links, creation time). [`NONE`]: stored.
    first: u32,
    /// Its records in feed order (the first; `next` links the others), replayed one by one
    /// through [`Store::upsert_delivery`] when a batched write finds the store moved on.
    head: u32,
    tail: u32,
}

impl Row {
    fn is_new(&self) -> bool {
        self.first != NONE
    }
}

/// Dedupe key -> row, without a copy of every key (100,000 of them held ~11 MiB): the map
/// holds a 64-bit hash of the key, and the row's own dedupe key (never changed by a record)
/// confirms the match. A key whose hash another key took first is kept whole in `collided`.
#[derive(Default)]
struct KeyIndex {
    state: RandomState,
    by_hash: HashMap<u64, u32>,
    collided: HashMap<String, u32>,
}

impl KeyIndex {
    fn with_capacity(rows: usize) -> Self {
        Self {
            by_hash: HashMap::with_capacity(rows),
            ..Self::default()
        }
    }

    fn get(&self, rows: &Rows<'_>, key: &str) -> Option<u32> {
        match self.by_hash.get(&self.state.hash_one(key)) {
            Some(&i) if rows.dedupe_key(i) == key => Some(i),
            Some(_) => self.collided.get(key).copied(),
            None => None,
        }
    }

    /// Indexes row `i` of `rows` by its dedupe key `key`.
    fn insert(&mut self, rows: &Rows<'_>, i: u32, key: &str) {
        use std::collections::hash_map::Entry;
        match self.by_hash.entry(self.state.hash_one(key)) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(mut slot) if rows.dedupe_key(*slot.get()) == key => {
                slot.insert(i);
            }
            Entry::Occupied(_) => {
                self.collided.insert(key.to_string(), i);
            }
        }
    }
}

/// The rows and the indexes the record-to-delivery matching needs (the same match as
/// [`Store::upsert_delivery`]'s: same source key first, else the oldest delivery with either
/// of the record's keys as its source or R2 key).
struct Rows<'r> {
    /// The poll's records, in feed order.
    records: &'r [Packed],
    rows: Vec<Row>,
    by_dedupe: KeyIndex,
    /// R2 key -> the rows holding it (a few at most).
    by_r2: HashMap<String, Vec<u32>>,
    /// Per record: the next record of the same row.
    next: Vec<u32>,
}

impl<'r> Rows<'r> {
    fn with_capacity(records: &'r [Packed], rows: usize) -> Self {
        Self {
            records,
            rows: Vec::with_capacity(rows),
            by_dedupe: KeyIndex::with_capacity(rows),
            by_r2: HashMap::new(),
            next: Vec::with_capacity(records.len()),
        }
    }

    fn dedupe_key(&self, i: u32) -> &str {
        let row = &self.rows[i as usize];
        match &row.now {
            Some(now) => &now.dedupe_key,
            None => self.records[row.first as usize].dedupe_key(),
        }
    }

    fn r2_key(&self, i: u32) -> Option<&str> {
        let row = &self.rows[i as usize];
        match &row.now {
            Some(now) => now.r2_key.as_deref(),
            None => self.records[row.first as usize].r2_key(),
        }
    }

    /// Rows are created oldest first: stored ones in id order, then new ones in feed order
    /// (they will get larger ids).
    fn older(&self, a: u32, b: u32) -> bool {
        let key = |i: u32| {
            let row = &self.rows[i as usize];
            (row.is_new(), row.now.as_ref().map_or(0, |now| now.id), i)
        };
        key(a) < key(b)
    }

    fn push(&mut self, now: Option<KnownDelivery>, first: u32) -> u32 {
        let i = u32::try_from(self.rows.len()).unwrap_or(NONE);
        let read_state = match &now {
            Some(now) => now.state,
            None => self.records[first as usize].initial_state(),
        };
        self.rows.push(Row {
            now: now.map(Box::new),
            read_state,
            change: None,
            before: None,
            first,
            head: first,
            tail: first,
        });
        if let Some(r2) = self.r2_key(i) {
            self.by_r2.entry(r2.to_string()).or_default().push(i);
        }
        // The index reads the rows' keys while it changes: out of `self` meanwhile.
        let mut index = std::mem::take(&mut self.by_dedupe);
        index.insert(self, i, self.dedupe_key(i));
        self.by_dedupe = index;
        i
    }

    /// The row whose dedupe key is `key`.
    fn by_key(&self, key: &str) -> Option<u32> {
        self.by_dedupe.get(self, key)
    }

    fn find(&self, d: &Packed) -> Option<u32> {
        if let Some(i) = self.by_key(d.dedupe_key()) {
            return Some(i);
        }
        let mut best: Option<u32> = None;
        let mut consider = |i: u32| {
            if best.is_none_or(|b| self.older(i, b)) {
                best = Some(i);
            }
        };
        if let Some(r2) = d.r2_key() {
            if let Some(i) = self.by_key(r2) {
                consider(i);
            }
            self.by_r2
                .get(r2)
                .into_iter()
                .flatten()
                .for_each(|&i| consider(i));
        }
        self.by_r2
            .get(d.dedupe_key())
            .into_iter()
            .flatten()
            .for_each(|&i| consider(i));
        best
    }

    /// Applies record `r` in memory: to its delivery, or as a new one.
    fn apply(&mut self, r: u32) {
        self.next.push(NONE);
        let record = &self.records[r as usize];
        let Some(i) = self.find(record) else {
            self.push(None, r);
            return;
        };
        let d = record.unpack();
        let records = self.records;
        let row = &mut self.rows[i as usize];
        let first = row.first as usize;
        let now = row
            .now
            .get_or_insert_with(|| Box::new(records[first].known()));
        if row.tail == NONE {
            row.head = r;
        } else {
            self.next[row.tail as usize] = r;
        }
        row.tail = r;
        // Only a record with an R2 copy can move the row to another R2 key.
        let r2_before = d.r2_key.as_ref().and(now.r2_key.clone());
        let Some(change) = now.take(&d, &mut row.before) else {
            return;
        };
        row.change = Some(change);
        if d.r2_key.is_some()
            && now.r2_key != r2_before
            && let Some(r2) = now.r2_key.clone()
        {
            if let Some(old) = r2_before.and_then(|k| self.by_r2.get_mut(&k)) {
                old.retain(|&j| j != i);
            }
            self.by_r2.entry(r2).or_default().push(i);
        }
    }

    /// The records of row `i`, in feed order.
    fn records_of(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut r = self.rows[i].head;
        while r != NONE {
            out.push(r as usize);
            r = self.next[r as usize];
        }
        out
    }
}

/// One poll's writes, and what they announce.
struct Writes<'a> {
    store: &'a Store,
    events: &'a EventBus,
    new: usize,
}

impl Writes<'_> {
    /// Row `i`'s records one at a time, as the per-record path takes them (the batched write
    /// found the store changed by someone else in between).
    async fn replay(&mut self, rows: &Rows<'_>, i: usize) -> Result<(), StoreError> {
        for r in rows.records_of(i) {
            let outcome = self
                .store
                .upsert_delivery(&rows.records[r].unpack())
                .await?;
            if outcome.inserted {
                self.new += 1;
            }
            if outcome.inserted || outcome.updated {
                self.events.send(Event::DeliveryChanged {
                    id: crate::domain::DeliveryId(outcome.id),
                });
            }
        }
        Ok(())
    }

    /// New deliveries, in feed order, in transactions of at most [`BATCH`] rows and about
    /// [`BATCH_TIME`], one event per transaction (a first ingest adds tens of thousands of rows:
    /// one event each would overflow the bus).
    async fn insert(&mut self, rows: &Rows<'_>) -> Result<(), StoreError> {
        let count = rows.rows.iter().filter(|row| row.is_new()).count();
        if count == 0 {
            return Ok(());
        }
        // Made a batch at a time (all of them at once took 19 MB of a first ingest's peak).
        let mut new = rows
            .rows
            .iter()
            .filter(|row| row.is_new())
            .map(|row| rows.records[row.first as usize].row(row.now.as_deref()));
        let mut writer = self.store.new_deliveries(count).await?;
        let mut batch: Vec<NewRow<'_>> = Vec::with_capacity(count.min(BATCH));
        loop {
            batch.extend(new.by_ref().take(BATCH - batch.len()));
            if batch.is_empty() {
                break;
            }
            let inserted = writer.insert(&batch, BATCH_TIME).await?;
            let taken = &batch[..inserted.ids.len().clamp(1, batch.len())];
            let mut added = Vec::with_capacity(taken.len());
            let mut missed = Vec::new();
            for (k, row) in taken.iter().enumerate() {
                match inserted.ids.get(k).copied().flatten() {
                    Some(id) => added.push(crate::domain::DeliveryId(id)),
                    // Stored by someone else in between: the per-record path decides.
                    None => missed.push(row.dedupe_key),
                }
            }
            self.new += added.len();
            if !added.is_empty() {
                self.events.send(Event::DeliveriesAdded { ids: added });
            }
            let taken = taken.len();
            for key in missed {
                if let Some(i) = rows.by_key(key) {
                    self.replay(rows, i as usize).await?;
                }
            }
            batch.drain(..taken);
            // Let requests and other writers in between transactions.
            tokio::task::yield_now().await;
        }
        writer.finish().await?;
        Ok(())
    }

    /// Stored deliveries the records changed.
    async fn update(&mut self, rows: &Rows<'_>) -> Result<(), StoreError> {
        let changed: Vec<(usize, ChangedDelivery<'_>)> = rows
            .rows
            .iter()
            .enumerate()
            .filter(|(_, row)| !row.is_new())
            .filter_map(|(i, row)| {
                let now = row.now.as_deref()?;
                // Records that changed it and others that changed it back: nothing to write.
                (row.before.as_deref() != Some(now)).then_some((
                    i,
                    ChangedDelivery {
                        id: now.id,
                        read_state: row.read_state,
                        after: now,
                        change: row.change?,
                    },
                ))
            })
            .collect();
        let changes: Vec<ChangedDelivery<'_>> = changed.iter().map(|(_, c)| *c).collect();
        let written = self.store.write_changes(&changes).await?;
        for ((i, c), ok) in changed.iter().zip(written) {
            if ok {
                self.events.send(Event::DeliveryChanged {
                    id: crate::domain::DeliveryId(c.id),
                });
            } else {
                // A worker started it meanwhile: the per-record path decides.
                self.replay(rows, *i).await?;
            }
        }
        Ok(())
    }
}

/// Takes a read feed into the store; returns how many deliveries are new. The memo is updated
/// only once everything is written (a failed poll is retried whole).
pub(super) async fn ingest(
    store: &Store,
    events: &EventBus,
    memo: &mut Memo,
    feed: ReadFeed,
) -> Result<usize, StoreError> {
    let Some(seen) = feed.records else {
        return Ok(0);
    };
    memo.last_body = None;
    let mut next: HashSet<Fingerprint> = HashSet::with_capacity(seen.len());
    let pending = seen
        .iter()
        .filter(|s| matches!(s, Seen::Pending(..)))
        .count();
    // Sized once (100,000 records grown by doubling held up to 1.5 times their size).
    let mut records: Vec<Packed> = Vec::with_capacity(pending);
    for seen in seen {
        match seen {
            Seen::Applied(fingerprint) => {
                next.insert(fingerprint);
            }
            Seen::Pending(fingerprint, d) => {
                next.insert(fingerprint);
                records.push(d);
            }
        }
    }
    let started = std::time::Instant::now();
    let stored = if memo.warm {
        let keys: Vec<&str> = records
            .iter()
            .flat_map(|d| std::iter::once(d.dedupe_key()).chain(d.r2_key()))
            .collect();
        store.known_deliveries_matching(&keys).await?
    } else {
        store.known_deliveries().await?
    };
    // At most one row per stored delivery and per record: sized once, not grown by doubling.
    let mut rows = Rows::with_capacity(&records, stored.len() + records.len());
    let mut stored = stored;
    stored.sort_unstable_by_key(|row| row.id);
    for row in stored {
        rows.push(Some(row), NONE);
    }
    let known = rows.rows.len();
    let loaded = started.elapsed();
    for r in 0..records.len() {
        rows.apply(u32::try_from(r).unwrap_or(NONE));
    }
    let applied = started.elapsed();
    let mut writes = Writes {
        store,
        events,
        new: 0,
    };
    writes.insert(&rows).await?;
    let inserted = started.elapsed();
    writes.update(&rows).await?;
    // Stored deliveries seen again: `last_seen_at`.
    let seen: Vec<i64> = rows.rows[..known]
        .iter()
        .filter(|row| row.head != NONE)
        .filter_map(|row| row.now.as_ref().map(|now| now.id))
        .collect();
    store.touch_deliveries(&seen).await?;
    tracing::debug!(
        records = records.len(),
        stored = known,
        new = writes.new,
        read_store_ms = loaded.as_millis(),
        applied_ms = applied.as_millis(),
        inserted_ms = inserted.as_millis(),
        total_ms = started.elapsed().as_millis(),
        "feed records taken in"
    );
    memo.applied = Arc::new(next);
    memo.counts = (feed.valid, feed.invalid);
    memo.invalid_items = Arc::clone(&feed.invalid_items);
    memo.last_body = Some(feed.sha256);
    memo.warm = true;
    Ok(writes.new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key whose hash slot another key took first is still found, and so is that other key.
    #[test]
    fn keys_sharing_a_hash_slot_find_their_own_rows() {
        let body = br#"[{"url": "https://fromsmash.com/a", "timestamp": "2025-10-17 10:00:00"},
            {"url": "https://fromsmash.com/b", "timestamp": "2025-10-17 10:00:00"}]"#;
        let feed = super::super::source::parse_body(body, chrono_tz::UTC).unwrap_or_default();
        let records: Vec<Packed> = feed
            .records
            .iter()
            .filter_map(|r| Packed::new(r, None, Timestamp::now()))
            .collect();
        assert_eq!(records.len(), 2);
        let (key_a, key_b) = (records[0].dedupe_key(), records[1].dedupe_key());
        let mut rows = Rows::with_capacity(&records, 2);
        rows.push(None, 0);
        // As if `b` hashed to `a`'s slot.
        let slot = rows.by_dedupe.state.hash_one(key_b);
        rows.by_dedupe.by_hash.insert(slot, 0);
        rows.push(None, 1);
        assert_eq!(rows.by_dedupe.collided.len(), 1);
        assert_eq!(rows.by_key(key_a), Some(0));
        assert_eq!(rows.by_key(key_b), Some(1));
        assert_eq!(rows.by_key("https://fromsmash.com/c"), None);
    }
}
