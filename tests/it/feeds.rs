//! Real feeds (issue 11): the age rule, a delivery seen again with better information, the R2
//! link as an identity, the original app's `/api/csv_downloads_status`, and `feed check --json`.
//! A fake feed and the demo's sample file server on 127.0.0.1:0, a real rushes, a real SQLite.

use std::process::Stdio;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use rushes::demo::SampleServer;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::feed_server::FeedServer;
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(20);

/// `now` minus `minutes`, RFC 3339.
fn ago(minutes: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn spawn(
    feed: &FeedServer,
    dir: &std::path::Path,
    concurrency: usize,
    max_age: Option<Duration>,
) -> TestApp {
    let mut config = config_for(dir, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.concurrency = concurrency;
    config.download.max_age = max_age;
    TestApp::spawn(config).await
}

async fn list(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/deliveries{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

async fn wait_for_count(app: &TestApp, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} deliveries"), WAIT, || async {
        let all = list(app, "").await;
        (all.len() == n).then_some(all)
    })
    .await
}

async fn wait_for_state(app: &TestApp, id: i64, state: &str) -> Value {
    wait_for(&format!("delivery {id} to be {state}"), WAIT, || async {
        let (_, d) = app.get(&format!("/api/deliveries/{id}")).await;
        (d["state"] == state).then_some(d)
    })
    .await
}

async fn refresh(app: &TestApp) -> Value {
    let (code, body) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200, "{body}");
    body
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|d| d["file_name"] == name)
        .unwrap_or_else(|| panic!("no delivery named {name}: {list:?}"))
}

#[tokio::test]
async fn records_older_than_the_age_limit_are_listed_not_downloaded_until_asked() {
    let files = SampleServer::start(Vec::new()).await.expect("files");
    let base = format!("http://{}", files.addr);
    let max_age = Duration::from_secs(36 * 3600);
    // Two minutes on either side of the limit: inside is queued, outside is available.
    let body = json!([
        {"source_url": format!("{base}/files/64-legacy-clip.mp4"), "provider": "dropbox",
         "created_at": ago(36 * 60 - 2), "original_filename": "just inside.mp4"},
        {"source_url": format!("{base}/files/59-old-teaser.mp4"), "provider": "dropbox",
         "created_at": ago(36 * 60 + 2), "original_filename": "just outside.mp4"},
        {"url": "https://fromsmash.com/old-manual", "timestamp": ago(90 * 24 * 60)}
    ]);
    let feed = FeedServer::start(&body.to_string()).await;
    let dir = temp_dir();
    let app = spawn(&feed, dir.path(), 2, Some(max_age)).await;
    let all = wait_for_count(&app, 3).await;
    let inside = by_name(&all, "just inside.mp4")["id"].as_i64().expect("id");
    let outside = by_name(&all, "just outside.mp4");
    let outside_id = outside["id"].as_i64().expect("id");
    assert_eq!(outside["state"], "available");
    // Age does not concern manual links.
    assert_eq!(
        all.iter()
            .find(|d| d["kind"] == "fromsmash")
            .expect("manual")["state"],
        "manual"
    );

    // The one inside the limit downloads; the one outside does not.
    wait_for_state(&app, inside, "done").await;
    assert!(dir.path().join("downloads/just inside.mp4").exists());
    let (_, still) = app.get(&format!("/api/deliveries/{outside_id}")).await;
    assert_eq!(still["state"], "available");
    assert!(!dir.path().join("downloads/just outside.mp4").exists());
    // Re-reading the feed does not queue it either.
    refresh(&app).await;
    let (_, still) = app.get(&format!("/api/deliveries/{outside_id}")).await;
    assert_eq!(still["state"], "available");

    // Filters, counts, metrics and the page know the state.
    let available = list(&app, "?state=available").await;
    assert_eq!(available.len(), 1);
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(
        metrics.contains("rushes_deliveries{state=\"available\"} 1"),
        "{metrics}"
    );
    let (_, page) = app.get_text("/").await;
    assert!(
        page.contains(&format!("/api/deliveries/{outside_id}/download")),
        "no Download button"
    );
    assert!(page.contains("<option value=\"available\""), "no filter");
    let (_, counts) = app.get_text("/ui/counts").await;
    assert!(counts.contains("Available"), "{counts}");

    // Download on request; only an available delivery can be asked for.
    let (code, conflict) = app
        .post(&format!("/api/deliveries/{inside}/download"))
        .await;
    assert_eq!(code, 409, "{conflict}");
    let (code, moved) = app
        .post(&format!("/api/deliveries/{outside_id}/download"))
        .await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(moved["state"], "queued");
    let done = wait_for_state(&app, outside_id, "done").await;
    assert_eq!(done["bytes_total"], 4 * 1024 * 1024);
    assert!(dir.path().join("downloads/just outside.mp4").exists());
    app.stop().await;
}

