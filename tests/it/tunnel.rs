//! Reachable by Frame.io: a fixed public URL or a supervised ngrok / cloudflared agent (fakes
//! written by the tests that behave like the real ones), the webhook following the URL on the
//! fake Frame.io, the inspector, replay, `doctor`, and a Frame.io-only `serve`.

use std::path::Path;
use std::time::Duration;

use crate::support::fake_agents::{FakeAgent, agent_api_port, alive};
use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, deliver, delivery,
};
use crate::support::service::{ChildService, TestApp, bin, config_for, free_port, temp_dir};
use crate::support::wait_for;
use rushes::config::Config;
use rushes::config::FrameioConfig;
use rushes::config::tunnel::TunnelSettings;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "whsec-tunnel-s3cret";
const NGROK_TOKEN: &str = "2abcNGROKs3cretTOKEN";

fn frameio_vars(fake: &FakeFrameio) -> Vec<(&'static str, String)> {
    vec![
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
        ("FRAMEIO_POLL_INTERVAL", "3600".into()),
    ]
}

fn lookup<'a>(vars: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
    |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// An in-process rushes with these variables (Frame.io and tunnel ones), guarded by the built
/// binary as `rushes serve` would be, with short restart delays.
fn config(dir: &Path, vars: &[(&'static str, String)]) -> Config {
    let feed = dir.join("feed.json");
    std::fs::write(&feed, "[]").expect("feed");
    let mut config = config_for(dir, &feed.display().to_string());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.frameio = FrameioConfig::from_lookup(lookup(vars)).expect("frameio config");
    let mut tunnel = TunnelSettings::from_lookup(None, false, lookup(vars)).expect("tunnel config");
    tunnel.guard = Some(env!("CARGO_BIN_EXE_rushes").into());
    tunnel.backoff_base = Duration::from_millis(100);
    tunnel.backoff_cap = Duration::from_millis(400);
    tunnel.failure_cap = Duration::from_secs(2);
    tunnel.discovery_timeout = Duration::from_secs(10);
    tunnel.grace = Duration::from_secs(2);
    tunnel.recheck_every = Duration::from_millis(200);
    config.tunnel = tunnel;
    config
}

fn is_fake_ngrok_url(url: &str) -> bool {
    url.starts_with("https://f") && url.ends_with("-4a7c-9e21.ngrok-free.app")
}

async fn status(app: &TestApp) -> Value {
    let (code, body) = app.get("/api/frameio/status").await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn wait_status(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, WAIT, || async {
        let s = status(app).await;
        check(&s).then_some(s)
    })
    .await
}

fn hook_urls(fake: &FakeFrameio) -> Vec<String> {
    fake.webhooks()
        .iter()
        .map(|h| h["url"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn wait_hooks(fake: &FakeFrameio, url: &str) {
    let want = vec![format!("{url}/webhooks/frameio")];
    wait_for(&format!("the webhook to point at {url}"), WAIT, || async {
        (hook_urls(fake) == want).then_some(())
    })
    .await;
}

#[tokio::test]
async fn ngrok_url_is_discovered_and_the_webhook_follows_it_across_a_crash() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("NGROK_AUTHTOKEN", NGROK_TOKEN.to_string()),
    ]);
    let app = TestApp::spawn(config(dir.path(), &vars)).await;

    let s = wait_status(&app, "the ngrok URL", |s| {
        s["public_url"].as_str().is_some_and(is_fake_ngrok_url)
            && s["webhook"]["state"] == "in_sync"
    })
    .await;
    let first = s["public_url"].as_str().unwrap_or_default().to_string();
    let start = ngrok.starts();
    assert_eq!(first, FakeAgent::ngrok_url(start));
    assert_eq!(s["mode"], "ngrok");
    assert_eq!(s["tunnel"]["agent_state"], "running");
    assert_eq!(s["webhook"]["points_at_current_url"], true);
    assert_eq!(s["webhook"]["active"], true);
    wait_hooks(&fake, &first).await;
    assert_eq!(
        ngrok.args(start),
        [
            "http",
            &app.addr.port().to_string(),
            "--log",
            "stdout",
            "--log-format",
            "json"
        ]
    );
    // The token reaches the agent in its environment, and nothing of rushes' own settings does.
    assert_eq!(ngrok.token(start).as_deref(), Some(NGROK_TOKEN));
    assert!(ngrok.leaked(start).is_empty(), "{:?}", ngrok.leaked(start));
    assert!(!s.to_string().contains(NGROK_TOKEN));
    let secret_before = app
        .state
        .store
        .frameio_credential("webhook_secret")
        .await
        .expect("store")
        .expect("stored secret");

    // Crash: restarted with backoff, new URL, the same webhook moved to it.
    let first_pid = ngrok.pid().expect("pid");
    ngrok.crash();
    let s = wait_status(&app, "the new ngrok URL", |s| {
        let url = s["public_url"].as_str().unwrap_or_default();
        url != first
            && is_fake_ngrok_url(url)
            && s["webhook"]["state"] == "in_sync"
            && s["webhook"]["webhook_url"] == format!("{url}/webhooks/frameio").as_str()
    })
    .await;
    let second = s["public_url"].as_str().unwrap_or_default().to_string();
    assert!(s["tunnel"]["restarts"].as_u64() >= Some(1), "{s}");
    wait_hooks(&fake, &second).await;
    assert_ne!(ngrok.pid(), Some(first_pid));
    assert_eq!(fake.count("POST", "/webhooks"), 1, "never a second webhook");
    assert!(fake.count("PATCH", "/webhooks/") >= 1);
    let secret_after = app
        .state
        .store
        .frameio_credential("webhook_secret")
        .await
        .expect("store")
        .expect("stored secret");
    assert_eq!(secret_before, secret_after, "the signing secret is kept");

    // Shutdown stops the agent.
    let pid = ngrok.pid().expect("pid");
    app.stop().await;
    wait_for("the agent to stop with rushes", WAIT, || async {
        (!alive(pid)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cloudflared_quick_tunnel_url_is_read_from_its_output() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let cloudflared = FakeAgent::cloudflared(dir.path());
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("RUSHES_TUNNEL", "cloudflared".to_string()),
        ("CLOUDFLARED_BIN", cloudflared.program.display().to_string()),
    ]);
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let first = FakeAgent::cloudflared_url(1);
    wait_status(&app, "the quick tunnel URL", |s| {
        s["public_url"] == first.as_str() && s["webhook"]["state"] == "in_sync"
    })
    .await;
    wait_hooks(&fake, &first).await;
    assert_eq!(
        cloudflared.args(1),
        [
            "tunnel",
            "--no-autoupdate",
            "--url",
            &format!("http://127.0.0.1:{}", app.addr.port())
        ]
    );
    cloudflared.crash();
    let second = FakeAgent::cloudflared_url(2);
    wait_status(&app, "the next quick tunnel URL", |s| {
        s["public_url"] == second.as_str() && s["webhook"]["state"] == "in_sync"
    })
    .await;
    wait_hooks(&fake, &second).await;
    assert_eq!(fake.webhooks().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error_and_rushes_keeps_serving() {
    let dir = temp_dir();
    let vars = vec![
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        (
            "NGROK_BIN",
            dir.path().join("no-such-ngrok").display().to_string(),
        ),
    ];
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the agent to fail", |s| {
        s["tunnel"]["agent_state"] == "failed"
    })
    .await;
    let error = s["tunnel"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("not found") && error.contains("NGROK_BIN"),
        "{error}"
    );
    assert_eq!(s["tunnel"]["last_error_kind"], "missing_binary");
    assert!(s["tunnel"]["next_start_at"].is_string());
    assert!(s["public_url"].is_null());
    // Still serving, the page says it too.
    assert_eq!(app.get("/healthz").await.0, 200);
    let (_, page) = app.get_text("/").await;
    assert!(page.contains("not found"), "the page shows the error");
    // Retries with growing delays, not a crash loop.
    let later = wait_status(&app, "a retry", |s| {
        s["tunnel"]["restarts"].as_u64() >= Some(2)
    })
    .await;
    assert!(later["tunnel"]["restarts"].as_u64() < Some(10), "{later}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_auth_token_is_reported_without_the_token() {
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    ngrok.refuse_token();
    let vars = vec![
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("NGROK_AUTHTOKEN", NGROK_TOKEN.to_string()),
    ];
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the token refusal", |s| {
        s["tunnel"]["last_error_kind"] == "auth_refused"
    })
    .await;
    let error = s["tunnel"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("NGROK_AUTHTOKEN") && error.contains("ERR_NGROK_105"),
        "{error}"
    );
    assert!(!s.to_string().contains(NGROK_TOKEN), "{s}");
    app.stop().await;
}

#[tokio::test]
async fn public_url_mode_starts_no_agent_and_points_the_webhook_there() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let ngrok = FakeAgent::ngrok(dir.path(), agent_api_port());
    let mut vars = frameio_vars(&fake);
    vars.extend([
        (
            "RUSHES_PUBLIC_URL",
            "https://rushes.example.com/".to_string(),
        ),
        ("NGROK_BIN", ngrok.program.display().to_string()),
    ]);
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the webhook sync", |s| {
        s["webhook"]["state"] == "in_sync"
    })
    .await;
    assert_eq!(s["mode"], "none");
    assert_eq!(s["public_url"], "https://rushes.example.com");
    assert_eq!(s["tunnel"]["agent_state"], "not_used");
    assert_eq!(s["tunnel"]["url_source"], "RUSHES_PUBLIC_URL");
    wait_hooks(&fake, "https://rushes.example.com").await;
    assert_eq!(ngrok.starts(), 0, "no agent started");
    app.stop().await;
}

