//! One feed item parsed into a typed record. Both formats of the spec are accepted:
//! new `{source_url, r2_url?, provider, created_at, original_filename}` and legacy
//! `{url, timestamp, source?}`. Unknown extra fields are ignored.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};
use url::Url;

use super::classify::{self, Classification};
use crate::domain::RecordFormat;

/// A valid feed record, links already normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord {
    pub format: RecordFormat,
    /// The link as the feed gave it.
    pub raw_source_url: Url,
    /// The normalised link (Dropbox share links turned into direct downloads).
    pub source_url: Url,
    pub r2_url: Option<Url>,
    /// `provider` (new format) or `source` (legacy, default "webhook").
    pub provider: String,
    pub created_at: DateTime<Utc>,
    pub original_filename: Option<String>,
    pub classification: Classification,
    /// Position of the item in the feed array (0-based).
    pub index: usize,
}

impl FeedRecord {
    /// The stable identity of a delivery: its normalised source link.
    pub fn dedupe_key(&self) -> &str {
        self.source_url.as_str()
    }

    /// The second identity: the normalised R2 link (two records with the same R2 copy are one
    /// delivery, whatever their source links).
    pub fn r2_key(&self) -> Option<String> {
        self.r2_url
            .as_ref()
            .map(|u| classify::normalize_url(u).to_string())
    }
}

