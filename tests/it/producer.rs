//! The producer's word: review decisions by a person (API and the dashboard's buttons in a real
//! Chromium), outranking the comment analysis until a newer comment arrives; corrected comment
//! verdicts and `rushes frameio corrections`; the same access rules as the other write routes.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::Locator;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::browser::Browser;
use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, deliver, delivery,
};
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use crate::support::{db, wait_for};
use rushes::config::{Config, FrameioConfig};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec-producer-s3cret";

fn app_config(root: &Path, fake: &FakeFrameio) -> Config {
    let feed = root.join("feed.json");
    std::fs::write(&feed, "[]").expect("feed");
    let mut config = config_for(root, &feed.display().to_string());
    config.feed.monitor_interval = Duration::from_secs(3600);
    let vars = [
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.to_string()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.to_string()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.to_string()),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string()),
        ("FRAMEIO_POLL_INTERVAL", "3600".to_string()),
    ];
    config.frameio = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("frameio config");
    config
}

async fn upload(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/uploads/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wait_state(app: &TestApp, id: &str, state: &str) -> Value {
    wait_for(&format!("upload {id} to be {state}"), WAIT, || async {
        let u = upload(app, id).await;
        (u["state"] == state).then_some(u)
    })
    .await
}

/// A tracked file with one approving comment, processed: the upload is `approved` by comment.
async fn approved_by_comment(app: &TestApp, fake: &FakeFrameio) {
    fake.add_file("file-p");
    let (status, _) = app
        .post_json(
            "/api/uploads",
            &json!({"file_id": "file-p", "upload_id": "up-p", "name": "Spot.mov"}),
        )
        .await;
    assert_eq!(status, 201);
    fake.add_comment(
        "file-p",
        "c1",
        "Validé, merci à toute l'équipe",
        "2026-01-10T10:00:00Z",
    );
    let hook = app.url("/webhooks/frameio");
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("comment.created", "comment", "c1")
        )
        .await,
        200
    );
    wait_state(app, "up-p", "approved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_decides_until_a_newer_comment_arrives() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let app = TestApp::spawn(app_config(root.path(), &fake)).await;
    approved_by_comment(&app, &fake).await;

    let (status, body) = app
        .post_json(
            "/api/uploads/up-p/review",
            &json!({"state": "changes_requested", "by": "Paul"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "changes_requested");
    let last = body["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "person");
    assert_eq!(last["reason"], "Changes requested by Paul");
    assert!(last["at"].is_string());

    // The same old comment again (an update event): the person's word stands.
    let hook = app.url("/webhooks/frameio");
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("comment.updated", "comment", "c1")
        )
        .await,
        200
    );
    wait_for("the event to be processed", WAIT, || async {
        let events = app.state.store.frameio_events(10).await.ok()?;
        (events.len() == 2 && events.iter().all(|e| e.processed_at.is_some())).then_some(())
    })
    .await;
    assert_eq!(upload(&app, "up-p").await["state"], "changes_requested");

    // A newer comment: the analysis speaks again.
    let newer = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    fake.add_comment("file-p", "c2", "C'est validé pour nous, merci", &newer);
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("comment.created", "comment", "c2")
        )
        .await,
        200
    );
    let u = wait_state(&app, "up-p", "approved").await;
    let last = u["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "comment");

    // No decision: back in review, recorded even so.
    let (status, body) = app
        .post_json("/api/uploads/up-p/review", &json!({"state": "no_decision"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "in_review");
    assert_eq!(
        body["history"]
            .as_array()
            .and_then(|h| h.last())
            .map(|t| t["reason"].clone()),
        Some(json!("No decision by producer (dashboard)"))
    );
    // Mistakes.
    let (status, _) = app
        .post_json("/api/uploads/up-p/review", &json!({"state": "maybe"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post_json("/api/uploads/nope/review", &json!({"state": "approved"}))
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_verdicts_come_out_of_rushes_frameio_corrections() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let app = TestApp::spawn(app_config(root.path(), &fake)).await;
    approved_by_comment(&app, &fake).await;
    let (status, body) = app
        .post_json(
            "/api/uploads/up-p/comments/c1/label",
            &json!({"verdict": "changes_requested"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["analysed"], "approved");
    assert_eq!(body["expected"], "changes_requested");
    let (status, _) = app
        .post_json(
            "/api/uploads/up-p/comments/zz/label",
            &json!({"verdict": "none"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post_json(
            "/api/uploads/up-p/comments/c1/label",
            &json!({"verdict": "great"}),
        )
        .await;
    assert_eq!(status, 400);
    // The page shows the correction next to the analysis.
    let (_, html) = app.get_text("/ui/frameio").await;
    assert!(
        html.contains("data-corrected=\"changes_requested\""),
        "{html}"
    );

    let mut cmd = bin();
    cmd.args(["frameio", "corrections"])
        .current_dir(root.path())
        .env("RUSHES_DATA_DIR", root.path().join("data"))
        .env("RUSHES_LOG_DIR", root.path().join("logs"))
        .envs(db::env_for(&root.path().join("data")))
        .stdout(Stdio::piped());
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("run");
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines,
        vec![json!({"text": "Validé, merci à toute l'équipe", "expected": "changes_requested"})]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_routes_need_the_token_and_the_same_origin() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let mut config = app_config(root.path(), &fake);
    config.service.api_token = Some(SecretString::from("producer-token-0123456789".to_string()));
    let app = TestApp::spawn(config).await;
    for path in [
        "/api/uploads/up-x/review",
        "/api/uploads/up-x/comments/c1/label",
    ] {
        let r = app
            .client
            .post(app.url(path))
            .json(&json!({"state": "approved", "verdict": "none"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 401, "{path} without a token");
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth("producer-token-0123456789")
            .header("Origin", "https://evil.example")
            .json(&json!({"state": "approved", "verdict": "none"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 403, "{path} cross-site");
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth("producer-token-0123456789")
            .json(&json!({"state": "approved", "verdict": "none"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(
            r.status().as_u16(),
            404,
            "{path} with the token reaches the route"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_buttons_set_the_review_state() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let app = TestApp::spawn(app_config(root.path(), &fake)).await;
    approved_by_comment(&app, &fake).await;
    let browser = Browser::start(1400, 1000).await;
    browser
        .client
        .goto(&app.url("/"))
        .await
        .expect("open the page");
    let button = "//tr[@id='upload-up-p']//button[@data-decision='changes_requested']";
    browser
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(button))
        .await
        .expect("the buttons")
        .click()
        .await
        .expect("click");
    let u = wait_state(&app, "up-p", "changes_requested").await;
    let last = u["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (last["cause"].as_str(), last["reason"].as_str()),
        (
            Some("person"),
            Some("Changes requested by producer (dashboard)")
        )
    );
    // The page shows it (refreshed from the event stream): the pill and who decided.
    let pill = "//tr[@id='upload-up-p']//span[contains(@class,'pill review changes_requested')]";
    browser
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(pill))
        .await
        .expect("pill");
    let row = browser
        .client
        .find(Locator::Css("#upload-up-p"))
        .await
        .expect("row");
    let text = row.text().await.expect("text");
    assert!(
        text.contains("Changes requested by producer (dashboard)"),
        "{text}"
    );
    // Correcting the comment's verdict from the page.
    let select = browser
        .client
        .find(Locator::Css("#upload-up-p select[name=verdict]"))
        .await
        .expect("select");
    select.select_by_value("rejected").await.expect("choose");
    browser
        .client
        .find(Locator::XPath(
            "//tr[@id='upload-up-p']//form[@data-action='label']//button",
        ))
        .await
        .expect("correct button")
        .click()
        .await
        .expect("click");
    browser
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#upload-up-p [data-corrected=rejected]"))
        .await
        .expect("the correction shown");
    browser.screenshot("producer_buttons.png").await;
    browser.close().await;
    app.stop().await;
}
