//! Segmented transfers: one large file over several ranged connections, each writing at its own
//! offset into one preallocated `.part` (positioned writes), with work stealing near the end.
//!
//! - Entered when the first answer says `Accept-Ranges: bytes`, carries a validator (strong ETag
//!   or Last-Modified) and the file is at least `DOWNLOAD_SEGMENT_MIN`; that first answer becomes
//!   the first segment's stream, so no request is wasted. A server without `Accept-Ranges` is
//!   probed by the first ranged request: a 206 confirms, a 200 with the same validator means it
//!   ignores ranges and the download goes back to one connection.
//! - Every ranged request carries `If-Range` with the validator, and every 206 is checked (start,
//!   total, validator): a file that changed upstream is started over, never spliced.
//! - The segments (start, end, bytes done) are handed to the observer about once a second, after
//!   `fdatasync`, so what is stored is always on disk: after a crash each segment resumes where
//!   it was.
//! - A connection that finishes its range takes an abandoned range, else splits the largest
//!   remaining one in two (work stealing), so one slow connection does not set the finish time.
//! - Segments are connections: every connection holds a per-host slot (at most
//!   `max(DOWNLOAD_SEGMENTS, 2)` per host, across all downloads of this process); a connection
//!   that frees its range while another download waits for the host gives its slot away.
//! - The first connection runs alone for `PROBE`; the others are opened only if it would still
//!   need `WORTH_SPLITTING_S` alone (an uncapped server gains nothing from more connections).
//! - SHA-256: in order as the contiguous prefix grows, by the connection writing right after the
//!   hashed prefix; what it had not reached is hashed in one pass at the end (see `hash_file`).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::meter::Meter;
use super::place::{finalize, is_disk_full};
use super::sink::hash_part;
use super::{Job, JobUrl, Observer, PROGRESS_EVERY, Part, TransferError, TryError, io_fatal};
use crate::net;

/// A range of the file: `[start, end)`, of which the first `done` bytes are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    pub done: u64,
}

