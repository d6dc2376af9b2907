//! CPU per request, every thread of the process counted (the audit writer's included): N
//! requests through an axum router, the process's CPU time read before and after
//! (`CLOCK_PROCESS_CPUTIME_ID`, which counts every thread), divided by N. Criterion reports that CPU
//! time as the time of one iteration, so its medians are µs of CPU per request.
//!
//! - `bare_router`: the router without layers.
//! - `jwt_hs256_rbac_medium_jsonl`: HS256 JWT, RBAC with the medium workload (100 roles,
//!   10,000 rules), the audit layer writing JSON Lines to a real file through `BufferedSink`.
//! - `apikey_amaters_sha256_…` and `apikey_portcullis_hmac_…`: the same with API keys instead,
//!   100,000 keys in the store.
//!
//! The added CPU per request is a stack's figure minus `bare_router`'s.
#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "bench setup"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use portcullis_apikey::{
    ApiKeyAuthenticator, KeyHash, KeyPrefix, KeyRecord, MemoryStore, Pepper, Verifier, issue_key,
};
use portcullis_audit::{BufferConfig, BufferedSink, FileSinkConfig, JsonlFile};
use portcullis_core::{AuditSink, Authenticator, AuthenticatorChain, PolicyEngine};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, RouteTable};
use tower::ServiceExt as _;

const KEYS_IN_STORE: usize = 100_000;
const PEPPER: &[u8] = b"a-pepper-for-the-request-cpu-bench-0123";

/// The CPU time every thread of the process has used (`CLOCK_PROCESS_CPUTIME_ID`).
fn process_cpu() -> Duration {
    cpu_time::ProcessTime::now().as_duration()
}

fn routes() -> Router {
    Router::new().route("/objects/{collection}/{object}", get(|| async { "ok" }))
}

struct Protected {
    router: Router,
    sink: Arc<BufferedSink>,
    header: (&'static str, String),
}

fn protect(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    authenticator: Arc<dyn Authenticator>,
    engine: Arc<dyn PolicyEngine>,
    header: (&'static str, String),
) -> Protected {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-request-cpu-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let sink = runtime.block_on(async {
        Arc::new(
            BufferedSink::new(
                JsonlFile::open(FileSinkConfig::new(dir.join("audit.jsonl"))).expect("file"),
                BufferConfig::default(),
            )
            .expect("sink"),
        )
    });
    let table = RouteTable::new()
        .route(
            "GET /objects/{collection}/{object}",
            "read",
            "{collection}:{object}",
        )
        .expect("routes");
    let audit_sink: Arc<dyn AuditSink> = sink.clone();
    let router = routes().layer(AuthzLayer::new(engine, table)).layer(
        tower::ServiceBuilder::new()
            .layer(AuditLayer::new(audit_sink))
            .layer(AuthLayer::new(AuthenticatorChain::new(vec![authenticator]))),
    );
    Protected {
        router,
        sink,
        header,
    }
}

fn request(path: &str, header: Option<&(&'static str, String)>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some((name, value)) = header {
        request = request.header(*name, value.as_str());
    }
    request.body(Body::empty()).expect("request")
}

fn request_cpu(c: &mut Criterion) {
    let Some(medium) = portcullis_testkit::workloads::load("medium") else {
        return;
    };
    // One thread serves the requests; the audit writer has its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine: Arc<dyn PolicyEngine> = Arc::new(
        RbacEngine::new(Policy::from_document(&medium.document()).expect("policy"))
            .expect("engine"),
    );
    let (user, _, resource) = medium.allowed(0);
    // `c198:o861` is collection `c198`, object `o861` (a path segment may not carry the
    // separator).
    let path = format!("/objects/{}", resource.replacen(':', "/", 1));
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

    // 100,000 keys of each kind; the request uses one of them.
    let prefix = KeyPrefix::new("pc_bench_").expect("prefix");
    let pepper = Pepper::new(PEPPER).expect("pepper");
    let mut records = Vec::with_capacity(2 * KEYS_IN_STORE);
    let mut portcullis_key = String::new();
    for n in 0..KEYS_IN_STORE {
        let (generated, mut record) = issue_key(&prefix, &pepper, format!("svc-{n}")).expect("key");
        record.roles.clone_from(&roles);
        if n == KEYS_IN_STORE / 2 {
            portcullis_key = generated.key.expose().to_owned();
        }
        records.push(record);
        let mut amaters = KeyRecord::new(
            format!("legacy-{n}"),
            format!("legacy-svc-{n}"),
            Verifier::Sha256(KeyHash::sha256(&format!("amaters-key-{n}"))),
        );
        amaters.roles.clone_from(&roles);
        records.push(amaters);
    }
    let store = Arc::new(MemoryStore::new(records).expect("store"));
    let api_keys: Arc<dyn Authenticator> = Arc::new(
        ApiKeyAuthenticator::builder(store, Pepper::new(PEPPER).expect("pepper"))
            .prefix(prefix)
            .accept_amaters_keys(true)
            .build(),
    );

    let stacks = [
        protect(
            &runtime,
            "jwt",
            Arc::new(jwt),
            engine.clone(),
            ("authorization", format!("Bearer {}", token.token.expose())),
        ),
        protect(
            &runtime,
            "amaters",
            api_keys.clone(),
            engine.clone(),
            ("x-api-key", format!("amaters-key-{}", KEYS_IN_STORE / 2)),
        ),
        protect(
            &runtime,
            "portcullis",
            api_keys,
            engine.clone(),
            ("x-api-key", portcullis_key),
        ),
    ];
    let names = [
        "jwt_hs256_rbac_medium_jsonl",
        "apikey_amaters_sha256_100k_rbac_medium_jsonl",
        "apikey_portcullis_hmac_100k_rbac_medium_jsonl",
    ];
    for stack in &stacks {
        let response = runtime
            .block_on(
                stack
                    .router
                    .clone()
                    .oneshot(request(&path, Some(&stack.header))),
            )
            .expect("response");
        let status = response.status();
        let body = runtime
            .block_on(http_body_util::BodyExt::collect(response.into_body()))
            .unwrap()
            .to_bytes();
        assert_eq!(status, 200, "the bench request must be allowed: {body:?}");
    }

    let mut group = c.benchmark_group("request_cpu");
    let bare = routes();
    group.bench_function("bare_router", |b| {
        b.iter_custom(|iters| {
            let before = process_cpu();
            runtime.block_on(async {
                for _ in 0..iters {
                    bare.clone()
                        .oneshot(request(&path, None))
                        .await
                        .expect("response");
                }
            });
            process_cpu() - before
        });
    });
    for (stack, name) in stacks.iter().zip(names) {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let before = process_cpu();
                runtime.block_on(async {
                    for _ in 0..iters {
                        stack
                            .router
                            .clone()
                            .oneshot(request(&path, Some(&stack.header)))
                            .await
                            .expect("response");
                    }
                    // The writer's work for these requests is counted too.
                    stack.sink.flush().await.expect("flush");
                });
                process_cpu() - before
            });
        });
    }
    group.finish();
    for stack in &stacks {
        let _ = runtime.block_on(stack.sink.shutdown());
    }
}

criterion_group!(benches, request_cpu);
criterion_main!(benches);
