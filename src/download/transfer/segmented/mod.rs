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
//!
//! Files: `plan.rs` (deciding), `slots.rs` (per-host connections), `shared.rs` (ranges: layout and
//! work stealing), `connection.rs` (one ranged connection), `hasher.rs` (the in-order hash);
//! this file runs one try in named steps.

mod connection;
mod hasher;
mod plan;
mod shared;
mod slots;

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::task::JoinSet;

pub(super) use plan::{Plan, Probe, wanted};
pub(super) use slots::{host_capacity, host_slot};

use super::job::{JobUrl, Observer, PROGRESS_EVERY, Progress, Segment, TransferError};
use super::meter::Meter;
use super::part::{Body, Handover, Part, Try, TryError, finalize, io_fatal, lock_part, reset_part};
use super::place::is_disk_full;
use connection::{Ctx, End, connection, lock};
use hasher::Hasher;
use shared::Shared;
use slots::{HostSlot, try_host_slot};

/// How often the segments are synced and handed to the observer.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Connections of one download that may be re-opened after a failure, per segment allowed.
const REOPENS_PER_SEGMENT: u32 = 3;
/// How one try's connections ended, once they all have.
struct Outcome {
    /// The first error that ends the try (the file changed, no ranges, a write failed…).
    fatal: Option<End>,
    /// The last error a connection was re-opened after.
    last_error: Option<String>,
    /// The speed over the try's last seconds (for the last progress report).
    meter: Meter,
}

/// Runs (or resumes) a segmented download of `source`. `first` is a fresh download the single
/// path hands over (its probe found it slow): the rest of its body becomes the first range's
/// stream, what it wrote the start of that range, its hash the start of the in-order hash.
pub(super) async fn run<O: Observer>(
    t: &mut Try<'_, O>,
    source: &JobUrl,
    part: &mut Option<Part>,
    plan: &mut Plan,
    first: Option<Handover>,
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
    let slots = extra_slots(t, source);
    let fresh = first.is_some();
    let (file, first) = open_part(t, p, plan, first).await?;
    let total = plan.total();
    if !fresh {
        // Resumed from stored segments: the observer learns the part again (the CLI's sidecars).
        t.observer
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
    let stop = t.cancel.child_token();
    let ctx = Arc::new(Ctx {
        client: t.client.clone(),
        url: source.url.clone(),
        headers: source.headers.clone(),
        validator,
        total,
        file: file.clone(),
        state: Mutex::new(Shared::new(plan.segments.clone())),
        cancel: stop.clone(),
        follow: hasher.follow.clone(),
        inline: t.job.inline_writes,
    });
    let mut workers = JoinSet::new();
    let reserving = open_connections(&ctx, plan, slots, first, &mut workers)
        .map_err(|e| no_space(t, p, e, plan.done()))?;
    let mut outcome = watch(t, &ctx, &mut workers, reserving, plan.done()).await?;
    let last_byte = Instant::now();
    // Every connection has ended: what is in `ctx` is final for this try.
    plan.segments = lock(&ctx).segments.clone();
    save(&ctx, t.observer, Saved::InOrder).await?;
    let done = plan.done();
    t.observer
        .progress(Progress {
            segments: 0,
            ..outcome.meter.last(done, Some(total))
        })
        .await;
    if outcome.fatal.is_some() || t.cancel.is_cancelled() || !plan.complete() {
        // The hash of the prefix stays valid for the next try (segmented or not).
        p.hasher = tokio::task::spawn_blocking(move || hasher.stop())
            .await
            .ok()
            .flatten();
        return Err(unfinished(t, p, plan, outcome, done).await);
    }
    let sha256 = hash_whole(p, hasher, file, total, last_byte, fresh).await?;
    let final_path = finalize(&t.job.dir, p, &sha256, total, t.observer).await?;
    plan.segments.clear();
    let _ = t.observer.segments(&[]).await;
    Ok((final_path, sha256, total))
}

/// The connections this download may open besides its own (held by the caller): as many free
/// slots to the host as segments allowed.
fn extra_slots<O>(t: &Try<'_, O>, source: &JobUrl) -> Vec<Option<HostSlot>> {
    let capacity = host_capacity(t.job.segments.count);
    let mut slots: Vec<Option<HostSlot>> = vec![None];
    while slots.len() < t.job.segments.count {
        match try_host_slot(&source.url, capacity) {
            Some(slot) => slots.push(Some(slot)),
            None => break,
        }
    }
    slots
}

/// A disk error as the try reports it: no space (the part kept), or another write error.
fn no_space<O>(t: &Try<'_, O>, p: &Part, e: io::Error, bytes: u64) -> TryError {
    match is_disk_full(&e) {
        true => TryError::Fatal(TransferError::NoSpace {
            dir: t.job.dir.display().to_string(),
            bytes,
        }),
        false => io_fatal(&p.path, e),
    }
}

/// Opens (and locks) the part; a fresh download handed over becomes one range, stored, and the
/// part is sized at once (sparse). Returns the file and the first range's stream, if any.
async fn open_part<O: Observer>(
    t: &mut Try<'_, O>,
    p: &Part,
    plan: &mut Plan,
    first: Option<Handover>,
) -> Result<(std::fs::File, Option<Body>), TryError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .read(true)
        .truncate(false)
        .open(&p.path)
        .map_err(|e| io_fatal(&p.path, e))?;
    lock_part(&file, &p.path)?;
    let Some(handover) = first else {
        return Ok((file, None));
    };
    // One range, started by the single path; cut for the other connections later.
    plan.segments = vec![Segment {
        start: 0,
        end: handover.total,
        done: handover.written.min(handover.total),
    }];
    // Stored before the part is sized and the first byte written at an offset.
    t.observer
        .segments(&plan.segments)
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
    // Sized at once (sparse): positioned writes land anywhere in it.
    file.set_len(handover.total)
        .map_err(|e| no_space(t, p, e, handover.written))?;
    Ok((file, Some(handover.body)))
}

