//! The first hour with rushes (issue 26), through the binary: `feed check` says what `serve`
//! does with SwissTransfer links, the help of small commands lists only their variables and
//! keeps its indent when wrapped, a missing feed file fails at once, and `serve` without a feed
//! says so on its first line.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_swisstransfer::{FakeSwissTransfer, FakeTransfer, TransferState};
use crate::support::file_server::content;
use crate::support::service::{ChildService, bin, temp_dir};
use crate::support::wait_for;

const UUID: &str = "26262626-aaaa-bbbb-cccc-000000000001";

fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// `rushes feed check --json PATH` with `envs`: one JSON value per item.
async fn check_json(path: &std::path::Path, envs: &[(&str, String)]) -> Vec<Value> {
    let mut cmd = bin();
    cmd.args(["feed", "check", "--json"]).arg(path);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::process::Command::from(cmd)
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("rushes feed check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn feed_check_plans_swisstransfer_links_as_serve_fetches_them() {
    let api = FakeSwissTransfer::start().await;
    api.add(
        UUID,
        FakeTransfer {
            state: TransferState::Ready,
            credit: 250,
            message: "Plans jour 2".into(),
            files: vec![("f-1".into(), "A002.mov".into(), content(50_000, 26))],
            ..Default::default()
        },
    );
    let root = temp_dir();
    let feed = root.path().join("feed.json");
    let body = json!([
        {"source_url": format!("https://www.swisstransfer.com/d/{UUID}"), "provider": "swisstransfer",
         "created_at": ago(5), "original_filename": "Plans jour 2"},
        {"url": "https://fromsmash.com/Plans-jour-3", "timestamp": ago(5), "source": "webhook"}
    ]);
    std::fs::write(&feed, body.to_string()).expect("feed");
    let feed_text = feed.to_string_lossy().into_owned();
    let api_base = api.api_base();

    // What the check says, with the defaults serve uses (SWISSTRANSFER_AUTO on, SMASH_AUTO off).
    let lines = check_json(&feed, &[]).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["kind"], "swisstransfer");
    assert_eq!(lines[0]["would"], "queued", "{}", lines[0]);
    assert_eq!(lines[0]["mode"], "automatic", "{}", lines[0]);
    assert_eq!(lines[1]["kind"], "fromsmash");
    assert_eq!(lines[1]["would"], "manual", "{}", lines[1]);

    // What serve does with the same feed and the same settings: it fetches the transfer.
    let service = ChildService::start(
        root.path(),
        &[
            ("WEBHOOK_JSON_URL", feed_text.as_str()),
            ("SWISSTRANSFER_API_BASE", api_base.as_str()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let states = wait_for(
        "the SwissTransfer delivery to be downloaded",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let url = service.url("/api/deliveries");
            async move {
                let answer: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
                let rows = answer["deliveries"].as_array()?.clone();
                let state_of = |kind: &str| {
                    rows.iter()
                        .find(|d| d["kind"] == kind)
                        .and_then(|d| d["state"].as_str().map(str::to_string))
                };
                let swiss = state_of("swisstransfer")?;
                (swiss == "done").then(|| (swiss, state_of("fromsmash")))
            }
        },
    )
    .await;
    assert_eq!(states.1.as_deref(), Some("manual"));
    assert_eq!(api.downloads(), 1);
    drop(service);

    // Switched off, both agree again: the link stays for a person.
    let lines = check_json(&feed, &[("SWISSTRANSFER_AUTO", "0".to_string())]).await;
    assert_eq!(lines[0]["would"], "manual", "{}", lines[0]);
    assert_eq!(lines[0]["mode"], "manual", "{}", lines[0]);
    // And FromSmash with SMASH_AUTO=1 is planned as tried by rushes.
    let lines = check_json(&feed, &[("SMASH_AUTO", "1".to_string())]).await;
    assert_eq!(lines[1]["would"], "queued", "{}", lines[1]);
}

/// `rushes <args> --help` at `columns` columns (no terminal: clap reads `COLUMNS`).
async fn help(args: &[&str], columns: usize) -> String {
    let mut cmd = bin();
    cmd.args(args)
        .arg("--help")
        .env("COLUMNS", columns.to_string());
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("rushes --help");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lines of the environment block (from its title to the end).
fn env_block(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.contains("nvironment"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[tokio::test]
async fn small_commands_list_only_their_variables_and_wrapped_lines_keep_their_indent() {
    for command in ["status", "password"] {
        let text = help(&[command], 100).await;
        let block = env_block(&text);
        assert!(
            block
                .iter()
                .any(|l| l.trim_start().starts_with("RUSHES_BIND")),
            "{text}"
        );
        assert!(
            block.len() <= 6,
            "{command}: {} lines of environment\n{text}",
            block.len()
        );
        for foreign in ["WEBHOOK_CACHE_TTL", "DOWNLOAD_CONCURRENCY", "NOTIFY_URL"] {
            assert!(
                !text.contains(foreign),
                "{command} lists {foreign}:\n{text}"
            );
        }
    }
    // The whole block stays where it belongs, laid out for the width.
    for width in [60, 80, 120] {
        let text = help(&["serve"], width).await;
        assert!(text.contains("WEBHOOK_CACHE_TTL"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
        let block = env_block(&text);
        // Every line of a variable's description starts in the description column: a line is a
        // variable (two spaces, then a capital) or continues under the description.
        let column = block
            .iter()
            .find(|l| l.trim_start().starts_with("WEBHOOK_CACHE_TTL"))
            .and_then(|l| l.find("seconds"))
            .expect("WEBHOOK_CACHE_TTL's description");
        for line in &block {
            let indent = line.len() - line.trim_start().len();
            assert!(
                indent == 2 || indent == column,
                "{width} columns, indent {indent} (description column {column}): {line:?}\n{text}"
            );
        }
        let max_age = block
            .iter()
            .position(|l| l.trim_start().starts_with("DOWNLOAD_MAX_AGE"))
            .expect("DOWNLOAD_MAX_AGE");
        let next = block[max_age + 1];
        assert_eq!(
            next.len() - next.trim_start().len(),
            column,
            "{width}: {next:?}"
        );
    }
}

#[tokio::test]
async fn a_missing_feed_file_fails_at_once_with_a_clear_message() {
    let dir = temp_dir();
    let missing = dir.path().join("nowhere").join("feed.json");
    for given in [
        missing.to_string_lossy().into_owned(),
        format!("file://{}", missing.display()),
    ] {
        let started = Instant::now();
        let mut cmd = bin();
        cmd.args(["feed", "check", &given]);
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .expect("rushes feed check");
        let elapsed = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains("after 1 attempt"), "{text}");
        // No retries with backoff (3 attempts took 2.7 s).
        assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    }
}

#[tokio::test]
async fn serve_without_a_feed_says_so_on_its_first_line() {
    use tokio::io::AsyncBufReadExt as _;
    let root = temp_dir();
    let port = crate::support::service::free_port();
    let mut cmd = bin();
    cmd.arg("serve")
        .current_dir(root.path())
        .env("RUSHES_BIND", format!("127.0.0.1:{port}"))
        .env("RUSHES_DATA_DIR", root.path().join("data"))
        .env("RUSHES_LOG_DIR", root.path().join("logs"))
        .env("LOCAL_DOWNLOADS_DIR", root.path().join("downloads"))
        .envs(crate::support::db::env_for(&root.path().join("data")))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("rushes serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a first line within 20 s")
        .expect("read")
        .unwrap_or_default();
    assert!(first.contains("Frame.io-only mode"), "{first}");
    assert!(
        first.contains("WEBHOOK_JSON_URL") && first.contains("--feed-url"),
        "{first}"
    );
    let _ = child.kill().await;
}
