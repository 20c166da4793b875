//! The demo's stand-in for the client feed and the file hosts: a sample server in the same process
//! serves the feed and the files its records point at (an R2 copy that downloads, one that fails
//! so the fallback shows, a large one so progress shows, legacy records, manual links, an invalid
//! item and an expired link that fails), and a bit of history: a record that turns from the legacy
//! to the new format at the second poll, two old records that arrive as `available` and a `DL=0`
//! spelling of a known link. At the demo's pace ([`Pace::Watchable`]) every file is served slowly
//! enough to watch its bar (all connections to one file share its rate, so segmented downloads
//! are no faster), and the feed gains a new delivery every [`NEW_DELIVERY_EVERY`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use chrono::{SecondsFormat, Utc};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::DemoError;

/// A file the sample server serves: its name, size and speed limits.
#[derive(Debug, Clone, Copy)]
pub struct SampleFile {
    pub name: &'static str,
    pub size: u64,
    /// Bytes per second per connection at [`Pace::Quick`]; `None` = as fast as loopback goes.
    pub rate: Option<u64>,
    /// Bytes per second for the whole file, all connections together, at [`Pace::Watchable`].
    pub watch_rate: u64,
}

const MIB: u64 = 1024 * 1024;

/// How the sample server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Each file at its own `rate` per connection, a fixed feed (tests: over in seconds).
    Quick,
    /// The demo: each file at its `watch_rate` (slow enough to watch bar, speed and ETA), and a
    /// new delivery in the feed every [`NEW_DELIVERY_EVERY`], up to [`MAX_NEW_DELIVERIES`].
    Watchable,
}

/// How often the demo's feed gains a delivery.
pub const NEW_DELIVERY_EVERY: Duration = Duration::from_secs(20);
/// Most deliveries the demo's feed gains (the feed stays bounded however long the demo runs).
pub const MAX_NEW_DELIVERIES: u32 = 60;
/// Size and rate of each new delivery: about 24 s to download, so one is always on its way.
const NEW_DELIVERY_SIZE: u64 = 24 * MIB;
const NEW_DELIVERY_RATE: u64 = MIB;
/// Camera angles the new deliveries cycle through.
const ANGLES: [&str; 4] = ["cam A", "cam B", "drone", "son"];

pub const FILES: [SampleFile; 7] = [
    SampleFile {
        name: "61-camille.zip",
        size: 24 * MIB,
        rate: Some(12 * MIB),
        watch_rate: 2 * MIB,
    },
    SampleFile {
        name: "62-interview.mov",
        size: 16 * MIB,
        rate: Some(8 * MIB),
        watch_rate: 2 * MIB,
    },
    SampleFile {
        name: "63-drone.mov",
        size: 160 * MIB,
        rate: Some(4 * MIB),
        watch_rate: 5 * MIB / 4,
    },
    SampleFile {
        name: "64-legacy-clip.mp4",
        size: 6 * MIB,
        rate: None,
        watch_rate: MIB,
    },
    SampleFile {
        name: "57-camille.zip",
        size: 12 * MIB,
        rate: Some(6 * MIB),
        watch_rate: 2 * MIB,
    },
    SampleFile {
        name: "58-archive.mov",
        size: 8 * MIB,
        rate: Some(8 * MIB),
        watch_rate: 2 * MIB,
    },
    SampleFile {
        name: "59-old-teaser.mp4",
        size: 4 * MIB,
        rate: None,
        watch_rate: MIB,
    },
];

/// One file's rate shared by all its connections.
type Limiter = Arc<DefaultDirectRateLimiter>;

#[derive(Clone)]
struct Sample {
    base: String,
    extra: Vec<Value>,
    /// Feed requests answered so far (the history changes at the second one).
    polls: Arc<AtomicU32>,
    pace: Pace,
    started: Instant,
    /// At [`Pace::Watchable`], by file name (bounded: the fixed files and the new deliveries).
    limiters: Arc<Mutex<HashMap<String, Limiter>>>,
}

/// The sample feed + file server, running until the process ends.
pub struct SampleServer {
    pub addr: SocketAddr,
}

