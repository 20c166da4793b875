//! Review verdicts end to end (issue 10): replies, pagination with authors, reopening, Status
//! outranking comments, expired credentials without a retry storm, and `rushes frameio verdict`
//! through the real binary.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::fake_frameio::{
    ACCOUNT, CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH, FakeFrameio, STATIC_TOKEN, WORKSPACE,
    deliver, delivery,
};
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use crate::support::wait_for;
use rushes::config::Config;
use rushes::config::FrameioConfig;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "whsec-verdicts-s3cret";

fn vars(fake: &FakeFrameio, auth: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_IMS_URL", fake.ims_url()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.into()),
        ("FRAMEIO_POLL_INTERVAL", "3600".into()),
    ];
    v.extend(auth.iter().cloned());
    v
}

fn app_config(dir: &Path, vars: &[(&'static str, String)]) -> Config {
    let feed = dir.join("feed.json");
    std::fs::write(&feed, "[]").expect("write feed");
    let mut config = config_for(dir, &feed.display().to_string());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.frameio = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .rev()
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

fn last_reason(u: &Value) -> String {
    u["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|t| t["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn track(app: &TestApp, file: &str) {
    let r = app
        .client
        .post(app.url("/api/uploads"))
        .json(&json!({"file_id": file}))
        .send()
        .await
        .expect("POST /api/uploads");
    assert_eq!(r.status().as_u16(), 201);
}

async fn comment_event(app: &TestApp, comment_id: &str) {
    let hook = app.url("/webhooks/frameio");
    let body = delivery("comment.created", "comment", comment_id);
    assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
}

/// Waits until every stored event has been processed (whatever its outcome).
async fn events_settled(app: &TestApp, count: usize) {
    wait_for("events to be processed", WAIT, || async {
        let events = app.state.store.frameio_events(100).await.expect("events");
        // Processed, or tried and deferred.
        (events.len() >= count
            && events
                .iter()
                .all(|e| e.processed_at.is_some() || e.attempts > 0))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn replies_second_page_authors_and_reopening() {
    let fake = FakeFrameio::start().await;
    fake.add_file("f1");
    // 100 comments without a decision fill the first page; the change request is on page 2.
    for i in 0..100 {
        fake.add_comment_by(
            "f1",
            &format!("c{i:03}"),
            "Belle lumière sur ce plan",
            &format!("2026-03-01T10:{:02}:{:02}Z", i / 60, i % 60),
            "Claire",
        );
    }
    fake.add_comment_by(
        "f1",
        "c100",
        "Il faudrait raccourcir le plan d'ouverture",
        "2026-03-01T11:00:00Z",
        "Marc (agence)",
    );
    let dir = temp_dir();
    let app = TestApp::spawn(app_config(
        dir.path(),
        &vars(&fake, &[("FRAMEIO_TOKEN", STATIC_TOKEN.into())]),
    ))
    .await;
    track(&app, "f1").await;

    comment_event(&app, "c100").await;
    let u = wait_state(&app, "f1", "changes_requested").await;
    let reason = last_reason(&u);
    // The author comes from page 2: include=owner was added again to the cursor-only next link.
    assert!(reason.contains("by Marc (agence)"), "{reason}");
    assert!(reason.contains("'raccourcir'"), "{reason}");
    assert!(
        fake.count("GET", "/files/f1/comments") >= 2,
        "two pages read"
    );

    // A reply "ok validé" (newest) approves: replies are analysed.
    fake.add_reply(
        "f1",
        "c100",
        "r1",
        "ok validé, merci !",
        "2026-03-01T12:00:00Z",
    );
    comment_event(&app, "r1").await;
    let u = wait_state(&app, "f1", "approved").await;
    let reason = last_reason(&u);
    assert!(reason.contains("comment r1 by Paul (producer)"), "{reason}");
    assert!(reason.contains("approval"), "{reason}");
    assert_eq!(u["next_poll_at"], Value::Null, "approved: polling stops");

    // A later change request reopens the approval and polling resumes.
    fake.add_comment_by(
        "f1",
        "c101",
        "Finalement pas validé : le logo est flou",
        "2026-03-01T13:00:00Z",
        "Claire",
    );
    comment_event(&app, "c101").await;
    let u = wait_state(&app, "f1", "changes_requested").await;
    assert!(u["next_poll_at"].is_string(), "reopened: polled again {u}");
    let reason = last_reason(&u);
    assert!(reason.contains("'flou'"), "{reason}");

    // The dashboard panel shows the reason.
    let (status, html) = app.get_text("/ui/frameio").await;
    assert_eq!(status, 200);
    assert!(html.contains("problem"), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn status_set_by_a_person_outranks_the_comments() {
    let fake = FakeFrameio::start().await;
    fake.add_file("f2");
    let dir = temp_dir();
    let app = TestApp::spawn(app_config(
        dir.path(),
        &vars(&fake, &[("FRAMEIO_TOKEN", STATIC_TOKEN.into())]),
    ))
    .await;
    track(&app, "f2").await;
    fake.set_status("f2", "Approved");
    let hook = app.url("/webhooks/frameio");
    let body = delivery("metadata.value.updated", "file", "f2");
    assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
    wait_state(&app, "f2", "approved").await;

    // A later comment asking for a change does not move it: the Status is explicit.
    fake.add_comment_by(
        "f2",
        "k1",
        "Can we make the logo a bit bigger?",
        "2026-03-02T10:00:00Z",
        "Ana",
    );
    comment_event(&app, "k1").await;
    events_settled(&app, 2).await;
    let u = upload(&app, "f2").await;
    assert_eq!(u["state"], "approved", "{u}");
    assert!(
        u["comments"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["comment_id"] == "k1")),
        "the comment is stored all the same: {u}"
    );
    // Clearing the decision (Status back to Needs Review) hands over to the comments.
    fake.set_status("f2", "Needs Review");
    // Another person: not the same delivery as the first one (those are deduplicated).
    let mut body: Value =
        serde_json::from_str(&delivery("metadata.value.updated", "file", "f2")).expect("json");
    body["user"] = json!({"id": "user-2"});
    let body = body.to_string();
    assert_eq!(deliver(&app.client, &hook, SECRET, &body).await, 200);
    wait_state(&app, "f2", "in_review").await;
    fake.add_comment_by(
        "f2",
        "k2",
        "typo in the lower third (Jonh -> John)",
        "2026-03-02T11:00:00Z",
        "Ana",
    );
    comment_event(&app, "k2").await;
    wait_state(&app, "f2", "changes_requested").await;
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_is_shown_without_a_retry_storm() {
    let fake = FakeFrameio::start().await;
    fake.add_file("f3");
    fake.revoke_refresh_tokens();
    let dir = temp_dir();
    let auth = [
        ("FRAMEIO_CLIENT_ID", CLIENT_ID.to_string()),
        ("FRAMEIO_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("FRAMEIO_REFRESH_TOKEN", FIRST_REFRESH.to_string()),
    ];
    let app = TestApp::spawn(app_config(dir.path(), &vars(&fake, &auth))).await;
    track(&app, "f3").await;
    for i in 0..6 {
        fake.add_comment_by(
            "f3",
            &format!("e{i}"),
            "validé",
            "2026-03-03T10:00:00Z",
            "Ana",
        );
        comment_event(&app, &format!("e{i}")).await;
    }
    events_settled(&app, 6).await;
    // One refused grant, then nothing until the next poll interval (an hour here).
    assert_eq!(fake.token_requests(), 1, "grants: {:?}", fake.grants());
    assert_eq!(fake.count("GET", "/v4/"), 0, "no API call without a token");
    let events = app.state.store.frameio_events(100).await.expect("events");
    for e in &events {
        assert_eq!(e.outcome, None, "kept for later, not failed: {e:?}");
        assert!(
            e.error.as_deref().unwrap_or("").contains("re-authorise"),
            "{e:?}"
        );
    }
    let (_, html) = app.get_text("/ui/frameio").await;
    assert!(
        html.contains("Frame.io credentials expired or revoked: re-authorise"),
        "{html}"
    );
    assert!(html.contains("invalid_grant"), "{html}");
    let (_, list) = app.get("/api/uploads").await;
    assert_eq!(
        list["frameio_credentials"]["error"],
        "Frame.io credentials expired or revoked: re-authorise",
        "{list}"
    );
    // `rushes status` says it too.
    let mut status = bin();
    status.args(["status", "--url", &app.url("")]);
    // Async: the service answering it runs in this test's runtime.
    let out = tokio::process::Command::from(status)
        .output()
        .await
        .expect("run rushes status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("credentials expired or revoked"),
        "{stdout}"
    );
    let data_dir = app.state.config.service.data_dir.clone();
    app.stop().await;

    // The CLI status of uploads says it too.
    let out = bin()
        .env("RUSHES_DATA_DIR", &data_dir)
        .envs(crate::support::db::env_for(&data_dir))
        .current_dir(dir.path())
        .args(["frameio", "uploads"])
        .output()
        .expect("run rushes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Frame.io credentials expired or revoked: re-authorise"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn verdict_cli(args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.args(["frameio", "verdict"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn rushes");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("rushes output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_verdict_command_reads_text_or_lines() {
    let (code, out, err) = verdict_cli(
        &["Validé pour moi, juste remonter un peu la musique"],
        "",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("verdict: changes_requested\n"), "{out}");
    assert!(out.contains("overridden by"), "{out}");

    // One JSON object a line, in order, null when there is no decision.
    let input = "Rien à modifier, c'est parfait\nMerci !\nRefusé.\n\nNot approved yet, still waiting on legal";
    let (code, out, err) = verdict_cli(&[], input, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let verdicts: Vec<Value> = lines.iter().map(|l| l["verdict"].clone()).collect();
    assert_eq!(
        verdicts,
        [
            json!("approved"),
            Value::Null,
            json!("rejected"),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(lines[0]["text"], "Rien à modifier, c'est parfait");
    assert!(lines.iter().all(|l| l["reason"].is_string()));
    assert_eq!(lines[0]["confident"], true, "{}", lines[0]);
    assert!(lines.iter().all(|l| l["confident"].is_boolean()));

    // A studio's lexicon extends the built-in one; a bad path is a config error (exit 2).
    let dir = temp_dir();
    let lexicon = dir.path().join("lexicon.json");
    std::fs::write(
        &lexicon,
        r#"{"approval": ["banco"], "problem": ["ça bave"]}"#,
    )
    .expect("write");
    let path = lexicon.display().to_string();
    let env = [("FRAMEIO_REVIEW_LEXICON", path.as_str())];
    let (_, out, _) = verdict_cli(&[], "Banco !\nle titre, ça bave\nvalidé\n", &env);
    let verdicts: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["verdict"].clone())
        .collect();
    assert_eq!(
        verdicts,
        [
            json!("approved"),
            json!("changes_requested"),
            json!("approved")
        ]
    );
    let (code, _, err) = verdict_cli(
        &["ok"],
        "",
        &[("FRAMEIO_REVIEW_LEXICON", "/nope/lexicon.json")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("FRAMEIO_REVIEW_LEXICON"), "{err}");
}

#[tokio::test]
async fn an_unsure_comment_flags_the_upload_and_never_approves() {
    let fake = FakeFrameio::start().await;
    fake.add_file("f4");
    let dir = temp_dir();
    let app = TestApp::spawn(app_config(
        dir.path(),
        &vars(&fake, &[("FRAMEIO_TOKEN", STATIC_TOKEN.into())]),
    ))
    .await;
    track(&app, "f4").await;
    // Approvals followed by a reservation left hanging: the reader is not sure.
    let unsure = crate::support::unsure_approvals(2);
    fake.add_comment_by("f4", "u1", unsure[0], "2026-03-04T10:00:00Z", "Claire");
    comment_event(&app, "u1").await;
    let u = wait_for("the upload to need a look", WAIT, || async {
        let u = upload(&app, "f4").await;
        u["needs_look"].is_object().then_some(u)
    })
    .await;
    assert_ne!(u["state"], "approved", "{u}");
    assert_eq!(u["state"], "in_review", "{u}");
    assert_eq!(u["needs_look"]["comment_id"], "u1", "{u}");
    let reason = u["needs_look"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("not sure"), "{u}");
    assert!(reason.contains("by Claire"), "{u}");
    assert!(u["next_poll_at"].is_string(), "polling continues: {u}");
    // The list the API gives has the field too, and the dashboard says it.
    let (_, list) = app.get("/api/uploads").await;
    let listed = list["uploads"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["id"] == "f4"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(listed["needs_look"]["comment_id"], "u1", "{list}");
    let (_, html) = app.get_text("/ui/frameio").await;
    assert!(html.contains("needs a look"), "{html}");

    // A later, sure approval approves and clears the flag.
    fake.add_comment_by(
        "f4",
        "u2",
        "Rien à modifier, c'est parfait",
        "2026-03-04T11:00:00Z",
        "Claire",
    );
    comment_event(&app, "u2").await;
    let u = wait_state(&app, "f4", "approved").await;
    assert_eq!(u["needs_look"], Value::Null, "{u}");
    let data_dir = app.state.config.service.data_dir.clone();

    // An unsure comment after the approval reopens it: polling resumes, the flag is back.
    fake.add_comment_by("f4", "u3", unsure[1], "2026-03-04T12:00:00Z", "Claire");
    comment_event(&app, "u3").await;
    let u = wait_state(&app, "f4", "in_review").await;
    assert_eq!(u["needs_look"]["comment_id"], "u3", "{u}");
    app.stop().await;

    let out = bin()
        .env("RUSHES_DATA_DIR", &data_dir)
        .envs(crate::support::db::env_for(&data_dir))
        .current_dir(dir.path())
        .args(["frameio", "uploads"])
        .output()
        .expect("run rushes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NEEDS A LOOK (not sure of comment u3"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_verdict_command_scores_a_labelled_set() {
    let dir = temp_dir();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"[{"text": "Validé, merci !", "expected": "approved"},
            {"text": "Refusé.", "expected": "rejected"},
            {"text": "Merci !", "expected": null},
            {"text": "Il faudrait raccourcir le plan d'ouverture", "expected": "changes_requested"}]"#,
    )
    .expect("write");
    let path = good.display().to_string();
    let (code, out, err) = verdict_cli(&["--eval", &path], "", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("accuracy 100.0 %"), "{out}");
    assert!(out.contains("targets: met"), "{out}");
    // A change request labelled approved: read as changes, a miss; sure of it, so below target.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"text": "Il faudrait raccourcir le plan d'ouverture", "expected": "approved"}]"#,
    )
    .expect("write");
    let bad_path = bad.display().to_string();
    let (code, out, _) = verdict_cli(&["--eval", &bad_path, "--show-misses"], "", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("targets: NOT met"), "{out}");
    assert!(out.contains("miss: expected approved"), "{out}");
    // Not a set: a clear error, exit 1.
    std::fs::write(&bad, r#"{"text": "x"}"#).expect("write");
    let (code, _, err) = verdict_cli(&["--eval", &bad_path], "", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a list of"), "{err}");
}
