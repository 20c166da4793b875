//! Segmented transfers (issue 15) end to end: the test file server capping each connection, a
//! real rushes (in-process, the service binary killed with SIGKILL, the `download` command).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::feed_server::FeedServer;
use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::{ChildService, TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;
use rushes::config::{Config, SegmentSettings};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

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
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.segments = SegmentSettings {
        count: 4,
        min_size: MIB,
    };
    config
}

async fn all_done(app: &TestApp, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} deliveries done"), WAIT, || async {
        let (_, body) = app.get("/api/deliveries?limit=100").await;
        let list = body["deliveries"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = list.iter().find(|d| d["state"] == "failed") {
            panic!("a delivery failed: {failed:#}");
        }
        (list.len() == n && list.iter().all(|d| d["state"] == "done")).then_some(list)
    })
    .await
}

/// The first byte asked for by each ranged request.
fn range_starts(files: &FileServer, path: &str) -> Vec<u64> {
    files
        .seen(path)
        .iter()
        .filter_map(|s| s.range.as_deref())
        .filter_map(|r| r.strip_prefix("bytes="))
        .filter_map(|r| r.split('-').next())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_large_file_comes_over_four_ranged_connections_with_if_range() {
    let files = FileServer::start().await;
    let body = content(12 * MIB as usize, 41);
    let url = files.add("cap/big.mov", body.clone());
    // Each connection is capped: one alone would need 4 s.
    files.throttle("cap/big.mov", 3_000_000);
    let feed = feed_of(&[record(&url, "big.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let started = Instant::now();
    let list = all_done(&app, 1).await;
    let took = started.elapsed();
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let downloads = root.path().join("downloads");
    assert_eq!(std::fs::read(downloads.join("big.mov")).ok(), Some(body));
    assert_eq!(names_in(&downloads), vec!["big.mov".to_string()]);
    let seen = files.seen("cap/big.mov");
    let ranged: Vec<_> = seen.iter().filter(|s| s.range.is_some()).collect();
    assert!(ranged.len() >= 3, "{seen:?}");
    for s in &ranged {
        assert_eq!(s.status, 206, "{seen:?}");
        assert!(s.if_range.is_some(), "a range without If-Range: {seen:?}");
    }
    assert!(
        (3..=4).contains(&files.max_in_flight()),
        "{} connections at once",
        files.max_in_flight()
    );
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    let (_, detail) = app.get(&format!("/api/deliveries/{}", list[0]["id"])).await;
    assert_eq!(detail["bytes_done"], 12 * MIB, "{detail:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_fast_server_keeps_the_download_on_one_connection() {
    let files = FileServer::start().await;
    let body = content(8 * MIB as usize, 50);
    let url = files.add("open/fast.mov", body.clone());
    let feed = feed_of(&[record(&url, "fast.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = all_done(&app, 1).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let downloads = root.path().join("downloads");
    assert_eq!(std::fs::read(downloads.join("fast.mov")).ok(), Some(body));
    // Large enough and ranges allowed, but one connection gets it in well under 2 s: no range
    // asked for, nothing fetched twice.
    let seen = files.seen("open/fast.mov");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].range.is_none(), "{seen:?}");
    assert_eq!(files.bytes_sent("open/fast.mov"), 8 * MIB);
    assert_eq!(names_in(&downloads), vec!["fast.mov".to_string()]);
    app.stop().await;
}

#[tokio::test]
async fn a_slow_connection_is_handed_over_to_segments_without_fetching_again() {
    let files = FileServer::start().await;
    let size = 12 * MIB;
    let body = content(size as usize, 51);
    let url = files.add("cap/handover.mov", body.clone());
    files.throttle("cap/handover.mov", 3_000_000);
    let feed = feed_of(&[record(&url, "handover.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = all_done(&app, 1).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let downloads = root.path().join("downloads");
    assert_eq!(
        std::fs::read(downloads.join("handover.mov")).ok(),
        Some(body)
    );
    let seen = files.seen("cap/handover.mov");
    // The first request is the plain GET that kept going as the first range; the others ask
    // for what comes after it, never for its start again.
    assert!(seen[0].range.is_none(), "{seen:?}");
    let starts = range_starts(&files, "cap/handover.mov");
    assert!(starts.len() >= 3, "{seen:?}");
    assert!(starts.iter().all(|s| *s > 0), "{starts:?}");
    // Each range is fetched once: what a connection had in flight when its range was cut (or
    // taken over) is the only overshoot.
    let sent = files.bytes_sent("cap/handover.mov");
    assert!(
        sent <= size + (seen.len() as u64) * MIB / 2,
        "{sent} bytes sent for a {size}-byte file over {} requests",
        seen.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_slow_segment_is_split_so_it_does_not_set_the_finish_time() {
    let files = FileServer::start().await;
    let body = content(12 * MIB as usize, 42);
    let url = files.add("cap/steal.mov", body.clone());
    files.throttle("cap/steal.mov", 4_000_000);
    // The second connection crawls: alone, its range would take a minute.
    files.slow_request("cap/steal.mov", 2, 100_000);
    let feed = feed_of(&[record(&url, "steal.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let started = Instant::now();
    let list = all_done(&app, 1).await;
    let took = started.elapsed();
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let seen = files.seen("cap/steal.mov");
    let (slow_from, slow_to) = seen
        .get(1)
        .and_then(|s| s.range.as_deref())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .expect("the slow request was ranged");
    let starts = range_starts(&files, "cap/steal.mov");
    assert!(
        starts.iter().any(|s| *s > slow_from && *s <= slow_to),
        "nobody took over part of the slow range {slow_from}-{slow_to}: {starts:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_file_changed_upstream_between_runs_is_started_over_not_spliced() {
    let files = FileServer::start().await;
    let old = content(8 * MIB as usize, 43);
    let new = content(8 * MIB as usize, 44);
    let url = files.add("cap/changed.mov", old);
    files.throttle("cap/changed.mov", 2_000_000);
    let feed = feed_of(&[record(&url, "changed.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    wait_for("3 MiB sent", WAIT, || async {
        (files.bytes_sent("cap/changed.mov") > 3 * MIB).then_some(())
    })
    .await;
    // Stopped mid-way (segments stored), then the file changes on the server.
    app.stop().await;
    let requests_before = files.seen("cap/changed.mov").len();
    files.replace("cap/changed.mov", new.clone());
    files.throttle("cap/changed.mov", 0);
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = all_done(&app, 1).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&new));
    let downloads = root.path().join("downloads");
    assert_eq!(std::fs::read(downloads.join("changed.mov")).ok(), Some(new));
    let seen = files.seen("cap/changed.mov");
    let after = &seen[requests_before..];
    assert!(
        after
            .iter()
            .any(|s| s.if_range.is_some() && s.status == 200),
        "the stored segments were not asked for with If-Range: {after:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_server_that_ignores_ranges_gets_one_connection() {
    let files = FileServer::start().await;
    let body = content(6 * MIB as usize, 45);
    let url = files.add("cap/norange.mov", body.clone());
    files.ignore_range("cap/norange.mov");
    // Slow enough for the probe to open more connections (2.5 s alone).
    files.throttle("cap/norange.mov", 2_500_000);
    let feed = feed_of(&[record(&url, "norange.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = all_done(&app, 1).await;
    assert_eq!(list[0]["sha256"], sha256_hex(&body));
    let downloads = root.path().join("downloads");
    assert_eq!(names_in(&downloads), vec!["norange.mov".to_string()]);
    assert_eq!(
        std::fs::read(downloads.join("norange.mov")).ok(),
        Some(body)
    );
    // Ranges were asked for, answered with the whole file: one connection from then on.
    let seen = files.seen("cap/norange.mov");
    assert!(
        seen.iter().any(|s| s.range.is_some() && s.status == 200),
        "{seen:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn segments_count_against_the_per_host_connection_limit() {
    let files = FileServer::start().await;
    let a = content(8 * MIB as usize, 46);
    let b = content(8 * MIB as usize, 47);
    let url_a = files.add("cap/a.mov", a.clone());
    let url_b = files.add("cap/b.mov", b.clone());
    files.throttle("cap/a.mov", 4_000_000);
    files.throttle("cap/b.mov", 4_000_000);
    let feed = feed_of(&[record(&url_a, "a.mov"), record(&url_b, "b.mov")]).await;
    let root = temp_dir();
    let app = TestApp::spawn(config(&feed, root.path())).await;
    let list = all_done(&app, 2).await;
    for d in &list {
        let expected = if d["original_filename"] == "a.mov" {
            &a
        } else {
            &b
        };
        assert_eq!(d["sha256"], sha256_hex(expected));
    }
    assert!(
        files.max_in_flight() <= 4,
        "{} connections to one host",
        files.max_in_flight()
    );
    app.stop().await;
}

#[tokio::test]
async fn serve_killed_mid_segmented_download_resumes_every_segment() {
    let files = FileServer::start().await;
    let size = 16 * MIB;
    let body = content(size as usize, 48);
    let url = files.add("cap/killed.mov", body.clone());
    files.throttle("cap/killed.mov", 1_500_000);
    let feed = feed_of(&[record(&url, "killed.mov")]).await;
    let root = temp_dir();
    let envs = [
        ("WEBHOOK_JSON_URL", feed.url()),
        ("WEBHOOK_MONITOR_INTERVAL", "3600".to_string()),
        ("DOWNLOAD_SEGMENTS", "4".to_string()),
        ("DOWNLOAD_SEGMENT_MIN", "1MiB".to_string()),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut service = ChildService::start(root.path(), &envs).await;
    wait_for("8 MiB sent over the segments", WAIT, || async {
        (files.bytes_sent("cap/killed.mov") > 8 * MIB).then_some(())
    })
    .await;
    service.kill();
    let sent_before = files.bytes_sent("cap/killed.mov");
    let requests_before = files.seen("cap/killed.mov").len();
    let part = root.path().join("downloads/killed.mov.part");
    assert_eq!(
        std::fs::metadata(&part).map(|m| m.len()).ok(),
        Some(size),
        "the part is preallocated"
    );

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
    assert_eq!(names_in(&downloads), vec!["killed.mov".to_string()]);
    assert_eq!(std::fs::read(downloads.join("killed.mov")).ok(), Some(body));

    // After the restart only what was missing was asked for, segment by segment.
    let seen = files.seen("cap/killed.mov");
    let after = &seen[requests_before..];
    assert!(after.len() >= 2, "{after:?}");
    let segment_starts = [0, 4 * MIB, 8 * MIB, 12 * MIB];
    let resumed_mid_segment = after
        .iter()
        .filter_map(|s| s.range.as_deref())
        .filter_map(|r| {
            r.strip_prefix("bytes=")?
                .split('-')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .filter(|start| !segment_starts.contains(start))
        .count();
    assert!(resumed_mid_segment >= 2, "{after:?}");
    for s in after {
        assert_eq!(s.status, 206, "{after:?}");
        assert!(s.if_range.is_some(), "{after:?}");
    }
    let log = service.log();
    let resumed: u64 = log
        .split("resumed_bytes=")
        .nth(2)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(resumed >= 2 * MIB, "resumed from {resumed} bytes\n{log}");
    // What was stored is not fetched again (a split range may overshoot by what is in flight).
    let sent_after = files.bytes_sent("cap/killed.mov") - sent_before;
    assert!(
        sent_after <= size - resumed + MIB,
        "{sent_after} bytes fetched again after the restart (file {size}, {sent_before} before)\n{}",
        service.log()
    );

    drop(service);
}

#[tokio::test]
async fn download_command_killed_then_rerun_resumes_its_segments() {
    let files = FileServer::start().await;
    let size = 12 * MIB;
    let body = content(size as usize, 49);
    let url = files.add("cap/cli.bin", body.clone());
    files.throttle("cap/cli.bin", 1_500_000);
    let out = temp_dir();
    let sidecar = out.path().join("cli.bin.part.segments");
    let run = |cmd: &mut std::process::Command| {
        cmd.args(["download", &url, "--name", "cli.bin"])
            .arg("--out")
            .arg(out.path())
            .env("DOWNLOAD_SEGMENT_MIN", "1M");
    };
    let mut first = bin();
    run(&mut first);
    let mut first = first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn rushes download");
    wait_for("segments saved with 4 MiB done", WAIT, || async {
        let text = std::fs::read_to_string(&sidecar).ok()?;
        let done: u64 = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
            .sum();
        (done > 4 * MIB).then_some(())
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let sent_before = files.bytes_sent("cap/cli.bin");
    let stored: u64 = std::fs::read_to_string(&sidecar)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    assert!(stored >= 4 * MIB, "{stored}");

    let mut second = bin();
    run(&mut second);
    let output = tokio::process::Command::from(second)
        .output()
        .await
        .expect("second run");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        std::fs::read(out.path().join("cli.bin")).ok(),
        Some(body.clone())
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&sha256_hex(&body)), "{stdout}");
    assert_eq!(names_in(out.path()), vec!["cli.bin".to_string()]);
    let sent_after = files.bytes_sent("cap/cli.bin") - sent_before;
    assert!(
        sent_after <= size - stored + MIB,
        "{sent_after} bytes fetched again (file {size})"
    );
}
