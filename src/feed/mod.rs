//! Feed intake: fetch the external JSON feed, parse its records, remember each one as a delivery.

pub mod check;
pub(crate) mod classify;
mod ingest;
mod items;
mod link;
pub(crate) mod poller;
pub(crate) mod record;
pub mod scan;
pub mod source;
pub mod stream;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{DeliveryMode, DeliveryState, FeedFetchOutcome, Timestamp};
use crate::events::{Event, EventBus};
use crate::store::{FeedFetch, NewDelivery, Store, StoreError};
use crate::{links, naming};
use record::FeedRecord;
use source::{FeedError, FeedSource, FetchResult, Validators};

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Within the cache TTL of the last successful fetch: the feed was not asked.
    Fresh,
    /// The server answered 304.
    NotModified,
    Fetched {
        valid: usize,
        invalid: usize,
        new: usize,
    },
    /// Several instances share the database and another one polls the feed: it was asked to
    /// poll now (through the database) and will.
    Elsewhere { poller: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state a delivery starts in when rushes first sees its record: manual links wait for a
/// person; automatic ones are queued, unless their `created_at` is older than `max_age`
/// (`DOWNLOAD_MAX_AGE`), then they are only listed (`available`). Exactly `max_age` old is
/// still queued.
pub fn initial_state(
    mode: DeliveryMode,
    created_at: Timestamp,
    now: Timestamp,
    max_age: Option<Duration>,
) -> DeliveryState {
    match mode {
        DeliveryMode::Manual => DeliveryState::Manual,
        DeliveryMode::Automatic => {
            let too_old = max_age.is_some_and(|age| {
                (now.as_datetime() - created_at.as_datetime())
                    .to_std()
                    .is_ok_and(|elapsed| elapsed > age)
            });
            if too_old {
                DeliveryState::Available
            } else {
                DeliveryState::Queued
            }
        }
    }
}

/// The file name a record plans (before any server answer).
pub fn planned_file_name(record: &FeedRecord<'_>) -> Option<String> {
    let source = record.source()?;
    naming::planned_name(
        record.original_filename.as_deref(),
        &source,
        links::is_dropbox_folder(&source),
    )
    .map(|n| n.to_string())
}

/// Turns a valid record into the row the store keeps, as first seen at `now`.
pub fn new_delivery(
    record: &FeedRecord<'_>,
    max_age: Option<Duration>,
    now: Timestamp,
) -> NewDelivery {
    let created_at = Timestamp::from(record.created_at);
    NewDelivery {
        dedupe_key: record.dedupe_key().to_string(),
        source_url: record.source_url.clone(),
        raw_source_url: record.raw_source_url.to_string(),
        r2_url: record.r2_url.as_deref().map(str::to_string),
        r2_key: record.r2_key.clone(),
        provider: record.provider.to_string(),
        kind: record.classification.kind,
        mode: record.classification.mode,
        record_format: record.format,
        original_filename: record.original_filename.as_deref().map(str::to_string),
        file_name: planned_file_name(record),
        created_at,
        initial_state: initial_state(record.classification.mode, created_at, now, max_age),
    }
}

/// Polls the feed and writes what it finds to the store.
#[derive(Debug)]
pub struct FeedService {
    source: FeedSource,
    store: Store,
    cache_ttl: Duration,
    events: EventBus,
    max_age: Option<Duration>,
    /// What the last polls took in (polls never overlap; a restart forgets it).
    memo: tokio::sync::Mutex<ingest::Memo>,
}

impl FeedService {
    /// The store the polls write to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn new(source: FeedSource, store: Store, cache_ttl: Duration, events: EventBus) -> Self {
        Self {
            source,
            store,
            cache_ttl,
            events,
            max_age: None,
            memo: tokio::sync::Mutex::default(),
        }
    }

    /// Forgets what earlier polls took in (the next poll reads the store whole): another
    /// instance may have polled meanwhile.
    pub async fn forget(&self) {
        *self.memo.lock().await = ingest::Memo::default();
    }

    /// `DOWNLOAD_MAX_AGE`: automatic records older than this when first seen are `available`.
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// One poll. Without `force`, does nothing within the cache TTL of the last success.
    pub async fn poll(
        &self,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<PollOutcome, PollError> {
        let state = self.store.feed_state().await?;
        if !force && self.is_fresh(state.last_success_at) {
            return Ok(PollOutcome::Fresh);
        }
        let started_at = Timestamp::now();
        let validators = Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        };
        let mut memo = self.memo.lock().await;
        let read = memo.reader(self.source.tz(), self.max_age, Timestamp::now());
        let (result, attempts) = self.source.fetch_with(&validators, cancel, read).await;
        let mut fetch = FeedFetch {
            started_at,
            outcome: FeedFetchOutcome::Error,
            attempts,
            records_valid: 0,
            records_invalid: 0,
            records_new: 0,
            invalid_items: Vec::new(),
            error: None,
            etag: None,
            last_modified: None,
        };
        match result {
            Err(FeedError::Cancelled) => Err(FeedError::Cancelled.into()),
            Err(e) => {
                // Whatever the feed sent, a bounded text is logged and stored.
                let text = source::cap_text(&e.to_string(), source::MAX_ERROR_TEXT + 200);
                tracing::warn!(
                    feed = %self.source.location(),
                    error = %text,
                    "FeedService: failed to fetch the feed after {attempts} attempts"
                );
                fetch.error = Some(text);
                self.store.record_feed_fetch(&fetch).await?;
                self.events.send(Event::FeedUpdated);
                Err(e.into())
            }
            Ok(FetchResult::NotModified) => {
                tracing::info!("FeedService: feed not modified (304)");
                fetch.outcome = FeedFetchOutcome::NotModified;
                fetch.records_valid = state.records_processed;
                self.store.record_feed_fetch(&fetch).await?;
                self.events.send(Event::FeedUpdated);
                Ok(PollOutcome::NotModified)
            }
            Ok(FetchResult::Fetched { feed, validators }) => {
                let (valid, invalid) = (feed.valid, feed.invalid);
                fetch.invalid_items = feed.invalid_items.as_ref().clone();
                let new = ingest::ingest(&self.store, &self.events, &mut memo, feed).await?;
                drop(memo);
                fetch.outcome = FeedFetchOutcome::Ok;
                fetch.records_valid = valid as i64;
                fetch.records_invalid = invalid as i64;
                fetch.records_new = new as i64;
                fetch.etag = validators.etag;
                fetch.last_modified = validators.last_modified;
                self.store.record_feed_fetch(&fetch).await?;
                tracing::info!(
                    invalid,
                    new,
                    "FeedService: fetched {valid} records from the feed"
                );
                self.events.send(Event::FeedUpdated);
                Ok(PollOutcome::Fetched {
                    valid,
                    invalid,
                    new,
                })
            }
        }
    }

    fn is_fresh(&self, last_success_at: Option<Timestamp>) -> bool {
        !self.cache_ttl.is_zero() && last_success_at.is_some_and(|t| t.elapsed() < self.cache_ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_rule_at_its_boundary() -> Result<(), crate::domain::BadTimestamp> {
        let now = Timestamp::parse("2026-11-26T12:00:00Z")?;
        let week = Some(Duration::from_secs(7 * 86_400));
        let at = |raw: &str| Timestamp::parse(raw);
        let auto = DeliveryMode::Automatic;
        assert_eq!(
            initial_state(auto, at("2026-11-19T12:00:00Z")?, now, week),
            DeliveryState::Queued
        );
        assert_eq!(
            initial_state(auto, at("2026-11-19T11:59:59Z")?, now, week),
            DeliveryState::Available
        );
        assert_eq!(
            initial_state(auto, at("2026-11-19T12:00:01Z")?, now, week),
            DeliveryState::Queued
        );
        assert_eq!(
            initial_state(auto, at("2020-01-01T00:00:00Z")?, now, None),
            DeliveryState::Queued
        );
        // A date in the future is new.
        assert_eq!(
            initial_state(auto, at("2027-01-01T00:00:00Z")?, now, week),
            DeliveryState::Queued
        );
        assert_eq!(
            initial_state(DeliveryMode::Manual, at("2020-01-01T00:00:00Z")?, now, week),
            DeliveryState::Manual
        );
        Ok(())
    }
}
