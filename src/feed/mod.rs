//! Feed intake: fetch the external JSON feed, parse its records, remember each one as a delivery.

pub mod check;
pub(crate) mod classify;
mod decide;
pub(crate) mod error;
mod ingest;
mod items;
mod link;
mod packed;
pub(crate) mod poller;
pub(crate) mod record;
pub mod scan;
pub mod source;
pub mod stream;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{FeedFetchOutcome, Timestamp};
use crate::events::{Event, EventBus};
use crate::store::{FeedFetch, Store, StoreError};
pub use decide::{initial_state, new_delivery, planned_file_name};
use error::FeedError;
use source::{FeedSource, FetchResult, Validators};

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
        let (tz, now) = (self.source.tz(), Timestamp::now());
        // With a body to compare with, the body is collected and hashed first (an unchanged one
        // is not read); otherwise (a first poll) it is read while it arrives.
        let (result, attempts) = if memo.knows_a_body() {
            let read = memo.reader(tz, self.max_age, now);
            self.source.fetch_with(&validators, cancel, read).await
        } else {
            let start = memo.streamed(tz, self.max_age, now);
            let (result, attempts) = self.source.fetch_streamed(&validators, cancel, start).await;
            let result = result.map(|fetched| match fetched {
                FetchResult::Fetched { feed, validators } => FetchResult::Fetched {
                    feed: ingest::ReadFeed::streamed(feed),
                    validators,
                },
                FetchResult::NotModified => FetchResult::NotModified,
            });
            (result, attempts)
        };
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
                let text = error::cap_text(&e.to_string(), error::MAX_ERROR_TEXT + 200);
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
