//! API-key verification against a store of 100,000 keys: a valid key, an unknown id, a wrong
//! secret (the two failures must cost the same), and a malformed key (rejected offline).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark harness: failing loudly on bad setup is the point"
)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_apikey::*;
use portcullis_core::{
    ApiKeySource, AuthOutcome, Authenticator, Credential, Credentials, SecretString,
};

/// Polls a future that completes without waiting (the memory store never waits), so the
/// figures are the verification itself and not an executor's overhead.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the memory store never waits"),
    }
}

fn credentials(key: &str) -> Credentials {
    Credentials::from_list(vec![Credential::ApiKey {
        key: SecretString::new(key),
        source: ApiKeySource::Header(http::HeaderName::from_static("x-api-key")),
    }])
}

fn bench(c: &mut Criterion) {
    let pepper = || Pepper::new(b"benchmark pepper of at least 32 bytes").unwrap();
    let prefix = KeyPrefix::new("pc_live_").unwrap();
    let mut records = Vec::with_capacity(100_000);
    let mut valid = None;
    for i in 0..100_000 {
        let (key, record) = issue_key(&prefix, &pepper(), format!("owner{i}")).unwrap();
        if i == 50_000 {
            valid = Some(key);
        }
        records.push(record);
    }
    let valid = valid.unwrap();
    let (unknown, _) = issue_key(&prefix, &pepper(), "nobody").unwrap();
    let parsed = parse_key(valid.key.expose(), std::slice::from_ref(&prefix)).unwrap();
    // A well-formed key (right checksum) for a known id with a wrong secret.
    let wrong_secret = testing::assemble_key(&prefix, &parsed.id, &"7".repeat(SECRET_LEN)).unwrap();
    let store = Arc::new(MemoryStore::new(records).unwrap());
    let auth = ApiKeyAuthenticator::builder(store, pepper())
        .prefix(prefix.clone())
        .failure_limit(u32::MAX, time::Duration::seconds(1))
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let valid_credentials = credentials(valid.key.expose());
    let unknown_credentials = credentials(unknown.key.expose());
    let wrong_credentials = credentials(&wrong_secret);
    let malformed_credentials = credentials("pc_live_not-a-key");
    assert!(matches!(
        runtime.block_on(auth.authenticate(&valid_credentials)),
        AuthOutcome::Authenticated(_)
    ));
    assert!(matches!(
        runtime.block_on(auth.authenticate(&unknown_credentials)),
        AuthOutcome::Rejected(_)
    ));
    assert!(matches!(
        runtime.block_on(auth.authenticate(&wrong_credentials)),
        AuthOutcome::Rejected(_)
    ));

    let mut group = c.benchmark_group("apikey/verify");
    group.bench_function("valid", |b| {
        b.iter(|| ready(auth.authenticate(black_box(&valid_credentials))));
    });
    group.bench_function("unknown_id", |b| {
        b.iter(|| ready(auth.authenticate(black_box(&unknown_credentials))));
    });
    group.bench_function("wrong_secret", |b| {
        b.iter(|| ready(auth.authenticate(black_box(&wrong_credentials))));
    });
    group.bench_function("malformed", |b| {
        b.iter(|| ready(auth.authenticate(black_box(&malformed_credentials))));
    });
    group.finish();
}

criterion_group!(apikey, bench);
criterion_main!(apikey);
