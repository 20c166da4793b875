//! Issue 27: the webhook inbox (SQLite). A verified delivery is durable before its 200 even
//! while another process holds the database; a rushes killed with SIGKILL then stores every
//! acknowledged delivery at its next start. Real child processes, a real SQLite lock.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection as _;

use crate::support::fake_frameio::{deliver_answer, delivery};
use crate::support::service::{ChildService, temp_dir};
use crate::support::{db, wait_for};

const SECRET: &str = "whsec-inbox-s3cret";

async fn post(client: &reqwest::Client, url: &str, body: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = deliver_answer(client, url, SECRET, body).await;
    let status = r.status().as_u16();
    let json = r.json().await.unwrap_or(Value::Null);
    (status, json, started.elapsed())
}

fn inbox_lines(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .map(|text| text.lines().count())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn deliveries_acknowledged_while_another_process_holds_the_database_survive_sigkill() {
    if db::on_postgres() {
        // PostgreSQL's own commit is the acknowledgement there: no inbox.
        return;
    }
    let dir = temp_dir();
    let envs = [("FRAMEIO_WEBHOOK_SECRET", SECRET)];
    let mut service = ChildService::start(dir.path(), &envs).await;
    let hook = service.url("/webhooks/frameio");
    let client = reqwest::Client::new();

    // The database free: stored (with the event's id when the commit came within the inbox's
    // grace, as it does unless the machine is very busy).
    let (status, json, _) = post(
        &client,
        &hook,
        &delivery("comment.created", "comment", "c0"),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["status"], "stored", "{json}");
    let first_id = json["event_id"].as_i64();

    // Another connection takes SQLite's write lock and keeps it: rushes cannot commit.
    let db_file = dir.path().join("data/rushes.db");
    let inbox = dir.path().join("data/rushes.db-inbox");
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db_file.display()))
        .await
        .expect("open the database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");

    const HELD: usize = 20;
    let mut slowest = Duration::ZERO;
    for n in 1..=HELD {
        let body = delivery("comment.created", "comment", &format!("c{n}"));
        let (status, json, took) = post(&client, &hook, &body).await;
        assert_eq!(
            status, 200,
            "delivery {n} while the database is held: {json}"
        );
        assert_eq!(json["status"], "stored", "{json}");
        assert!(
            json.get("event_id").is_none(),
            "the database cannot have it yet: {json}"
        );
        slowest = slowest.max(took);
    }
    // Answered from the inbox, not after SQLite's 10 s busy wait.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest acknowledgement while the database was held: {slowest:?}"
    );
    // Every held delivery is in the inbox (with the first one, stored already: an inbox file is
    // closed after a second without deliveries).
    let left = rushes::frameio::inbox::leftovers(&inbox).expect("read the inbox");
    assert_eq!(left.unreadable, 0);
    for n in 1..=HELD {
        let id = format!("c{n}");
        assert!(
            left.events.iter().any(|e| e.resource_id == id),
            "{id} is not in the inbox"
        );
    }
    eprintln!("{HELD} deliveries acknowledged while the database was held, slowest {slowest:?}");
    // /metrics counts them (in memory: it answers while the database is held).
    let metrics = client
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains(&format!("rushes_webhook_inbox_waiting {HELD}\n")),
        "{metrics}"
    );

    // Killed before the database came back: only the inbox has them.
    service.kill();
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release the lock");
    holder.close().await.expect("close");

    let service = ChildService::start(dir.path(), &envs).await;
    let url = service.url("/api/frameio/events?per_page=200");
    let events = wait_for(
        "every acknowledged delivery stored after the restart",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let v: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
                let calls = v["events"].as_array()?.clone();
                (calls.len() == HELD + 1).then_some(calls)
            }
        },
    )
    .await;
    let mut ids: Vec<String> = events
        .iter()
        .filter_map(|e| e["resource_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..=HELD).map(|n| format!("c{n}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "each acknowledged delivery stored once");
    if let Some(first_id) = first_id {
        let c0 = events.iter().find(|e| e["resource_id"] == "c0");
        assert_eq!(
            c0.and_then(|e| e["event_id"].as_i64()),
            Some(first_id),
            "the id answered is the one stored"
        );
    }
    wait_for(
        "the inbox emptied once stored",
        Duration::from_secs(10),
        || {
            let inbox = inbox.clone();
            async move { (inbox_lines(&inbox) == 0).then_some(()) }
        },
    )
    .await;
    let log = service.wait_for_log("stored from the webhook inbox").await;
    assert!(log.contains(&format!("new={HELD}")), "{log}");
}
