//! One file over HTTP, shared by the service's workers and `rushes download`: URLs tried in order
//! with retries, streamed into `<name>.part` (resumed with `Range` + `If-Range`), hashed while
//! streaming, fsynced, then renamed without ever replacing an existing file.
//!
//! This file is the loop over URLs and tries; `attempt.rs` is one GET, `sink.rs` writes and
//! hashes, `place.rs` chooses, reserves and renames files, `meter.rs` measures speed.

mod attempt;
mod flush;
mod meter;
mod pages;
mod place;
mod segmented;
mod sink;

pub use attempt::parse_content_range;
pub use place::part_path;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use url::Url;

use place::Reservation;
pub use segmented::{Segment, Segmenting};

use crate::domain::UrlRole;
use crate::naming::SafeFileName;
use crate::net::{self, RetryPolicy};

/// Why a download did not complete. Messages are shown to users as they are.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(
        "no space left on the disk of {dir} after {bytes} bytes; the partial file is kept for a resume"
    )]
    NoSpace { dir: String, bytes: u64 },
    #[error("not enough free space in {dir}: {need} bytes needed, {available} available")]
    NotEnoughSpace {
        dir: String,
        need: u64,
        available: u64,
    },
    #[error("cancelled")]
    Cancelled,
    #[error("every URL failed; last error: {0}")]
    AllFailed(String),
    #[error("no URL to download from")]
    NoUrl,
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0}")]
    Observer(String),
}

/// One URL of a job and its role, tried in order.
#[derive(Debug, Clone)]
pub struct JobUrl {
    pub role: UrlRole,
    pub url: Url,
    /// Sent on every request for this URL (the first, resumed and ranged ones): what a link
    /// resolver says the host needs. Never logged.
    pub headers: reqwest::header::HeaderMap,
}

impl JobUrl {
    /// A URL that needs no header of its own.
    pub fn plain(role: UrlRole, url: Url) -> Self {
        Self {
            role,
            url,
            headers: reqwest::header::HeaderMap::new(),
        }
    }
}

/// A partial file left by an earlier run, and the validator of the response it came from.
#[derive(Debug, Clone)]
pub struct Resume {
    pub part: PathBuf,
    pub validator: Option<String>,
    /// The whole file's size, when an earlier response announced it.
    pub total: Option<u64>,
}

/// Everything a download needs to know.
#[derive(Debug, Clone)]
pub struct Job {
    pub urls: Vec<JobUrl>,
    /// `original_filename` or `--name`, not yet sanitised.
    pub forced_name: Option<String>,
    /// The delivery's link: its last path segment is a name candidate, a Dropbox folder gets `.zip`.
    pub name_link: Url,
    /// Last-resort name (`download-<id>`).
    pub fallback_name: String,
    pub dir: PathBuf,
    pub resume: Option<Resume>,
    /// Hash and write on the task itself instead of a blocking thread: faster for a single
    /// download (no hand-off), but a slow disk would stall the runtime. Only for the CLI.
    pub inline_writes: bool,
    /// Several ranged connections for large files (`segmented.rs`).
    pub segments: Segmenting,
}

/// A completed download.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    /// Which URL served it; `None` for a file found complete after a restart.
    pub served_by: Option<UrlRole>,
    /// The serving URL without its query string.
    pub served_url: String,
    pub elapsed: Duration,
    /// Bytes received over the network in this run (resumed bytes excluded).
    pub fetched: u64,
}

/// A progress report, sent a few times per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub bytes: u64,
    pub total: Option<u64>,
    pub speed_bps: u64,
    pub eta_s: Option<u64>,
    /// Connections currently receiving (several for a segmented download).
    pub segments: u32,
}

