//! A SwissTransfer delivery that has to wait (issue 15): the host's virus check re-queues it by
//! itself (not before a shown time), and a password-protected one waits for a password given
//! through the API, kept in memory only.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_swisstransfer::{FakeSwissTransfer, FakeTransfer, TransferState};
use crate::support::feed_server::FeedServer;
use crate::support::file_server::{content, sha256_hex};
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(20);
const LINK: &str = "https://www.swisstransfer.com/d/";

fn transfer(state: TransferState, password: Option<&str>) -> FakeTransfer {
    FakeTransfer {
        state,
        password: password.map(str::to_string),
        credit: 250,
        message: "Rushes jour 7".into(),
        files: vec![("f-1".into(), "A007_C001.mov".into(), content(200_000, 81))],
        ..Default::default()
    }
}

fn record(uuid: &str, name: &str) -> Value {
    json!({
        "source_url": format!("{LINK}{uuid}"),
        "provider": "swisstransfer",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": name,
    })
}

async fn app_for(
    api: &FakeSwissTransfer,
    records: Vec<Value>,
    root: &Path,
) -> (TestApp, FeedServer) {
    let feed = FeedServer::start(&Value::Array(records).to_string()).await;
    let mut config = config_for(root, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.resolvers.swisstransfer = true;
    config.download.resolvers.swisstransfer_api =
        url::Url::parse(&api.api_base()).expect("api base");
    config.download.resolvers.recheck_after = Duration::from_secs(1);
    (TestApp::spawn(config).await, feed)
}

async fn the_delivery(app: &TestApp) -> Value {
    let (_, body) = app.get("/api/deliveries?limit=10").await;
    body["deliveries"][0].clone()
}

async fn until<F: Fn(&Value) -> bool>(app: &TestApp, what: &str, check: F) -> Value {
    wait_for(what, WAIT, || async {
        let d = the_delivery(app).await;
        if d["state"] == "failed" && d["wait_reason"].is_null() {
            panic!("the delivery failed: {d:#}");
        }
        check(&d).then_some(d)
    })
    .await
}

/// Every byte under `dir` (store, logs, downloads), to look for a secret.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.extend(bytes);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_virus_check_queues_the_delivery_again_until_the_transfer_is_ready() {
    let api = FakeSwissTransfer::start().await;
    let uuid = "66666666-aaaa-bbbb-cccc-000000000001";
    api.add(uuid, transfer(TransferState::VirusCheck, None));
    let root = temp_dir();
    let (app, _feed) = app_for(&api, vec![record(uuid, "Jour 7")], root.path()).await;
    let waiting = until(&app, "waiting for the virus check", |d| {
        d["state"] == "queued" && d["wait_reason"] == "virus_check"
    })
    .await;
    let retry_at = waiting["retry_at"].as_str().unwrap_or("").to_string();
    assert!(!retry_at.is_empty(), "no next try time: {waiting:#}");
    let error = waiting["error"].as_str().unwrap_or("");
    assert!(
        error.contains("viruses") && error.contains("next try at"),
        "{error}"
    );
    // The page says it waits, and until when.
    let (_, page) = app.get_text("/").await;
    assert!(
        page.contains("Waiting for the host&#39;s virus check")
            || page.contains("Waiting for the host's virus check"),
        "{page}"
    );
    // Asked again by itself, later each time (backoff): a second wait comes after the first.
    let second = until(&app, "a second virus-check wait", |d| {
        d["wait_count"].as_i64().unwrap_or(0) >= 2 && d["wait_reason"] == "virus_check"
    })
    .await;
    assert!(second["retry_at"].as_str().unwrap_or("") > retry_at.as_str());
    assert_eq!(api.downloads(), 0);
    // The scan ends: the next try downloads it, with no one doing anything.
    api.set_state(uuid, TransferState::Ready);
    let done = until(&app, "done after the virus check", |d| d["state"] == "done").await;
    assert!(done["wait_reason"].is_null(), "{done:#}");
    let saved =
        std::fs::read(root.path().join("downloads/Jour 7/A007_C001.mov")).unwrap_or_default();
    assert_eq!(sha256_hex(&saved), sha256_hex(&content(200_000, 81)));
    assert!(
        api.link_requests() >= 3,
        "{} link requests",
        api.link_requests()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_password_given_through_the_api_queues_the_delivery_and_is_kept_secret() {
    const SECRET: &str = "s3cret-Pw-for-the-test";
    let api = FakeSwissTransfer::start().await;
    let uuid = "66666666-aaaa-bbbb-cccc-000000000002";
    api.add(uuid, transfer(TransferState::Ready, Some(SECRET)));
    let root = temp_dir();
    let (app, _feed) = app_for(&api, vec![record(uuid, "Jour 8")], root.path()).await;
    let needed = until(&app, "password needed", |d| {
        d["wait_reason"] == "password_needed"
    })
    .await;
    assert_eq!(needed["state"], "failed");
    let id = needed["id"].as_i64().expect("id");
    let path = format!("/api/deliveries/{id}/password");

    // Bad requests change nothing.
    let (status, _) = app.post_json(&path, &json!({ "password": "" })).await;
    assert_eq!(status, 400);
    let (status, _) = app.post_json(&path, &json!({ "nope": 1 })).await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post_json(
            "/api/deliveries/999999/password",
            &json!({ "password": "x" }),
        )
        .await;
    assert_eq!(status, 404);

    // A wrong one: refused by the host, the delivery asks again.
    let (status, body) = app.post_json(&path, &json!({ "password": "not-it" })).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["state"], "queued");
    let wrong = until(&app, "password wrong", |d| {
        d["wait_reason"] == "password_wrong"
    })
    .await;
    assert!(
        wrong["error"].as_str().unwrap_or("").contains("wrong"),
        "{wrong:#}"
    );

    // The right one: downloaded.
    let (status, body) = app.post_json(&path, &json!({ "password": SECRET })).await;
    assert_eq!(status, 200, "{body:#}");
    assert!(
        !body.to_string().contains(SECRET),
        "the answer shows the password"
    );
    let done = until(&app, "done with the password", |d| d["state"] == "done").await;
    assert!(api.tokens_asked() >= 1);
    // Not waiting any more: a password is refused now.
    let (status, _) = app.post_json(&path, &json!({ "password": SECRET })).await;
    assert_eq!(status, 409);

    // Never in an answer, the page, or anything written under the data folder.
    let (_, list) = app.get("/api/deliveries?limit=10").await;
    let (_, one) = app.get(&format!("/api/deliveries/{id}")).await;
    let (_, attempts) = app.get(&format!("/api/deliveries/{id}/attempts")).await;
    let (_, page) = app.get_text("/").await;
    for text in [
        list.to_string(),
        one.to_string(),
        attempts.to_string(),
        done.to_string(),
        page,
    ] {
        assert!(!text.contains(SECRET), "the password shows: {text}");
    }
    app.stop().await;
    let written = all_bytes(root.path());
    assert!(
        !written
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the password was written under the data folder"
    );
}

#[tokio::test]
async fn rushes_password_reads_it_from_standard_input() {
    use tokio::io::AsyncWriteExt as _;
    const SECRET: &str = "cli-Pw-5521";
    let api = FakeSwissTransfer::start().await;
    let uuid = "66666666-aaaa-bbbb-cccc-000000000003";
    api.add(uuid, transfer(TransferState::Ready, Some(SECRET)));
    let root = temp_dir();
    let (app, _feed) = app_for(&api, vec![record(uuid, "Jour 9")], root.path()).await;
    let needed = until(&app, "password needed", |d| {
        d["wait_reason"] == "password_needed"
    })
    .await;
    let id = needed["id"].as_i64().expect("id").to_string();
    let run = |input: &'static str| {
        let mut cmd = tokio::process::Command::from(crate::support::service::bin());
        cmd.args(["password", &id, "--url", &app.url("")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        async move {
            let mut child = cmd.spawn().expect("rushes password");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).await.expect("write");
            drop(stdin);
            let out = child.wait_with_output().await.expect("wait");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let (code, _) = run("\n").await;
    assert_eq!(code, Some(2), "an empty line is refused");
    let (code, stdout) = run("cli-Pw-5521\n").await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("queued again"), "{stdout}");
    assert!(!stdout.contains(SECRET));
    until(&app, "done with the password from the CLI", |d| {
        d["state"] == "done"
    })
    .await;
    let (code, stdout) = run("cli-Pw-5521\n").await;
    assert_eq!(code, Some(1), "not waiting any more: {stdout}");
    app.stop().await;
}
