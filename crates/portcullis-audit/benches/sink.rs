//! The buffered JSON Lines sink with per-batch fsync: sustained events per second, and the
//! latency a producer sees per event while the queue is not full.

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
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_audit::{
    BufferConfig, BufferedSink, Durability, FileSinkConfig, JsonlFile, Rotation,
};
use portcullis_core::{
    AuditEvent, AuditEventType, AuditResult, AuditSink, IdSource, OffsetDateTime, RandomIds,
};

fn event(n: u64) -> AuditEvent {
    AuditEvent::new(
        RandomIds.event_id(),
        AuditEventType::Authorization,
        AuditResult::Allowed,
        OffsetDateTime::now_utc(),
    )
    .with_action("read")
    .with_resource("collection:datasets")
    .with_http("GET", "/collections/datasets", Some(200))
    .with_user_agent("bench/1.0")
    .with_metadata("n", n)
}

/// Polls a future that is expected to complete without waiting.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

fn sink(dir: &std::path::Path, capacity: usize) -> BufferedSink {
    let mut config = FileSinkConfig::new(dir.join("audit.jsonl"));
    config.durability = Durability::EveryBatch;
    config.rotation = Rotation::default()
        .max_bytes(Some(256 * 1024 * 1024))
        .max_age(None)
        .keep(2);
    let file = JsonlFile::open(config).unwrap();
    BufferedSink::new(
        file,
        BufferConfig::default().capacity(capacity).max_batch(4_096),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("portcullis-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("audit/buffered_jsonl");
    // Sustained: record N events and wait until they are written and synced.
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("sustained_per_event", |b| {
        let sink = sink(&dir, 65_536);
        b.iter_custom(|iters| {
            let start = Instant::now();
            runtime.block_on(async {
                for n in 0..iters {
                    sink.record(event(n)).await.unwrap();
                }
                sink.flush().await.unwrap();
            });
            start.elapsed()
        });
        runtime.block_on(sink.shutdown()).unwrap();
    });
    // What a producer sees per event while the queue has room (a large queue, drained in the
    // background by the writer thread).
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("producer_latency", |b| {
        let sink = sink(&dir, 4_000_000);
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            ready(sink.record(black_box(event(n)))).unwrap();
        });
        runtime.block_on(sink.shutdown()).unwrap();
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(audit, bench);
criterion_main!(audit);
