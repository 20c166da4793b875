//! One feed item parsed into a typed record. Both formats of the spec are accepted:
//! new `{source_url, r2_url?, provider, created_at, original_filename}` and legacy
//! `{url, timestamp, source?}`. Unknown extra fields are ignored.
//!
//! Items are read by serde straight into [`RawItem`], whose strings borrow from the feed body
//! (only a string with escapes is copied; unknown fields are skipped without being copied); a
//! [`FeedRecord`] keeps borrowing them, so a plain record allocates only its normalised link(s).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use url::Url;

use super::classify::{self, Classification};
use super::link::Link;
use crate::domain::RecordFormat;

/// A valid feed record, links already checked and normalised. Borrows from the feed body
/// ([`FeedRecord::into_owned`] detaches it).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord<'a> {
    pub format: RecordFormat,
    /// The link as the feed gave it (as `url` serialises it: lower-case host, encoded spaces).
    pub raw_source_url: Cow<'a, str>,
    /// The normalised link (Dropbox share links turned into direct downloads): the dedupe key.
    pub source_url: String,
    /// The R2 copy as the feed gave it (as `url` serialises it).
    pub r2_url: Option<Cow<'a, str>>,
    /// The normalised R2 link: the second identity of a delivery.
    pub r2_key: Option<String>,
    /// `provider` (new format) or `source` (legacy, default "webhook").
    pub provider: Cow<'a, str>,
    pub created_at: DateTime<Utc>,
    pub original_filename: Option<Cow<'a, str>>,
    pub classification: Classification,
    /// Position of the item in the feed array (0-based).
    pub index: usize,
}

impl FeedRecord<'_> {
    /// The stable identity of a delivery: its normalised source link.
    pub fn dedupe_key(&self) -> &str {
        &self.source_url
    }

    /// The second identity: the normalised R2 link (two records with the same R2 copy are one
    /// delivery, whatever their source links).
    pub fn r2_key(&self) -> Option<String> {
        self.r2_key.clone()
    }

    /// The normalised link as a URL (it was one when the record was read).
    pub fn source(&self) -> Option<Url> {
        Url::parse(&self.source_url).ok()
    }

    /// The same record, owning its text.
    pub fn into_owned(self) -> FeedRecord<'static> {
        FeedRecord {
            format: self.format,
            raw_source_url: Cow::Owned(self.raw_source_url.into_owned()),
            source_url: self.source_url,
            r2_url: self.r2_url.map(|u| Cow::Owned(u.into_owned())),
            r2_key: self.r2_key,
            provider: Cow::Owned(self.provider.into_owned()),
            created_at: self.created_at,
            original_filename: self.original_filename.map(|n| Cow::Owned(n.into_owned())),
            classification: self.classification,
            index: self.index,
        }
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

/// One field of an item as found: absent, `null`, a string, or something else.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Field<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Field<'a> {
    /// Present with a value other than `null` (a key set to null is absent).
    fn given(&self) -> bool {
        !matches!(self, Field::Absent | Field::Null)
    }

    /// A required string.
    fn string(self, name: &'static str) -> Result<Cow<'a, str>, InvalidItem> {
        match self {
            Field::Absent | Field::Null => Err(InvalidItem::Missing(name)),
            Field::Str(s) => Ok(s),
            Field::Other => Err(InvalidItem::NotAString(name)),
        }
    }
}

/// One item of the feed array, as read: only the fields rushes knows, strings borrowed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawItem<'a> {
    pub object: bool,
    pub source_url: Field<'a>,
    pub r2_url: Field<'a>,
    pub provider: Field<'a>,
    pub created_at: Field<'a>,
    pub original_filename: Field<'a>,
    pub url: Field<'a>,
    pub timestamp: Field<'a>,
    pub source: Field<'a>,
}

/// Parses one item of the feed array given as a `serde_json::Value` (the feed itself is read
/// into [`RawItem`]s directly).
pub fn parse_item(
    item: &serde_json::Value,
    tz: chrono_tz::Tz,
) -> Result<FeedRecord<'_>, InvalidItem> {
    let raw = RawItem::deserialize(item).unwrap_or_default();
    build(raw, tz)
}

