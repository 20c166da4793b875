//! Load generator for `POST /webhooks/frameio`: signed deliveries on loopback against a real
//! rushes (in this process, its own SQLite file in a temp folder).
//!
//! Measures (1) events/s at saturation, each verified and durably written before its 200, next to
//! the same server's `/healthz` throughput as a reference measured in the same run, and (2) p50/p99
//! latency at a steady 1,000 deliveries/s, (3) the same while another process writes the same
//! disk (`dd … conv=fsync` in a loop, issue 27), next to (2) from the same run. Writes the numbers
//! into BENCHMARKS.md.
//!
//! Run: `cargo bench --bench frameio_webhook` (optional env: BENCH_SECONDS, BENCH_CONCURRENCY,
//! BENCH_DD_MB: size of each file the `dd` loop writes and syncs, 64 by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rushes::app::App;
use rushes::config::FrameioConfig;
use rushes::config::{Config, FeedLocation};

#[path = "common.rs"]
mod common;

const SECRET: &str = "bench-webhook-secret";

/// Closed loop: `concurrency` workers send back to back for `seconds`; returns (ok, failed, elapsed).
async fn saturate(
    client: &reqwest::Client,
    url: &str,
    webhook: bool,
    concurrency: u64,
    seconds: u64,
    counter: Arc<AtomicU64>,
) -> (u64, u64, Duration) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let good = if webhook {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    common::send_delivery(&client, &url, SECRET, n).await
                } else {
                    client
                        .get(&url)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false)
                };
                if good {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        if let Ok((o, f)) = w.await {
            ok += o;
            failed += f;
        }
    }
    (ok, failed, started.elapsed())
}

/// Open loop at `rate`/s for `seconds`: latencies of each delivery in microseconds.
async fn steady(
    client: &reqwest::Client,
    url: &str,
    rate: u64,
    seconds: u64,
    counter: Arc<AtomicU64>,
) -> (Vec<u64>, u64) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for _ in 0..rate * seconds {
        ticker.tick().await;
        let client = client.clone();
        let url = url.to_string();
        let n = counter.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let ok = common::send_delivery(&client, &url, SECRET, n).await;
            (ok, started.elapsed().as_micros() as u64)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok((true, us)) => latencies.push(us),
            _ => failed += 1,
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

/// Another process writing the disk the store is on: `dd conv=fsync` of `mb` MiB files in a
/// loop, each removed after it is synced (the disk may be nearly full), until dropped.
struct DiskLoad {
    child: std::process::Child,
}

impl DiskLoad {
    fn start(dir: &std::path::Path, mb: u64) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let file = dir.join("dd.bin");
        let script = format!(
            "while :; do dd if=/dev/zero of='{f}' bs=1M count={mb} conv=fsync status=none; rm -f '{f}'; done",
            f = file.display()
        );
        let child = std::process::Command::new("bash")
            .args(["-c", &script])
            // Its own process group: the loop and the dd it runs are stopped together.
            .process_group(0)
            .spawn()?;
        Ok(Self { child })
    }
}

