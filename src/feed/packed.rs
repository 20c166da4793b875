//! A record the poll takes in, held compactly until it is written: its seven texts in one
//! allocation instead of eight `String`s (the dedupe key and the normalised link, which are the
//! same text, once). A first ingest holds every record of the feed at once: 100,000 of them as
//! boxed [`NewDelivery`] values took 65 MB of its heap peak; packed, about 40.

use std::time::Duration;

use super::decide::{initial_state, planned_file_name};
use super::record::FeedRecord;
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};
use crate::store::{KnownDelivery, NewDelivery, NewRow};

/// The texts of a record, in the order they are packed.
#[derive(Debug, Clone, Copy)]
enum Text {
    /// The normalised source link: the dedupe key.
    Source = 0,
    RawSource,
    R2Url,
    R2Key,
    Provider,
    OriginalFilename,
    FileName,
}

const TEXTS: usize = 7;

/// A valid record as a new delivery (what [`super::new_delivery`] makes of it), packed.
#[derive(Debug)]
pub(super) struct Packed {
    /// The texts one after the other.
    text: Box<str>,
    /// Where each text ends in `text` (it starts where the one before ends).
    ends: [u32; TEXTS],
    /// Which of the optional texts are present (bit `Text as u8`).
    present: u8,
    kind: LinkKind,
    mode: DeliveryMode,
    record_format: RecordFormat,
    initial_state: DeliveryState,
    created_at: Timestamp,
}

impl Packed {
    /// The record `record` as first seen at `now` (the same values as
    /// [`super::new_delivery`]). `None` if its texts pass 4 GiB together (a feed is far smaller).
    pub(super) fn new(
        record: &FeedRecord<'_>,
        max_age: Option<Duration>,
        now: Timestamp,
    ) -> Option<Self> {
        let file_name = planned_file_name(record);
        let texts: [Option<&str>; TEXTS] = [
            Some(record.dedupe_key()),
            Some(&record.raw_source_url),
            record.r2_url.as_deref(),
            record.r2_key.as_deref(),
            Some(&record.provider),
            record.original_filename.as_deref(),
            file_name.as_deref(),
        ];
        let mut text = String::with_capacity(texts.iter().flatten().map(|t| t.len()).sum());
        let mut ends = [0; TEXTS];
        let mut present = 0;
        for (k, t) in texts.iter().enumerate() {
            if let Some(t) = t {
                text.push_str(t);
                present |= 1 << k;
            }
            ends[k] = u32::try_from(text.len()).ok()?;
        }
        let created_at = Timestamp::from(record.created_at);
        Some(Self {
            text: text.into_boxed_str(),
            ends,
            present,
            kind: record.classification.kind,
            mode: record.classification.mode,
            record_format: record.format,
            initial_state: initial_state(record.classification.mode, created_at, now, max_age),
            created_at,
        })
    }

    fn get(&self, which: Text) -> Option<&str> {
        let k = which as usize;
        if self.present & (1 << k) == 0 {
            return None;
        }
        let start = if k == 0 { 0 } else { self.ends[k - 1] as usize };
        self.text.get(start..self.ends[k] as usize)
    }

    fn text(&self, which: Text) -> &str {
        self.get(which).unwrap_or_default()
    }

    pub(super) fn dedupe_key(&self) -> &str {
        self.text(Text::Source)
    }

    pub(super) fn r2_key(&self) -> Option<&str> {
        self.get(Text::R2Key)
    }

    /// The state a delivery made from this record starts in.
    pub(super) fn initial_state(&self) -> DeliveryState {
        self.initial_state
    }

    /// The record as the per-record path takes it.
    pub(super) fn unpack(&self) -> NewDelivery {
        let owned = |which| self.get(which).map(str::to_string);
        NewDelivery {
            dedupe_key: self.dedupe_key().to_string(),
            source_url: self.dedupe_key().to_string(),
            raw_source_url: self.text(Text::RawSource).to_string(),
            r2_url: owned(Text::R2Url),
            r2_key: owned(Text::R2Key),
            provider: self.text(Text::Provider).to_string(),
            kind: self.kind,
            mode: self.mode,
            record_format: self.record_format,
            original_filename: owned(Text::OriginalFilename),
            file_name: owned(Text::FileName),
            created_at: self.created_at,
            initial_state: self.initial_state,
        }
    }

    /// What a delivery made from this record alone holds, for a record that a later one of
    /// the same feed changes.
    pub(super) fn known(&self) -> KnownDelivery {
        KnownDelivery::take_from(&mut self.unpack())
    }

    /// The row a new delivery made from this record is inserted as: its links and creation
    /// time from here, the rest from `now` when later records of the feed changed it.
    pub(super) fn row<'a>(&'a self, now: Option<&'a KnownDelivery>) -> NewRow<'a> {
        let links = NewRow {
            dedupe_key: self.dedupe_key(),
            source_url: self.dedupe_key(),
            raw_source_url: self.text(Text::RawSource),
            r2_url: self.get(Text::R2Url),
            r2_key: self.get(Text::R2Key),
            provider: self.text(Text::Provider),
            kind: self.kind,
            mode: self.mode,
            record_format: self.record_format,
            original_filename: self.get(Text::OriginalFilename),
            file_name: self.get(Text::FileName),
            created_at: self.created_at,
            state: self.initial_state,
        };
        match now {
            None => links,
            Some(now) => NewRow {
                r2_url: now.r2_url.as_deref(),
                r2_key: now.r2_key.as_deref(),
                provider: &now.provider,
                kind: now.kind,
                mode: now.mode,
                record_format: now.record_format,
                original_filename: now.original_filename.as_deref(),
                file_name: now.file_name.as_deref(),
                state: now.state,
                ..links
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of a feed packs and unpacks to what [`super::super::new_delivery`] makes
    /// of it, with and without its optional texts.
    #[test]
    fn a_packed_record_unpacks_to_the_new_delivery() {
        let body = br#"[
            {"source_url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=x&dl=0",
             "r2_url": "https://r2.example.com/a/b", "provider": "dropbox",
             "created_at": "2026-10-17T10:00:00Z", "original_filename": "Cut 1.mov"},
            {"source_url": "https://fromsmash.com/xyz", "provider": "fromsmash",
             "created_at": "2026-10-17T10:00:00Z", "original_filename": "Interview.zip"},
            {"url": "https://swisstransfer.com/d/123", "timestamp": "2025-10-17 10:00:00"}
        ]"#;
        let feed = super::super::source::parse_body(body, chrono_tz::UTC).unwrap_or_default();
        assert_eq!(feed.records.len(), 3, "{:?}", feed.invalid);
        let now = Timestamp::now();
        let week = Some(Duration::from_secs(7 * 86_400));
        for record in &feed.records {
            let packed = Packed::new(record, week, now).expect("packs");
            let expected = super::super::new_delivery(record, week, now);
            assert_eq!(packed.unpack(), expected);
            assert_eq!(packed.dedupe_key(), expected.dedupe_key);
            assert_eq!(packed.r2_key(), expected.r2_key.as_deref());
            let mut taken = expected.clone();
            assert_eq!(packed.known(), KnownDelivery::take_from(&mut taken));
        }
    }
}
