//! What the ranged requests of both paths read from an answer's headers, in one place: a header
//! as text, the validator `If-Range` may carry, `Content-Range`, and whether a 206 may hold bytes
//! of another version than the partial file.

use reqwest::header::{self, HeaderMap};

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A strong ETag, else Last-Modified: what `If-Range` may carry.
pub(super) fn validator_of(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::ETAG)
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| header_str(headers, header::LAST_MODIFIED))
        .map(str::to_string)
}

/// Why a 206 answer may hold bytes of another version than the partial file, if it may:
/// its validator (the ETag when `sent` was one, else Last-Modified) is missing or differs.
pub(super) fn spliced(sent: &str, headers: &HeaderMap) -> Option<String> {
    let sent_is_etag = sent.starts_with('"') || sent.starts_with("W/");
    let (name, got) = if sent_is_etag {
        ("ETag", header_str(headers, header::ETAG))
    } else {
        ("Last-Modified", header_str(headers, header::LAST_MODIFIED))
    };
    match got {
        Some(got) if got == sent => None,
        Some(_) => Some(format!(
            "the resumed answer has another {name} than the partial file (a new version)"
        )),
        None => Some(format!(
            "the resumed answer has no {name} to prove it is the same version"
        )),
    }
}

/// `bytes START-END/TOTAL` -> (START, TOTAL).
pub fn parse_content_range(raw: &str) -> Option<(u64, Option<u64>)> {
    let rest = raw.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

/// `Content-Range` of an answer -> (START, TOTAL).
pub(super) fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    parse_content_range(header_str(headers, header::CONTENT_RANGE)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
