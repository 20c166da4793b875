//! `rushes feed check`: what a first start would do with each feed item, decided by the same
//! rules as intake (classification, dedupe keys, `DOWNLOAD_MAX_AGE`), without writing anything.
//! Optionally asks each automatic record's server for its size (`HEAD`, bounded concurrency,
//! every request timed out).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use url::Url;

use super::decide::{initial_state, planned_file_name};
use super::source::ParsedFeed;
use crate::domain::{DeliveryMode, DeliveryState, LinkKind, RecordFormat, Timestamp};
use crate::net;

/// What a first start would do with a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Would {
    Queued,
    Available,
    Manual,
    Duplicate,
}

impl Would {
    pub const ALL: [Self; 4] = [Self::Queued, Self::Available, Self::Manual, Self::Duplicate];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Available => "available",
            Self::Manual => "manual",
            Self::Duplicate => "duplicate",
        }
    }
}

/// One line of `rushes feed check --json`. The field names are a contract (docs/feed.md): `index`,
/// `valid`, `reason` (invalid items only), then for valid records `format`, `kind`, `mode`,
/// `key`, `duplicate_of` (null unless a duplicate), `file_name` (null when only the server will
/// tell), `would`, and `size` (bytes, only with `--sizes`; null when the server did not say).
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub index: usize,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub record: Option<CheckedRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckedRecord {
    pub format: RecordFormat,
    pub kind: LinkKind,
    pub mode: DeliveryMode,
    /// The dedupe key: the normalised source link.
    pub key: String,
    pub duplicate_of: Option<usize>,
    pub file_name: Option<String>,
    pub would: Would,
    /// Only present after [`fetch_sizes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Option<u64>>,
    /// The link a download would try first (the R2 copy, else the source link).
    #[serde(skip)]
    pub first_url: Option<Url>,
    /// Whether the record has an R2 copy (text mode shows it).
    #[serde(skip)]
    pub has_r2: bool,
}

/// Every item of `feed` in feed order, with what intake alone would do with it at `now` (no
/// link resolver on: manual links stay manual). `rushes feed check` uses [`plan_for`].
pub fn plan(feed: &ParsedFeed, max_age: Option<Duration>, now: Timestamp) -> Vec<CheckLine> {
    plan_for(feed, max_age, now, &|_| false)
}

/// What a first start of `serve` does with a record: intake's state (`DOWNLOAD_MAX_AGE`), and a
/// manual link that rushes fetches by itself (`fetches`: [`crate::config::ResolverSettings::fetches`],
/// e.g. SwissTransfer with `SWISSTRANSFER_AUTO` on) is downloaded whatever its age, as the
/// engine picks such deliveries up. Returns the mode `serve` gives it in effect, and the plan.
pub fn would(
    mode: DeliveryMode,
    kind: LinkKind,
    created_at: Timestamp,
    now: Timestamp,
    max_age: Option<Duration>,
    fetches: &dyn Fn(LinkKind) -> bool,
) -> (DeliveryMode, Would) {
    match initial_state(mode, created_at, now, max_age) {
        DeliveryState::Manual if fetches(kind) => (DeliveryMode::Automatic, Would::Queued),
        DeliveryState::Manual => (mode, Would::Manual),
        DeliveryState::Available => (mode, Would::Available),
        _ => (mode, Would::Queued),
    }
}

/// Every item of `feed` in feed order, with what a first start of `serve` at `now` would do
/// with it; `fetches` says which manual link kinds rushes fetches by itself.
pub fn plan_for(
    feed: &ParsedFeed,
    max_age: Option<Duration>,
    now: Timestamp,
    fetches: &dyn Fn(LinkKind) -> bool,
) -> Vec<CheckLine> {
    let mut lines: Vec<CheckLine> = Vec::with_capacity(feed.records.len() + feed.invalid.len());
    // Every key (source or R2) of the records seen so far -> index of the first of them.
    let mut first_by_key: HashMap<String, usize> = HashMap::with_capacity(feed.records.len() * 2);
    let mut invalid = feed.invalid.iter().peekable();
    for record in &feed.records {
        while let Some((index, reason)) = invalid.next_if(|(i, _)| *i < record.index) {
            lines.push(invalid_line(*index, reason.to_string()));
        }
        let key = record.dedupe_key().to_string();
        let r2_key = record.r2_key.clone();
        let duplicate_of = std::iter::once(&key)
            .chain(r2_key.as_ref())
            .find_map(|k| first_by_key.get(k).copied());
        let owner = duplicate_of.unwrap_or(record.index);
        for k in std::iter::once(&key).chain(r2_key.as_ref()) {
            if let Entry::Vacant(slot) = first_by_key.entry(k.clone()) {
                slot.insert(owner);
            }
        }
        let kind = record.classification.kind;
        let (mode, would) = would(
            record.classification.mode,
            kind,
            Timestamp::from(record.created_at),
            now,
            max_age,
            fetches,
        );
        let would = if duplicate_of.is_some() {
            Would::Duplicate
        } else {
            would
        };
        // A link a resolver turns into files: `HEAD` on it would size a web page, not the files.
        let resolved = record.classification.mode == DeliveryMode::Manual && fetches(kind);
        lines.push(CheckLine {
            index: record.index,
            valid: true,
            reason: None,
            record: Some(CheckedRecord {
                format: record.format,
                kind,
                mode,
                key,
                duplicate_of,
                file_name: planned_file_name(record),
                would,
                size: None,
                first_url: Url::parse(record.r2_url.as_deref().unwrap_or(&record.source_url))
                    .ok()
                    .filter(|_| !resolved),
                has_r2: record.r2_url.is_some(),
            }),
        });
    }
    for (index, reason) in invalid {
        lines.push(invalid_line(*index, reason.to_string()));
    }
    lines
}

