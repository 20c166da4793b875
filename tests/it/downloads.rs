//! Download engine end to end: a fake feed and a test file server on 127.0.0.1:0, a real rushes
//! (in-process, or the binary killed with SIGKILL), real files on disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::feed_server::FeedServer;
use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::{ChildService, TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;
use futures::StreamExt;
use rushes::config::{Config, HookCommand};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn record(source: &str, r2: Option<&str>, name: &str) -> Value {
    let mut r = json!({
        "source_url": source,
        "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": name,
    });
    if let Some(r2) = r2 {
        r["r2_url"] = json!(r2);
    }
    r
}

/// A legacy record: no forced name (Content-Disposition, then the URL, decide).
fn legacy(url: &str) -> Value {
    json!({ "url": url, "timestamp": "2026-01-08T20:19:38Z", "source": "dropbox" })
}

async fn feed_of(records: &[Value]) -> FeedServer {
    FeedServer::start(&Value::Array(records.to_vec()).to_string()).await
}

fn config(feed: &FeedServer, dir: &Path) -> Config {
    let mut config = config_for(dir, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config
}

async fn all(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.get("/api/deliveries?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// Waits until every delivery is in a final state and there are `n` of them.
async fn settled(app: &TestApp, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} settled deliveries"), WAIT, || async {
        let list = all(app).await;
        let done = list.len() == n
            && list.iter().all(|d| {
                ["done", "failed", "dry_run", "cancelled"]
                    .contains(&d["state"].as_str().unwrap_or(""))
            });
        done.then_some(list)
    })
    .await
}

async fn state_of(app: &TestApp, id: i64, state: &str) -> Value {
    wait_for(&format!("delivery {id} {state}"), WAIT, || async {
        let (_, d) = app.get(&format!("/api/deliveries/{id}")).await;
        (d["state"] == state).then_some(d)
    })
    .await
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|d| d["original_filename"] == name)
        .unwrap_or_else(|| panic!("no delivery {name:?} in {list:#?}"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn r2_copy_is_downloaded_first_under_the_forced_name() {
    let files = FileServer::start().await;
    let body = content(700_000, 1);
    let r2 = files.add("dropbox/bucket/obj/file", body.clone());
    let source = files.add("source/other-name.zip", content(10, 2));
    let feed = feed_of(&[record(&source, Some(&r2), "61 Camille.zip")]).await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let list = settled(&app, 1).await;
    let d = &list[0];
    assert_eq!(d["state"], "done", "{d:#}");
    assert_eq!(d["served_by"], "r2");
    let served = d["served_url"].as_str().unwrap_or("");
    assert!(served.ends_with("/dropbox/bucket/obj/file?…"), "{served}");
    assert!(!served.contains("s3cret"), "{served}");
    assert_eq!(d["sha256"], sha256_hex(&body));
    assert_eq!(d["bytes_done"], 700_000);
    assert_eq!(d["bytes_total"], 700_000);
    assert!(d["duration_ms"].as_i64().is_some());
    assert!(d["mean_speed_bps"].as_i64().unwrap_or(0) > 0);
    let downloads = dir.path().join("downloads");
    assert_eq!(files_in(&downloads), vec!["61 Camille.zip".to_string()]);
    assert_eq!(read(&downloads.join("61 Camille.zip")), body);
    assert!(files.seen("source/other-name.zip").is_empty());
    let (_, attempts) = app
        .get(&format!("/api/deliveries/{}/attempts", d["id"]))
        .await;
    let attempts = attempts["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0]["outcome"], "ok");
    assert_eq!(attempts[0]["url_role"], "r2");
    app.stop().await;
}

#[tokio::test]
async fn r2_errors_fall_back_to_the_source_link() {
    let files = FileServer::start().await;
    let body = content(300_000, 3);
    // 5xx: three tries of the R2 copy, then the source.
    let r2_500 = files.add("r2/broken", content(5, 0));
    files.fail_next("r2/broken", 10, 500);
    let source_a = files.add("src/a.mov", body.clone());
    // 4xx: the R2 copy is given up at once.
    let r2_404 = format!("http://{}/r2/missing?sig=x", files.addr);
    let source_b = files.add("src/b.mov", body.clone());
    let feed = feed_of(&[
        record(&source_a, Some(&r2_500), "a.mov"),
        record(&source_b, Some(&r2_404), "b.mov"),
    ])
    .await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let list = settled(&app, 2).await;
    for name in ["a.mov", "b.mov"] {
        let d = by_name(&list, name);
        assert_eq!(d["state"], "done", "{d:#}");
        assert_eq!(d["served_by"], "source");
        assert_eq!(d["sha256"], sha256_hex(&body));
        assert_eq!(read(&dir.path().join("downloads").join(name)), body);
    }
    assert_eq!(files.seen("r2/broken").len(), 3);
    let a = by_name(&list, "a.mov");
    let (_, attempts) = app
        .get(&format!("/api/deliveries/{}/attempts", a["id"]))
        .await;
    let outcomes: Vec<(String, String)> = attempts["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                a["url_role"].as_str().unwrap_or("").to_string(),
                a["error"].as_str().unwrap_or("ok").to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("r2".into(), "HTTP 500 Internal Server Error".into()),
            ("r2".into(), "HTTP 500 Internal Server Error".into()),
            ("r2".into(), "HTTP 500 Internal Server Error".into()),
            ("source".into(), "ok".into()),
        ]
    );
    let b = by_name(&list, "b.mov");
    let (_, attempts) = app
        .get(&format!("/api/deliveries/{}/attempts", b["id"]))
        .await;
    let attempts = attempts["attempts"].as_array().cloned().unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["error"], "HTTP 404 Not Found");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_range_and_the_hash_matches() {
    let files = FileServer::start().await;
    let body = content(3_000_000, 4);
    let url = files.add("src/clip.mov", body.clone());
    files.drop_after("src/clip.mov", 1_000_000, 1);
    let feed = feed_of(&[record(&url, None, "clip.mov")]).await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "done", "{:#}", list[0]);
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let seen = files.seen("src/clip.mov");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    // Resumed from what arrived before the drop (the server may lose its last chunk in flight).
    let start: u64 = seen[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .expect("a Range request");
    assert!(start > 0 && start <= 1_000_000, "{seen:?}");
    assert!(seen[1].if_range.is_some(), "{seen:?}");
    assert_eq!(seen[1].status, 206);
    let downloads = dir.path().join("downloads");
    assert_eq!(read(&downloads.join("clip.mov")), body);
    assert_eq!(files_in(&downloads), vec!["clip.mov".to_string()]);
    app.stop().await;
}

#[tokio::test]
async fn an_ignored_range_restarts_from_zero() {
    let files = FileServer::start().await;
    let body = content(2_000_000, 5);
    let url = files.add("src/norange.mov", body.clone());
    files.drop_after("src/norange.mov", 700_000, 1);
    files.ignore_range("src/norange.mov");
    let feed = feed_of(&[record(&url, None, "norange.mov")]).await;
    let dir = temp_dir();
    let app = TestApp::spawn(config(&feed, dir.path())).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "done", "{:#}", list[0]);
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let seen = files.seen("src/norange.mov");
    assert_eq!(seen.len(), 2);
    assert!(seen[1].range.is_some());
    assert_eq!(seen[1].status, 200);
    assert_eq!(read(&dir.path().join("downloads/norange.mov")), body);
    app.stop().await;
}

#[tokio::test]
async fn names_are_forced_sanitised_and_kept_inside_the_folder() {
    let files = FileServer::start().await;
    let long = format!("{}.mov", "x".repeat(296));
    let cases: Vec<(String, String)> = vec![
        ("../../etc/passwd".into(), "etc_passwd".into()),
        ("CON.txt".into(), "_CON.txt".into()),
        ("a\u{0000}b".into(), "ab".into()),
        (long.clone(), format!("{}.mov", "x".repeat(251))),
        ("61 Camille.zip".into(), "61 Camille.zip".into()),
        ("Rushes été.mov".into(), "Rushes été.mov".into()),
    ];
    let mut records = Vec::new();
    for (i, (raw, _)) in cases.iter().enumerate() {
        let url = files.add(&format!("f/{i}/file"), content(1000 + i, i as u64));
        records.push(record(&url, None, raw));
    }
    // No forced name: Content-Disposition (filename* first), else the URL's last segment.
    let cd = files.add("f/cd/file", content(10, 50));
    files.disposition(
        "f/cd/file",
        "attachment; filename=\"plain.mov\"; filename*=UTF-8''%C3%A9t%C3%A9%20J1.mov",
    );
    records.push(legacy(&cd));
    let seg = files.add("f/seg/Clip A.mov", content(10, 51));
    records.push(legacy(&seg));
    // A Dropbox folder served through its R2 copy: the forced name becomes a zip.
    let folder_r2 = files.add("f/folder/file", content(10, 52));
    records.push(record(
        "https://www.dropbox.com/scl/fo/abc/def?dl=1",
        Some(&folder_r2),
        "61 Camille rushes",
    ));
    let feed = feed_of(&records).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = settled(&app, records.len()).await;
    assert!(list.iter().all(|d| d["state"] == "done"), "{list:#?}");
    let mut expected: Vec<String> = cases.iter().map(|(_, e)| e.clone()).collect();
    expected.extend([
        "été J1.mov".to_string(),
        "Clip A.mov".to_string(),
        "61 Camille rushes.zip".to_string(),
    ]);
    expected.sort();
    let downloads = root.path().join("downloads");
    assert_eq!(files_in(&downloads), expected);
    assert!(expected.iter().all(|n| n.len() <= 255));
    // Nothing escaped the downloads folder.
    assert!(!root.path().join("etc").exists());
    assert_eq!(files_in(root.path()), vec!["data", "downloads"]);
    for d in &list {
        let path = PathBuf::from(d["final_path"].as_str().unwrap_or(""));
        assert_eq!(path.parent(), Some(downloads.as_path()), "{d:#}");
        assert_eq!(
            d["file_name"].as_str(),
            path.file_name().and_then(|n| n.to_str())
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_existing_different_file_is_never_overwritten() {
    let files = FileServer::start().await;
    let body = content(50_000, 6);
    let url = files.add("src/camille", body.clone());
    let feed = feed_of(&[record(&url, None, "61 Camille.zip")]).await;
    let root = temp_dir();
    let downloads = root.path().join("downloads");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    std::fs::write(downloads.join("61 Camille.zip"), b"an older delivery").expect("write");
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "done", "{:#}", list[0]);
    assert_eq!(
        files_in(&downloads),
        vec![
            "61 Camille (1).zip".to_string(),
            "61 Camille.zip".to_string()
        ]
    );
    assert_eq!(
        read(&downloads.join("61 Camille.zip")),
        b"an older delivery"
    );
    assert_eq!(read(&downloads.join("61 Camille (1).zip")), body);
    assert!(
        list[0]["final_path"]
            .as_str()
            .unwrap_or("")
            .ends_with("61 Camille (1).zip")
    );
    app.stop().await;
}

#[tokio::test]
async fn an_html_interstitial_fails_with_a_clear_message() {
    let files = FileServer::start().await;
    let url = files.add("src/expired", content(10, 7));
    files.html("src/expired");
    let feed = feed_of(&[record(&url, None, "61 Camille.zip")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "failed", "{:#}", list[0]);
    let error = list[0]["error"].as_str().unwrap_or("");
    assert!(error.contains("HTML page instead of the file"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    // An HTML page is not worth retrying: one try.
    assert_eq!(files.seen("src/expired").len(), 1);
    assert!(files_in(&root.path().join("downloads")).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn dry_run_records_deliveries_without_fetching() {
    let files = FileServer::start().await;
    let url = files.add("src/a.mov", content(10, 8));
    let feed = feed_of(&[record(&url, None, "a.mov")]).await;
    let root = temp_dir();
    let mut config = config(&feed, root.path());
    config.download.dry_run = true;
    let app = TestApp::spawn(config).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "dry_run");
    assert_eq!(files.requests(), 0);
    assert!(files_in(&root.path().join("downloads")).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_completion_hook_gets_the_file_without_shell_interpolation() {
    let files = FileServer::start().await;
    let body = content(2000, 9);
    let url = files.add("src/hooked", body.clone());
    let name = "a $(touch pwned) `touch pwned2` b.mov";
    let feed = feed_of(&[record(&url, None, name)]).await;
    let root = temp_dir();
    let mut config = config(&feed, root.path());
    config.download.on_complete = Some(HookCommand {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "echo \"file=$RUSHES_FILE\"; echo \"id=$RUSHES_DELIVERY_ID provider=$RUSHES_PROVIDER\"; \
             echo \"name=$RUSHES_ORIGINAL_FILENAME\"; test -f \"$RUSHES_FILE\" && exit 3"
                .into(),
        ],
    });
    let app = TestApp::spawn(config).await;
    let list = settled(&app, 1).await;
    let id = list[0]["id"].as_i64().expect("id");
    let d = wait_for("hook outcome", WAIT, || async {
        let (_, d) = app.get(&format!("/api/deliveries/{id}")).await;
        (!d["hook_exit_code"].is_null()).then_some(d)
    })
    .await;
    assert_eq!(d["state"], "done");
    assert_eq!(d["hook_exit_code"], 3);
    let output = d["hook_output"].as_str().unwrap_or("");
    let final_path = d["final_path"].as_str().unwrap_or("");
    assert!(output.contains(&format!("file={final_path}")), "{output}");
    assert!(
        output.contains(&format!("id={id} provider=dropbox")),
        "{output}"
    );
    assert!(output.contains(&format!("name={name}")), "{output}");
    assert!(!root.path().join("pwned").exists());
    assert!(!root.path().join("pwned2").exists());
    assert!(!Path::new("pwned").exists());
    app.stop().await;
}

#[tokio::test]
async fn at_most_two_downloads_per_host() {
    let files = FileServer::start().await;
    let mut records = Vec::new();
    for i in 0..4 {
        let path = format!("src/{i}.mov");
        let url = files.add(&path, content(400_000, 20 + i));
        files.throttle(&path, 2_000_000);
        records.push(record(&url, None, &format!("{i}.mov")));
    }
    let feed = feed_of(&records).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = settled(&app, 4).await;
    assert!(list.iter().all(|d| d["state"] == "done"), "{list:#?}");
    assert_eq!(files.max_in_flight(), 2);
    app.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_running_download_and_retry_resumes_it() {
    let files = FileServer::start().await;
    let body = content(3_000_000, 10);
    let url = files.add("src/slow.mov", body.clone());
    files.throttle("src/slow.mov", 1_000_000);
    let manual = "https://fromsmash.com/abc";
    let feed = feed_of(&[
        record(&url, None, "slow.mov"),
        json!({"url": manual, "timestamp": "2026-01-01T00:00:00Z"}),
    ])
    .await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let part = root.path().join("downloads/slow.mov.part");
    let list = wait_for("2 deliveries", WAIT, || async {
        let l = all(&app).await;
        (l.len() == 2).then_some(l)
    })
    .await;
    let id = by_name(&list, "slow.mov")["id"].as_i64().expect("id");
    let manual_id = list
        .iter()
        .find(|d| d["mode"] == "manual")
        .and_then(|d| d["id"].as_i64())
        .expect("manual id");
    wait_for("some bytes in the .part", WAIT, || async {
        (std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) > 100_000).then_some(())
    })
    .await;
    let (code, d) = app.post(&format!("/api/deliveries/{id}/cancel")).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["state"], "cancelled");
    // The worker stops; the .part stays for a later resume, the state stays cancelled.
    wait_for("the transfer to stop", WAIT, || async {
        (files.max_in_flight() >= 1 && in_flight_stopped(&files)).then_some(())
    })
    .await;
    assert!(part.exists());
    let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0 && kept < 3_000_000, "{kept}");
    let (_, d) = app.get(&format!("/api/deliveries/{id}")).await;
    assert_eq!(d["state"], "cancelled");
    // Wrong states are refused with 409; unknown ids are 404.
    let (code, refused) = app.post(&format!("/api/deliveries/{id}/cancel")).await;
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("cancelled")
    );
    let (code, _) = app.post(&format!("/api/deliveries/{id}/handled")).await;
    assert_eq!(code, 409);
    let (code, _) = app.post("/api/deliveries/9999/retry").await;
    assert_eq!(code, 404);
    let (code, d) = app
        .post(&format!("/api/deliveries/{manual_id}/handled"))
        .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["state"], "handled");
    // Retry: queued again, resumed from the kept bytes.
    let (code, d) = app.post(&format!("/api/deliveries/{id}/retry")).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["state"], "queued");
    let d = state_of(&app, id, "done").await;
    assert_eq!(d["sha256"], sha256_hex(&body));
    let seen = files.seen("src/slow.mov");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].status, 206);
    assert_eq!(read(&root.path().join("downloads/slow.mov")), body);
    assert!(!part.exists());
    let (code, _) = app.post(&format!("/api/deliveries/{id}/retry")).await;
    assert_eq!(code, 409);
    app.stop().await;
}

fn in_flight_stopped(files: &FileServer) -> bool {
    // The server's body stream is dropped when the client goes away.
    files.current_in_flight() == 0
}

#[tokio::test]
async fn events_stream_state_changes_and_progress() {
    let files = FileServer::start().await;
    let body = content(1_500_000, 11);
    let url = files.add("src/watched.mov", body.clone());
    files.throttle("src/watched.mov", 1_500_000);
    // The feed starts empty: the delivery appears once the event stream is open.
    let feed = feed_of(&[]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let response = app
        .client
        .get(app.url("/api/events"))
        .send()
        .await
        .expect("GET /api/events");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut stream = response.bytes_stream();
    feed.set_body(Value::Array(vec![record(&url, None, "watched.mov")]).to_string());
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200);
    let mut text = String::new();
    let mut progress = 0;
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !states.iter().any(|s| s == "done") {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events before the deadline")
            .expect("stream open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data).expect("JSON event");
            match event["type"].as_str() {
                Some("progress") => {
                    assert!(event["bytes"].as_u64().is_some(), "{event}");
                    assert_eq!(event["total"], 1_500_000);
                    assert!(event.get("speed_bps").is_some() && event.get("eta_s").is_some());
                    progress += 1;
                }
                Some("delivery_changed") => {
                    assert_eq!(event["delivery"]["id"], event["id"]);
                    states.push(event["state"].as_str().unwrap_or("").to_string());
                }
                _ => {}
            }
        }
    }
    assert!(progress >= 3, "only {progress} progress events");
    // Each delivery_changed carries the state read from the store when it is sent.
    assert!(states.iter().any(|s| s == "downloading"), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("done"));
    app.stop().await;
}

#[tokio::test]
async fn a_full_disk_fails_that_delivery_and_the_service_stays_up() {
    let root = temp_dir();
    let downloads = root.path().join("downloads");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&downloads)
        .output();
    match &mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED a_full_disk_fails_that_delivery_and_the_service_stays_up: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!(
                "SKIPPED a_full_disk_fails_that_delivery_and_the_service_stays_up: no mount ({e})"
            );
            return;
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(downloads.clone());

    let files = FileServer::start().await;
    // Announced size too big: refused before writing.
    let announced = files.add("src/big.mov", content(3_000_000, 12));
    // No announced size: the disk fills while writing.
    let unannounced = files.add("src/chunked.mov", content(3_000_000, 13));
    files.chunked("src/chunked.mov");
    let small_body = content(100_000, 14);
    let small = files.add("src/small.mov", small_body.clone());
    let feed = feed_of(&[
        record(&announced, None, "big.mov"),
        record(&unannounced, None, "chunked.mov"),
    ])
    .await;
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = settled(&app, 2).await;
    let big = by_name(&list, "big.mov");
    assert_eq!(big["state"], "failed");
    assert!(
        big["error"]
            .as_str()
            .unwrap_or("")
            .contains("not enough free space"),
        "{big:#}"
    );
    let chunked = by_name(&list, "chunked.mov");
    assert_eq!(chunked["state"], "failed");
    assert!(
        chunked["error"]
            .as_str()
            .unwrap_or("")
            .contains("no space left"),
        "{chunked:#}"
    );
    assert!(
        downloads.join("chunked.mov.part").exists(),
        "the .part is kept"
    );
    assert!(!downloads.join("chunked.mov").exists());
    // Still alive, and still downloading once there is room again.
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
    std::fs::remove_file(downloads.join("chunked.mov.part")).expect("free the space");
    feed.set_body(
        Value::Array(vec![
            record(&announced, None, "big.mov"),
            record(&unannounced, None, "chunked.mov"),
            record(&small, None, "small.mov"),
        ])
        .to_string(),
    );
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200);
    let list = settled(&app, 3).await;
    assert_eq!(by_name(&list, "small.mov")["state"], "done");
    assert_eq!(read(&downloads.join("small.mov")), small_body);
    app.stop().await;
}

