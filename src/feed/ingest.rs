//! Taking a parsed feed into the store without a store round trip per known record.
//!
//! - An unchanged body (same SHA-256 as the last one fully taken in) does no store work.
//! - Otherwise what the store holds is read once ([`Store::known_deliveries`]), and each record
//!   is sorted in order of the feed:
//!   - neither of its keys (source, R2) is known: a new delivery, inserted with others in
//!     transactions of [`BATCH`] rows (multi-row inserts);
//!   - known, and the record cannot change anything (a legacy record, or a new-format record
//!     equal to what the delivery already holds): only its `last_seen_at` is refreshed, in bulk;
//!   - known, and it may change something: [`Store::upsert_delivery`], exactly as one record at
//!     a time (upgrade before the download starts, `renamed_in_feed` after, R2-key matching).
//!     Pending inserts are written first, so records are applied in feed order.

use std::collections::{HashMap, HashSet};

use super::new_delivery;
use super::source::ParsedFeed;
use crate::domain::{DeliveryMode, DeliveryState, RecordFormat};
use crate::events::{Event, EventBus};
use crate::store::{KnownDelivery, NewDelivery, Store, StoreError};

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
}

impl Ingest<'_> {
    async fn take(&mut self, d: NewDelivery) -> Result<(), StoreError> {
        if self.pending_keys.matches(&d) {
            // Same delivery as a record earlier in this feed, not written yet.
            let same = self
                .pending_keys
                .by_key
                .get(&d.dedupe_key)
                .is_some_and(|p| holds(p, &d));
            if d.record_format == RecordFormat::Legacy || same {
                return Ok(());
            }
            self.flush().await?;
            return self.upsert(&d).await;
        }
        if self.known.matches(&d) {
            if d.record_format == RecordFormat::Legacy {
                // Finds its delivery and changes nothing but `last_seen_at`.
                if let Some(row) = self.known.by_key.get(&d.dedupe_key) {
                    self.seen.push(row.id);
                    return Ok(());
                }
                return self.upsert(&d).await;
            }
            if let Some(row) = self.known.by_key.get(&d.dedupe_key)
                && holds(row, &d)
            {
                self.seen.push(row.id);
                return Ok(());
            }
            return self.upsert(&d).await;
        }
        let row = known_from(&d, 0);
        self.pending_keys.add(row);
        self.pending.push(d);
        if self.pending.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
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
        self.pending_keys = Known::default();
        let inserted = self.store.insert_new_deliveries(&batch).await?;
        let ids: HashMap<String, i64> = inserted.into_iter().map(|(id, k)| (k, id)).collect();
        for d in batch {
            match ids.get(&d.dedupe_key) {
                Some(&id) => {
                    self.new += 1;
                    self.events.send(Event::DeliveryChanged { id });
                    self.known.add(known_from(&d, id));
                }
                // Stored by someone else in between: the per-record path decides.
                None => self.upsert(&d).await?,
            }
        }
        // Let requests and other writers in between batches.
        tokio::task::yield_now().await;
        Ok(())
    }
}

/// Takes a parsed feed into the store; returns how many deliveries are new.
pub(super) async fn ingest(
    store: &Store,
    events: &EventBus,
    feed: &ParsedFeed,
    max_age: Option<std::time::Duration>,
    now: crate::domain::Timestamp,
) -> Result<usize, StoreError> {
    let mut known = Known::default();
    for row in store.known_deliveries().await? {
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
    };
    for record in &feed.records {
        run.take(new_delivery(record, max_age, now)).await?;
    }
    run.flush().await?;
    run.seen.sort_unstable();
    run.seen.dedup();
    store.touch_deliveries(&run.seen).await?;
    Ok(run.new)
}
