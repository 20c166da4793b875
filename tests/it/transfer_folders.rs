//! Resolved deliveries (issue 22, items 2, 3 and 6) against the fake SwissTransfer and FromSmash:
//! two deliveries never share a folder and a file is never adopted on its size alone; every file
//! of a transfer lands under its own name; a resolved file is fetched only from the provider's
//! own hosts (or the configured API base), redirects included.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_fromsmash::{FakeSmash, SmashTransfer};
use crate::support::fake_swisstransfer::{FakeSwissTransfer, FakeTransfer};
use crate::support::feed_server::FeedServer;
use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::{TestApp, config_for, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);
const LINK: &str = "https://www.swisstransfer.com/d/";

/// A new-format record with a forced name, else a legacy one (`url`, `timestamp`: no name, the
/// folder is named after the transfer's message).
fn record(uuid: &str, name: Option<&str>) -> Value {
    match name {
        Some(n) => json!({
            "source_url": format!("{LINK}{uuid}"),
            "provider": "swisstransfer",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": n,
        }),
        None => json!({
            "url": format!("{LINK}{uuid}"),
            "timestamp": "2026-01-08T20:19:38+00:00",
            "source": "swisstransfer",
        }),
    }
}

fn one_file(message: &str, id: &str, body: Vec<u8>) -> FakeTransfer {
    FakeTransfer {
        credit: 250,
        message: message.into(),
        files: vec![(id.into(), "clip.mov".into(), body)],
        ..Default::default()
    }
}

async fn app_for(
    api: &FakeSwissTransfer,
    smash: Option<&FakeSmash>,
    records: Vec<Value>,
    root: &Path,
) -> (TestApp, FeedServer) {
    let feed = FeedServer::start(&Value::Array(records).to_string()).await;
    let mut config = config_for(root, &feed.url());
    config.feed.monitor_interval = Duration::from_secs(3600);
    config.download.resolvers.swisstransfer = true;
    config.download.resolvers.swisstransfer_api =
        url::Url::parse(&api.api_base()).expect("api base");
    if let Some(smash) = smash {
        config.download.resolvers.smash = true;
        config.download.resolvers.smash_api = Some(url::Url::parse(&smash.base()).expect("base"));
    }
    (TestApp::spawn(config).await, feed)
}

/// Every delivery, once none is queued, downloading or (for FromSmash) manual without a reason.
async fn settled(app: &TestApp, n: usize) -> Vec<Value> {
    wait_for("deliveries settled", WAIT, || async {
        let (_, body) = app.get("/api/deliveries?limit=100").await;
        let list = body["deliveries"].as_array().cloned().unwrap_or_default();
        let done = |d: &Value| {
            ["done", "failed"].contains(&d["state"].as_str().unwrap_or(""))
                || (d["state"] == "manual" && !d["error"].is_null())
        };
        (list.len() == n && list.iter().all(done)).then_some(list)
    })
    .await
}

fn by_link<'a>(list: &'a [Value], uuid: &str) -> &'a Value {
    list.iter()
        .find(|d| d["source_url"].as_str().is_some_and(|u| u.ends_with(uuid)))
        .unwrap_or_else(|| panic!("no delivery for {uuid} in {list:#?}"))
}

