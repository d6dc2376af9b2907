//! Resource names and patterns: the check and the matcher must never panic, and an accepted
//! pattern must match its own literal base when it is exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_rbac::{PatternKind, ResourcePattern, check_resource};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_resource(text);
    if let Ok(pattern) = ResourcePattern::parse(text) {
        if pattern.kind() == PatternKind::Exact {
            assert!(pattern.matches(text));
        }
        let _ = pattern.matches(text);
    }
});
