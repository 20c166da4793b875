//! A short way to read a batch of feed items: most items are flat objects whose values are
//! strings without escapes (or `null`), which are read here in one pass, the strings borrowed
//! from the text, without serde's generic machinery. Any other item (escapes, numbers, nested
//! values, not an object) is read by serde from where it starts, and anything irregular between
//! items hands the whole batch back to serde (`None`), which then reports the error. The result
//! is the same as serde's: the property tests of `stream.rs` compare the streamed read (which
//! uses this) with [`super::scan::scan_body`] (which does not).

use std::borrow::Cow;

use super::record::{Field, RawItem};

/// The items of `text`, a JSON array; `None` when serde should read it (irregular text).
pub(super) fn read_items(text: &str) -> Option<Vec<RawItem<'_>>> {
    let b = text.as_bytes();
    let mut items = Vec::with_capacity(b.len() / 200 + 1);
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_space(b, i + 1);
    if b.get(i) == Some(&b']') {
        return (skip_space(b, i + 1) == b.len()).then_some(items);
    }
    loop {
        let (item, end) = match flat_object(b, text, i) {
            Some(read) => read,
            None => serde_item(text, i)?,
        };
        items.push(item);
        i = skip_space(b, end);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b']') => break,
            _ => return None,
        }
    }
    (skip_space(b, i + 1) == b.len()).then_some(items)
}

/// One item read by serde from `at`, and where it ends.
fn serde_item(text: &str, at: usize) -> Option<(RawItem<'_>, usize)> {
    let mut items = serde_json::Deserializer::from_str(&text[at..]).into_iter::<RawItem<'_>>();
    let item = items.next()?.ok()?;
    Some((item, at + items.byte_offset()))
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// A string starting at `at` (its opening quote) without escapes or control characters: where
/// its text starts and ends (its closing quote).
fn plain_string(b: &[u8], text: &str, at: usize) -> Option<(usize, usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = string_stop(b, start, true);
    if b.get(end) != Some(&b'"') {
        return None;
    }
    // Both ends are ASCII quotes: character boundaries.
    debug_assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
    Some((start, end))
}

/// The first position from `i` on of a `"` or a `\\` (or, with `control`, a byte below 0x20),
/// else `b.len()`: eight bytes at a time (strings in feeds are short: a vectorised search costs
/// more to start than this takes).
pub(super) fn string_stop(b: &[u8], mut i: usize, control: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    /// High bit set in each byte of `w` that is below `n` (the lowest set bit is exact).
    fn below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let mut hits =
            below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1);
        if control {
            hits |= below(w, 0x20);
        }
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || (control && c < 0x20) {
            break;
        }
        i += 1;
    }
    i
}

/// A flat object at `at` whose values are plain strings or `null`, and where it ends.
fn flat_object<'a>(b: &[u8], text: &'a str, at: usize) -> Option<(RawItem<'a>, usize)> {
    if b.get(at) != Some(&b'{') {
        return None;
    }
    let mut item = RawItem {
        object: true,
        ..RawItem::default()
    };
    let mut i = skip_space(b, at + 1);
    if b.get(i) == Some(&b'}') {
        return Some((item, i + 1));
    }
    loop {
        let (key_start, key_end) = plain_string(b, text, i)?;
        i = skip_space(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_space(b, i + 1);
        let value = match b.get(i) {
            Some(b'"') => {
                let (start, end) = plain_string(b, text, i)?;
                i = end + 1;
                Field::Str(Cow::Borrowed(&text[start..end]))
            }
            Some(b'n') if b.get(i..i + 4) == Some(b"null") => {
                i += 4;
                Field::Null
            }
            _ => return None,
        };
        // A repeated key keeps its last value, as with serde.
        let slot = match &text[key_start..key_end] {
            "source_url" => &mut item.source_url,
            "r2_url" => &mut item.r2_url,
            "provider" => &mut item.provider,
            "created_at" => &mut item.created_at,
            "original_filename" => &mut item.original_filename,
            "url" => &mut item.url,
            "timestamp" => &mut item.timestamp,
            "source" => &mut item.source,
            _ => {
                i = skip_space(b, i);
                match b.get(i) {
                    Some(b',') => {
                        i = skip_space(b, i + 1);
                        continue;
                    }
                    Some(b'}') => return Some((item, i + 1)),
                    _ => return None,
                }
            }
        };
        *slot = value;
        i = skip_space(b, i);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b'}') => return Some((item, i + 1)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_stop_is_the_first_quote_backslash_or_control_byte(
            bytes in prop::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1fu8), Just(0u8), Just(b'a'), Just(0xe9u8), Just(0x7fu8), Just(0x80u8), Just(0xffu8), Just(b' ')], 0..40),
            from in 0..40usize,
            control in any::<bool>(),
        ) {
            let from = from.min(bytes.len());
            let expected = bytes[from..]
                .iter()
                .position(|c| *c == b'"' || *c == b'\\' || (control && *c < 0x20))
                .map_or(bytes.len(), |k| from + k);
            prop_assert_eq!(string_stop(&bytes, from, control), expected);
        }
    }

    fn serde_items(text: &str) -> Option<Vec<RawItem<'_>>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn flat_items_and_the_others_read_as_serde_reads_them() {
        for text in [
            "[]",
            " [ ] ",
            r#"[{"url":"https://a.com/x","timestamp":"2026-01-01 10:00:00","source":null,"x":"y"}]"#,
            r#"[ {"url" : "a" , "url":"b"} , "s", 12, null, [1], {}, {"a":{"url":"c"}}, {"url":"d\"e"} ]"#,
            r#"[{"source_url":"https://a.com/é","r2_url":null,"provider":"p","created_at":"t","original_filename":"f","n":1.5}]"#,
            "[{\"url\":\"a\tb\"}]",
            "[{\"url\":\"a\"},]",
            "[{\"url\":\"a\"} {\"url\":\"b\"}]",
            "[{\"url\":\"a\",}]",
            "[{\"url\" \"a\"}]",
            "[{\"url\":nul}]",
            "[{\"url\":\"a\"}] x",
        ] {
            let fast = read_items(text);
            let slow = serde_items(text);
            // Where serde succeeds, so does the short way, with the same items; where it fails,
            // the short way hands the text back.
            match slow {
                Some(items) => assert_eq!(fast, Some(items), "{text}"),
                None => assert_eq!(fast, None, "{text}"),
            }
        }
    }
}
