//! The Frame.io webhook parser: signature header, timestamp and body from any bytes.
//! Input layout: `timestamp \n signature \n body`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes::fuzz_api as webhook;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let timestamp = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let signature = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let now = 1_767_225_600;
    let verified =
        webhook::webhook_verify(b"secret", Some(&timestamp), Some(&signature), body, now);
    // Only the real signature of these exact bytes may pass.
    if verified.is_ok() {
        assert_eq!(
            signature.trim(),
            webhook::webhook_sign(b"secret", &timestamp, body)
        );
    }
    let _ = webhook::webhook_event(now, body);
    // A body signed right always verifies.
    let signed = webhook::webhook_sign(b"secret", "1767225600", body);
    assert!(
        webhook::webhook_verify(b"secret", Some("1767225600"), Some(&signed), body, now).is_ok()
    );
});
