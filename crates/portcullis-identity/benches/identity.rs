//! Login throughput (bounded by argon2id at the OWASP parameters), how long a cheap request
//! waits while a login burst is hashing, and refresh rotations on SQLite and PostgreSQL
//! (`DATABASE_URL`, skipped with a printed reason when absent).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "bench code"
)]

#[path = "../../portcullis-sqlx/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_audit::MemorySink;
use portcullis_core::SecretString;
use portcullis_identity::{Client, Identity, IdentityConfig, Passwords, Registration};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer};
use portcullis_rbac::{Builtins, PolicyDocument};
use portcullis_sqlx::{RbacStore, Store};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn identity(store: &Store) -> Identity {
    let template = PolicyDocument {
        builtins: Builtins::Aethera,
        ..PolicyDocument::default()
    };
    let rbac = Arc::new(RbacStore::open(store, template).await.unwrap());
    let key = SigningKey::hmac(
        None,
        Algorithm::HS256,
        b"a-bench-secret-of-at-least-32-bytes!",
    )
    .unwrap();
    let identity = Identity::new(
        store.clone(),
        rbac,
        TokenIssuer::new("https://bench", key),
        Passwords::new(Default::default(), Default::default()).unwrap(),
        Arc::new(MemorySink::new()),
        IdentityConfig::default(),
    );
    identity
        .register(
            Registration::new(
                "bench",
                "bench@example.com",
                SecretString::new("bench-password-1"),
            ),
            &Client::default(),
        )
        .await
        .unwrap();
    identity
}

fn login(c: &mut Criterion) {
    let rt = runtime();
    let db = rt.block_on(common::sqlite_memory());
    let identity = rt.block_on(identity(&db.store));
    let password = SecretString::new("bench-password-1");
    let mut group = c.benchmark_group("identity");
    group.sample_size(20);
    group.bench_function("login_argon2id_owasp", |b| {
        b.to_async(&rt).iter(|| async {
            identity
                .login("bench", &password, &Client::default())
                .await
                .unwrap()
        });
    });
    // A cheap request (a spawned task answering at once) while 8 logins hash: the async
    // threads stay free, so it waits for a scheduler turn, not for a hash.
    group.bench_function("cheap_request_during_login_burst", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let identity = identity.clone();
            let password = password.clone();
            async move {
                let burst: Vec<_> = (0..8)
                    .map(|_| {
                        let identity = identity.clone();
                        let password = password.clone();
                        tokio::spawn(async move {
                            let _ = identity.login("bench", &password, &Client::default()).await;
                        })
                    })
                    .collect();
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    tokio::spawn(async { 1 + 1 }).await.unwrap();
                    total += started.elapsed();
                }
                for task in burst {
                    task.await.unwrap();
                }
                total
            }
        });
    });
    group.finish();
}

fn refresh(c: &mut Criterion) {
    let rt = runtime();
    let mut dbs = vec![rt.block_on(common::sqlite_file("identity_bench"))];
    dbs.extend(rt.block_on(common::postgres("identity_bench")));
    let mut group = c.benchmark_group("identity");
    for db in &dbs {
        let identity = rt.block_on(identity(&db.store));
        let first = rt
            .block_on(identity.login(
                "bench",
                &SecretString::new("bench-password-1"),
                &Client::default(),
            ))
            .unwrap();
        let current = std::sync::Mutex::new(first.refresh_token);
        group.bench_function(format!("refresh_rotation_{}", db.name), |b| {
            b.to_async(&rt).iter(|| async {
                let token = current.lock().unwrap().clone();
                let next = identity.refresh(&token, &Client::default()).await.unwrap();
                *current.lock().unwrap() = next.refresh_token;
            });
        });
    }
    group.finish();
    for db in dbs {
        rt.block_on(db.finish());
    }
}

criterion_group!(benches, login, refresh);
criterion_main!(benches);
