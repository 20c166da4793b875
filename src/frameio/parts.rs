//! The bytes of an upload: a file cut evenly over its presigned URLs, each part `PUT` straight
//! from the file (never held in memory) with `x-amz-acl: private`, the file's `Content-Type`, a
//! known `Content-Length` and no `Authorization` (the URL is the credential), retried on its own.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::TryStreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;
use url::Url;

use crate::net::{self, RetryPolicy};

/// Read size of a part's body stream (what one part holds in memory at a time).
const READ_CHUNK: usize = 256 * 1024;
/// Longest silence allowed while a part is sent or answered.
const PART_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// `Content-Type` when Frame.io gives no `media_type`.
pub const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// One part: its index (0-based, as the URL list), where it starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub idx: usize,
    pub offset: u64,
    pub len: u64,
}

/// `file_size` over `urls` URLs: part size = ceil(file_size / urls), the last part the rest
/// (the `size` each URL announces is not trusted).
pub fn plan(file_size: u64, urls: usize) -> Vec<Part> {
    if urls == 0 {
        return Vec::new();
    }
    let each = file_size.div_ceil(urls as u64);
    (0..urls)
        .map(|idx| {
            let offset = (each * idx as u64).min(file_size);
            let end = if idx + 1 == urls {
                file_size
            } else {
                (offset + each).min(file_size)
            };
            Part {
                idx,
                offset,
                len: end - offset,
            }
        })
        .collect()
}

/// When presigned URLs stop working: the earliest `X-Amz-Date` + `X-Amz-Expires` among them
/// (`None` when they do not say).
pub fn urls_expire_at(urls: &[String]) -> Option<chrono::DateTime<chrono::Utc>> {
    urls.iter()
        .filter_map(|raw| {
            let url = Url::parse(raw).ok()?;
            let mut date = None;
            let mut expires = None;
            for (k, v) in url.query_pairs() {
                if k.eq_ignore_ascii_case("X-Amz-Date") {
                    date = chrono::NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%SZ").ok();
                } else if k.eq_ignore_ascii_case("X-Amz-Expires") {
                    expires = v.parse::<i64>().ok();
                }
            }
            Some(date?.and_utc() + chrono::Duration::seconds(expires?))
        })
        .min()
}

#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The storage refused the URL (403): it expired or was revoked.
    #[error("part {part}: the upload URL was refused (HTTP {status}); it has expired")]
    Expired { part: usize, status: u16 },
    #[error("part {part}: {message}")]
    Failed { part: usize, message: String },
}

/// The HTTP client of presigned PUTs: connect and silence timeouts, no overall one (a part of a
/// large file takes as long as the link needs).
pub fn client() -> reqwest::Result<reqwest::Client> {
    net::client(net::Timeouts {
        connect: Duration::from_secs(10),
        request: None,
        read: Some(PART_READ_TIMEOUT),
    })
}

/// Sends one part, retried per `retry` (5xx, 429, transport errors). `sent` counts the bytes
/// that left; an attempt that fails takes its bytes back.
pub async fn put_part(
    http: &reqwest::Client,
    path: &Path,
    url: &str,
    part: Part,
    media_type: &str,
    retry: RetryPolicy,
    sent: &Arc<AtomicU64>,
) -> Result<(), PartError> {
    let mut backoff = retry.backoff();
    loop {
        let this_try = Arc::new(AtomicU64::new(0));
        let result = put_once(http, path, url, part, media_type, sent, &this_try).await;
        let (message, asked) = match result {
            Ok(()) => return Ok(()),
            Err(Attempt::Fatal(e)) => {
                sent.fetch_sub(this_try.load(Ordering::Relaxed), Ordering::Relaxed);
                return Err(e);
            }
            Err(Attempt::Retry(message, asked)) => (message, asked),
        };
        sent.fetch_sub(this_try.load(Ordering::Relaxed), Ordering::Relaxed);
        let Some(wait) = backoff.next_wait(asked) else {
            return Err(PartError::Failed {
                part: part.idx,
                message: format!("{message} (after {} tries)", retry.attempts),
            });
        };
        tracing::warn!(part = part.idx, wait_ms = wait.as_millis() as u64, error = %message, "Frame.io upload: part failed, retrying");
        tokio::time::sleep(wait).await;
    }
}

enum Attempt {
    Fatal(PartError),
    Retry(String, Option<Duration>),
}

async fn put_once(
    http: &reqwest::Client,
    path: &Path,
    url: &str,
    part: Part,
    media_type: &str,
    sent: &Arc<AtomicU64>,
    this_try: &Arc<AtomicU64>,
) -> Result<(), Attempt> {
    let read_error = |source| {
        Attempt::Fatal(PartError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
    file.seek(std::io::SeekFrom::Start(part.offset))
        .await
        .map_err(read_error)?;
    let (total, mine) = (sent.clone(), this_try.clone());
    let stream =
        ReaderStream::with_capacity(file.take(part.len), READ_CHUNK).inspect_ok(move |chunk| {
            let n = chunk.len() as u64;
            total.fetch_add(n, Ordering::Relaxed);
            mine.fetch_add(n, Ordering::Relaxed);
        });
    let response = http
        .put(url)
        .header("x-amz-acl", "private")
        .header(CONTENT_TYPE, media_type)
        .header(CONTENT_LENGTH, part.len)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| Attempt::Retry(net::error_text(&e), None))?;
    let status = response.status();
    if status.is_success() {
        // The storage checked the length; a short file would not get here.
        if this_try.load(Ordering::Relaxed) != part.len {
            return Err(Attempt::Fatal(PartError::Failed {
                part: part.idx,
                message: "the file is shorter than when the upload began".into(),
            }));
        }
        return Ok(());
    }
    let asked = net::retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let detail: String = body.chars().take(200).collect();
    if status.as_u16() == 403 {
        tracing::warn!(part = part.idx, detail = %detail, "Frame.io upload: part URL refused");
        return Err(Attempt::Fatal(PartError::Expired {
            part: part.idx,
            status: 403,
        }));
    }
    let message = format!("HTTP {status}: {}", detail.trim());
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(Attempt::Retry(message, asked))
    } else {
        Err(Attempt::Fatal(PartError::Failed {
            part: part.idx,
            message,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_even_and_the_last_takes_the_rest() {
        let parts = plan(10, 4);
        let lens: Vec<u64> = parts.iter().map(|p| p.len).collect();
        assert_eq!(lens, vec![3, 3, 3, 1]);
        assert_eq!(parts[3].offset, 9);
        let parts = plan(9, 4);
        let lens: Vec<u64> = parts.iter().map(|p| p.len).collect();
        assert_eq!(lens, vec![3, 3, 3, 0]);
        assert_eq!(
            plan(0, 1),
            vec![Part {
                idx: 0,
                offset: 0,
                len: 0
            }]
        );
        let big = plan(50_645_990, 3);
        assert_eq!(big.iter().map(|p| p.len).sum::<u64>(), 50_645_990);
        assert_eq!(big[0].len, 16_881_997);
        assert_eq!(big[2].len, 16_881_996);
        assert!(plan(5, 0).is_empty());
    }

    #[test]
    fn expiry_comes_from_the_signature() {
        let urls = vec![
            "https://s3.example/p1?X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=x".to_string(),
            "https://s3.example/p2?X-Amz-Date=20260101T000000Z&X-Amz-Expires=60".to_string(),
        ];
        let at = urls_expire_at(&urls).expect("expiry");
        assert_eq!(at.to_rfc3339(), "2026-01-01T00:01:00+00:00");
        assert_eq!(urls_expire_at(&["https://s3.example/p".to_string()]), None);
    }
}
