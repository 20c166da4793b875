//! Fetching the feed: HTTP GET (conditional, size-capped, timed out, retried with backoff and
//! jitter) or a local file, then parsing the body into records and invalid items.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::error_text;
pub use super::error::{FeedError, MAX_FEED_BYTES};
use super::record::{FeedRecord, InvalidItem};
use super::scan::{Scan, scan_body};
use super::stream::StreamScan;
use crate::config::FeedLocation;
use crate::net::{self, RetryPolicy};

/// HTTP validators from the last full answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A parsed feed body, every record kept (owned).
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub records: Vec<FeedRecord<'static>>,
    /// Index in the array and reason of every skipped item.
    pub invalid: Vec<(usize, InvalidItem)>,
    /// SHA-256 of the body: an unchanged body needs no store work.
    pub body_sha256: [u8; 32],
}

/// What a fetch gave: the body read by the caller's reader (by default [`parse_body`]).
#[derive(Debug, Clone)]
pub enum FetchResult<T = ParsedFeed> {
    Fetched {
        feed: T,
        validators: Validators,
    },
    /// 304: the feed did not change since the validators were given.
    NotModified,
}

/// The configured feed.
#[derive(Debug, Clone)]
pub struct FeedSource {
    location: FeedLocation,
    client: reqwest::Client,
    timeout: Duration,
    tz: chrono_tz::Tz,
    pub retry: RetryPolicy,
    /// Sent as `Authorization: Bearer` (`WEBHOOK_AUTH_TOKEN`).
    bearer: Option<secrecy::SecretString>,
}

