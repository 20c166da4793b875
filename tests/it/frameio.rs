//! Frame.io review tracking end to end: a fake Frame.io v4 + IMS on 127.0.0.1:0, a real rushes
//! (in-process, or the binary when it must be killed), a real SQLite file.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fake_frameio::{
    ACCOUNT, CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, FakeFrameio, STATIC_TOKEN, WORKSPACE,
    deliver, delivery, sign_now,
};
use crate::support::service::{ChildService, TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;
use rushes::config::Config;
use rushes::config::FrameioConfig;
use rushes::frameio::client::{Client, ClientError};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "whsec-test-s3cret";

fn feed_file(dir: &Path) -> String {
    let path = dir.join("feed.json");
    std::fs::write(&path, "[]").expect("write feed");
    path.display().to_string()
}

fn frameio_vars(fake: &FakeFrameio) -> Vec<(&'static str, String)> {
    vec![
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.into()),
        ("FRAMEIO_POLL_INTERVAL", "3600".into()),
    ]
}

fn frameio_config(vars: &[(&str, String)]) -> FrameioConfig {
    FrameioConfig::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("frameio config")
}

fn app_config(dir: &Path, vars: &[(&str, String)]) -> Config {
    let mut config = config_for(dir, &feed_file(dir));
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.frameio = frameio_config(vars);
    config
}

