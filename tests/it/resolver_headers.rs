//! Headers a link resolver gives for a file are sent on every request of that file: the first
//! GET, the resumed one after a dropped connection, and every ranged request of a segmented
//! download (issue 15).

use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderMap;
use rushes::net::RetryPolicy;
use rushes::test_api::{
    self as transfer, Job, JobUrl, Observer, Progress, RemoteFile, SafeFileName, Segment,
    Segmenting, UrlRole,
};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::support::file_server::{FileServer, content, sha256_hex};
use crate::support::service::temp_dir;

const MIB: u64 = 1 << 20;

/// Records nothing: the test looks at what the server saw.
struct Quiet;

impl Observer for Quiet {
    async fn part_chosen(
        &mut self,
        _: &Path,
        _: &SafeFileName,
        _: Option<&str>,
        _: Option<u64>,
    ) -> Result<(), String> {
        Ok(())
    }
    async fn attempt(
        &mut self,
        _: UrlRole,
        _: &str,
        _: u32,
        _: Option<&str>,
    ) -> Result<(), String> {
        Ok(())
    }
    async fn progress(&mut self, _: Progress) {}
    async fn before_rename(&mut self, _: &Path, _: &str, _: u64) -> Result<(), String> {
        Ok(())
    }
    async fn segments(&mut self, _: &[Segment]) -> Result<(), String> {
        Ok(())
    }
}

fn file_headers(url: &str) -> HeaderMap {
    let file = RemoteFile {
        id: "file-1".into(),
        url: Url::parse(url).expect("url"),
        name: "x".into(),
        size: None,
        path: None,
        headers: vec![
            ("X-Transfer-Token".into(), "tok-123".into()),
            ("Referer".into(), "https://example.test/t/abc".into()),
        ],
    };
    file.header_map().expect("headers")
}

fn job(url: &str, dir: &Path, segments: usize) -> Job {
    let parsed = Url::parse(url).expect("url");
    Job {
        urls: vec![JobUrl {
            role: UrlRole::Source,
            url: parsed.clone(),
            headers: file_headers(url),
        }],
        forced_name: Some("clip.mov".into()),
        name_link: parsed,
        fallback_name: "file".into(),
        dir: dir.to_path_buf(),
        resume: None,
        inline_writes: false,
        segments: Segmenting {
            count: segments,
            min_size: MIB,
            resume: Vec::new(),
        },
    }
}

fn assert_every_request_has_them(files: &FileServer, path: &str) -> usize {
    let seen = files.seen(path);
    assert!(!seen.is_empty());
    for s in &seen {
        let has = |name: &str, value: &str| s.headers.iter().any(|(n, v)| n == name && v == value);
        assert!(
            has("x-transfer-token", "tok-123") && has("referer", "https://example.test/t/abc"),
            "a request without the resolver's headers: {s:?}"
        );
    }
    seen.len()
}

#[tokio::test]
async fn a_resumed_request_carries_the_resolvers_headers() {
    let files = FileServer::start().await;
    let body = content(3 * MIB as usize, 71);
    let url = files.add("h/one.mov", body.clone());
    files.drop_after("h/one.mov", MIB, 1);
    let dir = temp_dir();
    let client = transfer::client(Duration::from_secs(10)).expect("client");
    let retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    let done = transfer::download(
        &client,
        &job(&url, dir.path(), 1),
        &mut Quiet,
        &retry,
        &CancellationToken::new(),
    )
    .await
    .expect("downloaded");
    assert_eq!(done.sha256, sha256_hex(&body));
    let seen = files.seen("h/one.mov");
    assert!(
        seen.iter().any(|s| s.range.is_some()),
        "no resumed request: {seen:?}"
    );
    assert_every_request_has_them(&files, "h/one.mov");
}

#[tokio::test]
async fn every_ranged_request_of_a_segmented_download_carries_them() {
    let files = FileServer::start().await;
    let body = content(8 * MIB as usize, 72);
    let url = files.add("h/seg.mov", body.clone());
    files.throttle("h/seg.mov", 4_000_000);
    let dir = temp_dir();
    let client = transfer::client(Duration::from_secs(10)).expect("client");
    let done = transfer::download(
        &client,
        &job(&url, dir.path(), 4),
        &mut Quiet,
        &RetryPolicy::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("downloaded");
    assert_eq!(done.sha256, sha256_hex(&body));
    let ranged = files
        .seen("h/seg.mov")
        .iter()
        .filter(|s| s.range.is_some())
        .count();
    assert!(ranged >= 2, "not segmented: {ranged} ranged requests");
    assert_every_request_has_them(&files, "h/seg.mov");
}

#[test]
fn a_header_that_cannot_be_sent_is_the_resolvers_error() {
    let file = RemoteFile {
        id: "file-1".into(),
        url: Url::parse("https://example.test/f").expect("url"),
        name: "x".into(),
        size: None,
        path: None,
        headers: vec![("bad name".into(), "v".into())],
    };
    let err = file.header_map().expect_err("refused").to_string();
    assert!(err.contains("header"), "{err}");
}
