//! Reading a whole feed body fast: serde reads the array item by item straight into borrowed
//! [`RawItem`]s (no `serde_json::Value`, no copy of a plain string), in chunks handed to worker
//! threads that validate, classify and normalise them while the next chunk is being read. The
//! caller decides per record what to keep (`keep`), so a poll that only needs the new records,
//! or a check that only counts, holds no more than the body and what it keeps.
//!
//! A body that is not UTF-8 is read again, decoded lossily, one `Value` per item: an item holding
//! a replacement character is invalid ([`InvalidItem::InvalidUtf8`]), the others are read as usual.

use std::fmt;
use std::sync::Mutex;
use std::sync::mpsc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::{FeedError, error_text};
use super::record::{self, FeedRecord, InvalidItem, RawItem};

/// Items per chunk handed to a worker.
const CHUNK: usize = 1024;
/// Chunks read ahead of the workers (bounds the memory of the read-ahead).
const QUEUE: usize = 4;
/// Below this size a body is read on the calling thread alone.
const PARALLEL_FROM: usize = 256 * 1024;

/// What a scan found.
#[derive(Debug)]
pub struct Scan<T> {
    /// What `keep` returned for each valid record, in feed order.
    pub kept: Vec<T>,
    /// Number of valid records.
    pub valid: usize,
    /// Index in the array and reason of every skipped item, in feed order.
    pub invalid: Vec<(usize, InvalidItem)>,
    /// Size of the body.
    pub bytes: usize,
    /// When the last byte of the body was taken in (read while it arrived: the rest of the
    /// reading took from then on); `None` when the body was read whole.
    pub body_end: Option<std::time::Instant>,
    /// SHA-256 of the body, when the reader was asked for it
    /// ([`super::stream::StreamScan::with_sha256`]).
    pub sha256: Option<[u8; 32]>,
}

/// Reads `body` (a JSON array) and calls `keep` on every valid record (from several threads for
/// a large body); what it returns is kept in feed order.
pub fn scan_body<T, F>(body: &[u8], tz: chrono_tz::Tz, keep: F) -> Result<Scan<T>, FeedError>
where
    T: Send,
    F: for<'r> Fn(FeedRecord<'r>) -> Option<T> + Sync,
{
    let scan = match scan_utf8(body, tz, &keep) {
        // Bytes that are not UTF-8 spoil only the items holding them.
        Err(FeedError::Json(_)) if std::str::from_utf8(body).is_err() => {
            let text = String::from_utf8_lossy(body);
            scan_lossy(&text, tz, &keep).map_err(|e| match e {
                FeedError::Json(e) => {
                    FeedError::Json(format!("{e} (the body is not UTF-8 either)"))
                }
                other => other,
            })
        }
        other => other,
    };
    scan.map(|scan| Scan {
        bytes: body.len(),
        ..scan
    })
}

fn workers(body: &[u8]) -> usize {
    if body.len() < PARALLEL_FROM {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

fn scan_utf8<'a, T, F>(body: &'a [u8], tz: chrono_tz::Tz, keep: &F) -> Result<Scan<T>, FeedError>
where
    T: Send,
    F: for<'r> Fn(FeedRecord<'r>) -> Option<T> + Sync,
{
    let process = |index: usize, items: Vec<RawItem<'a>>| process_items(index, items, tz, keep);

    let mut results: Vec<Done<T>> = Vec::new();
    let workers = workers(body);
    let top = if workers == 1 {
        read_chunks(body, |index, items| results.push(process(index, items)))?
    } else {
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<RawItem<'a>>)>(QUEUE);
        let rx = Mutex::new(rx);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let rx = &rx;
                    let process = &process;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok((index, items)) = next else { break };
                            out.push(process(index, items));
                        }
                        out
                    })
                })
                .collect();
            let top = read_chunks(body, |index, items| {
                // A worker only stops when the channel closes: a send cannot fail before.
                let _ = tx.send((index, items));
            });
            drop(tx);
            for handle in handles {
                match handle.join() {
                    Ok(done) => results.extend(done),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            top
        })?
    };
    top.into_result()?;
    Ok(merge(results))
}

/// Validates, classifies and normalises the items of one chunk (`index`: the first one's).
pub(super) fn process_items<T, F>(
    index: usize,
    items: Vec<RawItem<'_>>,
    tz: chrono_tz::Tz,
    keep: &F,
) -> Done<T>
where
    F: for<'r> Fn(FeedRecord<'r>) -> Option<T> + ?Sized,
{
    let mut done = Done {
        index,
        kept: Vec::new(),
        valid: 0,
        invalid: Vec::new(),
    };
    for (offset, item) in items.into_iter().enumerate() {
        match record::build(item, tz) {
            Ok(mut record) => {
                record.index = index + offset;
                done.valid += 1;
                done.kept.extend(keep(record));
            }
            Err(reason) => done.invalid.push((index + offset, reason)),
        }
    }
    done
}