impl Drop for DiskLoad {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["--", &group])
            .status();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it: then
    // only a short smoke run, and BENCHMARKS.md is left alone.
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds = if measuring {
        common::env_u64("BENCH_SECONDS", 5)
    } else {
        1
    };
    let concurrency = common::env_u64("BENCH_CONCURRENCY", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let dir = tempfile::tempdir()?;
        let feed = dir.path().join("feed.json");
        std::fs::write(&feed, "[]")?;
        let mut config = Config::for_dir(dir.path(), FeedLocation::File(feed));
        config.feed.monitor_interval = Duration::from_secs(3600);
        config.frameio = FrameioConfig::from_lookup(|name| {
            (name == "FRAMEIO_WEBHOOK_SECRET").then(|| SECRET.to_string())
        })?;
        let app = App::build(config).await?;
        let addr = app.local_addr();
        let store = app.state().store.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency as usize)
            .build()?;
        let hook = format!("http://{addr}/webhooks/frameio");
        let health = format!("http://{addr}/healthz");
        let counter = Arc::new(AtomicU64::new(0));

        // Warm up both paths.
        saturate(&client, &health, false, concurrency, 1, counter.clone()).await;
        saturate(&client, &hook, true, concurrency, 1, counter.clone()).await;

        let (h_ok, h_failed, h_elapsed) =
            saturate(&client, &health, false, concurrency, seconds, counter.clone()).await;
        let stored_before = store.frameio_event_count().await?;
        let (w_ok, w_failed, w_elapsed) =
            saturate(&client, &hook, true, concurrency, seconds, counter.clone()).await;
        // Answers given from the webhook inbox reach the database moments later.
        let mut stored_after = store.frameio_event_count().await?;
        let drain = Instant::now();
        while ((stored_after - stored_before) as u64) < w_ok && drain.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stored_after = store.frameio_event_count().await?;
        }
        let health_rate = h_ok as f64 / h_elapsed.as_secs_f64();
        let hook_rate = w_ok as f64 / w_elapsed.as_secs_f64();

        // Right after the burst: the processor still works through the saturation's backlog.
        let backlog = store
            .pending_frameio_events(chrono::Utc::now().into(), 1_000_000)
            .await?
            .len();
        let (burst_latencies, b_failed) =
            steady(&client, &hook, 1000, seconds, counter.clone()).await;
        // Steady state: once the processor has caught up (at most 120 s), 1,000 events/s that it
        // processes as they come.
        let drained = Instant::now();
        while !store
            .pending_frameio_events(chrono::Utc::now().into(), 1)
            .await?
            .is_empty()
            && drained.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (latencies, s_failed) = steady(&client, &hook, 1000, seconds, counter.clone()).await;
        let s_failed = s_failed + b_failed;
        let p50 = percentile(&latencies, 0.50);
        let p99 = percentile(&latencies, 0.99);
        let max = percentile(&latencies, 1.0);
        let b_p50 = percentile(&burst_latencies, 0.50);
        let b_p99 = percentile(&burst_latencies, 0.99);

        // The same steady load while another process writes and syncs the same disk (only when
        // measuring: a test run writes no large files).
        let disk = if measuring {
            let mb = common::env_u64("BENCH_DD_MB", 64);
            let load = DiskLoad::start(dir.path(), mb)?;
            // Let the first file's dirty pages pile up before the load starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (lat, failed) = steady(&client, &hook, 1000, seconds, counter.clone()).await;
            drop(load);
            Some((mb, lat, failed))
        } else {
            None
        };
        let disk_row = match &disk {
            Some((mb, lat, failed)) => {
                let (p50, p99, max) = (
                    percentile(lat, 0.50),
                    percentile(lat, 0.99),
                    percentile(lat, 1.0),
                );
                let met = if p99 < 10.0 && max < 50.0 && *failed == 0 {
                    "met"
                } else {
                    "**not met**"
                };
                format!(
                    "| the same while `dd bs=1M count={mb} conv=fsync` writes the same disk in a loop: \
                     p50 / p99 / max ({failed} failed) | {p50:.2} / **{p99:.2}** / **{max:.2}** ms \
                     (goal p99 < 10 ms, max < 50 ms: {met}) | |\n"
                )
            }
            None => String::new(),
        };

        let _ = stop_tx.send(());
        let _ = server.await;

        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let report = format!(
            "<!-- frameio_webhook:start -->\n\
## Frame.io webhook receiver (`cargo bench --bench frameio_webhook`)\n\n\
Signed deliveries (`X-Frameio-Signature` HMAC-SHA256 verified, each durable before its 200: committed\n\
to SQLite in WAL mode by the group-commit writer, or in the webhook inbox when SQLite takes more than\n\
2 ms, see docs/frameio.md) from a Rust load generator on loopback, in the same process as rushes, on\n\
{cores} core(s); {concurrency} keep-alive connections, {seconds} s per phase.\n\
The reference is the same server's `/healthz` (a one-row SQLite read) measured in the same run.\n\n\
| measure | value | vs `/healthz` |\n\
|---|---|---|\n\
| `/healthz` throughput (reference) | {health_rate:.0} req/s | 1.00 |\n\
| webhook throughput, verify + durable write | **{hook_rate:.0} events/s** | {ratio:.2} |\n\
| events stored during the webhook phase | {stored} (every 200 is a row once the inbox is drained) | |\n\
| failed requests (healthz / webhook / steady) | {h_failed} / {w_failed} / {s_failed} | |\n\
| latency at a steady 1,000 events/s: p50 | {p50:.2} ms | |\n\
| latency at a steady 1,000 events/s: p99 | **{p99:.2} ms** | |\n\
| latency at a steady 1,000 events/s: max | {max:.2} ms | |\n\
| the same right after the burst ({backlog} events still to process): p50 / p99 | {b_p50:.2} / {b_p99:.2} ms | |\n\
{disk_row}\n\
The steady phase starts once the processor has caught up with the burst (the backlog of the\n\
throughput phase); the last row is the same load while it still works through that backlog.\n\
Load average at the end: {load}.\n\n\
Target: ≥ 5,000 events/s on a 2-core machine. Numbers vary with whatever else runs on the machine;\n\
compare the ratio column between runs rather than the absolute rates.\n\
<!-- frameio_webhook:end -->\n",
            ratio = hook_rate / health_rate,
            load = std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
            stored = stored_after - stored_before,
        );
        println!("{report}");
        if measuring {
            common::write_section("frameio_webhook", &report)?;
        } else {
            anyhow::ensure!(w_ok > 0 && w_failed == 0 && s_failed == 0, "smoke run failed");
        }
        anyhow::Ok(())
    })
}
