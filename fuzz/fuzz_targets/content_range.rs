//! `Content-Range` parsing from any header text: a start and an optional total, or nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes::fuzz_api::parse_content_range;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    if let Some((start, total)) = parse_content_range(&header) {
        // Whatever is accepted came from the text: the start is written in it.
        assert!(header.contains(&start.to_string()));
        if let Some(total) = total {
            assert!(header.contains(&total.to_string()));
        }
    }
});
