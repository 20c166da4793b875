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
