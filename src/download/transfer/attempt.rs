//! One GET of one URL: the request (with `Range` + `If-Range` when resuming), the answer's
//! checks, the partial file opened at the right offset, the body streamed into the sink.

use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::job::{Job, JobUrl, Observer, TransferError};
use super::meter::Meter;
use super::part::{
    Body, Handover, Part, Try, TryError, finalize, io_fatal, lock_part, reset_part, truncate_part,
};
use super::place::{available_space, choose_name, is_disk_full, part_path};
use super::ranged::{header_str, spliced, validator_of};
use super::sink::{Sink, hash_part};
use super::{pages, segmented};
use crate::{links, naming, net};

/// One GET of one URL. On success returns the final path, its SHA-256 and size.
pub(super) async fn try_once<O: Observer>(
    t: &mut Try<'_, O>,
    source: &JobUrl,
    part: &mut Option<Part>,
    plan: &segmented::Plan,
) -> Result<(PathBuf, String, u64), TryError> {
    let job = t.job;
    let (response, resume_validator, have) = request(t.client, source, part, t.cancel).await?;
    let response = pages::check(response, pages::expects_html(job, part)).await?;
    let headers = response.headers().clone();
    let (offset, total) = accepted_range(
        response.status(),
        &headers,
        response.content_length(),
        resume_validator.as_deref(),
        have,
        part,
    )?;
    let p = choose_part(job, &headers, part)?;
    p.validator = validator_of(&headers);
    if total.is_some() {
        p.total = total;
    }
    t.observer
        .part_chosen(&p.path, &p.name, p.validator.as_deref(), total)
        .await
        .map_err(|e| TryError::Fatal(TransferError::Observer(e)))?;
    check_space(job, offset, total)?;
    // A fresh download that could be segmented starts on this one connection all the same,
    // and is handed over to `segmented::run` only if the probe finds it slow.
    let probe = (offset == 0 && segmented::wanted(job, plan, &headers, total))
        .then(|| segmented::Probe::new(job, &source.url, total.unwrap_or(0)));
    let (file, hasher) = open_part(p, offset).await?;
    let sink = if job.inline_writes {
        Sink::inline(file, hasher)
    } else {
        Sink::thread(file, hasher)
    };
    let (written, outcome) = stream_body(t, response, sink, p, (offset, total), probe).await?;
    let size = offset + written;
    match outcome {
        StreamEnd::Split(body) => {
            return Err(TryError::Segmented(Box::new(Handover {
                body,
                total: total.unwrap_or(0),
                written,
            })));
        }
        StreamEnd::Cancelled => return Err(TryError::Fatal(TransferError::Cancelled)),
        StreamEnd::NetworkError(message) => {
            return Err(TryError::Retry(format!(
                "connection lost after {size} bytes: {message}"
            )));
        }
        StreamEnd::Complete => {}
    }
    finish_part(job, p, size, total, t.observer).await
}

/// Sends the GET, with `Range` + `If-Range` when a part with a validator can be resumed.
/// Returns the response, the validator sent (if any) and the bytes already held.
async fn request(
    client: &reqwest::Client,
    source: &JobUrl,
    part: &Option<Part>,
    cancel: &CancellationToken,
) -> Result<(reqwest::Response, Option<String>, u64), TryError> {
    // Resume only when there is something to resume and a validator to make it safe.
    let have = part
        .as_ref()
        .and_then(|p| p.path.metadata().ok().map(|m| m.len()))
        .unwrap_or(0);
    let resume_validator = part
        .as_ref()
        .and_then(|p| p.validator.clone())
        .filter(|_| have > 0);
    let mut request = client
        .get(source.url.clone())
        .headers(source.headers.clone());
    if let Some(v) = &resume_validator {
        request = request
            .header(header::RANGE, format!("bytes={have}-"))
            .header(header::IF_RANGE, v.as_str());
    }
    let response = tokio::select! {
        () = cancel.cancelled() => return Err(TryError::Fatal(TransferError::Cancelled)),
        r = request.send() => r,
    };
    // A refused redirect (a resolver's file sent off the provider's hosts) will not change.
    let response = response.map_err(|e| match e.is_redirect() {
        true => TryError::NextUrl(net::error_text(&e)),
        false => TryError::Retry(net::error_text(&e)),
    })?;
    Ok((response, resume_validator, have))
}