impl FeedSource {
    pub fn new(location: FeedLocation, timeout: Duration, tz: chrono_tz::Tz) -> Self {
        let client = net::client(net::Timeouts {
            connect: timeout,
            request: None,
            read: None,
        })
        .unwrap_or_default();
        Self {
            location,
            client,
            timeout,
            tz,
            retry: RetryPolicy::default(),
            bearer: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request (e.g. to `rushes feed-proxy`).
    pub fn with_bearer(mut self, token: Option<secrecy::SecretString>) -> Self {
        self.bearer = token;
        self
    }

    /// Zone of timestamps without an offset (`FEED_TIMEZONE`).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz
    }

    pub fn location(&self) -> &FeedLocation {
        &self.location
    }

    /// Fetches with retries. Returns the result and the number of attempts made; the error is
    /// the last attempt's.
    pub async fn fetch(
        &self,
        validators: &Validators,
        cancel: &CancellationToken,
    ) -> (Result<FetchResult, FeedError>, u32) {
        let tz = self.tz;
        self.fetch_with(validators, cancel, |body| parse_body(body, tz))
            .await
    }

    /// [`Self::fetch`] with the body read by `read` (a body it refuses is a failed attempt,
    /// retried like the others). `read` runs where blocking is allowed.
    pub async fn fetch_with<T, F>(
        &self,
        validators: &Validators,
        cancel: &CancellationToken,
        read: F,
    ) -> (Result<FetchResult<T>, FeedError>, u32)
    where
        F: Fn(&[u8]) -> Result<T, FeedError>,
    {
        let start = |expected: usize| Collect {
            body: Vec::with_capacity(expected.min(MAX_FEED_BYTES)),
            read: &read,
        };
        self.fetch_into(validators, cancel, start).await
    }

    /// [`Self::fetch`], the body read by a [`StreamScan`] (one per attempt, made by `start`)
    /// while it arrives: its records are read while the rest is still on its way, and the body
    /// is never held whole.
    pub async fn fetch_streamed<T, F>(
        &self,
        validators: &Validators,
        cancel: &CancellationToken,
        start: F,
    ) -> (Result<FetchResult<Scan<T>>, FeedError>, u32)
    where
        T: Send + 'static,
        F: Fn() -> StreamScan<T>,
    {
        self.fetch_into(validators, cancel, |_| start()).await
    }

    async fn fetch_into<T, S: BodySink<T>>(
        &self,
        validators: &Validators,
        cancel: &CancellationToken,
        start: impl Fn(usize) -> S,
    ) -> (Result<FetchResult<T>, FeedError>, u32) {
        let mut backoff = self.retry.backoff();
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                r = self.fetch_once(validators, &start) => r,
                () = cancel.cancelled() => return (Err(FeedError::Cancelled), attempt),
            };
            match result {
                Ok(ok) => return (Ok(ok), attempt),
                // A local file that cannot be read will not appear by waiting 3 s: said at once.
                Err(e @ (FeedError::Missing(_) | FeedError::File { .. })) => {
                    return (Err(e), attempt);
                }
                Err(e) => {
                    let Some(wait) = backoff.next_wait(None) else {
                        return (Err(e), attempt);
                    };
                    tracing::debug!(attempt, error = %e, "FeedService: fetch attempt failed, retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = cancel.cancelled() => return (Err(FeedError::Cancelled), attempt),
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt, no retry.
    async fn fetch_once<T, S: BodySink<T>>(
        &self,
        validators: &Validators,
        start: &impl Fn(usize) -> S,
    ) -> Result<FetchResult<T>, FeedError> {
        match &self.location {
            FeedLocation::File(path) => {
                let shown = path.display().to_string();
                let file_error = |e: std::io::Error| match e.kind() {
                    std::io::ErrorKind::NotFound => FeedError::Missing(shown.clone()),
                    _ => FeedError::File {
                        path: shown.clone(),
                        reason: e.to_string(),
                    },
                };
                let meta = tokio::fs::metadata(path).await.map_err(file_error)?;
                if meta.len() > MAX_FEED_BYTES as u64 {
                    return Err(FeedError::TooLarge {
                        limit: MAX_FEED_BYTES,
                    });
                }
                let body = tokio::fs::read(path).await.map_err(file_error)?;
                Ok(FetchResult::Fetched {
                    feed: start(0).read_whole(&body)?,
                    validators: Validators::default(),
                })
            }
            FeedLocation::Http(url) => {
                let secs = self.timeout.as_secs();
                tokio::time::timeout(
                    self.timeout,
                    self.fetch_http(url.clone(), validators, start),
                )
                .await
                .map_err(|_| FeedError::Timeout(secs))?
            }
        }
    }

    async fn fetch_http<T, S: BodySink<T>>(
        &self,
        url: url::Url,
        validators: &Validators,
        start: &impl Fn(usize) -> S,
    ) -> Result<FetchResult<T>, FeedError> {
        let mut request = self.client.get(url).header("Accept", "application/json");
        if let Some(token) = &self.bearer {
            use secrecy::ExposeSecret as _;
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchResult::NotModified);
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let new_validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_FEED_BYTES as u64)
        {
            return Err(FeedError::TooLarge {
                limit: MAX_FEED_BYTES,
            });
        }
        // Sized from Content-Length when given: no doubling copies of a large body.
        let expected = response.content_length().unwrap_or(0) as usize;
        let mut stream = response.bytes_stream();
        let mut received = 0;
        if !status.is_success() {
            let mut body = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(transport)?;
                if body.len() + chunk.len() > MAX_FEED_BYTES {
                    return Err(FeedError::TooLarge {
                        limit: MAX_FEED_BYTES,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            let detail = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| error_text(&v))
                .map(|text| format!(": {text}"))
                .unwrap_or_default();
            return Err(FeedError::Status {
                status: status.as_u16(),
                detail,
            });
        }
        let mut sink = start(expected);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(transport)?;
            received += chunk.len();
            if received > MAX_FEED_BYTES {
                return Err(FeedError::TooLarge {
                    limit: MAX_FEED_BYTES,
                });
            }
            sink.push(&chunk);
        }
        Ok(FetchResult::Fetched {
            feed: sink.finish()?,
            validators: new_validators,
        })
    }
}

/// Takes a feed body in piece by piece, then gives what it made of it.
trait BodySink<T>: Sized {
    fn push(&mut self, piece: &[u8]);
    /// Runs where blocking is allowed.
    fn finish(self) -> Result<T, FeedError>;

    /// A body already whole (a file).
    fn read_whole(mut self, body: &[u8]) -> Result<T, FeedError> {
        self.push(body);
        self.finish()
    }
}

/// The whole body collected, then read by `read`.
struct Collect<'r, F> {
    body: Vec<u8>,
    read: &'r F,
}

impl<T, F: Fn(&[u8]) -> Result<T, FeedError>> BodySink<T> for Collect<'_, F> {
    fn push(&mut self, piece: &[u8]) {
        self.body.extend_from_slice(piece);
    }

    fn finish(self) -> Result<T, FeedError> {
        read_blocking(self.read, &self.body)
    }

    /// Read where it is, not copied.
    fn read_whole(self, body: &[u8]) -> Result<T, FeedError> {
        read_blocking(self.read, body)
    }
}

impl<T: Send + 'static> BodySink<Scan<T>> for StreamScan<T> {
    fn push(&mut self, piece: &[u8]) {
        StreamScan::push(self, piece);
    }

    fn finish(self) -> Result<Scan<T>, FeedError> {
        super::stream::block(|| StreamScan::finish(self))
    }
}

/// Runs `read` on `body`, telling a multi-threaded runtime that this thread blocks meanwhile
/// (a large feed takes tens of milliseconds of CPU: other tasks move to other threads).
fn read_blocking<T>(
    read: &impl Fn(&[u8]) -> Result<T, FeedError>,
    body: &[u8],
) -> Result<T, FeedError> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| read(body))
    } else {
        read(body)
    }
}

