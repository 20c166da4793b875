//! Dropbox's own failures, named (issue 15): recorded-shape failure pages served by the test file
//! server where the file was expected; each delivery fails with its own message and next step,
//! and a page that waiting cannot fix is not retried.

use std::time::Duration;

use crate::support::feed_server::FeedServer;
use crate::support::file_server::FileServer;
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// The pages as Dropbox serves them (structure and wording kept, scripts and styles left out).
const ZIP_TOO_LARGE: &str = r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Dropbox - Error</title></head><body class="error-page"><div id="errorbox"><img src="https://cfl.dropboxstatic.com/static/images/illustration_catalog/sickbox-illo_m1.png" alt=""><h1>The zip file is too large.</h1><p>Please download individual files or use the Dropbox desktop app.</p><a href="https://www.dropbox.com/">Go to Dropbox home</a></div></body></html>"#;
const TOO_MUCH_TRAFFIC: &str = r#"<!DOCTYPE html><html><head><title>Dropbox - 429</title></head><body><div class="error-page"><h1>Error (429)</h1><p>This account's links are generating too much traffic and have been temporarily disabled!</p><a href="https://www.dropbox.com/help/4204">Learn more</a></div></body></html>"#;
const DELETED: &str = r#"<!DOCTYPE html><html><head><title>Dropbox - 404</title></head><body><div class="error-page"><h1>Error (404)</h1><p>We can't find the page you're looking for.</p><p>That file isn’t here anymore. It may have been deleted or moved.</p><a href="https://www.dropbox.com/">Dropbox home</a></div></body></html>"#;
const SIGN_IN: &str = r#"<!DOCTYPE html><html><head><title>Dropbox</title></head><body><div class="login-page"><h1>Sign in to view this folder</h1><p>You need to sign in to Dropbox to access this shared link.</p><form action="/ajax_login" method="post"><input name="login_email"></form></div></body></html>"#;

fn record(source: &str, name: &str) -> Value {
    json!({
        "source_url": source,
        "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": name,
    })
}

#[tokio::test]
async fn dropbox_failure_pages_are_named_with_a_next_step() {
    let files = FileServer::start().await;
    let cases = [
        (
            "zip",
            200,
            ZIP_TOO_LARGE,
            "download the folder's files one by one",
        ),
        (
            "traffic",
            429,
            TOO_MUCH_TRAFFIC,
            "suspended this link for excess bandwidth",
        ),
        ("deleted", 404, DELETED, "deleted"),
        ("signin", 200, SIGN_IN, "needs a signed-in Dropbox account"),
    ];
    let mut records = Vec::new();
    for (name, status, page, _) in &cases {
        let path = format!("db/{name}");
        let url = files.add(&path, b"unused".to_vec());
        files.page(&path, *status, page);
        records.push(record(&url, &format!("{name}.mov")));
    }
    let feed = FeedServer::start(&Value::Array(records).to_string()).await;
    let root = temp_dir();
    let mut config = config_for(root.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    let app = TestApp::spawn(config).await;
    let list = wait_for("4 failed deliveries", WAIT, || async {
        let (_, body) = app.get("/api/deliveries?limit=100").await;
        let list = body["deliveries"].as_array().cloned().unwrap_or_default();
        (list.len() == 4 && list.iter().all(|d| d["state"] == "failed")).then_some(list)
    })
    .await;
    for (name, _, _, expected) in &cases {
        let d = list
            .iter()
            .find(|d| d["original_filename"] == format!("{name}.mov"))
            .expect("delivery");
        let error = d["error"].as_str().unwrap_or("");
        assert!(error.contains(expected), "{name}: {error}");
        assert!(
            !error.contains("unexpected HTML") && !error.contains("instead of the file"),
            "{name}: {error}"
        );
        // Not retried at once: the page says waiting seconds will not help.
        assert_eq!(files.seen(&format!("db/{name}")).len(), 1, "{name}");
    }
    let traffic = list
        .iter()
        .find(|d| d["original_filename"] == "traffic.mov")
        .and_then(|d| d["error"].as_str())
        .unwrap_or("");
    assert!(traffic.contains("retry after 20"), "{traffic}");
    app.stop().await;
}
