//! FromSmash behind `SMASH_AUTO=1` (experimental, issue 15) against a fake following the routes
//! of FromSmash's public SDK: files fetched into a folder named after the delivery; any error sends
//! the delivery back to manual with the reason shown; off by default.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_fromsmash::{FakeSmash, SmashTransfer};
use crate::support::feed_server::FeedServer;
use crate::support::file_server::{content, sha256_hex};
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(20);

fn record(link_id: &str, name: &str) -> Value {
    json!({
        "source_url": format!("https://fromsmash.com/{link_id}"),
        "provider": "fromsmash",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": name,
    })
}

async fn app_for(
    smash: &FakeSmash,
    records: Vec<Value>,
    root: &Path,
    auto: bool,
) -> (TestApp, FeedServer) {
    let feed = FeedServer::start(&Value::Array(records).to_string()).await;
    let mut config = config_for(root, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.resolvers.smash = auto;
    config.download.resolvers.smash_api = Some(url::Url::parse(&smash.base()).expect("base"));
    (TestApp::spawn(config).await, feed)
}

async fn list(app: &TestApp) -> Vec<Value> {
    let (_, body) = app.get("/api/deliveries?limit=100").await;
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_fromsmash_link_is_fetched_file_by_file_and_an_error_goes_back_to_manual() {
    let smash = FakeSmash::start().await;
    let files = vec![
        ("A010_C001.mov".to_string(), content(150_000, 101)),
        ("A010_C002.mov".to_string(), content(90_000, 102)),
    ];
    smash.add(SmashTransfer {
        link_id: "Rush-10_ok".into(),
        transfer_id: "tr-eu1-0010".into(),
        title: "Jour 10".into(),
        status: "Uploaded".into(),
        files: files.clone(),
        download_base: None,
    });
    smash.add(SmashTransfer {
        link_id: "Rush-11_busy".into(),
        transfer_id: "tr-eu1-0011".into(),
        title: "Jour 11".into(),
        status: "Processing".into(),
        files: files.clone(),
        download_base: None,
    });
    let root = temp_dir();
    let (app, _feed) = app_for(
        &smash,
        vec![
            record("Rush-10_ok", "Jour 10"),
            record("Rush-11_busy", "Jour 11"),
            record("Gone-12", "Jour 12"),
        ],
        root.path(),
        true,
    )
    .await;
    let all = wait_for("every FromSmash delivery settled", WAIT, || async {
        let all = list(&app).await;
        let settled = all.len() == 3
            && all
                .iter()
                .all(|d| d["state"] == "done" || (d["state"] == "manual" && !d["error"].is_null()));
        settled.then_some(all)
    })
    .await;
    let by_name = |n: &str| {
        all.iter()
            .find(|d| d["original_filename"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in {all:#?}"))
    };
    let done = by_name("Jour 10");
    assert_eq!(done["state"], "done", "{done:#}");
    let folder = root.path().join("downloads/Jour 10");
    for (name, body) in &files {
        let saved = std::fs::read(folder.join(name)).unwrap_or_default();
        assert_eq!(sha256_hex(&saved), sha256_hex(body), "{name}");
    }
    let busy = by_name("Jour 11");
    let reason = busy["error"].as_str().unwrap_or("");
    assert!(
        reason.contains("experimental") && reason.contains("Processing"),
        "{reason}"
    );
    let gone = by_name("Jour 12");
    let reason = gone["error"].as_str().unwrap_or("");
    assert!(reason.contains("expired or was deleted"), "{reason}");
    let (calls, unauthorized) = smash.requests();
    assert!(calls >= 6, "{calls} API calls");
    assert_eq!(
        unauthorized, 0,
        "an API call came without the account's token"
    );
    assert_eq!(smash.file_requests(), 2);
    app.stop().await;
}

#[tokio::test]
async fn fromsmash_stays_manual_unless_smash_auto_is_set() {
    let smash = FakeSmash::start().await;
    smash.add(SmashTransfer {
        link_id: "Rush-13".into(),
        transfer_id: "tr-eu1-0013".into(),
        title: "Jour 13".into(),
        status: "Uploaded".into(),
        files: vec![("A013.mov".into(), content(10_000, 103))],
        download_base: None,
    });
    let files = crate::support::file_server::FileServer::start().await;
    let url = files.add("plain/b.mov", content(10_000, 104));
    let plain = json!({
        "source_url": url, "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "b.mov",
    });
    let root = temp_dir();
    let (app, _feed) = app_for(
        &smash,
        vec![record("Rush-13", "Jour 13"), plain],
        root.path(),
        false,
    )
    .await;
    wait_for("the plain delivery done", WAIT, || async {
        list(&app)
            .await
            .iter()
            .any(|d| d["state"] == "done")
            .then_some(())
    })
    .await;
    let all = list(&app).await;
    let fs = all
        .iter()
        .find(|d| d["kind"] == "fromsmash")
        .expect("the FromSmash delivery");
    assert_eq!(fs["state"], "manual");
    assert!(fs["error"].is_null());
    assert_eq!(smash.requests().0, 0);
    app.stop().await;
}