/// Reads the status: where the body starts in the file (`offset`) and the file's total size.
fn accepted_range(
    status: StatusCode,
    headers: &HeaderMap,
    length: Option<u64>,
    resume_validator: Option<&str>,
    have: u64,
    part: &mut Option<Part>,
) -> Result<(u64, Option<u64>), TryError> {
    let offset;
    let total;
    match status {
        StatusCode::PARTIAL_CONTENT if resume_validator.is_some() => {
            let Some((start, announced)) = header_str(headers, header::CONTENT_RANGE)
                .and_then(super::ranged::parse_content_range)
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
            // A server that ignores If-Range answers 206 with bytes of a newer version.
            if let Some(reason) = spliced(resume_validator.unwrap_or(""), headers) {
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

    Ok((offset, total))
}

/// Decides the name at the first response (Content-Disposition is only known then), refuses an
/// HTML page where a file was expected, and reserves the part.
fn choose_part<'p>(
    job: &Job,
    headers: &HeaderMap,
    part: &'p mut Option<Part>,
) -> Result<&'p mut Part, TryError> {
    let is_html = header_str(headers, header::CONTENT_TYPE)
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));

    // The name is decided once, at the first response (Content-Disposition is only known then).
    let disposition = header_str(headers, header::CONTENT_DISPOSITION);
    let name = match part.as_ref() {
        Some(p) => p.name.clone(),
        None => naming::download_name(
            job.forced_name.as_deref(),
            disposition,
            &job.name_link,
            &job.fallback_name,
            links::is_dropbox_folder(&job.name_link),
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
    part.as_mut().ok_or(TryError::Fatal(TransferError::Internal(
        "no partial file chosen",
    )))
}

/// Refuses a download that cannot fit on the disk, before writing anything.
fn check_space(job: &Job, offset: u64, total: Option<u64>) -> Result<(), TryError> {
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
    Ok(())
}

/// Opens the part at `offset`, with the hash of what is already there.
async fn open_part(p: &mut Part, offset: u64) -> Result<(std::fs::File, Sha256), TryError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&p.path)
        .map_err(|e| io_fatal(&p.path, e))?;
    lock_part(&file, &p.path)?;
    file.set_len(offset).map_err(|e| io_fatal(&p.path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_fatal(&p.path, e))?;
    let hasher = match p.hasher.take() {
        Some((h, n)) if n == offset => h,
        _ if offset == 0 => Sha256::new(),
        known => {
            // What is known of the prefix's hash (a segmented try's, say) is continued.
            let known = known.filter(|(_, n)| *n < offset);
            let path = p.path.clone();
            tokio::task::spawn_blocking(move || hash_part(&path, known, offset))
                .await
                .map_err(|e| TryError::Retry(format!("hashing the partial file: {e}")))?
                .map_err(|e| io_fatal(&p.path, e))?
        }
    };
    Ok((file, hasher))
}

/// How the body stream ended.
enum StreamEnd {
    Complete,
    Cancelled,
    NetworkError(String),
    /// The probe found the connection slow: the rest of the body goes to `segmented::run`.
    Split(Body),
}

/// Streams the body into the sink (written and hashed), reporting progress. What arrived before
/// an error or a cancel is still written: a valid prefix to resume from.
/// `at`: where the body starts in the file, and the file's announced size.
async fn stream_body<O: Observer>(
    t: &mut Try<'_, O>,
    response: reqwest::Response,
    mut sink: Sink,
    p: &mut Part,
    at: (u64, Option<u64>),
    mut probe: Option<segmented::Probe>,
) -> Result<(u64, StreamEnd), TryError> {
    let (offset, total) = at;
    let (job, cancel) = (t.job, t.cancel);
    let mut stream: Body = Box::pin(response.bytes_stream());
    let mut received = 0u64;
    let mut network_error = None;
    let mut meter = Meter::new(offset);
    let mut cancelled = false;
    let mut split = false;
    // The probe looks at the speed on a timer: a capped server may send nothing for a while.
    let look = tokio::time::sleep_until(
        probe
            .as_ref()
            .map_or_else(Instant::now, segmented::Probe::next_look)
            .into(),
    );
    tokio::pin!(look);
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => { cancelled = true; break; }
            () = &mut look, if probe.is_some() => {
                if let Some(p) = probe.as_mut() {
                    if p.split_now(received) {
                        split = true;
                        break;
                    }
                    look.as_mut().reset(p.next_look().into());
                }
                continue;
            }
            n = stream.next() => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                network_error = Some(net::error_text(&e));
                break;
            }
            Some(Ok(chunk)) => {
                received += chunk.len() as u64;
                if !sink.push(chunk).await {
                    break; // the write failed; its error is reported below
                }
                if let Some(progress) = meter.tick(offset + received, total) {
                    t.observer.progress(progress).await;
                }
            }
        }
    }
    let rest = split.then_some(stream);
    t.fetched += received;
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
    t.observer.progress(meter.last(size, total)).await;
    let end = if let Some(body) = rest {
        StreamEnd::Split(body)
    } else if cancelled {
        StreamEnd::Cancelled
    } else if let Some(message) = network_error {
        StreamEnd::NetworkError(message)
    } else {
        StreamEnd::Complete
    };
    Ok((written, end))
}

/// Checks the size against the announced total, then hashes and renames the part.
async fn finish_part<O: Observer>(
    job: &Job,
    p: &mut Part,
    size: u64,
    total: Option<u64>,
    observer: &mut O,
) -> Result<(PathBuf, String, u64), TryError> {
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