/// What `workers` run: each connection's end, its slot and the bytes it received.
type Workers = JoinSet<(End, Option<HostSlot>, u64)>;

/// Starts the connections: a fresh download's ranges laid out (`spread`) with its stream on the
/// first, the blocks reserved beside them; a resumed one's ranges claimed one per slot. Returns
/// the reservation running beside a fresh download.
fn open_connections(
    ctx: &Arc<Ctx>,
    plan: &Plan,
    slots: Vec<Option<HostSlot>>,
    first: Option<Body>,
    workers: &mut Workers,
) -> io::Result<Option<tokio::task::JoinHandle<io::Result<()>>>> {
    let Some(stream) = first else {
        if plan.segments.len() > 1 {
            reserve(&ctx.file, ctx.total)?;
        }
        for slot in slots {
            let claimed = lock(ctx).claim(None);
            let Some(index) = claimed else { break };
            workers.spawn(connection(ctx.clone(), index, None, slot, Duration::ZERO));
        }
        return Ok(None);
    };
    let mut slots = slots.into_iter();
    let own = slots.next().flatten();
    let extra: Vec<Option<HostSlot>> = slots.collect();
    lock(ctx).start(0);
    let ranges = lock(ctx).spread(extra.len());
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
    // Blocks reserved beside the transfer (a full disk fails now, not half-way): on tmpfs that
    // writes zeros over the whole file, which must not delay the connections.
    let (file, total) = (ctx.file.clone(), ctx.total);
    Ok(Some(tokio::task::spawn_blocking(move || {
        reserve(&file, total)
    })))
}

