//! What the request benches share: the medium workload's policy and one of its allowed
//! requests, an HS256 JWT for its user, the route table, and the audit file sink.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    reason = "bench setup shared by the bench binaries"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use portcullis_audit::{BufferConfig, BufferedSink, FileSinkConfig, JsonlFile};
use portcullis_core::{AuditSink, AuthenticatorChain, PolicyEngine};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, RouteTable};

/// The setup of every request bench.
pub struct Setup {
    /// One thread serves the requests (the audit writer has its own).
    pub runtime: tokio::runtime::Runtime,
    /// RBAC on the medium workload.
    pub engine: Arc<dyn PolicyEngine>,
    /// The workload user of the request, and its roles.
    pub user: String,
    pub roles: Vec<String>,
    /// The path of an allowed request (`c198:o861` is `/objects/c198/o861`: a path segment
    /// may not carry the resource separator).
    pub path: String,
    /// HS256 JWT verification, and the `Authorization` value of the user's token.
    pub jwt: JwtAuthenticator,
    pub authorization: String,
    /// `GET /objects/{collection}/{object}` → `read` on `{collection}:{object}`.
    pub table: RouteTable,
}

/// The setup, or `None` (after saying why) when the workloads are not there.
pub fn setup() -> Option<Setup> {
    let medium = portcullis_testkit::workloads::load("medium")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine: Arc<dyn PolicyEngine> = Arc::new(
        RbacEngine::new(Policy::from_document(&medium.document()).expect("policy"))
            .expect("engine"),
    );
    let (user, _, resource) = medium.allowed(0);
    let roles = medium.roles_of(user);
    let issuer = TokenIssuer::new(
        "https://auth.bench",
        SigningKey::hmac(Some("k1"), Algorithm::HS256, &[7; 32]).expect("key"),
    )
    .audiences(["api"])
    .access_ttl(Duration::from_secs(3600));
    let token = issuer
        .issue(&TokenRequest::access(user).roles(roles.clone()))
        .expect("token");
    let jwt = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.bench", issuer).audiences(["api"]))
        .build()
        .expect("verifier");
    let table = RouteTable::new()
        .route(
            "GET /objects/{collection}/{object}",
            "read",
            "{collection}:{object}",
        )
        .expect("routes");
    Some(Setup {
        runtime,
        engine,
        user: user.to_owned(),
        roles,
        path: format!("/objects/{}", resource.replacen(':', "/", 1)),
        jwt,
        authorization: format!("Bearer {}", token.token.expose()),
        table,
    })
}

/// The router without layers.
pub fn routes() -> Router {
    Router::new().route("/objects/{collection}/{object}", get(|| async { "ok" }))
}

/// A GET of `path`, with `header` when given.
pub fn request(path: &str, header: Option<(&str, &str)>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(Body::empty()).expect("request")
}

/// A `BufferedSink` writing JSON Lines to a fresh file (default settings: fsync per batch),
/// and the directory to remove afterwards.
pub fn file_sink(setup: &Setup, name: &str) -> (Arc<BufferedSink>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let sink = setup.runtime.block_on(async {
        Arc::new(
            BufferedSink::new(
                JsonlFile::open(FileSinkConfig::new(dir.join("audit.jsonl"))).expect("file"),
                BufferConfig::default(),
            )
            .expect("sink"),
        )
    });
    (sink, dir)
}

/// The whole stack around [`routes`]: authentication by `chain`, the setup's RBAC, one audit
/// event per request into `sink`.
pub fn protect(setup: &Setup, chain: AuthenticatorChain, sink: Arc<dyn AuditSink>) -> Router {
    routes()
        .layer(AuthzLayer::new(setup.engine.clone(), setup.table.clone()))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink))
                .layer(AuthLayer::new(chain)),
        )
}
