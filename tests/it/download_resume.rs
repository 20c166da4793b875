//! `rushes download URL --out DIR`, interrupted with Ctrl-C (SIGINT), then the same command again
//! (issue 26, item 2): it resumes the `.part` the first run left, found by URL and output folder
//! without `--name`; the interrupted message says how to go on; `--name` still wins.

use std::path::Path;
use std::time::Duration;

use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::{bin, temp_dir};
use crate::support::wait_for;

const WAIT: Duration = Duration::from_secs(30);

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Starts `rushes download <url> --out <dir> [extra]`, waits until its part holds a third of
/// the file, sends SIGINT; returns (exit code, stderr, bytes kept).
async fn interrupted(
    url: &str,
    out: &Path,
    part: &Path,
    extra: &[&str],
) -> (Option<i32>, String, u64) {
    let child = tokio::process::Command::from({
        let mut cmd = bin();
        cmd.args(["download", url])
            .args(extra)
            .arg("--out")
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    })
    .spawn()
    .expect("spawn rushes download");
    wait_for("a third of the file", WAIT, || async {
        let len = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        (len > 1_000_000).then_some(())
    })
    .await;
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        .expect("a running child");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("ends after Ctrl-C")
        .expect("reaped");
    let kept = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        kept,
    )
}

async fn run(url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(["download", url])
        .args(extra)
        .arg("--out")
        .arg(out);
    tokio::time::timeout(WAIT, tokio::process::Command::from(cmd).output())
        .await
        .expect("finishes")
        .expect("runs")
}

/// The byte the last request resumed from (`Range: bytes=N-`), if it was a resumed request.
fn resumed_from(files: &FileServer, path: &str) -> Option<u64> {
    let seen = files.seen(path);
    let last = seen.last()?;
    (last.status == 206 && last.if_range.is_some())
        .then_some(())
        .and(last.range.as_deref())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
}

#[tokio::test]
async fn the_same_download_command_resumes_after_ctrl_c() {
    let files = FileServer::start().await;
    let body = content(3_000_000, 27);
    let url = files.add("slow/big.bin", body.clone());
    files.throttle("slow/big.bin", 1_000_000);
    let out = temp_dir();
    let part = out.path().join("big.bin.part");
    let (code, stderr, kept) = interrupted(&url, out.path(), &part, &[]).await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command again") && stderr.contains("to resume"),
        "the interrupted message does not say how to go on: {stderr}"
    );
    assert!(kept > 0 && kept < body.len() as u64, "kept {kept} bytes");

    let output = run(&url, out.path(), &[]).await;
    assert!(output.status.success(), "{output:?}");
    let saved = std::fs::read(out.path().join("big.bin")).unwrap_or_default();
    assert_eq!(sha256_hex(&saved), sha256_hex(&body));
    assert_eq!(
        names(out.path()),
        vec!["big.bin".to_string()],
        "a second copy or a sidecar left"
    );
    let from = resumed_from(&files, "slow/big.bin");
    assert!(
        from.is_some_and(|f| f > 0 && f >= kept.saturating_sub(1 << 20)),
        "not resumed (from {from:?}, kept {kept}): {:?}",
        files.seen("slow/big.bin")
    );
}

#[tokio::test]
async fn another_url_into_the_same_folder_does_not_take_the_part_and_name_still_wins() {
    let files = FileServer::start().await;
    let body = content(3_000_000, 28);
    let url = files.add("a/clip.bin", body.clone());
    files.throttle("a/clip.bin", 1_000_000);
    let other_body = content(200_000, 29);
    let other = files.add("b/clip.bin", other_body.clone());
    let out = temp_dir();
    let part = out.path().join("clip.bin.part");
    let (code, _, kept) = interrupted(&url, out.path(), &part, &[]).await;
    assert_eq!(code, Some(130));
    assert!(kept > 0);
    // Another URL whose file has the same name: a fresh download beside it, the part untouched.
    let output = run(&other, out.path(), &[]).await;
    assert!(output.status.success(), "{output:?}");
    let saved = std::fs::read(out.path().join("clip (1).bin")).unwrap_or_default();
    assert_eq!(sha256_hex(&saved), sha256_hex(&other_body));
    assert_eq!(std::fs::metadata(&part).map(|m| m.len()).ok(), Some(kept));
    // `--name` names the part to resume: here the first URL's, under the name it had.
    let output = run(&url, out.path(), &["--name", "clip.bin"]).await;
    assert!(output.status.success(), "{output:?}");
    let saved = std::fs::read(out.path().join("clip.bin")).unwrap_or_default();
    assert_eq!(sha256_hex(&saved), sha256_hex(&body));
    assert!(resumed_from(&files, "a/clip.bin").is_some_and(|f| f > 0));
}
