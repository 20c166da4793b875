//! One file over HTTP, shared by the service's workers and `rushes download`: URLs tried in order
//! with retries, streamed into `<name>.part` (resumed with `Range` + `If-Range`), hashed while
//! streaming, fsynced, then renamed without ever replacing an existing file.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::filename::{self, SafeFileName};
use crate::config::FeedLocation;
use crate::feed::source::RetryPolicy;

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

/// One URL of a job and its role (`r2`, `source`, `primary`, `fallback`), tried in order.
#[derive(Debug, Clone)]
pub struct JobUrl {
    pub role: &'static str,
    pub url: Url,
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
}

/// A completed download.
#[derive(Debug, Clone)]
pub struct Finished {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub served_by: &'static str,
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
        role: &'static str,
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
}

/// How often progress is reported.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Batches queued between the network and the writer thread (bounds memory, not speed).
const WRITE_QUEUE: usize = 4;
/// Bytes handed to the writer thread at once.
const WRITE_BATCH: usize = 1 << 20;

/// The URL as it may be logged or stored: scheme, host, port and path, never the query.
pub fn shown_url(url: &Url) -> String {
    FeedLocation::Http(url.clone()).redacted()
}

/// The HTTP client downloads use: no total timeout (files are large), but connect and read timeouts.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("rushes/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .build()
}

/// Final names and `.part` files in use by downloads of this process.
static RESERVED: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// A name held by one download until it ends, so two downloads never pick the same file.
#[derive(Debug)]
struct Reservation(Vec<PathBuf>);

impl Reservation {
    fn try_take(paths: &[PathBuf]) -> Option<Self> {
        let mut set = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
        if paths.iter().any(|p| set.contains(p)) {
            return None;
        }
        set.extend(paths.iter().cloned());
        Some(Self(paths.to_vec()))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut set = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
        for p in &self.0 {
            set.remove(p);
        }
    }
}

/// `<name>.part`, the name cut if needed so the whole stays within 255 bytes.
fn part_path(dir: &Path, name: &SafeFileName) -> PathBuf {
    let mut base = name.as_str();
    let room = filename::MAX_NAME_BYTES - ".part".len();
    if base.len() > room {
        let mut end = room;
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        base = &base[..end];
    }
    dir.join(format!("{base}.part"))
}

/// The first of `name`, `name (1)`, … whose final file and `.part` are both free.
fn choose_name(dir: &Path, name: &SafeFileName) -> (SafeFileName, Reservation) {
    let mut n = 0;
    loop {
        let candidate = if n == 0 {
            name.clone()
        } else {
            name.numbered(n)
        };
        n += 1;
        let target = dir.join(candidate.as_str());
        let part = part_path(dir, &candidate);
        if target.symlink_metadata().is_ok() || part.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(reservation) = Reservation::try_take(&[target, part]) {
            return (candidate, reservation);
        }
    }
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge | io::ErrorKind::QuotaExceeded
    )
}

