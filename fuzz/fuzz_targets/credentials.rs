//! Credential extraction on arbitrary header values: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::CredentialExtractor;

fuzz_target!(|data: &[u8]| {
    // First byte picks the header, the rest is its value.
    let Some((selector, value)) = data.split_first() else {
        return;
    };
    let name = match selector % 3 {
        0 => "authorization",
        1 => "x-api-key",
        _ => "cookie",
    };
    let Ok(value) = http::HeaderValue::from_bytes(value) else {
        return;
    };
    let Ok(request) = http::Request::builder().header(name, value).body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    if let Ok(extractor) = CredentialExtractor::new().session_cookie("sid") {
        let _ = extractor.extract(&parts);
    }
});