impl SampleServer {
    /// Starts on 127.0.0.1:0 at [`Pace::Quick`]; `extra` items are appended to the feed (tests).
    pub async fn start(extra: Vec<Value>) -> Result<Self, DemoError> {
        Self::start_paced(extra, Pace::Quick).await
    }

    /// Starts on 127.0.0.1:0 at `pace`.
    pub async fn start_paced(extra: Vec<Value>, pace: Pace) -> Result<Self, DemoError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(DemoError::SampleServer)?;
        let addr = listener.local_addr().map_err(DemoError::SampleServer)?;
        let sample = Sample {
            base: format!("http://{addr}"),
            extra,
            polls: Arc::new(AtomicU32::new(0)),
            pace,
            started: Instant::now(),
            limiters: Arc::new(Mutex::new(HashMap::new())),
        };
        let app = Router::new()
            .route("/feed.json", get(feed))
            .route("/files/{name}", get(file))
            .route("/broken/{name}", get(broken))
            .route("/gone/{name}", get(gone))
            .with_state(sample);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "demo sample server stopped");
            }
        });
        Ok(Self { addr })
    }

    pub fn feed_url(&self) -> String {
        format!("http://{}/feed.json", self.addr)
    }
}

/// The file name of the `n`-th new delivery (1-based).
fn new_delivery_file(n: u32) -> String {
    format!("70-day3-{n:02}.mov")
}

/// The deliveries the demo's feed gained `elapsed` after it started: one every
/// [`NEW_DELIVERY_EVERY`], at most [`MAX_NEW_DELIVERIES`], each dated when it arrived.
pub fn new_deliveries(base: &str, elapsed: Duration) -> Vec<Value> {
    let count = (elapsed.as_secs() / NEW_DELIVERY_EVERY.as_secs().max(1))
        .min(u64::from(MAX_NEW_DELIVERIES)) as u32;
    let now = Utc::now();
    (1..=count)
        .map(|n| {
            let age = elapsed.saturating_sub(NEW_DELIVERY_EVERY * n);
            let arrived = now - chrono::Duration::from_std(age).unwrap_or_default();
            let angle = ANGLES[(n as usize - 1) % ANGLES.len()];
            json!({
                "source_url": format!("https://www.dropbox.com/scl/fi/demo70day3{n:02}/jour3?rlkey=demo70{n:02}&dl=0"),
                "r2_url": format!("{base}/files/{}", new_delivery_file(n)),
                "provider": "dropbox",
                "created_at": arrived.to_rfc3339_opts(SecondsFormat::Secs, true),
                "original_filename": format!("70 Jour 3 {angle} {n:02}.mov")
            })
        })
        .collect()
}

/// What the server knows of a file name: (size, per-connection rate, whole-file rate).
fn served_file(name: &str) -> Option<(u64, Option<u64>, u64)> {
    if let Some(f) = FILES.iter().find(|f| f.name == name) {
        return Some((f.size, f.rate, f.watch_rate));
    }
    let n: u32 = name
        .strip_prefix("70-day3-")?
        .strip_suffix(".mov")?
        .parse()
        .ok()?;
    (1..=MAX_NEW_DELIVERIES)
        .contains(&n)
        .then_some((NEW_DELIVERY_SIZE, None, NEW_DELIVERY_RATE))
}

impl Sample {
    /// The rate shared by every connection to `name` (made on first use).
    fn limiter(&self, name: &str, rate: u64) -> Option<Limiter> {
        let kib = NonZeroU32::new(u32::try_from((rate / 1024).max(1)).unwrap_or(u32::MAX))?;
        let burst = NonZeroU32::new(CHUNK_KIB)?;
        let mut limiters = self.limiters.lock().ok()?;
        let limiter = limiters.entry(name.to_string()).or_insert_with(|| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(kib).allow_burst(burst),
            ))
        });
        Some(limiter.clone())
    }
}

/// `now` minus `minutes`, in RFC 3339 (`Z`).
fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `now` minus `minutes`, in another of the feed's spellings (`format`, UTC).
fn ago_as(minutes: i64, format: &str) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes))
        .format(format)
        .to_string()
}

