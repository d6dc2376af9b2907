//! Verifying a typical access token through `JwtAuthenticator` (every strict check on), next
//! to the raw ring signature check (the floor). The jsonwebtoken peers run in
//! `jsonwebtoken_aws_lc.rs` and `jsonwebtoken_rust_crypto.rs`.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(clippy::expect_used, clippy::unreachable, reason = "bench setup")]

#[allow(
    dead_code,
    reason = "the module is shared with the jsonwebtoken benches"
)]
mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn verify(c: &mut Criterion) {
    let fixtures = common::fixtures();
    let mut group = c.benchmark_group("jwt_verify");
    for f in &fixtures {
        assert!(
            common::now_or_never(f.verifier.verify(&f.token)).is_ok(),
            "{} token verifies",
            f.name
        );
        assert!(common::ring_verify(&f.public, f.alg, &f.token));
        group.bench_function(format!("portcullis/{}", f.name), |b| {
            b.iter(|| common::now_or_never(f.verifier.verify(black_box(&f.token))).is_ok());
        });
        group.bench_function(format!("ring_floor/{}", f.name), |b| {
            b.iter(|| common::ring_verify(&f.public, f.alg, black_box(&f.token)));
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
