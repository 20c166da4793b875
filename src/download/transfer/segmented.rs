//! Segmented transfers: one large file over several ranged connections, each writing at its own
//! offset into one `.part` of the file's size (positioned writes), with work stealing near the end.
//!
//! - A fresh download that could be segmented (`wanted`: `Accept-Ranges: bytes` or none said, a
//!   validator — strong ETag or Last-Modified —, at least `DOWNLOAD_SEGMENT_MIN`) starts on the
//!   single path all the same: streamed, written and hashed in order by one connection. A `Probe`
//!   looks at its speed every 20 ms; only when, `SLOW_LOOKS` looks in a row, it would still need
//!   `WORTH_SPLITTING_S` alone (a capped server), the host has a free slot and the connection is
//!   slow next to this machine's SHA-256 speed is it handed over (`Handover`): what is written
//!   and hashed stays, the rest of that same response becomes the first range's stream (no request
//!   wasted), and the other connections open at once. A server that gives one connection its full
//!   speed never pays for preallocation, positioned writes or a re-read for the hash.
//! - A server without `Accept-Ranges` is probed by the first ranged request: a 206 confirms, a
//!   200 with the same validator means it ignores ranges and the download goes back to one
//!   connection (the contiguous prefix and its hash kept).
//! - Every ranged request carries `If-Range` with the validator, and every 206 is checked (start,
//!   total, validator): a file that changed upstream is started over, never spliced.
//! - The segments (start, end, bytes done) are handed to the observer about once a second, after
//!   `fdatasync`, so what is stored is always on disk: after a crash each segment resumes where
//!   it was.
//! - Layout (`Shared::spread`): one range per connection (one request each, as aria2 does), their
//!   lengths growing by `STAGGER` from the first to the last, so that at equal speeds they complete
//!   in file order, a little apart. Cutting the file into many small pieces taken in order would
//!   cost a request per piece (on nginx, whose `limit_rate` gives each new request a second's worth
//!   at once, it would also escape a per-connection cap: not what a fair comparison measures).
//! - Work stealing (`Shared::claim`): a connection that finishes its range takes an abandoned
//!   range, else splits the earliest range that still has at least a quarter of the most left (and
//!   that its connection would not finish within `MIN_SPLIT_S`), so one slow connection does not set
//!   the finish time and the early ranges complete first.
//! - SHA-256 (`Hasher`): in order, on a thread of its own that follows the contiguous prefix on
//!   disk: whenever a range completes, the next one (received up to its connection) is read back
//!   from the page cache and hashed, then followed as it grows. With the staggered layout the
//!   prefix is close to the end when the last byte arrives: measured, a few ms of hashing are left
//!   (BENCHMARKS.md), where one pass after the last byte over the later ranges took ~0.3 s.
//! - Segments are connections: every connection holds a per-host slot (at most
//!   `max(DOWNLOAD_SEGMENTS, 2)` per host, across all downloads of this process); a connection
//!   that frees its range while another download waits for the host gives its slot away.
//! - In the service, each connection keeps reading while its previous batch is written (one write
//!   in flight per connection, on a blocking thread), so a connection never waits for the disk;
//!   the one-shot CLI (`Job::inline_writes`) writes on the connection's own task.
//! - The `.part` is sized at once (sparse) and its blocks reserved (`fallocate`) beside the
//!   transfer when the connections open: on tmpfs a reservation writes zeros over the whole file.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::meter::Meter;
use super::place::{finalize, is_disk_full};
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

/// A range is split only when at least this much of it is still to be received...
const MIN_SPLIT: u64 = 256 << 10;
/// ... and its connection would need at least this long for it (a new request costs a round
/// trip and a slow start; measured, it also keeps the count of requests down).
const MIN_SPLIT_S: f64 = 0.5;
/// Files smaller than this are never segmented, whatever `DOWNLOAD_SEGMENT_MIN` says.
const MIN_FILE: u64 = 1 << 20;
/// Bytes a connection gathers before one positioned write on a blocking thread...
const WRITE_BATCH: usize = 256 << 10;
/// ... or after this long, so that progress (and the stored segments) stay current.
const WRITE_EVERY: Duration = Duration::from_millis(250);
/// How often the segments are synced and handed to the observer.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often the single connection's speed is looked at (`Probe`)...
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// ... the other connections being opened only if it would still need this long alone.
const WORTH_SPLITTING_S: f64 = 2.0;
/// The ranges laid out when the connections open differ in length by this share of the average
/// from one to the next (the first shortest): they complete one after the other, each shortly
/// before the next, so the in-order hash has caught up when the last byte arrives (`spread`).
const STAGGER: f64 = 0.05;
/// Connections of one download that may be re-opened after a failure, per segment allowed.
const REOPENS_PER_SEGMENT: u32 = 3;
/// Bytes one connection may hold in memory while its previous batch is being written.
const MAX_BUFFERED: usize = 8 << 20;

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
        contiguous(&self.segments)
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