/// Validates, classifies and normalises one item (its `index` is left 0).
pub fn build<'a>(item: RawItem<'a>, tz: chrono_tz::Tz) -> Result<FeedRecord<'a>, InvalidItem> {
    if !item.object {
        return Err(InvalidItem::NotAnObject);
    }
    if item.source_url.given() || (item.source_url == Field::Null && !item.url.given()) {
        let raw_url = url_field(item.source_url, "source_url")?;
        let r2 = optional_url_field(item.r2_url, "r2_url")?;
        let provider = trimmed(item.provider.string("provider")?);
        if provider.is_empty() {
            return Err(InvalidItem::Missing("provider"));
        }
        let created_at = item.created_at.string("created_at")?;
        let created_at =
            parse_timestamp(&created_at, tz).ok_or_else(|| InvalidItem::BadTimestamp {
                field: "created_at",
                value: created_at.into_owned(),
            })?;
        let original_filename = trimmed(item.original_filename.string("original_filename")?);
        if original_filename.is_empty() {
            return Err(InvalidItem::Missing("original_filename"));
        }
        let classification = classify::classify(&raw_url, r2.is_some(), &provider);
        let (r2_url, r2_key) = match r2 {
            Some(link) => {
                let key = classify::normalized_text(&link);
                (Some(link.into_text()), Some(key))
            }
            None => (None, None),
        };
        Ok(FeedRecord {
            format: RecordFormat::New,
            source_url: classify::normalized_text(&raw_url),
            raw_source_url: raw_url.into_text(),
            r2_url,
            r2_key,
            provider,
            created_at,
            original_filename: Some(original_filename),
            classification,
            index: 0,
        })
    } else if item.url != Field::Absent {
        let raw_url = url_field(item.url, "url")?;
        let timestamp = item.timestamp.string("timestamp")?;
        let created_at =
            parse_timestamp(&timestamp, tz).ok_or_else(|| InvalidItem::BadTimestamp {
                field: "timestamp",
                value: timestamp.into_owned(),
            })?;
        let provider = match item.source {
            Field::Absent | Field::Null => Cow::Borrowed("webhook"),
            Field::Str(s) if s.trim().is_empty() => Cow::Borrowed("webhook"),
            Field::Str(s) => trimmed(s),
            Field::Other => return Err(InvalidItem::NotAString("source")),
        };
        let classification = classify::classify(&raw_url, false, &provider);
        Ok(FeedRecord {
            format: RecordFormat::Legacy,
            source_url: classify::normalized_text(&raw_url),
            raw_source_url: raw_url.into_text(),
            r2_url: None,
            r2_key: None,
            provider,
            created_at,
            original_filename: None,
            classification,
            index: 0,
        })
    } else {
        Err(InvalidItem::UnknownFormat)
    }
}

/// `s` without surrounding white space, still borrowed when it was.
fn trimmed(s: Cow<'_, str>) -> Cow<'_, str> {
    // Most fields start and end with a visible ASCII character: nothing to trim, no look at
    // the characters in between.
    let visible = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_graphic());
    if visible(s.as_bytes().first()) && visible(s.as_bytes().last()) {
        return s;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    }
}

/// The link, checked (an absolute http(s) URL with a host) and in the form `url` serialises it
/// (still borrowed from the body when that is the text itself).
fn url_field<'a>(field: Field<'a>, name: &'static str) -> Result<Link<'a>, InvalidItem> {
    Link::parse(trimmed(field.string(name)?)).map_err(|reason| InvalidItem::BadUrl {
        field: name,
        reason,
    })
}

fn optional_url_field<'a>(
    field: Field<'a>,
    name: &'static str,
) -> Result<Option<Link<'a>>, InvalidItem> {
    match field {
        Field::Absent | Field::Null => Ok(None),
        Field::Str(s) if s.trim().is_empty() => Ok(None),
        other => url_field(other, name).map(Some),
    }
}