impl Segment {
    fn next(&self) -> u64 {
        self.start + self.done
    }
    fn left(&self) -> u64 {
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

/// A range is split only when at least this much of it is still to be received.
const MIN_SPLIT: u64 = 256 << 10;
/// Files smaller than this are never segmented, whatever `DOWNLOAD_SEGMENT_MIN` says.
const MIN_FILE: u64 = 1 << 20;
/// Bytes a connection gathers before one positioned write on a blocking thread...
const WRITE_BATCH: usize = 1 << 20;
/// ... or after this long, so that progress (and the stored segments) stay current.
const WRITE_EVERY: Duration = Duration::from_millis(250);
/// How often the segments are synced and handed to the observer.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How long the first connection runs alone before the others are opened...
const PROBE: Duration = Duration::from_millis(300);
/// ... and only if it would still need this long alone.
const WORTH_SPLITTING_S: f64 = 2.0;
/// Connections of one download that may be re-opened after a failure, per segment allowed.
const REOPENS_PER_SEGMENT: u32 = 3;

// ---------------------------------------------------------------------------------------------
// Per-host connection slots

struct Host {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Connections per host, shared by every download of the process.
static HOSTS: LazyLock<Mutex<HashMap<String, Arc<Host>>>> = LazyLock::new(Default::default);

/// One connection to a host, held while it is open.
pub(super) struct HostSlot {
    _permit: OwnedSemaphorePermit,
    host: Arc<Host>,
}

impl HostSlot {
    /// Someone else waits for a connection to this host.
    fn wanted_elsewhere(&self) -> bool {
        self.host.waiting.load(Ordering::Relaxed) > 0
    }
}

/// Connections allowed per host for jobs segmented up to `count`: the engine's two downloads per
/// host keep working, and one download can use all of its segments.
pub(super) fn host_capacity(count: usize) -> usize {
    count.max(2)
}

fn host_entry(url: &Url, capacity: usize) -> Arc<Host> {
    let key = format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    );
    let mut hosts = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    hosts
        .entry(key)
        .or_insert_with(|| {
            Arc::new(Host {
                slots: Arc::new(Semaphore::new(capacity)),
                waiting: AtomicUsize::new(0),
            })
        })
        .clone()
}

/// Waits for a connection slot to `url`'s host; `None` if cancelled first.
pub(super) async fn host_slot(
    url: &Url,
    capacity: usize,
    cancel: &CancellationToken,
) -> Option<HostSlot> {
    let host = host_entry(url, capacity);
    if let Ok(permit) = host.slots.clone().try_acquire_owned() {
        return Some(HostSlot {
            _permit: permit,
            host,
        });
    }
    host.waiting.fetch_add(1, Ordering::Relaxed);
    let permit = tokio::select! {
        () = cancel.cancelled() => None,
        p = host.slots.clone().acquire_owned() => p.ok(),
    };
    host.waiting.fetch_sub(1, Ordering::Relaxed);
    permit.map(|permit| HostSlot {
        _permit: permit,
        host,
    })
}

fn try_host_slot(url: &Url, capacity: usize) -> Option<HostSlot> {
    let host = host_entry(url, capacity);
    let permit = host.slots.clone().try_acquire_owned().ok()?;
    Some(HostSlot {
        _permit: permit,
        host,
    })
}

// ---------------------------------------------------------------------------------------------
// Deciding

/// The segments of the current download, across tries and URLs.
pub(super) struct Plan {
    segments: Vec<Segment>,
    /// The server ignored a range: one connection from now on.
    disabled: bool,
}

impl Plan {
    pub(super) fn new(job: &Job) -> Self {
        Self {
            segments: job.segments.resume.clone(),
            disabled: job.segments.count < 2,
        }
    }

    fn total(&self) -> u64 {
        self.segments.iter().map(|s| s.end).max().unwrap_or(0)
    }

    fn complete(&self) -> bool {
        !self.segments.is_empty() && self.segments.iter().all(|s| s.left() == 0)
    }

    fn done(&self) -> u64 {
        self.segments.iter().map(|s| s.done).sum()
    }

    /// Bytes from the start of the file that are all on disk.
    fn contiguous(&self) -> u64 {
        let mut sorted = self.segments.clone();
        sorted.sort_by_key(|s| s.start);
        let mut upto = 0;
        for s in sorted {
            if s.start > upto {
                break;
            }
            upto = upto.max(s.next());
            if s.left() > 0 {
                break;
            }
        }
        upto
    }

    /// Whether the next try continues stored segments of `part` (else the plan is dropped).
    pub(super) fn resumes(&mut self, part: &Option<Part>) -> bool {
        if self.segments.is_empty() {
            return false;
        }
        if self.disabled {
            // Segments stored, but one connection now (DOWNLOAD_SEGMENTS=1): keep only the
            // contiguous prefix, which the single path resumes from.
            if let Some(p) = part {
                let prefix = self.contiguous();
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p.path)
                    .and_then(|f| f.set_len(prefix));
            }
            self.segments.clear();
            return false;
        }
        let ok = part.as_ref().is_some_and(|p| {
            p.validator.is_some()
                && p.path
                    .metadata()
                    .is_ok_and(|m| m.len() == self.total() && m.len() > 0)
        });
        if !ok {
            self.segments.clear();
        }
        ok
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A strong ETag, else Last-Modified (the single path's rule).
fn validator_of(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
        .map(str::to_string)
}

/// `bytes START-END/TOTAL` -> (START, TOTAL).
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let rest = header_str(headers, header::CONTENT_RANGE)?
        .trim()
        .strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// Called by the single path on the first answer of a fresh download (body not read yet):
/// `true` when it should continue segmented.
pub(super) fn wanted(job: &Job, plan: &Plan, headers: &HeaderMap, total: Option<u64>) -> bool {
    let ranges = header_str(headers, header::ACCEPT_RANGES).map(str::trim);
    !plan.disabled
        && job.segments.count >= 2
        && total.is_some_and(|t| t >= job.segments.min_size.max(MIN_FILE))
        && ranges.is_none_or(|r| r.eq_ignore_ascii_case("bytes"))
        && validator_of(headers).is_some()
}

// ---------------------------------------------------------------------------------------------
// Running

/// What every connection of one download shares.
struct Ctx {
    client: reqwest::Client,
    url: Url,
    validator: String,
    total: u64,
    file: Arc<std::fs::File>,
    state: Mutex<Shared>,
    cancel: CancellationToken,
    /// SHA-256 of the file's first bytes, extended by the connection writing right after them
    /// (in order, as the contiguous prefix grows); `None` while that connection holds it.
    prefix: Mutex<Option<(Sha256, u64)>>,
}

struct Shared {
    segments: Vec<Segment>,
    active: Vec<bool>,
    /// Where each range's connection has received up to (written or still buffered): a split
    /// never starts before it.
    received: Vec<u64>,
    /// When each range's connection started and from which byte: its speed.
    since: Vec<(Instant, u64)>,
}

impl Shared {
    fn new(segments: Vec<Segment>) -> Self {
        let now = Instant::now();
        Self {
            active: vec![false; segments.len()],
            received: segments.iter().map(Segment::next).collect(),
            since: segments.iter().map(|s| (now, s.next())).collect(),
            segments,
        }
    }

    fn start(&mut self, i: usize) {
        let next = self.segments[i].next();
        self.active[i] = true;
        self.received[i] = next;
        self.since[i] = (Instant::now(), next);
    }

    /// Bytes per second of the connection on range `i` since it started (None: too early).
    fn speed(&self, i: usize) -> Option<f64> {
        let (at, from) = self.since[i];
        let secs = at.elapsed().as_secs_f64();
        (secs > 0.3).then(|| self.received[i].saturating_sub(from) as f64 / secs)
    }

    /// An abandoned range first (most left), else part of the range in progress with the most
    /// still to receive: the connection taking it over gets a share proportional to its speed
    /// (`my_speed`, from its previous range) against the current one's (half when unknown).
    fn claim(&mut self, my_speed: Option<f64>) -> Option<usize> {
        let idle = (0..self.segments.len())
            .filter(|&i| !self.active[i] && self.segments[i].left() > 0)
            .max_by_key(|&i| self.segments[i].left());
        if let Some(i) = idle {
            self.start(i);
            return Some(i);
        }
        let to_receive = |i: usize| self.segments[i].end.saturating_sub(self.received[i]);
        let i = (0..self.segments.len())
            .filter(|&i| self.active[i] && to_receive(i) >= MIN_SPLIT)
            .max_by_key(|&i| to_receive(i))?;
        let remaining = to_receive(i);
        let keep = match (self.speed(i), my_speed) {
            (Some(theirs), Some(mine)) if theirs + mine > 0.0 => {
                (remaining as f64 * theirs / (theirs + mine)) as u64
            }
            _ => remaining / 2,
        };
        let keep = keep.clamp(MIN_SPLIT / 4, remaining - MIN_SPLIT / 4);
        let mid = self.received[i] + keep;
        let end = self.segments[i].end;
        self.segments[i].end = mid;
        self.segments.push(Segment {
            start: mid,
            end,
            done: 0,
        });
        self.active.push(false);
        self.received.push(mid);
        self.since.push((Instant::now(), mid));
        let new = self.segments.len() - 1;
        self.start(new);
        Some(new)
    }

    fn active_count(&self) -> usize {
        self.active.iter().filter(|a| **a).count()
    }
}

/// How one connection ended.
enum End {
    /// No range left for it (or it gave its slot to another download).
    Idle,
    /// Network trouble or a 5xx: its range stays for another connection.
    Retry(String),
    /// The file is not the one the segments came from: start over.
    Changed(String),
    /// The server answered a range with the whole file.
    NoRanges,
    /// This URL will not serve it (4xx).
    NextUrl(String),
    Write(io::Error),
    Cancelled,
}

/// Runs (or resumes) a segmented download of `source`. `first` is the single path's answer to a
/// plain GET of a fresh download (used as the first segment's stream) with the file's size.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<O: Observer>(
    client: &reqwest::Client,
    job: &Job,
    source: &JobUrl,
    part: &mut Option<Part>,
    plan: &mut Plan,
    first: Option<(reqwest::Response, u64)>,
    observer: &mut O,
    cancel: &CancellationToken,
    fetched: &mut u64,
) -> Result<(PathBuf, String, u64), TryError> {
    let Some(p) = part.as_mut() else {
        return Err(TryError::Fatal(TransferError::Internal(
            "segmented download without a partial file",
        )));
    };
    let Some(validator) = p.validator.clone() else {
        return Err(TryError::Fatal(TransferError::Internal(
            "segmented download without a validator",
        )));
    };
    let capacity = host_capacity(job.segments.count);
    // The download's own connection is held by the caller; these are the extra ones.
    let mut slots: Vec<Option<HostSlot>> = vec![None];
    while slots.len() < job.segments.count {
        match try_host_slot(&source.url, capacity) {
            Some(slot) => slots.push(Some(slot)),
            None => break,
        }
    }

    let fresh = first.is_some();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(false)
        .open(&p.path)
        .map_err(|e| io_fatal(&p.path, e))?;
    super::lock_part(&file, &p.path)?;
    let mut first_stream = None;
    if let Some((response, total)) = first {
        // One range first: the extra connections split it after a short probe, and only when
        // the first connection alone would take a while (an uncapped server gains nothing).
        let n = 1u64;
        let piece = total.div_ceil(n);
        plan.segments = (0..n)
            .map(|i| Segment {
                start: (i * piece).min(total),
                end: ((i + 1) * piece).min(total),
                done: 0,
            })
            .filter(|s| s.end > s.start)
            .collect();
        // Stored before the part is preallocated and the first byte written at an offset.
        observer
            .segments(&plan.segments)
            .await
            .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
        preallocate(&file, total).map_err(|e| match is_disk_full(&e) {
            true => TryError::Fatal(TransferError::NoSpace {
                dir: job.dir.display().to_string(),
                bytes: 0,
            }),
            false => io_fatal(&p.path, e),
        })?;
        first_stream = Some(response);
    }
    let total = plan.total();
    if !fresh {
        // Resumed from stored segments: the observer learns the part again (the CLI's sidecars).
        observer
            .part_chosen(&p.path, &p.name, Some(&validator), Some(total))
            .await
            .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
    }
    tracing::info!(
        part = %p.path.display(),
        total,
        connections = slots.len(),
        segments = plan.segments.len(),
        resumed_bytes = plan.done(),
        "segmented download"
    );

    let stop = cancel.child_token();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        url: source.url.clone(),
        validator: validator.clone(),
        total,
        file: Arc::new(file),
        state: Mutex::new(Shared::new(plan.segments.clone())),
        cancel: stop.clone(),
        prefix: Mutex::new(fresh.then(|| (Sha256::new(), 0))),
    });
    let mut workers: JoinSet<(End, Option<HostSlot>, u64)> = JoinSet::new();
    let mut waiting_slots = Vec::new();
    for slot in slots {
        if fresh && first_stream.is_none() {
            waiting_slots.push(slot);
            continue;
        }
        let claimed = lock(&ctx).claim(None);
        let Some(index) = claimed else { break };
        let stream = if index == 0 {
            first_stream.take()
        } else {
            None
        };
        workers.spawn(connection(ctx.clone(), index, stream, slot, Duration::ZERO));
    }
    drop(first_stream);
    let probe_started = Instant::now();

    let mut reopens = REOPENS_PER_SEGMENT * job.segments.count as u32;
    let mut meter = Meter::new(plan.done());
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_save = Instant::now();
    let mut last_error: Option<String> = None;
    let mut fatal: Option<End> = None;
    while !workers.is_empty() {
        tokio::select! {
            joined = workers.join_next() => {
                let Some(joined) = joined else { break };
                let (end, slot, received) = match joined {
                    Ok(r) => r,
                    Err(e) => (End::Retry(format!("connection task failed: {e}")), None, 0),
                };
                *fetched += received;
                match end {
                    End::Idle | End::Cancelled => {}
                    End::Retry(message) => {
                        tracing::warn!(error = %message, "segment connection failed");
                        last_error = Some(message);
                        if reopens > 0 && !stop.is_cancelled() {
                            reopens -= 1;
                            let claimed = lock(&ctx).claim(None);
                            if let Some(index) = claimed {
                                workers.spawn(connection(ctx.clone(), index, None, slot, Duration::from_millis(500)));
                            }
                        }
                    }
                    other => {
                        if fatal.is_none() {
                            fatal = Some(other);
                        }
                        stop.cancel();
                    }
                }
            }
            _ = ticker.tick() => {
                let (done, active) = {
                    let s = lock(&ctx);
                    (s.segments.iter().map(|s| s.done).sum::<u64>(), s.active_count())
                };
                if !waiting_slots.is_empty() && probe_started.elapsed() >= PROBE {
                    let speed = done as f64 / probe_started.elapsed().as_secs_f64();
                    let left_s = total.saturating_sub(done) as f64 / speed.max(1.0);
                    if left_s >= WORTH_SPLITTING_S {
                        for slot in waiting_slots.drain(..) {
                            let claimed = lock(&ctx).claim(None);
                            let Some(index) = claimed else { break };
                            workers.spawn(connection(ctx.clone(), index, None, slot, Duration::ZERO));
                        }
                    } else {
                        waiting_slots.clear(); // fast enough alone: the slots go back
                    }
                }
                if let Some(progress) = meter.tick(done, Some(total)) {
                    observer.progress(super::Progress { segments: active as u32, ..progress }).await;
                }
                if last_save.elapsed() >= SAVE_EVERY {
                    last_save = Instant::now();
                    save(&ctx, observer).await?;
                }
            }
        }
    }
    // Every connection has ended: what is in `ctx` is final for this try.
    plan.segments = lock(&ctx).segments.clone();
    save(&ctx, observer).await?;
    let done = plan.done();
    observer
        .progress(super::Progress {
            segments: 0,
            ..meter.last(done, Some(total))
        })
        .await;

    match fatal {
        Some(End::Changed(message)) => {
            start_over(p, plan, observer).await?;
            return Err(TryError::Retry(format!(
                "{message}; the file changed on the server, starting over"
            )));
        }
        Some(End::NoRanges) => {
            plan.disabled = true;
            back_to_one_connection(p, plan, observer).await?;
            return Err(TryError::Retry(
                "the server ignores ranges; continuing over one connection".into(),
            ));
        }
        Some(End::NextUrl(message)) => {
            back_to_one_connection(p, plan, observer).await?;
            return Err(TryError::NextUrl(message));
        }
        Some(End::Write(e)) => {
            if is_disk_full(&e) {
                return Err(TryError::Fatal(TransferError::NoSpace {
                    dir: job.dir.display().to_string(),
                    bytes: done,
                }));
            }
            return Err(io_fatal(&p.path, e));
        }
        _ => {}
    }
    if cancel.is_cancelled() {
        return Err(TryError::Fatal(TransferError::Cancelled));
    }
    if !plan.complete() {
        return Err(TryError::Retry(format!(
            "{done} of {total} bytes after every connection ended: {}",
            last_error.unwrap_or_else(|| "connections closed".into())
        )));
    }

    let file = ctx.file.clone();
    let path = p.path.clone();
    let prefix = ctx.prefix.lock().unwrap_or_else(|e| e.into_inner()).take();
    let inline = prefix.as_ref().map_or(0, |(_, upto)| *upto);
    let hashed = tokio::task::spawn_blocking(move || {
        file.sync_all()?;
        let started = Instant::now();
        let sha = hash_file(&path, prefix, total)?;
        Ok::<_, io::Error>((sha, started.elapsed()))
    })
    .await
    .map_err(|e| TryError::Retry(format!("hashing the file: {e}")))?;
    let (sha256, took) = hashed.map_err(|e| io_fatal(&p.path, e))?;
    tracing::info!(
        bytes = total,
        hash_ms = took.as_millis() as u64,
        hashed_while_receiving = inline,
        fresh,
        "segmented download complete; hashed in one pass"
    );
    let final_path = finalize(&job.dir, p, &sha256, total, observer).await?;
    plan.segments.clear();
    let _ = observer.segments(&[]).await;
    Ok((final_path, sha256, total))
}

fn lock(ctx: &Ctx) -> std::sync::MutexGuard<'_, Shared> {
    ctx.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Syncs the file, then stores the segments as they were before the sync.
async fn save<O: Observer>(ctx: &Arc<Ctx>, observer: &mut O) -> Result<(), TryError> {
    let snapshot = lock(ctx).segments.clone();
    let file = ctx.file.clone();
    let synced = tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .map_err(|e| TryError::Retry(format!("syncing the file: {e}")))?;
    if let Err(e) = synced {
        tracing::warn!(error = %e, "cannot sync the partial file; segments not saved");
        return Ok(());
    }
    observer
        .segments(&snapshot)
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))
}

