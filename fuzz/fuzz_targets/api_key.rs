//! API-key parsing and AmateRS key files: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_apikey::{FileOptions, KeyPrefix, parse_key, parse_key_file};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(prefix) = KeyPrefix::new("pc_live_") {
        let _ = parse_key(text, &[prefix]);
    }
    let _ = parse_key_file(text, FileOptions::default());
});
