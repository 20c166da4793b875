//! Feed polls at scale against a real SQLite store (in a temp folder), the feed served by
//! bench/feed_server.py on loopback (no validators: every poll gets the whole body).
//!
//! Measures: (1) the first ingest of the feed into an empty store, with the longest answer of
//! a reader (the page's query, newest 50 deliveries) running meanwhile; (2) polls of the unchanged
//! feed with everything stored (wall and CPU time), in a running service and right after a
//! restart; (3) polls of a feed that gains `step` records per poll, `polls` times: the median
//! cost of the first and of the last 100 polls. (The first ingest as `serve` does it, with the
//! HTTP server answering meanwhile, is bench/feed_ingest.py.)
//!
//! Run by bench/feed.sh: `cargo bench --bench feed_poll -- FEED_URL GROW_URL POLLS`; with
//! `BENCH_DATABASE_URL=postgres://…` the store is a fresh database on that server instead.
//! Prints `key value` lines for the script.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rushes::config::FeedLocation;
use rushes::events::EventBus;
use rushes::feed::source::FeedSource;
use rushes::feed::{FeedService, PollOutcome};
use rushes::store::{DeliveryFilter, Identity, Location, Store};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// CPU time of this process so far (user + system), from /proc (10 ms ticks).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn service(url: &str, store: Store) -> FeedService {
    let location = FeedLocation::parse(url).unwrap_or_else(|e| panic!("feed url {url}: {e}"));
    let source = FeedSource::new(location, Duration::from_secs(60), chrono_tz::UTC);
    FeedService::new(source, store, Duration::ZERO, EventBus::new())
}

async fn poll(service: &FeedService) -> (usize, usize, usize) {
    match service.poll(true, &CancellationToken::new()).await {
        Ok(PollOutcome::Fetched {
            valid,
            invalid,
            new,
        }) => (valid, invalid, new),
        other => panic!("poll: {other:?}"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (feed_url, grow_url) = match (args.first(), args.get(1)) {
        (Some(f), Some(g)) => (f.clone(), g.clone()),
        _ => {
            eprintln!(
                "usage: cargo bench --bench feed_poll -- FEED_URL GROW_URL [POLLS] [UNCHANGED_POLLS]"
            );
            std::process::exit(2);
        }
    };
    let polls: usize = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(1000);
    let unchanged: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir_in(
        std::env::var("BENCH_DIR").map_or_else(|_| PathBuf::from("/tmp"), PathBuf::from),
    )
    .expect("temp dir");
    // SQLite in BENCH_DIR, or a fresh database on the PostgreSQL server BENCH_DATABASE_URL.
    let location = match std::env::var("BENCH_DATABASE_URL") {
        Ok(server) if !server.trim().is_empty() => {
            let mut url = url::Url::parse(&server).expect("BENCH_DATABASE_URL is a URL");
            url.set_path(&format!("/rushes_feed_bench_{}", std::process::id()));
            Location::Postgres(SecretString::from(url.to_string()))
        }
        _ => Location::Sqlite(dir.path().join("rushes.db")),
    };
    // (1) First ingest, a reader running meanwhile.
    let store = Store::connect(&location, Identity::default())
        .await
        .expect("store");
    let reader_store = Store::connect(&location, Identity::default())
        .await
        .expect("reader store");
    let feed = service(&feed_url, store.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let (mut worst, mut reads) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let page = DeliveryFilter {
                    limit: 50,
                    ..DeliveryFilter::default()
                };
                reader_store.deliveries(&page).await.expect("read");
                reader_store.feed_state().await.expect("read");
                worst = worst.max(t.elapsed());
                reads += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (worst, reads)
        })
    };
    let (c0, t0) = (cpu(), Instant::now());
    let (valid, invalid, new) = poll(&feed).await;
    let (first_wall, first_cpu) = (t0.elapsed(), cpu() - c0);
    stop.store(true, Ordering::Relaxed);
    let (worst_read, reads) = reader.await.expect("reader");
    println!("first_ingest_ms {:.0}", ms(first_wall));
    println!("first_ingest_cpu_ms {:.0}", ms(first_cpu));
    println!("first_ingest_records {valid} {invalid} {new}");
    println!("reader_worst_ms {:.1}", ms(worst_read));
    println!("reader_reads {reads}");

    // (2) Unchanged polls: the poller of a running service (its memory warm)...
    let mut walls = Vec::new();
    let c0 = cpu();
    for _ in 0..unchanged {
        let t = Instant::now();
        let (_, _, new) = poll(&feed).await;
        assert_eq!(new, 0);
        walls.push(ms(t.elapsed()));
    }
    println!("unchanged_n {unchanged}");
    println!("unchanged_ms {:.1}", median(walls));
    println!("unchanged_cpu_ms {:.1}", ms(cpu() - c0) / unchanged as f64);
    // ... and the first poll after a restart (known links loaded from the store once).
    let restarted = service(&feed_url, store.clone());
    let (c0, t0) = (cpu(), Instant::now());
    let (_, _, new) = poll(&restarted).await;
    assert_eq!(new, 0);
    println!("restart_poll_ms {:.0}", ms(t0.elapsed()));
    println!("restart_poll_cpu_ms {:.0}", ms(cpu() - c0));
    drop(restarted);

    // (3) A feed that gains records at every poll, the history growing in the store.
    let grow = service(&grow_url, store.clone());
    let mut costs = Vec::with_capacity(polls);
    let mut added = 0;
    for _ in 0..polls {
        let (c0, t0) = (cpu(), Instant::now());
        let (_, _, new) = poll(&grow).await;
        costs.push((ms(t0.elapsed()), ms(cpu() - c0)));
        added += new;
    }
    let hundred = polls.clamp(1, 100);
    let first: Vec<(f64, f64)> = costs[..hundred].to_vec();
    let last: Vec<(f64, f64)> = costs[costs.len() - hundred..].to_vec();
    let (first_w, first_c) = (
        median(first.iter().map(|c| c.0).collect()),
        median(first.iter().map(|c| c.1).collect()),
    );
    let (last_w, last_c) = (
        median(last.iter().map(|c| c.0).collect()),
        median(last.iter().map(|c| c.1).collect()),
    );
    let stored = store
        .delivery_counts()
        .await
        .expect("counts")
        .iter()
        .map(|(_, n)| n)
        .sum::<i64>();
    println!("grow_polls {polls}");
    println!("grow_added {added}");
    println!("grow_stored {stored}");
    println!("grow_first_100_ms {first_w:.1} {first_c:.1}");
    println!("grow_last_100_ms {last_w:.1} {last_c:.1}");
    store.close().await;
}
