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
        .wait_for_log("FeedService: fetched 2 records from the feed")
        .await;
    assert_eq!(feed.requests(), 3);
    assert!(!log.contains("failed to fetch webhook JSON"), "{log}");
    assert!(
        log.contains("FeedService: skipping invalid item due to error:"),
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
        .wait_for_log("FeedService: failed to fetch the feed after 3 attempts")
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
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not reachable"), "{text}");
    assert!(text.contains("is `rushes serve` running?"), "{text}");
    // `feed check` without a URL names what to do, not a flag it rejects.
    let out = bin()
        .args(["feed", "check"])
        .env(
            "RUSHES_DATA_DIR",
            std::env::temp_dir().join("rushes-no-feed"),
        )
        .output()
        .expect("rushes feed check");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("WEBHOOK_JSON_URL") && text.contains("rushes feed check URL"),
        "{text}"
    );
    assert!(!text.contains("--feed-url"), "{text}");
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

async fn feed_check_args(url: String, quiet: bool) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = bin();
        cmd.args(["feed", "check", &url]);
        if quiet {
            cmd.arg("--quiet");
        }
        cmd.stderr(Stdio::null()).output()
    })
    .await
    .expect("join")
    .expect("rushes feed check")
}

fn summary_line(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains(" item(s): "))
        .unwrap_or_else(|| panic!("no summary in {text}"))
        .to_string()
}

/// `feed check --quiet` reads the body while it arrives (cut into batches for worker threads):
/// the same counts as the full check on a feed cut into many batches, with invalid items,
/// duplicates, brackets and commas inside strings, and a record holding a byte that is not
/// UTF-8 (issue 13: only that record is skipped). A body that is not an array or is cut short
/// fails as before.
#[tokio::test]
async fn feed_check_quiet_counts_as_the_full_check() {
    let mut items = Vec::new();
    for i in 0..4000 {
        let item = match i % 7 {
            0 => json!({"url": format!("https://www.dropbox.com/s/x{i}/clip.mov?dl=0"),
                        "timestamp": "2026-01-01 10:00:00", "source": "dropbox"}),
            1 => {
                json!({"source_url": format!("https://WWW.Dropbox.com/scl/fo/a{}/b?rlkey=k&amp;dl=0", i / 2),
                        "provider": "dropbox",
                        "r2_url": format!("https://x.workers.dev/dropbox/{}/file", i / 3),
                        "created_at": "2026-11-20T10:00:00Z",
                        "original_filename": "a \"b\", [c] {d}.mov"})
            }
            2 => json!({"url": format!("https://fromsmash.com/s{i}"),
                        "timestamp": "2026-11-20T10:00:00.5+0200"}),
            3 => json!("not an object, ]"),
            4 => json!({"url": "not a link", "timestamp": "2026-01-01 10:00:00"}),
            5 => json!({"url": format!("https://www.swisstransfer.com/d/{}", i / 5),
                        "timestamp": "2026-01-01T00:00:00Z", "extra": {"a": [1, {"b": "]},"}]}}),
            _ => json!({"url": format!("https://www.dropbox.com/s/x{}/clip.mov?DL=0#p", i - 6),
                        "timestamp": "2026-01-01 10:00:00"}),
        };
        items.push(item.to_string());
    }
    let body = format!("[\n{}\n]\n", items.join(",\n"));
    let mut bytes = body.clone().into_bytes();
    let at = body.find("fromsmash.com/s2004").expect("item 2004") + 14;
    bytes[at] = 0xff;
    let feed = FeedServer::start("[]").await;
    feed.set_body(bytes);
    let full = feed_check_args(feed.url(), false).await;
    let quiet = feed_check_args(feed.url(), true).await;
    assert!(full.status.success() && quiet.status.success());
    let summary = summary_line(&full);
    assert_eq!(summary_line(&quiet), summary);
    // 1,142 not objects or bad links, 1 not UTF-8.
    assert!(summary.contains("4000 item(s)"), "{summary}");
    assert!(summary.contains("1143 invalid item(s)"), "{summary}");
    assert!(!summary.contains(" 0 duplicate"), "{summary}");

    feed.set_body(r#"{"error": "Failed to fetch data"}"#);
    let out = feed_check_args(feed.url(), true).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Failed to fetch data"));

    feed.set_body(&body.as_bytes()[..body.len() / 2]);
    let out = feed_check_args(feed.url(), true).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("not valid JSON: EOF while parsing"), "{text}");
}

// Issue 26, item 8: the demo says when its port is taken and which one it took.
#[test]
fn the_demo_says_which_port_it_took_when_its_own_is_taken() {
    use std::io::BufRead as _;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let mut child = bin()
        .args(["demo", "--bind", &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rushes demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut said = None;
    let mut dashboard = None;
    while (said.is_none() || dashboard.is_none()) && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            if line.contains("is taken") {
                said = Some(line.clone());
            }
            if line.contains("dashboard") {
                dashboard = Some(line);
            }
        }
    }
    // Ctrl-C, as a person stops it (the demo removes its temporary folder).
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let said = said.expect("the demo said its port was taken");
    let dashboard = dashboard.expect("the dashboard line");
    assert!(said.contains(&addr.to_string()), "{said}");
    let port = dashboard
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/'))
        .unwrap_or_default();
    assert!(
        said.contains(&format!("port {port}")),
        "{said} / {dashboard}"
    );
    assert_ne!(port, addr.port().to_string());
    drop(taken);
}
