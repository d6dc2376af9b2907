//! `jsonwebtoken::decode` with its `rust_crypto` provider as the process default, strict validation
//! (iss, aud, exp, sub required; nbf checked), on the same tokens as `jwt.rs`.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(clippy::expect_used, clippy::unreachable, reason = "bench setup")]

#[allow(dead_code, reason = "the module is shared with the other JWT benches")]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn decode(c: &mut Criterion) {
    jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
        .install_default()
        .expect("first provider installed in this process");
    common::bench_jsonwebtoken(c, "rust_crypto");
}

criterion_group!(benches, decode);
criterion_main!(benches);