/// What a download tells the outside world; the engine persists it, the CLI prints it.
pub trait Observer: Send {
    /// The partial file and its origin are known, before anything is written to it.
    fn part_chosen(
        &mut self,
        part: &Path,
        name: &SafeFileName,
        validator: Option<&str>,
        total: Option<u64>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// One try ended (`error: None` = it served the file).
    fn attempt(
        &mut self,
        role: UrlRole,
        shown_url: &str,
        try_number: u32,
        error: Option<&str>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// A few times per second while bytes flow.
    fn progress(&mut self, progress: Progress) -> impl Future<Output = ()> + Send;
    /// The complete, synced file is about to be renamed to `final_path`.
    fn before_rename(
        &mut self,
        final_path: &Path,
        sha256: &str,
        bytes: u64,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The segments of a segmented download, on disk (synced) as described; empty once they are
    /// no longer needed. Stored so that a restart resumes each one where it was.
    fn segments(
        &mut self,
        _segments: &[Segment],
    ) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// How often progress is reported.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The HTTP client downloads use: no total timeout (files are large), but connect and read timeouts.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    net::client(net::Timeouts {
        connect: timeout,
        request: None,
        read: Some(timeout),
    })
}

/// How a single try ended, when it did not serve the file.
enum TryError {
    /// Worth another try of the same URL (connection, timeout, 5xx, 408/429, truncated body).
    Retry(String),
    /// This URL will not work (4xx, HTML page): go to the next one at once.
    NextUrl(String),
    /// The whole download stops (disk, cancel, store).
    Fatal(TransferError),
    /// A fresh download found slow on one connection: the rest of its body, handed to
    /// `segmented::run` with what is written (the part's hash covers it).
    Segmented(Box<segmented::Handover>),
}

/// State of the partial file across tries and URLs.
struct Part {
    name: SafeFileName,
    path: PathBuf,
    validator: Option<String>,
    /// The whole file's size as first announced: a resumed answer must agree with it.
    total: Option<u64>,
    /// Hash of the first `hashed` bytes of the part, when known without re-reading it.
    hasher: Option<(Sha256, u64)>,
    _reservation: Reservation,
}

impl Part {
    /// The part an earlier run left (`job.resume`), reserved again, if it is still there.
    fn resumed(job: &Job) -> Option<Self> {
        if let Some(resume) = &job.resume
            && resume.part.is_file()
        {
            let name = resume
                .part
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(SafeFileName::new);
            if let Some(name) = name {
                let reservation =
                    Reservation::try_take(&[job.dir.join(name.as_str()), resume.part.clone()])
                        .unwrap_or(Reservation(Vec::new()));
                return Some(Part {
                    path: resume.part.clone(),
                    name,
                    validator: resume.validator.clone(),
                    total: resume.total,
                    hasher: None,
                    _reservation: reservation,
                });
            }
        }
        None
    }
}

/// Downloads `job`, reporting to `observer`, until done, failed or `cancel`.
pub async fn download<O: Observer>(
    client: &reqwest::Client,
    job: &Job,
    observer: &mut O,
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Finished, TransferError> {
    if job.urls.is_empty() {
        return Err(TransferError::NoUrl);
    }
    let started = Instant::now();
    let mut part = Part::resumed(job);
    let mut fetched = 0u64;
    let mut last_error = String::new();
    let mut plan = segmented::Plan::new(job);
    for source in &job.urls {
        let shown = net::redact(&source.url);
        // This download's connection to the host; segments take more (`segmented.rs`).
        let capacity = segmented::host_capacity(job.segments.count);
        let Some(_slot) = segmented::host_slot(&source.url, capacity, cancel).await else {
            return Err(TransferError::Cancelled);
        };
        let mut backoff = retry.backoff();
        let mut try_number = 0;
        loop {
            try_number += 1;
            if cancel.is_cancelled() {
                return Err(TransferError::Cancelled);
            }
            let outcome = if plan.resumes(&part) {
                segmented::run(
                    client,
                    job,
                    source,
                    &mut part,
                    &mut plan,
                    None,
                    observer,
                    cancel,
                    &mut fetched,
                )
                .await
            } else {
                match attempt::try_once(
                    client,
                    job,
                    source,
                    &mut part,
                    &plan,
                    observer,
                    cancel,
                    &mut fetched,
                )
                .await
                {
                    Err(TryError::Segmented(handover)) => {
                        segmented::run(
                            client,
                            job,
                            source,
                            &mut part,
                            &mut plan,
                            Some(*handover),
                            observer,
                            cancel,
                            &mut fetched,
                        )
                        .await
                    }
                    other => other,
                }
            };
            let (message, retry_this_url) = match outcome {
                Ok((path, sha256, bytes)) => {
                    observer
                        .attempt(source.role, &shown, try_number, None)
                        .await
                        .map_err(TransferError::Observer)?;
                    return Ok(Finished {
                        path,
                        sha256,
                        bytes,
                        served_by: Some(source.role),
                        served_url: shown,
                        elapsed: started.elapsed(),
                        fetched,
                    });
                }
                Err(TryError::Fatal(e)) => {
                    if !matches!(e, TransferError::Cancelled) {
                        let message = e.to_string();
                        let _ = observer
                            .attempt(source.role, &shown, try_number, Some(&message))
                            .await;
                    }
                    return Err(e);
                }
                Err(TryError::NextUrl(message)) => {
                    tracing::warn!(url = %shown, try_number, error = %message, "download: giving up on this URL");
                    (message, false)
                }
                Err(TryError::Segmented(_)) => {
                    return Err(TransferError::Internal("segmented answer not taken"));
                }
                Err(TryError::Retry(message)) => {
                    tracing::warn!(url = %shown, try_number, error = %message, "download: try failed");
                    (message, true)
                }
            };
            observer
                .attempt(source.role, &shown, try_number, Some(&message))
                .await
                .map_err(TransferError::Observer)?;
            last_error = format!("{}: {message}", source.role);
            if !retry_this_url || !backoff.wait(None, cancel).await {
                if cancel.is_cancelled() {
                    return Err(TransferError::Cancelled);
                }
                break;
            }
        }
    }
    Err(TransferError::AllFailed(last_error))
}

/// Takes an exclusive lock on an opened `.part` for as long as `file` stays open: two processes
/// (two rushes instances on a shared downloads folder, one of which lost its claim) never write
/// the same partial file; the second one retries later instead.
fn lock_part(file: &std::fs::File, path: &Path) -> Result<(), TryError> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(TryError::Retry(format!(
            "{} is being written by another process (another rushes instance?); not touching it",
            path.display()
        ))),
        Err(e) => Err(io_fatal(path, io::Error::from(e))),
    }
}

fn io_fatal(path: &Path, source: io::Error) -> TryError {
    TryError::Fatal(TransferError::Io {
        path: path.display().to_string(),
        source,
    })
}
