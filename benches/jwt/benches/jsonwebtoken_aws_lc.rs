//! `jsonwebtoken::decode` with its `aws_lc` provider as the process default, strict validation
//! (iss, aud, exp, sub required; nbf checked), on the same tokens as `jwt.rs`.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(clippy::expect_used, clippy::unreachable, reason = "bench setup")]

#[allow(dead_code, reason = "the module is shared with the other JWT benches")]
mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn decode(c: &mut Criterion) {
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .expect("first provider installed in this process");
    let fixtures = common::fixtures();
    let mut group = c.benchmark_group("jwt_verify");
    for f in &fixtures {
        let validation = common::jsonwebtoken_validation(f.alg);
        let decoded =
            jsonwebtoken::decode::<common::Claims>(&f.token, &f.decoding_key, &validation)
                .expect("jsonwebtoken accepts the token");
        assert_eq!(decoded.claims.roles.len(), 3);
        group.bench_function(format!("jsonwebtoken_aws_lc/{}", f.name), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<common::Claims>(
                    black_box(&f.token),
                    &f.decoding_key,
                    &validation,
                )
                .is_ok()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