/// The part is worthless (the file changed): empty it, forget the segments.
async fn start_over<O: Observer>(
    p: &mut Part,
    plan: &mut Plan,
    observer: &mut O,
) -> Result<(), TryError> {
    plan.segments.clear();
    super::place::reset_part(p)?;
    observer
        .segments(&[])
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))
}

/// Keeps only the contiguous prefix (which the single path can resume), forgets the segments.
async fn back_to_one_connection<O: Observer>(
    p: &mut Part,
    plan: &mut Plan,
    observer: &mut O,
) -> Result<(), TryError> {
    let prefix = plan.contiguous();
    plan.segments.clear();
    p.hasher = None;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p.path)
        .and_then(|f| f.set_len(prefix))
        .map_err(|e| io_fatal(&p.path, e))?;
    observer
        .segments(&[])
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))
}

/// Reserves the blocks (a full disk fails now, not half-way); `set_len` where unsupported.
fn preallocate(file: &std::fs::File, total: u64) -> io::Result<()> {
    file.set_len(0)?;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, total) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC => Err(io::Error::from(e)),
        Err(_) => file.set_len(total),
    }
}

/// SHA-256 of the whole file: `prefix` (hashed in order while receiving) continued over the rest
/// in one sequential pass, right after the last byte (still in the page cache). Measured
/// (BENCHMARKS.md): a pass over the whole file at the end made an uncapped download ~10% slower
/// than the single-connection path, which hashes while streaming; hashing in order costs nothing
/// extra and covers everything when one connection does the work.
fn hash_file(path: &Path, prefix: Option<(Sha256, u64)>, len: u64) -> io::Result<String> {
    Ok(hex::encode(hash_part(path, prefix, len)?.finalize()))
}

