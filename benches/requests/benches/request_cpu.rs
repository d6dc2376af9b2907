//! CPU per request, every thread of the process counted (the audit writer's included): N
//! requests through an axum router, the process's CPU time read before and after
//! (`CLOCK_PROCESS_CPUTIME_ID`, which counts every thread), divided by N. Criterion reports
//! that CPU time as the time of one iteration, so its medians are µs of CPU per request.
//!
//! - `bare_router`: the router without layers.
//! - `jwt_hs256_rbac_medium_jsonl`: HS256 JWT, RBAC with the medium workload (100 roles,
//!   10,000 rules), the audit layer writing JSON Lines to a real file through `BufferedSink`.
//! - `apikey_amaters_sha256_…` and `apikey_portcullis_hmac_…`: the same with API keys instead,
//!   100,000 keys of each kind in the store.
//!
//! The added CPU per request is a stack's figure minus `bare_router`'s.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(clippy::expect_used, reason = "bench setup")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_apikey::{
    ApiKeyAuthenticator, KeyHash, KeyPrefix, KeyRecord, MemoryStore, Pepper, Verifier, issue_key,
};
use portcullis_core::{AuditSink, Authenticator, AuthenticatorChain};
use tower::ServiceExt as _;

const KEYS_IN_STORE: usize = 100_000;
const PEPPER: &[u8] = b"a-pepper-for-the-request-cpu-bench-0123";

/// The CPU time every thread of the process has used.
fn process_cpu() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

/// An authenticator of both key kinds over 100,000 keys of each, and the two keys to send.
fn api_keys(roles: &[String]) -> (Arc<dyn Authenticator>, String, String) {
    let prefix = KeyPrefix::new("pc_bench_").expect("prefix");
    let pepper = Pepper::new(PEPPER).expect("pepper");
    let mut records = Vec::with_capacity(2 * KEYS_IN_STORE);
    let mut portcullis_key = String::new();
    for n in 0..KEYS_IN_STORE {
        let (generated, mut record) = issue_key(&prefix, &pepper, format!("svc-{n}")).expect("key");
        record.roles = roles.to_vec();
        if n == KEYS_IN_STORE / 2 {
            portcullis_key = generated.key.expose().to_owned();
        }
        records.push(record);
        let mut amaters = KeyRecord::new(
            format!("legacy-{n}"),
            format!("legacy-svc-{n}"),
            Verifier::Sha256(KeyHash::sha256(&format!("amaters-key-{n}"))),
        );
        amaters.roles = roles.to_vec();
        records.push(amaters);
    }
    let store = Arc::new(MemoryStore::new(records).expect("store"));
    let authenticator = ApiKeyAuthenticator::builder(store, pepper)
        .prefix(prefix)
        .accept_amaters_keys(true)
        .build();
    let amaters_key = format!("amaters-key-{}", KEYS_IN_STORE / 2);
    (Arc::new(authenticator), amaters_key, portcullis_key)
}

fn request_cpu(c: &mut Criterion) {
    let Some(setup) = common::setup() else {
        return;
    };
    let (keys, amaters_key, portcullis_key) = api_keys(&setup.roles);
    let jwt: Arc<dyn Authenticator> = Arc::new(setup.jwt.clone());
    let cases = [
        (
            "jwt_hs256_rbac_medium_jsonl",
            jwt,
            "authorization",
            setup.authorization.clone(),
        ),
        (
            "apikey_amaters_sha256_100k_rbac_medium_jsonl",
            keys.clone(),
            "x-api-key",
            amaters_key,
        ),
        (
            "apikey_portcullis_hmac_100k_rbac_medium_jsonl",
            keys,
            "x-api-key",
            portcullis_key,
        ),
    ];

    let mut group = c.benchmark_group("request_cpu");
    let bare = common::routes();
    group.bench_function("bare_router", |b| {
        b.iter_custom(|iters| {
            let before = process_cpu();
            setup.runtime.block_on(async {
                for _ in 0..iters {
                    let request = common::request(&setup.path, None);
                    bare.clone().oneshot(request).await.expect("response");
                }
            });
            process_cpu() - before
        });
    });
    for (name, authenticator, header, value) in cases {
        let (sink, dir) = common::file_sink(&setup, name);
        let audit: Arc<dyn AuditSink> = sink.clone();
        let router = common::protect(&setup, AuthenticatorChain::new(vec![authenticator]), audit);
        let header = Some((header, value.as_str()));
        let first = setup
            .runtime
            .block_on(router.clone().oneshot(common::request(&setup.path, header)))
            .expect("response");
        assert_eq!(
            first.status(),
            200,
            "{name}: the bench request must be allowed"
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let before = process_cpu();
                setup.runtime.block_on(async {
                    for _ in 0..iters {
                        let request = common::request(&setup.path, header);
                        router.clone().oneshot(request).await.expect("response");
                    }
                    // The writer's work for these requests is counted too.
                    sink.flush().await.expect("flush");
                });
                process_cpu() - before
            });
        });
        let _ = setup.runtime.block_on(sink.shutdown());
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, request_cpu);
criterion_main!(benches);