/// Why an item was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidItem {
    #[error("item is not a JSON object")]
    NotAnObject,
    #[error("item has neither `source_url` (new format) nor `url` (legacy format)")]
    UnknownFormat,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{0}` must be a string")]
    NotAString(&'static str),
    #[error("field `{field}` is not an absolute http(s) URL: {reason}")]
    BadUrl { field: &'static str, reason: String },
    #[error(
        "field `{field}` has an unsupported timestamp {value:?} (expected ISO 8601 with offset or YYYY-MM-DD HH:MM:SS)"
    )]
    BadTimestamp { field: &'static str, value: String },
    #[error("item holds bytes that are not UTF-8 (the rest of the feed was read)")]
    InvalidUtf8,
}

/// Parses one item of the feed array.
pub fn parse_item(item: &Value, tz: chrono_tz::Tz) -> Result<FeedRecord, InvalidItem> {
    let obj = item.as_object().ok_or(InvalidItem::NotAnObject)?;
    // A key set to null is absent: a legacy record may carry the new-format keys as null.
    let has = |key: &str| obj.get(key).is_some_and(|v| !v.is_null());
    if has("source_url") || (obj.contains_key("source_url") && !has("url")) {
        let raw_source_url = url_field(obj, "source_url")?;
        let r2_url = optional_url_field(obj, "r2_url")?;
        let provider = string_field(obj, "provider")?.trim().to_string();
        if provider.is_empty() {
            return Err(InvalidItem::Missing("provider"));
        }
        let created_at =
            parse_timestamp(string_field(obj, "created_at")?, tz).ok_or_else(|| {
                InvalidItem::BadTimestamp {
                    field: "created_at",
                    value: obj
                        .get("created_at")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                }
            })?;
        let original_filename = string_field(obj, "original_filename")?.trim().to_string();
        if original_filename.is_empty() {
            return Err(InvalidItem::Missing("original_filename"));
        }
        Ok(build(
            RecordFormat::New,
            raw_source_url,
            r2_url,
            provider,
            created_at,
            Some(original_filename),
        ))
    } else if obj.contains_key("url") {
        let raw_source_url = url_field(obj, "url")?;
        let timestamp = string_field(obj, "timestamp")?;
        let created_at =
            parse_timestamp(timestamp, tz).ok_or_else(|| InvalidItem::BadTimestamp {
                field: "timestamp",
                value: timestamp.into(),
            })?;
        let provider = match obj.get("source") {
            None | Some(Value::Null) => "webhook".to_string(),
            Some(Value::String(s)) if s.trim().is_empty() => "webhook".to_string(),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(_) => return Err(InvalidItem::NotAString("source")),
        };
        Ok(build(
            RecordFormat::Legacy,
            raw_source_url,
            None,
            provider,
            created_at,
            None,
        ))
    } else {
        Err(InvalidItem::UnknownFormat)
    }
}

fn build(
    format: RecordFormat,
    raw_source_url: Url,
    r2_url: Option<Url>,
    provider: String,
    created_at: DateTime<Utc>,
    original_filename: Option<String>,
) -> FeedRecord {
    let classification = classify::classify(&raw_source_url, r2_url.as_ref(), &provider);
    FeedRecord {
        format,
        source_url: classify::normalize_url(&raw_source_url),
        raw_source_url,
        r2_url,
        provider,
        created_at,
        original_filename,
        classification,
        index: 0,
    }
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, InvalidItem> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(InvalidItem::Missing(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(InvalidItem::NotAString(field)),
    }
}

fn url_field(obj: &Map<String, Value>, field: &'static str) -> Result<Url, InvalidItem> {
    parse_http_url(string_field(obj, field)?)
        .map_err(|reason| InvalidItem::BadUrl { field, reason })
}

fn optional_url_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Url>, InvalidItem> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_http_url(s)
            .map(Some)
            .map_err(|reason| InvalidItem::BadUrl { field, reason }),
        Some(_) => Err(InvalidItem::NotAString(field)),
    }
}

/// An absolute http(s) URL with a host.
pub fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http(s)", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(url)
}

/// Timestamps of the spec: RFC 3339 / ISO 8601 with `Z`, `+00:00` or `+0200`, with or without
/// fractional seconds; MySQL `YYYY-MM-DD HH:MM:SS` read in `tz`. Anything else is `None`.
pub fn parse_timestamp(raw: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").ok()?;
    // A local time that happens twice (DST end) takes the earlier one; one that never happens is invalid.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeliveryMode, LinkKind};
    use serde_json::json;

    fn ts(raw: &str) -> Option<String> {
        parse_timestamp(raw, chrono_tz::UTC).map(|t| t.to_rfc3339())
    }

    #[test]
    fn timestamp_forms() {
        let expected = Some("2025-10-17T10:35:00+00:00".to_string());
        assert_eq!(ts("2025-10-17T12:35:00+0200"), expected);
        assert_eq!(ts("2025-10-17T12:35:00+02:00"), expected);
        assert_eq!(ts("2025-10-17T10:35:00Z"), expected);
        assert_eq!(ts("2025-10-17T10:35:00+00:00"), expected);
        assert_eq!(ts("2025-10-17 10:35:00"), expected);
        assert_eq!(
            ts("2025-10-17T10:35:00.250Z"),
            Some("2025-10-17T10:35:00.250+00:00".to_string())
        );
        assert_eq!(
            ts("2025-10-17T12:35:00.5+0200"),
            Some("2025-10-17T10:35:00.500+00:00".to_string())
        );
        for bad in [
            "",
            "yesterday",
            "2025-10-17",
            "2025-10-17T10:35:00",
            "17/10/2025 10:35",
            "2025-13-01 00:00:00",
            "1697539200",
        ] {
            assert_eq!(ts(bad), None, "{bad:?} should be invalid");
        }
    }

    #[test]
    fn mysql_timestamps_use_the_feed_timezone() {
        let paris: chrono_tz::Tz = chrono_tz::Europe::Paris;
        let t = parse_timestamp("2025-10-17 12:35:00", paris).map(|t| t.to_rfc3339());
        assert_eq!(t, Some("2025-10-17T10:35:00+00:00".to_string()));
    }

    #[test]
    fn new_format() -> Result<(), InvalidItem> {
        let r = parse_item(
            &json!({
                "source_url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=k&dl=0",
                "r2_url": "https://server.example.workers.dev/dropbox/b/o/file",
                "provider": "dropbox",
                "created_at": "2026-01-08T20:19:38+00:00",
                "original_filename": "61 Camille.zip",
                "extra": 42
            }),
            chrono_tz::UTC,
        )?;
        assert_eq!(r.format, RecordFormat::New);
        assert_eq!(r.original_filename.as_deref(), Some("61 Camille.zip"));
        assert_eq!(
            r.dedupe_key(),
            "https://www.dropbox.com/scl/fo/abc/def?dl=1&rlkey=k"
        );
        assert!(r.r2_url.is_some());
        assert_eq!(r.classification.kind, LinkKind::Dropbox);
        Ok(())
    }

    #[test]
    fn legacy_format_defaults_source() -> Result<(), InvalidItem> {
        let r = parse_item(
            &json!({"url": "https://fromsmash.com/x", "timestamp": "2025-10-17T12:35:00+0200"}),
            chrono_tz::UTC,
        )?;
        assert_eq!(r.format, RecordFormat::Legacy);
        assert_eq!(r.provider, "webhook");
        assert_eq!(r.classification.mode, DeliveryMode::Manual);
        Ok(())
    }

    #[test]
    fn a_legacy_record_with_null_new_format_keys_is_legacy() -> Result<(), InvalidItem> {
        let r = parse_item(
            &json!({
                "url": "https://www.dropbox.com/scl/fo/x/y?rlkey=k&DL=0",
                "timestamp": "2025-10-17 10:00:00",
                "source_url": null, "r2_url": null, "provider": null,
                "created_at": null, "original_filename": null
            }),
            chrono_tz::UTC,
        )?;
        assert_eq!(r.format, RecordFormat::Legacy);
        assert_eq!(
            r.dedupe_key(),
            "https://www.dropbox.com/scl/fo/x/y?dl=1&rlkey=k"
        );
        assert_eq!(
            parse_item(&json!({"source_url": null}), chrono_tz::UTC),
            Err(InvalidItem::Missing("source_url"))
        );
        Ok(())
    }

    #[test]
    fn invalid_items_say_why() {
        let cases = [
            (json!("just a string"), InvalidItem::NotAnObject),
            (
                json!({"link": "https://x.test"}),
                InvalidItem::UnknownFormat,
            ),
            (
                json!({"url": "https://x.test"}),
                InvalidItem::Missing("timestamp"),
            ),
            (
                json!({"url": "https://x.test", "timestamp": 5}),
                InvalidItem::NotAString("timestamp"),
            ),
            (
                json!({"source_url": "https://x.test", "created_at": "2025-10-17T10:35:00Z", "original_filename": "a.mov"}),
                InvalidItem::Missing("provider"),
            ),
            (
                json!({"source_url": "https://x.test", "provider": "dropbox", "created_at": "2025-10-17T10:35:00Z"}),
                InvalidItem::Missing("original_filename"),
            ),
        ];
        for (item, expected) in cases {
            assert_eq!(parse_item(&item, chrono_tz::UTC), Err(expected), "{item}");
        }
        assert!(matches!(
            parse_item(
                &json!({"url": "/relative", "timestamp": "2025-10-17 10:00:00"}),
                chrono_tz::UTC
            ),
            Err(InvalidItem::BadUrl { field: "url", .. })
        ));
        assert!(matches!(
            parse_item(
                &json!({"url": "ftp://x.test/f", "timestamp": "2025-10-17 10:00:00"}),
                chrono_tz::UTC
            ),
            Err(InvalidItem::BadUrl { .. })
        ));
        assert!(matches!(
            parse_item(
                &json!({"url": "https://x.test/f", "timestamp": "2025-10-17T10:00:00"}),
                chrono_tz::UTC
            ),
            Err(InvalidItem::BadTimestamp {
                field: "timestamp",
                ..
            })
        ));
    }
}
