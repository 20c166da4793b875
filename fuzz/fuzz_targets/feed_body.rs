//! The feed body parser: any bytes give records and invalid items, or an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(feed) = rushes::fuzz_api::parse_feed_body(data, chrono_tz::Europe::Paris) {
        for record in &feed.records {
            // Every record has a usable identity.
            assert!(!record.dedupe_key().is_empty());
        }
    }
});
