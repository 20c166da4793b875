//! Large feeds: batched intake (more records than one write batch), duplicates inside one body,
//! unchanged bodies, new R2 copies of known deliveries, legacy deliveries upgraded by new-format
//! records, a started delivery renamed in the feed, a restart on the same store. After every
//! poll the store must hold exactly what the record-at-a-time path
//! (`Store::upsert_delivery` per record, in feed order) gives for the same body.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::feed_server::FeedServer;
use crate::support::service::{config_for, quick_retry, temp_dir};
use rushes::events::{Event, EventBus};
use rushes::feed::source::{FeedSource, parse_body};
use rushes::feed::{FeedService, PollOutcome, new_delivery};
use rushes::store::{DeliveryFilter, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// Delivery `n`: a Dropbox folder share (spelled in one of the artefact-laden ways; a recent one
/// or an old one), or a legacy FromSmash link.
fn item(n: usize, spelling: usize, r2: Option<&str>) -> Value {
    if n.is_multiple_of(3) {
        return json!({"url": format!("https://fromsmash.com/t-{n}"), "timestamp": "2025-10-17 10:00:00"});
    }
    let base = format!("https://www.dropbox.com/scl/fo/f{n}/n{n}");
    let link = match spelling % 3 {
        0 => format!("{base}?rlkey=k{n}&dl=0"),
        1 => format!("{base}?rlkey=k{n}&amp;dl=0"),
        _ => format!("{base}/?amp%3Bdl=0&dl=1&rlkey=k{n}#x"),
    };
    let created = if n.is_multiple_of(4) {
        "2020-01-08T20:19:38Z".to_string()
    } else {
        chrono::Utc::now().to_rfc3339()
    };
    let mut v = json!({
        "source_url": link,
        "provider": "dropbox",
        "created_at": created,
        "original_filename": format!("{n} spelling {spelling}.mov"),
    });
    if let Some(r2) = r2 {
        v["r2_url"] = json!(r2);
    }
    v
}

/// A legacy record of delivery `n` (a Dropbox link in the old format).
fn legacy(n: usize) -> Value {
    json!({"url": format!("https://www.dropbox.com/scl/fo/f{n}/n{n}?rlkey=k{n}&dl=0"),
           "timestamp": "2025-10-17 10:00:00"})
}

async fn feed_service(
    feed: &FeedServer,
    dir: &std::path::Path,
    events: EventBus,
) -> (FeedService, Store) {
    let store = crate::support::db::open_store(&dir.join("rushes.db")).await;
    let config = config_for(dir, &feed.url());
    let mut source = FeedSource::new(
        config.feed.location.clone().expect("feed"),
        config.feed.timeout,
        config.feed.timezone,
    );
    source.retry = quick_retry();
    (
        FeedService::new(source, store.clone(), Duration::ZERO, events).with_max_age(Some(MAX_AGE)),
        store,
    )
}

/// What a delivery is, without ids and times.
type Shape = Vec<String>;

/// Every stored delivery.
async fn all_deliveries(store: &Store) -> Vec<rushes::store::Delivery> {
    store
        .deliveries(&DeliveryFilter {
            limit: 100_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("list")
}

async fn shapes(store: &Store) -> Vec<Shape> {
    let mut all: Vec<Shape> = all_deliveries(store)
        .await
        .into_iter()
        .map(|d| {
            vec![
                d.dedupe_key,
                d.source_url,
                d.raw_source_url,
                format!("{:?}", d.r2_url),
                format!("{:?}", d.r2_key),
                d.provider,
                d.kind.to_string(),
                d.mode.to_string(),
                d.record_format.to_string(),
                format!("{:?}", d.original_filename),
                format!("{:?}", d.file_name),
                d.state.to_string(),
                format!("{:?}", d.renamed_in_feed),
            ]
        })
        .collect();
    all.sort();
    all
}

/// The record-at-a-time path on `store`.
async fn reference_poll(store: &Store, body: &str) {
    let feed = parse_body(body.as_bytes(), chrono_tz::UTC).expect("parse");
    let now = chrono::Utc::now().into();
    for record in &feed.records {
        store
            .upsert_delivery(&new_delivery(record, Some(MAX_AGE), now))
            .await
            .expect("upsert");
    }
}

#[tokio::test]
async fn a_large_feed_is_taken_in_batches_with_the_same_result_as_record_by_record() {
    const N: usize = 4_500; // more than two write batches
    let mut items: Vec<Value> = (0..N).map(|n| item(n, n, None)).collect();
    // Every 10th delivery again under another spelling, the copy bringing an R2 link.
    for n in (1..N).step_by(10).filter(|n| !n.is_multiple_of(3)) {
        items.push(item(
            n,
            n + 1,
            Some(&format!("https://r2.example.workers.dev/dropbox/b/{n}")),
        ));
    }
    // Legacy records of deliveries seen above, and legacy ones seen first (upgraded below).
    for n in (2usize..200).step_by(7).filter(|n| !n.is_multiple_of(3)) {
        items.push(legacy(n));
    }
    for n in N + 100..N + 110 {
        items.push(legacy(n));
    }
    items.push(json!("not an object"));
    items.push(json!({"url": "https://example.com/x", "timestamp": "17/10/2025"}));
    let body = Value::Array(items.clone()).to_string();
    let feed = FeedServer::start(&body).await;
    let dir = temp_dir();
    let reference_dir = temp_dir();
    let reference = crate::support::db::open_store(&reference_dir.path().join("rushes.db")).await;
    let bus = EventBus::new();
    let mut events = bus.subscribe();
    let (service, store) = feed_service(&feed, dir.path(), bus).await;
    let cancel = CancellationToken::new();

    let first = service.poll(true, &cancel).await.expect("poll");
    reference_poll(&reference, &body).await;
    let valid = items.len() - 2;
    assert_eq!(
        first,
        PollOutcome::Fetched {
            valid,
            invalid: 2,
            new: N + 10
        }
    );
    let stored = shapes(&store).await;
    assert_eq!(stored.len(), N + 10);
    let keys: HashSet<&str> = stored.iter().map(|d| d[0].as_str()).collect();
    assert_eq!(keys.len(), N + 10, "one row per delivery");
    assert_eq!(stored, shapes(&reference).await);
    assert!(stored.iter().any(|d| d[11] == "available"));
    assert!(stored.iter().any(|d| d[11] == "queued"));
    assert!(stored.iter().any(|d| d[11] == "manual"));
    // New deliveries are announced together, one event per written batch (not one each: the
    // bus keeps 1,024 and a first ingest adds tens of thousands); changes to a delivery (an
    // upgrade by a later record) still get their own. Nothing is lost on the way.
    let mut added = HashSet::new();
    let (mut batches, mut changed) = (0, 0);
    loop {
        match events.try_recv() {
            Ok(Event::DeliveriesAdded { ids }) => {
                batches += 1;
                added.extend(ids.into_iter().map(|id| id.0));
            }
            Ok(Event::DeliveryChanged { .. }) => changed += 1,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                panic!("{n} events lost")
            }
            Err(_) => break,
        }
    }
    let stored_ids: HashSet<i64> = store
        .deliveries(&DeliveryFilter {
            limit: 10_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("list")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(added, stored_ids, "every new delivery announced once");
    assert!(batches <= N / 2000 + 3, "{batches} batch events");
    assert!(changed < 1_000, "{changed} change events");

    // The same body again: nothing new, the same counts, no event.
    let again = service.poll(true, &cancel).await.expect("poll");
    assert_eq!(
        again,
        PollOutcome::Fetched {
            valid,
            invalid: 2,
            new: 0
        }
    );
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(
                event,
                Event::DeliveryChanged { .. } | Event::DeliveriesAdded { .. }
            ),
            "{event:?}"
        );
    }

    // A started delivery: a new name in the feed is kept aside, the file keeps its own.
    for s in [&store, &reference] {
        let d1 = s
            .deliveries(&DeliveryFilter {
                limit: 100_000,
                ..DeliveryFilter::default()
            })
            .await
            .expect("list")
            .into_iter()
            .find(|d| d.dedupe_key == "https://www.dropbox.com/scl/fo/f1/n1?dl=1&rlkey=k1")
            .expect("delivery 1");
        s.transition(
            d1.id,
            &[d1.state],
            "downloading".parse().expect("state"),
            None,
        )
        .await
        .expect("transition")
        .expect("moved");
    }

    // Ten new deliveries, R2 copies for known ones, new-format records for the legacy-first ones,
    // a new name for the started one.
    for n in N..N + 10 {
        items.push(item(n, 0, None));
    }
    items.push(item(
        8,
        2,
        Some("https://r2.example.workers.dev/dropbox/b/8-new"),
    ));
    items.push(item(
        11,
        0,
        Some("https://r2.example.workers.dev/dropbox/b/11-new"),
    ));
    for n in N + 100..N + 105 {
        items.push(item(
            n,
            0,
            Some(&format!("https://r2.example.workers.dev/l/{n}")),
        ));
    }
    items.push(item(1, 5, None));
    let body = Value::Array(items.clone()).to_string();
    feed.set_body(body.clone());
    let changed = service.poll(true, &cancel).await.expect("poll");
    let before = shapes(&reference).await.len();
    reference_poll(&reference, &body).await;
    let reference_new = shapes(&reference).await.len() - before;
    // 10 new Dropbox deliveries, and delivery N + 102 (a FromSmash link in `item`).
    assert_eq!(reference_new, 11);
    assert_eq!(
        changed,
        PollOutcome::Fetched {
            valid: valid + 18,
            invalid: 2,
            new: reference_new
        }
    );
    let stored = shapes(&store).await;
    assert_eq!(stored.len(), N + 21);
    assert_eq!(stored, shapes(&reference).await);
    let d1 = stored
        .iter()
        .find(|d| d[0] == "https://www.dropbox.com/scl/fo/f1/n1?dl=1&rlkey=k1")
        .expect("delivery 1");
    assert_eq!(d1[12], "Some(\"1 spelling 5.mov.zip\")");
    let upgraded = stored
        .iter()
        .filter(|d| d[8] == "new" && d[4].contains("/l/"))
        .count();
    assert_eq!(upgraded, 4, "legacy deliveries upgraded");

    // A restart on the same store: what is known comes from the store, nothing is duplicated.
    let (restarted, _) = feed_service(&feed, dir.path(), EventBus::new()).await;
    let after = restarted.poll(true, &cancel).await.expect("poll");
    reference_poll(&reference, &body).await;
    assert!(
        matches!(after, PollOutcome::Fetched { new: 0, .. }),
        "{after:?}"
    );
    assert_eq!(shapes(&store).await, shapes(&reference).await);
}

/// Reads server-sent events until `wanted` returns something, before the deadline.
async fn next_event<T>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    mut wanted: impl FnMut(&Value) -> Option<T>,
) -> T {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data).expect("JSON event");
            if let Some(found) = wanted(&event) {
                return found;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the event before the deadline")
            .expect("stream open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn new_deliveries_reach_the_event_stream_as_one_event_per_batch() {
    // Manual links: nothing is downloaded, only the feed's events are sent.
    let manual = |n: usize| json!({"url": format!("https://fromsmash.com/batch-{n}"), "timestamp": "2026-01-08 10:00:00"});
    let feed = FeedServer::start("[]").await;
    let root = temp_dir();
    let mut config = config_for(root.path(), &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    let app = crate::support::service::TestApp::spawn(config).await;
    let response = app
        .client
        .get(app.url("/api/events"))
        .send()
        .await
        .expect("GET /api/events");
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut text = String::new();

    // A few: listed by id (the page replaces those rows).
    feed.set_body(Value::Array((0..3).map(manual).collect()).to_string());
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200);
    let ids = next_event(&mut stream, &mut text, |e| {
        (e["type"] == "deliveries_added").then(|| e.clone())
    })
    .await;
    assert_eq!(ids["count"], 3, "{ids}");
    assert_eq!(ids["ids"].as_array().map(Vec::len), Some(3), "{ids}");

    // Many: one event with the count only (the page reloads its table once), not one per row.
    let n = 800;
    feed.set_body(Value::Array((0..n).map(manual).collect()).to_string());
    let (code, _) = app.post("/api/feed/refresh").await;
    assert_eq!(code, 200);
    let mut singles = 0;
    let big = next_event(&mut stream, &mut text, |e| {
        if e["type"] == "delivery_changed" {
            singles += 1;
        }
        (e["type"] == "deliveries_added").then(|| e.clone())
    })
    .await;
    assert_eq!(big["count"], n - 3, "{big}");
    assert!(big.get("ids").is_none(), "{big}");
    assert_eq!(singles, 0);
    let (code, list) = app.get("/api/deliveries?limit=1000").await;
    assert_eq!(code, 200);
    assert_eq!(
        list["deliveries"].as_array().map(Vec::len),
        Some(n),
        "all stored"
    );
    app.stop().await;
}

/// One generated feed record (see [`random_feeds_give_the_same_store_as_record_by_record`]).
#[derive(Debug, Clone)]
struct Gen {
    shape: u8,
    n: u8,
    spelling: u8,
    r2: Option<u8>,
    name: u8,
    old: bool,
}

fn generated(g: &Gen) -> Value {
    let n = g.n;
    let r2 =
        g.r2.map(|r| format!("https://r2.example.workers.dev/dropbox/b/{r}"));
    let dropbox = || {
        let base = format!("https://www.dropbox.com/scl/fo/f{n}/n{n}");
        match g.spelling % 3 {
            0 => format!("{base}?rlkey=k{n}&dl=0"),
            1 => format!("{base}?rlkey=k{n}&amp;dl=0"),
            _ => format!("{base}/?dl=1&rlkey=k{n}"),
        }
    };
    let created = if g.old {
        "2020-01-08T20:19:38Z".to_string()
    } else {
        chrono::Utc::now().to_rfc3339()
    };
    match g.shape % 5 {
        // Legacy records: a Dropbox link, or an R2 copy listed as the link itself.
        0 => json!({"url": dropbox(), "timestamp": "2025-10-17 10:00:00"}),
        1 => json!({"url": r2.unwrap_or_else(dropbox), "timestamp": "2025-10-17 10:00:00"}),
        // New-format records: a Dropbox share or a FromSmash transfer (manual until an R2
        // copy comes), an R2 copy from a small pool shared between deliveries, a name.
        shape => {
            let source = if shape == 4 {
                format!("https://fromsmash.com/t-{n}")
            } else {
                dropbox()
            };
            let mut v = json!({
                "source_url": source,
                "provider": if shape == 4 { "fromsmash" } else { "dropbox" },
                "created_at": created,
                "original_filename": format!("{n} take {}.mov", g.name),
            });
            if let Some(r2) = r2 {
                v["r2_url"] = json!(r2);
            }
            v
        }
    }
}

fn gen_strategy() -> impl proptest::strategy::Strategy<Value = Gen> {
    use proptest::prelude::*;
    (
        0u8..5,
        0u8..6,
        0u8..3,
        proptest::option::of(0u8..4),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(shape, n, spelling, r2, name, old)| Gen {
            shape,
            n,
            spelling,
            r2,
            name,
            old,
        })
}

/// What makes two generated records the same for a running poller.
fn fingerprint(v: &Value) -> String {
    [
        "url",
        "source_url",
        "r2_url",
        "provider",
        "original_filename",
    ]
    .iter()
    .map(|k| v.get(*k).map(Value::to_string).unwrap_or_default())
    .collect::<Vec<_>>()
    .join("|")
}

/// Marks a delivery as started (downloading) in a store, by its source key.
async fn start_in(store: &Store, key: &str) {
    let all = store
        .deliveries(&DeliveryFilter {
            limit: 1_000,
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    if let Some(d) = all.into_iter().find(|d| d.dedupe_key == key) {
        store
            .transition(
                d.id,
                &[d.state],
                "downloading".parse().expect("state"),
                None,
            )
            .await
            .expect("transition");
    }
}

/// The batched poll applies the upgrade rule in memory and writes the outcome; whatever the
/// records (re-listings under other spellings, R2 copies shared between deliveries, legacy
/// records naming an R2 copy, manual links gaining an R2 copy, a download started between
/// polls, a restart), the store must hold what the record-at-a-time path gives.
#[test]
fn random_feeds_give_the_same_store_as_record_by_record() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        first in proptest::collection::vec(gen_strategy(), 1..40),
        more in proptest::collection::vec(gen_strategy(), 0..20),
        started in 0u8..6,
    )| {
        runtime.block_on(async {
            let mut items: Vec<Value> = first.iter().map(generated).collect();
            let body = Value::Array(items.clone()).to_string();
            let feed = FeedServer::start(&body).await;
            let dir = temp_dir();
            let reference_dir = temp_dir();
            let reference =
                crate::support::db::open_store(&reference_dir.path().join("rushes.db")).await;
            let (service, store) = feed_service(&feed, dir.path(), EventBus::new()).await;
            let cancel = CancellationToken::new();
            service.poll(true, &cancel).await.expect("poll");
            reference_poll(&reference, &body).await;
            assert_eq!(shapes(&store).await, shapes(&reference).await, "first poll");

            let key = format!("https://www.dropbox.com/scl/fo/f{started}/n{started}?dl=1&rlkey=k{started}");
            start_in(&store, &key).await;
            start_in(&reference, &key).await;
            // A running poller skips records identical to one it applied at its last poll
            // (same format, links, provider, name: the module's fingerprint): the reference
            // takes only the others, in order.
            let seen: HashSet<String> = items.iter().map(fingerprint).collect();
            let added: Vec<Value> = more.iter().map(generated).collect();
            let fresh: Vec<Value> =
                added.iter().filter(|v| !seen.contains(&fingerprint(v))).cloned().collect();
            items.extend(added);
            let body = Value::Array(items).to_string();
            feed.set_body(body.clone());
            service.poll(true, &cancel).await.expect("poll");
            reference_poll(&reference, &Value::Array(fresh).to_string()).await;
            assert_eq!(shapes(&store).await, shapes(&reference).await, "second poll");

            let (restarted, _) = feed_service(&feed, dir.path(), EventBus::new()).await;
            restarted.poll(true, &cancel).await.expect("poll");
            reference_poll(&reference, &body).await;
            assert_eq!(shapes(&store).await, shapes(&reference).await, "after a restart");
        });
    });
}

/// `NewDeliveries::insert` says which rows it inserted and with which ids (the new-deliveries
/// event and the per-record fallback rely on it): one id per row in the order of the rows,
/// increasing, and none for a row whose dedupe key was stored meanwhile, across several
/// statements, on both backends.
#[tokio::test]
async fn a_batch_insert_gives_each_row_its_id_and_leaves_out_keys_stored_meanwhile() {
    use rushes::store::NewRow;
    let dir = temp_dir();
    let store = crate::support::db::open_store(&dir.path().join("rushes.db")).await;
    let body = Value::Array((0..1203).map(|n| item(n, n, None)).collect()).to_string();
    let feed = parse_body(body.as_bytes(), chrono_tz::UTC).expect("parse");
    let now = chrono::Utc::now().into();
    let records: Vec<_> = feed
        .records
        .iter()
        .map(|r| new_delivery(r, Some(MAX_AGE), now))
        .collect();
    assert_eq!(records.len(), 1203);
    // Stored by someone else between the poll's read and its insert: one in the middle of a
    // statement, one at the very end.
    let taken = [701, 1202];
    for &k in &taken {
        store.upsert_delivery(&records[k]).await.expect("upsert");
    }
    let rows: Vec<NewRow<'_>> = records
        .iter()
        .map(|d| NewRow {
            dedupe_key: &d.dedupe_key,
            source_url: &d.source_url,
            raw_source_url: &d.raw_source_url,
            r2_url: d.r2_url.as_deref(),
            r2_key: d.r2_key.as_deref(),
            provider: &d.provider,
            kind: d.kind,
            mode: d.mode,
            record_format: d.record_format,
            original_filename: d.original_filename.as_deref(),
            file_name: d.file_name.as_deref(),
            created_at: d.created_at,
            state: d.initial_state,
        })
        .collect();
    let mut writer = store.new_deliveries(rows.len()).await.expect("writer");
    let inserted = writer
        .insert(&rows, Duration::from_secs(600))
        .await
        .expect("insert");
    writer.finish().await.expect("finish");
    assert_eq!(inserted.ids.len(), rows.len(), "every row taken");
    let stored: std::collections::HashMap<String, i64> = all_deliveries(&store)
        .await
        .into_iter()
        .map(|d| (d.dedupe_key, d.id))
        .collect();
    assert_eq!(stored.len(), rows.len(), "no row twice, none lost");
    let mut last = 0;
    for (k, (row, id)) in rows.iter().zip(&inserted.ids).enumerate() {
        if taken.contains(&k) {
            assert_eq!(*id, None, "row {k} was stored meanwhile");
            continue;
        }
        let id = id.unwrap_or_else(|| panic!("row {k} inserted without an id"));
        assert_eq!(Some(&id), stored.get(row.dedupe_key), "row {k}");
        assert!(id > last, "ids follow the rows: {id} after {last}");
        last = id;
    }
}