/// Bytes from the start of the file that are all on disk, given its segments.
fn contiguous(segments: &[Segment]) -> u64 {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
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

/// A response body, read chunk by chunk.
pub(super) type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A fresh download the single path hands over: the rest of its body (the first segment's
/// stream), the file's size and the bytes already written (and hashed: the part's `hasher`).
pub(super) struct Handover {
    pub(super) body: Body,
    pub(super) total: u64,
    pub(super) written: u64,
}

/// Watches a fresh download on its single connection (`wanted` said it could be segmented):
/// says when to open the other connections. The download stays on one connection, with nothing
/// of the segmented machinery (no preallocation, no positioned writes, no re-read for the hash),
/// as long as it would not need `WORTH_SPLITTING_S` more alone, or the host has no free slot, or
/// the connection is already fast next to this machine's SHA-256 speed (`hash_speed`): `count`
/// connections at its speed would need more than `CPU_SHARE` of it. Such a download is bound by
/// the CPU (hashing, copying), not by a per-connection cap: more connections only add work
/// (measured: a 2 GiB file from an uncapped loopback server, 0.9x of one connection split in 4).
pub(super) struct Probe {
    started: Instant,
    next: Instant,
    total: u64,
    count: usize,
    host: Arc<Host>,
    /// Consecutive looks that found the connection slow.
    slow_looks: u32,
}

/// Looks in a row (20 ms apart) that must find the connection slow: one look early in a download
/// can catch this process starved of CPU on a busy machine (measured: an uncapped download split
/// at load 7).
const SLOW_LOOKS: u32 = 3;

/// More connections only when together, at the first one's speed, they would need at most this
/// share of what one core hashes (SHA-256) per second.
const CPU_SHARE: f64 = 0.5;

/// Bytes per second this machine hashes with SHA-256: measured once, the best of four passes
/// over 1 MiB (~3 ms in all; the best, so that a pass interrupted by another process does not
/// count).
fn hash_speed() -> f64 {
    static SPEED: LazyLock<f64> = LazyLock::new(|| {
        let data = vec![0x5au8; 1 << 20];
        (0..4)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
                data.len() as f64 / started.elapsed().as_secs_f64().max(1e-9)
            })
            .fold(0.0, f64::max)
    });
    *SPEED
}

impl Probe {
    pub(super) fn new(job: &Job, url: &Url, total: u64) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            next: now + PROBE_EVERY,
            total,
            count: job.segments.count,
            host: host_entry(url, host_capacity(job.segments.count)),
            slow_looks: 0,
        }
    }

    /// When to look next.
    pub(super) fn next_look(&self) -> Instant {
        self.next
    }

    /// Whether to hand over now, `received` bytes in (looked at every `PROBE_EVERY`).
    pub(super) fn split_now(&mut self, received: u64) -> bool {
        let now = Instant::now();
        self.next = now + PROBE_EVERY;
        let speed = received as f64 / now.duration_since(self.started).as_secs_f64();
        let left_s = self.total.saturating_sub(received) as f64 / speed.max(1.0);
        let slow = left_s >= WORTH_SPLITTING_S
            && speed * self.count as f64 <= hash_speed() * CPU_SHARE
            && self.host.slots.available_permits() > 0;
        self.slow_looks = if slow { self.slow_looks + 1 } else { 0 };
        self.slow_looks >= SLOW_LOOKS
    }
}

// ---------------------------------------------------------------------------------------------
// Hashing in order, beside the transfer