#[tokio::test]
async fn two_deliveries_named_alike_never_share_a_folder_or_a_file() {
    let api = FakeSwissTransfer::start().await;
    // Same size, different bytes: a size check alone cannot tell them apart.
    let cases = [
        (
            "aaaaaaaa-0000-0000-0000-000000000001",
            "a-1",
            Some("Clips"),
            1,
        ),
        (
            "aaaaaaaa-0000-0000-0000-000000000002",
            "b-1",
            Some("Clips"),
            2,
        ),
        ("aaaaaaaa-0000-0000-0000-000000000003", "c-1", None, 3),
        ("aaaaaaaa-0000-0000-0000-000000000004", "d-1", None, 4),
    ];
    let mut bodies = HashMap::new();
    for (uuid, file, _, seed) in &cases {
        let body = content(150_000, 400 + seed);
        bodies.insert(*uuid, body.clone());
        // The two without a forced name share their transfer message.
        api.add(uuid, one_file("Rushes jour 3", file, body));
    }
    let root = temp_dir();
    let records = cases.iter().map(|(u, _, n, _)| record(u, *n)).collect();
    let (app, _feed) = app_for(&api, None, records, root.path()).await;
    let list = settled(&app, cases.len()).await;
    let mut folders = Vec::new();
    for (uuid, file, _, _) in &cases {
        let d = by_link(&list, uuid);
        assert_eq!(d["state"], "done", "{d:#}");
        let folder = d["final_path"].as_str().unwrap_or("").to_string();
        let saved = std::fs::read(Path::new(&folder).join("clip.mov")).unwrap_or_default();
        let own = sha256_hex(&bodies[uuid]);
        assert_eq!(sha256_hex(&saved), own, "{uuid}: another delivery's file");
        let sums =
            std::fs::read_to_string(Path::new(&folder).join("SHA256SUMS")).unwrap_or_default();
        assert_eq!(sums, format!("{own}  clip.mov\n"), "{uuid}");
        assert_eq!(d["sha256"], sha256_hex(sums.as_bytes()), "{uuid}");
        assert_eq!(
            api.asked_for(file),
            1,
            "{uuid}: its own file was not requested"
        );
        folders.push(folder);
    }
    let downloads = root.path().join("downloads");
    let shown = |n: &str| downloads.join(n).display().to_string();
    // Which of two alike gets the plain name depends on which worker came first.
    folders.sort();
    assert_eq!(
        folders,
        [
            shown("Clips"),
            shown("Clips (2)"),
            shown("Rushes jour 3"),
            shown("Rushes jour 3 (2)")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_file_of_the_right_size_left_in_the_folder_is_not_adopted() {
    let api = FakeSwissTransfer::start().await;
    let uuid = "bbbbbbbb-0000-0000-0000-000000000001";
    let body = content(120_000, 501);
    api.add(uuid, one_file("Jour 5", "e-1", body.clone()));
    let root = temp_dir();
    // A folder of that name already there, with a file of the same size: someone else's.
    let stray = root.path().join("downloads/Jour 5");
    std::fs::create_dir_all(&stray).expect("folder");
    let other = content(120_000, 502);
    std::fs::write(stray.join("clip.mov"), &other).expect("stray file");
    let (app, _feed) = app_for(&api, None, vec![record(uuid, None)], root.path()).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "done", "{:#}", list[0]);
    let folder = root.path().join("downloads/Jour 5 (2)");
    assert_eq!(list[0]["final_path"], folder.display().to_string());
    let saved = std::fs::read(folder.join("clip.mov")).unwrap_or_default();
    assert_eq!(sha256_hex(&saved), sha256_hex(&body));
    assert_eq!(api.asked_for("e-1"), 1);
    let untouched = std::fs::read(stray.join("clip.mov")).unwrap_or_default();
    assert_eq!(untouched, other, "the other folder's file was changed");
    assert!(
        !stray.join("SHA256SUMS").exists(),
        "SHA256SUMS written there"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_file_of_a_transfer_lands_under_its_own_name() {
    let api = FakeSwissTransfer::start().await;
    let uuid = "cccccccc-0000-0000-0000-000000000001";
    let ids = ["g-1", "g-2", "g-3", "g-4", "g-5"];
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| content(90_000, 600 + i)).collect();
    let names = ["clip.mov", "clip.mov", "clip.mov", "clip.mov", "SHA256SUMS"];
    let paths = ["", "", "sub", "sub/", ""];
    api.add(
        uuid,
        FakeTransfer {
            credit: 250,
            message: "Jour 6".into(),
            files: ids
                .iter()
                .zip(names)
                .zip(&bodies)
                .map(|((id, name), body)| (id.to_string(), name.to_string(), body.clone()))
                .collect(),
            paths: ids
                .iter()
                .zip(paths)
                .map(|(id, p)| (id.to_string(), p.to_string()))
                .collect(),
            ..Default::default()
        },
    );
    let root = temp_dir();
    let (app, _feed) = app_for(&api, None, vec![record(uuid, None)], root.path()).await;
    let list = settled(&app, 1).await;
    assert_eq!(list[0]["state"], "done", "{:#}", list[0]);
    let folder = root.path().join("downloads/Jour 6");
    let landed = [
        "clip.mov",
        "clip (2).mov",
        "sub/clip.mov",
        "sub/clip (2).mov",
        "SHA256SUMS (2)",
    ];
    let mut expected_sums = String::new();
    for (rel, body) in landed.iter().zip(&bodies) {
        let saved = std::fs::read(folder.join(rel)).unwrap_or_default();
        assert_eq!(sha256_hex(&saved), sha256_hex(body), "{rel}");
        expected_sums.push_str(&format!("{}  {rel}\n", sha256_hex(body)));
    }
    let sums = std::fs::read_to_string(folder.join("SHA256SUMS")).unwrap_or_default();
    assert_eq!(sums, expected_sums);
    assert_eq!(list[0]["sha256"], sha256_hex(sums.as_bytes()));
    for id in ids {
        assert_eq!(api.asked_for(id), 1, "{id}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_resolved_file_comes_only_from_the_providers_hosts() {
    // A service on this machine the answers point at: it must never be asked.
    let internal = FileServer::start().await;
    let secret = internal.add("internal/secret", b"internal-only".to_vec());
    let internal_url = url::Url::parse(&secret).expect("url");
    let internal_host = format!(
        "{}:{}",
        internal_url.host_str().unwrap_or(""),
        internal_url.port().unwrap_or(0)
    );
    let api = FakeSwissTransfer::start().await;
    let smash = FakeSmash::start().await;
    let elsewhere = "dddddddd-0000-0000-0000-000000000001";
    let redirected = "dddddddd-0000-0000-0000-000000000002";
    let fine = "dddddddd-0000-0000-0000-000000000003";
    api.add(
        elsewhere,
        FakeTransfer {
            download_host: Some(internal_host.clone()),
            ..one_file("Jour 7", "h-1", content(50_000, 701))
        },
    );
    api.add(
        redirected,
        FakeTransfer {
            redirect: Some(secret.clone()),
            ..one_file("Jour 8", "h-2", content(50_000, 702))
        },
    );
    api.add(fine, one_file("Jour 9", "h-3", content(50_000, 703)));
    smash.add(SmashTransfer {
        link_id: "Rush-20".into(),
        transfer_id: "tr-eu1-0020".into(),
        title: "Jour 20".into(),
        status: "Uploaded".into(),
        files: vec![("A020.mov".into(), content(50_000, 704))],
        download_base: Some(format!("http://{internal_host}")),
    });
    let smash_record = json!({
        "url": "https://fromsmash.com/Rush-20",
        "timestamp": "2026-01-08T20:19:38+00:00",
        "source": "fromsmash",
    });
    let root = temp_dir();
    let records = vec![
        record(elsewhere, None),
        record(redirected, None),
        record(fine, None),
        smash_record,
    ];
    let (app, _feed) = app_for(&api, Some(&smash), records, root.path()).await;
    let list = settled(&app, 4).await;
    assert_eq!(
        internal.requests(),
        0,
        "rushes fetched a host the provider does not own"
    );
    let d = by_link(&list, elsewhere);
    assert_eq!(d["state"], "failed", "{d:#}");
    let error = d["error"].as_str().unwrap_or("");
    assert!(
        error.contains("not one of the provider's own hosts"),
        "{error}"
    );
    let d = by_link(&list, redirected);
    assert_eq!(d["state"], "failed", "{d:#}");
    let error = d["error"].as_str().unwrap_or("");
    assert!(error.contains("redirect"), "{error}");
    assert_eq!(
        by_link(&list, fine)["state"],
        "done",
        "the API base's own host"
    );
    let d = by_link(&list, "Rush-20");
    assert_eq!(d["state"], "manual", "{d:#}");
    let error = d["error"].as_str().unwrap_or("");
    assert!(
        error.contains("not one of the provider's own hosts"),
        "{error}"
    );
    let saved: Vec<_> = walk(&root.path().join("downloads"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == b"internal-only"))
        .collect();
    assert!(saved.is_empty(), "the internal answer was saved: {saved:?}");
    app.stop().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