/// How a single try ended, when it did not serve the file.
enum TryError {
    /// Worth another try of the same URL (connection, timeout, 5xx, 408/429, truncated body).
    Retry(String),
    /// This URL will not work (4xx, HTML page): go to the next one at once.
    NextUrl(String),
    /// The whole download stops (disk, cancel, store).
    Fatal(TransferError),
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
    let mut part: Option<Part> = None;
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
            part = Some(Part {
                path: resume.part.clone(),
                name,
                validator: resume.validator.clone(),
                total: resume.total,
                hasher: None,
                _reservation: reservation,
            });
        }
    }
    let mut fetched = 0u64;
    let mut last_error = String::new();
    for source in &job.urls {
        let shown = shown_url(&source.url);
        for try_number in 1..=retry.attempts.max(1) {
            if cancel.is_cancelled() {
                return Err(TransferError::Cancelled);
            }
            let outcome = try_once(
                client,
                job,
                source,
                &mut part,
                observer,
                cancel,
                &mut fetched,
            )
            .await;
            match outcome {
                Ok((path, sha256, bytes)) => {
                    observer
                        .attempt(source.role, &shown, try_number, None)
                        .await
                        .map_err(TransferError::Observer)?;
                    return Ok(Finished {
                        path,
                        sha256,
                        bytes,
                        served_by: source.role,
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
                    observer
                        .attempt(source.role, &shown, try_number, Some(&message))
                        .await
                        .map_err(TransferError::Observer)?;
                    last_error = format!("{}: {message}", source.role);
                    break;
                }
                Err(TryError::Retry(message)) => {
                    tracing::warn!(url = %shown, try_number, error = %message, "download: try failed");
                    observer
                        .attempt(source.role, &shown, try_number, Some(&message))
                        .await
                        .map_err(TransferError::Observer)?;
                    last_error = format!("{}: {message}", source.role);
                    if try_number < retry.attempts {
                        let delay = retry.base_delay * 2u32.saturating_pow(try_number - 1);
                        let jitter = rand::rng().random_range(0..=delay.as_millis() as u64 / 2);
                        let wait = delay + Duration::from_millis(jitter);
                        tokio::select! {
                            () = cancel.cancelled() => return Err(TransferError::Cancelled),
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        }
    }
    Err(TransferError::AllFailed(last_error))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A strong ETag, else Last-Modified: what `If-Range` may carry.
fn validator_of(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
        .map(str::to_string)
}

/// Why a 206 answer may hold bytes of another version than the partial file, if it may:
/// its validator (the ETag when `sent` was one, else Last-Modified) is missing or differs.
fn spliced(sent: &str, headers: &HeaderMap) -> Option<String> {
    let sent_is_etag = sent.starts_with('"') || sent.starts_with("W/");
    let (name, got) = if sent_is_etag {
        ("ETag", header_str(headers, header::ETAG))
    } else {
        ("Last-Modified", header_str(headers, header::LAST_MODIFIED))
    };
    match got {
        Some(got) if got == sent => None,
        Some(_) => Some(format!(
            "the resumed answer has another {name} than the partial file (a new version)"
        )),
        None => Some(format!(
            "the resumed answer has no {name} to prove it is the same version"
        )),
    }
}

/// `bytes START-END/TOTAL` -> (START, TOTAL).
pub fn parse_content_range(raw: &str) -> Option<(u64, Option<u64>)> {
    let rest = raw.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

fn io_fatal(path: &Path, source: io::Error) -> TryError {
    TryError::Fatal(TransferError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Hashes the first `len` bytes of `path` (a part left by an earlier run).
fn hash_prefix(path: &Path, len: u64) -> io::Result<Sha256> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "partial file shorter than expected",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

/// One GET of one URL. On success returns the final path, its SHA-256 and size.
async fn try_once<O: Observer>(
    client: &reqwest::Client,
    job: &Job,
    source: &JobUrl,
    part: &mut Option<Part>,
    observer: &mut O,
    cancel: &CancellationToken,
    fetched: &mut u64,
) -> Result<(PathBuf, String, u64), TryError> {
    // Resume only when there is something to resume and a validator to make it safe.
    let have = part
        .as_ref()
        .and_then(|p| p.path.metadata().ok().map(|m| m.len()))
        .unwrap_or(0);
    let resume_validator = part
        .as_ref()
        .and_then(|p| p.validator.clone())
        .filter(|_| have > 0);
    let mut request = client.get(source.url.clone());
    if let Some(v) = &resume_validator {
        request = request
            .header(header::RANGE, format!("bytes={have}-"))
            .header(header::IF_RANGE, v.as_str());
    }
    let response = tokio::select! {
        () = cancel.cancelled() => return Err(TryError::Fatal(TransferError::Cancelled)),
        r = request.send() => r,
    };
    let response = response.map_err(|e| TryError::Retry(describe_reqwest(&e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let length = response.content_length();
    let offset;
    let total;
    match status {
        StatusCode::PARTIAL_CONTENT if resume_validator.is_some() => {
            let Some((start, announced)) =
                header_str(&headers, header::CONTENT_RANGE).and_then(parse_content_range)
            else {
                truncate_part(part)?;
                return Err(TryError::Retry(
                    "206 without a usable Content-Range; starting over".into(),
                ));
            };
            if start != have {
                truncate_part(part)?;
                return Err(TryError::Retry(format!(
                    "asked to resume at byte {have}, the server sent from byte {start}; starting over"
                )));
            }
            let sent = resume_validator.as_deref().unwrap_or("");
            if let Some(reason) = spliced(sent, &headers) {
                truncate_part(part)?;
                return Err(TryError::Retry(format!("{reason}; starting over")));
            }
            let known = part.as_ref().and_then(|p| p.total);
            let now_total = announced.or(length.map(|l| l + have));
            if let (Some(known), Some(now_total)) = (known, now_total)
                && known != now_total
            {
                truncate_part(part)?;
                return Err(TryError::Retry(format!(
                    "the file was {known} bytes, the resumed answer says {now_total}; starting over"
                )));
            }
            offset = have;
            total = now_total;
        }
        s if s.is_success() && s != StatusCode::PARTIAL_CONTENT => {
            offset = 0;
            total = length;
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            truncate_part(part)?;
            return Err(TryError::Retry(
                "the server refused to resume (416); starting over".into(),
            ));
        }
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            return Err(TryError::Retry(format!("HTTP {status}")));
        }
        s if s.is_server_error() => return Err(TryError::Retry(format!("HTTP {status}"))),
        s => return Err(TryError::NextUrl(format!("HTTP {s}"))),
    }

    let is_html = header_str(&headers, header::CONTENT_TYPE)
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let validator = validator_of(&headers);

    // The name is decided once, at the first response (Content-Disposition is only known then).
    let disposition = header_str(&headers, header::CONTENT_DISPOSITION);
    let name = match part.as_ref() {
        Some(p) => p.name.clone(),
        None => filename::download_name(
            job.forced_name.as_deref(),
            disposition,
            &job.name_link,
            &job.fallback_name,
        ),
    };
    let expects_html = name
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    if is_html && !expects_html {
        return Err(TryError::NextUrl(
            "the server answered an HTML page instead of the file (expired or private link?)"
                .into(),
        ));
    }

    if part.is_none() {
        let (name, reservation) = choose_name(&job.dir, &name);
        *part = Some(Part {
            path: part_path(&job.dir, &name),
            name,
            validator: None,
            total: None,
            hasher: None,
            _reservation: reservation,
        });
    }
    let Some(p) = part.as_mut() else {
        return Err(TryError::Fatal(TransferError::Internal(
            "no partial file chosen",
        )));
    };
    p.validator = validator;
    if total.is_some() {
        p.total = total;
    }
    observer
        .part_chosen(&p.path, &p.name, p.validator.as_deref(), total)
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;

    if let Some(total) = total {
        let need = total.saturating_sub(offset);
        let available = available_space(&job.dir).map_err(|e| io_fatal(&job.dir, e))?;
        if need > available {
            return Err(TryError::Fatal(TransferError::NotEnoughSpace {
                dir: job.dir.display().to_string(),
                need,
                available,
            }));
        }
    }

    // Open the part at `offset`, with the hash of what is already there.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&p.path)
        .map_err(|e| io_fatal(&p.path, e))?;
    file.set_len(offset).map_err(|e| io_fatal(&p.path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_fatal(&p.path, e))?;
    let hasher = match p.hasher.take() {
        Some((h, n)) if n == offset => h,
        _ if offset == 0 => Sha256::new(),
        _ => {
            let path = p.path.clone();
            tokio::task::spawn_blocking(move || hash_prefix(&path, offset))
                .await
                .map_err(|e| TryError::Retry(format!("hashing the partial file: {e}")))?
                .map_err(|e| io_fatal(&p.path, e))?
        }
    };

    let mut sink = if job.inline_writes {
        Sink::Inline {
            file,
            hasher,
            written: 0,
            result: Ok(()),
        }
    } else {
        Sink::thread(file, hasher)
    };
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    let mut network_error = None;
    let mut meter = Meter::new(offset);
    let mut cancelled = false;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => { cancelled = true; break; }
            n = stream.next() => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                network_error = Some(describe_reqwest(&e));
                break;
            }
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                if !sink.push(chunk).await {
                    break; // the write failed; its error is reported below
                }
                if let Some(progress) = meter.tick(offset + received, total) {
                    observer.progress(progress).await;
                }
            }
        }
    }
    drop(stream);
    *fetched += received;
    // What arrived before an error or a cancel is still written: a valid prefix to resume from.
    let (hasher, written, result) = sink.finish().await.map_err(TryError::Retry)?;
    if let Err(e) = result {
        p.hasher = None;
        if is_disk_full(&e) {
            return Err(TryError::Fatal(TransferError::NoSpace {
                dir: job.dir.display().to_string(),
                bytes: offset + written,
            }));
        }
        return Err(io_fatal(&p.path, e));
    }
    let size = offset + written;
    p.hasher = Some((hasher, size));
    observer.progress(meter.last(size, total)).await;
    if cancelled {
        return Err(TryError::Fatal(TransferError::Cancelled));
    }
    if let Some(message) = network_error {
        return Err(TryError::Retry(format!(
            "connection lost after {size} bytes: {message}"
        )));
    }
    match total {
        Some(total) if size < total => {
            return Err(TryError::Retry(format!(
                "truncated body: {size} of {total} bytes"
            )));
        }
        Some(total) if size > total => {
            reset_part(p)?;
            return Err(TryError::Retry(format!(
                "received {size} bytes, {total} announced; starting over"
            )));
        }
        _ => {}
    }
    let Some((hasher, _)) = p.hasher.clone() else {
        return Err(TryError::Fatal(TransferError::Internal(
            "no hash of the partial file",
        )));
    };
    let sha256 = hex::encode(hasher.finalize());
    let final_path = finalize(&job.dir, p, &sha256, size, observer).await?;
    Ok((final_path, sha256, size))
}

/// Where received bytes go: hashed and written by a blocking thread fed in ~1 MiB batches (the
/// service), or hashed and written inline (the one-shot CLI: no hand-off between
/// threads, bytes hashed and written while still in cache).
enum Sink {
    Thread {
        tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
        writer: tokio::task::JoinHandle<(Sha256, u64, io::Result<()>)>,
        batch: Vec<Bytes>,
        batch_bytes: usize,
    },
    Inline {
        file: std::fs::File,
        hasher: Sha256,
        written: u64,
        result: io::Result<()>,
    },
}

impl Sink {
    /// Hashing and writing on a blocking thread fed in ~1 MiB batches (one wake-up and one `writev`
    /// each): the OS schedules those threads, so concurrent downloads share the CPU equally, and a
    /// slow disk never stalls the runtime.
    fn thread(mut file: std::fs::File, mut hasher: Sha256) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            let mut written = 0u64;
            let mut result = Ok(());
            while let Some(batch) = rx.blocking_recv() {
                if let Err(e) = write_all_vectored(&mut file, &batch) {
                    result = Err(e);
                    break;
                }
                for chunk in &batch {
                    hasher.update(chunk);
                    written += chunk.len() as u64;
                }
            }
            if result.is_ok() {
                result = file.sync_all();
            }
            (hasher, written, result)
        });
        Self::Thread {
            tx,
            writer,
            batch: Vec::new(),
            batch_bytes: 0,
        }
    }

    /// `false` once writing failed (the error comes out of `finish`).
    async fn push(&mut self, chunk: Bytes) -> bool {
        match self {
            Self::Thread {
                tx,
                batch,
                batch_bytes,
                ..
            } => {
                *batch_bytes += chunk.len();
                batch.push(chunk);
                if *batch_bytes >= WRITE_BATCH {
                    *batch_bytes = 0;
                    return tx.send(std::mem::take(batch)).await.is_ok();
                }
                true
            }
            Self::Inline {
                file,
                hasher,
                written,
                result,
            } => {
                if let Err(e) = file.write_all(&chunk) {
                    *result = Err(e);
                    return false;
                }
                hasher.update(&chunk);
                *written += chunk.len() as u64;
                true
            }
        }
    }

    /// Writes what is pending, syncs, and gives the hash, the bytes written and the outcome.
    /// After a write error the hash covers more than the file: the caller drops it.
    async fn finish(self) -> Result<(Sha256, u64, io::Result<()>), String> {
        match self {
            Self::Thread {
                tx, writer, batch, ..
            } => {
                if !batch.is_empty() {
                    let _ = tx.send(batch).await;
                }
                drop(tx);
                writer.await.map_err(|e| format!("writer task failed: {e}"))
            }
            Self::Inline {
                file,
                hasher,
                written,
                mut result,
            } => {
                if result.is_ok() {
                    result = file.sync_all();
                }
                Ok((hasher, written, result))
            }
        }
    }
}

/// Writes every chunk, in order, with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut std::fs::File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn truncate_part(part: &mut Option<Part>) -> Result<(), TryError> {
    match part.as_mut() {
        Some(p) => reset_part(p),
        None => Ok(()),
    }
}

/// Empties the part: the next try starts from zero.
fn reset_part(p: &mut Part) -> Result<(), TryError> {
    p.hasher = None;
    p.validator = None;
    p.total = None;
    if p.path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p.path)
            .and_then(|f| f.set_len(0))
            .map_err(|e| io_fatal(&p.path, e))?;
    }
    Ok(())
}

/// Renames the synced part to its final name, numbering the name if a file took it meanwhile.
async fn finalize<O: Observer>(
    dir: &Path,
    p: &Part,
    sha256: &str,
    size: u64,
    observer: &mut O,
) -> Result<PathBuf, TryError> {
    let mut n = 0;
    loop {
        let name = if n == 0 {
            p.name.clone()
        } else {
            p.name.numbered(n)
        };
        n += 1;
        let target = dir.join(name.as_str());
        if target.symlink_metadata().is_ok() {
            continue;
        }
        let reservation = if n == 1 {
            None // our own name, reserved since the part was chosen
        } else {
            match Reservation::try_take(std::slice::from_ref(&target)) {
                Some(r) => Some(r),
                None => continue,
            }
        };
        observer
            .before_rename(&target, sha256, size)
            .await
            .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
        match rename_no_replace(&p.path, &target) {
            Ok(()) => {
                drop(reservation);
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                return Ok(target);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_fatal(&target, e)),
        }
    }
}

/// `rename` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            // File systems without RENAME_NOREPLACE: a hard link never replaces either.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    // `without_url`: the message must not carry a signed URL's query string.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {}", ReqwestDisplay(e));
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

struct ReqwestDisplay<'a>(&'a reqwest::Error);

impl std::fmt::Display for ReqwestDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // reqwest's Display adds " for url (...)" when it has one; keep only what precedes it.
        let full = self.0.to_string();
        let shown = full.split(" for url (").next().unwrap_or("");
        f.write_str(shown)
    }
}