#[tokio::test]
async fn the_download_route_follows_the_access_rules() {
    let feed = FeedServer::start("[]").await;
    let dir = temp_dir();
    let mut config = config_for(dir.path(), &feed.url());
    config.service.api_token = Some(SecretString::from("t0ken-for-feeds".to_string()));
    let app = TestApp::spawn(config).await;
    for path in ["/api/deliveries/1/download", "/api/csv_downloads_status"] {
        let r = if path.ends_with("download") {
            app.client.post(app.url(path))
        } else {
            app.client.get(app.url(path))
        };
        let r = r.send().await.expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = app
        .client
        .get(app.url("/api/csv_downloads_status"))
        .bearer_auth("t0ken-for-feeds")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .client
        .post(app.url("/api/deliveries/1/download"))
        .bearer_auth("t0ken-for-feeds")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403, "cross-site POST");
    app.stop().await;
}

/// The real feed's sequence: "57 Camille" listed in the legacy format first, in the new format later.
fn camille_legacy(link: &str) -> Value {
    json!({"url": link, "timestamp": ago(30), "source": "webhook",
           "source_url": null, "r2_url": null, "provider": null, "original_filename": null})
}

fn camille_new(link: &str, r2: &str) -> Value {
    json!({"source_url": link, "r2_url": r2, "provider": "dropbox",
           "created_at": ago(30), "original_filename": "57 Camille.zip"})
}

