//! The streamed scan against the whole-body reader: same records, same errors, any cuts.
use super::*;
use crate::feed::record::{FeedRecord, InvalidItem};
use proptest::prelude::*;

type Read = Result<(Vec<FeedRecord<'static>>, usize, Vec<(usize, InvalidItem)>), String>;

fn whole(body: &[u8]) -> Read {
    scan_body(body, chrono_tz::Europe::Paris, |r| Some(r.into_owned()))
        .map(|s| (s.kept, s.valid, s.invalid))
        .map_err(|e| e.to_string())
}

fn streamed(body: &[u8], cuts: &[usize], batch: usize) -> Read {
    let mut scan = StreamScan::new(chrono_tz::Europe::Paris, |r: FeedRecord<'_>| {
        Some(r.into_owned())
    })
    .with_batch_size(batch);
    let mut at = 0;
    for &cut in cuts {
        let cut = cut.min(body.len()).max(at);
        scan.push(&body[at..cut]);
        at = cut;
    }
    scan.push(&body[at..]);
    scan.finish()
        .map(|s| (s.kept, s.valid, s.invalid))
        .map_err(|e| e.to_string())
}

/// Items of both formats, valid and not, with escapes, nesting and brackets in strings.
fn item() -> impl Strategy<Value = String> {
    let token = "[a-z0-9]{1,12}";
    prop_oneof![
        (token, token, 0..3u8).prop_map(|(a, b, n)| format!(
            r#"{{"source_url":"https://www.dropbox.com/scl/fo/{a}/x?rlkey={b}&amp;dl=0","r2_url":"https://x.workers.dev/dropbox/{b}/file","provider":"dropbox","created_at":"2026-0{}-01T10:00:00Z","original_filename":"{a} \"clip\", [take {n}].mov"}}"#,
            n + 1
        )),
        (token, 0..2u8).prop_map(|(a, n)| format!(
            r#"{{"url":"https://WWW.Dropbox.com/s/{a}/x.mov?DL=0","timestamp":"2026-03-0{} 10:00:00","source":"dropbox","source_url":null,"extra":{{"a":[1,2,{{"b":"}}]"}}]}}}}"#,
            n + 1
        )),
        token.prop_map(|a| format!(r#"{{"url":"https://fromsmash.com/{a}","timestamp":"2026-01-01T00:00:00.123+0200"}}"#)),
        token.prop_map(|a| format!(r#"{{"url":"https://example.com/{a}\\u00e9\/y","timestamp":"bad"}}"#)),
        Just(r#""not an object, [ ] { }""#.to_string()),
        Just("12.5e3".to_string()),
        Just("null".to_string()),
        Just("[1,{\"a\":\"]\"},[]]".to_string()),
        Just(r#"{"url":"https://fromsmash.com/\u00e9 x\\","timestamp":"2026-01-01T00:00:00Z"}"#.to_string()),
        Just(r#"{"source_url":"https://a.com/x","provider":"p","created_at":"2026-01-01T00:00:00Z","original_filename":"f","source_url":"not a link"}"#.to_string()),
        Just("{\"link\":\"https://example.com/é\"}".to_string()),
    ]
}

fn space() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\n"), Just("\r\n\t ")]
}

fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((item(), space(), space()), 0..24),
        space(),
        space(),
    )
        .prop_map(|(items, before, after)| {
            let inner: Vec<String> = items
                .into_iter()
                .map(|(i, a, b)| format!("{a}{i}{b}"))
                .collect();
            format!("{before}[{}]{after}", inner.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn streamed_reads_as_the_whole_body_does(
        body in body(),
        cuts in prop::collection::vec(0..4000usize, 0..12),
        batch in 1..400usize,
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(streamed(body.as_bytes(), &cuts, batch), whole(body.as_bytes()));
    }

    #[test]
    fn a_broken_body_fails_as_the_whole_body_does(
        body in body(),
        at in 0..4000usize,
        what in prop_oneof![Just(""), Just(","), Just("]"), Just("}"), Just("["), Just("{"), Just("\""), Just("\\"), Just("x"), Just(":"), Just("\n")],
        truncate in any::<bool>(),
        cuts in prop::collection::vec(0..4000usize, 0..12),
        batch in 1..400usize,
    ) {
        let mut at = at.min(body.len());
        while !body.is_char_boundary(at) {
            at -= 1;
        }
        let broken = if truncate {
            body[..at].to_string()
        } else {
            format!("{}{what}{}", &body[..at], &body[at..])
        };
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(streamed(broken.as_bytes(), &cuts, batch), whole(broken.as_bytes()));
    }

    #[test]
    fn bytes_that_are_not_utf8_spoil_only_their_item(
        body in body(),
        at in 0..4000usize,
        cuts in prop::collection::vec(0..4000usize, 0..12),
        batch in 1..400usize,
    ) {
        // A bad byte inside a string of an item.
        let mut bytes = body.into_bytes();
        let Some(quote) = bytes.iter().skip(at.min(bytes.len())).position(|c| *c == b'x') else {
            return Ok(());
        };
        let pos = at.min(bytes.len()) + quote;
        bytes[pos] = 0xff;
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(streamed(&bytes, &cuts, batch), whole(&bytes));
    }
}

#[test]
fn shapes_that_are_not_arrays_answer_as_before() {
    for body in [
        &br#"{"error": "Failed to fetch data"}"#[..],
        b"{}",
        b"",
        b"   ",
        b"null",
        b"\"x\"",
        b"<html>",
        b"[1] [2]",
        b"[1,]",
        b"[,1]",
        b"[1,,2]",
        b"[",
        b"[{\"a\":1}",
        b"\n\n  [ ]  \n",
    ] {
        for batch in [1, 1000] {
            let cuts: Vec<usize> = (0..body.len()).collect();
            assert_eq!(
                streamed(body, &cuts, batch),
                whole(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[test]
fn a_large_body_uses_the_workers_and_keeps_the_order() {
    let item = r#"{"url":"https://fromsmash.com/abc","timestamp":"2026-01-01T00:00:00Z"}"#;
    let body = format!("[{}]", vec![item; 20_000].join(",\n"));
    let cuts: Vec<usize> = (1..body.len()).step_by(16 * 1024).collect();
    let got = streamed(body.as_bytes(), &cuts, BATCH).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.1, 20_000);
    assert!(got.0.iter().enumerate().all(|(i, r)| r.index == i));
    assert_eq!(Ok(got), whole(body.as_bytes()));
}