/// Timestamps of the spec: RFC 3339 / ISO 8601 with `Z`, `+00:00` or `+0200`, with or without
/// fractional seconds; MySQL `YYYY-MM-DD HH:MM:SS` read in `tz`. Anything else is `None`.
pub fn parse_timestamp(raw: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Some(t) = common_timestamp(raw, tz) {
        return Some(t);
    }
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

/// The common spellings read without chrono's format machinery: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction of 1 to 9 digits, then `Z`, `±HH:MM` or `±HHMM`; or `YYYY-MM-DD HH:MM:SS`
/// (in `tz`). `None` for anything else (then the general rules above decide, and they give the
/// same answer for these forms: a unit test compares them).
fn common_timestamp(raw: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let b = raw.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[10] == b' ' && b.len() == 19 {
        let naive = date.and_hms_opt(h, m, s)?;
        return tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc));
    }
    if b[10] != b'T' {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if end == start || end - start > 9 {
            return None;
        }
        nanos = num(start..end)? * 10u32.pow(9 - (end - start) as u32);
        at = end;
    }
    let offset_secs: i32 = match &b[at..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest {
                [_, _, b':', _, _] => (num(at + 1..at + 3)?, num(at + 4..at + 6)?),
                [_, _, _, _] => (num(at + 1..at + 3)?, num(at + 3..at + 5)?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = (oh * 3600 + om * 60) as i32;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let naive = date.and_hms_nano_opt(h, m, s, nanos)?;
    let offset = FixedOffset::east_opt(offset_secs)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// The name of a field rushes reads (unknown ones are skipped without being copied).
enum Key {
    SourceUrl,
    R2Url,
    Provider,
    CreatedAt,
    OriginalFilename,
    Url,
    Timestamp,
    Source,
    Unknown,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "source_url" => Key::SourceUrl,
                    "r2_url" => Key::R2Url,
                    "provider" => Key::Provider,
                    "created_at" => Key::CreatedAt,
                    "original_filename" => Key::OriginalFilename,
                    "url" => Key::Url,
                    "timestamp" => Key::Timestamp,
                    "source" => Key::Source,
                    _ => Key::Unknown,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawItem<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = RawItem<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut item = RawItem {
                    object: true,
                    ..RawItem::default()
                };
                // A repeated key keeps its last value, as a JSON object read into a map would.
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::SourceUrl => &mut item.source_url,
                        Key::R2Url => &mut item.r2_url,
                        Key::Provider => &mut item.provider,
                        Key::CreatedAt => &mut item.created_at,
                        Key::OriginalFilename => &mut item.original_filename,
                        Key::Url => &mut item.url,
                        Key::Timestamp => &mut item.timestamp,
                        Key::Source => &mut item.source,
                        Key::Unknown => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<Field<'de>>()?;
                }
                Ok(item)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawItem::default())
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawItem::default())
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
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
    fn the_common_forms_read_as_the_general_rules_read_them() {
        let general = |raw: &str, tz: chrono_tz::Tz| {
            DateTime::parse_from_rfc3339(raw)
                .ok()
                .or_else(|| DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| {
                    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").ok()?;
                    tz.from_local_datetime(&naive)
                        .earliest()
                        .map(|t| t.with_timezone(&Utc))
                })
        };
        let paris = chrono_tz::Europe::Paris;
        for raw in [
            "2025-10-17T12:35:00+0200",
            "2025-10-17T12:35:00+02:00",
            "2025-10-17T12:35:00-05:30",
            "2025-10-17T10:35:00Z",
            "2025-10-17T10:35:00.250Z",
            "2025-10-17T10:35:00.123456789Z",
            "2025-10-17T12:35:00.5+0200",
            "2025-10-17 10:35:00",
            "2025-03-30 02:30:00",
            "2025-10-26 02:30:00",
            "2024-02-29T23:59:59Z",
            "2025-02-29T10:00:00Z",
            "2025-13-01 00:00:00",
            "2025-10-17T24:00:00Z",
            "2025-10-17T10:60:00Z",
            "2025-10-17T10:35:00+2400",
            "2025-10-17T10:35:00",
            "2025-10-17t10:35:00Z",
        ] {
            for tz in [chrono_tz::UTC, paris] {
                if let Some(fast) = common_timestamp(raw, tz) {
                    assert_eq!(Some(fast), general(raw, tz), "{raw}");
                }
                assert_eq!(parse_timestamp(raw, tz), general(raw, tz), "{raw}");
            }
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
        let item = json!({
            "source_url": "https://www.dropbox.com/scl/fo/abc/def?rlkey=k&dl=0",
            "r2_url": "https://server.example.workers.dev/dropbox/b/o/file",
            "provider": "dropbox",
            "created_at": "2026-01-08T20:19:38+00:00",
            "original_filename": "61 Camille.zip",
            "extra": 42
        });
        let r = parse_item(&item, chrono_tz::UTC)?;
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
        let item =
            json!({"url": "https://fromsmash.com/x", "timestamp": "2025-10-17T12:35:00+0200"});
        let r = parse_item(&item, chrono_tz::UTC)?;
        assert_eq!(r.format, RecordFormat::Legacy);
        assert_eq!(r.provider, "webhook");
        assert_eq!(r.classification.mode, DeliveryMode::Manual);
        Ok(())
    }

    #[test]
    fn a_legacy_record_with_null_new_format_keys_is_legacy() -> Result<(), InvalidItem> {
        let item = json!({
            "url": "https://www.dropbox.com/scl/fo/x/y?rlkey=k&DL=0",
            "timestamp": "2025-10-17 10:00:00",
            "source_url": null, "r2_url": null, "provider": null,
            "created_at": null, "original_filename": null
        });
        let r = parse_item(&item, chrono_tz::UTC)?;
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