#[tokio::test]
async fn a_legacy_record_seen_again_in_the_new_format_takes_its_name_before_the_download() {
    let legacy_link = "https://www.dropbox.com/scl/fo/c57/AAC57?rlkey=k57&DL=0";
    let new_link = "https://WWW.dropbox.com/scl/fo/c57/AAC57/?dl=0&amp;rlkey=k57#x";
    let feed = FeedServer::start(&json!([camille_legacy(legacy_link)]).to_string()).await;
    let dir = temp_dir();
    // Downloads paused: it cannot start.
    let app = spawn(&feed, dir.path(), 0, None).await;
    let first = wait_for_count(&app, 1).await;
    let id = first[0]["id"].as_i64().expect("id");
    assert_eq!(first[0]["record_format"], "legacy");
    assert_eq!(first[0]["file_name"], "AAC57.zip");
    assert!(first[0]["r2_url"].is_null());

    let r2 = "https://server.example.workers.dev/dropbox/b/c57/file";
    feed.set_body(json!([camille_new(new_link, r2)]).to_string());
    let outcome = refresh(&app).await;
    assert_eq!(outcome["new"], 0);
    let all = list(&app, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    let d = &all[0];
    assert_eq!(d["id"], id);
    assert_eq!(d["record_format"], "new");
    assert_eq!(d["file_name"], "57 Camille.zip");
    assert_eq!(d["original_filename"], "57 Camille.zip");
    assert_eq!(d["r2_url"], r2);
    assert_eq!(d["provider"], "dropbox");
    assert_eq!(d["state"], "queued");
    assert!(d["renamed_in_feed"].is_null());

    // Seen again in the legacy format: nothing is lost.
    feed.set_body(json!([camille_legacy(legacy_link)]).to_string());
    refresh(&app).await;
    let (_, again) = app.get(&format!("/api/deliveries/{id}")).await;
    assert_eq!(again["file_name"], "57 Camille.zip");
    assert_eq!(again["r2_url"], r2);
    app.stop().await;
}

#[tokio::test]
async fn once_downloaded_the_file_keeps_its_name_and_the_new_one_is_recorded() {
    let files = SampleServer::start(Vec::new()).await.expect("files");
    let link = format!("http://{}/files/59-old-teaser.mp4", files.addr);
    let legacy = json!([{"url": link, "timestamp": ago(30), "source": "dropbox"}]);
    let feed = FeedServer::start(&legacy.to_string()).await;
    let dir = temp_dir();
    let app = spawn(&feed, dir.path(), 1, None).await;
    let first = wait_for_count(&app, 1).await;
    let id = first[0]["id"].as_i64().expect("id");
    let done = wait_for_state(&app, id, "done").await;
    assert_eq!(done["file_name"], "59-old-teaser.mp4");

    let upgraded = json!([{"source_url": format!("{link}#v2"), "provider": "dropbox",
        "r2_url": format!("{link}?copy=r2"), "created_at": ago(30),
        "original_filename": "59 Old teaser FINAL.mp4"}]);
    feed.set_body(upgraded.to_string());
    refresh(&app).await;
    let all = list(&app, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    let d = &all[0];
    assert_eq!(d["state"], "done");
    assert_eq!(d["file_name"], "59-old-teaser.mp4");
    assert_eq!(d["renamed_in_feed"], "59 Old teaser FINAL.mp4");
    assert!(dir.path().join("downloads/59-old-teaser.mp4").exists());
    assert!(
        !dir.path()
            .join("downloads/59 Old teaser FINAL.mp4")
            .exists()
    );
    let (_, row) = app.get_text(&format!("/ui/deliveries/{id}/row")).await;
    assert!(row.contains("59 Old teaser FINAL.mp4"), "{row}");
    assert!(row.contains("59-old-teaser.mp4"), "{row}");
    app.stop().await;
}

#[tokio::test]
async fn records_with_the_same_r2_link_are_one_delivery() {
    let r2 = "https://server.example.workers.dev/dropbox/bucket/obj61/file";
    let body = json!([
        {"source_url": "https://www.dropbox.com/scl/fo/a61/AAA?rlkey=one&dl=0", "r2_url": r2,
         "provider": "dropbox", "created_at": ago(5), "original_filename": "61 Camille.zip"},
        // Another source link (a re-share), the same R2 copy spelled with a fragment.
        {"source_url": "https://www.dropbox.com/scl/fo/b61/BBB?rlkey=two&dl=0",
         "r2_url": format!("{r2}#copy"), "provider": "dropbox", "created_at": ago(4),
         "original_filename": "61 Camille.zip"},
        // A legacy record that lists the R2 copy itself as its link.
        {"url": r2, "timestamp": ago(3)},
        // A different R2 copy is a different delivery.
        {"source_url": "https://www.dropbox.com/scl/fo/a62/CCC?rlkey=three&dl=0",
         "r2_url": "https://server.example.workers.dev/dropbox/bucket/obj62/file",
         "provider": "dropbox", "created_at": ago(2), "original_filename": "62 Other.zip"}
    ]);
    let feed = FeedServer::start(&body.to_string()).await;
    let dir = temp_dir();
    let app = spawn(&feed, dir.path(), 0, None).await;
    let all = wait_for_count(&app, 2).await;
    let camille = by_name(&all, "61 Camille.zip");
    assert_eq!(camille["r2_url"], r2);
    assert_eq!(
        camille["source_url"],
        "https://www.dropbox.com/scl/fo/a61/AAA?dl=1&rlkey=one"
    );
    let outcome = refresh(&app).await;
    assert_eq!(outcome["new"], 0);
    assert_eq!(list(&app, "").await.len(), 2);
    app.stop().await;
}

fn is_local_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() && s.len() == 19
    })
}