#[tokio::test]
async fn rushes_killed_with_sigkill_leaves_no_agent_running() {
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    let program = ngrok.program.display().to_string();
    let api = format!("127.0.0.1:{api_port}");
    let mut service = ChildService::start(
        dir.path(),
        &[
            ("RUSHES_TUNNEL", "ngrok"),
            ("NGROK_BIN", &program),
            ("NGROK_API_ADDR", &api),
            ("NGROK_AUTHTOKEN", NGROK_TOKEN),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = service.url("/api/frameio/status");
    wait_for("the agent to run", WAIT, || async {
        let s: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
        (s["tunnel"]["agent_state"] == "running").then_some(())
    })
    .await;
    let pid = ngrok.pid().expect("agent pid");
    assert!(alive(pid));
    assert_eq!(ngrok.token(ngrok.starts()).as_deref(), Some(NGROK_TOKEN));
    // Even at debug level (the agent's own lines are logged), the token is not in the log.
    let log = service.wait_for_log("started tunnel").await;
    assert!(
        !log.contains(NGROK_TOKEN),
        "the auth token leaked into app.log"
    );
    service.kill();
    wait_for("the agent to die with rushes", WAIT, || async {
        (!alive(pid)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn serve_runs_frameio_only_without_a_feed() {
    let dir = temp_dir();
    let service = ChildService::start(dir.path(), &[("RUSHES_TUNNEL", "none")]).await;
    let client = reqwest::Client::new();
    let page = client
        .get(service.url("/"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("Frame.io only"), "{page}");
    assert!(!page.contains("id=\"feed-panel\""));
    let refresh = client
        .post(service.url("/api/feed/refresh"))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refresh.status().as_u16(), 409);
    let s: Value = client
        .get(service.url("/api/frameio/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(s["feed_configured"], false);
    service.wait_for_log("no feed poller").await;
}

#[tokio::test]
async fn the_inspector_shows_accepted_and_refused_calls_and_replays() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-a");
    let dir = temp_dir();
    let mut vars = frameio_vars(&fake);
    vars.push(("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string()));
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let r = app
        .client
        .post(app.url("/api/uploads"))
        .json(&serde_json::json!({"file_id": "file-a", "upload_id": "up-a"}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status().as_u16(), 201);

    let hook = app.url("/webhooks/frameio");
    let good = delivery("file.ready", "file", "file-a");
    assert_eq!(deliver(&app.client, &hook, SECRET, &good).await, 200);
    assert_eq!(
        deliver(
            &app.client,
            &hook,
            "wrong-secret",
            &delivery("file.ready", "file", "file-b")
        )
        .await,
        401
    );
    let unsigned = app
        .client
        .post(&hook)
        .body(delivery("comment.created", "comment", "c-1"))
        .send()
        .await
        .expect("post");
    assert_eq!(unsigned.status().as_u16(), 401);
    let stale_ts = (chrono::Utc::now().timestamp() - 3600).to_string();
    let stale_body = delivery("file.ready", "file", "file-c");
    let stale_sig =
        rushes::frameio::webhook::sign(SECRET.as_bytes(), &stale_ts, stale_body.as_bytes());
    let stale = app
        .client
        .post(&hook)
        .header("X-Frameio-Request-Timestamp", stale_ts)
        .header("X-Frameio-Signature", stale_sig)
        .body(stale_body)
        .send()
        .await
        .expect("post");
    assert_eq!(stale.status().as_u16(), 401);

    let events = wait_for("the accepted call to be processed", WAIT, || async {
        let (_, body) = app.get("/api/frameio/events").await;
        let list = body["events"].as_array()?.clone();
        let accepted = list.iter().find(|e| e["verdict"] == "accepted")?;
        accepted["outcome"].is_string().then_some(list)
    })
    .await;
    let verdicts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["verdict"].as_str())
        .collect();
    assert_eq!(
        verdicts,
        ["stale", "missing_signature", "bad_signature", "accepted"],
        "newest first"
    );
    let accepted = &events[3];
    assert_eq!(accepted["outcome"], "applied");
    assert_eq!(accepted["upload_id"], "up-a");
    assert_eq!(accepted["outcome_text"], "moved upload up-a");
    assert_eq!(events[2]["http_status"], 401);
    assert_eq!(events[2]["resource_id"], "file-b");
    let (_, s) = app.get("/api/frameio/status").await;
    assert_eq!(s["rejected_calls"], 3);
    assert!(s["last_webhook_received_at"].is_string());

    // Paging.
    let (_, page2) = app.get("/api/frameio/events?per_page=3&page=2").await;
    assert_eq!(page2["events"].as_array().map(Vec::len), Some(1));
    let (_, page1) = app.get("/api/frameio/events?per_page=3").await;
    assert_eq!(page1["next_page"], 2);

    // Raw body on demand.
    let call = accepted["call_id"].as_str().expect("call id");
    let (code, raw) = app
        .get_text(&format!("/api/frameio/events/{call}/body"))
        .await;
    assert_eq!(code, 200);
    assert!(raw.contains("\"file-a\""), "{raw}");

    // The dashboard shows both kinds.
    let (_, page) = app.get_text("/").await;
    assert!(
        page.contains("bad signature")
            && page.contains("accepted")
            && page.contains("moved upload up-a")
    );

    // Replay: idempotent for the tracker.
    let id = accepted["event_id"].as_i64().expect("event id");
    let transitions = || async {
        let (_, u) = app.get("/api/uploads/up-a").await;
        u["transitions"].as_array().map(Vec::len).unwrap_or(0)
    };
    let before = transitions().await;
    for _ in 0..2 {
        let (code, replayed) = app.post(&format!("/api/frameio/events/{id}/replay")).await;
        assert_eq!(code, 200, "{replayed}");
        assert_eq!(replayed["event_id"], id);
        assert!(
            replayed["outcome"] == "unchanged" || replayed["outcome"] == "applied",
            "{replayed}"
        );
    }
    assert_eq!(transitions().await, before, "a replay changes nothing more");
    assert_eq!(app.post("/api/frameio/events/999999/replay").await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn rejected_calls_are_counted_and_the_last_hundred_kept() {
    let dir = temp_dir();
    let vars = vec![("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string())];
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let hook = app.url("/webhooks/frameio");
    for i in 0..105 {
        let body = delivery("file.ready", "file", &format!("f-{i}"));
        assert_eq!(deliver(&app.client, &hook, "wrong", &body).await, 401);
    }
    let (_, s) = app.get("/api/frameio/status").await;
    assert_eq!(s["rejected_calls"], 105);
    let (_, all) = app.get("/api/frameio/events?per_page=200").await;
    let list = all["events"].as_array().expect("events");
    assert_eq!(list.len(), 100);
    assert_eq!(list[0]["resource_id"], "f-104");
    app.stop().await;
}

/// Runs `rushes frameio doctor` (without blocking the runtime that serves the fakes).
async fn doctor(root: &Path, vars: &[(&'static str, String)], url: &str) -> (i32, String) {
    let mut cmd = bin();
    cmd.args(["frameio", "doctor", "--url", url])
        .current_dir(root)
        .env("RUSHES_DATA_DIR", root.join("data"))
        .envs(crate::support::db::env_for(&root.join("data")));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("run doctor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn doctor_names_the_first_failing_check_then_passes_on_a_working_setup() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let public = format!("http://127.0.0.1:{port}");
    let vars = frameio_vars(&fake);

    // Broken: no credentials.
    let (code, out) = doctor(dir.path(), &[], &public).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] credentials") && out.contains("fix: set FRAMEIO_TOKEN"),
        "{out}"
    );

    // Broken: credentials and ids fine, no webhook yet (and no rushes running).
    let (code, out) = doctor(dir.path(), &vars, &public).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[ok]   credentials"), "{out}");
    assert!(out.contains("[ok]   account and workspace ids"), "{out}");
    assert!(out.contains("[FAIL] webhook presence"), "{out}");
    assert!(out.contains("[skip] reachability from outside"), "{out}");

    // Working: rushes serves with a public URL (here its own address) and made the webhook.
    let mut env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("RUSHES_PUBLIC_URL", &public));
    let service = ChildService::start_at(dir.path(), addr, &env).await;
    wait_hooks(&fake, &public).await;
    // The secret is stored once `ensure` has returned: the status says in_sync then.
    let status_url = service.url("/api/frameio/status");
    wait_for("the webhook sync", WAIT, || async {
        let s: Value = reqwest::get(&status_url).await.ok()?.json().await.ok()?;
        (s["webhook"]["state"] == "in_sync").then_some(())
    })
    .await;
    let (code, out) = doctor(dir.path(), &vars, &service.url("")).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[ok]   reachability from outside"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    // The test call is in the inspector.
    let list: Value = reqwest::get(service.url("/api/frameio/events"))
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    assert_eq!(list["events"][0]["event_type"], "rushes.doctor");

    // Broken again: the webhook moved elsewhere.
    let id = fake.webhooks()[0]["id"].as_str().expect("id").to_string();
    let client = reqwest::Client::new();
    client
        .patch(format!(
            "{}/v4/accounts/{ACCOUNT}/webhooks/{id}",
            fake.base()
        ))
        .bearer_auth(STATIC_TOKEN)
        .json(&serde_json::json!({"data": {"url": "https://elsewhere.example/webhooks/frameio"}}))
        .send()
        .await
        .expect("patch");
    let (code, out) = doctor(dir.path(), &vars, &service.url("")).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[FAIL] webhook URL and activity") && out.contains("webhook ensure --url"),
        "{out}"
    );
}

#[tokio::test]
async fn a_named_cloudflared_tunnel_uses_the_fixed_url_and_cleanup_deactivates_the_webhook() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let cloudflared = FakeAgent::cloudflared(dir.path());
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("RUSHES_TUNNEL", "cloudflared".to_string()),
        ("CLOUDFLARED_BIN", cloudflared.program.display().to_string()),
        ("CLOUDFLARED_TUNNEL_TOKEN", "cf-named-s3cret".to_string()),
        (
            "RUSHES_PUBLIC_URL",
            "https://rushes.studio.example".to_string(),
        ),
    ]);
    let mut config = config(dir.path(), &vars);
    config.tunnel.cleanup = true;
    let app = TestApp::spawn(config).await;
    let s = wait_status(&app, "the named tunnel", |s| {
        s["tunnel"]["agent_state"] == "running" && s["webhook"]["state"] == "in_sync"
    })
    .await;
    assert_eq!(s["public_url"], "https://rushes.studio.example");
    assert_eq!(s["tunnel"]["url_source"], "RUSHES_PUBLIC_URL");
    wait_hooks(&fake, "https://rushes.studio.example").await;
    // The token goes in the environment, never on the command line.
    assert_eq!(cloudflared.args(1), ["tunnel", "--no-autoupdate", "run"]);
    assert_eq!(cloudflared.token(1).as_deref(), Some("cf-named-s3cret"));
    assert!(!s.to_string().contains("cf-named-s3cret"));
    app.stop().await;
    // --tunnel-cleanup: the webhook is deactivated on exit, not deleted.
    let hooks = fake.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["active"], false);
}

#[tokio::test]
async fn frameio_events_prints_and_follows_received_calls() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = temp_dir();
    let vars = vec![("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string())];
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let hook = app.url("/webhooks/frameio");
    let ok = delivery("file.ready", "file", "file-first");
    assert_eq!(deliver(&app.client, &hook, SECRET, &ok).await, 200);
    let bad = delivery("file.ready", "file", "file-forged");
    assert_eq!(deliver(&app.client, &hook, "wrong", &bad).await, 401);
    // Both calls reach the database a moment after their answer (the accepted one through the
    // inbox, the refused one in the next sample of refusals); the CLI is another process and
    // reads only the database, so wait until the service's own listing (which writes pending
    // refusals first) shows both.
    let events = app.url("/api/frameio/events");
    wait_for("both calls stored", WAIT, || async {
        let body: Value = app
            .client
            .get(&events)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let text = body["events"].to_string();
        (text.contains("file-first") && text.contains("file-forged")).then_some(())
    })
    .await;

    let mut cmd = bin();
    cmd.args(["frameio", "events"])
        .env("RUSHES_DATA_DIR", dir.path().join("data"))
        .envs(crate::support::db::env_for(&dir.path().join("data")));
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("frameio events");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first = text.find("file-first").expect("accepted call listed");
    let forged = text.find("file-forged").expect("refused call listed");
    assert!(first < forged, "oldest first: {text}");
    assert!(text.contains("401 bad_signature"), "{text}");
    assert!(text.contains("1 refused call(s)"), "{text}");

    let mut cmd = bin();
    cmd.args(["frameio", "events", "--follow"])
        .env("RUSHES_DATA_DIR", dir.path().join("data"))
        .envs(crate::support::db::env_for(&dir.path().join("data")))
        .stdout(std::process::Stdio::piped());
    let mut follow = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("follow");
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    // The listing is printed first; then a new call shows up.
    loop {
        let line = lines.next_line().await.expect("line").expect("open");
        if line.contains("refused call(s)") {
            break;
        }
    }
    let later = delivery("comment.created", "comment", "comment-later");
    assert_eq!(deliver(&app.client, &hook, SECRET, &later).await, 200);
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.expect("line").expect("open");
            if line.contains("comment-later") {
                return line;
            }
        }
    })
    .await
    .expect("the new call is printed");
    assert!(seen.contains("accepted"), "{seen}");
    let _ = follow.kill().await;
    app.stop().await;
}

/// The Frame.io panel in a real Chromium: it follows the agent and the received calls without a
/// reload, and its Replay button acts.
#[tokio::test]
async fn the_dashboard_panel_follows_the_tunnel_and_the_inspector_live() {
    use crate::support::browser::Browser;
    use fantoccini::Locator;

    let fake = FakeFrameio::start().await;
    fake.add_file("file-a");
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string()),
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
    ]);
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the ngrok URL", |s| {
        s["webhook"]["state"] == "in_sync"
    })
    .await;
    let first = s["public_url"].as_str().unwrap_or_default().to_string();

    let browser = Browser::start(1280, 1000).await;
    browser.client.goto(&app.url("/")).await.expect("open page");
    let text = |css: &'static str| {
        let client = browser.client.clone();
        async move {
            match client.find(Locator::Css(css)).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
    };
    assert!(text("#reach-url").await.contains(&first));
    assert!(text("#reach-agent").await.contains("running"));
    assert_eq!(text("#reach-points").await, "yes");

    // Calls arriving after the page was opened show up in the inspector by themselves.
    let hook = app.url("/webhooks/frameio");
    let forged = delivery("file.ready", "file", "file-forged");
    assert_eq!(deliver(&app.client, &hook, "wrong", &forged).await, 401);
    let good = delivery("file.ready", "file", "file-a");
    assert_eq!(deliver(&app.client, &hook, SECRET, &good).await, 200);
    wait_for("the inspector rows", WAIT, || async {
        let refused = browser
            .client
            .find(Locator::Css("#inspector tr[data-verdict='bad_signature']"))
            .await
            .is_ok();
        let accepted = text("#inspector tr[data-verdict='accepted'] td.outcome").await;
        // file-a exists on Frame.io but is not tracked here.
        (refused && accepted == "no tracked upload").then_some(())
    })
    .await;

    // Replay from the page.
    browser
        .client
        .find(Locator::Css(
            "#inspector tr[data-verdict='accepted'] button[type='submit']",
        ))
        .await
        .expect("replay button")
        .click()
        .await
        .expect("click");
    wait_for("the replay toast", WAIT, || async {
        text("#toast").await.contains("replayed").then_some(())
    })
    .await;

    // A crash: the page shows the new URL and the restart without a reload.
    ngrok.crash();
    wait_for("the page to show the new URL", WAIT, || async {
        let url = text("#reach-url").await;
        let agent = text("#reach-agent").await;
        (url.contains(".ngrok-free.app") && !url.contains(&first) && agent.contains("restart"))
            .then_some(())
    })
    .await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_ngrok_url_that_changes_without_a_restart_moves_the_webhook() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
    ]);
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the first URL", |s| {
        s["webhook"]["state"] == "in_sync"
    })
    .await;
    wait_hooks(&fake, s["public_url"].as_str().unwrap_or_default()).await;
    let starts = ngrok.starts();
    let moved = "https://moved-77b1.ngrok-free.app";
    ngrok.move_url(moved);
    let s = wait_status(&app, "the moved URL", |s| {
        s["public_url"] == moved
            && s["webhook"]["webhook_url"] == format!("{moved}/webhooks/frameio").as_str()
    })
    .await;
    wait_hooks(&fake, moved).await;
    assert_eq!(ngrok.starts(), starts, "no restart: {s}");
    assert_eq!(fake.count("POST", "/webhooks"), 1);
    app.stop().await;
}