/// Speed over the last couple of seconds and progress throttling.
struct Meter {
    samples: VecDeque<(Instant, u64)>,
    last_report: Option<Instant>,
}

impl Meter {
    fn new(start: u64) -> Self {
        let mut samples = VecDeque::new();
        samples.push_back((Instant::now(), start));
        Self {
            samples,
            last_report: None,
        }
    }

    fn tick(&mut self, bytes: u64, total: Option<u64>) -> Option<Progress> {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(self.last(bytes, total))
    }

    fn last(&mut self, bytes: u64, total: Option<u64>) -> Progress {
        let now = Instant::now();
        self.samples.push_back((now, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            self.samples.pop_front();
        }
        let speed_bps = match self.samples.front() {
            Some((t, b)) if now.duration_since(*t) > Duration::from_millis(50) => {
                let secs = now.duration_since(*t).as_secs_f64();
                (bytes.saturating_sub(*b) as f64 / secs) as u64
            }
            _ => 0,
        };
        let eta_s = total
            .filter(|_| speed_bps > 0)
            .map(|t| t.saturating_sub(bytes) / speed_bps);
        Progress {
            bytes,
            total,
            speed_bps,
            eta_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn shown_urls_have_no_query() -> Result<(), url::ParseError> {
        let url = Url::parse("https://x.workers.dev/dropbox/b/o/file?X-Amz-Signature=secret")?;
        let shown = shown_url(&url);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.starts_with("https://x.workers.dev/dropbox/b/o/file"));
        Ok(())
    }

    #[test]
    fn names_are_reserved_until_released() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("rushes-reserve-{}", std::process::id()));
        let name = SafeFileName::new("same.mov").ok_or("name")?;
        let (first, r1) = choose_name(&dir, &name);
        let (second, r2) = choose_name(&dir, &name);
        assert_eq!(first.as_str(), "same.mov");
        assert_eq!(second.as_str(), "same (1).mov");
        drop(r1);
        drop(r2);
        let (again, _r) = choose_name(&dir, &name);
        assert_eq!(again.as_str(), "same.mov");
        Ok(())
    }
}