/// The sample feed, pointing at `base`. Times are relative to now, so the records stay within
/// `DOWNLOAD_MAX_AGE` whenever the demo runs.
pub fn sample_feed(base: &str) -> Vec<Value> {
    vec![
        json!({
            "source_url": "https://www.dropbox.com/scl/fo/demo61camille/AAB61?rlkey=demo61&dl=0",
            "r2_url": format!("{base}/files/61-camille.zip"),
            "provider": "dropbox",
            "created_at": ago_as(60, "%Y-%m-%dT%H:%M:%S+00:00"),
            "original_filename": "61 Camille.zip"
        }),
        json!({
            "source_url": format!("{base}/files/62-interview.mov"),
            "r2_url": format!("{base}/broken/62-interview.mov"),
            "provider": "dropbox",
            "created_at": ago(92),
            "original_filename": "62 Interview B-roll.mov"
        }),
        json!({
            "source_url": "https://www.dropbox.com/scl/fi/demo63/drone?rlkey=demo63&dl=0",
            "r2_url": format!("{base}/files/63-drone.mov"),
            "provider": "dropbox",
            "created_at": ago_as(127, "%Y-%m-%dT%H:%M:%S.500Z"),
            "original_filename": "63 Drone plan.mov"
        }),
        json!({
            "url": format!("{base}/files/64-legacy-clip.mp4"),
            "timestamp": ago_as(16 * 60, "%Y-%m-%d %H:%M:%S"),
            "source": "dropbox"
        }),
        json!({
            "url": "https://fromsmash.com/Rushes-Jour-2",
            "timestamp": ago_as(18 * 60, "%Y-%m-%dT%H:%M:%S+0000"),
            "source": "webhook"
        }),
        json!({
            "source_url": "https://www.swisstransfer.com/d/6f1c2b9e-5a4d-4c1e-9f7a-1b2c3d4e5f60",
            "provider": "swisstransfer",
            "created_at": ago_as(23 * 60, "%Y-%m-%dT%H:%M:%S+00:00"),
            "original_filename": "65 Making-of.zip"
        }),
        json!({
            "source_url": format!("{base}/gone/66-expired.mov"),
            "r2_url": format!("{base}/gone/66-expired-r2.mov"),
            "provider": "dropbox",
            "created_at": ago(2 * 24 * 60),
            "original_filename": "66 Expired link.mov"
        }),
        json!({"url": "not a link", "timestamp": "yesterday"}),
    ]
}

/// The demo's history, as the feed lists it at its `poll`-th request (1 = first):
/// - "57 Camille": a legacy record (name from the link) at the first poll, the same delivery
///   in the new format (its own name, an R2 copy) from the second on;
/// - two records older than `DOWNLOAD_MAX_AGE` (20 and 45 days): `available`, each with a
///   "Download" button;
/// - a `DL=0` spelling of 61 Camille's link: the same delivery, nothing new.
pub fn history_feed(base: &str, poll: u32) -> Vec<Value> {
    let camille_57 = if poll <= 1 {
        json!({
            "url": format!("{base}/files/57-camille.zip#legacy-feed"),
            "timestamp": ago_as(10, "%Y-%m-%d %H:%M:%S"),
            "source": "dropbox",
            "r2_url": null,
            "original_filename": null
        })
    } else {
        json!({
            "source_url": format!("{base}/files/57-camille.zip"),
            "r2_url": format!("{base}/files/57-camille.zip?copy=r2"),
            "provider": "dropbox",
            "created_at": ago(10),
            "original_filename": "57 Camille.zip"
        })
    };
    vec![
        camille_57,
        json!({
            "source_url": "https://www.dropbox.com/scl/fi/demo58archive/archive?rlkey=demo58&dl=0",
            "r2_url": format!("{base}/files/58-archive.mov"),
            "provider": "dropbox",
            "created_at": ago(20 * 24 * 60),
            "original_filename": "58 Archive interview.mov"
        }),
        json!({
            "url": format!("{base}/files/59-old-teaser.mp4"),
            "timestamp": ago_as(45 * 24 * 60, "%Y-%m-%d %H:%M:%S"),
            "source": "dropbox"
        }),
        json!({
            "url": "https://www.dropbox.com/scl/fo/demo61camille/AAB61?rlkey=demo61&DL=0",
            "timestamp": ago(60),
            "source": "dropbox"
        }),
    ]
}