// Issue 22, item 7: whatever answers on ngrok's API port must not choose where Frame.io sends
// its events.
#[tokio::test]
async fn an_ngrok_api_naming_a_foreign_url_is_not_followed() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let api_port = agent_api_port();
    let ngrok = FakeAgent::ngrok(dir.path(), api_port);
    let mut vars = frameio_vars(&fake);
    vars.extend([
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string()),
    ]);
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let service = ChildService::start(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let url = service.url("/api/frameio/status");
    let status = || async {
        let s: Value = client
            .get(&url)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        s
    };
    let s = wait_for("the first URL", WAIT, || async {
        let s = status().await;
        (s["webhook"]["state"] == "in_sync").then_some(s)
    })
    .await;
    let first = s["public_url"].as_str().unwrap_or_default().to_string();
    assert!(is_fake_ngrok_url(&first), "{s}");
    ngrok.move_url("https://evil.example/x");
    service.wait_for_log("outside ngrok's domains").await;
    let s = status().await;
    assert_eq!(s["public_url"], first.as_str(), "{s}");
    assert_eq!(hook_urls(&fake), vec![format!("{first}/webhooks/frameio")]);
}

// Issue 22, item 7: an API port that answers before rushes started its agent is not its agent.
#[tokio::test]
async fn an_ngrok_api_port_taken_before_the_start_is_refused() {
    let dir = temp_dir();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = squatter.local_addr().expect("addr").to_string();
    let ngrok = FakeAgent::ngrok(dir.path(), agent_api_port());
    let vars = vec![
        ("RUSHES_TUNNEL", "ngrok".to_string()),
        ("NGROK_BIN", ngrok.program.display().to_string()),
        ("NGROK_API_ADDR", api.clone()),
    ];
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let s = wait_status(&app, "the refusal", |s| {
        s["tunnel"]["last_error_kind"] == "api_taken"
    })
    .await;
    let error = s["tunnel"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&api) && error.contains("NGROK_API_ADDR"),
        "{s}"
    );
    assert!(s["public_url"].is_null(), "{s}");
    assert_eq!(ngrok.starts(), 0, "no agent started against a squatted API");
    app.stop().await;
    drop(squatter);
}

