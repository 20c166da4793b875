//! Feed intake end to end: a fake feed on 127.0.0.1:0, a real rushes, a real SQLite file.

use std::time::Duration;

use crate::support::feed_server::FeedServer;
use crate::support::service::{TestApp, config_for, quick_retry, temp_dir};
use crate::support::wait_for;
use rushes::events::EventBus;
use rushes::feed::source::FeedSource;
use rushes::feed::{FeedService, PollOutcome};
use rushes::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn sample_feed() -> String {
    json!([
        {
            "source_url": "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?amp%3Bdl=0&dl=1&rlkey=itw",
            "r2_url": "https://server.example.workers.dev/dropbox/bucket/obj/file",
            "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": "61 Camille.zip"
        },
        {"url": "https://fromsmash.com/abc", "timestamp": "2025-10-17T12:35:00+0200", "source": "webhook"},
        {"url": "https://www.swisstransfer.com/d/xyz", "timestamp": "2025-10-17 13:24:13"},
        {"url": "https://wetransfer.com/downloads/1", "timestamp": "2025-10-16T08:00:00.123Z"},
        {"url": "https://x.workers.dev/dropbox/b/o/legacy.mov", "timestamp": "2025-10-15T08:00:00Z"},
        {"url": "https://example.com/no-timestamp"},
        {"url": "https://example.com/bad-ts", "timestamp": "17/10/2025"},
        "not an object",
        {"source_url": "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?dl=1&rlkey=itw",
         "provider": "dropbox", "created_at": "2026-01-08T20:19:38Z", "original_filename": "61 Camille.zip"}
    ])
    .to_string()
}

