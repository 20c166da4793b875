//! What can go wrong reading a feed, and the bounds on what is read and kept of it: the bottom
//! of feed/ (the fetch, the whole-body scan and the streamed scan all use it; it uses none).

use serde_json::Value;

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
    #[error(
        "the feed file {0} does not exist: check the path (WEBHOOK_JSON_URL, or the one given)"
    )]
    Missing(String),
    #[error("stopped")]
    Cancelled,
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
pub(super) fn error_text(value: &Value) -> Option<String> {
    match value.get("error")? {
        Value::String(s) => Some(cap_text(s, MAX_ERROR_TEXT)),
        other => Some(cap_text(&other.to_string(), MAX_ERROR_TEXT)),
    }
}