/// What the hashing thread and the connections share.
struct Follow {
    /// Bytes from the start of the file that are on disk (the connections move it on).
    frontier: Mutex<(u64, bool)>,
    moved: Condvar,
    stop: AtomicBool,
    /// Bytes hashed so far.
    hashed: AtomicU64,
}

impl Follow {
    /// The contiguous prefix on disk now reaches `upto`.
    fn advance(&self, upto: u64) {
        let mut f = self.frontier.lock().unwrap_or_else(|e| e.into_inner());
        if upto > f.0 {
            f.0 = upto;
            self.moved.notify_one();
        }
    }
}

/// The SHA-256 of the file, computed in order by a thread of its own that follows the contiguous
/// prefix on disk: as soon as a range completes, the ranges after it that are already received are
/// read back (from the page cache) and hashed, then followed as they grow. Together with `spread`
/// (the ranges complete one after the other) little is left to hash after the last byte.
struct Hasher {
    follow: Arc<Follow>,
    thread: Option<std::thread::JoinHandle<io::Result<(Sha256, u64)>>>,
}

impl Hasher {
    /// Starts hashing `file` from `prefix` (the hash of its first bytes; `None`: from 0).
    fn start(file: Arc<std::fs::File>, prefix: Option<(Sha256, u64)>) -> io::Result<Self> {
        let (hasher, from) = prefix.unwrap_or_else(|| (Sha256::new(), 0));
        let follow = Arc::new(Follow {
            frontier: Mutex::new((from, false)),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
            hashed: AtomicU64::new(from),
        });
        let shared = follow.clone();
        let thread = std::thread::Builder::new()
            .name("rushes-hash".into())
            .spawn(move || follow_prefix(&file, &shared, hasher, from))?;
        Ok(Self {
            follow,
            thread: Some(thread),
        })
    }

    /// Hashes up to `total` (the whole file is on disk) and gives the hash. Blocking.
    fn finish(mut self, total: u64) -> io::Result<(Sha256, u64)> {
        {
            let mut f = self
                .follow
                .frontier
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *f = (total, true);
            self.follow.moved.notify_one();
        }
        self.join()
    }

    /// Stops at once; gives the hash of the bytes hashed so far (a valid prefix). Blocking.
    fn stop(mut self) -> Option<(Sha256, u64)> {
        self.follow.stop.store(true, Ordering::Relaxed);
        self.follow.moved.notify_one();
        self.join().ok()
    }

    fn join(&mut self) -> io::Result<(Sha256, u64)> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("the hashing thread failed")),
        }
    }
}

impl Drop for Hasher {
    fn drop(&mut self) {
        // Not joined here (it may be in a read): told to stop, it ends on its own.
        self.follow.stop.store(true, Ordering::Relaxed);
        self.follow.moved.notify_one();
    }
}

