//! Several instances on one PostgreSQL, next to one SQLite instance, in one run:
//! (1) webhook ingest (verify + durable write) with 1, 2 and 3 instances, same load generator;
//! (2) claim throughput: tiny queued downloads drained by 3 instances × N workers vs 1 instance;
//! (3) a poll of an unchanged 100,000-record feed with everything stored, both backends.
//! The instances run in this process (each its own App, data folder and instance name).
//!
//! Run: `bash bench/scale_out.sh` (starts a throwaway PostgreSQL; or set RUSHES_BENCH_DATABASE_URL).
//! Without `--bench` (`cargo test --benches`) it is a short smoke run and BENCHMARKS.md is left alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rushes::app::App;
use rushes::config::{Config, FeedLocation, FrameioConfig};
use rushes::events::EventBus;
use rushes::feed::FeedService;
use rushes::feed::source::FeedSource;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[path = "common.rs"]
mod common;

const SECRET: &str = "bench-webhook-secret";

/// A fresh database on the server for one measurement.
fn database(server: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(server)?;
    url.set_path(&format!("/rushes_bench_{name}_{}", std::process::id()));
    Ok(url.to_string())
}

struct Running {
    addr: std::net::SocketAddr,
    store: rushes::store::Store,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), rushes::app::AppError>>,
}

async fn start(
    root: &std::path::Path,
    name: &str,
    db: Option<&str>,
    feed: FeedLocation,
    configure: impl FnOnce(&mut Config),
) -> anyhow::Result<Running> {
    let dir = root.join(name);
    let mut config = Config::for_dir(&dir, feed);
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.feed.cache_ttl = Duration::ZERO;
    config.frameio =
        FrameioConfig::from_lookup(|n| (n == "FRAMEIO_WEBHOOK_SECRET").then(|| SECRET.into()))?;
    config.database.url = db.map(|u| SecretString::from(u.to_string()));
    config.database.instance = name.to_string();
    config.database.lease = Duration::from_secs(5);
    configure(&mut config);
    let app = App::build(config).await?;
    let addr = app.local_addr();
    let store = app.state().store.clone();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        store,
        stop,
        task,
    })
}

async fn stop_all(running: Vec<Running>) {
    for r in running {
        let _ = r.stop.send(());
        let _ = r.task.await;
    }
}

/// `concurrency` closed-loop workers spread over `urls` for `seconds`: events/s acknowledged.
async fn ingest(
    urls: &[String],
    concurrency: u64,
    seconds: u64,
    counter: &Arc<AtomicU64>,
) -> (f64, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .build()
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let url = urls[w as usize % urls.len()].clone();
        let client = client.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if common::send_delivery(&client, &url, SECRET, n).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap_or((0, 1));
        ok += o;
        failed += f;
    }
    (ok as f64 / started.elapsed().as_secs_f64(), failed)
}

/// A feed of `n` Dropbox records whose R2 copies are tiny files of the loopback file server on
/// `port`, spread over 32 loopback addresses (the per-host limit counts addresses).
fn tiny_feed(n: usize, port: u16) -> String {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "source_url": format!("https://www.dropbox.com/scl/fi/t{i:06}/tiny-{i}.bin?rlkey=k{i}&dl=0"),
                "r2_url": format!("http://127.0.0.{}:{port}/f/{i}.bin", 1 + i % 32),
                "provider": "dropbox",
                "created_at": "2026-01-08T20:19:38+00:00",
                "original_filename": format!("tiny-{i}.bin"),
            })
        })
        .collect();
    serde_json::Value::Array(records).to_string()
}

/// A 100,000-record style feed: new-format Dropbox records with distinct links.
fn big_feed(n: usize) -> String {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "source_url": format!("https://www.dropbox.com/scl/fi/k{i:07}/Rushes%20{i}.mov?rlkey=abc{i}&dl=0"),
                "provider": "dropbox",
                "created_at": "2026-01-08T20:19:38+00:00",
                "original_filename": format!("Client {} rushes {i}.mov", i % 97),
            })
        })
        .collect();
    serde_json::Value::Array(records).to_string()
}