async fn feed(State(sample): State<Sample>) -> Response {
    let poll = sample.polls.fetch_add(1, Ordering::Relaxed) + 1;
    let mut items = sample_feed(&sample.base);
    items.extend(history_feed(&sample.base, poll));
    items.extend(sample.extra.iter().cloned());
    if sample.pace == Pace::Watchable {
        items.extend(new_deliveries(&sample.base, sample.started.elapsed()));
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        Value::Array(items).to_string(),
    )
        .into_response()
}

async fn broken() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "R2 copy unavailable (demo)",
    )
        .into_response()
}

async fn gone() -> Response {
    (StatusCode::NOT_FOUND, "this link has expired (demo)").into_response()
}

/// Byte `i` of every sample file: deterministic, not compressible by accident.
fn sample_byte(i: u64) -> u8 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7);
    (x >> 29) as u8
}

/// Parses `bytes=N-` / `bytes=N-M` against `size`.
fn requested_range(headers: &HeaderMap, size: u64) -> Option<(u64, u64)> {
    let raw = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = raw.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = if end.trim().is_empty() {
        size.checked_sub(1)?
    } else {
        end.trim().parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

async fn file(
    State(sample): State<Sample>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some((size, rate, watch_rate)) = served_file(&name) else {
        return (StatusCode::NOT_FOUND, "no such sample file").into_response();
    };
    let pacing = match sample.pace {
        Pace::Quick => Pacing::PerConnection(rate),
        Pace::Watchable => match sample.limiter(&name, watch_rate) {
            Some(limiter) => Pacing::Shared(limiter),
            None => Pacing::PerConnection(Some(watch_rate)),
        },
    };
    let etag = format!("\"demo-{name}-v1\"");
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag);
    let range = requested_range(&headers, size).filter(|_| if_range_ok);
    let (start, end, status) = match range {
        Some((start, end)) => (start, end, StatusCode::PARTIAL_CONTENT),
        None => (0, size.saturating_sub(1), StatusCode::OK),
    };
    let length = end + 1 - start;
    let body = Body::from_stream(chunks(start, length, pacing));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Chunks are 64 KiB; shared rates count KiB.
const CHUNK_KIB: u32 = 64;

/// How one response is slowed down.
enum Pacing {
    /// This connection at so many bytes per second (`None`: not at all).
    PerConnection(Option<u64>),
    /// Every connection to the file takes its bytes from one rate.
    Shared(Limiter),
}

/// The bytes `start..start+length` in 64 KiB chunks, paced.
fn chunks(
    start: u64,
    length: u64,
    pacing: Pacing,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    const CHUNK: u64 = CHUNK_KIB as u64 * 1024;
    let pacing = Arc::new(pacing);
    futures::stream::unfold(
        (start, start + length, tokio::time::Instant::now(), 0u64),
        move |(pos, end, began, sent)| {
            let pacing = pacing.clone();
            async move {
                if pos >= end {
                    return None;
                }
                let n = CHUNK.min(end - pos);
                match pacing.as_ref() {
                    Pacing::PerConnection(Some(rate)) => {
                        let due = began + Duration::from_secs_f64(sent as f64 / *rate as f64);
                        tokio::time::sleep_until(due).await;
                    }
                    Pacing::PerConnection(None) => {}
                    Pacing::Shared(limiter) => {
                        let kib =
                            NonZeroU32::new(n.div_ceil(1024) as u32).unwrap_or(NonZeroU32::MIN);
                        // A chunk is never larger than the burst: this only waits.
                        let _ = limiter.until_n_ready(kib).await;
                    }
                }
                let chunk: Vec<u8> = (pos..pos + n).map(sample_byte).collect();
                Some((Ok(Bytes::from(chunk)), (pos + n, end, began, sent + n)))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_range(&h, 100), None);
        h.insert(header::RANGE, "bytes=10-".parse().expect("header"));
        assert_eq!(requested_range(&h, 100), Some((10, 99)));
        h.insert(header::RANGE, "bytes=10-19".parse().expect("header"));
        assert_eq!(requested_range(&h, 100), Some((10, 19)));
        h.insert(header::RANGE, "bytes=200-".parse().expect("header"));
        assert_eq!(requested_range(&h, 100), None);
    }

    #[test]
    fn the_sample_feed_has_every_case() {
        let items = sample_feed("http://127.0.0.1:1");
        let parsed = crate::feed::source::parse_body(
            Value::Array(items).to_string().as_bytes(),
            chrono_tz::UTC,
        );
        let feed = parsed.unwrap_or_default();
        assert_eq!(feed.records.len(), 7);
        assert_eq!(feed.invalid.len(), 1);
        let manual = feed
            .records
            .iter()
            .filter(|r| r.classification.mode == crate::domain::DeliveryMode::Manual)
            .count();
        assert_eq!(manual, 2);
    }

    #[test]
    fn the_history_shows_upgrades_old_records_and_duplicates() {
        let base = "http://127.0.0.1:1";
        let now = crate::domain::Timestamp::now();
        let week = Some(crate::config::DEFAULT_MAX_AGE);
        let plan = |poll| {
            let mut items = sample_feed(base);
            items.extend(history_feed(base, poll));
            let feed = crate::feed::source::parse_body(
                Value::Array(items).to_string().as_bytes(),
                chrono_tz::UTC,
            )
            .unwrap_or_default();
            crate::feed::check::plan(&feed, week, now)
        };
        use crate::feed::check::Would;
        let first = crate::feed::check::Summary::of(&plan(1));
        assert_eq!((first.queued, first.available, first.manual), (6, 2, 2));
        assert_eq!((first.duplicate, first.invalid), (1, 1));
        let second = plan(2);
        let camille = second
            .iter()
            .filter_map(|l| l.record.as_ref())
            .find(|r| r.file_name.as_deref() == Some("57 Camille.zip"));
        assert!(camille.is_some_and(
            |r| r.would == Would::Queued && r.format == crate::domain::RecordFormat::New
        ));
        let first_57 = plan(1);
        let legacy = first_57
            .iter()
            .filter_map(|l| l.record.as_ref())
            .find(|r| r.file_name.as_deref() == Some("57-camille.zip"));
        assert!(
            legacy.is_some_and(|r| r.key == camille.map(|c| c.key.clone()).unwrap_or_default())
        );
    }

    #[test]
    fn the_demo_feed_gains_one_delivery_every_twenty_seconds_and_stays_bounded() {
        let base = "http://127.0.0.1:1";
        assert!(new_deliveries(base, Duration::from_secs(19)).is_empty());
        let two = new_deliveries(base, NEW_DELIVERY_EVERY * 2 + Duration::from_secs(1));
        assert_eq!(two.len(), 2);
        let forever = new_deliveries(base, Duration::from_secs(365 * 24 * 3600));
        assert_eq!(forever.len(), MAX_NEW_DELIVERIES as usize);
        // Each is a new delivery that downloads, and its file is served.
        let feed = crate::feed::source::parse_body(
            Value::Array(two.clone()).to_string().as_bytes(),
            chrono_tz::UTC,
        )
        .unwrap_or_default();
        let plan = crate::feed::check::plan(
            &feed,
            Some(crate::config::DEFAULT_MAX_AGE),
            crate::domain::Timestamp::now(),
        );
        let summary = crate::feed::check::Summary::of(&plan);
        assert_eq!((summary.queued, summary.duplicate), (2, 0));
        for item in &two {
            let name = item["r2_url"].as_str().and_then(|u| u.rsplit('/').next());
            assert!(name.and_then(served_file).is_some(), "{item}");
        }
        assert!(served_file("70-day3-99.mov").is_none());
    }
}
