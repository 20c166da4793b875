//! SwissTransfer links fetched by themselves (issue 15), with `rushes download` against the fake
//! SwissTransfer API (`SWISSTRANSFER_API_BASE`): files into a folder named after the transfer,
//! password through `Authorization` + download tokens, and every error state named.

use crate::support::fake_swisstransfer::{FakeSwissTransfer, FakeTransfer, TransferState};
use crate::support::file_server::{content, sha256_hex};
use crate::support::service::{bin, temp_dir};

const LINK: &str = "https://www.swisstransfer.com/d/";

fn transfer(state: TransferState, password: Option<&str>, credit: i64) -> FakeTransfer {
    FakeTransfer {
        state,
        password: password.map(str::to_string),
        credit,
        message: "Rushes jour 3".into(),
        files: vec![
            ("f-1".into(), "A001_C002.mov".into(), content(300_000, 61)),
            ("f-2".into(), "son/A001.wav".into(), content(200_000, 62)),
        ],
        ..Default::default()
    }
}

/// Runs `rushes download <link>` against the fake; (exit code, stdout, stderr).
async fn run(
    api: &FakeSwissTransfer,
    uuid: &str,
    out: &std::path::Path,
    password: Option<&str>,
) -> (Option<i32>, String, String) {
    let mut cmd = bin();
    cmd.args(["download", &format!("{LINK}{uuid}")])
        .arg("--out")
        .arg(out)
        .env("SWISSTRANSFER_API_BASE", api.api_base());
    if let Some(p) = password {
        cmd.env("SWISSTRANSFER_PASSWORD", p);
    }
    let output = tokio::process::Command::from(cmd)
        .output()
        .await
        .expect("rushes download");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_transfer_is_downloaded_into_a_folder_named_after_it() {
    let api = FakeSwissTransfer::start().await;
    let t = transfer(TransferState::Ready, None, 250);
    let files = t.files.clone();
    api.add("11111111-aaaa-bbbb-cccc-000000000001", t);
    let out = temp_dir();
    let (code, stdout, stderr) = run(
        &api,
        "11111111-aaaa-bbbb-cccc-000000000001",
        out.path(),
        None,
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("download credits"), "{stderr}");
    let folder = out.path().join("Rushes jour 3");
    for (_, name, body) in &files {
        let name = name.replace('/', "_");
        let saved = std::fs::read(folder.join(&name)).unwrap_or_default();
        assert_eq!(sha256_hex(&saved), sha256_hex(body), "{name}: {stderr}");
        assert!(stdout.contains(&sha256_hex(body)), "{stdout}");
    }
    assert_eq!(api.downloads(), 2);
}

#[tokio::test]
async fn a_password_protected_transfer_needs_the_right_password() {
    let api = FakeSwissTransfer::start().await;
    let uuid = "11111111-aaaa-bbbb-cccc-000000000002";
    api.add(uuid, transfer(TransferState::Ready, Some("s3sam€"), 250));
    let out = temp_dir();
    let (code, _, stderr) = run(&api, uuid, out.path(), None).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("password-protected"), "{stderr}");
    let (code, _, stderr) = run(&api, uuid, out.path(), Some("nope")).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("password given for this transfer is wrong"),
        "{stderr}"
    );
    assert_eq!(api.downloads(), 0);
    let (code, _, stderr) = run(&api, uuid, out.path(), Some("s3sam€")).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(api.tokens_asked(), 2, "one token per file");
    assert_eq!(api.downloads(), 2);
    assert!(
        !stderr.contains("s3sam"),
        "the password was printed: {stderr}"
    );
}

#[tokio::test]
async fn every_error_state_has_its_own_message_and_spends_nothing() {
    let api = FakeSwissTransfer::start().await;
    let cases = [
        (
            "22222222-aaaa-bbbb-cccc-000000000001",
            transfer(TransferState::Expired, None, 5),
            "expired or was deleted",
            false,
        ),
        (
            "22222222-aaaa-bbbb-cccc-000000000002",
            transfer(TransferState::VirusCheck, None, 5),
            "checking the transfer for viruses",
            true,
        ),
        (
            "22222222-aaaa-bbbb-cccc-000000000003",
            transfer(TransferState::Ready, None, 0),
            "no download credit left",
            false,
        ),
        (
            "22222222-aaaa-bbbb-cccc-000000000004",
            transfer(TransferState::Ready, None, 1),
            "does not spend the last one",
            false,
        ),
    ];
    for (uuid, t, _, _) in &cases {
        api.add(uuid, t.clone());
    }
    let out = temp_dir();
    for (uuid, _, expected, later) in &cases {
        let (code, _, stderr) = run(&api, uuid, out.path(), None).await;
        assert_eq!(code, Some(1), "{uuid}: {stderr}");
        assert!(stderr.contains(expected), "{uuid}: {stderr}");
        assert_eq!(stderr.contains("retry later"), *later, "{uuid}: {stderr}");
    }
    let (code, _, stderr) = run(
        &api,
        "33333333-aaaa-bbbb-cccc-000000000009",
        out.path(),
        None,
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("expired or was deleted"),
        "unknown link: {stderr}"
    );
    assert_eq!(api.downloads(), 0, "a download credit was spent");
}

