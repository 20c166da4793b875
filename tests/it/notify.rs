//! Notifications against a fake Slack-compatible incoming webhook (a real HTTP server on
//! 127.0.0.1:0 taking `{"text": ...}`): verdict changes, deliveries failed or downloaded, the
//! durable outbox across restarts, retries, one message a second, and `ON_REVIEW_CHANGE`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, deliver, delivery,
};
use crate::support::feed_server::FeedServer;
use crate::support::file_server::{FileServer, content};
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;
use rushes::config::{Config, FrameioConfig, HookCommand};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec-notify-s3cret";

#[derive(Default)]
struct Inbox {
    received: Vec<(Instant, String)>,
    /// The next posts answer 500.
    fail_next: u32,
    /// Every post answers 503 while set.
    down: bool,
}

#[derive(Clone)]
struct FakeSlack {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

impl FakeSlack {
    async fn start() -> Self {
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let app = axum::Router::new()
            .route("/services/T000/B000/XXXX", post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inbox }
    }

    fn url(&self) -> String {
        format!("http://{}/services/T000/B000/XXXX", self.addr)
    }

    fn texts(&self) -> Vec<String> {
        self.inbox
            .lock()
            .expect("lock")
            .received
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.inbox
            .lock()
            .expect("lock")
            .received
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    fn set(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.inbox.lock().expect("lock"));
    }

    async fn wait_texts(&self, n: usize) -> Vec<String> {
        wait_for(&format!("{n} messages"), WAIT, || async {
            let t = self.texts();
            (t.len() >= n).then_some(t)
        })
        .await
    }
}

/// Slack's incoming webhook: `{"text": ...}` only, answered `ok`.
async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    Json(body): Json<Value>,
) -> (StatusCode, &'static str) {
    let mut inbox = inbox.lock().expect("lock");
    if inbox.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down");
    }
    if inbox.fail_next > 0 {
        inbox.fail_next -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "oops");
    }
    match body.get("text").and_then(Value::as_str) {
        Some(text) if body.as_object().is_some_and(|o| o.len() == 1) => {
            inbox.received.push((Instant::now(), text.to_string()));
            (StatusCode::OK, "ok")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_payload"),
    }
}

fn app_config(root: &Path, fake: &FakeFrameio, slack: Option<&FakeSlack>) -> Config {
    let feed = root.join("feed.json");
    if !feed.exists() {
        std::fs::write(&feed, "[]").expect("feed");
    }
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
    config.notify.url = slack.map(|s| SecretString::from(s.url()));
    config
}

