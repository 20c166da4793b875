//! Running for months (issue 28), with rushes as a child process: review events that keep up
//! with a burst, metrics, retention, backups.

use std::path::Path;
use std::time::Duration;

use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, deliver, delivery,
};
use crate::support::service::{ChildService, temp_dir};
use crate::support::wait_for;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec-ops-s3cret";

fn frameio_envs(fake: &FakeFrameio, dir: &Path) -> Vec<(&'static str, String)> {
    let feed = dir.join("feed.json");
    std::fs::write(&feed, "[]").expect("write feed");
    vec![
        ("WEBHOOK_JSON_URL", feed.display().to_string()),
        ("WEBHOOK_MONITOR_INTERVAL", "3600".into()),
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
        ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
        ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
        ("FRAMEIO_WEBHOOK_SECRET", SECRET.into()),
        // No poll within the test: every comment listing comes from an event.
        ("FRAMEIO_POLL_INTERVAL", "31536000".into()),
    ]
}

async fn start(dir: &Path, envs: &[(&'static str, String)]) -> ChildService {
    let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ChildService::start(dir, &refs).await
}

async fn track(client: &reqwest::Client, service: &ChildService, file: &str) {
    let r = client
        .post(service.url("/api/uploads"))
        .json(&json!({"file_id": file}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status().as_u16(), 201, "tracking {file}");
}

async fn wait_state(
    client: &reqwest::Client,
    service: &ChildService,
    id: &str,
    state: &str,
) -> Value {
    let url = service.url(&format!("/api/uploads/{id}"));
    wait_for(&format!("{id} to be {state}"), WAIT, || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let u: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            (u["state"] == state).then_some(u)
        }
    })
    .await
}

async fn all_processed(dir: &Path, expected: usize) -> Vec<rushes::store::FrameioEvent> {
    let store = crate::support::db::open_store(&dir.join("data/rushes.db")).await;
    let events = wait_for("every event to be processed", WAIT, || {
        let store = store.clone();
        async move {
            let events = store.frameio_events(1000).await.ok()?;
            (events.len() == expected && events.iter().all(|e| e.processed_at.is_some()))
                .then_some(events)
        }
    })
    .await;
    store.close().await;
    events
}

#[tokio::test]
async fn a_burst_of_comments_on_one_file_is_answered_by_one_listing() {
    const PER_FILE: usize = 20;
    let fake = FakeFrameio::start().await;
    for file in ["file-a", "file-b", "file-z"] {
        fake.add_file(file);
    }
    for i in 1..=PER_FILE {
        let at = format!("2026-01-10T10:{i:02}:00Z");
        let (a, b) = if i == PER_FILE {
            (
                "Retouche sur le plan 2 svp",
                "Validé, parfait, on part là-dessus",
            )
        } else {
            ("Joli plan", "On regarde demain")
        };
        fake.add_comment("file-a", &format!("a{i}"), a, &at);
        fake.add_comment("file-b", &format!("b{i}"), b, &at);
    }
    fake.add_comment("file-z", "z1", "Noté", "2026-01-10T10:00:00Z");
    let dir = temp_dir();
    let service = start(dir.path(), &frameio_envs(&fake, dir.path())).await;
    let client = reqwest::Client::new();
    for file in ["file-a", "file-b", "file-z"] {
        track(&client, &service, file).await;
    }
    // The processor is held on file-z's listing while the burst arrives and is acknowledged.
    fake.close_comments();
    let hook = service.url("/webhooks/frameio");
    let z = delivery("comment.created", "comment", "z1");
    assert_eq!(deliver(&client, &hook, SECRET, &z).await, 200);
    wait_for("file-z's listing to be asked for", WAIT, || async {
        (fake.count("GET", "/files/file-z/comments") == 1).then_some(())
    })
    .await;
    for i in 1..=PER_FILE {
        for file in ["a", "b"] {
            let body = delivery("comment.created", "comment", &format!("{file}{i}"));
            assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);
        }
    }
    fake.open_comments();

    wait_state(&client, &service, "file-a", "changes_requested").await;
    wait_state(&client, &service, "file-b", "approved").await;
    let events = all_processed(dir.path(), 2 * PER_FILE + 1).await;
    // 20 events per file: one lookup of the first comment, one listing for all of them.
    assert_eq!(fake.count("GET", "/files/file-a/comments"), 1);
    assert_eq!(fake.count("GET", "/files/file-b/comments"), 1);
    assert_eq!(fake.count("GET", "/comments/a"), 1);
    assert_eq!(fake.count("GET", "/comments/b"), 1);
    // In order: the first event of each file applied the listing, the others found it applied.
    for file in ["file-a", "file-b"] {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.upload_id.as_deref() == Some(file))
            .collect();
        assert_eq!(mine.len(), PER_FILE, "{file}");
        let first = mine.iter().min_by_key(|e| e.id).expect("events");
        assert_eq!(first.outcome.map(|o| o.as_str()), Some("applied"), "{file}");
        let applied = mine
            .iter()
            .filter(|e| e.outcome.map(|o| o.as_str()) == Some("applied"))
            .count();
        assert_eq!(applied, 1, "{file}");
        assert!(mine.iter().all(|e| e.error.is_none()));
    }
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// The value of the sample `name` (with its labels, as printed) in a `/metrics` page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(client: &reqwest::Client, service: &ChildService) -> String {
    let r = client
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("metrics text")
}