#[tokio::test]
async fn serve_killed_mid_download_resumes_after_restart_without_duplicates() {
    let files = FileServer::start().await;
    let body = content(6_000_000, 15);
    let url = files.add("src/killed.mov", body.clone());
    files.throttle("src/killed.mov", 2_000_000);
    let feed = feed_of(&[record(&url, None, "killed.mov")]).await;
    let root = temp_dir();
    let envs = [
        ("WEBHOOK_JSON_URL", feed.url()),
        ("WEBHOOK_MONITOR_INTERVAL", "3600".to_string()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut service = ChildService::start(root.path(), &envs).await;
    let part = root.path().join("downloads/killed.mov.part");
    wait_for("a partial file over 1 MB", WAIT, || async {
        (std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) > 1_000_000).then_some(())
    })
    .await;
    service.kill();
    assert!(part.exists());
    let service = ChildService::start(root.path(), &envs).await;
    let client = reqwest::Client::new();
    let list = wait_for("the delivery done after restart", WAIT, || async {
        let body = service.get_json(&client, "/api/deliveries").await?;
        let list = body["deliveries"].as_array().cloned()?;
        (list.iter().all(|d| d["state"] == "done")).then_some(list)
    })
    .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let downloads = root.path().join("downloads");
    assert_eq!(files_in(&downloads), vec!["killed.mov".to_string()]);
    assert_eq!(read(&downloads.join("killed.mov")), body);
    let seen = files.seen("src/killed.mov");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].status, 206, "resumed, not restarted: {seen:?}");
    let log = service.log();
    assert!(log.contains("resuming interrupted downloads"), "{log}");
    assert!(!log.contains("s3cret"), "a signed query string was logged");
    drop(service);
}

