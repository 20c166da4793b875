//! Running for months (issue 28), with rushes as a child process: backups and restore, a
//! database newer than the binary, Frame.io settings removed, PostgreSQL stopped and started.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::ops::{
    SECRET, WAIT, all_processed, frameio_envs, sample, scrape, start, track, wait_state,
};
use crate::support::fake_frameio::{FakeFrameio, deliver, delivery};
use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::{ChildService, temp_dir};
use crate::support::wait_for;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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

    // Restore (docs/operations.md): stop rushes, put the copy in place of rushes.db, start again.
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
        let pg = Self {
            url: parts[0].replace("/postgres", "/rushes_away"),
            tmp: parts[1].into(),
            port: parts[2].into(),
            bin: parts[3].into(),
            run_as: parts[4].split_whitespace().map(String::from).collect(),
        };
        // scripts/pg.sh starts it with `synchronous_commit=off` (fast, nothing to keep), where
        // an immediate stop may lose the last commits: started again as production runs it, so
        // that "acknowledged means stored" can be checked across a stop.
        (pg.stop() && pg.start_again()).then_some(pg)
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

    // Frame.io keeps sending through the outage and the recovery: every call answered 200 must
    // be stored, whatever the moment it came.
    let sending = CancellationToken::new();
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(send_until(
        client.clone(),
        hook.clone(),
        acked.clone(),
        sending.clone(),
    ));
    let acknowledged = || acked.load(Ordering::SeqCst);
    wait_for("the sender to be acknowledged", WAIT, || async {
        (acknowledged() > 0).then_some(())
    })
    .await;

    assert!(pg.stop(), "pg_ctl stop");
    let mut webhook_503s = Vec::new();
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
        webhook_503s.push(took);
    }
    // Once the reachability check has seen the database away, a webhook is refused at once.
    let fast = wait_for("a webhook refused at once", WAIT, || async {
        let started = std::time::Instant::now();
        let body = delivery("file.ready", "file", "file-away-known");
        let status = deliver(&client, &hook, SECRET, &body).await;
        let took = started.elapsed();
        assert_ne!(status, 200, "acknowledged while the database is away");
        (status == 503 && took < Duration::from_millis(500)).then_some(took)
    })
    .await;
    eprintln!("webhook 503 while PostgreSQL is away: {webhook_503s:?}, then {fast:?}");
    // The API answers 503 at once (once the reachability check has seen it, within about
    // 2 s), never a 500 after the pool's 10 s wait.
    for path in [
        "/api/deliveries",
        "/api/cluster",
        "/api/uploads",
        "/api/frameio/events",
    ] {
        let answer = wait_for(&format!("{path} to answer 503 quickly"), WAIT, || async {
            let started = std::time::Instant::now();
            let r = client.get(service.url(path)).send().await.ok()?;
            let took = started.elapsed();
            let status = r.status().as_u16();
            assert_ne!(
                status, 500,
                "{path} answered 500 while the database is away"
            );
            let retry = r.headers().get("retry-after").is_some();
            let v: Value = r.json().await.unwrap_or_default();
            (status == 503 && took < Duration::from_secs(1)).then_some((retry, v))
        })
        .await;
        assert!(answer.0, "{path}: a Retry-After header");
        assert!(
            answer.1["error"]
                .as_str()
                .unwrap_or("")
                .contains("database unreachable"),
            "{path}: {}",
            answer.1
        );
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
    wait_for("the API to answer again", WAIT, || async {
        let r = client.get(service.url("/api/cluster")).send().await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    })
    .await;
    let page = scrape(&client, &service).await;
    assert_eq!(sample(&page, "rushes_database_up"), Some(1.0), "{page}");
    let before = acknowledged();
    wait_for(
        "the sender to be acknowledged 20 times again",
        WAIT,
        || async { (acknowledged() >= before + 20).then_some(()) },
    )
    .await;
    sending.cancel();
    let sent = sender.await.expect("sender");
    let stored = stored_resources(&pg.url).await;
    let lost: Vec<&String> = sent
        .acknowledged
        .iter()
        .filter(|r| !stored.contains(*r))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        sent.refused > 0,
        "some calls came while the database was away: {sent:?}"
    );
    eprintln!(
        "webhooks through the outage: {} acknowledged (all stored), {} answered 503, slowest 503 {:?}",
        sent.acknowledged.len(),
        sent.refused,
        sent.slowest_refusal
    );
    assert!(
        sent.slowest_refusal < Duration::from_secs(3),
        "a 503 took {:?}",
        sent.slowest_refusal
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// What [`send_until`] saw.
#[derive(Debug, Default)]
struct Sent {
    acknowledged: Vec<String>,
    refused: usize,
    slowest_refusal: Duration,
}

/// Sends signed webhooks for new files one after another (a new resource id each) until
/// `stop`; remembers which were answered 200 (counted in `acked`) and how long the 503s took.
async fn send_until(
    client: reqwest::Client,
    hook: String,
    acked: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Sent {
    let mut sent = Sent::default();
    let mut n = 0;
    while !stop.is_cancelled() {
        n += 1;
        let resource = format!("file-through-{n}");
        let body = delivery("file.ready", "file", &resource);
        let started = std::time::Instant::now();
        let status = deliver(&client, &hook, SECRET, &body).await;
        let took = started.elapsed();
        match status {
            200 => {
                sent.acknowledged.push(resource);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            _ => {
                sent.refused += 1;
                sent.slowest_refusal = sent.slowest_refusal.max(took);
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    sent
}

/// The resource ids of the Frame.io events stored in the database at `url`.
async fn stored_resources(url: &str) -> std::collections::HashSet<String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let rows: Vec<String> = sqlx::query_scalar("SELECT resource_id FROM frameio_events")
        .fetch_all(&mut conn)
        .await
        .expect("events");
    conn.close().await.expect("close");
    rows.into_iter().collect()
}

/// Bytes the `.part` files under `dir` take on disk (allocated blocks: a segmented part is
/// sized at once, sparse, so its length says nothing).
fn part_bytes_on_disk(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// A Dropbox feed record of `url`, named `name`, created now.
fn feed_record(url: &str, name: &str) -> Value {
    json!({
        "source_url": url,
        "provider": "dropbox",
        "created_at": chrono::Utc::now().to_rfc3339(),
        "original_filename": name,
    })
}

async fn delivery_named(
    client: &reqwest::Client,
    service: &ChildService,
    name: &str,
) -> Option<Value> {
    let v = service.get_json(client, "/api/deliveries").await?;
    v["deliveries"]
        .as_array()?
        .iter()
        .find(|d| d["original_filename"] == name)
        .cloned()
}

#[tokio::test]
async fn postgres_away_downloads_keep_transferring_and_end_done_once() {
    let Some(pg) = OwnPostgres::start() else {
        eprintln!("no PostgreSQL server binaries (initdb): skipped");
        return;
    };
    // Two slow downloads: one over four ranged connections (its segments saved every second),
    // one over a single connection (below the segmented size).
    let files = FileServer::start().await;
    let segmented = content(16_000_000, 28);
    let single = content(3_000_000, 29);
    let segmented_url = files.add("src/away-seg.mov", segmented.clone());
    let single_url = files.add("src/away-one.mov", single.clone());
    files.throttle("src/away-seg.mov", 100_000);
    files.throttle("src/away-one.mov", 100_000);
    let dir = temp_dir();
    let feed = dir.path().join("feed.json");
    let records = json!([
        feed_record(&segmented_url, "away-seg.mov"),
        feed_record(&single_url, "away-one.mov")
    ]);
    std::fs::write(&feed, records.to_string()).expect("feed");
    let downloads = dir.path().join("downloads");
    let envs: Vec<(&'static str, String)> = vec![
        ("RUSHES_DATABASE_URL", pg.url.clone()),
        // An outage shorter than the lease (the next test has a longer one).
        ("RUSHES_LEASE", "60".into()),
        ("WEBHOOK_JSON_URL", feed.display().to_string()),
        ("WEBHOOK_MONITOR_INTERVAL", "3600".into()),
        ("DOWNLOAD_SEGMENTS", "4".into()),
        ("DOWNLOAD_SEGMENT_MIN", "4MiB".into()),
        ("LOCAL_DOWNLOADS_DIR", downloads.display().to_string()),
    ];
    let service = start(dir.path(), &envs).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    wait_for("both downloads to have bytes stored", WAIT, || async {
        let seg = delivery_named(&client, &service, "away-seg.mov").await?;
        let one = delivery_named(&client, &service, "away-one.mov").await?;
        (seg["bytes_done"].as_i64()? > 300_000 && one["bytes_done"].as_i64()? > 100_000)
            .then_some(())
    })
    .await;

    assert!(pg.stop(), "pg_ctl stop");
    let stopped = std::time::Instant::now();
    let sent_before = |path: &str| files.bytes_sent(path);
    let (seg_before, one_before) = (
        sent_before("src/away-seg.mov"),
        sent_before("src/away-one.mov"),
    );
    let disk_before = part_bytes_on_disk(&downloads);
    // Both keep receiving, and the parts keep growing on disk, with the database stopped for
    // longer than the pool's 10 s wait for a connection.
    wait_for(
        "both downloads to go on without the database",
        WAIT,
        || async {
            let seg = files.bytes_sent("src/away-seg.mov") - seg_before;
            let one = files.bytes_sent("src/away-one.mov") - one_before;
            let disk = part_bytes_on_disk(&downloads).saturating_sub(disk_before);
            (seg > 1_500_000
                && one > 400_000
                && disk > 1_500_000
                && stopped.elapsed() > Duration::from_secs(12))
            .then_some(())
        },
    )
    .await;
    let away = stopped.elapsed();
    let seg_during = files.bytes_sent("src/away-seg.mov") - seg_before;
    let one_during = files.bytes_sent("src/away-one.mov") - one_before;
    let disk_during = part_bytes_on_disk(&downloads).saturating_sub(disk_before);
    assert!(
        seg_during < segmented.len() as u64,
        "the segmented download ended during the outage: make it slower"
    );
    assert!(pg.start_again(), "pg_ctl start");
    eprintln!(
        "PostgreSQL away {away:?}: {seg_during} bytes (4 connections) and {one_during} bytes (1 connection) received, parts grew {disk_during} bytes on disk"
    );

    for (name, body) in [("away-seg.mov", &segmented), ("away-one.mov", &single)] {
        let done = wait_for(&format!("{name} done"), Duration::from_secs(90), || async {
            let d = delivery_named(&client, &service, name).await?;
            assert_ne!(d["state"], "failed", "{d}");
            (d["state"] == "done").then_some(d)
        })
        .await;
        assert_eq!(done["sha256"], sha256_hex(body), "{done}");
        assert_eq!(
            std::fs::read(downloads.join(name)).expect("final file"),
            *body
        );
    }
    // One file each, nothing fetched twice (no try restarted, no range asked again).
    let mut names: Vec<String> = std::fs::read_dir(&downloads)
        .expect("downloads")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["away-one.mov", "away-seg.mov"]);
    assert_eq!(files.bytes_sent("src/away-one.mov"), single.len() as u64);
    assert_eq!(files.seen("src/away-one.mov").len(), 1, "one request");
    // Segmented: each range asked once (work stealing ends a range early, so the server may
    // have sent a little more than the file; a try started over would ask a start again).
    let seen = files.seen("src/away-seg.mov");
    let mut starts: Vec<&str> = seen.iter().filter_map(|s| s.range.as_deref()).collect();
    starts.sort_unstable();
    let asked = starts.len();
    starts.dedup();
    assert_eq!(starts.len(), asked, "a range asked twice: {seen:?}");
    assert!(
        seen.iter().all(|s| s.status == 206 || s.range.is_none()),
        "{seen:?}"
    );
    eprintln!(
        "segmented: {} requests, {} bytes sent for {} bytes",
        seen.len(),
        files.bytes_sent("src/away-seg.mov"),
        segmented.len()
    );
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// PostgreSQL away for longer than the lease, two instances sharing it and the downloads folder:
/// the instance downloading stops its transfer before its lease runs out (so the `.part` never has
/// two writers), and when the database is back the download is resumed (by this instance or the
/// other, whichever reclaims it first) and ends `done` once, with the right bytes.
#[tokio::test]
async fn postgres_away_longer_than_the_lease_the_download_stops_in_time_and_ends_done_once() {
    let Some(pg) = OwnPostgres::start() else {
        eprintln!("no PostgreSQL server binaries (initdb): skipped");
        return;
    };
    const LEASE: u64 = 4;
    let files = FileServer::start().await;
    let body = content(3_000_000, 31);
    let url = files.add("src/lease.mov", body.clone());
    files.throttle("src/lease.mov", 100_000);
    let root = temp_dir();
    let feed = root.path().join("feed.json");
    let records = json!([feed_record(&url, "lease.mov")]);
    std::fs::write(&feed, records.to_string()).expect("feed");
    let downloads = root.path().join("downloads");
    let envs: Vec<(&'static str, String)> = vec![
        ("RUSHES_DATABASE_URL", pg.url.clone()),
        ("RUSHES_LEASE", LEASE.to_string()),
        ("DOWNLOAD_SEGMENTS", "1".into()),
        ("WEBHOOK_JSON_URL", feed.display().to_string()),
        ("WEBHOOK_MONITOR_INTERVAL", "3600".into()),
        ("LOCAL_DOWNLOADS_DIR", downloads.display().to_string()),
    ];
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    for dir in [&a_dir, &b_dir] {
        std::fs::create_dir_all(dir).expect("instance folder");
    }
    let a = start(&a_dir, &envs).await;
    let b = start(&b_dir, &envs).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    wait_for("the download to have bytes stored", WAIT, || async {
        let d = delivery_named(&client, &a, "lease.mov").await?;
        (d["bytes_done"].as_i64()? > 200_000).then_some(())
    })
    .await;

    assert!(pg.stop(), "pg_ctl stop");
    let stopped = std::time::Instant::now();
    // Within the lease the transfer goes on; before the lease is over it stops, and stays stopped
    // while the database is away (no instance writes the file any more).
    let fenced = wait_for(
        "the transfer to stop before the lease runs out",
        WAIT,
        || async {
            let log = format!("{}{}", a.log(), b.log());
            log.contains("stopping the downloads here before their leases run out")
                .then(|| stopped.elapsed())
        },
    )
    .await;
    // Before the lease is over (counted from the stop; the last renewal was before it).
    assert!(
        fenced < Duration::from_secs(LEASE),
        "stopped after {fenced:?}, lease {LEASE} s"
    );
    // Quiet for three seconds, longer than the lease in all, with the database still away.
    let mut sent = files.bytes_sent("src/lease.mov");
    let mut quiet_since = std::time::Instant::now();
    wait_for("no byte sent for three seconds", WAIT, || {
        let now = files.bytes_sent("src/lease.mov");
        if now != sent {
            sent = now;
            quiet_since = std::time::Instant::now();
        }
        let quiet = quiet_since.elapsed() > Duration::from_secs(3);
        async move { quiet.then_some(()) }
    })
    .await;
    assert!(
        stopped.elapsed() > Duration::from_secs(LEASE + 1),
        "the database must be away for longer than the lease"
    );
    assert!(
        (files.bytes_sent("src/lease.mov") as usize) < body.len(),
        "the download ended during the outage: make it slower"
    );
    assert!(pg.start_again(), "pg_ctl start");

    let done = wait_for("lease.mov done", Duration::from_secs(90), || async {
        let d = delivery_named(&client, &b, "lease.mov").await?;
        assert_ne!(d["state"], "failed", "{d}");
        (d["state"] == "done").then_some(d)
    })
    .await;
    assert_eq!(done["sha256"], sha256_hex(&body), "{done}");
    assert_eq!(
        std::fs::read(downloads.join("lease.mov")).expect("final file"),
        body
    );
    let names: Vec<String> = std::fs::read_dir(&downloads)
        .expect("downloads")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lease.mov"]);
    // Resumed, not started over: one connection from the start, then ranges from where the
    // part stood (never from byte 0 again); nothing sent twice.
    assert_eq!(files.bytes_sent("src/lease.mov"), body.len() as u64);
    let seen = files.seen("src/lease.mov");
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen[0].range.is_none(), "{seen:?}");
    assert!(
        seen[1..].iter().all(|s| s.status == 206
            && s.range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split('-').next())
                .and_then(|start| start.parse::<u64>().ok())
                .is_some_and(|start| start > 0)),
        "{seen:?}"
    );
    eprintln!(
        "stopped {fenced:?} after the database went away (lease {LEASE} s); {} bytes sent for {}; {} requests",
        files.bytes_sent("src/lease.mov"),
        body.len(),
        seen.len()
    );
    for service in [a, b] {
        let status = service.terminate().await;
        assert!(status.success(), "{status:?}");
    }
}
