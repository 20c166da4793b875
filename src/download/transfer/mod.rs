//! One file over HTTP, shared by the service's workers and `rushes download`: URLs tried in order
//! with retries, streamed into `<name>.part` (resumed with `Range` + `If-Range`), hashed while
//! streaming, fsynced, then renamed without ever replacing an existing file.
//!
//! This file is the loop over URLs and tries. Below it, each file uses only files listed after
//! it: `attempt.rs` (one GET on one connection), `segmented/` (several ranged connections),
//! `pages.rs` (Dropbox failure pages), `sink.rs` + `flush.rs` (write and hash), `meter.rs`
//! (speed), `part.rs` (the partial file, how a try ended), `place.rs` (names, reservations,
//! free space, the no-replace rename), `ranged.rs` (what ranged answers' headers say), and
//! `job.rs` (the job, its outcome, the observer).

mod attempt;
mod flush;
mod job;
mod meter;
mod pages;
mod part;
mod place;
mod ranged;
mod segmented;
mod sink;

pub use job::{
    Finished, Job, JobUrl, Observer, Progress, Resume, Segment, Segmenting, TransferError,
};
pub use place::part_path;
pub use ranged::parse_content_range;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use std::path::PathBuf;

use part::{Part, Try, TryError};

use crate::net::{self, RetryPolicy};

/// The HTTP client downloads use: no total timeout (files are large), but connect and read timeouts.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    net::client(net::Timeouts {
        connect: timeout,
        request: None,
        read: Some(timeout),
    })
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
    let mut last_error = String::new();
    let mut plan = segmented::Plan::new(job);
    let mut t = Try {
        client,
        job,
        observer,
        cancel,
        fetched: 0,
    };
    for source in &job.urls {
        let shown = net::redact(&source.url);
        // This download's connection to the host; segments take more (`segmented/`).
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
            let outcome = one_try(&mut t, source, &mut part, &mut plan).await;
            let (message, retry_this_url) = match outcome {
                Ok((path, sha256, bytes)) => {
                    t.observer
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
                        fetched: t.fetched,
                    });
                }
                Err(TryError::Fatal(e)) => {
                    if !matches!(e, TransferError::Cancelled) {
                        let message = e.to_string();
                        let _ = t
                            .observer
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
            t.observer
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

/// One try of `source`: the stored segments resumed, else one GET (handed over to the
/// segmented path when its probe finds the connection slow).
async fn one_try<O: Observer>(
    t: &mut Try<'_, O>,
    source: &JobUrl,
    part: &mut Option<Part>,
    plan: &mut segmented::Plan,
) -> Result<(PathBuf, String, u64), TryError> {
    if plan.resumes(part) {
        return segmented::run(t, source, part, plan, None).await;
    }
    match attempt::try_once(t, source, part, plan).await {
        Err(TryError::Segmented(handover)) => {
            segmented::run(t, source, part, plan, Some(*handover)).await
        }
        other => other,
    }
}
