//! Issue 22 (hold under attack, round 3): each hole held by a test that failed before its fix.
//! Real child processes, real sockets, the suite's fakes.

use std::time::Duration;

use serde_json::json;

use crate::support::fake_frameio::delivery;
use crate::support::feed_server::FeedServer;
use crate::support::service::{ChildService, TestApp, config_for, temp_dir};
use crate::support::{db, wait_for};

const SECRET: &str = "whsec-round3-s3cret";

/// 1. An anonymous flood of refused webhook calls costs no disk write each: the WAL stays
/// small, the log gets a few lines, the count is exact and the inspector keeps its sample.
#[tokio::test]
async fn a_flood_of_refused_webhooks_writes_almost_nothing() {
    let dir = temp_dir();
    let service = ChildService::start(dir.path(), &[("FRAMEIO_WEBHOOK_SECRET", SECRET)]).await;
    let hook = service.url("/webhooks/frameio");
    let body = format!(
        "{}{}",
        delivery("comment.created", "comment", "flood"),
        " ".repeat(3000)
    );
    const CONNECTIONS: usize = 6;
    const PER_CONNECTION: usize = 500;
    let total = CONNECTIONS * PER_CONNECTION;
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    for _ in 0..CONNECTIONS {
        let hook = hook.clone();
        let body = body.clone();
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut refused = 0;
            for _ in 0..PER_CONNECTION {
                let status = client
                    .post(&hook)
                    .body(body.clone())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .ok();
                if status == Some(401) {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in flood {
        refused += task.await.expect("flood task");
    }
    let flood_secs = started.elapsed().as_secs();
    assert!(
        refused >= total * 9 / 10,
        "{refused} of {total} calls refused"
    );

    // Counted exactly (written or still in memory), sampled to the last hundred.
    let client = reqwest::Client::new();
    let status: serde_json::Value = client
        .get(service.url("/api/frameio/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let counted = status["rejected_calls"].as_u64().unwrap_or(0) as usize;
    assert!(
        (refused..=total).contains(&counted),
        "counted {counted}, the clients saw {refused} refusals of {total}: {status}"
    );
    let events: serde_json::Value = client
        .get(service.url("/api/frameio/events?per_page=200"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let list = events["events"].as_array().expect("events");
    assert_eq!(list.len(), 100, "the newest hundred are kept");
    assert!(list.iter().all(|e| e["verdict"] == "missing_signature"));

    // One transaction a second at most: the WAL holds a few hundred KB, not one write per call
    // (3,000 calls of 3 KB used to add ~30 MB).
    if !db::on_postgres() {
        let wal = std::fs::metadata(dir.path().join("data/rushes.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(wal < 8 * 1024 * 1024, "WAL of {wal} bytes after the flood");
    }

    // The log: the first refusal in full, then summaries (at most one every 10 s) that add up
    // to every refused call.
    let summed = |log: &str| -> usize {
        log.lines()
            .filter_map(|l| {
                let rest = l.split("Frame.io webhook: ").nth(1)?;
                rest.split(' ').next()?.parse::<usize>().ok()
            })
            .sum()
    };
    let log = wait_for(
        "summaries of every refused call",
        Duration::from_secs(40),
        || async {
            let log = service.log();
            (summed(&log) + 1 == counted).then_some(log)
        },
    )
    .await;
    // One line, then a summary at most every 10 s (the flood lasts longer on a busy machine).
    let lines = log.lines().filter(|l| l.contains("refused")).count();
    let most = 3 + flood_secs as usize / 10;
    assert!(
        lines <= most,
        "{lines} log lines about refused calls in {flood_secs} s:\n{log}"
    );
}

/// 9. A signed query never shows in the API, the dedupe key included.
#[tokio::test]
async fn a_signed_query_shows_nowhere_in_the_api() {
    let signed = "https://files.example.com/rush/clip.mov?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                  &X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=s3cretsignature0123";
    let feed = FeedServer::start(
        &json!([{
            "source_url": signed,
            "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": "clip.mov",
        }])
        .to_string(),
    )
    .await;
    let dir = temp_dir();
    let mut config = config_for(dir.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.dry_run = true;
    let app = TestApp::spawn(config).await;
    let body = wait_for("the delivery", Duration::from_secs(20), || async {
        let (_, body) = app.get_text("/api/deliveries").await;
        body.contains("clip.mov").then_some(body)
    })
    .await;
    assert!(!body.contains("s3cretsignature"), "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    let key = list["deliveries"][0]["dedupe_key"]
        .as_str()
        .unwrap_or_default();
    assert!(key.ends_with("?…"), "{key}");
    let (_, one) = app.get_text("/api/deliveries/1").await;
    assert!(!one.contains("s3cretsignature"), "{one}");
    let (_, asked) = app.get_text("/api/deliveries?show_signed=1").await;
    assert!(asked.contains("s3cretsignature"), "asked for: {asked}");
    app.stop().await;
}

/// 12. A data folder that is a file (or cannot be written) is a configuration mistake naming
/// RUSHES_DATA_DIR, exit 2.
#[tokio::test]
async fn a_data_dir_that_is_a_file_exits_2_naming_the_variable() {
    let dir = temp_dir();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").expect("file");
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = crate::support::service::bin();
        cmd.arg("serve")
            .current_dir(dir.path())
            .env("RUSHES_DATA_DIR", &file)
            .env("RUSHES_BIND", "127.0.0.1:0")
            .env("LOCAL_DOWNLOADS_DIR", dir.path().join("downloads"))
            .env("RUSHES_LOG_DIR", dir.path().join("logs"));
        let out = cmd.output().expect("run rushes");
        drop(dir);
        out
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("RUSHES_DATA_DIR") && stderr.contains("not a folder"),
        "{stderr}"
    );
}

/// Frame.io's real rate limits: calls slow to the refill pace that `x-ratelimit-limit`,
/// `-remaining` and `-window` describe instead of running into 429s; a 5xx is retried after the
/// guide's wait, not at once.
#[tokio::test]
async fn frameio_calls_follow_the_rate_limit_headers_and_wait_after_a_5xx() {
    use crate::support::fake_frameio::{ACCOUNT, FakeFrameio, STATIC_TOKEN};
    use rushes::config::FrameioConfig;
    use rushes::frameio::client::Client;
    let fake = FakeFrameio::start().await;
    fake.add_file("f");
    // 5 requests a second: 20 calls take about three seconds and meet no 429.
    fake.set_rate_limit(5, 1000);
    let vars = [
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.to_string()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.to_string()),
    ];
    let config = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("config");
    let mut client = Client::from_config(&config, None).expect("client");
    let started = std::time::Instant::now();
    for _ in 0..20 {
        client.file(ACCOUNT, "f").await.expect("file");
    }
    assert_eq!(fake.bucket_refused(), 0, "paced below the limit");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A 503: the retry waits the server-error wait (30 s by default; 2 s here), not the
    // transport backoff.
    fake.set_rate_limit(100, 1000);
    assert_eq!(
        rushes::frameio::client::SERVER_ERROR_WAIT,
        Duration::from_secs(30)
    );
    client.server_error_wait = Duration::from_secs(2);
    fake.server_error_next(1);
    let started = std::time::Instant::now();
    client.file(ACCOUNT, "f").await.expect("file after a 503");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// 8. Past the connection cap, half-sent requests cannot sit on the /healthz reserve: while
/// 1,100 of them arrive and stay open, /healthz answers.
#[tokio::test]
async fn healthz_answers_during_a_flood_of_half_sent_requests() {
    use tokio::io::AsyncWriteExt as _;
    let feed = FeedServer::start("[]").await;
    let dir = temp_dir();
    let mut config = config_for(dir.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.service.limits.max_connections = 32;
    config.service.limits.healthz_reserve = 4;
    let app = TestApp::spawn(config).await;
    let addr = app.addr;
    let attack = tokio::spawn(async move {
        let mut held = Vec::new();
        for i in 0..1100 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                // Half a request: the request line and one header, never the blank line.
                let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
                held.push(s);
            }
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        held
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut answered = 0;
    let started = std::time::Instant::now();
    while !attack.is_finished() || answered == 0 {
        let ok = client
            .get(app.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            answered += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "/healthz never answered during the flood"
        );
        tokio::task::yield_now().await;
    }
    let held = attack.await.expect("attack");
    assert!(held.len() >= 1000, "the flood ran: {}", held.len());
    assert!(answered > 0);
    drop(held);
    app.stop().await;
}
