//! The full stack (HS256 JWT + RBAC + buffered JSON Lines audit) against the same axum router
//! with no layers, in process (`tower::ServiceExt::oneshot`). The difference is the latency
//! Portcullis adds per request.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "bench setup")]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use portcullis_audit::{BufferConfig, BufferedSink, Durability, FileSinkConfig, JsonlFile};
use portcullis_core::{AuthenticatorChain, PolicyEngine};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, RouteTable};
use tower::ServiceExt as _;

/// Accepts events and drops them (measures the request path without the writer).
#[derive(Debug)]
struct DiscardSink;

#[async_trait::async_trait]
impl portcullis_core::AuditSink for DiscardSink {
    async fn record(
        &self,
        event: portcullis_core::AuditEvent,
    ) -> Result<(), portcullis_core::AuditError> {
        std::hint::black_box(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), portcullis_core::AuditError> {
        Ok(())
    }
}

fn routes() -> Router {
    Router::new().route("/collections/{name}", get(|| async { "ok" }))
}

fn stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let issuer = TokenIssuer::new(
        "https://auth.bench",
        SigningKey::hmac(Some("k1"), Algorithm::HS256, &[7; 32]).expect("key"),
    )
    .audiences(["api"])
    .access_ttl(Duration::from_secs(3600));
    let token = issuer
        .issue(&TokenRequest::access("user-42").roles(["admin", "user", "reader"]))
        .expect("token");
    let authorization = format!("Bearer {}", token.token.expose());
    let jwt = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.bench", issuer).audiences(["api"]))
        .build()
        .expect("verifier");
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(RbacEngine::new(Policy::amaters()).expect("policy"));
    let table = RouteTable::new()
        .route("GET /collections/{name}", "read", "collection:{name}")
        .expect("routes");
    let dir = std::env::temp_dir().join(format!("portcullis-bench-stack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut file_config = FileSinkConfig::new(dir.join("audit.jsonl"));
    file_config.durability = Durability::Interval(Duration::from_secs(1));
    let sink = runtime.block_on(async {
        Arc::new(
            BufferedSink::new(
                JsonlFile::open(file_config).expect("file"),
                BufferConfig::default(),
            )
            .expect("sink"),
        )
    });
    let chain = AuthenticatorChain::new(vec![Arc::new(jwt)]);
    let full = routes()
        .layer(AuthzLayer::new(Arc::clone(&engine), table.clone()))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink.clone()))
                .layer(AuthLayer::new(chain.clone())),
        );
    // The same stack with an in-memory sink that keeps nothing: the request path alone,
    // without the background JSON Lines writer (redaction, hash chain, file writes).
    let request_path_only = routes().layer(AuthzLayer::new(engine, table)).layer(
        tower::ServiceBuilder::new()
            .layer(AuditLayer::new(Arc::new(DiscardSink)))
            .layer(AuthLayer::new(chain)),
    );
    let bare = routes();
    let request = |auth: &str| {
        Request::get("/collections/datasets")
            .header("authorization", auth)
            .body(Body::empty())
            .expect("request")
    };
    runtime.block_on(async {
        let response = full
            .clone()
            .oneshot(request(&authorization))
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
    });

    let mut group = c.benchmark_group("stack");
    group.bench_function("bare_router", |b| {
        b.to_async(&runtime).iter(|| async {
            bare.clone()
                .oneshot(request(&authorization))
                .await
                .expect("response")
        });
    });
    group.bench_function("jwt_rbac_audit", |b| {
        b.to_async(&runtime).iter(|| async {
            full.clone()
                .oneshot(request(&authorization))
                .await
                .expect("response")
        });
    });
    group.bench_function("jwt_rbac_audit_request_path", |b| {
        b.to_async(&runtime).iter(|| async {
            request_path_only
                .clone()
                .oneshot(request(&authorization))
                .await
                .expect("response")
        });
    });
    group.finish();
    runtime.block_on(async {
        let _ = sink.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, stack);
criterion_main!(benches);