async fn file_server() -> anyhow::Result<u16> {
    let app = axum::Router::new().route(
        "/f/{name}",
        axum::routing::get(|| async { vec![7u8; 1024] }),
    );
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// Drains `n` tiny downloads with `instances` instances of `workers` each: seconds taken.
async fn drain(
    root: &std::path::Path,
    label: &str,
    db: Option<&str>,
    instances: usize,
    workers: usize,
    feed: &std::path::Path,
    n: usize,
) -> anyhow::Result<f64> {
    let downloads = std::env::var("BENCH_DOWNLOADS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("downloads"))
        .join(label);
    let mut running = Vec::new();
    let started = Instant::now();
    for i in 0..instances {
        let downloads = downloads.clone();
        running.push(
            start(
                root,
                &format!("{label}-{i}"),
                db,
                FeedLocation::File(feed.to_path_buf()),
                move |c| {
                    c.download.concurrency = workers;
                    c.download.dir = downloads;
                },
            )
            .await?,
        );
    }
    let store = running[0].store.clone();
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("BENCH_DRAIN_LIMIT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(600),
        );
    loop {
        let counts = store.delivery_counts().await?;
        let done: i64 = counts
            .iter()
            .filter(|(s, _)| s.to_string() == "done")
            .map(|(_, c)| *c)
            .sum();
        let failed: i64 = counts
            .iter()
            .filter(|(s, _)| s.to_string() == "failed")
            .map(|(_, c)| *c)
            .sum();
        if done + failed >= n as i64 {
            anyhow::ensure!(failed == 0, "{failed} downloads failed");
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "drain not done within BENCH_DRAIN_LIMIT: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed().as_secs_f64();
    stop_all(running).await;
    Ok(took)
}

/// First ingest, then an unchanged poll by the same service (body remembered) and by a fresh
/// one (a restart or another instance: compares with the store). Seconds each.
async fn unchanged_poll(
    root: &std::path::Path,
    label: &str,
    db: Option<&str>,
    feed: &std::path::Path,
) -> anyhow::Result<(f64, f64, f64)> {
    let dir = root.join(label);
    let mut config = Config::for_dir(&dir, FeedLocation::File(feed.to_path_buf()));
    config.database.url = db.map(|u| SecretString::from(u.to_string()));
    let store =
        rushes::store::Store::for_settings(&config.database, &config.database_path()).await?;
    let service = |store: rushes::store::Store| {
        FeedService::new(
            FeedSource::new(
                FeedLocation::File(feed.to_path_buf()),
                Duration::from_secs(60),
                chrono_tz::UTC,
            ),
            store,
            Duration::ZERO,
            EventBus::new(),
        )
    };
    let cancel = CancellationToken::new();
    let first = service(store.clone());
    let t = Instant::now();
    first.poll(true, &cancel).await?;
    let ingest = t.elapsed().as_secs_f64();
    let t = Instant::now();
    first.poll(true, &cancel).await?;
    let same = t.elapsed().as_secs_f64();
    let fresh = service(store.clone());
    let t = Instant::now();
    fresh.poll(true, &cancel).await?;
    let compared = t.elapsed().as_secs_f64();
    store.close().await;
    Ok((ingest, same, compared))
}

fn main() -> anyhow::Result<()> {
    let measuring = std::env::args().any(|a| a == "--bench");
    let Some(server) = std::env::var("RUSHES_BENCH_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("RUSHES_TEST_DATABASE_URL").ok())
    else {
        println!(
            "scale_out: no PostgreSQL (RUSHES_BENCH_DATABASE_URL): skipped; run bash bench/scale_out.sh"
        );
        return Ok(());
    };
    let seconds = if measuring {
        common::env_u64("BENCH_SECONDS", 5)
    } else {
        1
    };
    let concurrency = common::env_u64("BENCH_CONCURRENCY", 64);
    let tiny = if measuring {
        common::env_u64("BENCH_DOWNLOADS", 10_000)
    } else {
        200
    } as usize;
    let workers = common::env_u64("BENCH_WORKERS", 8) as usize;
    let records = if measuring {
        common::env_u64("BENCH_RECORDS", 100_000)
    } else {
        2_000
    } as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let root = tempfile::tempdir()?;
        let empty = root.path().join("empty.json");
        std::fs::write(&empty, "[]")?;
        let counter = Arc::new(AtomicU64::new(0));

        // (1) webhook ingest.
        let mut ingest_rows = Vec::new();
        for (label, db, n) in [
            ("sqlite", None, 1usize),
            ("pg1", Some(database(&server, "pg1")?), 1),
            ("pg2", Some(database(&server, "pg2")?), 2),
            ("pg3", Some(database(&server, "pg3")?), 3),
        ] {
            let mut running = Vec::new();
            for i in 0..n {
                running.push(
                    start(root.path(), &format!("{label}-{i}"), db.as_deref(), FeedLocation::File(empty.clone()), |_| {})
                        .await?,
                );
            }
            let urls: Vec<String> = running
                .iter()
                .map(|r| format!("http://{}/webhooks/frameio", r.addr))
                .collect();
            ingest(&urls, concurrency, 1, &counter).await; // warm-up
            let (rate, failed) = ingest(&urls, concurrency, seconds, &counter).await;
            println!("ingest {label}: {rate:.0} events/s ({failed} failed)");
            ingest_rows.push((label, n, rate, failed));
            stop_all(running).await;
        }

        // (2) claim throughput.
        let port = file_server().await?;
        let tiny_path = root.path().join("tiny.json");
        std::fs::write(&tiny_path, tiny_feed(tiny, port))?;
        let sqlite_drain = drain(root.path(), "drain-sqlite", None, 1, workers, &tiny_path, tiny).await?;
        let pg1 = database(&server, "drain1")?;
        let pg1_drain = drain(root.path(), "drain-pg1", Some(&pg1), 1, workers, &tiny_path, tiny).await?;
        let pg3 = database(&server, "drain3")?;
        let pg3_drain = drain(root.path(), "drain-pg3", Some(&pg3), 3, workers, &tiny_path, tiny).await?;
        println!("drain {tiny}: sqlite {sqlite_drain:.2} s, pg×1 {pg1_drain:.2} s, pg×3 {pg3_drain:.2} s");

        // (3) unchanged feed.
        let big_path = root.path().join("big.json");
        std::fs::write(&big_path, big_feed(records))?;
        let (s_ingest, s_same, s_cmp) = unchanged_poll(root.path(), "poll-sqlite", None, &big_path).await?;
        let pgp = database(&server, "poll")?;
        let (p_ingest, p_same, p_cmp) = unchanged_poll(root.path(), "poll-pg", Some(&pgp), &big_path).await?;
        println!("poll {records}: sqlite {s_ingest:.2}/{s_same:.3}/{s_cmp:.3} s, pg {p_ingest:.2}/{p_same:.3}/{p_cmp:.3} s");

        let sqlite_rate = ingest_rows[0].2;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut table = String::new();
        for (label, n, rate, failed) in &ingest_rows {
            table.push_str(&format!(
                "| {} | {n} | {rate:.0} events/s | {:.2} | {failed} |\n",
                if *label == "sqlite" { "SQLite" } else { "PostgreSQL" },
                rate / sqlite_rate
            ));
        }
        let date = chrono::Utc::now().format("%Y-%m-%d");
        let report = format!(
            "<!-- scale_out:start -->\n\
## Several instances on one PostgreSQL (`bash bench/scale_out.sh`)\n\n\
Measured {date}. All instances in one process on this {cores}-core machine (they share its CPU: more instances\n\
cannot add CPU here, they show the cost of coordination), PostgreSQL 15 on loopback started by\n\
`scripts/pg.sh` (fsync off: the throwaway test server), the SQLite instance on the same disk.\n\n\
Webhook ingest (HMAC verified, durably stored before the 200), {concurrency} connections spread\n\
over the instances, {seconds} s, same load generator:\n\n\
| backend | instances | acknowledged | vs 1 SQLite | failed |\n|---|---|---|---|---|\n{table}\n\
Claim throughput: {tiny} queued 1 KiB downloads (a loopback server, 32 loopback addresses so\n\
the per-host limit of 2 does not bind), {workers} workers per instance, time from start to all done:\n\n\
| setup | drain time | downloads/s | vs 1 SQLite instance |\n|---|---|---|---|\n\
| 1 SQLite instance | {sqlite_drain:.2} s | {a:.0} | 1.00 |\n\
| 1 instance on PostgreSQL | {pg1_drain:.2} s | {b:.0} | {rb:.2} |\n\
| 3 instances on PostgreSQL | {pg3_drain:.2} s | {c:.0} | {rc:.2} |\n\n\
A feed of {records} records (file on disk), everything stored:\n\n\
| backend | first ingest | unchanged poll, same process | unchanged poll, fresh instance (compares with the store) |\n|---|---|---|---|\n\
| SQLite | {s_ingest:.2} s | {s_same:.3} s | {s_cmp:.3} s |\n\
| PostgreSQL | {p_ingest:.2} s | {p_same:.3} s | {p_cmp:.3} s |\n\
<!-- scale_out:end -->\n",
            a = tiny as f64 / sqlite_drain,
            b = tiny as f64 / pg1_drain,
            c = tiny as f64 / pg3_drain,
            rb = sqlite_drain / pg1_drain,
            rc = sqlite_drain / pg3_drain,
        );
        println!("{report}");
        if measuring {
            common::write_section("scale_out", &report)?;
        } else {
            anyhow::ensure!(ingest_rows.iter().all(|r| r.3 == 0 && r.2 > 0.0), "smoke run failed");
        }
        anyhow::Ok(())
    })
}
