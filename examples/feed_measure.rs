//! Measures the feed poll's store path at scale (not a test): a feed of N records (a local file)
//! taken into a real SQLite store in a temp folder by `FeedService::poll` (batched ingest), and,
//! in the same run, by the record-at-a-time path (`Store::upsert_delivery` per record, what the
//! poll did before) as the reference. Prints `key seconds` lines.
//!
//!   cargo run --release --example feed_measure -- [RECORDS]

use std::time::{Duration, Instant};

use rushes::config::FeedLocation;
use rushes::events::EventBus;
use rushes::feed::source::{FeedSource, parse_body};
use rushes::feed::{FeedService, PollOutcome, new_delivery};
use rushes::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn item(n: usize) -> Value {
    if n.is_multiple_of(5) {
        return json!({"url": format!("https://fromsmash.com/t-{n}"), "timestamp": "2025-10-17 10:00:00"});
    }
    let mut v = json!({
        "source_url": format!("https://www.dropbox.com/scl/fo/f{n}/n{n}?rlkey=k{n}&dl=0"),
        "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38Z",
        "original_filename": format!("{n}.mov"),
    });
    if n.is_multiple_of(2) {
        v["r2_url"] = json!(format!("https://r2.example.workers.dev/dropbox/b/{n}"));
    }
    v
}

fn body(records: usize) -> String {
    Value::Array((0..records).map(item).collect()).to_string()
}

async fn poll(service: &FeedService) -> (Duration, usize) {
    let t = Instant::now();
    match service.poll(true, &CancellationToken::new()).await {
        Ok(PollOutcome::Fetched { new, .. }) => (t.elapsed(), new),
        other => panic!("poll: {other:?}"),
    }
}

async fn reference(store: &Store, body: &str) -> Duration {
    let t = Instant::now();
    let feed = parse_body(body.as_bytes(), chrono_tz::UTC).expect("parse");
    let now = chrono::Utc::now().into();
    for record in &feed.records {
        store
            .upsert_delivery(&new_delivery(record, None, now))
            .await
            .expect("upsert");
    }
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or("/tmp".into())).expect("tmp");
    let feed_path = dir.path().join("feed.json");
    let full = body(records);
    std::fs::write(&feed_path, &full).expect("write");
    let location = FeedLocation::parse(&feed_path.display().to_string()).expect("location");

    // Parse alone (both paths pay it).
    let t = Instant::now();
    let parsed = parse_body(full.as_bytes(), chrono_tz::UTC).expect("parse");
    println!(
        "parse_only {:.3} ({} records)",
        t.elapsed().as_secs_f64(),
        parsed.records.len()
    );

    // rushes: batched.
    let store = Store::open(&dir.path().join("batched.db"))
        .await
        .expect("store");
    let source = FeedSource::new(location.clone(), Duration::from_secs(60), chrono_tz::UTC);
    let service = FeedService::new(source, store.clone(), Duration::ZERO, EventBus::new());
    let (first, new) = poll(&service).await;
    println!(
        "batched_first_ingest {:.3} (new {new})",
        first.as_secs_f64()
    );
    let (same, _) = poll(&service).await;
    println!("batched_unchanged_body {:.3}", same.as_secs_f64());
    // A changed body (one record more), everything else stored: a fresh service (restart).
    let mut grown = full.clone();
    grown.pop();
    grown.push_str(&format!(",{}]", item(records)));
    std::fs::write(&feed_path, &grown).expect("write");
    let source = FeedSource::new(location.clone(), Duration::from_secs(60), chrono_tz::UTC);
    let restarted = FeedService::new(source, store.clone(), Duration::ZERO, EventBus::new());
    let (changed, new) = poll(&restarted).await;
    println!(
        "batched_changed_body_all_stored {:.3} (new {new})",
        changed.as_secs_f64()
    );

    // Reference: record by record, same body, same kind of store.
    let store = Store::open(&dir.path().join("reference.db"))
        .await
        .expect("store");
    let first = reference(&store, &full).await;
    println!("reference_first_ingest {:.3}", first.as_secs_f64());
    let again = reference(&store, &full).await;
    println!("reference_unchanged_all_stored {:.3}", again.as_secs_f64());
}
