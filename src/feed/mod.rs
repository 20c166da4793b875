//! Feed intake: fetch the external JSON feed, parse its records, remember each one as a delivery.

pub mod classify;
pub mod poller;
pub mod record;
pub mod source;

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::download::filename;
use crate::events::{Event, EventBus};
use crate::store::{
    DeliveryState, FeedFetch, FeedFetchOutcome, NewDelivery, Store, StoreError, parse_time,
};
use classify::DeliveryMode;
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
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Turns a valid record into the row the store keeps.
pub fn new_delivery(record: &FeedRecord) -> NewDelivery {
    let initial_state = match record.classification.mode {
        DeliveryMode::Automatic => DeliveryState::Queued,
        DeliveryMode::Manual => DeliveryState::Manual,
    };
    NewDelivery {
        dedupe_key: record.dedupe_key().to_string(),
        source_url: record.source_url.to_string(),
        raw_source_url: record.raw_source_url.to_string(),
        r2_url: record.r2_url.as_ref().map(ToString::to_string),
        provider: record.provider.clone(),
        kind: record.classification.kind.as_str().to_string(),
        mode: record.classification.mode.as_str().to_string(),
        record_format: record.format.as_str().to_string(),
        original_filename: record.original_filename.clone(),
        file_name: filename::planned_name(record.original_filename.as_deref(), &record.source_url)
            .map(|n| n.to_string()),
        created_at: crate::store::time_text(record.created_at),
        initial_state,
    }
}

/// Polls the feed and writes what it finds to the store.
#[derive(Debug)]
pub struct FeedService {
    source: FeedSource,
    store: Store,
    cache_ttl: Duration,
    events: EventBus,
}

impl FeedService {
    pub fn new(source: FeedSource, store: Store, cache_ttl: Duration, events: EventBus) -> Self {
        Self {
            source,
            store,
            cache_ttl,
            events,
        }
    }

    pub fn source(&self) -> &FeedSource {
        &self.source
    }

    /// One poll. Without `force`, does nothing within the cache TTL of the last success.
    pub async fn poll(
        &self,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<PollOutcome, PollError> {
        let state = self.store.feed_state().await?;
        if !force && self.is_fresh(state.last_success_at.as_deref())? {
            return Ok(PollOutcome::Fresh);
        }
        let started_at = crate::store::now_text();
        let validators = Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        };
        let (result, attempts) = self.source.fetch(&validators, cancel).await;
        let mut fetch = FeedFetch {
            started_at,
            outcome: FeedFetchOutcome::Error,
            attempts,
            records_valid: 0,
            records_invalid: 0,
            records_new: 0,
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
                    "WebhookService: failed to fetch webhook JSON after {attempts} attempts"
                );
                fetch.error = Some(text);
                self.store.record_feed_fetch(&fetch).await?;
                self.events.send(Event::FeedUpdated);
                Err(e.into())
            }
            Ok(FetchResult::NotModified) => {
                tracing::info!("WebhookService: feed not modified (304)");
                fetch.outcome = FeedFetchOutcome::NotModified;
                fetch.records_valid = state.records_processed;
                self.store.record_feed_fetch(&fetch).await?;
                self.events.send(Event::FeedUpdated);
                Ok(PollOutcome::NotModified)
            }
            Ok(FetchResult::Fetched { feed, validators }) => {
                let mut new = 0;
                for record in &feed.records {
                    let outcome = self.store.upsert_delivery(&new_delivery(record)).await?;
                    if outcome.inserted {
                        new += 1;
                        self.events.send(Event::DeliveryChanged { id: outcome.id });
                    }
                }
                let valid = feed.records.len();
                let invalid = feed.invalid.len();
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
                    "WebhookService: fetched {valid} records from webhook"
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

    fn is_fresh(&self, last_success_at: Option<&str>) -> Result<bool, StoreError> {
        if self.cache_ttl.is_zero() {
            return Ok(false);
        }
        let Some(raw) = last_success_at else {
            return Ok(false);
        };
        let age = Utc::now() - parse_time(raw)?;
        Ok(age.to_std().is_ok_and(|age| age < self.cache_ttl))
    }
}