#[tokio::test]
async fn the_original_page_reads_csv_downloads_status_through_a_real_request() {
    let files = SampleServer::start(Vec::new()).await.expect("files");
    let base = format!("http://{}", files.addr);
    let body = json!([
        {"source_url": format!("{base}/files/59-old-teaser.mp4"), "provider": "dropbox",
         "created_at": "2026-11-20T10:00:00Z", "original_filename": "59 Teaser.mp4"},
        {"url": "https://fromsmash.com/manual-one", "timestamp": "2026-11-20 09:00:00"},
        {"source_url": format!("{base}/gone/x.mov"), "provider": "dropbox",
         "created_at": "2026-11-19T10:00:00Z", "original_filename": "Gone.mov"}
    ]);
    let feed = FeedServer::start(&body.to_string()).await;
    let dir = temp_dir();
    let mut config = config_for(dir.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.feed.timezone = chrono_tz::Europe::Paris;
    config.download.concurrency = 1;
    let app = TestApp::spawn(config).await;
    let all = wait_for_count(&app, 3).await;
    let teaser = by_name(&all, "59 Teaser.mp4")["id"].as_i64().expect("id");
    let gone = by_name(&all, "Gone.mov")["id"].as_i64().expect("id");
    wait_for_state(&app, teaser, "done").await;
    wait_for_state(&app, gone, "failed").await;

    let r = app
        .client
        .get(app.url("/api/csv_downloads_status"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    let items: Value = r.json().await.expect("json");
    let items = items.as_array().cloned().expect("a JSON array");
    assert_eq!(items.len(), 2, "manual deliveries are left out: {items:?}");
    let fields = [
        "id",
        "filename",
        "original_url",
        "url",
        "url_type",
        "status",
        "progress",
        "message",
        "display_timestamp",
        "csv_timestamp",
        "manual_open",
    ];
    for item in &items {
        let obj = item.as_object().expect("object");
        let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = fields.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected, "{item}");
        assert!(item["id"].as_str().is_some_and(|id| id.starts_with("csv_")));
        for text in ["filename", "original_url", "url", "url_type", "message"] {
            assert!(item[text].is_string(), "{text}: {item}");
        }
        assert!(
            ["pending", "downloading", "completed", "failed", "cancelled"]
                .contains(&item["status"].as_str().unwrap_or("")),
            "{item}"
        );
        assert!(
            item["progress"].as_u64().is_some_and(|p| p <= 100),
            "{item}"
        );
        assert!(is_local_time(&item["display_timestamp"]), "{item}");
        assert!(is_local_time(&item["csv_timestamp"]), "{item}");
        assert!(item["manual_open"].is_boolean());
    }
    // Newest activity first: the failure came after the download finished (one worker, oldest first)
    // or before it; either way the order follows display_timestamp.
    let shown: Vec<&str> = items
        .iter()
        .filter_map(|i| i["display_timestamp"].as_str())
        .collect();
    assert!(shown[0] >= shown[1], "{shown:?}");
    let done = items
        .iter()
        .find(|i| i["id"] == format!("csv_{teaser}"))
        .expect("the done one");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["filename"], "59 Teaser.mp4");
    assert_eq!(done["url_type"], "dropbox");
    assert_eq!(done["manual_open"], false);
    assert_eq!(done["message"], "File 59 Teaser.mp4 (4.2 MB) downloaded");
    // FEED_TIMEZONE=Europe/Paris: 10:00 UTC is 11:00 there.
    assert_eq!(done["csv_timestamp"], "2026-11-20 11:00:00");
    assert_eq!(
        done["original_url"],
        format!("{base}/files/59-old-teaser.mp4")
    );
    let failed = items
        .iter()
        .find(|i| i["id"] == format!("csv_{gone}"))
        .expect("the failed one");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("404")),
        "{failed}"
    );

    let (code, with_manual) = app.get("/api/csv_downloads_status?include_manual=1").await;
    assert_eq!(code, 200);
    let with_manual = with_manual.as_array().cloned().unwrap_or_default();
    assert_eq!(with_manual.len(), 3);
    let manual = with_manual
        .iter()
        .find(|i| i["url_type"] == "fromsmash")
        .expect("manual one");
    assert_eq!(manual["manual_open"], true);
    assert_eq!(manual["status"], "pending");
    assert_eq!(manual["csv_timestamp"], "2026-11-20 09:00:00");
    let (code, _) = app
        .get("/api/csv_downloads_status?include_manual=maybe")
        .await;
    assert_eq!(code, 400);
    app.stop().await;
}

