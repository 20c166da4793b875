//! Properties checked on generated inputs (proptest): what must hold for any name, any JSON
//! value, any link and any signed body, not only for the examples in the unit tests.

use proptest::prelude::*;
use serde_json::Value;
use url::Url;

use crate::feed::classify::normalize_url;
use crate::feed::record::parse_item;
use crate::feed::source::parse_body;
use crate::frameio::webhook::{sign, verify};
use crate::naming::{MAX_NAME_BYTES, SafeFileName};

/// Any JSON value, nested a few levels, with strings that look like feed fields now and then.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
        prop_oneof![
            Just("https://www.dropbox.com/scl/fo/x/y?dl=0&rlkey=k"),
            Just("https://fromsmash.com/abc"),
            Just("2026-01-08T20:19:38+00:00"),
            Just("2025-10-17 10:00:00"),
            Just("dropbox"),
            Just("ftp://x"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let keys = prop_oneof![
        Just("source_url".to_string()),
        Just("r2_url".to_string()),
        Just("url".to_string()),
        Just("provider".to_string()),
        Just("source".to_string()),
        Just("created_at".to_string()),
        Just("timestamp".to_string()),
        Just("original_filename".to_string()),
        ".{0,8}",
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Links of the kinds feeds hold, with odd spellings: case, `&amp;`, empty and repeated
/// parameters, trailing slashes, fragments.
fn any_link() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![Just("https"), Just("http"), Just("HTTPS")];
    let host = prop_oneof![
        Just("www.dropbox.com"),
        Just("Dropbox.com"),
        Just("dl.dropboxusercontent.com"),
        Just("fromsmash.com"),
        Just("www.swisstransfer.com"),
        Just("server.example.workers.dev"),
        Just("example.com"),
    ];
    let segment = "[a-zA-Z0-9._~%-]{0,10}";
    let param = prop_oneof![
        Just("dl=0".to_string()),
        Just("dl=1".to_string()),
        Just("amp;dl=0".to_string()),
        Just("amp%3Bdl=1".to_string()),
        Just("rlkey=abc".to_string()),
        Just("raw=1".to_string()),
        Just("=x".to_string()),
        Just("e=".to_string()),
        "[a-z]{1,4}=[a-zA-Z0-9%]{0,6}",
    ];
    (
        scheme,
        host,
        prop::collection::vec(segment, 0..4),
        any::<bool>(),
        prop::collection::vec(param, 0..5),
        prop::option::of("[a-z0-9]{0,5}"),
    )
        .prop_map(|(scheme, host, segments, slash, params, fragment)| {
            let mut link = format!("{scheme}://{host}/{}", segments.join("/"));
            if slash {
                link.push('/');
            }
            if !params.is_empty() {
                link.push('?');
                link.push_str(&params.join("&"));
            }
            if let Some(f) = fragment {
                link.push('#');
                link.push_str(&f);
            }
            link
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sanitised_names_are_one_safe_component(raw in prop_oneof![
        ".*",
        "[./\\\\a-z ]{0,12}",
        "[\\PC]{200,400}",
        "(CON|nul|\\.\\.|\\.)(\\.[a-z]{0,3})?",
    ]) {
        if let Some(name) = SafeFileName::new(&raw) {
            let s = name.as_str();
            prop_assert!(!s.is_empty());
            prop_assert!(!s.contains('/') && !s.contains('\\'), "{s:?}");
            prop_assert!(s != "." && s != "..", "{s:?}");
            prop_assert!(!s.chars().any(char::is_control), "{s:?}");
            prop_assert!(s.len() <= MAX_NAME_BYTES, "{} bytes", s.len());
            let again = SafeFileName::new(s);
            prop_assert_eq!(again.as_ref().map(SafeFileName::as_str), Some(s), "not idempotent");
        }
    }

    #[test]
    fn feed_items_never_panic(value in any_json()) {
        let _ = parse_item(&value, chrono_tz::Europe::Paris);
        let body = Value::Array(vec![value]).to_string();
        prop_assert!(parse_body(body.as_bytes(), chrono_tz::UTC).is_ok());
    }

    #[test]
    fn url_normalisation_is_idempotent(link in any_link()) {
        if let Ok(url) = Url::parse(&link) {
            let once = normalize_url(&url);
            let twice = normalize_url(&once);
            prop_assert_eq!(once.as_str(), twice.as_str(), "from {}", link);
        }
    }

    #[test]
    fn any_change_to_a_signed_body_or_timestamp_fails(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 0..512),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        shift in prop_oneof![-300i64..=-1, 1i64..=300],
    ) {
        let now = 1_767_225_600i64;
        let ts = now.to_string();
        let signature = sign(&secret, &ts, &body);
        prop_assert!(verify(&secret, Some(&ts), Some(&signature), &body, now).is_ok());
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 1 << bit;
            prop_assert!(verify(&secret, Some(&ts), Some(&signature), &changed, now).is_err());
        }
        let mut longer = body.clone();
        longer.push(b' ');
        prop_assert!(verify(&secret, Some(&ts), Some(&signature), &longer, now).is_err());
        let other_ts = (now + shift).to_string();
        prop_assert!(verify(&secret, Some(&other_ts), Some(&signature), &body, now).is_err());
    }
}
