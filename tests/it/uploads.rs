//! `rushes frameio upload` against the fake Frame.io: local_upload, parts PUT to presigned URLs
//! checked like S3 checks them, completion by status, resume without duplicates, expired URLs,
//! version stacks; the upload tracked (`uploading` with bytes sent) from the start.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::support::fake_frameio::{ACCOUNT, FakeFrameio, STATIC_TOKEN};
use crate::support::service::{TestApp, bin, config_for, temp_dir};
use crate::support::{db, wait_for};
use rushes::config::FrameioConfig;

const WAIT: Duration = Duration::from_secs(60);
const FOLDER: &str = "folder-cuts";

/// Bytes that differ from one position to the next (a misplaced part shows).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (((i as u64 * 2_654_435_761) >> 13) as u8).wrapping_add(seed))
        .collect()
}

pub fn write_file(dir: &Path, name: &str, len: usize, seed: u8) -> (PathBuf, Vec<u8>) {
    let bytes = pattern(len, seed);
    let path = dir.join(name);
    // Written under a hidden name, then renamed, as export tools do: a watch folder never sees
    // a half-written file (with `FRAMEIO_UPLOAD_SETTLE=0` it would send it at once).
    let staging = dir.join(format!(".{name}.writing"));
    std::fs::write(&staging, &bytes).expect("write file");
    std::fs::rename(&staging, &path).expect("rename file");
    (path, bytes)
}

pub fn upload_env(fake: &FakeFrameio, root: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "RUSHES_DATA_DIR".to_string(),
            root.join("data").display().to_string(),
        ),
        (
            "RUSHES_LOG_DIR".into(),
            root.join("logs").display().to_string(),
        ),
        ("FRAMEIO_API_BASE".into(), fake.base()),
        ("FRAMEIO_TOKEN".into(), STATIC_TOKEN.into()),
        ("FRAMEIO_ACCOUNT_ID".into(), ACCOUNT.into()),
        ("FRAMEIO_UPLOAD_FOLDER_ID".into(), FOLDER.into()),
        ("RUSHES_LEASE".into(), "5".into()),
    ];
    env.extend(db::env_for(&root.join("data")));
    env
}