/// reqwest errors carry the URL, query string included: `net::error_text` drops it.
fn transport(e: reqwest::Error) -> FeedError {
    FeedError::Transport(net::error_text(&e))
}

/// Parses a feed body: a JSON array whose items are read one by one (the whole document is
/// never held as a `serde_json::Value`), every record kept. See [`scan_body`].
pub fn parse_body(body: &[u8], tz: chrono_tz::Tz) -> Result<ParsedFeed, FeedError> {
    use sha2::Digest;
    let scan = scan_body(body, tz, |record| Some(record.into_owned()))?;
    Ok(ParsedFeed {
        records: scan.kept,
        invalid: scan.invalid,
        body_sha256: sha2::Sha256::digest(body).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_spoil_only_their_item() {
        let mut body = br#"[{"url": "https://fromsmash.com/a", "timestamp": "2025-10-17 10:00:00"},
            {"url": "https://fromsmash.com/b"#
            .to_vec();
        body.extend_from_slice(b"\xff\xfe");
        body.extend_from_slice(br#"", "timestamp": "2025-10-17 10:00:00"}]"#);
        let feed = parse_body(&body, chrono_tz::UTC).unwrap_or_default();
        assert_eq!(feed.records.len(), 1);
        assert_eq!(feed.invalid, vec![(1, InvalidItem::InvalidUtf8)]);
    }

    #[test]
    fn long_error_text_is_capped() {
        use crate::feed::error::{MAX_ERROR_TEXT, cap_text};
        let long = format!("{{\"error\": \"{}\"}}", "é".repeat(100_000));
        let Err(FeedError::ErrorObject(text)) = parse_body(long.as_bytes(), chrono_tz::UTC) else {
            panic!("an error object");
        };
        assert!(text.len() < MAX_ERROR_TEXT + 40, "{}", text.len());
        assert!(
            text.ends_with("… (200000 bytes)"),
            "{}",
            &text[text.len() - 30..]
        );
        assert_eq!(cap_text("short", 10), "short");
    }

    #[test]
    fn body_shapes() {
        let tz = chrono_tz::UTC;
        assert_eq!(
            parse_body(br#"{"error": "Failed to fetch data"}"#, tz).err(),
            Some(FeedError::ErrorObject("Failed to fetch data".into()))
        );
        assert_eq!(
            parse_body(b"{}", tz).err(),
            Some(FeedError::NotAnArray("an empty object"))
        );
        assert!(matches!(parse_body(b"<html>", tz), Err(FeedError::Json(_))));
        assert!(matches!(
            parse_body(b"[1] [2]", tz),
            Err(FeedError::Json(_))
        ));
        assert_eq!(
            parse_body(b"null", tz).err(),
            Some(FeedError::NotAnArray("null"))
        );
        assert_eq!(
            parse_body(b"\"x\"", tz).err(),
            Some(FeedError::NotAnArray("a string"))
        );
        assert_eq!(
            parse_body(b"4.5", tz).err(),
            Some(FeedError::NotAnArray("a number"))
        );
        assert_eq!(
            parse_body(br#"{"a": 1}"#, tz).err(),
            Some(FeedError::NotAnArray("an object"))
        );
        let feed = parse_body(
            br#"[{"url": "https://fromsmash.com/a", "timestamp": "2025-10-17 10:00:00"}, 3]"#,
            tz,
        );
        let feed = feed.unwrap_or_default();
        assert_eq!(feed.records.len(), 1);
        assert_eq!(feed.invalid, vec![(1, InvalidItem::NotAnObject)]);
    }
}