/// Runs until every connection has ended: a failed one is re-opened on what is left (a few
/// times), progress is reported and the segments saved as they go.
async fn watch<O: Observer>(
    t: &mut Try<'_, O>,
    ctx: &Arc<Ctx>,
    workers: &mut Workers,
    mut reserving: Option<tokio::task::JoinHandle<io::Result<()>>>,
    resumed: u64,
) -> Result<Outcome, TryError> {
    let mut reopens = REOPENS_PER_SEGMENT * t.job.segments.count as u32;
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_save = Instant::now();
    let mut outcome = Outcome {
        fatal: None,
        last_error: None,
        meter: Meter::new(resumed),
    };
    while !workers.is_empty() {
        tokio::select! {
            joined = workers.join_next() => {
                let Some(joined) = joined else { break };
                let (end, slot, received) = joined
                    .unwrap_or_else(|e| (End::Retry(format!("connection task failed: {e}")), None, 0));
                t.fetched += received;
                match end {
                    End::Idle | End::Cancelled => {}
                    End::Retry(message) => {
                        tracing::warn!(error = %message, "segment connection failed");
                        outcome.last_error = Some(message);
                        if reopens > 0 && !ctx.cancel.is_cancelled() {
                            reopens -= 1;
                            let claimed = lock(ctx).claim(None);
                            if let Some(index) = claimed {
                                workers.spawn(connection(ctx.clone(), index, None, slot, Duration::from_millis(500)));
                            }
                        }
                    }
                    other => {
                        outcome.fatal.get_or_insert(other);
                        ctx.cancel.cancel();
                    }
                }
            }
            reserved = async { reserving.as_mut().expect("guarded").await }, if reserving.is_some() => {
                reserving = None;
                if let Ok(Err(e)) = reserved {
                    outcome.fatal.get_or_insert(End::Write(e));
                    ctx.cancel.cancel();
                }
            }
            _ = ticker.tick() => {
                let (done, active) = {
                    let s = lock(ctx);
                    (s.segments.iter().map(|s| s.done).sum::<u64>(), s.active_count())
                };
                if let Some(progress) = outcome.meter.tick(done, Some(ctx.total)) {
                    t.observer.progress(Progress { segments: active as u32, ..progress }).await;
                }
                if last_save.elapsed() >= SAVE_EVERY {
                    last_save = Instant::now();
                    save(ctx, t.observer, Saved::Snapshot).await?;
                }
            }
        }
    }
    Ok(outcome)
}

/// Ends the in-order hash once the file is synced: the SHA-256 of the whole file.
async fn hash_whole(
    p: &Part,
    hasher: Hasher,
    file: Arc<std::fs::File>,
    total: u64,
    last_byte: Instant,
    fresh: bool,
) -> Result<String, TryError> {
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
    tracing::info!(
        bytes = total,
        after_last_byte_ms = last_byte.elapsed().as_millis() as u64,
        hashed_before_last_byte = hashed_before,
        fresh,
        "segmented download complete"
    );
    Ok(hex::encode(sha.finalize()))
}

/// Why a try ended without the whole file, once its connections have all ended; the part and
/// the plan are made ready for the next try (started over, or back to one connection).
async fn unfinished<O: Observer>(
    t: &mut Try<'_, O>,
    p: &mut Part,
    plan: &mut Plan,
    outcome: Outcome,
    done: u64,
) -> TryError {
    let observer = &mut *t.observer;
    let ready = match outcome.fatal {
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
            dir: t.job.dir.display().to_string(),
            bytes: done,
        })),
        Some(End::Write(e)) => Ok(io_fatal(&p.path, e)),
        _ if t.cancel.is_cancelled() => Ok(TryError::Fatal(TransferError::Cancelled)),
        _ => Ok(TryError::Retry(format!(
            "{done} of {} bytes after every connection ended: {}",
            plan.total(),
            outcome
                .last_error
                .unwrap_or_else(|| "connections closed".into())
        ))),
    };
    ready.unwrap_or_else(|e| e)
}

/// How [`save`] hands the segments to the observer.
#[derive(Clone, Copy)]
enum Saved {
    /// While connections run: a snapshot the transfer does not wait to see stored.
    Snapshot,
    /// Once they have ended: stored before what comes next.
    InOrder,
}

/// Syncs the file, then stores the segments as they were before the sync.
async fn save<O: Observer>(ctx: &Arc<Ctx>, observer: &mut O, how: Saved) -> Result<(), TryError> {
    let snapshot = lock(ctx).segments.clone();
    let file = ctx.file.clone();
    let synced = tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .map_err(|e| TryError::Retry(format!("syncing the file: {e}")))?;
    if let Err(e) = synced {
        tracing::warn!(error = %e, "cannot sync the partial file; segments not saved");
        return Ok(());
    }
    let saved = match how {
        Saved::Snapshot => observer.segments_snapshot(&snapshot).await,
        Saved::InOrder => observer.segments(&snapshot).await,
    };
    saved.map_err(|e| TryError::Fatal(TransferError::Observer(e)))
}

/// The part is worthless (the file changed): empty it, forget the segments.
async fn start_over<O: Observer>(
    p: &mut Part,
    plan: &mut Plan,
    observer: &mut O,
) -> Result<(), TryError> {
    plan.segments.clear();
    reset_part(p)?;
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