async fn spawn(fake: &FakeFrameio, dir: &Path, extra: &[(&'static str, String)]) -> TestApp {
    let mut vars = frameio_vars(fake);
    vars.extend(extra.iter().cloned());
    TestApp::spawn(app_config(dir, &vars)).await
}

async fn track(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/api/uploads"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/uploads");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

async fn post_raw(app: &TestApp, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut request = app
        .client
        .post(app.url("/webhooks/frameio"))
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("POST").status().as_u16()
}

#[tokio::test]
async fn signatures_are_verified_before_anything_is_stored() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let app = spawn(&fake, dir.path(), &[]).await;
    let store = app.state.store.clone();
    let body = delivery("file.ready", "file", "file-a");
    let (ts, sig) = sign_now(SECRET, &body);

    // Missing signature, missing timestamp.
    assert_eq!(
        post_raw(&app, &[("X-Frameio-Request-Timestamp", &ts)], &body).await,
        401
    );
    assert_eq!(
        post_raw(&app, &[("X-Frameio-Signature", &sig)], &body).await,
        401
    );
    // Tampered body (one character), same headers.
    let tampered = body.replace("file-a", "file-b");
    let headers = [
        ("X-Frameio-Request-Timestamp", ts.as_str()),
        ("X-Frameio-Signature", sig.as_str()),
    ];
    assert_eq!(post_raw(&app, &headers, &tampered).await, 401);
    // Signed with another secret.
    let (ts2, other) = sign_now("not-the-secret", &body);
    assert_eq!(
        post_raw(
            &app,
            &[
                ("X-Frameio-Request-Timestamp", &ts2),
                ("X-Frameio-Signature", &other)
            ],
            &body
        )
        .await,
        401
    );
    // Correctly signed but stale (6 minutes old) or from the future.
    for skew in [-360i64, 360] {
        let old = (chrono::Utc::now().timestamp() + skew).to_string();
        let old_sig = rushes::frameio::webhook::sign(SECRET.as_bytes(), &old, body.as_bytes());
        assert_eq!(
            post_raw(
                &app,
                &[
                    ("X-Frameio-Request-Timestamp", &old),
                    ("X-Frameio-Signature", &old_sig)
                ],
                &body
            )
            .await,
            401,
            "skew {skew}"
        );
    }
    // Too large, even if signed.
    let huge = json!({"type": "file.ready", "resource": {"id": "x", "type": "file"}, "pad": "x".repeat(100_000)}).to_string();
    assert_eq!(
        deliver(&app.client, &app.url("/webhooks/frameio"), SECRET, &huge).await,
        413
    );
    assert_eq!(store.frameio_event_count().await.expect("count"), 0);

    // The genuine one is stored (a 200 means durable: in the database, or for a moment in the
    // webhook inbox when the database is busy).
    assert_eq!(post_raw(&app, &headers, &body).await, 200);
    wait_for("the genuine delivery in the database", WAIT, || async {
        (store.frameio_event_count().await.ok()? == 1).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn without_frameio_settings_the_receiver_is_unavailable_and_the_rest_works() {
    let dir = temp_dir();
    let app = TestApp::spawn(app_config(dir.path(), &[])).await;
    let body = delivery("file.ready", "file", "file-a");
    assert_eq!(
        deliver(&app.client, &app.url("/webhooks/frameio"), SECRET, &body).await,
        503
    );
    let (status, list) = app.get("/api/uploads").await;
    assert_eq!(
        (status, list["uploads"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = track(&app, json!({"file_id": "file-a"})).await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_delivery_is_processed_once() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let app = spawn(&fake, dir.path(), &[]).await;
    assert_eq!(track(&app, json!({"file_id": "file-a"})).await.0, 201);
    let body = delivery("file.ready", "file", "file-a");
    let (ts, sig) = sign_now(SECRET, &body);
    let headers = [
        ("X-Frameio-Request-Timestamp", ts.as_str()),
        ("X-Frameio-Signature", sig.as_str()),
    ];
    for _ in 0..3 {
        assert_eq!(post_raw(&app, &headers, &body).await, 200);
    }
    let u = wait_state(&app, "file-a", "ready").await;
    let store = &app.state.store;
    assert_eq!(store.frameio_event_count().await.expect("count"), 1);
    let ready: Vec<&Value> = u["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|t| t["to_state"] == "ready")
        .collect();
    assert_eq!(ready.len(), 1, "{u}");
    assert_eq!(ready[0]["cause"], "event");
    // A later delivery with the same body (another timestamp) is a new delivery, harmlessly idempotent.
    let later = (ts.parse::<i64>().expect("ts") + 1).to_string();
    let later_sig = rushes::frameio::webhook::sign(SECRET.as_bytes(), &later, body.as_bytes());
    let later_headers = [
        ("X-Frameio-Request-Timestamp", later.as_str()),
        ("X-Frameio-Signature", later_sig.as_str()),
    ];
    assert_eq!(post_raw(&app, &later_headers, &body).await, 200);
    wait_for("second event processed", WAIT, || async {
        let events = store.frameio_events(10).await.expect("events");
        (events.len() == 2 && events.iter().all(|e| e.processed_at.is_some())).then_some(())
    })
    .await;
    let again = upload(&app, "file-a").await;
    assert_eq!(
        again["history"].as_array().map(Vec::len),
        u["history"].as_array().map(Vec::len)
    );
    app.stop().await;
}

#[tokio::test]
async fn events_are_routed_to_the_right_upload() {
    let fake = FakeFrameio::start().await;
    for f in ["file-a", "file-b", "file-x"] {
        fake.add_file(f);
    }
    let dir = temp_dir();
    let app = spawn(&fake, dir.path(), &[]).await;
    let hook = app.url("/webhooks/frameio");

    // Registration: created, idempotent, conflicts and bad input refused.
    let (status, a) = track(
        &app,
        json!({"file_id": "file-a", "name": "A.mov", "upload_id": "up-a"}),
    )
    .await;
    assert_eq!(
        (status, a["state"].as_str()),
        (201, Some("uploading")),
        "{a}"
    );
    assert_eq!(
        track(&app, json!({"file_id": "file-a", "upload_id": "up-a"}))
            .await
            .0,
        200
    );
    assert_eq!(
        track(&app, json!({"file_id": "file-a", "upload_id": "other"}))
            .await
            .0,
        409
    );
    assert_eq!(track(&app, json!({"file_id": "bad id"})).await.0, 400);
    assert_eq!(track(&app, json!({"name": "no file"})).await.0, 400);
    assert_eq!(
        track(&app, json!({"file_id": "file-b", "upload_id": "up-b"}))
            .await
            .0,
        201
    );
    assert_eq!(app.get("/api/uploads/nope").await.0, 404);

    // Lifecycle events on A.
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("file.upload.completed", "file", "file-a")
        )
        .await,
        200
    );
    wait_state(&app, "up-a", "processing").await;
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("file.ready", "file", "file-a")
        )
        .await,
        200
    );
    wait_state(&app, "up-a", "ready").await;

    // Metadata Status on B maps through FRAMEIO_STATUS_MAP; A is untouched.
    fake.set_status("file-b", "Approved");
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("metadata.value.updated", "file", "file-b")
        )
        .await,
        200
    );
    let b = wait_state(&app, "up-b", "approved").await;
    let last = b["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "metadata", "{b}");
    assert!(
        last["reason"].as_str().unwrap_or("").contains("Approved"),
        "{b}"
    );
    assert_eq!(
        b["next_poll_at"],
        Value::Null,
        "final states are not polled"
    );
    assert_eq!(upload(&app, "up-a").await["state"], "ready");

    // A comment event whose resource is the comment: looked up, routed to A, analysed.
    fake.add_comment("file-a", "c1", "Super, validé", "2026-01-10T10:00:00Z");
    fake.add_comment(
        "file-a",
        "c2",
        "ok mais à modifier le titre",
        "2026-01-10T11:00:00Z",
    );
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
    let a = wait_state(&app, "up-a", "changes_requested").await;
    let last = a["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "comment");
    let reason = last["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("à modifier") && reason.contains("c2") && reason.contains("Claire"),
        "{reason}"
    );
    assert_eq!(a["comments"].as_array().map(Vec::len), Some(2), "{a}");
    assert_eq!(a["comments"][0]["verdict"], "changes_requested");
    assert!(fake.count("GET", "/comments/c2") >= 1);
    assert_eq!(upload(&app, "up-b").await["state"], "approved");

    // A newer approving comment wins.
    fake.add_comment(
        "file-a",
        "c3",
        "C'est bon pour moi, merci !",
        "2026-01-11T09:00:00Z",
    );
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("comment.created", "comment", "c3")
        )
        .await,
        200
    );
    wait_state(&app, "up-a", "approved").await;

    // Untracked file: stored, not routed, no API call for it.
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            SECRET,
            &delivery("file.ready", "file", "file-x")
        )
        .await,
        200
    );
    let store = app.state.store.clone();
    let untracked = wait_for("the untracked event to be processed", WAIT, || async {
        store
            .frameio_events(20)
            .await
            .expect("events")
            .into_iter()
            .find(|e| e.resource_id == "file-x" && e.processed_at.is_some())
    })
    .await;
    assert_eq!(untracked.outcome.map(|o| o.as_str()), Some("untracked"));
    assert_eq!(untracked.upload_id, None);
    assert_eq!(fake.count("GET", "file-x"), 0);

    let (status, list) = app.get("/api/uploads").await;
    assert_eq!(status, 200);
    assert_eq!(list["uploads"].as_array().map(Vec::len), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn polling_catches_a_status_change_without_any_webhook() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-p");
    let dir = temp_dir();
    let app = spawn(&fake, dir.path(), &[("FRAMEIO_POLL_INTERVAL", "1".into())]).await;
    assert_eq!(track(&app, json!({"file_id": "file-p"})).await.0, 201);
    fake.set_file_status("file-p", "transcoded");
    fake.set_status("file-p", "Needs Review");
    let u = wait_state(&app, "file-p", "in_review").await;
    assert!(
        u["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|t| t["to_state"] == "ready" && t["cause"] == "poll"),
        "{u}"
    );
    fake.set_status("file-p", "Approved");
    let u = wait_state(&app, "file-p", "approved").await;
    let last = u["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["cause"], "poll");
    assert!(last["reason"].as_str().unwrap_or("").contains("Approved"));
    assert_eq!(u["next_poll_at"], Value::Null);
    assert_eq!(
        app.state.store.frameio_event_count().await.expect("count"),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn client_follows_pages_waits_on_429_and_refreshes_an_expired_token() {
    let fake = FakeFrameio::start().await;
    fake.add_file("f");
    for i in 0..250 {
        fake.add_comment("f", &format!("c{i:03}"), "note", "2026-01-01T00:00:00Z");
    }
    let dir = temp_dir();
    let store = crate::support::db::open_store(&dir.path().join("rushes.db")).await;
    let vars = vec![
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_IMS_URL", fake.ims_url()),
        ("FRAMEIO_CLIENT_ID", CLIENT_ID.to_string()),
        ("FRAMEIO_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("FRAMEIO_REFRESH_TOKEN", FIRST_REFRESH.to_string()),
    ];
    let config = frameio_config(&vars);
    let client = Client::from_config(&config, Some(store.clone())).expect("client");

    // Pagination: 250 comments in pages of 100, in order.
    let comments = client.comments(ACCOUNT, "f").await.expect("comments");
    assert_eq!(comments.len(), 250);
    assert_eq!(comments[249].id, "c249");
    assert_eq!(fake.count("GET", "/files/f/comments"), 3);
    assert_eq!(fake.grants(), vec!["refresh_token"]);
    let stored = store
        .frameio_credential("ims_refresh_token")
        .await
        .expect("credential");
    assert_eq!(
        stored.map(|(v, _)| v),
        Some("refresh-1".to_string()),
        "rotated token stored"
    );

    // 429 (Retry-After: 1) then success: waits at least a second, then succeeds.
    fake.rate_limit_next(1);
    let started = Instant::now();
    client.file(ACCOUNT, "f").await.expect("file after 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.rate_limited(), 1);

    // Expired token: one 401, one refresh, then success; the rotated token is stored again.
    fake.expire_tokens();
    client.file(ACCOUNT, "f").await.expect("file after refresh");
    assert_eq!(fake.unauthorized(), 1);
    assert_eq!(fake.grants(), vec!["refresh_token", "refresh_token"]);
    let stored = store
        .frameio_credential("ims_refresh_token")
        .await
        .expect("credential");
    assert_eq!(stored.map(|(v, _)| v), Some("refresh-2".to_string()));

    // A restart (new client, same configuration whose refresh token is spent) uses the stored one.
    fake.expire_tokens();
    let restarted = Client::from_config(&config, Some(store.clone())).expect("client");
    restarted
        .file(ACCOUNT, "f")
        .await
        .expect("file after restart");
    assert_eq!(fake.current_refresh_tokens(), vec!["refresh-3".to_string()]);

    // A static token cannot be refreshed: a 401 is an error, asked once.
    let static_client = Client::from_config(
        &frameio_config(&[
            ("FRAMEIO_API_BASE", fake.base()),
            ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
        ]),
        None,
    )
    .expect("client");
    let before = fake.unauthorized();
    let err = static_client
        .file(ACCOUNT, "f")
        .await
        .expect_err("expired static token");
    assert!(matches!(err, ClientError::Credentials(_)), "{err}");
    assert!(err.to_string().contains("re-authorise"), "{err}");
    assert!(!err.to_string().contains(STATIC_TOKEN));
    assert_eq!(fake.unauthorized(), before + 1);

    // Server-to-server credentials.
    let s2s = Client::from_config(
        &frameio_config(&[
            ("FRAMEIO_API_BASE", fake.base()),
            ("FRAMEIO_IMS_URL", fake.ims_url()),
            ("FRAMEIO_CLIENT_ID", CLIENT_ID.into()),
            ("FRAMEIO_CLIENT_SECRET", CLIENT_SECRET.into()),
        ]),
        None,
    )
    .expect("client");
    s2s.file(ACCOUNT, "f")
        .await
        .expect("file with client_credentials");
    assert_eq!(
        fake.grants().last().map(String::as_str),
        Some("client_credentials")
    );
    store.close().await;
}

fn child_envs(fake: &FakeFrameio, dir: &Path) -> Vec<(&'static str, String)> {
    let mut envs = frameio_vars(fake);
    envs.push(("WEBHOOK_JSON_URL", feed_file(dir)));
    envs.push(("WEBHOOK_MONITOR_INTERVAL", "3600".into()));
    envs
}

#[tokio::test]
async fn an_event_acknowledged_right_before_sigkill_is_processed_after_restart() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-k");
    fake.add_comment(
        "file-k",
        "k1",
        "Retouche sur le plan 2 svp",
        "2026-01-10T10:00:00Z",
    );
    // Processing will hang on the comment list: the kill lands before it can finish.
    fake.close_comments();
    let dir = temp_dir();
    let envs = child_envs(&fake, dir.path());
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut service = ChildService::start(dir.path(), &env_refs).await;
    let client = reqwest::Client::new();
    let r = client
        .post(service.url("/api/uploads"))
        .json(&json!({"file_id": "file-k"}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status().as_u16(), 201);

    // A refused delivery is logged, without the secret.
    let hook = service.url("/webhooks/frameio");
    let body = delivery("comment.created", "comment", "k1");
    assert_eq!(deliver(&client, &hook, "wrong-secret", &body).await, 401);
    let log = service.wait_for_log("Frame.io webhook refused").await;
    assert!(log.contains("signature does not match"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(STATIC_TOKEN));

    assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);
    service.kill();

    // Durable before its 200: in the database or, on SQLite when the database was busy for more
    // than a moment, in the webhook inbox (stored at the next start).
    let db = dir.path().join("data/rushes.db");
    let store = crate::support::db::open_store(&db).await;
    let events = store.frameio_events(10).await.expect("events");
    let inbox = rushes::frameio::inbox::leftovers(&rushes::frameio::inbox::dir_for(&db))
        .expect("read the webhook inbox")
        .events;
    let only_in_inbox = inbox
        .iter()
        .filter(|e| !events.iter().any(|s| s.resource_id == e.resource_id))
        .count();
    assert_eq!(events.len() + only_in_inbox, 1, "{events:?} {inbox:?}");
    assert!(
        events.iter().all(|e| e.processed_at.is_none()),
        "killed before processing"
    );
    store.close().await;

    fake.open_comments();
    let service = ChildService::start(dir.path(), &env_refs).await;
    let url = service.url("/api/uploads/file-k");
    let u = wait_for("file-k to be changes_requested after restart", WAIT, || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let u: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (u["state"] == "changes_requested").then_some(u)
        }
    })
    .await;
    let last = u["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        last["reason"].as_str().unwrap_or("").contains("Retouche"),
        "{u}"
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
    let store = crate::support::db::open_store(&db).await;
    let events = store.frameio_events(10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome.map(|o| o.as_str()), Some("applied"));
    store.close().await;
}

async fn rushes(dir: &Path, envs: &HashMap<&str, String>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = bin();
    cmd.current_dir(dir).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("run rushes");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn webhook_ensure_is_idempotent_and_the_cli_tracks_uploads() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let mut envs: HashMap<&str, String> = frameio_vars(&fake).into_iter().collect();
    envs.remove("FRAMEIO_WEBHOOK_SECRET");
    envs.insert(
        "RUSHES_DATA_DIR",
        dir.path().join("data").display().to_string(),
    );
    if let Some(url) = crate::support::db::url_for(&dir.path().join("data")) {
        envs.insert("RUSHES_DATABASE_URL", url);
    }
    let url = "https://rushes.example.com/webhooks/frameio";

    let (ok, out, err) = rushes(
        dir.path(),
        &envs,
        &["frameio", "webhook", "ensure", "--url", url],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("created webhook wh-1"), "{out}");
    assert!(
        !out.contains("s3cret") && !err.contains("s3cret"),
        "{out}{err}"
    );
    let hooks = fake.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["name"], "rushes");
    assert_eq!(hooks[0]["events"].as_array().map(Vec::len), Some(11));

    // Second run: nothing created, nothing patched.
    let (ok, out, _) = rushes(
        dir.path(),
        &envs,
        &["frameio", "webhook", "ensure", "--url", url],
    )
    .await;
    assert!(ok && out.contains("up to date"), "{out}");
    assert_eq!(fake.webhooks().len(), 1);
    assert_eq!(fake.count("POST", "/webhooks"), 1);
    assert_eq!(fake.count("PATCH", "/webhooks"), 0);

    // The secret is in the store, and the database is private.
    let db = dir.path().join("data/rushes.db");
    let store = crate::support::db::open_store(&db).await;
    let secret = store
        .frameio_credential("webhook_secret")
        .await
        .expect("secret");
    assert_eq!(
        secret,
        Some(("whsec-1-s3cret".to_string(), Some("wh-1".to_string())))
    );
    store.close().await;
    #[cfg(unix)]
    if !crate::support::db::on_postgres() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&db).expect("db").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A different URL is patched in place.
    let moved = "https://rushes2.example.com/webhooks/frameio";
    let (ok, out, _) = rushes(
        dir.path(),
        &envs,
        &[
            "frameio",
            "webhook",
            "ensure",
            "--url",
            moved,
            "--events",
            "file.ready,comment.created",
        ],
    )
    .await;
    assert!(
        ok && out.contains("updated webhook wh-1: url, events"),
        "{out}"
    );
    assert_eq!(fake.count("PATCH", "/webhooks/wh-1"), 1);
    assert_eq!(fake.webhooks()[0]["url"], moved);

    let (ok, out, _) = rushes(dir.path(), &envs, &["frameio", "webhook", "list"]).await;
    assert!(ok && out.contains("wh-1") && out.contains(moved), "{out}");

    // Tracking from the command line, then listing.
    let (ok, out, _) = rushes(
        dir.path(),
        &envs,
        &[
            "frameio",
            "track",
            "file-z",
            "--name",
            "Z.mov",
            "--upload-id",
            "up-z",
        ],
    )
    .await;
    assert!(ok && out.contains("tracking upload up-z"), "{out}");
    let (ok, out, _) = rushes(
        dir.path(),
        &envs,
        &["frameio", "track", "file-z", "--upload-id", "other"],
    )
    .await;
    assert!(
        !ok && out.is_empty(),
        "a file tracked twice under two ids is refused"
    );
    let (ok, out, _) = rushes(dir.path(), &envs, &["frameio", "uploads"]).await;
    assert!(
        ok && out.contains("up-z") && out.contains("uploading"),
        "{out}"
    );

    let (ok, out, _) = rushes(dir.path(), &envs, &["frameio", "webhook", "delete"]).await;
    assert!(ok && out.contains("deleted webhook wh-1"), "{out}");
    assert!(fake.webhooks().is_empty());
    let store = crate::support::db::open_store(&db).await;
    assert_eq!(
        store
            .frameio_credential("webhook_secret")
            .await
            .expect("secret"),
        None
    );
    store.close().await;

    // Missing configuration names the variable, exit code 2.
    envs.remove("FRAMEIO_WORKSPACE_ID");
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .args(["frameio", "webhook", "list"]);
    for (k, v) in &envs {
        cmd.env(k, v);
    }
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FRAMEIO_WORKSPACE_ID"));
}