#[tokio::test]
async fn download_command_falls_back_resumes_and_names_the_file() {
    let files = FileServer::start().await;
    let body = content(2_000_000, 16);
    let fallback = files.add("src/fallback.bin", body.clone());
    files.drop_after("src/fallback.bin", 500_000, 1);
    let primary = format!("http://{}/missing/file?sig=s3cret", files.addr);
    let out = temp_dir();
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args([
        "download",
        &primary,
        "--fallback",
        &fallback,
        "--name",
        "61 Camille.zip",
    ])
    .arg("--out")
    .arg(out.path());
    let output = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("finishes")
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("saved"), "{stdout}");
    assert!(stdout.contains(&sha256_hex(&body)), "{stdout}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(stderr.contains("connection lost"), "{stderr}");
    assert!(!stderr.contains("s3cret") && !stdout.contains("s3cret"));
    assert_eq!(files_in(out.path()), vec!["61 Camille.zip".to_string()]);
    assert_eq!(read(&out.path().join("61 Camille.zip")), body);
    let seen = files.seen("src/fallback.bin");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].status, 206);

    // A .part left by an interrupted run with the same name is reused, not numbered around.
    std::fs::write(out.path().join("again.bin.part"), b"stale bytes").expect("write");
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args(["download", &fallback, "--name", "again.bin"])
        .arg("--out")
        .arg(out.path());
    let output = cmd.output().await.expect("runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(read(&out.path().join("again.bin")), body);
    assert_eq!(
        files_in(out.path()),
        vec!["61 Camille.zip".to_string(), "again.bin".to_string()]
    );

    // A failure: exit code 1 and a message.
    let mut cmd = tokio::process::Command::from(bin());
    cmd.args(["download", &primary])
        .arg("--out")
        .arg(out.path());
    let output = cmd.output().await.expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("download failed"));
}

