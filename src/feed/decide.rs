//! The decision step of intake, after a record is read and classified: the file name it plans
//! and the state its delivery starts in, as the row the store keeps. Used by the poll (ingest)
//! and by `rushes feed check` alike, so the check says what `serve` will do.

use std::time::Duration;

use super::record::FeedRecord;
use crate::domain::{DeliveryMode, DeliveryState, Timestamp};
use crate::store::NewDelivery;
use crate::{links, naming};

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