/// An ngrok behind a wrapper script without `exec` (the script's child is the agent), which
/// also starts a helper of its own.
fn wrapped_ngrok(dir: &Path, api_port: u16) -> (FakeAgent, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let ngrok = FakeAgent::ngrok(dir, api_port);
    let wrapper = dir.join("ngrok-wrapper");
    let helper_pid = dir.join("helper.pid");
    let script = format!(
        "#!/bin/sh\necho $$ > '{}'\nsleep 3600 &\necho $! > '{}'\n'{}' \"$@\"\n",
        dir.join("wrapper.pid").display(),
        helper_pid.display(),
        ngrok.program.display()
    );
    std::fs::write(&wrapper, script).expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (ngrok, wrapper)
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("pid file")
}

// Issue 22, item 4: nothing the agent started outlives rushes, SIGKILL or SIGTERM.
#[tokio::test]
async fn the_agents_children_die_with_rushes() {
    for signal in ["KILL", "TERM"] {
        let dir = temp_dir();
        let api_port = agent_api_port();
        let (ngrok, wrapper) = wrapped_ngrok(dir.path(), api_port);
        let api = format!("127.0.0.1:{api_port}");
        let service = ChildService::start(
            dir.path(),
            &[
                ("RUSHES_TUNNEL", "ngrok"),
                ("NGROK_BIN", &wrapper.display().to_string()),
                ("NGROK_API_ADDR", &api),
            ],
        )
        .await;
        let client = reqwest::Client::new();
        let url = service.url("/api/frameio/status");
        wait_for("the agent to run", WAIT, || async {
            let s: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (s["tunnel"]["agent_state"] == "running").then_some(())
        })
        .await;
        let pids = [
            pid_in(&dir.path().join("wrapper.pid")),
            pid_in(&dir.path().join("helper.pid")),
            ngrok.pid().expect("agent pid"),
        ];
        assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
        if signal == "KILL" {
            let mut service = service;
            service.kill();
        } else {
            assert!(service.terminate().await.success());
        }
        wait_for(
            &format!("the agent's processes to die with rushes (SIG{signal})"),
            WAIT,
            || async { pids.iter().all(|p| !alive(*p)).then_some(()) },
        )
        .await;
    }
}