async fn approved_by_comment(app: &TestApp, fake: &FakeFrameio) {
    fake.add_file("file-n");
    let (status, _) = app
        .post_json(
            "/api/uploads",
            &json!({"file_id": "file-n", "upload_id": "up-n", "name": "Teaser.mov"}),
        )
        .await;
    assert_eq!(status, 201);
    fake.add_comment(
        "file-n",
        "c1",
        &format!("Validé, merci à toute l'équipe {}", "!".repeat(300)),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_changes_are_posted_once_each_one_a_second_and_run_the_hook() {
    let fake = FakeFrameio::start().await;
    let slack = FakeSlack::start().await;
    slack.set(|i| i.fail_next = 2); // retried
    let root = temp_dir();
    let out = root.path().join("hook-env.txt");
    let mut config = app_config(root.path(), &fake, Some(&slack));
    config.notify.on_review_change = Some(
        HookCommand::parse(&format!("sh -c 'env > \"$0\"' {}", out.display())).expect("command"),
    );
    let app = TestApp::spawn(config).await;
    approved_by_comment(&app, &fake).await;
    let texts = slack.wait_texts(1).await;
    let first = &texts[0];
    assert!(
        first.contains("*Teaser.mov*: approved (comment)"),
        "{first}"
    );
    assert!(
        first.contains("> Validé, merci à toute l'équipe"),
        "{first}"
    );
    assert!(first.contains("— Claire (client)"), "{first}");
    assert!(
        first.contains("|Dashboard>") && first.contains("/#upload-up-n"),
        "{first}"
    );
    let quoted = first.lines().find(|l| l.starts_with("> ")).expect("quote");
    assert_eq!(
        quoted.chars().count(),
        2 + 200 + 1,
        "the comment's first 200 characters: {quoted}"
    );
    // The command ran in a clean environment with the RUSHES_UPLOAD_* variables.
    let env = wait_for("the hook to run", WAIT, || async {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.contains("RUSHES_UPLOAD_STATE"))
    })
    .await;
    assert!(env.contains("RUSHES_UPLOAD_STATE=approved"), "{env}");
    assert!(env.contains("RUSHES_UPLOAD_NAME=Teaser.mov"), "{env}");
    assert!(env.contains("RUSHES_UPLOAD_CAUSE=comment"), "{env}");
    assert!(
        env.contains("RUSHES_UPLOAD_COMMENT_AUTHOR=Claire (client)"),
        "{env}"
    );
    for line in env.lines() {
        let name = line.split('=').next().unwrap_or("");
        assert!(
            name.starts_with("RUSHES_UPLOAD_")
                || ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
            "unexpected variable {name:?} in the hook's environment"
        );
    }
    // Three decisions in a row: three messages, one a second at most.
    for state in ["changes_requested", "approved", "no_decision"] {
        let (status, _) = app
            .post_json(
                "/api/uploads/up-n/review",
                &json!({"state": state, "by": "Paul"}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let texts = slack.wait_texts(4).await;
    assert!(
        texts[1].contains("changes requested (person)")
            && texts[1].contains("Changes requested by Paul"),
        "{texts:?}"
    );
    assert!(texts[3].contains("back in review"), "{texts:?}");
    let times = slack.times();
    for pair in times.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= Duration::from_millis(900),
            "more than one message a second"
        );
    }
    app.stop().await;
    assert_eq!(slack.texts().len(), 4, "each change once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_nothing_sent_is_sent_once_after_a_restart() {
    let fake = FakeFrameio::start().await;
    let slack = FakeSlack::start().await;
    let root = temp_dir();
    // Notifications on once: the outbox starts looking from then.
    let app = TestApp::spawn(app_config(root.path(), &fake, Some(&slack))).await;
    wait_for("the outbox cursor", WAIT, || async {
        app.state.store.notify_cursor("since").await.ok().flatten()
    })
    .await;
    app.stop().await;
    // The change happens while no notifier runs (as if rushes died right after storing it).
    let app = TestApp::spawn(app_config(root.path(), &fake, None)).await;
    approved_by_comment(&app, &fake).await;
    wait_for("approved", WAIT, || async {
        let (_, u) = app.get("/api/uploads/up-n").await;
        (u["state"] == "approved").then_some(())
    })
    .await;
    app.stop().await;
    // Slack is down at first: the message waits in the outbox, then goes, once.
    slack.set(|i| i.down = true);
    let app = TestApp::spawn(app_config(root.path(), &fake, Some(&slack))).await;
    let row = wait_for("a failed try recorded", WAIT, || async {
        let rows = app.state.store.messages(10).await.ok()?;
        rows.into_iter()
            .find(|r| r.attempts > 0 && r.sent_at.is_none())
    })
    .await;
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    app.stop().await;
    slack.set(|i| i.down = false);
    let app = TestApp::spawn(app_config(root.path(), &fake, Some(&slack))).await;
    let texts = slack.wait_texts(1).await;
    assert!(texts[0].contains("*Teaser.mov*: approved"), "{texts:?}");
    wait_for("the message marked sent", WAIT, || async {
        let rows = app.state.store.messages(10).await.ok()?;
        rows.iter().all(|r| r.sent_at.is_some()).then_some(())
    })
    .await;
    app.stop().await;
    let app = TestApp::spawn(app_config(root.path(), &fake, Some(&slack))).await;
    let rows = app.state.store.messages(10).await.expect("outbox");
    assert_eq!(rows.len(), 1);
    app.stop().await;
    assert_eq!(slack.texts().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_failed_for_good_and_downloaded_are_posted() {
    let fake = FakeFrameio::start().await;
    let slack = FakeSlack::start().await;
    let files = FileServer::start().await;
    let good = files.add("dropbox/ok.mov", content(20_000, 1));
    let missing = files.url("dropbox/missing.mov");
    let records = json!([
        {"source_url": good, "provider": "dropbox", "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "Rushes day 1.mov"},
        {"source_url": missing, "provider": "dropbox", "created_at": "2026-01-08T20:19:38+00:00", "original_filename": "Rushes day 2.mov"},
    ]);
    let feed = FeedServer::start(&records.to_string()).await;
    let root = temp_dir();
    let mut config = app_config(root.path(), &fake, Some(&slack));
    config.feed.location = Some(rushes::config::FeedLocation::parse(&feed.url()).expect("feed"));
    config.notify.on_download = true;
    let app = TestApp::spawn(config).await;
    let texts = wait_for("two delivery messages", WAIT, || async {
        let t = slack.texts();
        (t.len() >= 2).then_some(t)
    })
    .await;
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Downloaded: *Rushes day 1.mov*")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Delivery failed for good: *Rushes day 2.mov*")),
        "{texts:?}"
    );
    app.stop().await;
    assert_eq!(slack.texts().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_links_use_the_running_tunnels_public_url() {
    use crate::support::fake_agents::{FakeAgent, agent_api_port};
    use rushes::config::tunnel::TunnelSettings;
    let fake = FakeFrameio::start().await;
    let slack = FakeSlack::start().await;
    let root = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(root.path(), api_port);
    let mut config = app_config(root.path(), &fake, Some(&slack));
    let vars = [
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("NGROK_AUTHTOKEN", "2abcNGROKs3cretTOKEN".to_string()),
    ];
    let mut tunnel = TunnelSettings::from_lookup(None, false, |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("tunnel config");
    tunnel.guard = Some(env!("CARGO_BIN_EXE_rushes").into());
    tunnel.discovery_timeout = Duration::from_secs(10);
    tunnel.grace = Duration::from_secs(2);
    config.tunnel = tunnel;
    let app = TestApp::spawn(config).await;
    let public = wait_for("the tunnel's URL", WAIT, || async {
        let (_, s) = app.get("/api/frameio/status").await;
        s["public_url"].as_str().map(str::to_string)
    })
    .await;
    assert_eq!(public, FakeAgent::ngrok_url(ngrok.starts()));
    approved_by_comment(&app, &fake).await;
    let texts = slack.wait_texts(1).await;
    assert!(
        texts[0].contains(&format!("<{public}/#upload-up-n|Dashboard>")),
        "the link goes through the tunnel: {}",
        texts[0]
    );
    app.stop().await;
}