/// The hashing thread: waits for the frontier to move, hashes up to it, until told to finish
/// (then everything up to the frontier is hashed) or to stop.
fn follow_prefix(
    file: &std::fs::File,
    follow: &Follow,
    mut hasher: Sha256,
    mut upto: u64,
) -> io::Result<(Sha256, u64)> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let target = {
            let mut f = follow.frontier.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if follow.stop.load(Ordering::Relaxed) {
                    return Ok((hasher, upto));
                }
                if f.0 > upto {
                    break f.0;
                }
                if f.1 {
                    return Ok((hasher, upto));
                }
                f = follow.moved.wait(f).unwrap_or_else(|e| e.into_inner());
            }
        };
        while upto < target {
            if follow.stop.load(Ordering::Relaxed) {
                return Ok((hasher, upto));
            }
            let want = buf
                .len()
                .min(usize::try_from(target - upto).unwrap_or(usize::MAX));
            let n = file.read_at(&mut buf[..want], upto)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "partial file shorter than expected",
                ));
            }
            hasher.update(&buf[..n]);
            upto += n as u64;
            follow.hashed.store(upto, Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running

/// What every connection of one download shares.
struct Ctx {
    client: reqwest::Client,
    url: Url,
    /// The URL's own headers (from a link resolver), sent on every ranged request.
    headers: HeaderMap,
    validator: String,
    total: u64,
    file: Arc<std::fs::File>,
    state: Mutex<Shared>,
    cancel: CancellationToken,
    /// The hashing thread, told whenever the contiguous prefix on disk grows.
    follow: Arc<Follow>,
    /// Write and hash on the connection's own task (`Job::inline_writes`: the one-shot CLI).
    inline: bool,
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

    /// The one range of a fresh download (its connection running) cut for `extra` more
    /// connections: the rest is laid out in ranges whose lengths grow by `STAGGER` of the average
    /// from the first to the last, so that at equal speeds they complete in file order, a little
    /// apart. Each range completed lets the hashing thread catch up over the next one (already
    /// received up to its connection) before that one completes in turn; the connections done
    /// early take over the earliest range still large enough (`claim`). Returns the new ranges.
    fn spread(&mut self, extra: usize) -> Vec<usize> {
        let (from, end) = (self.received[0], self.segments[0].end);
        let n = extra + 1;
        if self.segments.len() != 1 || end.saturating_sub(from) < MIN_SPLIT * n as u64 {
            return Vec::new();
        }
        let rest = (end - from) as f64;
        let middle = (n - 1) as f64 / 2.0;
        let mut cuts = Vec::with_capacity(n + 1);
        let mut at = 0.0;
        for k in 0..n {
            cuts.push(from + at as u64);
            at += rest / n as f64 * (1.0 + (k as f64 - middle) * STAGGER);
        }
        cuts.push(end);
        self.segments[0].end = cuts[1];
        let mut new = Vec::with_capacity(extra);
        for w in cuts[1..].windows(2) {
            self.segments.push(Segment {
                start: w[0],
                end: w[1],
                done: 0,
            });
            self.active.push(false);
            self.received.push(w[0]);
            self.since.push((Instant::now(), w[0]));
            let i = self.segments.len() - 1;
            self.start(i);
            new.push(i);
        }
        new
    }

    /// A range no connection serves first (the earliest in the file: what the hashing thread
    /// reaches first), else part of a range in progress: the earliest in the file of those with
    /// at least a quarter of the most still to receive (finishing the early ranges first lets
    /// the in-order hash follow; the quarter keeps one slow range from being left to the end).
    /// The connection taking it over gets a share proportional to its speed (`my_speed`, from
    /// its previous range) against the current one's (half when unknown).
    fn claim(&mut self, my_speed: Option<f64>) -> Option<usize> {
        let idle = (0..self.segments.len())
            .filter(|&i| !self.active[i] && self.segments[i].left() > 0)
            .min_by_key(|&i| self.segments[i].next());
        if let Some(i) = idle {
            self.start(i);
            return Some(i);
        }
        let to_receive = |i: usize| self.segments[i].end.saturating_sub(self.received[i]);
        let splittable = || {
            (0..self.segments.len()).filter(|&i| {
                self.active[i]
                    && to_receive(i) >= MIN_SPLIT
                    && self
                        .speed(i)
                        .is_none_or(|v| to_receive(i) as f64 >= v * MIN_SPLIT_S)
            })
        };
        let most = splittable().map(to_receive).max()?;
        let i = splittable()
            .filter(|&i| to_receive(i) >= most / 4)
            .min_by_key(|&i| self.segments[i].start)?;
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
        tracing::debug!(
            split = i,
            from = mid,
            to = end,
            kept = mid - self.received[i],
            "work stealing: a free connection takes the end of a range"
        );
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

/// Runs (or resumes) a segmented download of `source`. `first` is a fresh download the single
/// path hands over (its probe found it slow): the rest of its body becomes the first range's
/// stream, what it wrote the start of that range, its hash the start of the in-order hash.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<O: Observer>(
    client: &reqwest::Client,
    job: &Job,
    source: &JobUrl,
    part: &mut Option<Part>,
    plan: &mut Plan,
    first: Option<Handover>,
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
    let no_space = |e: io::Error, bytes: u64| match is_disk_full(&e) {
        true => TryError::Fatal(TransferError::NoSpace {
            dir: job.dir.display().to_string(),
            bytes,
        }),
        false => io_fatal(&p.path, e),
    };
    let mut first_stream = None;
    if let Some(handover) = first {
        // One range, started by the single path; cut for the other connections below.
        plan.segments = vec![Segment {
            start: 0,
            end: handover.total,
            done: handover.written.min(handover.total),
        }];
        // Stored before the part is sized and the first byte written at an offset.
        observer
            .segments(&plan.segments)
            .await
            .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
        // Sized at once (sparse): positioned writes land anywhere in it.
        file.set_len(handover.total)
            .map_err(|e| no_space(e, handover.written))?;
        first_stream = Some(handover.body);
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

    let file = Arc::new(file);
    // The hash known so far (the single path's, or an earlier try's) if it is of bytes on disk.
    let prefix = p.hasher.take().filter(|(_, n)| *n <= plan.contiguous());
    let hasher = Hasher::start(file.clone(), prefix).map_err(|e| io_fatal(&p.path, e))?;
    hasher.follow.advance(plan.contiguous());
    let stop = cancel.child_token();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        url: source.url.clone(),
        headers: source.headers.clone(),
        validator: validator.clone(),
        total,
        file: file.clone(),
        state: Mutex::new(Shared::new(plan.segments.clone())),
        cancel: stop.clone(),
        follow: hasher.follow.clone(),
        inline: job.inline_writes,
    });
    let mut workers: JoinSet<(End, Option<HostSlot>, u64)> = JoinSet::new();
    let mut reserving: Option<tokio::task::JoinHandle<io::Result<()>>> = None;
    if let Some(stream) = first_stream {
        let mut slots = slots.into_iter();
        let own = slots.next().flatten();
        let extra: Vec<Option<HostSlot>> = slots.collect();
        lock(&ctx).start(0);
        let ranges = lock(&ctx).spread(extra.len());
        workers.spawn(connection(
            ctx.clone(),
            0,
            Some(stream),
            own,
            Duration::ZERO,
        ));
        for (index, slot) in ranges.into_iter().zip(extra) {
            workers.spawn(connection(ctx.clone(), index, None, slot, Duration::ZERO));
        }
        // Blocks reserved beside the transfer (a full disk fails now, not half-way): on tmpfs
        // that writes zeros over the whole file, which must not delay the connections.
        let file = ctx.file.clone();
        reserving = Some(tokio::task::spawn_blocking(move || reserve(&file, total)));
    } else {
        if plan.segments.len() > 1 {
            reserve(&ctx.file, total).map_err(|e| no_space(e, plan.done()))?;
        }
        for slot in slots {
            let claimed = lock(&ctx).claim(None);
            let Some(index) = claimed else { break };
            workers.spawn(connection(ctx.clone(), index, None, slot, Duration::ZERO));
        }
    }

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
            reserved = async { reserving.as_mut().expect("guarded").await }, if reserving.is_some() => {
                reserving = None;
                if let Ok(Err(e)) = reserved {
                    fatal.get_or_insert(End::Write(e));
                    stop.cancel();
                }
            }
            _ = ticker.tick() => {
                let (done, active) = {
                    let s = lock(&ctx);
                    (s.segments.iter().map(|s| s.done).sum::<u64>(), s.active_count())
                };
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
    let last_byte = Instant::now();
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

    if fatal.is_some() || cancel.is_cancelled() || !plan.complete() {
        // The hash of the prefix stays valid for the next try (segmented or not).
        p.hasher = tokio::task::spawn_blocking(move || hasher.stop())
            .await
            .ok()
            .flatten();
        return Err(unfinished(&job.dir, p, plan, observer, fatal, cancel, done, last_error).await);
    }

    let hashed_before = hasher.follow.hashed.load(Ordering::Relaxed);
    let hashed = tokio::task::spawn_blocking(move || {
        // The sync and the end of the hash run side by side.
        let synced = file.sync_all();
        let hash = hasher.finish(total);
        synced?;
        hash
    })
    .await
    .map_err(|e| TryError::Retry(format!("hashing the file: {e}")))?;
    let (sha, upto) = hashed.map_err(|e| io_fatal(&p.path, e))?;
    if upto != total {
        return Err(TryError::Fatal(TransferError::Internal(
            "the hash does not cover the whole file",
        )));
    }
    let sha256 = hex::encode(sha.finalize());
    tracing::info!(
        bytes = total,
        after_last_byte_ms = last_byte.elapsed().as_millis() as u64,
        hashed_before_last_byte = hashed_before,
        fresh,
        "segmented download complete"
    );
    let final_path = finalize(&job.dir, p, &sha256, total, observer).await?;
    plan.segments.clear();
    let _ = observer.segments(&[]).await;
    Ok((final_path, sha256, total))
}

/// Why a try ended without the whole file, once its connections have all ended; the part and
/// the plan are made ready for the next try (started over, or back to one connection).
#[allow(clippy::too_many_arguments)]
async fn unfinished<O: Observer>(
    job_dir: &std::path::Path,
    p: &mut Part,
    plan: &mut Plan,
    observer: &mut O,
    fatal: Option<End>,
    cancel: &CancellationToken,
    done: u64,
    last_error: Option<String>,
) -> TryError {
    let ready = match fatal {
        Some(End::Changed(message)) => start_over(p, plan, observer).await.map(|()| {
            TryError::Retry(format!(
                "{message}; the file changed on the server, starting over"
            ))
        }),
        Some(End::NoRanges) => {
            plan.disabled = true;
            back_to_one_connection(p, plan, observer).await.map(|()| {
                TryError::Retry("the server ignores ranges; continuing over one connection".into())
            })
        }
        Some(End::NextUrl(message)) => back_to_one_connection(p, plan, observer)
            .await
            .map(|()| TryError::NextUrl(message)),
        Some(End::Write(e)) if is_disk_full(&e) => Ok(TryError::Fatal(TransferError::NoSpace {
            dir: job_dir.display().to_string(),
            bytes: done,
        })),
        Some(End::Write(e)) => Ok(io_fatal(&p.path, e)),
        _ if cancel.is_cancelled() => Ok(TryError::Fatal(TransferError::Cancelled)),
        _ => Ok(TryError::Retry(format!(
            "{done} of {} bytes after every connection ended: {}",
            plan.total(),
            last_error.unwrap_or_else(|| "connections closed".into())
        ))),
    };
    ready.unwrap_or_else(|e| e)
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

/// Reserves the blocks not written yet (a full disk fails now, not half-way; what is written
/// stays): done when several connections start writing at their offsets.
fn reserve(file: &std::fs::File, total: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, total) {
        Err(e) if e == rustix::io::Errno::NOSPC => Err(io::Error::from(e)),
        _ => Ok(()), // unsupported: the writes allocate as they go
    }
}

/// One connection: serves segment `index`, then claims another, until none is left.
async fn connection(
    ctx: Arc<Ctx>,
    mut index: usize,
    mut stream: Option<Body>,
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
                Ok(r) => Box::pin(r.bytes_stream()),
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
        .headers(ctx.headers.clone())
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

/// Streams the body into the segment's range until the range (which may shrink) is full,
/// reading on while the previous batch is written (one write in flight). `None` when the range
/// is done.
async fn fill(ctx: &Ctx, index: usize, mut body: Body, received: &mut u64) -> Option<End> {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    // On disk up to `written`; up to `queued` once the write in flight is done.
    let mut written = lock(ctx).segments[index].next();
    let mut queued = written;
    let mut in_flight: Option<tokio::task::JoinHandle<io::Result<u64>>> = None;
    let mut last_write = Instant::now();
    // `Some` once the body ended: with the error, if any.
    let mut ended: Option<Option<End>> = None;
    loop {
        let end = lock(ctx).segments[index].end;
        let covered = queued + batch_len as u64 >= end;
        if in_flight.is_none()
            && batch_len > 0
            && (batch_len >= WRITE_BATCH
                || ended.is_some()
                || covered
                || last_write.elapsed() >= WRITE_EVERY)
        {
            last_write = Instant::now();
            let room = end.saturating_sub(queued);
            let chunks = std::mem::take(&mut batch);
            queued += room.min(batch_len as u64);
            batch_len = 0;
            let file = ctx.file.clone();
            let at = written;
            if ctx.inline {
                // The one-shot CLI: written here (as its single-connection path does).
                let result = write_at(&file, &chunks, at, room);
                if let Some(end) = wrote(ctx, index, &mut written, result) {
                    return end;
                }
            } else {
                in_flight = Some(tokio::task::spawn_blocking(move || {
                    write_at(&file, &chunks, at, room)
                }));
            }
        }
        if in_flight.is_none()
            && batch_len == 0
            && let Some(error) = ended.take()
        {
            return Some(
                error.unwrap_or_else(|| {
                    End::Retry(format!("the connection ended at byte {written}"))
                }),
            );
        }
        let reading = ended.is_none() && !covered && batch_len < MAX_BUFFERED;
        if !reading && in_flight.is_none() {
            // Nothing buffered, nothing to read: the range is on disk.
            return None;
        }
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => {
                settle(in_flight).await;
                return Some(End::Cancelled);
            }
            done = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                let result = done.unwrap_or_else(|e| {
                    Err(io::Error::other(format!("writer task failed: {e}")))
                });
                if let Some(end) = wrote(ctx, index, &mut written, result) {
                    return end;
                }
            }
            next = body.next(), if reading => match next {
                None => ended = Some(None),
                Some(Err(e)) => ended = Some(Some(End::Retry(net::error_text(&e)))),
                Some(Ok(chunk)) => {
                    *received += chunk.len() as u64;
                    batch_len += chunk.len();
                    batch.push(chunk);
                    lock(ctx).received[index] = queued + batch_len as u64;
                }
            },
        }
    }
}

/// A write ended: the segment's `done` moves on, and the hashing thread is told when the
/// contiguous prefix grew. `Some` when the connection's range is over (`Some(None)`: done;
/// `Some(Some(end))`: failed).
fn wrote(
    ctx: &Ctx,
    index: usize,
    written: &mut u64,
    result: io::Result<u64>,
) -> Option<Option<End>> {
    let n = match result {
        Ok(n) => n,
        Err(e) => return Some(Some(End::Write(e))),
    };
    *written += n;
    let mut state = lock(ctx);
    let s = &mut state.segments[index];
    s.done = (*written - s.start).min(s.end - s.start);
    let over = s.left() == 0;
    ctx.follow.advance(contiguous(&state.segments));
    over.then_some(None)
}

/// Waits for a write still in flight (so that nothing lands in the file after this connection
/// has ended, e.g. after the part was emptied to start over).
async fn settle(in_flight: Option<tokio::task::JoinHandle<io::Result<u64>>>) {
    if let Some(handle) = in_flight {
        let _ = handle.await;
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
    fn a_range_its_connection_is_about_to_finish_is_not_split() {
        let mut s = Shared::new(vec![seg(0, 10 << 20, 0)]);
        s.start(0);
        s.since[0] = (Instant::now() - Duration::from_secs(1), 0);
        // 4 MiB/s with 1 MiB left: done in a quarter of a second, not worth a request.
        s.received[0] = 9 << 20;
        s.segments[0].done = 9 << 20;
        s.since[0] = (Instant::now() - Duration::from_secs(1), 5 << 20);
        assert_eq!(s.claim(None), None);
        // With 3 MiB left (0.75 s), it is.
        s.received[0] = 7 << 20;
        s.segments[0].done = 7 << 20;
        s.since[0] = (Instant::now() - Duration::from_secs(1), 3 << 20);
        assert!(s.claim(None).is_some());
    }

    #[test]
    fn the_probe_splits_a_slow_connection_not_a_fast_or_nearly_done_one() {
        let probe = |total: u64| Probe {
            started: Instant::now() - Duration::from_secs(1),
            next: Instant::now(),
            total,
            count: 4,
            host: Arc::new(Host {
                slots: Arc::new(Semaphore::new(3)),
                waiting: AtomicUsize::new(0),
            }),
            slow_looks: 0,
        };
        // Three looks in a row must find it slow.
        let thrice = |mut p: Probe, received: u64| {
            (0..SLOW_LOOKS)
                .map(|_| p.split_now(received))
                .collect::<Vec<_>>()
        };
        // 4 MB/s, 100 MB left: 25 s alone, a fraction of what the CPU hashes.
        assert_eq!(
            thrice(probe(104_000_000), 4_000_000),
            vec![false, false, true]
        );
        // 4 MB/s but 6 MB left: done in 1.5 s.
        assert!(!thrice(probe(10_000_000), 4_000_000).contains(&true));
        // As fast as this machine hashes: bound by the CPU, not by a cap.
        let fast = hash_speed() as u64;
        assert!(!thrice(probe(fast * 100), fast).contains(&true));
        // No free slot for the host: stays alone.
        let mut full = probe(104_000_000);
        full.host = Arc::new(Host {
            slots: Arc::new(Semaphore::new(0)),
            waiting: AtomicUsize::new(0),
        });
        assert!(!thrice(full, 4_000_000).contains(&true));
        // A fast look in between starts the count again.
        let mut p = probe(104_000_000);
        assert!(!p.split_now(4_000_000));
        assert!(!p.split_now(fast * 2));
        assert!(!p.split_now(4_000_000));
        assert!(!p.split_now(4_000_000));
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

    #[test]
    fn spread_lays_out_staggered_ranges_that_cover_the_rest() {
        let total = 400 << 20;
        let mut s = Shared::new(vec![seg(0, total, 0)]);
        s.start(0);
        s.received[0] = 8 << 20;
        let new = s.spread(3);
        assert_eq!(new, vec![1, 2, 3]);
        assert!(new.iter().all(|&i| s.active[i]));
        // Contiguous, in file order, covering the file.
        for w in s.segments.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(s.segments[3].end, total);
        // Each longer than the one before (the first completes first), by about STAGGER.
        let first = s.segments[0].end - s.received[0];
        let lens: Vec<u64> = std::iter::once(first)
            .chain(s.segments[1..].iter().map(|g| g.end - g.start))
            .collect();
        let average = (total - (8 << 20)) as f64 / 4.0;
        for w in lens.windows(2) {
            assert!(w[0] < w[1], "{lens:?}");
            let step = (w[1] - w[0]) as f64 / average;
            assert!((step - STAGGER).abs() < 0.001, "{lens:?}");
        }
        // Too little left for four: not cut.
        let mut small = Shared::new(vec![seg(0, MIN_SPLIT * 3, 0)]);
        small.start(0);
        assert!(small.spread(3).is_empty());
        assert_eq!(small.segments.len(), 1);
    }

    #[test]
    fn a_free_connection_splits_the_earliest_range_with_enough_left() {
        let mut s = Shared::new(vec![
            seg(0, 100 << 20, 100 << 20),
            seg(100 << 20, 200 << 20, 90 << 20),
            seg(200 << 20, 300 << 20, 80 << 20),
            seg(300 << 20, 400 << 20, 50 << 20),
        ]);
        for i in 1..4 {
            s.start(i);
        }
        // 10, 20 and 50 MiB left: the first with at least a quarter of the most (12.5 MiB).
        let i = s.claim(None).expect("a split");
        assert_eq!(s.segments[i].end, 300 << 20, "{:?}", s.segments);
        // Then the earliest again: range 1 (10 MiB) is now a fifth of the most (50 MiB).
        let j = s.claim(None).expect("a split");
        assert_eq!(s.segments[j].end, 400 << 20, "{:?}", s.segments);
    }

    #[test]
    fn the_hashing_thread_follows_the_prefix_and_stops_on_a_valid_prefix() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f.part");
        let body: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?,
        );
        file.set_len(body.len() as u64)?;
        // The second half first (out of order), then the first: hashed in order all the same.
        let half = body.len() / 2;
        file.write_all_at(&body[half..], half as u64)?;
        let mut known = Sha256::new();
        known.update(&body[..10]);
        let hasher = Hasher::start(file.clone(), Some((known, 10)))?;
        file.write_all_at(&body[..half], 0)?;
        hasher.follow.advance(half as u64);
        let (sha, upto) = hasher.finish(body.len() as u64)?;
        assert_eq!(upto, body.len() as u64);
        assert_eq!(sha.finalize().as_slice(), Sha256::digest(&body).as_slice());

        // Stopped: whatever it covers is the hash of that many first bytes.
        let hasher = Hasher::start(file.clone(), None)?;
        hasher.follow.advance(half as u64);
        let (sha, upto) = hasher.stop().expect("a prefix");
        assert!(upto <= half as u64);
        let upto = usize::try_from(upto).unwrap_or(usize::MAX);
        assert_eq!(
            sha.finalize().as_slice(),
            Sha256::digest(&body[..upto]).as_slice()
        );
        Ok(())
    }
}