/// One connection: serves segment `index`, then claims another, until none is left.
async fn connection(
    ctx: Arc<Ctx>,
    mut index: usize,
    mut stream: Option<reqwest::Response>,
    slot: Option<HostSlot>,
    delay: Duration,
) -> (End, Option<HostSlot>, u64) {
    let mut received = 0u64;
    if !delay.is_zero() {
        tokio::select! {
            () = ctx.cancel.cancelled() => return (release(&ctx, index, End::Cancelled), slot, 0),
            () = tokio::time::sleep(delay) => {}
        }
    }
    loop {
        let response = match stream.take() {
            Some(r) => r,
            None => match open_range(&ctx, index).await {
                Ok(r) => r,
                Err(end) => return (release(&ctx, index, end), slot, received),
            },
        };
        let end = fill(&ctx, index, response, &mut received).await;
        if let Some(end) = end {
            return (release(&ctx, index, end), slot, received);
        }
        // Range done: give the slot to a waiting download, else take more work.
        let mut state = lock(&ctx);
        let my_speed = state.speed(index);
        state.active[index] = false;
        if slot.as_ref().is_some_and(HostSlot::wanted_elsewhere) && state.active_count() > 0 {
            return (End::Idle, slot, received);
        }
        match state.claim(my_speed) {
            Some(i) => index = i,
            None => return (End::Idle, slot, received),
        }
    }
}