#[tokio::test]
async fn download_command_killed_then_rerun_resumes_where_it_stopped() {
    let files = FileServer::start().await;
    let body = content(3_000_000, 17);
    let url = files.add("slow/big.bin", body.clone());
    files.throttle("slow/big.bin", 1_000_000);
    let out = temp_dir();
    let part = out.path().join("big.bin.part");
    let sidecar = out.path().join("big.bin.part.validator");
    let mut first = bin()
        .args(["download", &url, "--name", "big.bin"])
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rushes download");
    wait_for("a third of the file", WAIT, || async {
        let len = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        (len > 1_000_000 && sidecar.is_file()).then_some(())
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let kept = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0 && kept < body.len() as u64, "kept {kept} bytes");

    let output = tokio::process::Command::from({
        let mut cmd = bin();
        cmd.args(["download", &url, "--name", "big.bin"])
            .arg("--out")
            .arg(out.path());
        cmd
    })
    .output()
    .await
    .expect("second run");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(read(&out.path().join("big.bin")), body);
    assert!(!sidecar.exists(), "the validator file is left behind");
    assert_eq!(files_in(out.path()), vec!["big.bin".to_string()]);
    let seen = files.seen("slow/big.bin");
    let resumed = seen.last().expect("requests");
    assert_eq!(resumed.status, 206, "{seen:?}");
    assert!(resumed.if_range.is_some(), "{seen:?}");
    let from: u64 = resumed
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .expect("a bytes=N- range");
    assert!(
        from >= kept.saturating_sub(1_048_576) && from > 0,
        "resumed from {from}, kept {kept}"
    );
}