mod service {
    use std::time::Duration;

    use super::*;
    use crate::support::feed_server::FeedServer;
    use crate::support::file_server::FileServer;
    use crate::support::service::{TestApp, config_for};
    use crate::support::wait_for;
    use serde_json::{Value, json};

    const WAIT: Duration = Duration::from_secs(20);

    fn st_record(uuid: &str, name: Option<&str>) -> Value {
        let mut r = json!({
            "source_url": format!("{LINK}{uuid}"),
            "provider": "swisstransfer",
            "created_at": "2026-01-08T20:19:38+00:00",
        });
        if let Some(n) = name {
            r["original_filename"] = json!(n);
        }
        r
    }

    async fn app_for(
        api: &FakeSwissTransfer,
        records: Vec<Value>,
        root: &std::path::Path,
        auto: bool,
    ) -> (TestApp, FeedServer) {
        let feed = FeedServer::start(&Value::Array(records).to_string()).await;
        let mut config = config_for(root, &feed.url());
        config.feed.monitor_interval = Duration::from_secs(3600);
        config.download.resolvers.swisstransfer = auto;
        config.download.resolvers.swisstransfer_api =
            url::Url::parse(&api.api_base()).expect("api base");
        (TestApp::spawn(config).await, feed)
    }

    async fn settled(app: &TestApp, n: usize) -> Vec<Value> {
        wait_for("deliveries settled", WAIT, || async {
            let (_, body) = app.get("/api/deliveries?limit=100").await;
            let list = body["deliveries"].as_array().cloned().unwrap_or_default();
            (list.len() == n
                && list
                    .iter()
                    .all(|d| ["done", "failed"].contains(&d["state"].as_str().unwrap_or(""))))
            .then_some(list)
        })
        .await
    }

    #[tokio::test]
    async fn the_service_fetches_a_swisstransfer_delivery_into_its_folder() {
        let api = FakeSwissTransfer::start().await;
        let t = transfer(TransferState::Ready, None, 250);
        let files = t.files.clone();
        api.add("44444444-aaaa-bbbb-cccc-000000000001", t);
        api.add(
            "44444444-aaaa-bbbb-cccc-000000000002",
            transfer(TransferState::Expired, None, 250),
        );
        let root = temp_dir();
        let (app, _feed) = app_for(
            &api,
            vec![
                st_record("44444444-aaaa-bbbb-cccc-000000000001", Some("Jour 3")),
                st_record("44444444-aaaa-bbbb-cccc-000000000002", Some("Jour 4")),
            ],
            root.path(),
            true,
        )
        .await;
        let list = settled(&app, 2).await;
        let done = list
            .iter()
            .find(|d| d["state"] == "done")
            .expect("one done");
        let folder = root.path().join("downloads/Jour 3");
        assert_eq!(done["final_path"], folder.display().to_string());
        let sums = std::fs::read_to_string(folder.join("SHA256SUMS")).unwrap_or_default();
        for (_, name, body) in &files {
            let name = name.replace('/', "_");
            let saved = std::fs::read(folder.join(&name)).unwrap_or_default();
            assert_eq!(sha256_hex(&saved), sha256_hex(body), "{name}");
            assert!(
                sums.contains(&format!("{}  {name}", sha256_hex(body))),
                "{sums}"
            );
        }
        assert_eq!(done["sha256"], sha256_hex(sums.as_bytes()));
        let failed = list
            .iter()
            .find(|d| d["state"] == "failed")
            .expect("one failed");
        let error = failed["error"].as_str().unwrap_or("");
        assert!(error.contains("expired or was deleted"), "{error}");
        app.stop().await;
    }

    #[tokio::test]
    async fn swisstransfer_auto_off_keeps_them_manual() {
        let api = FakeSwissTransfer::start().await;
        api.add(
            "55555555-aaaa-bbbb-cccc-000000000001",
            transfer(TransferState::Ready, None, 250),
        );
        let files = FileServer::start().await;
        let url = files.add("plain/file.mov", content(10_000, 63));
        let plain = json!({
            "source_url": url,
            "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": "file.mov",
        });
        let root = temp_dir();
        let (app, _feed) = app_for(
            &api,
            vec![
                st_record("55555555-aaaa-bbbb-cccc-000000000001", Some("Jour 5")),
                plain,
            ],
            root.path(),
            false,
        )
        .await;
        // The automatic delivery is done: the engine has looked at the queue since.
        wait_for("the plain delivery done", WAIT, || async {
            let (_, body) = app.get("/api/deliveries?limit=100").await;
            let list = body["deliveries"].as_array().cloned().unwrap_or_default();
            list.iter().any(|d| d["state"] == "done").then_some(())
        })
        .await;
        let (_, body) = app.get("/api/deliveries?limit=100").await;
        let list = body["deliveries"].as_array().cloned().unwrap_or_default();
        let st = list
            .iter()
            .find(|d| d["kind"] == "swisstransfer")
            .unwrap_or_else(|| panic!("no SwissTransfer delivery in {list:#?}"));
        assert_eq!(st["state"], "manual", "{st:#}");
        assert_eq!(api.downloads(), 0);
        app.stop().await;
    }
}
