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

pub(crate) const WAIT: Duration = Duration::from_secs(30);
pub(crate) const SECRET: &str = "whsec-ops-s3cret";

pub(crate) fn frameio_envs(fake: &FakeFrameio, dir: &Path) -> Vec<(&'static str, String)> {
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

pub(crate) async fn start(dir: &Path, envs: &[(&'static str, String)]) -> ChildService {
    let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ChildService::start(dir, &refs).await
}

pub(crate) async fn track(client: &reqwest::Client, service: &ChildService, file: &str) {
    let r = client
        .post(service.url("/api/uploads"))
        .json(&json!({"file_id": file}))
        .send()
        .await
        .expect("track");
    assert_eq!(r.status().as_u16(), 201, "tracking {file}");
}

pub(crate) async fn wait_state(
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

pub(crate) async fn all_processed(dir: &Path, expected: usize) -> Vec<rushes::store::FrameioEvent> {
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
            .filter(|e| e.upload_id.as_ref().map(|u| u.as_str()) == Some(file))
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
pub(crate) fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub(crate) async fn scrape(client: &reqwest::Client, service: &ChildService) -> String {
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
    // The allocator's counters (jemalloc, on Linux): some heap in use, inside the pages it keeps.
    let allocated = sample(&page, "rushes_heap_bytes{kind=\"allocated\"}");
    let resident = sample(&page, "rushes_heap_bytes{kind=\"resident\"}");
    if cfg!(all(feature = "jemalloc", target_os = "linux")) {
        let (allocated, resident) = (allocated.unwrap_or(0.0), resident.unwrap_or(0.0));
        assert!(
            allocated > 0.0 && allocated <= resident && resident < 4096.0 * 1024.0 * 1024.0,
            "{page}"
        );
    } else {
        assert_eq!((allocated, resident), (None, None), "{page}");
    }
    // SQLite's own heap: something (schemas, caches) and far below the bound of its caches;
    // nothing of the kind on PostgreSQL (its memory is the server's).
    let sqlite = sample(&page, "rushes_sqlite_memory_bytes");
    if crate::support::db::on_postgres() {
        assert_eq!(sqlite, None, "{page}");
    } else {
        let bytes = sqlite.unwrap_or(0.0);
        assert!(bytes > 0.0 && bytes < 64.0 * 1024.0 * 1024.0, "{page}");
    }

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
    wait_for("both deliveries in the database", WAIT, || async {
        (store.frameio_events(10).await.ok()?.len() == 2).then_some(())
    })
    .await;
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
        "SELECT * FROM deliveries WHERE 1 = 1 ORDER BY created_at DESC, id DESC LIMIT 300",
        "SELECT state, COUNT(*) FROM deliveries GROUP BY state ORDER BY state",
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
    // The dashboard's list of received calls, as the store spells it: each table is read
    // backwards along an index (only the few rows merged are sorted, never every event).
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
        "EXPLAIN QUERY PLAN {}",
        rushes::store::RECEIVED_CALLS_SQL
    ))
    .fetch_all(&mut conn)
    .await
    .expect("plan");
    let text: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
    for table in ["frameio_events", "frameio_rejected"] {
        assert!(
            text.iter()
                .any(|d| d.starts_with(&format!("SCAN {table} USING INDEX"))),
            "{table}: {text:?}"
        );
        assert!(
            !text.iter().any(|d| *d == format!("SCAN {table}")),
            "{table}: {text:?}"
        );
    }
}
