//! What a download is asked to do and what it tells: the [`Job`] (its URLs, name, folder,
//! resume and segmenting), its outcome ([`Finished`], [`TransferError`]), and the [`Observer`]
//! the engine and the CLI give it. Every other file of `transfer/` builds on these.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::domain::UrlRole;
use crate::naming::SafeFileName;

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
    /// The segments on disk (synced) as a running segmented download goes, about once a
    /// second. May be stored later than reported (the newest one replacing one not stored yet:
    /// the transfer does not wait for a database that is away), but before any later call.
    /// By default, the same as [`Observer::segments`].
    fn segments_snapshot(
        &mut self,
        segments: &[Segment],
    ) -> impl Future<Output = Result<(), String>> + Send {
        self.segments(segments)
    }
}

/// How often progress is reported.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A range of the file: `[start, end)`, of which the first `done` bytes are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub done: u64,
}

impl Segment {
    pub(super) fn next(&self) -> u64 {
        self.start + self.done
    }
    pub(super) fn left(&self) -> u64 {
        self.end.saturating_sub(self.next())
    }
}

/// How a job may be segmented, and the segments an earlier run left.
#[derive(Debug, Clone)]
pub struct Segmenting {
    /// Connections per file at most; 1 = never segmented.
    pub count: usize,
    /// Smaller files use one connection.
    pub min_size: u64,
    /// Stored by an earlier run for the job's `resume` part (empty: none).
    pub resume: Vec<Segment>,
}
