//! `Content-Disposition` parsing into a safe file name, from any header text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes::fuzz_api as filename;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    if let Some(name) = filename::name_from_content_disposition(&header) {
        let name = name.as_str();
        assert!(!name.is_empty());
        assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'));
        assert!(name != "." && name != "..");
        assert!(name.len() <= filename::MAX_NAME_BYTES);
    }
});
