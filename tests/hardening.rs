//! Issue 13: the holes found by the attack and fault probes, each held by a test that failed
//! before its fix. Real servers on 127.0.0.1:0, real child processes, real files.

mod support;

use std::path::Path;
use std::time::Duration;

use rushes::config::Config;
use serde_json::{Value, json};
use support::feed_server::FeedServer;
use support::file_server::{FileServer, content, sha256_hex};
use support::service::{TestApp, config_for, temp_dir};
use support::wait_for;

const WAIT: Duration = Duration::from_secs(20);

fn record(source: &str, name: &str) -> Value {
    json!({
        "source_url": source,
        "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": name,
    })
}

async fn feed_of(records: &[Value]) -> FeedServer {
    FeedServer::start(&Value::Array(records.to_vec()).to_string()).await
}

fn config(feed: &FeedServer, dir: &Path) -> Config {
    let mut config = config_for(dir, &feed.url());
    config.monitor_interval = Duration::from_secs(3600);
    config
}

async fn settled_one(app: &TestApp) -> Value {
    wait_for("one settled delivery", WAIT, || async {
        let (_, body) = app.get("/api/deliveries?limit=10").await;
        let list = body["deliveries"].as_array().cloned().unwrap_or_default();
        list.first()
            .filter(|d| ["done", "failed"].contains(&d["state"].as_str().unwrap_or("")))
            .cloned()
    })
    .await
}

// 1. A server that ignores If-Range sends bytes of a new version on resume: never spliced.
#[tokio::test]
async fn a_resume_answered_with_another_version_starts_over() {
    let files = FileServer::start().await;
    let version_a = content(3_000_000, 31);
    let version_b = content(3_000_000, 32);
    let url = files.add("src/spliced.mov", version_a);
    files.drop_after("src/spliced.mov", 1_000_000, 1);
    files.next_version_after_drop("src/spliced.mov", version_b.clone());
    files.ignore_if_range("src/spliced.mov");
    let feed = feed_of(&[record(&url, "spliced.mov")]).await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let d = settled_one(&app).await;
    assert_eq!(d["state"], "done", "{d:#}");
    assert_eq!(d["sha256"], sha256_hex(&version_b), "{d:#}");
    let on_disk = std::fs::read(dir.path().join("downloads/spliced.mov")).expect("file");
    assert!(on_disk == version_b, "the file on disk is not version B");
    let seen = files.seen("src/spliced.mov");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1].status, 206, "{seen:?}");
    assert_eq!(seen[2].range, None, "started over: {seen:?}");
    app.stop().await;
}

// 1. A Content-Range that does not start where asked is never appended.
#[tokio::test]
async fn a_resume_from_the_wrong_offset_starts_over() {
    let files = FileServer::start().await;
    let body = content(2_000_000, 33);
    let url = files.add("src/skewed.mov", body.clone());
    files.drop_after("src/skewed.mov", 800_000, 1);
    files.skew_content_range("src/skewed.mov", 1000);
    let feed = feed_of(&[record(&url, "skewed.mov")]).await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let d = settled_one(&app).await;
    assert_eq!(d["state"], "done", "{d:#}");
    assert_eq!(d["sha256"], sha256_hex(&body));
    let seen = files.seen("src/skewed.mov");
    assert_eq!(seen.last().map(|s| s.range.clone()), Some(None), "{seen:?}");
    app.stop().await;
}

/// `rushes serve` with everything under `root`, run to its exit (it must fail fast).
fn serve_to_exit(root: &Path, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = support::service::bin();
    cmd.arg("serve")
        .current_dir(root)
        .env(
            "RUSHES_BIND",
            format!("127.0.0.1:{}", support::service::free_port()),
        )
        .env("RUSHES_DATA_DIR", root.join("data"))
        .env("LOCAL_DOWNLOADS_DIR", root.join("downloads"))
        .env("RUSHES_LOG_DIR", root.join("logs"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("rushes did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

// 2. Two instances on one data folder: the second one stops at once and names the first.
#[tokio::test]
async fn a_second_instance_on_the_same_data_folder_exits_2() {
    let feed = feed_of(&[]).await;
    let dir = temp_dir();
    let first =
        support::service::ChildService::start(dir.path(), &[("WEBHOOK_JSON_URL", &feed.url())])
            .await;
    let pid = first.child.id();
    let root = dir.path().to_path_buf();
    let feed_url = feed.url();
    let out = tokio::task::spawn_blocking(move || {
        serve_to_exit(&root, &[("WEBHOOK_JSON_URL", &feed_url)])
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("another rushes (pid {pid}) uses this data folder")),
        "{stderr}"
    );
    // The first one is untouched.
    let health = reqwest::get(first.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
}

// 9. A downloads folder rushes cannot write in is refused at start (exit 2 naming the variable).
#[tokio::test]
async fn an_unwritable_downloads_folder_is_refused_at_start() {
    let feed = feed_of(&[]).await;
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    let feed_url = feed.url();
    // /proc refuses new files even to root, whom permission bits do not stop.
    let out = tokio::task::spawn_blocking(move || {
        serve_to_exit(
            &root,
            &[("WEBHOOK_JSON_URL", &feed_url), ("LOCAL_DOWNLOADS_DIR", "/proc")],
        )
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("LOCAL_DOWNLOADS_DIR"), "{stderr}");
}
