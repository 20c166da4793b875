//! Several rushes on one PostgreSQL (real child processes, killed with SIGKILL): one feed poller
//! at a time with takeover, downloads resumed by another instance, every acknowledged Frame.io
//! event processed once, and live progress on every instance's page. Runs in the PostgreSQL
//! pass of `scripts/test.sh` (skipped, saying so, on SQLite).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::support::db;
use crate::support::fake_frameio::{
    ACCOUNT, FakeFrameio, STATIC_TOKEN, WORKSPACE, delivery, sign_now,
};
use crate::support::feed_server::FeedServer;
use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::ChildService;
use crate::support::service::temp_dir;
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);
/// `RUSHES_LEASE` of the instances: claims of a dead instance run out after this.
const LEASE_SECS: u64 = 3;
const SECRET: &str = "whsec-cluster-s3cret";

/// Three instances on one database (its name derived from `group`), each with its own data folder.
async fn three(group: &Path, extra: &[(&str, String)]) -> Vec<ChildService> {
    let url = db::url_for(&group.join("shared")).expect("on PostgreSQL");
    let mut out = Vec::new();
    for name in ["inst-a", "inst-b", "inst-c"] {
        let root = group.join(name);
        std::fs::create_dir_all(&root).expect("root");
        let mut envs: Vec<(&str, String)> = vec![
            ("RUSHES_DATABASE_URL", url.clone()),
            ("RUSHES_INSTANCE_NAME", name.to_string()),
            ("RUSHES_LEASE", LEASE_SECS.to_string()),
            (
                "LOCAL_DOWNLOADS_DIR",
                group.join("downloads").display().to_string(),
            ),
        ];
        envs.extend(extra.iter().cloned());
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.push(ChildService::start(&root, &envs).await);
    }
    out
}

async fn get(client: &reqwest::Client, url: String) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

async fn feed_holder(client: &reqwest::Client, s: &ChildService) -> Option<String> {
    let body = get(client, s.url("/api/cluster")).await?;
    body["leases"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "feed")
        .and_then(|l| l["holder"].as_str().map(str::to_string))
}

fn skip() -> bool {
    if db::on_postgres() {
        return false;
    }
    eprintln!("several instances need PostgreSQL (the second pass of scripts/test.sh): skipped");
    true
}