fn release(ctx: &Ctx, index: usize, end: End) -> End {
    lock(ctx).active[index] = false;
    end
}

/// `GET` with `Range` (up to the segment's current end) and `If-Range`, checked.
async fn open_range(ctx: &Ctx, index: usize) -> Result<reqwest::Response, End> {
    let (from, to) = {
        let s = lock(ctx).segments[index];
        (s.next(), s.end)
    };
    let request = ctx
        .client
        .get(ctx.url.clone())
        .header(
            header::RANGE,
            format!("bytes={from}-{}", to.saturating_sub(1)),
        )
        .header(header::IF_RANGE, ctx.validator.as_str());
    let response = tokio::select! {
        () = ctx.cancel.cancelled() => return Err(End::Cancelled),
        r = request.send() => r.map_err(|e| End::Retry(net::error_text(&e)))?,
    };
    let status = response.status();
    let headers = response.headers();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let Some((start, total)) = content_range(headers) else {
                return Err(End::Changed("206 without a usable Content-Range".into()));
            };
            if validator_of(headers).is_some_and(|v| v != ctx.validator) {
                return Err(End::Changed("a range came with another validator".into()));
            }
            if total.is_some_and(|t| t != ctx.total) {
                return Err(End::Changed(format!(
                    "the file is now {} bytes, it was {}",
                    total.unwrap_or(0),
                    ctx.total
                )));
            }
            if start != from {
                return Err(End::Retry(format!(
                    "asked for byte {from}, the server sent from byte {start}"
                )));
            }
            Ok(response)
        }
        s if s.is_success() => {
            if validator_of(headers).as_deref() == Some(ctx.validator.as_str()) {
                Err(End::NoRanges)
            } else {
                Err(End::Changed(
                    "a range was answered with a different whole file".into(),
                ))
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            Err(End::Changed("the server refused a range (416)".into()))
        }
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            Err(End::Retry(format!("HTTP {status}")))
        }
        s if s.is_server_error() => Err(End::Retry(format!("HTTP {status}"))),
        s => Err(End::NextUrl(format!("HTTP {s}"))),
    }
}