#[tokio::test]
async fn feed_check_json_says_what_a_first_start_would_do() {
    let files = SampleServer::start(Vec::new()).await.expect("files");
    let base = format!("http://{}", files.addr);
    let body = json!([
        {"source_url": "https://www.dropbox.com/scl/fo/a/b?rlkey=k&dl=0", "provider": "dropbox",
         "r2_url": format!("{base}/files/58-archive.mov"),
         "created_at": ago(60), "original_filename": "61 Camille.zip"},
        {"url": "https://www.dropbox.com/scl/fo/a/b?rlkey=k&DL=0", "timestamp": ago(50)},
        {"url": "https://example.com/x", "timestamp": "yesterday"},
        {"url": "https://fromsmash.com/x", "timestamp": ago(10)},
        {"url": format!("{base}/files/59-old-teaser.mp4"), "timestamp": ago(30 * 24 * 60), "source": "dropbox"}
    ]);
    let dir = temp_dir();
    let path = dir.path().join("feed.json");
    std::fs::write(&path, body.to_string()).expect("write feed");
    let run = |args: Vec<&'static str>, path: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["feed", "check"])
                .args(args)
                .arg(&path)
                .env("DOWNLOAD_MAX_AGE", "7d")
                .stderr(Stdio::piped())
                .output()
        })
        .await
        .expect("join")
        .expect("rushes feed check")
    };
    let out = run(vec!["--json", "--sizes"], path.clone()).await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let would: Vec<&str> = lines
        .iter()
        .map(|l| l["would"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(
        would,
        ["queued", "duplicate", "(none)", "manual", "available"]
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
    }
    let first = &lines[0];
    for field in [
        "format",
        "kind",
        "mode",
        "key",
        "duplicate_of",
        "file_name",
        "would",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["valid"], true);
    assert!(first.get("reason").is_none());
    assert_eq!(
        first["key"],
        "https://www.dropbox.com/scl/fo/a/b?dl=1&rlkey=k"
    );
    assert_eq!(first["file_name"], "61 Camille.zip");
    assert_eq!(first["size"], 8 * 1024 * 1024);
    assert_eq!(lines[1]["duplicate_of"], 0);
    assert_eq!(lines[1]["format"], "legacy");
    assert_eq!(lines[2]["valid"], false);
    assert!(
        lines[2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("timestamp"))
    );
    assert_eq!(lines[4]["size"], 4 * 1024 * 1024);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("1 queued, 1 available, 1 manual, 1 duplicate"),
        "{summary}"
    );
    assert!(summary.contains("total size 12.0 MiB (2 of 2"), "{summary}");

    // The plain text mode says the same, for people.
    let out = run(vec![], path).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("duplicate of #0"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("#4") && l.contains("available")),
        "{text}"
    );
    assert!(
        text.contains("4 valid record(s), 1 invalid item(s)"),
        "{text}"
    );
}

/// The state of the row whose file name is `name` on the open page ("" when absent).
async fn row_state_on_page(browser: &crate::support::browser::Browser, name: &str) -> String {
    let xpath = format!("//tr[@data-id][.//*[contains(@class,'name') and text()='{name}']]");
    match browser
        .client
        .find(fantoccini::Locator::XPath(&xpath))
        .await
    {
        Ok(row) => row
            .attr("data-state")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn the_demo_shows_its_history_and_an_old_record_downloads_from_the_page() {
    let sample = SampleServer::start(Vec::new())
        .await
        .expect("sample server");
    let dir = temp_dir();
    let mut config = rushes::demo::demo_config(
        dir.path(),
        &sample.feed_url(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    config.feed.monitor_interval = Duration::from_secs(3600);
    let app = TestApp::spawn(config).await;
    // 7 sample records + 57 Camille + two old ones; the DL=0 spelling adds nothing.
    wait_for_count(&app, 10).await;
    // The second poll lists 57 Camille in the new format: still one delivery.
    refresh(&app).await;
    let all = list(&app, "").await;
    assert_eq!(all.len(), 10, "{all:?}");
    let camille = all
        .iter()
        .find(|d| {
            d["source_url"]
                .as_str()
                .is_some_and(|s| s.ends_with("/files/57-camille.zip"))
        })
        .expect("57 Camille");
    // Upgraded before its download started, or (when a worker was quicker) renamed afterwards.
    assert!(
        camille["original_filename"] == "57 Camille.zip"
            || camille["renamed_in_feed"] == "57 Camille.zip",
        "{camille}"
    );
    for old in ["58 Archive interview.mov", "59-old-teaser.mp4"] {
        assert_eq!(by_name(&all, old)["state"], "available", "{old}");
    }

    let browser = crate::support::browser::Browser::start(1280, 900).await;
    browser
        .client
        .goto(&app.url("/"))
        .await
        .expect("open dashboard");
    let name = "58 Archive interview.mov";
    assert_eq!(row_state_on_page(&browser, name).await, "available");
    let xpath = format!(
        "//tr[@data-id][.//*[contains(@class,'name') and text()='{name}']]//button[text()='Download']"
    );
    browser
        .client
        .find(fantoccini::Locator::XPath(&xpath))
        .await
        .expect("a Download button")
        .click()
        .await
        .expect("click Download");
    wait_for("the old record to download from the page", WAIT, || async {
        (row_state_on_page(&browser, name).await == "done").then_some(())
    })
    .await;
    assert!(dir.path().join("downloads").join(name).exists());
    assert_eq!(
        row_state_on_page(&browser, "59-old-teaser.mp4").await,
        "available"
    );
    browser.close().await;
    app.stop().await;
}
