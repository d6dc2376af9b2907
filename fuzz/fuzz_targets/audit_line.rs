//! Audit lines read back by the reader and the chain verifier: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = serde_json::from_str::<portcullis_core::AuditEvent>(text);
    let _ = portcullis_audit::verify_lines(text.lines(), portcullis_audit::GENESIS, None);
});
