//! Allocations per request, every thread counted (dhat's counting allocator), as the layers
//! are added one at a time to the same axum router: authentication (HS256 JWT), then
//! authorization (RBAC, medium workload), then audit (a sink that keeps nothing), then the real
//! audit pipeline (`BufferedSink` writing JSON Lines to a file). Prints the count per request of
//! each stack and what each layer adds. Not a criterion bench: it counts, it does not time
//! (and dhat's allocator is far too slow to time anything).
#![allow(missing_docs, reason = "a bench binary")]
#![allow(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "bench setup and its report"
)]

mod common;

use std::sync::Arc;

use axum::Router;
use portcullis_core::{AuditError, AuditEvent, AuditSink, AuthenticatorChain};
use portcullis_tower::{AuthLayer, AuthzLayer};
use tower::ServiceExt as _;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const REQUESTS: u64 = 2_000;

/// Accepts events and drops them.
#[derive(Debug)]
struct DiscardSink;

#[async_trait::async_trait]
impl AuditSink for DiscardSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        drop(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let Some(setup) = common::setup() else {
        return;
    };
    let chain = AuthenticatorChain::new(vec![Arc::new(setup.jwt.clone())]);
    let (file_sink, dir) = common::file_sink(&setup, "request-allocs");
    let stacks: Vec<(&str, Router)> = vec![
        ("bare router", common::routes()),
        (
            "+ authentication (HS256 JWT)",
            common::routes().layer(AuthLayer::new(chain.clone())),
        ),
        (
            "+ authorization (RBAC, medium)",
            common::routes()
                .layer(AuthzLayer::new(setup.engine.clone(), setup.table.clone()))
                .layer(AuthLayer::new(chain.clone())),
        ),
        (
            "+ audit layer (discarding sink)",
            common::protect(&setup, chain.clone(), Arc::new(DiscardSink)),
        ),
        (
            "+ JSON Lines file (BufferedSink)",
            common::protect(&setup, chain, file_sink.clone()),
        ),
    ];

    println!("allocations per request ({REQUESTS} requests each, every thread counted)");
    let header = Some(("authorization", setup.authorization.as_str()));
    let mut previous = 0.0;
    for (name, router) in &stacks {
        let run = |n: u64| {
            setup.runtime.block_on(async {
                for _ in 0..n {
                    let request = common::request(&setup.path, header);
                    let response = router.clone().oneshot(request).await.expect("response");
                    assert_eq!(response.status(), 200, "{name}");
                }
                file_sink.flush().await.expect("flush");
            });
        };
        run(200); // caches, first-use allocations
        let before = dhat::HeapStats::get().total_blocks;
        run(REQUESTS);
        let per_request = (dhat::HeapStats::get().total_blocks - before) as f64 / REQUESTS as f64;
        println!(
            "  {name:<36} {per_request:>6.1}   ({:+.1})",
            per_request - previous
        );
        previous = per_request;
    }
    let _ = setup.runtime.block_on(file_sink.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}
