//! Never two copies on Frame.io when `local_upload` fails ambiguously: the fake makes the file,
//! then loses its answer (a 500, an answer that never comes, a connection cut mid-answer), or
//! the command is killed while the create hangs. Whatever the path (the uploader's own retry,
//! the next run of the command, the watch folder's retry), exactly one file is left and the
//! upload completes.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::support::fake_frameio::FakeFrameio;
use crate::support::fake_frameio_children::CreateFault;
use crate::support::service::{bin, temp_dir};
use crate::support::{db, wait_for};
use crate::uploads::{upload_env, write_file};

const WAIT: Duration = Duration::from_secs(90);

fn command(fake: &FakeFrameio, root: &Path, path: &Path) -> tokio::process::Command {
    let mut cmd = bin();
    cmd.current_dir(root)
        .args(["frameio", "upload"])
        .arg(path)
        .envs(upload_env(fake, root))
        // A create that gets no answer is given up after 2 s (the `Hang` fault).
        .env("FRAMEIO_TIMEOUT", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    cmd
}

async fn run(fake: &FakeFrameio, root: &Path, path: &Path) -> (ExitStatus, String, String) {
    let out = tokio::time::timeout(WAIT, command(fake, root, path).output())
        .await
        .expect("upload finished in time")
        .expect("run rushes");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exactly one live file named `name`, complete with `bytes`, and it is the send's file.
async fn assert_one_file(fake: &FakeFrameio, root: &Path, name: &str, bytes: &[u8]) -> String {
    let live = fake.live_files_named(name);
    assert_eq!(live.len(), 1, "never two copies: {live:?}");
    assert_eq!(fake.uploaded_bytes(&live[0]).as_deref(), Some(bytes));
    let store = db::open_store(&root.join("data/rushes.db")).await;
    let send = store
        .send_by_file(&live[0])
        .await
        .expect("store")
        .expect("the send owns the file left");
    assert_eq!(send.state, "complete");
    assert_eq!(send.create_started_at, None, "no create left in flight");
    live[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_cut_or_never_comes_leaves_one_file() {
    let fake = FakeFrameio::start().await;
    fake.fail_next_creates(&[CreateFault::Reset, CreateFault::Hang]);
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Promo.mov", 1_500_000, 3);
    let (status, out, err) = run(&fake, root.path(), &path).await;
    assert!(status.success(), "exit {status:?}\n{out}\n{err}");
    let made = fake.uploads(|u| u.created.clone());
    assert_eq!(made.len(), 3, "two creates lost their answer: {made:?}");
    let kept = assert_one_file(&fake, root.path(), "Promo.mov", &bytes).await;
    assert_eq!(kept, made[2]);
    assert!(out.contains(&kept), "{out}");
    // The two files made without an answer were found in the folder and deleted.
    assert_eq!(fake.uploads(|u| u.deleted.clone()), made[..2].to_vec());
    assert!(fake.count("GET", "/folders/folder-cuts/children") >= 2);
    // The client did not send a create again on its own: three creates, three files.
    assert_eq!(fake.count("POST", "/files/local_upload"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_500_after_making_the_file_leaves_one_file() {
    let fake = FakeFrameio::start().await;
    fake.fail_next_creates(&[CreateFault::ServerError]);
    let root = temp_dir();
    let (path, bytes) = write_file(root.path(), "Cut.mov", 300_000, 5);
    let (status, out, err) = run(&fake, root.path(), &path).await;
    assert!(status.success(), "exit {status:?}\n{out}\n{err}");
    let made = fake.uploads(|u| u.created.clone());
    assert_eq!(made.len(), 2, "{made:?}");
    assert_one_file(&fake, root.path(), "Cut.mov", &bytes).await;
    assert_eq!(fake.uploads(|u| u.deleted.clone()), vec![made[0].clone()]);
    assert_eq!(fake.count("POST", "/files/local_upload"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_its_create_hangs_is_finished_by_the_next_with_one_file() {
    let fake = FakeFrameio::start().await;
    let root = temp_dir();
    // Another file of the folder with the same name and size, owned by an earlier send of
    // another path: never taken for a leftover.
    let other_dir = root.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let (other, _) = write_file(&other_dir, "Spot.mov", 200_000, 9);
    let (status, out, err) = run(&fake, root.path(), &other).await;
    assert!(status.success(), "{out}\n{err}");
    let theirs = fake.uploads(|u| u.created[0].clone());
    fake.fail_next_creates(&[CreateFault::Hang]);
    let (path, bytes) = write_file(root.path(), "Spot.mov", 200_000, 7);
    let mut child = command(&fake, root.path(), &path)
        .spawn()
        .expect("spawn upload");
    wait_for("the create to hang", WAIT, || async {
        (fake.uploads(|u| u.created.len()) == 2).then_some(())
    })
    .await;
    child.start_kill().expect("kill -9");
    child.wait().await.expect("wait");
    let (status, out, err) = run(&fake, root.path(), &path).await;
    assert!(status.success(), "{out}\n{err}");
    assert!(
        err.contains("an earlier create got no answer"),
        "the next run looked for the file: {err}"
    );
    let made = fake.uploads(|u| u.created.clone());
    assert_eq!(made.len(), 3, "{made:?}");
    assert_eq!(fake.uploads(|u| u.deleted.clone()), vec![made[1].clone()]);
    let mut live = fake.live_files_named("Spot.mov");
    live.sort();
    let mut expected = vec![theirs, made[2].clone()];
    expected.sort();
    assert_eq!(live, expected, "the other send's file is kept");
    assert_eq!(fake.uploaded_bytes(&made[2]), Some(bytes));
}