/// Streams the body into the segment's range until the range (which may shrink) is full.
/// `None` when the range is done.
async fn fill(
    ctx: &Ctx,
    index: usize,
    response: reqwest::Response,
    received: &mut u64,
) -> Option<End> {
    let mut body = response.bytes_stream();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut pos = lock(ctx).segments[index].next();
    let mut last_write = Instant::now();
    loop {
        let next = tokio::select! {
            () = ctx.cancel.cancelled() => None,
            n = body.next() => Some(n),
        };
        let (ended, error) = match next {
            None => (true, Some(End::Cancelled)),
            Some(None) => (true, None),
            Some(Some(Err(e))) => (true, Some(End::Retry(net::error_text(&e)))),
            Some(Some(Ok(chunk))) => {
                *received += chunk.len() as u64;
                batch_len += chunk.len();
                batch.push(chunk);
                (false, None)
            }
        };
        let end = {
            let mut state = lock(ctx);
            state.received[index] = pos + batch_len as u64;
            state.segments[index].end
        };
        let full = pos + batch_len as u64 >= end;
        if batch_len > 0
            && (batch_len >= WRITE_BATCH || ended || full || last_write.elapsed() >= WRITE_EVERY)
        {
            last_write = Instant::now();
            let end = lock(ctx).segments[index].end;
            let room = end.saturating_sub(pos);
            let batch_now = std::mem::take(&mut batch);
            batch_len = 0;
            let file = ctx.file.clone();
            let at = pos;
            // The connection writing right after the hashed prefix extends the hash.
            let hasher = {
                let mut prefix = ctx.prefix.lock().unwrap_or_else(|e| e.into_inner());
                match prefix.as_ref() {
                    Some((_, upto)) if *upto == at => prefix.take(),
                    _ => None,
                }
            };
            let written = tokio::task::spawn_blocking(move || {
                let n = write_at(&file, &batch_now, at, room)?;
                let hasher = hasher.map(|(mut h, upto)| {
                    let mut left = n;
                    for chunk in &batch_now {
                        let take = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        h.update(&chunk[..take]);
                        left -= take as u64;
                    }
                    (h, upto + n)
                });
                Ok::<_, io::Error>((n, hasher))
            })
            .await;
            let n = match written {
                Ok(Ok((n, hasher))) => {
                    if hasher.is_some() {
                        *ctx.prefix.lock().unwrap_or_else(|e| e.into_inner()) = hasher;
                    }
                    n
                }
                Ok(Err(e)) => return Some(End::Write(e)),
                Err(e) => return Some(End::Retry(format!("writer task failed: {e}"))),
            };
            pos += n;
            let mut state = lock(ctx);
            let s = &mut state.segments[index];
            s.done = (pos - s.start).min(s.end - s.start);
            if s.left() == 0 {
                return None;
            }
        }
        if ended {
            return Some(
                error.unwrap_or_else(|| End::Retry(format!("the connection ended at byte {pos}"))),
            );
        }
    }
}