#[tokio::test]
async fn one_instance_polls_the_feed_and_another_takes_over_when_it_is_killed() {
    if skip() {
        return;
    }
    let feed = FeedServer::start("[]").await;
    let group = temp_dir();
    let mut services = three(
        group.path(),
        &[
            ("WEBHOOK_JSON_URL", feed.url()),
            ("WEBHOOK_MONITOR_INTERVAL", "3600".into()),
            // Always fetch (the TTL is shared: a new holder would otherwise trust the last fetch).
            ("WEBHOOK_CACHE_TTL", "0".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let holder = wait_for("a feed lease holder", WAIT, || async {
        feed_holder(&client, &services[0]).await
    })
    .await;
    wait_for("the first poll", WAIT, || async {
        (feed.requests() >= 1).then_some(())
    })
    .await;
    let held = services
        .iter()
        .position(|s| s.log().contains("this instance now polls the feed"))
        .expect("the holder says so");
    assert_eq!(
        services
            .iter()
            .filter(|s| s.log().contains("this instance now polls the feed"))
            .count(),
        1,
        "exactly one instance polls"
    );
    assert_eq!(holder, ["inst-a", "inst-b", "inst-c"][held]);
    // Every instance reports the same holder.
    for s in &services {
        assert_eq!(
            feed_holder(&client, s).await.as_deref(),
            Some(holder.as_str())
        );
    }

    // "Refresh now" on another instance makes the holder poll.
    let other = (held + 1) % 3;
    let before = feed.requests();
    let answer: Value = client
        .post(services[other].url("/api/feed/refresh"))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["outcome"], "requested", "{answer}");
    assert_eq!(answer["poller"], holder.as_str(), "{answer}");
    wait_for("the holder to poll on request", WAIT, || async {
        (feed.requests() > before).then_some(())
    })
    .await;

    // SIGKILL the holder: another instance takes the lease within the lease time and polls.
    let before = feed.requests();
    let killed_at = Instant::now();
    services[held].kill();
    let survivor = (held + 1) % 3;
    let new_holder = wait_for("another instance to take the feed lease", WAIT, || async {
        feed_holder(&client, &services[survivor])
            .await
            .filter(|h| *h != holder)
    })
    .await;
    let took = killed_at.elapsed();
    assert!(
        took <= Duration::from_secs(LEASE_SECS + 4),
        "takeover after {took:?} (lease {LEASE_SECS} s)"
    );
    wait_for("the new holder to poll", WAIT, || async {
        (feed.requests() > before).then_some(())
    })
    .await;
    assert_ne!(new_holder, holder);
    // `rushes status` names the holder.
    let out = crate::support::service::bin()
        .args(["status", "--url", &services[survivor].url("")])
        .output()
        .expect("rushes status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("database          postgres"), "{text}");
    assert!(
        text.contains(&format!("feed polled by    {new_holder}")),
        "{text}"
    );
}

#[tokio::test]
async fn a_download_of_a_killed_instance_is_resumed_by_another_and_shown_live_everywhere() {
    if skip() {
        return;
    }
    let files = FileServer::start().await;
    let body = content(6_000_000, 77);
    let url = files.add("src/cluster.mov", body.clone());
    files.throttle("src/cluster.mov", 1_000_000);
    let record = json!([{
        "source_url": url,
        "provider": "dropbox",
        "created_at": "2026-01-08T20:19:38+00:00",
        "original_filename": "cluster.mov",
    }]);
    let feed = FeedServer::start(&record.to_string()).await;
    let group = temp_dir();
    let mut services = three(
        group.path(),
        &[
            ("WEBHOOK_JSON_URL", feed.url()),
            ("WEBHOOK_MONITOR_INTERVAL", "3600".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let (id, owner) = wait_for("a download running with bytes on disk", WAIT, || async {
        let body = get(&client, services[0].url("/api/cluster")).await?;
        let d = body["downloads"].as_array()?.first()?.clone();
        (d["bytes_done"].as_i64()? > 500_000).then(|| {
            (
                d["id"].as_i64().unwrap_or(0),
                d["owner"].as_str().unwrap_or("").to_string(),
            )
        })
    })
    .await;
    let running = ["inst-a", "inst-b", "inst-c"]
        .iter()
        .position(|n| *n == owner)
        .expect("owner is one of the three");
    let watcher = (running + 1) % 3;

    // The page of another instance gets the progress of this download (its SSE stream).
    let mut stream = client
        .get(services[watcher].url("/api/events"))
        .send()
        .await
        .expect("events")
        .bytes_stream();
    let needle = format!("\"id\":{id}");
    let deadline = Instant::now() + WAIT;
    let mut seen = String::new();
    while !(seen.contains("\"type\":\"progress\"") && seen.contains(&needle)) {
        assert!(Instant::now() < deadline, "no progress relayed: {seen}");
        match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Ok(chunk))) => {
                for line in String::from_utf8_lossy(&chunk).lines() {
                    if line.contains("\"type\":\"progress\"") && line.contains(&needle) {
                        seen.push_str(line);
                    }
                }
            }
            other => panic!("event stream ended: {other:?}"),
        }
    }
    drop(stream);

    // SIGKILL the instance running it: another one resumes from the shared .part.
    services[running].kill();
    let done = wait_for("the download done on another instance", WAIT, || async {
        let body = get(
            &client,
            services[watcher].url(&format!("/api/deliveries/{id}")),
        )
        .await?;
        (body["state"] == "done").then_some(body)
    })
    .await;
    assert_eq!(done["sha256"], sha256_hex(&body));
    assert_ne!(done["owner"], owner.as_str(), "{done}");
    let downloads = group.path().join("downloads");
    let names: Vec<String> = std::fs::read_dir(&downloads)
        .expect("downloads")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["cluster.mov".to_string()], "one final file");
    assert_eq!(
        std::fs::read(downloads.join("cluster.mov")).expect("file"),
        body
    );
    let seen = files.seen("src/cluster.mov");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].status, 206, "resumed, not restarted: {seen:?}");
}

