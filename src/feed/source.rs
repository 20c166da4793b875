//! Fetching the feed: HTTP GET (conditional, size-capped, timed out, retried with backoff and
//! jitter) or a local file, then parsing the body into records and invalid items.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::record::{self, FeedRecord, InvalidItem};
use crate::config::FeedLocation;
use crate::net::{self, RetryPolicy};

/// Largest feed body accepted.
pub const MAX_FEED_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("could not reach the feed: {0}")]
    Transport(String),
    #[error("the feed did not answer within {0} s")]
    Timeout(u64),
    #[error("the feed answered HTTP {status}{detail}")]
    Status { status: u16, detail: String },
    #[error("the feed body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the feed is not valid JSON: {0}")]
    Json(String),
    #[error("the feed returned an error: {0}")]
    ErrorObject(String),
    #[error("the feed must be a JSON array, got {0}")]
    NotAnArray(&'static str),
    #[error("cannot read the feed file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("stopped")]
    Cancelled,
}

/// HTTP validators from the last full answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A parsed feed body.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    pub records: Vec<FeedRecord>,
    /// Index in the array and reason of every skipped item.
    pub invalid: Vec<(usize, InvalidItem)>,
    /// SHA-256 of the body: an unchanged body needs no store work.
    pub body_sha256: [u8; 32],
}

#[derive(Debug, Clone)]
pub enum FetchResult {
    Fetched {
        feed: ParsedFeed,
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
        let mut backoff = self.retry.backoff();
        let mut attempt = 1;
        loop {
            let result = tokio::select! {
                r = self.fetch_once(validators) => r,
                () = cancel.cancelled() => return (Err(FeedError::Cancelled), attempt),
            };
            match result {
                Ok(ok) => return (Ok(ok), attempt),
                Err(e) => {
                    let Some(wait) = backoff.next_wait(None) else {
                        return (Err(e), attempt);
                    };
                    tracing::debug!(attempt, error = %e, "WebhookService: fetch attempt failed, retrying");
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
    pub async fn fetch_once(&self, validators: &Validators) -> Result<FetchResult, FeedError> {
        match &self.location {
            FeedLocation::File(path) => {
                let shown = path.display().to_string();
                let file_error = |e: std::io::Error| FeedError::File {
                    path: shown.clone(),
                    reason: e.to_string(),
                };
                let meta = tokio::fs::metadata(path).await.map_err(file_error)?;
                if meta.len() > MAX_FEED_BYTES as u64 {
                    return Err(FeedError::TooLarge {
                        limit: MAX_FEED_BYTES,
                    });
                }
                let body = tokio::fs::read(path).await.map_err(file_error)?;
                Ok(FetchResult::Fetched {
                    feed: parse_body(&body, self.tz)?,
                    validators: Validators::default(),
                })
            }
            FeedLocation::Http(url) => {
                let secs = self.timeout.as_secs();
                tokio::time::timeout(self.timeout, self.fetch_http(url.clone(), validators))
                    .await
                    .map_err(|_| FeedError::Timeout(secs))?
            }
        }
    }

    async fn fetch_http(
        &self,
        url: url::Url,
        validators: &Validators,
    ) -> Result<FetchResult, FeedError> {
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
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(transport)?;
            if body.len() + chunk.len() > MAX_FEED_BYTES {
                return Err(FeedError::TooLarge {
                    limit: MAX_FEED_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
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
        Ok(FetchResult::Fetched {
            feed: parse_body(&body, self.tz)?,
            validators: new_validators,
        })
    }
}

/// reqwest errors carry the URL, query string included: `net::error_text` drops it.
fn transport(e: reqwest::Error) -> FeedError {
    FeedError::Transport(net::error_text(&e))
}

/// Longest error text kept, stored or logged from the feed, in bytes.
pub const MAX_ERROR_TEXT: usize = 1024;

/// `text` cut to about `max` bytes (on a character boundary), saying how long it was.
pub fn cap_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The `error` text of an error object such as `{"error": "Failed to fetch data"}`, capped.
fn error_text(value: &Value) -> Option<String> {
    match value.get("error")? {
        Value::String(s) => Some(cap_text(s, MAX_ERROR_TEXT)),
        other => Some(cap_text(&other.to_string(), MAX_ERROR_TEXT)),
    }
}

/// Whether a decoded value holds U+FFFD (where bytes that were not UTF-8 stood).
fn holds_replacement(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(char::REPLACEMENT_CHARACTER),
        Value::Array(items) => items.iter().any(holds_replacement),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(char::REPLACEMENT_CHARACTER) || holds_replacement(v)),
        _ => false,
    }
}

/// Parses a feed body: a JSON array whose items are parsed one by one, as they are read (the
/// whole document is never held as a `serde_json::Value`: peak memory is the body and the
/// records, not a tree of every item).
pub fn parse_body(body: &[u8], tz: chrono_tz::Tz) -> Result<ParsedFeed, FeedError> {
    use sha2::Digest;
    let mut feed = parse_items(body, tz)?;
    feed.body_sha256 = sha2::Sha256::digest(body).into();
    Ok(feed)
}

fn parse_items(body: &[u8], tz: chrono_tz::Tz) -> Result<ParsedFeed, FeedError> {
    match parse_with(serde_json::Deserializer::from_slice(body), tz, false) {
        // Bytes that are not UTF-8 spoil only the items holding them: the body is decoded
        // lossily and every item with a replacement character is set aside with its index.
        Err(FeedError::Json(_)) if std::str::from_utf8(body).is_err() => {
            let text = String::from_utf8_lossy(body);
            parse_with(serde_json::Deserializer::from_str(&text), tz, true).map_err(|e| match e {
                FeedError::Json(e) => {
                    FeedError::Json(format!("{e} (the body is not UTF-8 either)"))
                }
                other => other,
            })
        }
        other => other,
    }
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    tz: chrono_tz::Tz,
    lossy: bool,
) -> Result<ParsedFeed, FeedError> {
    let parsed = serde::Deserializer::deserialize_any(&mut de, Body { tz, lossy })
        .map_err(|e| FeedError::Json(e.to_string()))?;
    de.end().map_err(|e| FeedError::Json(e.to_string()))?;
    parsed
}

/// The top level of a feed body: an array of items, or what the feed sent instead.
struct Body {
    tz: chrono_tz::Tz,
    /// The body was decoded lossily: an item holding a replacement character is invalid.
    lossy: bool,
}

impl<'de> serde::de::Visitor<'de> for Body {
    type Value = Result<ParsedFeed, FeedError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut feed = ParsedFeed::default();
        let mut index = 0;
        while let Some(item) = seq.next_element::<Value>()? {
            let parsed = if self.lossy && holds_replacement(&item) {
                Err(InvalidItem::InvalidUtf8)
            } else {
                record::parse_item(&item, self.tz)
            };
            match parsed {
                Ok(mut record) => {
                    record.index = index;
                    feed.records.push(record);
                }
                Err(reason) => {
                    tracing::debug!(
                        index,
                        "WebhookService: skipping invalid item due to error: {reason}"
                    );
                    feed.invalid.push((index, reason));
                }
            }
            index += 1;
        }
        Ok(Ok(feed))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        use serde::Deserialize as _;
        let value = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Err(match error_text(&value) {
            Some(text) => FeedError::ErrorObject(text),
            None if value.as_object().is_some_and(|o| o.is_empty()) => {
                FeedError::NotAnArray("an empty object")
            }
            None => FeedError::NotAnArray("an object"),
        }))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("null")))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("a boolean")))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("a number")))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("a number")))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("a number")))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(FeedError::NotAnArray("a string")))
    }
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
