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
//!   ([`Store::known_deliveries_matching`]); each record is then sorted in order of the feed:
//!   - neither of its keys (source, R2) is known: a new delivery, inserted with others in
//!     transactions of [`BATCH`] rows (multi-row inserts);
//!   - known, and the record cannot change anything (a legacy record, or a new-format record
//!     equal to what the delivery already holds): only its `last_seen_at` is refreshed, in bulk;
//!   - known, and it may change something: [`Store::upsert_delivery`], exactly as one record at
//!     a time (upgrade before the download starts, `renamed_in_feed` after, R2-key matching).
//!     Pending inserts are written first, so records are applied in feed order.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use super::new_delivery;
use super::record::FeedRecord;
use super::scan::scan_body;
use super::source::FeedError;
use crate::domain::{DeliveryMode, DeliveryState, RecordFormat, Timestamp};
use crate::events::{Event, EventBus};
use crate::store::{KnownDelivery, NewDelivery, Store, StoreError};

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

/// A fetched body, read.
#[derive(Debug)]
pub(super) struct ReadFeed {
    pub valid: usize,
    pub invalid: usize,
    sha256: [u8; 32],
    /// `None`: the body is the last one fully taken in.
    records: Option<Vec<Seen>>,
}

/// A valid record of the body.
#[derive(Debug)]
enum Seen {
    /// Applied by an earlier poll: nothing to do.
    Applied(Fingerprint),
    /// To be taken in.
    Pending(Fingerprint, Box<NewDelivery>),
}

impl Memo {
    /// What reads a fetched body for this poll (see the module doc).
    pub(super) fn reader(
        &self,
        tz: chrono_tz::Tz,
        max_age: Option<Duration>,
        now: Timestamp,
    ) -> impl Fn(&[u8]) -> Result<ReadFeed, FeedError> + use<> {
        let last_body = self.last_body;
        let applied = Arc::clone(&self.applied);
        let keys = self.keys.clone();
        let counts = self.counts;
        move |body: &[u8]| {
            let sha256: [u8; 32] = sha2::Sha256::digest(body).into();
            if last_body == Some(sha256) {
                return Ok(ReadFeed {
                    valid: counts.0,
                    invalid: counts.1,
                    sha256,
                    records: None,
                });
            }
            let scan = scan_body(body, tz, |record| {
                let fingerprint = keys.fingerprint(&record);
                Some(if applied.contains(&fingerprint) {
                    Seen::Applied(fingerprint)
                } else {
                    Seen::Pending(fingerprint, Box::new(new_delivery(&record, max_age, now)))
                })
            })?;
            Ok(ReadFeed {
                valid: scan.valid,
                invalid: scan.invalid.len(),
                sha256,
                records: Some(scan.kept),
            })
        }
    }
}

/// Rows per transaction.
pub const BATCH: usize = 2000;

/// A new-format record `d` brings nothing `known` does not hold (what
/// [`Store::upsert_delivery`] would find equal, started or not).
fn holds(known: &KnownDelivery, d: &NewDelivery) -> bool {
    d.record_format == RecordFormat::New
        && known.record_format == RecordFormat::New
        && known.dedupe_key == d.dedupe_key
        // A manual delivery with an automatic classification would take a new state.
        && !(known.state == DeliveryState::Manual && d.mode == DeliveryMode::Automatic)
        // No R2 copy, or another spelling of the stored one: the stored one is kept.
        && (d.r2_key.is_none() || known.r2_key == d.r2_key)
        && known.original_filename == d.original_filename
        && known.file_name == d.file_name
        && known.provider == d.provider
        && known.kind == d.kind
        && known.mode == d.mode
}

/// What the store holds, as the poll goes.
#[derive(Default)]
struct Known {
    /// Dedupe key -> the stored delivery with that key.
    by_key: HashMap<String, KnownDelivery>,
    /// Every dedupe key and R2 key stored (a record matching any of them is not new).
    keys: HashSet<String>,
}

impl Known {
    fn add(&mut self, row: KnownDelivery) {
        self.keys.insert(row.dedupe_key.clone());
        if let Some(r2) = &row.r2_key {
            self.keys.insert(r2.clone());
        }
        self.by_key.insert(row.dedupe_key.clone(), row);
    }

    fn matches(&self, d: &NewDelivery) -> bool {
        self.keys.contains(&d.dedupe_key)
            || d.r2_key.as_ref().is_some_and(|k| self.keys.contains(k))
    }
}

fn known_from(d: &NewDelivery, id: i64) -> KnownDelivery {
    KnownDelivery {
        id,
        dedupe_key: d.dedupe_key.clone(),
        r2_key: d.r2_key.clone(),
        r2_url: d.r2_url.clone(),
        provider: d.provider.clone(),
        kind: d.kind,
        mode: d.mode,
        record_format: d.record_format,
        original_filename: d.original_filename.clone(),
        file_name: d.file_name.clone(),
        state: d.initial_state,
    }
}

/// One poll's writes.
struct Ingest<'a> {
    store: &'a Store,
    events: &'a EventBus,
    known: Known,
    /// New deliveries not written yet, and their keys.
    pending: Vec<NewDelivery>,
    pending_keys: Known,
    /// Known deliveries seen again, to refresh.
    seen: Vec<i64>,
    new: usize,
    /// Fingerprints of the records fully applied (written, or found to change nothing).
    settled: Vec<Fingerprint>,
    /// Fingerprints of the pending inserts.
    pending_fingerprints: Vec<Fingerprint>,
    /// Ids of the deliveries inserted by the batch being written (one event per batch).
    added: Vec<i64>,
}