fn upload_cmd(fake: &FakeFrameio, root: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = bin();
    cmd.current_dir(root)
        .arg("frameio")
        .arg("upload")
        .args(args)
        .envs(upload_env(fake, root))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    // A test that fails does not leave the command running.
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `rushes frameio upload ARGS` to its end: (status, stdout, stderr).
pub async fn run_upload(
    fake: &FakeFrameio,
    root: &Path,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let out = tokio::time::timeout(WAIT, upload_cmd(fake, root, args).output())
        .await
        .expect("upload finished in time")
        .expect("run rushes");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn store(root: &Path) -> rushes::store::Store {
    db::open_store(&root.join("data/rushes.db")).await
}

fn last_created(fake: &FakeFrameio) -> String {
    fake.uploads(|u| u.created.last().cloned())
        .expect("a file was made")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sends_every_part_once_and_tracks_the_file() {
    let fake = FakeFrameio::start().await;
    fake.uploads(|u| {
        u.parts_per_file = 3;
        u.fail_next_puts = 2; // two 500s: the parts are retried
    });
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Promo.mov", 2_500_003, 1);
    let (status, out, err) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert!(status.success(), "exit {status:?}\n{out}\n{err}");
    let file = last_created(&fake);
    assert!(out.contains(&file), "{out}");
    assert!(
        out.contains(&format!("https://next.frame.io/project/proj-1/view/{file}")),
        "{out}"
    );
    assert_eq!(fake.uploads(|u| u.refusals.clone()), Vec::<String>::new());
    assert_eq!(
        fake.uploaded_bytes(&file).as_deref(),
        Some(bytes.as_slice())
    );
    assert_eq!(fake.folder_of(&file).as_deref(), Some(FOLDER));
    assert!(
        fake.count("GET", &format!("/files/{file}/status")) >= 1,
        "completion asked by status"
    );
    // Tracked from the start, now past `uploading`.
    let store = store(root.path()).await;
    let send = store
        .send_by_file(&file)
        .await
        .expect("store")
        .expect("send row");
    assert_eq!(
        (send.state.as_str(), send.bytes_sent),
        ("complete", bytes.len() as i64)
    );
    let upload = store
        .upload(&send.id)
        .await
        .expect("store")
        .expect("tracked");
    assert_eq!(upload.file_id, file);
    assert_eq!(upload.state.as_str(), "processing");
    let history = store.upload_transitions(&send.id).await.expect("history");
    assert_eq!(history[0].to_state.as_str(), "uploading");
    store.close().await;

    // Once only: the same file again sends nothing.
    let (status, out, _) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert!(status.success());
    assert!(out.contains("already uploaded"), "{out}");
    assert_eq!(fake.uploads(|u| u.created.len()), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_parts_at_once_while_progress_is_written() {
    // Parts recorded in the store while the progress is written each second (they once waited
    // for each other: the upload hung).
    let fake = FakeFrameio::start().await;
    fake.uploads(|u| u.parts_per_file = 160);
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Long.mov", 16_000_000, 6);
    let (status, out, err) = run_upload(
        &fake,
        root.path(),
        &[path.to_str().expect("path"), "--parallel", "8"],
    )
    .await;
    assert!(status.success(), "{out}\n{err}");
    let file = last_created(&fake);
    assert_eq!(fake.uploaded_bytes(&file), Some(bytes));
    assert!(fake.puts_per_part(&file).iter().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_media_type_goes_as_octet_stream() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "notes.bin", 10, 2);
    let (status, out, err) = run_upload(
        &fake,
        root.path(),
        &[
            path.to_str().expect("path"),
            "--folder",
            "other-folder",
            "--parallel",
            "1",
        ],
    )
    .await;
    assert!(status.success(), "{out}\n{err}");
    let file = last_created(&fake);
    assert_eq!(fake.uploads(|u| u.refusals.clone()), Vec::<String>::new());
    assert_eq!(fake.uploaded_bytes(&file), Some(bytes));
    assert_eq!(fake.folder_of(&file).as_deref(), Some("other-folder"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_without_sending_accepted_parts_again() {
    let fake = FakeFrameio::start().await;
    fake.uploads(|u| u.parts_per_file = 4);
    fake.hold_part(2);
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Cut.mp4", 4_000_000, 3);
    // The service shows the upload while the command sends it.
    let mut config = config_for(root.path(), &feed(root.path()));
    config.service.data_dir = root.path().join("data");
    config.frameio = FrameioConfig::from_lookup(|_| None).expect("config");
    db::apply(&mut config);
    let app = TestApp::spawn(config).await;
    let mut child = upload_cmd(
        &fake,
        root.path(),
        &[path.to_str().expect("path"), "--parallel", "1"],
    )
    .spawn()
    .expect("spawn upload");
    let file = wait_for("parts 1 and 2 accepted", WAIT, || async {
        let file = fake.uploads(|u| u.created.last().cloned())?;
        (fake.puts_per_part(&file) == vec![1, 1, 0, 0]).then_some(file)
    })
    .await;
    let upload = wait_for("uploading with bytes sent in GET /api/uploads", WAIT, || async {
        let (_, body) = app.get("/api/uploads").await;
        body["uploads"].as_array()?.iter().find(|u| {
            u["file_id"] == file.as_str()
                && u["state"] == "uploading"
                // Two parts accepted, the third on its way (its bytes left, no answer yet).
                && u["transfer"]["bytes_sent"].as_i64().is_some_and(|b| (2_000_000..4_000_000).contains(&b))
        }).cloned()
    })
    .await;
    assert_eq!(upload["transfer"]["file_size"], 4_000_000);
    // Ctrl-C.
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exit")
        .expect("wait");
    assert_eq!(status.code(), Some(130));
    fake.release_parts();
    let (status, out, err) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert!(status.success(), "{out}\n{err}");
    assert!(err.contains("resuming"), "{err}");
    let puts = fake.puts_per_part(&file);
    assert_eq!(
        (puts[0], puts[1], puts[3]),
        (1, 1, 1),
        "accepted parts are not sent again: {puts:?}"
    );
    assert_eq!(
        fake.live_upload_files(),
        vec![file.clone()],
        "never two copies"
    );
    assert_eq!(fake.uploaded_bytes(&file), Some(bytes));
    let (_, body) = app
        .get(&format!(
            "/api/uploads/{}",
            upload["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(body["state"], "processing", "{body}");
    assert_eq!(body["transfer"]["state"], "complete");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_urls_make_the_file_again_and_delete_the_half_made_one() {
    let fake = FakeFrameio::start().await;
    fake.uploads(|u| u.parts_per_file = 3);
    fake.hold_part(1);
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Teaser.mov", 3_000_000, 4);
    let mut child = upload_cmd(
        &fake,
        root.path(),
        &[path.to_str().expect("path"), "--parallel", "1"],
    )
    .spawn()
    .expect("spawn upload");
    let first = wait_for("part 1 accepted", WAIT, || async {
        let file = fake.uploads(|u| u.created.last().cloned())?;
        (fake.puts_per_part(&file) == vec![1, 0, 0]).then_some(file)
    })
    .await;
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exit")
        .expect("wait");
    // The storage now refuses the first file's URLs (they expired).
    fake.uploads(|u| {
        if let Some(f) = u.files.get_mut(&first) {
            f.expired = true;
        }
    });
    fake.release_parts();
    let (status, out, err) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert!(status.success(), "{out}\n{err}");
    let second = last_created(&fake);
    assert_ne!(first, second);
    assert_eq!(fake.uploads(|u| u.deleted.clone()), vec![first.clone()]);
    assert_eq!(
        fake.live_upload_files(),
        vec![second.clone()],
        "never two copies"
    );
    assert_eq!(fake.uploaded_bytes(&second), Some(bytes));
    let store = store(root.path()).await;
    let send = store
        .send_by_file(&second)
        .await
        .expect("store")
        .expect("send");
    let upload = store
        .upload(&send.id)
        .await
        .expect("store")
        .expect("tracked");
    assert_eq!(
        upload.file_id, second,
        "the tracked upload follows the new file"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_past_their_expiry_are_not_tried() {
    let fake = FakeFrameio::start().await;
    fake.uploads(|u| {
        u.parts_per_file = 2;
        u.expired_urls = true;
    });
    let root = temp_dir();
    let (path, _) = write_file(root.path(), "Old.mov", 1000, 5);
    // Every file made has URLs signed three hours ago: each run makes the file again, then fails.
    let (status, _, err) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert_eq!(status.code(), Some(1), "{err}");
    let made = fake.uploads(|u| u.created.clone());
    assert_eq!(made.len(), 2, "made again once: {made:?}");
    assert_eq!(
        fake.live_upload_files().len(),
        1,
        "the half-made file was deleted"
    );
    // A new run sees the URLs' own expiry and does not PUT to them.
    let puts_before = fake.uploads(|u| u.puts.len());
    fake.uploads(|u| u.expired_urls = false);
    let (status, out, err) = run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
    assert!(status.success(), "{out}\n{err}");
    let last = last_created(&fake);
    assert_eq!(fake.live_upload_files(), vec![last.clone()]);
    assert_eq!(
        fake.uploads(|u| u.puts.len()) - puts_before,
        2,
        "only the new file's parts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_go_into_one_version_stack() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let mut files = Vec::new();
    for (i, name) in ["Promo.mov", "Promo v2.mov", "promo_V3.mov"]
        .iter()
        .enumerate()
    {
        let (path, _) = write_file(root.path(), name, 2000 + i, i as u8);
        let (status, out, err) =
            run_upload(&fake, root.path(), &[path.to_str().expect("path")]).await;
        assert!(status.success(), "{out}\n{err}");
        files.push(last_created(&fake));
        if i == 1 {
            assert!(out.contains("version stack vs-1 made"), "{out}");
        }
    }
    let stacks = fake.uploads(|u| u.stacks.clone());
    assert_eq!(
        stacks,
        vec![(
            "vs-1".to_string(),
            FOLDER.to_string(),
            vec![files[0].clone(), files[1].clone()]
        )]
    );
    assert_eq!(
        fake.uploads(|u| u.moves.clone()),
        vec![(files[2].clone(), "vs-1".to_string())]
    );
    // --version-of: a file uploaded by hand becomes the older version.
    fake.add_file("hand-made");
    let (path, _) = write_file(root.path(), "Other.mov", 500, 9);
    let (status, out, err) = run_upload(
        &fake,
        root.path(),
        &[path.to_str().expect("path"), "--version-of", "hand-made"],
    )
    .await;
    assert!(status.success(), "{out}\n{err}");
    let other = last_created(&fake);
    let stacks = fake.uploads(|u| u.stacks.clone());
    assert_eq!(stacks.len(), 2);
    assert_eq!(stacks[1].2, vec!["hand-made".to_string(), other]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_folder_is_a_configuration_mistake() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    let (path, _) = write_file(root.path(), "x.mov", 10, 0);
    let mut cmd = upload_cmd(&fake, root.path(), &[path.to_str().expect("path")]);
    cmd.env_remove("FRAMEIO_UPLOAD_FOLDER_ID");
    let out = cmd.output().await.expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FRAMEIO_UPLOAD_FOLDER_ID"));
    assert_eq!(fake.uploads(|u| u.created.len()), 0);
}

fn feed(dir: &Path) -> String {
    let path = dir.join("feed.json");
    std::fs::write(&path, "[]").expect("write feed");
    path.display().to_string()
}
