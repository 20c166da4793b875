//! The optional second opinion of a language model (issue 24, item 4), against a fake
//! OpenAI-compatible endpoint: a good answer decides an unsure comment, garbage, a 429 or no
//! answer leave it unsure, sure comments are never sent, only the comment's text is sent, at most
//! two calls are in flight, and tracking goes on whatever the endpoint does.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, deliver, delivery,
};
use crate::support::fake_llm::{Behaviour, FakeLlm};
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;
use rushes::config::{FrameioConfig, LlmSettings};
use rushes::frameio::llm::{Opinion, SecondOpinion};
use serde_json::{Value, json};

/// An approval with a reservation left hanging that the local reader is not sure of.
fn unsure() -> &'static str {
    crate::support::unsure_approvals(1)[0]
}
const SURE: &str = "Rien à modifier, c'est parfait";
const SECRET: &str = "whsec-llm-s3cret";

fn verdicts(llm: &FakeLlm, input: &str) -> Vec<Value> {
    let url = llm.url();
    let mut child = bin()
        .args(["frameio", "verdict"])
        .env("FRAMEIO_REVIEW_LLM_URL", &url)
        .env("FRAMEIO_REVIEW_LLM_MODEL", "test-model")
        .env("FRAMEIO_REVIEW_LLM_KEY", "sk-test-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rushes");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("sk-test-key"),
        "the key is never logged: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn the_second_opinion_decides_unsure_comments_only() {
    let llm = FakeLlm::start(Behaviour::Verdict("changes_requested")).await;
    let fake = llm.clone();
    let lines =
        tokio::task::spawn_blocking(move || verdicts(&fake, &format!("{SURE}\n{}\n", unsure())))
            .await
            .expect("join");
    assert_eq!(lines[0]["verdict"], "approved");
    assert_eq!(lines[0]["confident"], true);
    assert_eq!(lines[1]["verdict"], "changes_requested", "{}", lines[1]);
    assert_eq!(lines[1]["confident"], true, "{}", lines[1]);
    let reason = lines[1]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("decided by the second opinion (test-model): changes_requested"),
        "{reason}"
    );
    // Only the unsure comment was sent, its text alone, with the model and the key.
    let requests = llm.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (body, auth) = &requests[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(body["model"], "test-model");
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 2, "{body}");
    assert_eq!(messages[1], json!({"role": "user", "content": unsure()}));

    // An approval from the model alone is not enough: the local guess must approve too.
    llm.set(Behaviour::Verdict("approved"));
    let fake = llm.clone();
    let lines = tokio::task::spawn_blocking(move || {
        verdicts(
            &fake,
            &format!("{}\n", crate::support::unsure_non_approvals(1)[0]),
        )
    })
    .await
    .expect("join");
    assert_eq!(lines[0]["confident"], false, "{}", lines[0]);
    assert_ne!(lines[0]["verdict"], "approved", "{}", lines[0]);

    // Garbage and 429: not sure, and the reason says why.
    for (behaviour, why) in [
        (Behaviour::Garbage, "not the JSON verdict asked for"),
        (Behaviour::TooMany, "HTTP 429"),
    ] {
        llm.set(behaviour);
        let fake = llm.clone();
        let line = tokio::task::spawn_blocking(move || {
            verdicts(
                &fake,
                &format!("{}\n", crate::support::unsure_non_approvals(1)[0]),
            )
        })
        .await
        .expect("join")
        .remove(0);
        assert_eq!(line["confident"], false, "{line}");
        assert_ne!(line["verdict"], "approved", "{line}");
        let reason = line["reason"].as_str().unwrap_or("");
        assert!(reason.contains(why), "{reason}");
    }
}

#[tokio::test]
async fn a_hung_model_times_out_and_at_most_two_calls_are_in_flight() {
    let llm = FakeLlm::start(Behaviour::Hang).await;
    let settings = LlmSettings {
        url: llm.url().parse().expect("url"),
        model: "test-model".into(),
        key: None,
    };
    let opinion =
        SecondOpinion::with_timeout(&settings, Duration::from_millis(400)).expect("client");
    let started = Instant::now();
    let asks = (0..3).map(|_| {
        let o = opinion.clone();
        tokio::spawn(async move { o.ask(unsure()).await })
    });
    let mut answers = Vec::new();
    for a in asks {
        answers.push(a.await.expect("join"));
    }
    assert!(
        answers.iter().all(|a| matches!(a, Opinion::NotSure(_))),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| matches!(a, Opinion::NotSure(w) if w.contains("no answer within 0.4 s"))),
        "{answers:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeout"
    );
    assert!(
        llm.max_in_flight() <= 2,
        "in flight: {}",
        llm.max_in_flight()
    );
    assert!(!llm.requests().is_empty());
}

#[tokio::test]
async fn tracking_asks_the_second_opinion_and_goes_on_without_it() {
    let fake = FakeFrameio::start().await;
    fake.add_file("g1");
    fake.add_file("g2");
    let llm = FakeLlm::start(Behaviour::Verdict("changes_requested")).await;
    let dir = temp_dir();
    let feed = dir.path().join("feed.json");
    std::fs::write(&feed, "[]").expect("write feed");
    let mut config = config_for(dir.path(), &feed.display().to_string());
    config.feed.monitor_interval = Duration::from_secs(3600);
    let vars: Vec<(&str, String)> = vec![
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_IMS_URL", fake.ims_url()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.into()),
        ("FRAMEIO_POLL_INTERVAL", "3600".into()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
        ("FRAMEIO_REVIEW_LLM_URL", llm.url()),
        ("FRAMEIO_REVIEW_LLM_MODEL", "test-model".into()),
    ];
    config.frameio = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("frameio config");
    let app = TestApp::spawn(config).await;
    let hook = app.url("/webhooks/frameio");
    for (file, comment) in [("g1", "k1"), ("g2", "k2")] {
        let r = app
            .client
            .post(app.url("/api/uploads"))
            .json(&json!({ "file_id": file }))
            .send()
            .await
            .expect("POST /api/uploads");
        assert_eq!(r.status().as_u16(), 201);
        fake.add_comment_by(file, comment, unsure(), "2026-03-05T10:00:00Z", "Ana");
    }
    let body = delivery("comment.created", "comment", "k1");
    assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
    let u = wait_for(
        "g1 decided by the second opinion",
        Duration::from_secs(15),
        || async {
            let (_, u) = app.get("/api/uploads/g1").await;
            (u["state"] == "changes_requested").then_some(u)
        },
    )
    .await;
    assert_eq!(u["needs_look"], Value::Null, "{u}");
    // The endpoint refuses (429): the upload needs a look, tracking goes on.
    llm.set(Behaviour::TooMany);
    let body = delivery("comment.created", "comment", "k2");
    assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
    let u = wait_for("g2 to need a look", Duration::from_secs(15), || async {
        let (_, u) = app.get("/api/uploads/g2").await;
        u["needs_look"].is_object().then_some(u)
    })
    .await;
    assert_ne!(u["state"], "approved", "{u}");
    let reason = u["needs_look"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("HTTP 429"), "{u}");
    app.stop().await;
}