impl Ingest<'_> {
    async fn take(&mut self, fingerprint: Fingerprint, d: NewDelivery) -> Result<(), StoreError> {
        let settled = self.settle(fingerprint, d).await?;
        if settled {
            self.settled.push(fingerprint);
        }
        Ok(())
    }

    /// Takes one record; whether it is fully applied once the pending inserts are written.
    async fn settle(
        &mut self,
        fingerprint: Fingerprint,
        d: NewDelivery,
    ) -> Result<bool, StoreError> {
        if self.pending_keys.matches(&d) {
            // Same delivery as a record earlier in this feed, not written yet.
            let same = self
                .pending_keys
                .by_key
                .get(&d.dedupe_key)
                .is_some_and(|p| holds(p, &d));
            if d.record_format == RecordFormat::Legacy || same {
                return Ok(true);
            }
            self.flush().await?;
            return self.upsert(&d).await.map(|()| true);
        }
        if self.known.matches(&d) {
            if d.record_format == RecordFormat::Legacy {
                // Finds its delivery and changes nothing but `last_seen_at`.
                if let Some(row) = self.known.by_key.get(&d.dedupe_key) {
                    self.seen.push(row.id);
                    return Ok(true);
                }
                return self.upsert(&d).await.map(|()| true);
            }
            if let Some(row) = self.known.by_key.get(&d.dedupe_key)
                && holds(row, &d)
            {
                self.seen.push(row.id);
                return Ok(true);
            }
            return self.upsert(&d).await.map(|()| true);
        }
        let row = known_from(&d, 0);
        self.pending_keys.add(row);
        self.pending.push(d);
        self.pending_fingerprints.push(fingerprint);
        if self.pending.len() >= BATCH {
            self.flush().await?;
        }
        // Settled (or not) when its batch is written.
        Ok(false)
    }

    /// One record as main's per-record path takes it.
    async fn upsert(&mut self, d: &NewDelivery) -> Result<(), StoreError> {
        let outcome = self.store.upsert_delivery(d).await?;
        if outcome.inserted {
            self.new += 1;
        }
        if outcome.inserted || outcome.updated {
            self.events.send(Event::DeliveryChanged { id: outcome.id });
        }
        // Its keys are known now; what the row holds is not (later records go this way too).
        self.known.keys.insert(d.dedupe_key.clone());
        if let Some(r2) = &d.r2_key {
            self.known.keys.insert(r2.clone());
        }
        if outcome.inserted || outcome.updated {
            self.known.by_key.remove(&d.dedupe_key);
        }
        Ok(())
    }

    /// Writes the pending new deliveries in one transaction.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let fingerprints = std::mem::take(&mut self.pending_fingerprints);
        self.pending_keys = Known::default();
        let inserted = self.store.insert_new_deliveries(&batch).await?;
        let ids: HashMap<String, i64> = inserted.into_iter().map(|(id, k)| (k, id)).collect();
        for (d, fingerprint) in batch.into_iter().zip(fingerprints) {
            match ids.get(&d.dedupe_key) {
                Some(&id) => {
                    self.new += 1;
                    self.added.push(id);
                    self.settled.push(fingerprint);
                    self.known.add(known_from(&d, id));
                }
                // Stored by someone else in between: the per-record path decides.
                None => {
                    self.upsert(&d).await?;
                    self.settled.push(fingerprint);
                }
            }
        }
        // One event for the whole batch (a first ingest adds tens of thousands of rows: one
        // event each would overflow the bus and every listener with it).
        if !self.added.is_empty() {
            self.events.send(Event::DeliveriesAdded {
                ids: std::mem::take(&mut self.added),
            });
        }
        // Let requests and other writers in between batches.
        tokio::task::yield_now().await;
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
    let Some(records) = feed.records else {
        return Ok(0);
    };
    memo.last_body = None;
    let mut next: HashSet<Fingerprint> = HashSet::with_capacity(records.len());
    let mut pending: Vec<(Fingerprint, NewDelivery)> = Vec::new();
    for seen in records {
        match seen {
            Seen::Applied(fingerprint) => {
                next.insert(fingerprint);
            }
            Seen::Pending(fingerprint, d) => pending.push((fingerprint, *d)),
        }
    }
    let rows = if memo.warm {
        let keys: Vec<&str> = pending
            .iter()
            .flat_map(|(_, d)| std::iter::once(d.dedupe_key.as_str()).chain(d.r2_key.as_deref()))
            .collect();
        store.known_deliveries_matching(&keys).await?
    } else {
        store.known_deliveries().await?
    };
    let mut known = Known::default();
    for row in rows {
        known.add(row);
    }
    let mut run = Ingest {
        store,
        events,
        known,
        pending: Vec::new(),
        pending_keys: Known::default(),
        seen: Vec::new(),
        new: 0,
        settled: Vec::new(),
        pending_fingerprints: Vec::new(),
        added: Vec::new(),
    };
    for (fingerprint, d) in pending {
        run.take(fingerprint, d).await?;
    }
    run.flush().await?;
    run.seen.sort_unstable();
    run.seen.dedup();
    store.touch_deliveries(&run.seen).await?;
    next.extend(run.settled);
    memo.applied = Arc::new(next);
    memo.counts = (feed.valid, feed.invalid);
    memo.last_body = Some(feed.sha256);
    memo.warm = true;
    Ok(run.new)
}
