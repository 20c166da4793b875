//! The real binary: configuration errors, logs, signals, `feed check` and `status`.

use std::process::Stdio;

use crate::support::feed_server::FeedServer;
use crate::support::service::{ChildService, bin, temp_dir};
use serde_json::json;

fn feed_body() -> String {
    json!([
        {"source_url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=k&dl=0", "provider": "dropbox",
         "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "61 Camille"},
        {"url": "https://fromsmash.com/abc", "timestamp": "2025-10-17T12:35:00+0200"},
        {"url": "https://example.com/x", "timestamp": "yesterday"}
    ])
    .to_string()
}

#[test]
fn config_mistakes_name_the_variable_and_exit_2() {
    let dir = temp_dir();
    for (var, value, extra) in [
        ("WEBHOOK_MONITOR_INTERVAL", "0", true),
        ("WEBHOOK_MONITOR_INTERVAL", "soon", true),
        ("WEBHOOK_CACHE_TTL", "-5", true),
        ("WEBHOOK_TIMEOUT", "x", true),
        ("RUSHES_BIND", "nowhere", true),
        (
            "WEBHOOK_JSON_URL",
            "ftp://feed.example.com/list?token=s3cret",
            false,
        ),
        // An empty WEBHOOK_JSON_URL is no feed: `serve` then runs for Frame.io only.
        ("RUSHES_TUNNEL", "frp", true),
        ("RUSHES_PUBLIC_URL", "ftp://rushes.example.com", true),
    ] {
        let mut cmd = bin();
        cmd.arg("serve").current_dir(dir.path()).env(var, value);
        if extra {
            cmd.env("WEBHOOK_JSON_URL", "https://feed.example.com/list");
        }
        let out = cmd.output().expect("run rushes");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
    // A bad value in .env is caught the same way.
    std::fs::write(
        dir.path().join(".env"),
        "WEBHOOK_JSON_URL=/tmp/feed.json\nWEBHOOK_TIMEOUT=0\n",
    )
    .expect("write .env");
    let out = bin()
        .arg("serve")
        .current_dir(dir.path())
        .output()
        .expect("run rushes");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEBHOOK_TIMEOUT"));
}

#[test]
fn help_explains_commands_and_variables() {
    let out = bin()
        .args(["serve", "--help"])
        .output()
        .expect("run rushes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "WEBHOOK_JSON_URL",
        "WEBHOOK_CACHE_TTL",
        "RUSHES_BIND",
        "--monitor-interval",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let out = bin().arg("--help").output().expect("run rushes");
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["serve", "feed", "status"] {
        assert!(text.contains(verb), "missing {verb} in\n{text}");
    }
}

#[tokio::test]
async fn logs_go_to_app_log_with_the_seed_messages_and_no_secrets() {
    let feed = FeedServer::start(&feed_body()).await;
    // Two failures then success: one result, no warning.
    feed.fail_next(2, 503, "");
    let dir = temp_dir();
    let service = ChildService::start(
        dir.path(),
        &[
            ("WEBHOOK_JSON_URL", &feed.url()),
            ("RUST_LOG", "debug"),
            ("WEBHOOK_CACHE_TTL", "0"),
        ],
    )
    .await;
    let log = service
        .wait_for_log("WebhookService: fetched 2 records from webhook")
        .await;
    assert_eq!(feed.requests(), 3);
    assert!(!log.contains("failed to fetch webhook JSON"), "{log}");
    assert!(
        log.contains("WebhookService: skipping invalid item due to error:"),
        "{log}"
    );
    assert!(log.contains("unsupported timestamp"), "{log}");
    assert!(
        !log.contains("s3cret-feed-token"),
        "the feed token leaked into the log"
    );

    // Three failures: a warning, the error in the status, the service alive.
    feed.fail_next(3, 500, r#"{"error": "Failed to fetch data"}"#);
    let client = reqwest::Client::new();
    let refresh = client
        .post(service.url("/api/feed/refresh"))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refresh.status().as_u16(), 502);
    let log = service
        .wait_for_log("WebhookService: failed to fetch webhook JSON after 3 attempts")
        .await;
    assert!(log.contains("WARN"), "{log}");
    assert!(
        !log.contains("s3cret-feed-token"),
        "the feed token leaked into the log"
    );
    let status: serde_json::Value = client
        .get(service.url("/api/csv_monitor_status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert!(
        status["webhook"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Failed to fetch data"),
        "{status}"
    );
    let health = client
        .get(service.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());

    // `rushes status` reads the running service.
    let out = bin()
        .args(["status", "--url", &service.url("")])
        .output()
        .expect("rushes status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("feed available    no"), "{text}");
    assert!(text.contains("Failed to fetch data"), "{text}");
    assert!(text.contains("records           2"), "{text}");

    // SIGTERM: clean exit 0.
    let status = service.terminate().await;
    assert_eq!(status.code(), Some(0));
}

#[test]
fn status_reports_an_unreachable_service() {
    let port = crate::support::service::free_port();
    let out = bin()
        .args(["status", "--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("rushes status");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not reachable"));
}

async fn feed_check(url: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        bin()
            .args(["feed", "check", &url])
            .stderr(Stdio::null())
            .output()
    })
    .await
    .expect("join")
    .expect("rushes feed check")
}

#[tokio::test]
async fn feed_check_prints_records_and_reasons() {
    let feed = FeedServer::start(&feed_body()).await;
    let out = feed_check(feed.url()).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("s3cret-feed-token"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("new")
            && l.contains("dropbox")
            && l.contains("automatic")
            && l.contains("name=\"61 Camille.zip\"")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("legacy") && l.contains("fromsmash") && l.contains("manual")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("#2") && l.contains("invalid: ") && l.contains("timestamp")),
        "{text}"
    );
    assert!(
        text.contains("2 valid record(s), 1 invalid item(s)"),
        "{text}"
    );

    // A failing feed: exit 1 with the reason.
    feed.fail_next(3, 500, r#"{"error": "Failed to fetch data"}"#);
    let out = feed_check(feed.url()).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Failed to fetch data"), "{text}");

    // A local file works too.
    let dir = temp_dir();
    let path = dir.path().join("feed.json");
    std::fs::write(&path, feed_body()).expect("write feed");
    let out = bin()
        .args(["feed", "check"])
        .env("WEBHOOK_JSON_URL", &path)
        .output()
        .expect("rushes feed check");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 valid record(s)"));
}