fn invalid_line(index: usize, reason: String) -> CheckLine {
    CheckLine {
        index,
        valid: false,
        reason: Some(reason),
        record: None,
    }
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub items: usize,
    pub valid: usize,
    pub invalid: usize,
    pub queued: usize,
    pub available: usize,
    pub manual: usize,
    pub duplicate: usize,
    /// Sizes asked for: how many were asked, how many the servers gave, their total.
    pub sized: Option<(usize, usize, u64)>,
}

impl Summary {
    pub fn of(lines: &[CheckLine]) -> Self {
        let mut s = Self {
            items: lines.len(),
            ..Self::default()
        };
        for line in lines {
            let Some(record) = &line.record else {
                s.invalid += 1;
                continue;
            };
            s.valid += 1;
            match record.would {
                Would::Queued => s.queued += 1,
                Would::Available => s.available += 1,
                Would::Manual => s.manual += 1,
                Would::Duplicate => s.duplicate += 1,
            }
            if let Some(size) = record.size {
                let (asked, known, total) = s.sized.get_or_insert((0, 0, 0));
                *asked += 1;
                if let Some(bytes) = size {
                    *known += 1;
                    *total += bytes;
                }
            }
        }
        s
    }

    pub fn count(&self, would: Would) -> usize {
        match would {
            Would::Queued => self.queued,
            Would::Available => self.available,
            Would::Manual => self.manual,
            Would::Duplicate => self.duplicate,
        }
    }
}

/// Most `HEAD` requests in flight at once.
pub const SIZE_CONCURRENCY: usize = 8;

/// Asks the server of every record that would be downloaded (queued or available) for its size
/// with `HEAD` on the link a download would try first: `Content-Length` of a success, else
/// unknown. At most [`SIZE_CONCURRENCY`] at once, each bounded by `timeout`.
pub async fn fetch_sizes(lines: &mut [CheckLine], timeout: Duration) {
    let client = match net::client(net::Timeouts {
        connect: timeout,
        request: Some(timeout),
        read: None,
    }) {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %net::error_text(&e), "cannot build an HTTP client for sizes");
            return;
        }
    };
    let wanted: Vec<(usize, Url)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let record = line.record.as_ref()?;
            let url = record.first_url.clone()?;
            matches!(record.would, Would::Queued | Would::Available).then_some((i, url))
        })
        .collect();
    let mut answers = futures::stream::iter(wanted)
        .map(|(i, url)| {
            let client = client.clone();
            async move {
                let size = match client.head(url.clone()).send().await {
                    Ok(r) if r.status().is_success() => r
                        .headers()
                        .get(reqwest::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok()),
                    Ok(r) => {
                        tracing::debug!(url = %net::redact(&url), status = %r.status(), "HEAD gave no size");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(url = %net::redact(&url), error = %net::error_text(&e), "HEAD failed");
                        None
                    }
                };
                (i, size)
            }
        })
        .buffer_unordered(SIZE_CONCURRENCY);
    while let Some((i, size)) = answers.next().await {
        if let Some(record) = lines.get_mut(i).and_then(|l| l.record.as_mut()) {
            record.size = Some(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::source::parse_body;
    use serde_json::json;

    #[test]
    fn a_plan_follows_intake_rules() {
        let body = json!([
            {"source_url": "https://www.dropbox.com/scl/fo/a/b?rlkey=k&dl=0", "provider": "dropbox",
             "r2_url": "https://x.workers.dev/dropbox/b/o/file",
             "created_at": "2026-11-26T10:00:00Z", "original_filename": "61 Camille.zip"},
            {"url": "https://www.dropbox.com/scl/fo/a/b?rlkey=k&DL=0", "timestamp": "2026-11-26 09:00:00"},
            "broken",
            {"url": "https://fromsmash.com/x", "timestamp": "2026-11-26T10:00:00Z"},
            {"source_url": "https://www.dropbox.com/scl/fi/other?rlkey=z", "provider": "dropbox",
             "r2_url": "https://x.workers.dev/dropbox/b/o/file",
             "created_at": "2026-11-26T10:00:00Z", "original_filename": "same r2.mov"},
            {"url": "https://www.dropbox.com/s/old/clip.mov", "timestamp": "2026-01-01T00:00:00Z"}
        ])
        .to_string();
        let feed = parse_body(body.as_bytes(), chrono_tz::UTC).unwrap_or_default();
        let now = Timestamp::parse("2026-11-26T12:00:00Z").unwrap_or_else(|_| Timestamp::now());
        let lines = plan(&feed, Some(Duration::from_secs(7 * 86_400)), now);
        let would: Vec<String> = lines
            .iter()
            .map(|l| match &l.record {
                Some(r) => match r.duplicate_of {
                    Some(n) => format!("{}:dup of {n}", l.index),
                    None => format!("{}:{}", l.index, r.would.as_str()),
                },
                None => format!("{}:invalid", l.index),
            })
            .collect();
        assert_eq!(
            would,
            [
                "0:queued",
                "1:dup of 0",
                "2:invalid",
                "3:manual",
                "4:dup of 0",
                "5:available"
            ]
        );
        let summary = Summary::of(&lines);
        assert_eq!((summary.items, summary.valid, summary.invalid), (6, 5, 1));
        assert_eq!(summary.duplicate, 2);
        let json = serde_json::to_value(&lines[1]).unwrap_or_default();
        assert_eq!(json["duplicate_of"], 0);
        assert_eq!(json["format"], "legacy");
        assert!(json.get("reason").is_none() && json.get("size").is_none());
        let json = serde_json::to_value(&lines[2]).unwrap_or_default();
        assert_eq!(json["valid"], false);
        assert!(json["reason"].is_string() && json.get("would").is_none());
    }
}
