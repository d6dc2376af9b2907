//! The stores under load: audit events into the database in batches, loading the large
//! (100,000-rule) policy from the tables into an engine snapshot, and a decision of the
//! store-backed engine against the same policy compiled in memory (the store is not on the
//! request path, so the two should be equal).
//!
//! PostgreSQL runs when `DATABASE_URL` names a server (`eval "$(scripts/services.sh)"`);
//! SQLite (a file) always runs. The workloads are `../shared/bench/*.json`
//! (`PORTCULLIS_BENCH_DIR` to move them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark harness: failing loudly on bad setup is the point"
)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_core::{
    AccessRequest, AuditEvent, AuditEventType, AuditResult, AuthMethod, IdSource, PolicyEngine,
    Principal, PrincipalKind, RandomIds,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_sqlx::{RbacStore, Store};
use time::OffsetDateTime;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh database of each engine there is.
fn databases(rt: &tokio::runtime::Runtime, name: &str) -> Vec<(&'static str, Store)> {
    let mut dbs = Vec::new();
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bench.db");
    let _ = std::fs::remove_file(&file);
    let sqlite = rt
        .block_on(Store::connect(&format!("sqlite://{}", file.display())))
        .unwrap();
    rt.block_on(sqlite.migrate()).unwrap();
    dbs.push(("sqlite", sqlite));
    match std::env::var("DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let database = format!("pc_bench_{name}_{}", std::process::id());
            let store = rt.block_on(async {
                let admin_store = Store::connect(&admin).await.unwrap();
                let pool = admin_store.postgres().unwrap();
                for sql in [
                    format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
                    format!("CREATE DATABASE \"{database}\""),
                ] {
                    sqlx::query(&sql).execute(pool).await.unwrap();
                }
                admin_store.close().await;
                let (base, _) = admin.rsplit_once('/').unwrap();
                let store = Store::connect(&format!("{base}/{database}")).await.unwrap();
                store.migrate().await.unwrap();
                store
            });
            dbs.push(("postgres", store));
        }
        _ => eprintln!(
            "skipping PostgreSQL: DATABASE_URL is not set (eval \"$(scripts/services.sh)\")"
        ),
    }
    dbs
}

fn event(n: usize) -> AuditEvent {
    let principal = Principal::builder(
        format!("user-{}", n % 100),
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::now_utc(),
    )
    .role("analyst")
    .build()
    .unwrap();
    AuditEvent::new(
        RandomIds.event_id(),
        AuditEventType::Authorization,
        AuditResult::Success,
        OffsetDateTime::now_utc(),
    )
    .with_principal(&principal)
    .with_action("read")
    .with_resource(&format!("collection:c{}", n % 50))
    .with_http("GET", "/collections/c1/documents", Some(200))
    .with_latency(Duration::from_micros(420))
}

fn audit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("audit_insert_batch_1000");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    for (engine, store) in databases(&rt, "audit") {
        let audit = store.audit();
        group.bench_function(engine, |b| {
            b.iter_batched(
                || (0..1000).map(event).collect::<Vec<_>>(),
                |events| rt.block_on(audit.insert(&events)).unwrap(),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn policy(c: &mut Criterion) {
    let Some(large) = portcullis_testkit::workloads::load("large") else {
        return;
    };
    let doc = large.document();
    let rt = runtime();
    let mut group = c.benchmark_group("policy_load_large_100k_rules");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let memory = RbacEngine::new(Policy::from_document(&doc).unwrap()).unwrap();
    let (user, action, resource) = large.allowed(0);
    let principal = large.principal(user);
    let mut stores = Vec::new();
    for (engine, store) in databases(&rt, "policy") {
        let seeded = std::time::Instant::now();
        let rbac = rt.block_on(RbacStore::open(&store, doc.clone())).unwrap();
        eprintln!(
            "{engine}: 100,000 rules written to the tables in {:?}",
            seeded.elapsed()
        );
        group.bench_function(engine, |b| {
            b.iter(|| rt.block_on(RbacStore::open(&store, doc.clone())).unwrap());
        });
        stores.push((engine, rbac));
    }
    group.finish();

    let mut group = c.benchmark_group("decision_large_allow");
    group.bench_function("in_memory", |b| {
        b.iter(|| black_box(memory.evaluate(&AccessRequest::new(&principal, action, resource))));
    });
    for (engine, rbac) in &stores {
        let engine_ref = rbac.engine();
        assert!(
            engine_ref
                .evaluate(&AccessRequest::new(&principal, action, resource))
                .is_allowed()
        );
        group.bench_function(format!("from_{engine}"), |b| {
            b.iter(|| {
                black_box(engine_ref.evaluate(&AccessRequest::new(&principal, action, resource)))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, audit, policy);
criterion_main!(benches);