// Issue 22, item 10: replays at once from many clients never fail with "database is locked".
#[tokio::test]
async fn concurrent_replays_never_fail_on_a_locked_database() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-r");
    let dir = temp_dir();
    let mut vars = frameio_vars(&fake);
    vars.push(("FRAMEIO_WEBHOOK_SECRET", SECRET.to_string()));
    let app = TestApp::spawn(config(dir.path(), &vars)).await;
    let (code, _) = app
        .post_json(
            "/api/uploads",
            &serde_json::json!({"file_id": "file-r", "upload_id": "up-r"}),
        )
        .await;
    assert_eq!(code, 201);
    let hook = app.url("/webhooks/frameio");
    let mut ids = Vec::new();
    for kind in ["file.ready", "file.upload.completed", "comment.created"] {
        let body = delivery(kind, "file", "file-r");
        assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
    }
    let events = wait_for("the events to be processed", WAIT, || async {
        let (_, body) = app.get("/api/frameio/events").await;
        let list = body["events"].as_array()?.clone();
        (list.len() == 3 && list.iter().all(|e| e["outcome"].is_string())).then_some(list)
    })
    .await;
    for e in &events {
        ids.push(e["event_id"].as_i64().expect("event id"));
    }
    let mut tasks = Vec::new();
    for t in 0..16 {
        let client = app.client.clone();
        let base = app.url("/api/frameio/events");
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for i in 0..32 {
                let id = ids[(t + i) % ids.len()];
                let r = client
                    .post(format!("{base}/{id}/replay"))
                    .send()
                    .await
                    .expect("replay");
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                if status != 200 || body["outcome"] == "failed" {
                    failed.push(format!("{status} {body}"));
                }
            }
            failed
        }));
    }
    for task in tasks {
        let failed = task.await.expect("task");
        assert!(failed.is_empty(), "{failed:?}");
    }
    app.stop().await;
}