async fn deliveries(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/deliveries{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

async fn spawn_with_feed(feed: &FeedServer, dir: &std::path::Path) -> TestApp {
    let mut config = config_for(dir, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    // Downloads paused: these tests look at what intake decides, before any worker moves it on.
    config.download.concurrency = 0;
    TestApp::spawn(config).await
}

#[tokio::test]
async fn both_formats_are_taken_in_classified_and_deduplicated() {
    let feed = FeedServer::start(&sample_feed()).await;
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    let list = wait_for("5 deliveries", WAIT, || async {
        let list = deliveries(&app, "").await;
        (list.len() == 5).then_some(list)
    })
    .await;

    // Newest first.
    let created: Vec<&str> = list
        .iter()
        .filter_map(|d| d["created_at"].as_str())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted);

    let by_kind =
        |kind: &str| -> Vec<Value> { list.iter().filter(|d| d["kind"] == kind).cloned().collect() };
    let dropbox = by_kind("dropbox");
    assert_eq!(dropbox.len(), 2, "{dropbox:?}");
    let camille = dropbox
        .iter()
        .find(|d| d["original_filename"] == "61 Camille.zip")
        .expect("Camille delivery");
    assert_eq!(camille["state"], "queued");
    assert_eq!(camille["mode"], "automatic");
    assert_eq!(camille["record_format"], "new");
    assert_eq!(camille["file_name"], "61 Camille.zip");
    assert_eq!(
        camille["source_url"],
        "https://www.dropbox.com/scl/fo/oy6vg46u1vrdhsk080zs9/ALlPIDw5bpPaOMSZRVMZVUs?dl=1&rlkey=itw"
    );
    assert_eq!(
        camille["r2_url"],
        "https://server.example.workers.dev/dropbox/bucket/obj/file"
    );
    let legacy_r2 = dropbox
        .iter()
        .find(|d| d["record_format"] == "legacy")
        .expect("legacy r2");
    assert_eq!(legacy_r2["state"], "queued");
    for (kind, expected) in [("fromsmash", 1), ("swisstransfer", 1), ("external", 1)] {
        let found = by_kind(kind);
        assert_eq!(found.len(), expected, "{kind}");
        assert_eq!(found[0]["state"], "manual");
        assert_eq!(found[0]["mode"], "manual");
    }
    assert_eq!(by_kind("fromsmash")[0]["provider"], "webhook");
    assert_eq!(
        by_kind("swisstransfer")[0]["created_at"],
        "2025-10-17T13:24:13.000Z"
    );

    // Status counts valid records of the fetch: 6 valid (two spell the same delivery), 3 invalid.
    // The fetch is recorded just after its deliveries: wait for it rather than race it.
    let status = wait_for("the fetch to be recorded", WAIT, || async {
        let (_, status) = app.get("/api/csv_monitor_status").await;
        (status["webhook"]["records_processed"] != 0).then_some(status)
    })
    .await;
    assert_eq!(status["webhook"]["records_processed"], 6);
    assert_eq!(status["webhook"]["records"], 6);

    // Fetching the same feed again creates nothing new.
    let (code, refresh) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200, "{refresh}");
    assert_eq!(refresh["outcome"], "fetched");
    assert_eq!(refresh["new"], 0);
    assert_eq!(refresh["invalid"], 3);
    assert_eq!(deliveries(&app, "").await.len(), 5);

    // Filters, pagination, single delivery, 404 and 400.
    assert_eq!(deliveries(&app, "?state=manual").await.len(), 3);
    assert_eq!(
        deliveries(&app, "?kind=dropbox&state=queued").await.len(),
        2
    );
    let (_, page) = app.get("/api/deliveries?limit=2").await;
    let first_page = page["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(first_page.len(), 2);
    let cursor = page["next_before"].as_i64().expect("cursor");
    let (_, page2) = app
        .get(&format!("/api/deliveries?limit=10&before={cursor}"))
        .await;
    let rest = page2["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(rest.len(), 3);
    assert!(page2["next_before"].is_null());
    let ids: Vec<i64> = first_page
        .iter()
        .chain(&rest)
        .filter_map(|d| d["id"].as_i64())
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 5, "pages overlap: {ids:?}");
    let id = camille["id"].as_i64().expect("id");
    let (code, one) = app.get(&format!("/api/deliveries/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(one["original_filename"], "61 Camille.zip");
    let (code, missing) = app.get("/api/deliveries/999999").await;
    assert_eq!(code, 404);
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("999999"))
    );
    let (code, bad) = app.get("/api/deliveries?state=bogus").await;
    assert_eq!(code, 400);
    assert!(bad["error"].as_str().is_some_and(|e| e.contains("bogus")));
    let (code, _) = app.get("/api/nope").await;
    assert_eq!(code, 404);

    app.stop().await;
}

#[tokio::test]
async fn status_endpoint_has_the_exact_legacy_shape() {
    let feed = FeedServer::start(&sample_feed()).await;
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    let status = wait_for("a successful fetch", WAIT, || async {
        let (_, s) = app.get("/api/csv_monitor_status").await;
        s["webhook"]["last_fetch_ts"].is_string().then_some(s)
    })
    .await;
    let ts = status["webhook"]["last_fetch_ts"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M:%S").is_ok(),
        "last_fetch_ts {ts:?}"
    );
    let expected = json!({
        "data_source": "webhook",
        "monitor_interval": 3600,
        "webhook": {
            "available": true,
            "last_fetch_ts": ts,
            "error": null,
            "records_processed": 6,
            "records": 6
        },
        "csv_monitor": {
            "status": "inactive",
            "last_check": null,
            "error": "Webhook monitoring is active"
        }
    });
    assert_eq!(status, expected);
    app.stop().await;
}

#[tokio::test]
async fn non_array_bodies_and_error_objects_are_fetch_errors() {
    let feed = FeedServer::start(r#"{"error": "Failed to fetch data"}"#).await;
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    let status = wait_for("the error to be recorded", WAIT, || async {
        let (_, s) = app.get("/api/csv_monitor_status").await;
        s["webhook"]["error"].is_string().then_some(s)
    })
    .await;
    let error = status["webhook"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Failed to fetch data"), "{error}");
    assert_eq!(status["webhook"]["available"], false);
    assert_eq!(feed.requests(), 3, "3 attempts");

    // The PHP proxy's way: HTTP 500 with an error object.
    feed.set_body("[]");
    feed.fail_next(3, 500, r#"{"error": "upstream down"}"#);
    let (code, body) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 502);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("HTTP 500") && error.contains("upstream down"),
        "{error}"
    );

    // Other JSON that is not an array.
    feed.set_body("42");
    let (code, body) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 502);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("must be a JSON array")
    );

    // Recovery clears the error.
    feed.set_body(sample_feed());
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200);
    let (_, status) = app.get("/api/csv_monitor_status").await;
    assert_eq!(status["webhook"]["error"], Value::Null);
    assert_eq!(status["webhook"]["available"], true);
    // The service is alive throughout.
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_not_crashed_on() {
    let feed = FeedServer::start("[]").await;
    // 33 MiB of valid JSON array.
    let mut big = String::from("[");
    let item = r#"{"url": "https://fromsmash.com/x", "timestamp": "2025-10-17 10:00:00"},"#;
    while big.len() < 33 * 1024 * 1024 {
        big.push_str(item);
    }
    big.push_str("1]");
    feed.set_body(big);
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    let status = wait_for("the error to be recorded", WAIT, || async {
        let (_, s) = app.get("/api/csv_monitor_status").await;
        s["webhook"]["error"].is_string().then_some(s)
    })
    .await;
    assert!(
        status["webhook"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{status}"
    );
    assert_eq!(deliveries(&app, "").await.len(), 0);
    app.stop().await;
}

async fn service_for(
    feed: &FeedServer,
    dir: &std::path::Path,
    ttl: Duration,
) -> (FeedService, Store) {
    let store = crate::support::db::open_store(&dir.join("rushes.db")).await;
    let config = config_for(dir, &feed.url());
    let mut source = FeedSource::new(
        config.feed.location.clone().expect("feed"),
        config.feed.timeout,
        config.feed.timezone,
    );
    source.retry = quick_retry();
    (
        FeedService::new(source, store.clone(), ttl, EventBus::new()),
        store,
    )
}

#[tokio::test]
async fn ttl_is_respected_and_zero_always_fetches() {
    let feed = FeedServer::start(&sample_feed()).await;
    let dir = temp_dir();
    let cancel = CancellationToken::new();
    let (service, _) = service_for(&feed, dir.path(), Duration::from_secs(300)).await;
    assert!(matches!(
        service.poll(false, &cancel).await,
        Ok(PollOutcome::Fetched { .. })
    ));
    assert_eq!(
        service.poll(false, &cancel).await.ok(),
        Some(PollOutcome::Fresh)
    );
    assert_eq!(feed.requests(), 1, "within the TTL the feed is not asked");
    // A forced poll (the refresh endpoint) bypasses the TTL.
    assert!(matches!(
        service.poll(true, &cancel).await,
        Ok(PollOutcome::Fetched { .. })
    ));
    assert_eq!(feed.requests(), 2);

    // The TTL clock lives in the store: a new service on the same database still sees it fresh.
    let (again, _) = service_for(&feed, dir.path(), Duration::from_secs(300)).await;
    assert_eq!(
        again.poll(false, &cancel).await.ok(),
        Some(PollOutcome::Fresh)
    );
    assert_eq!(feed.requests(), 2);

    let (zero, _) = service_for(&feed, dir.path(), Duration::ZERO).await;
    for expected in 3..=5 {
        assert!(matches!(
            zero.poll(false, &cancel).await,
            Ok(PollOutcome::Fetched { .. })
        ));
        assert_eq!(feed.requests(), expected);
    }
}

#[tokio::test]
async fn validators_are_sent_and_304_means_unchanged() {
    let feed = FeedServer::start(&sample_feed()).await;
    feed.set_etag(Some("\"v1\""));
    let dir = temp_dir();
    let cancel = CancellationToken::new();
    let (service, store) = service_for(&feed, dir.path(), Duration::ZERO).await;
    assert!(matches!(
        service.poll(false, &cancel).await,
        Ok(PollOutcome::Fetched {
            valid: 6,
            new: 5,
            ..
        })
    ));
    assert_eq!(
        service.poll(false, &cancel).await.ok(),
        Some(PollOutcome::NotModified)
    );
    assert_eq!(feed.conditional_requests(), 1);
    assert_eq!(feed.not_modified_sent(), 1);
    let state = store.feed_state().await.expect("state");
    assert_eq!(state.records_processed, 6, "304 keeps the last count");
    assert!(state.last_error.is_none());
    // A changed feed (new ETag) is fetched in full again.
    feed.set_etag(Some("\"v2\""));
    assert!(matches!(
        service.poll(false, &cancel).await,
        Ok(PollOutcome::Fetched { new: 0, .. })
    ));
}

#[tokio::test]
async fn a_restart_with_the_same_feed_creates_no_duplicates() {
    let feed = FeedServer::start(&sample_feed()).await;
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    wait_for("5 deliveries", WAIT, || async {
        (deliveries(&app, "").await.len() == 5).then_some(())
    })
    .await;
    let before = deliveries(&app, "").await;
    app.stop().await;

    // Same data folder, the feed now has one more record and lost another: the lost one is kept.
    let mut items: Vec<Value> = serde_json::from_str(&sample_feed()).expect("json");
    items.remove(1);
    items
        .push(json!({"url": "https://fromsmash.com/new-one", "timestamp": "2026-02-01T10:00:00Z"}));
    feed.set_body(Value::Array(items).to_string());
    let app = spawn_with_feed(&feed, dir.path()).await;
    let after = wait_for("6 deliveries", WAIT, || async {
        let list = deliveries(&app, "").await;
        (list.len() == 6).then_some(list)
    })
    .await;
    for old in &before {
        let same = after.iter().find(|d| d["id"] == old["id"]).expect("kept");
        assert_eq!(same["dedupe_key"], old["dedupe_key"]);
        assert_eq!(same["state"], old["state"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_report_fetches_and_deliveries() {
    let feed = FeedServer::start(&sample_feed()).await;
    let dir = temp_dir();
    let app = spawn_with_feed(&feed, dir.path()).await;
    wait_for("5 deliveries", WAIT, || async {
        (deliveries(&app, "").await.len() == 5).then_some(())
    })
    .await;
    feed.fail_next(3, 503, "");
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 502);
    let (code, text) = app.get_text("/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "rushes_feed_fetches_total{outcome=\"ok\"} 1",
        "rushes_feed_fetches_total{outcome=\"error\"} 1",
        "rushes_feed_failures_total 1",
        "rushes_feed_records 6",
        "rushes_deliveries{state=\"queued\"} 2",
        "rushes_deliveries{state=\"manual\"} 3",
        "rushes_deliveries{state=\"done\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    app.stop().await;
}