#[tokio::test]
async fn every_acknowledged_webhook_is_processed_once_when_an_instance_dies() {
    if skip() {
        return;
    }
    let fake = FakeFrameio::start().await;
    let group = temp_dir();
    let services = three(
        group.path(),
        &[
            ("FRAMEIO_API_BASE", fake.base()),
            ("FRAMEIO_TOKEN", STATIC_TOKEN.into()),
            ("FRAMEIO_ACCOUNT_ID", ACCOUNT.into()),
            ("FRAMEIO_WORKSPACE_ID", WORKSPACE.into()),
            ("FRAMEIO_WEBHOOK_SECRET", SECRET.into()),
            ("FRAMEIO_POLL_INTERVAL", "3600".into()),
        ],
    )
    .await;
    let urls: Vec<String> = services
        .iter()
        .map(|s| s.url("/webhooks/frameio"))
        .collect();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sent_to_c = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for (n, url) in urls.into_iter().enumerate() {
        let acknowledged = acknowledged.clone();
        let sent_to_c = sent_to_c.clone();
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            for i in 0..40 {
                let file = format!("file-{n}-{i}");
                let body = delivery("file.ready", "file", &file);
                let (ts, sig) = sign_now(SECRET, &body);
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("X-Frameio-Request-Timestamp", ts)
                    .header("X-Frameio-Signature", sig)
                    .body(body)
                    .send()
                    .await;
                if answer.is_ok_and(|r| r.status().as_u16() == 200) {
                    acknowledged.lock().expect("lock").push(file);
                }
                if n == 2 {
                    sent_to_c.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Kill instance C while the three are receiving.
    wait_for("instance C to receive some", WAIT, || async {
        (sent_to_c.load(Ordering::SeqCst) >= 10).then_some(())
    })
    .await;
    let mut services = services;
    services[2].kill();
    for s in senders {
        s.await.expect("sender");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 90, "{}", acknowledged.len());
    assert!(acknowledged.len() < 120, "C was killed mid-way");

    let store = db::open_store(&group.path().join("shared").join("rushes.db")).await;
    let events = wait_for("every acknowledged event processed", WAIT, || async {
        let events = store.frameio_events(1000).await.ok()?;
        acknowledged
            .iter()
            .all(|f| {
                events
                    .iter()
                    .any(|e| e.resource_id == *f && e.processed_at.is_some())
            })
            .then_some(events)
    })
    .await;
    for f in &acknowledged {
        let rows: Vec<_> = events.iter().filter(|e| e.resource_id == *f).collect();
        assert_eq!(rows.len(), 1, "{f} stored once");
        assert_eq!(rows[0].attempts, 1, "{f} processed once: {:?}", rows[0]);
    }
    store.close().await;
}

#[tokio::test]
async fn instances_sharing_a_rotating_refresh_token_take_turns() {
    use crate::support::fake_frameio::{CLIENT_ID, CLIENT_SECRET, FIRST_REFRESH};
    use rushes::config::FrameioConfig;
    use rushes::frameio::client::Client;
    use rushes::store::{Identity, Location, Store};
    if skip() {
        return;
    }
    let fake = FakeFrameio::start().await;
    fake.add_file("f");
    let group = temp_dir();
    let url = db::url_for(&group.path().join("shared")).expect("on PostgreSQL");
    let vars = [
        ("FRAMEIO_API_BASE", fake.base()),
        ("FRAMEIO_IMS_URL", fake.ims_url()),
        ("FRAMEIO_CLIENT_ID", CLIENT_ID.to_string()),
        ("FRAMEIO_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ("FRAMEIO_REFRESH_TOKEN", FIRST_REFRESH.to_string()),
    ];
    let config = FrameioConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("frameio config");
    let mut clients = Vec::new();
    for name in ["inst-a", "inst-b", "inst-c"] {
        let store = Store::connect(
            &Location::Postgres(secrecy::SecretString::from(url.clone())),
            Identity {
                instance: name.into(),
                lease: Duration::from_secs(LEASE_SECS),
            },
        )
        .await
        .expect("store");
        clients.push(Client::from_config(&config, Some(store)).expect("client"));
    }
    // Three instances need a token at the same moment. IMS takes each refresh token once: without
    // turns, two would spend the same one and be refused.
    let calls = clients.iter().map(|c| c.file(ACCOUNT, "f"));
    let answers = futures::future::join_all(calls).await;
    for a in &answers {
        assert!(a.is_ok(), "{a:?}");
    }
    assert_eq!(fake.grants(), vec!["refresh_token"; 3]);
    assert_eq!(fake.current_refresh_tokens(), vec!["refresh-3".to_string()]);
}
