//! Allocations per request, every thread counted (dhat's counting allocator), as the layers
//! are added one at a time to the same axum router: authentication (HS256 JWT), then
//! authorization (RBAC, medium workload), then audit (a sink that keeps nothing), then the real
//! audit pipeline (`BufferedSink` writing JSON Lines to a file). Prints the count per request of
//! each stack and what each layer adds. Not a criterion bench: it counts, it does not time
//! (and dhat's allocator is far too slow to time anything).
#![allow(missing_docs, reason = "a bench binary")]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "bench setup and its report"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use portcullis_audit::{BufferConfig, BufferedSink, FileSinkConfig, JsonlFile};
use portcullis_core::{AuditError, AuditEvent, AuditSink, AuthenticatorChain, PolicyEngine};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, RouteTable};
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

fn routes() -> Router {
    Router::new().route("/objects/{collection}/{object}", get(|| async { "ok" }))
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let Some(medium) = portcullis_testkit::workloads::load("medium") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine: Arc<dyn PolicyEngine> = Arc::new(
        RbacEngine::new(Policy::from_document(&medium.document()).expect("policy"))
            .expect("engine"),
    );
    let (user, _, resource) = medium.allowed(0);
    let path = format!("/objects/{}", resource.replacen(':', "/", 1));
    let issuer = TokenIssuer::new(
        "https://auth.bench",
        SigningKey::hmac(Some("k1"), Algorithm::HS256, &[7; 32]).expect("key"),
    )
    .audiences(["api"])
    .access_ttl(Duration::from_secs(3600));
    let token = issuer
        .issue(&TokenRequest::access(user).roles(medium.roles_of(user)))
        .expect("token");
    let authorization = format!("Bearer {}", token.token.expose());
    let jwt = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.bench", issuer).audiences(["api"]))
        .build()
        .expect("verifier");
    let chain = AuthenticatorChain::new(vec![Arc::new(jwt)]);
    let table = RouteTable::new()
        .route(
            "GET /objects/{collection}/{object}",
            "read",
            "{collection}:{object}",
        )
        .expect("routes");
    let dir =
        std::env::temp_dir().join(format!("portcullis-request-allocs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file_sink = runtime.block_on(async {
        Arc::new(
            BufferedSink::new(
                JsonlFile::open(FileSinkConfig::new(dir.join("audit.jsonl"))).expect("file"),
                BufferConfig::default(),
            )
            .expect("sink"),
        )
    });
    let with_audit = |sink: Arc<dyn AuditSink>| {
        routes()
            .layer(AuthzLayer::new(engine.clone(), table.clone()))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(AuditLayer::new(sink))
                    .layer(AuthLayer::new(chain.clone())),
            )
    };
    let stacks: Vec<(&str, Router)> = vec![
        ("bare router", routes()),
        (
            "+ authentication (HS256 JWT)",
            routes().layer(AuthLayer::new(chain.clone())),
        ),
        (
            "+ authorization (RBAC, medium)",
            routes()
                .layer(AuthzLayer::new(engine.clone(), table.clone()))
                .layer(AuthLayer::new(chain.clone())),
        ),
        (
            "+ audit layer (discarding sink)",
            with_audit(Arc::new(DiscardSink)),
        ),
        (
            "+ JSON Lines file (BufferedSink)",
            with_audit(file_sink.clone()),
        ),
    ];

    println!("allocations per request ({REQUESTS} requests each, every thread counted)");
    let mut previous = 0.0;
    for (name, router) in &stacks {
        let run = |n: u64| {
            runtime.block_on(async {
                for _ in 0..n {
                    let request = Request::get(path.as_str())
                        .header("authorization", authorization.as_str())
                        .body(Body::empty())
                        .expect("request");
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
    runtime.block_on(async {
        let _ = file_sink.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