/// The processed chunks put back in feed order (invalid items logged).
pub(super) fn merge<T>(mut results: Vec<Done<T>>) -> Scan<T> {
    results.sort_unstable_by_key(|done| done.index);
    let mut scan = Scan {
        kept: Vec::with_capacity(results.iter().map(|d| d.kept.len()).sum()),
        valid: 0,
        invalid: Vec::new(),
        bytes: 0,
        body_end: None,
        sha256: None,
    };
    for done in results {
        scan.kept.extend(done.kept);
        scan.valid += done.valid;
        scan.invalid.extend(done.invalid);
    }
    log_invalid(&scan.invalid);
    scan
}

fn log_invalid(invalid: &[(usize, InvalidItem)]) {
    for (index, reason) in invalid {
        tracing::debug!(
            index,
            "FeedService: skipping invalid item due to error: {reason}"
        );
    }
}

/// The lossily decoded body, one `Value` per item (a rare path: speed does not matter).
fn scan_lossy<T, F>(text: &str, tz: chrono_tz::Tz, keep: &F) -> Result<Scan<T>, FeedError>
where
    F: for<'r> Fn(FeedRecord<'r>) -> Option<T> + ?Sized,
{
    Ok(merge(vec![lossy_items(text, 0, tz, keep)?]))
}

/// The items of `text` (a JSON array, lossily decoded), the first one being item `base` of the
/// feed: an item holding U+FFFD is invalid ([`InvalidItem::InvalidUtf8`]).
pub(super) fn lossy_items<T, F>(
    text: &str,
    base: usize,
    tz: chrono_tz::Tz,
    keep: &F,
) -> Result<Done<T>, FeedError>
where
    F: for<'r> Fn(FeedRecord<'r>) -> Option<T> + ?Sized,
{
    let mut done = Done {
        index: base,
        kept: Vec::new(),
        valid: 0,
        invalid: Vec::new(),
    };
    let json = |e: serde_json::Error| FeedError::Json(e.to_string());
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de
        .deserialize_any(TopVisitor {
            sink: |index: usize, items: Vec<Value>| {
                for (offset, item) in items.iter().enumerate() {
                    let index = base + index + offset;
                    let parsed = if holds_replacement(item) {
                        Err(InvalidItem::InvalidUtf8)
                    } else {
                        record::parse_item(item, tz)
                    };
                    match parsed {
                        Ok(mut record) => {
                            record.index = index;
                            done.valid += 1;
                            done.kept.extend(keep(record));
                        }
                        Err(reason) => done.invalid.push((index, reason)),
                    }
                }
            },
            item: std::marker::PhantomData::<Value>,
        })
        .map_err(json)?;
    de.end().map_err(json)?;
    top.into_result()?;
    Ok(done)
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

/// One processed chunk.
pub(super) struct Done<T> {
    pub(super) index: usize,
    pub(super) kept: Vec<T>,
    pub(super) valid: usize,
    pub(super) invalid: Vec<(usize, InvalidItem)>,
}

/// What the body turned out to be.
pub(super) enum Top {
    Array,
    Object(Value),
    Other(&'static str),
}

impl Top {
    /// An array is fine; anything else is what the feed sent instead of records.
    pub(super) fn into_result(self) -> Result<(), FeedError> {
        match self {
            Top::Array => Ok(()),
            Top::Object(value) => Err(match error_text(&value) {
                Some(text) => FeedError::ErrorObject(text),
                None if value.as_object().is_some_and(serde_json::Map::is_empty) => {
                    FeedError::NotAnArray("an empty object")
                }
                None => FeedError::NotAnArray("an object"),
            }),
            Top::Other(what) => Err(FeedError::NotAnArray(what)),
        }
    }
}

/// Reads the array, handing over items in chunks (index of the first item, items). A body
/// that is UTF-8 is checked once as a whole (not string by string).
fn read_chunks<'a>(
    body: &'a [u8],
    sink: impl FnMut(usize, Vec<RawItem<'a>>),
) -> Result<Top, FeedError> {
    match std::str::from_utf8(body) {
        Ok(text) => read_with(&mut serde_json::Deserializer::from_str(text), sink),
        Err(_) => read_with(&mut serde_json::Deserializer::from_slice(body), sink),
    }
    .map_err(|e| FeedError::Json(e.to_string()))
}

/// [`read_chunks`] on a given reader.
pub(super) fn read_with<'a, R: serde_json::de::Read<'a>>(
    de: &mut serde_json::Deserializer<R>,
    sink: impl FnMut(usize, Vec<RawItem<'a>>),
) -> Result<Top, serde_json::Error> {
    let top = de.deserialize_any(TopVisitor {
        sink,
        item: std::marker::PhantomData,
    })?;
    de.end()?;
    Ok(top)
}

struct TopVisitor<S, I> {
    sink: S,
    item: std::marker::PhantomData<I>,
}

impl<'de, I: Deserialize<'de>, S: FnMut(usize, Vec<I>)> Visitor<'de> for TopVisitor<S, I> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Top, A::Error> {
        let mut start = 0;
        let mut chunk = Vec::with_capacity(CHUNK);
        while let Some(item) = seq.next_element::<I>()? {
            chunk.push(item);
            if chunk.len() == CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                (self.sink)(start, full);
                start += CHUNK;
            }
        }
        if !chunk.is_empty() {
            (self.sink)(start, chunk);
        }
        Ok(Top::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        let value = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Top::Object(value))
    }

    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("a string"))
    }
}