#[tokio::test]
async fn metrics_report_the_event_backlog_its_lag_uploads_database_and_log() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-m");
    for (i, text) in ["Joli", "Bien", "Retouche sur le plan 2 svp"]
        .iter()
        .enumerate()
    {
        let at = format!("2026-01-10T10:0{i}:00Z");
        fake.add_comment("file-m", &format!("m{i}"), text, &at);
    }
    let dir = temp_dir();
    let service = start(dir.path(), &frameio_envs(&fake, dir.path())).await;
    let client = reqwest::Client::new();
    track(&client, &service, "file-m").await;
    let page = scrape(&client, &service).await;
    assert_eq!(sample(&page, "rushes_database_up"), Some(1.0), "{page}");
    assert_eq!(
        sample(&page, "rushes_frameio_events_pending"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_frameio_event_lag_seconds"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_uploads{state=\"uploading\"}"),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(&page, "rushes_log_bytes").unwrap_or(0.0) > 0.0,
        "{page}"
    );

    // Processing is held on the comment listing: the events wait and grow older.
    fake.close_comments();
    let hook = service.url("/webhooks/frameio");
    for i in 0..3 {
        let body = delivery("comment.created", "comment", &format!("m{i}"));
        assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);
    }
    let page = wait_for("a second of lag on 3 pending events", WAIT, || async {
        let page = scrape(&client, &service).await;
        let lagging = sample(&page, "rushes_frameio_event_lag_seconds").unwrap_or(0.0) >= 1.0;
        (lagging && sample(&page, "rushes_frameio_events_pending") == Some(3.0)).then_some(page)
    })
    .await;
    assert_eq!(
        sample(&page, "rushes_frameio_events_total{outcome=\"applied\"}"),
        Some(0.0),
        "{page}"
    );

    fake.open_comments();
    let page = wait_for("the backlog to be worked off", WAIT, || async {
        let page = scrape(&client, &service).await;
        (sample(&page, "rushes_frameio_events_pending") == Some(0.0)).then_some(page)
    })
    .await;
    assert_eq!(
        sample(&page, "rushes_frameio_event_lag_seconds"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_frameio_events_total{outcome=\"applied\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_frameio_events_total{outcome=\"unchanged\"}"),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_frameio_events_total{outcome=\"failed\"}"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_uploads{state=\"changes_requested\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_uploads{state=\"uploading\"}"),
        Some(0.0),
        "{page}"
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn processed_events_past_their_retention_are_pruned_and_pending_ones_kept() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-r");
    fake.add_comment(
        "file-r",
        "r1",
        "Retouche sur le plan 2 svp",
        "2026-01-10T10:00:00Z",
    );
    let dir = temp_dir();
    let mut envs = frameio_envs(&fake, dir.path());
    envs.push(("RUSHES_EVENT_RETENTION", "2s".into()));
    let service = start(dir.path(), &envs).await;
    let client = reqwest::Client::new();
    track(&client, &service, "file-r").await;
    // Refused credentials: the comment event waits (deferred, unprocessed) however old it gets.
    fake.expire_tokens();
    let hook = service.url("/webhooks/frameio");
    let waiting = delivery("comment.created", "comment", "r1");
    assert_eq!(deliver(&client, &hook, SECRET, &waiting).await, 200);
    service
        .wait_for_log("Frame.io: event waits for valid credentials")
        .await;
    // Processed at once (no upload tracks this file), then past its retention.
    let done = delivery("file.ready", "file", "file-untracked");
    assert_eq!(deliver(&client, &hook, SECRET, &done).await, 200);

    let store = crate::support::db::open_store(&dir.path().join("data/rushes.db")).await;
    let events = store.frameio_events(10).await.expect("events");
    assert_eq!(events.len(), 2, "{events:?}");
    let left = wait_for("the processed event to be pruned", WAIT, || {
        let store = store.clone();
        async move {
            let events = store.frameio_events(10).await.ok()?;
            (events.len() == 1).then_some(events)
        }
    })
    .await;
    // The pass that pruned it had a cutoff past the waiting event's arrival too.
    assert_eq!(left[0].event_type, "comment.created");
    assert_eq!(left[0].processed_at, None);
    store.close().await;
    service
        .wait_for_log("processed events past RUSHES_EVENT_RETENTION deleted")
        .await;
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn app_log_is_rotated_by_size_keeps_n_files_and_is_reopened_on_sighup() {
    const MAX: u64 = 64 * 1024;
    let dir = temp_dir();
    let feed = dir.path().join("feed.json");
    std::fs::write(&feed, "[]").expect("write feed");
    let envs = vec![
        ("WEBHOOK_JSON_URL", feed.display().to_string()),
        ("RUSHES_LOG_MAX_SIZE", "64KiB".into()),
        ("RUSHES_LOG_KEEP", "2".into()),
        // Every request logged, so that requests fill the log.
        ("RUST_LOG", "debug".into()),
    ];
    let service = start(dir.path(), &envs).await;
    let client = reqwest::Client::new();
    let logs = dir.path().join("logs");
    let exists = |name: &str| logs.join(name).exists();
    let hit = || async {
        for _ in 0..20 {
            let _ = client.get(service.url("/healthz")).send().await;
        }
    };
    // Enough for several rotations: app.log.2 is replaced at least once.
    let mut rotations_seen = 0;
    let mut last_first = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rotations_seen < 3 || !exists("app.log.2") {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for three rotations"
        );
        hit().await;
        let first = std::fs::read(logs.join("app.log.1")).unwrap_or_default();
        if !first.is_empty() && first != last_first {
            rotations_seen += 1;
            last_first = first;
        }
    }
    assert!(
        !exists("app.log.3"),
        "RUSHES_LOG_KEEP=2 keeps two old files"
    );
    for name in ["app.log", "app.log.1", "app.log.2"] {
        let size = std::fs::metadata(logs.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size <= MAX, "{name} is {size} bytes");
    }
    let page = scrape(&client, &service).await;
    let bytes = sample(&page, "rushes_log_bytes").unwrap_or(0.0);
    assert!(bytes > MAX as f64 && bytes <= 3.0 * MAX as f64, "{page}");

    // An outside logrotate moves app.log away and sends SIGHUP: a new app.log is written.
    std::fs::rename(logs.join("app.log"), logs.join("moved.log")).expect("move app.log");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &service.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_for("app.log to be written again", WAIT, || async {
        hit().await;
        let size = std::fs::metadata(logs.join("app.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        (size > 0).then_some(())
    })
    .await;
    let r = client
        .get(service.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status().as_u16(), 200, "SIGHUP does not stop rushes");
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn dashboard_and_metrics_queries_use_an_index() {
    use sqlx::Connection as _;
    if crate::support::db::on_postgres() {
        return; // the plans checked are SQLite's; the same migration adds the indexes there
    }
    let dir = temp_dir();
    let db = dir.path().join("data/rushes.db");
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let store = crate::support::db::open_store(&db).await;
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open");
    for query in [
        "SELECT MAX(received_at) FROM frameio_events",
        "SELECT MAX(received_at) FROM frameio_rejected",
        "SELECT MAX(last_polled_at) FROM frameio_uploads",
        "SELECT COUNT(*), MIN(received_at) FROM frameio_events WHERE processed_at IS NULL",
        "SELECT id FROM frameio_events WHERE processed_at IS NOT NULL AND processed_at < 'x' ORDER BY processed_at LIMIT 500",
        "SELECT * FROM frameio_uploads ORDER BY updated_at DESC, id",
        "SELECT * FROM deliveries WHERE mode = 'auto' ORDER BY state_changed_at DESC, id DESC LIMIT 50",
        "SELECT * FROM deliveries ORDER BY state_changed_at DESC, id DESC LIMIT 50",
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {query}"))
                .fetch_all(&mut conn)
                .await
                .expect("plan");
        let text: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        assert!(
            text.iter()
                .all(|d| !d.starts_with("SCAN") || d.contains("INDEX"))
                && !text.iter().any(|d| d.contains("TEMP B-TREE")),
            "{query}: {text:?}"
        );
    }
}

async fn rushes_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = crate::support::service::bin();
    cmd.current_dir(dir)
        .args(args)
        .env("RUSHES_DATA_DIR", dir.join("data"))
        .env("RUSHES_LOG_DIR", dir.join("logs"))
        .env("LOCAL_DOWNLOADS_DIR", dir.join("downloads"))
        .env(
            "RUSHES_BIND",
            format!("127.0.0.1:{}", crate::support::service::free_port()),
        );
    cmd.envs(crate::support::db::env_for(&dir.join("data")));
    let out = tokio::time::timeout(WAIT, tokio::process::Command::from(cmd).output())
        .await
        .expect("rushes to finish")
        .expect("run rushes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn upload_ids(client: &reqwest::Client, service: &ChildService) -> Vec<String> {
    let v: Value = client
        .get(service.url("/api/uploads"))
        .send()
        .await
        .expect("uploads")
        .json()
        .await
        .expect("json");
    let list = v
        .as_array()
        .or_else(|| v["uploads"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut ids: Vec<String> = list
        .iter()
        .filter_map(|u| u["id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn backup_while_serving_restores_and_a_newer_database_is_refused() {
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let envs = frameio_envs(&fake, dir.path());
    let service = start(dir.path(), &envs).await;
    let client = reqwest::Client::new();
    for file in ["file-1", "file-2", "file-3"] {
        track(&client, &service, file).await;
    }
    if crate::support::db::on_postgres() {
        let (code, _, err) = rushes_cli(dir.path(), &["backup", "copy.db"]).await;
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("pg_dump"), "{err}");
        return;
    }
    // Webhooks keep arriving while the copy is made.
    let hook = service.url("/webhooks/frameio");
    let writer = {
        let client = client.clone();
        let hook = hook.clone();
        tokio::spawn(async move {
            let mut acknowledged = 0;
            for i in 0..200 {
                let body = delivery("file.ready", "file", &format!("other-{i}"));
                if deliver(&client, &hook, SECRET, &body).await == 200 {
                    acknowledged += 1;
                }
            }
            acknowledged
        })
    };
    let (code, out, err) = rushes_cli(dir.path(), &["backup", "copy.db"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 tracked uploads"), "{out}");
    assert_eq!(writer.await.expect("writer"), 200);
    let copy = dir.path().join("copy.db");
    let copied = std::fs::read(&copy).expect("backup file");
    // Never replaces a file.
    let (code, _, err) = rushes_cli(dir.path(), &["backup", "copy.db"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&copy).expect("backup file"), copied);

    // Restore (README): stop rushes, put the copy in place of rushes.db, start again.
    track(&client, &service, "file-after-backup").await;
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
    let data = dir.path().join("data");
    for stale in ["rushes.db-wal", "rushes.db-shm"] {
        let _ = std::fs::remove_file(data.join(stale));
    }
    std::fs::copy(&copy, data.join("rushes.db")).expect("restore");
    let service = start(dir.path(), &envs).await;
    assert_eq!(
        upload_ids(&client, &service).await,
        ["file-1", "file-2", "file-3"]
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");

    // A database a newer rushes migrated: refused before any migration runs.
    let db = data.join("rushes.db");
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99990101, 'from the future', TRUE, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .expect("insert");
        conn.close().await.expect("close");
    }
    let before = std::fs::read(&db).expect("db");
    let (code, _, err) = rushes_cli(dir.path(), &["serve"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("newer rushes") && err.contains("99990101"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).expect("db"),
        before,
        "nothing was changed"
    );
}

#[tokio::test]
async fn without_frameio_settings_acknowledged_events_wait_until_they_come_back() {
    let fake = FakeFrameio::start().await;
    fake.add_file("file-w");
    fake.add_comment(
        "file-w",
        "w1",
        "Retouche sur le plan 2 svp",
        "2026-01-10T10:00:00Z",
    );
    // Processing hangs on the comment listing: the kill lands before it can finish.
    fake.close_comments();
    let dir = temp_dir();
    let envs = frameio_envs(&fake, dir.path());
    let mut service = start(dir.path(), &envs).await;
    let client = reqwest::Client::new();
    track(&client, &service, "file-w").await;
    let hook = service.url("/webhooks/frameio");
    let body = delivery("comment.created", "comment", "w1");
    assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);
    wait_for("the listing to be asked for", WAIT, || async {
        (fake.count("GET", "/files/file-w/comments") == 1).then_some(())
    })
    .await;
    service.kill();

    // Restarted with every Frame.io setting removed: the event waits, and says so.
    let bare: Vec<(&'static str, String)> = envs
        .iter()
        .filter(|(k, _)| !k.starts_with("FRAMEIO_"))
        .cloned()
        .collect();
    let service = start(dir.path(), &bare).await;
    service
        .wait_for_log("event waits for the Frame.io settings")
        .await;
    let page = scrape(&client, &service).await;
    assert_eq!(
        sample(&page, "rushes_frameio_events_pending"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "rushes_frameio_events_total{outcome=\"failed\"}"),
        Some(0.0),
        "{page}"
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
    let store = crate::support::db::open_store(&dir.path().join("data/rushes.db")).await;
    let events = store.frameio_events(10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].processed_at, None);
    assert_eq!(events[0].outcome, None);
    let error = events[0].error.clone().unwrap_or_default();
    assert!(error.contains("waits for the Frame.io settings"), "{error}");
    store.close().await;

    // The settings are back: the event is processed at once.
    fake.open_comments();
    let service = start(dir.path(), &envs).await;
    wait_state(&client, &service, "file-w", "changes_requested").await;
    let events = all_processed(dir.path(), 1).await;
    assert_eq!(events[0].outcome.map(|o| o.as_str()), Some("applied"));
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// A PostgreSQL of this test's own (scripts/pg.sh), stopped and started by the test.
struct OwnPostgres {
    url: String,
    tmp: String,
    port: String,
    bin: String,
    run_as: Vec<String>,
}

impl OwnPostgres {
    fn start() -> Option<Self> {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = std::process::Command::new("bash")
            .current_dir(root)
            .args([
                "-c",
                "source scripts/pg.sh && pg_start >/dev/null 2>&1 && \
                 echo \"$RUSHES_TEST_DATABASE_URL|$PG_TMP|$PG_PORT|$PG_BIN|${PG_AS[*]}\"",
            ])
            .output()
            .ok()?;
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let parts: Vec<&str> = line.split('|').collect();
        if !out.status.success() || parts.len() != 5 {
            return None;
        }
        Some(Self {
            url: parts[0].replace("/postgres", "/rushes_away"),
            tmp: parts[1].into(),
            port: parts[2].into(),
            bin: parts[3].into(),
            run_as: parts[4].split_whitespace().map(String::from).collect(),
        })
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let ctl = format!("{}/pg_ctl", self.bin);
        let mut all: Vec<String> = self.run_as.clone();
        all.push(ctl);
        all.extend(args.iter().map(|a| a.to_string()));
        std::process::Command::new(&all[0])
            .args(&all[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn stop(&self) -> bool {
        let data = format!("{}/data", self.tmp);
        self.pg_ctl(&["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    fn start_again(&self) -> bool {
        let data = format!("{}/data", self.tmp);
        let log = format!("{}/server.log", self.tmp);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port, self.tmp
        );
        self.pg_ctl(&[
            "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
        ])
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

#[tokio::test]
async fn postgres_away_healthz_and_webhooks_answer_503_quickly_and_recover() {
    let Some(pg) = OwnPostgres::start() else {
        eprintln!("no PostgreSQL server binaries (initdb): skipped");
        return;
    };
    let fake = FakeFrameio::start().await;
    let dir = temp_dir();
    let mut envs = frameio_envs(&fake, dir.path());
    envs.push(("RUSHES_DATABASE_URL", pg.url.clone()));
    let service = start(dir.path(), &envs).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let hook = service.url("/webhooks/frameio");
    let body = delivery("file.ready", "file", "file-before");
    assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);

    assert!(pg.stop(), "pg_ctl stop");
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let r = client
            .get(service.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        let took = started.elapsed();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(status, 503, "{v}");
        assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
        assert_eq!(v["status"], "degraded", "{v}");
        assert!(
            v["database"].as_str().unwrap_or("").contains("unreachable"),
            "{v}"
        );

        let started = std::time::Instant::now();
        let body = delivery("file.ready", "file", "file-away");
        let status = deliver(&client, &hook, SECRET, &body).await;
        let took = started.elapsed();
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(3), "the webhook took {took:?}");
    }
    let page = scrape(&client, &service).await;
    assert_eq!(sample(&page, "rushes_database_up"), Some(0.0), "{page}");

    assert!(pg.start_again(), "pg_ctl start");
    wait_for("/healthz to be ok again", WAIT, || async {
        let r = client.get(service.url("/healthz")).send().await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    let body = delivery("file.ready", "file", "file-after");
    assert_eq!(deliver(&client, &hook, SECRET, &body).await, 200);
    let page = scrape(&client, &service).await;
    assert_eq!(sample(&page, "rushes_database_up"), Some(1.0), "{page}");
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}
