//! One ranged connection: opens its range (checked: start, total, validator), streams it into
//! the part at its offset (reading on while the previous batch is written), then takes more work.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::hasher::Follow;
use super::plan::contiguous;
use super::shared::Shared;
use super::slots::HostSlot;
use crate::download::transfer::part::Body;
use crate::download::transfer::ranged::{content_range, validator_of};
use crate::net;

/// Bytes a connection gathers before one positioned write on a blocking thread...
pub(super) const WRITE_BATCH: usize = 256 << 10;
/// ... or after this long, so that progress (and the stored segments) stay current.
pub(super) const WRITE_EVERY: Duration = Duration::from_millis(250);
/// Bytes one connection may hold in memory while its previous batch is being written.
pub(super) const MAX_BUFFERED: usize = 8 << 20;

/// What every connection of one download shares.
pub(super) struct Ctx {
    pub(super) client: reqwest::Client,
    pub(super) url: Url,
    /// The URL's own headers (from a link resolver), sent on every ranged request.
    pub(super) headers: HeaderMap,
    pub(super) validator: String,
    pub(super) total: u64,
    pub(super) file: Arc<std::fs::File>,
    pub(super) state: Mutex<Shared>,
    pub(super) cancel: CancellationToken,
    /// The hashing thread, told whenever the contiguous prefix on disk grows.
    pub(super) follow: Arc<Follow>,
    /// Write and hash on the connection's own task (`Job::inline_writes`: the one-shot CLI).
    pub(super) inline: bool,
}

/// How one connection ended.
pub(super) enum End {
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

pub(super) fn lock(ctx: &Ctx) -> std::sync::MutexGuard<'_, Shared> {
    ctx.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection: serves segment `index`, then claims another, until none is left.
pub(super) async fn connection(
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

pub(super) fn release(ctx: &Ctx, index: usize, end: End) -> End {
    lock(ctx).active[index] = false;
    end
}

/// `GET` with `Range` (up to the segment's current end) and `If-Range`, checked.
pub(super) async fn open_range(ctx: &Ctx, index: usize) -> Result<reqwest::Response, End> {
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
pub(super) async fn fill(
    ctx: &Ctx,
    index: usize,
    mut body: Body,
    received: &mut u64,
) -> Option<End> {
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
pub(super) fn wrote(
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
pub(super) async fn settle(in_flight: Option<tokio::task::JoinHandle<io::Result<u64>>>) {
    if let Some(handle) = in_flight {
        let _ = handle.await;
    }
}

/// Writes the chunks from `at`, at most `room` bytes; returns the bytes written.
pub(super) fn write_at(
    file: &std::fs::File,
    chunks: &[Bytes],
    at: u64,
    room: u64,
) -> io::Result<u64> {
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