/// Writes the chunks from `at`, at most `room` bytes; returns the bytes written.
fn write_at(file: &std::fs::File, chunks: &[Bytes], at: u64, room: u64) -> io::Result<u64> {
    let mut offset = at;
    let limit = at + room;
    for chunk in chunks {
        if offset >= limit {
            break;
        }
        let take = chunk
            .len()
            .min(usize::try_from(limit - offset).unwrap_or(usize::MAX));
        file.write_all_at(&chunk[..take], offset)?;
        offset += take as u64;
    }
    Ok(offset - at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: u64, end: u64, done: u64) -> Segment {
        Segment { start, end, done }
    }

    #[test]
    fn a_finished_connection_takes_an_abandoned_range_then_splits_the_largest() {
        let mut s = Shared::new(vec![
            seg(0, 100 << 20, 100 << 20),
            seg(100 << 20, 200 << 20, 10 << 20),
        ]);
        assert_eq!(s.claim(None), Some(1), "the abandoned range first");
        let i = s.claim(None).expect("a split");
        assert_eq!(i, 2);
        let (a, b) = (s.segments[1], s.segments[2]);
        assert_eq!(a.end, b.start);
        assert_eq!(b.end, 200 << 20);
        assert_eq!(a.left(), b.left(), "halves when speeds are unknown");
        // The owner received (buffered) more than it wrote: a split starts after that.
        s.segments[2].done = 0;
        s.received[2] = b.end - 100_000;
        s.segments[1].done = a.end - a.start;
        s.received[1] = a.end;
        assert_eq!(s.claim(None), None, "too little left to split");
    }

    #[test]
    fn a_slow_connection_keeps_a_share_proportional_to_its_speed() {
        let mut s = Shared::new(vec![seg(0, 10 << 20, 0)]);
        s.start(0);
        s.since[0] = (Instant::now() - Duration::from_secs(1), 0);
        s.received[0] = 100_000; // 100 kB/s
        let i = s.claim(Some(9_900_000.0)).expect("a split");
        let kept = s.segments[0].end - s.received[0];
        let taken = s.segments[i].end - s.segments[i].start;
        assert!(kept * 50 < taken, "kept {kept}, taken {taken}");
        assert_eq!(s.segments[i].start, s.segments[0].end);
    }

    #[test]
    fn contiguous_prefix_stops_at_the_first_gap() {
        let plan = Plan {
            segments: vec![
                seg(10, 20, 10),
                seg(0, 10, 10),
                seg(20, 30, 4),
                seg(30, 40, 10),
            ],
            disabled: false,
        };
        assert_eq!(plan.contiguous(), 24);
        assert_eq!(plan.total(), 40);
        assert!(!plan.complete());
    }
}
