//! The whole stack on an axum router: JWT and API keys on the same route, status and
//! challenge for every failure, one audit event per request under concurrency.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
use portcullis_audit::MemorySink;
use portcullis_core::{
    AuditEvent, AuditResult, AuditSink, Authenticator, AuthenticatorChain, PolicyEngine, Principal,
};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwksOptions, JwtAuthenticator, RemoteJwks, SigningKey, TokenIssuer,
    TokenRequest,
};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthMode, AuthzLayer, PublicPaths, RouteTable};
use tower::ServiceExt as _;

const PEPPER: &[u8] = b"a-pepper-for-the-tower-tests-0123456789";

struct Stack {
    router: Router,
    sink: Arc<MemorySink>,
    issuer: TokenIssuer,
    reader_key: String,
    admin_key: String,
}

fn issuer() -> TokenIssuer {
    TokenIssuer::new(
        "https://auth.test",
        SigningKey::hmac(Some("k1"), Algorithm::HS256, &[7; 32]).unwrap(),
    )
    .audiences(["api"])
}

fn stack_with(
    extra: Vec<Arc<dyn Authenticator>>,
    sink: Arc<dyn AuditSink>,
    memory: Arc<MemorySink>,
) -> Stack {
    let issuer = issuer();
    let jwt = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.test", issuer.clone()).audiences(["api"]))
        .build()
        .unwrap();
    let prefix = KeyPrefix::new("pc_test_").unwrap();
    let pepper = Pepper::new(PEPPER).unwrap();
    let (reader, mut reader_record) = issue_key(&prefix, &pepper, "svc-reader").unwrap();
    reader_record.roles = vec!["reader".into()];
    let (admin, mut admin_record) = issue_key(&prefix, &pepper, "svc-admin").unwrap();
    admin_record.roles = vec!["admin".into()];
    let store = MemoryStore::new(vec![reader_record, admin_record]).unwrap();
    let api_keys = ApiKeyAuthenticator::builder(Arc::new(store), Pepper::new(PEPPER).unwrap())
        .prefix(prefix)
        .build();
    let mut authenticators: Vec<Arc<dyn Authenticator>> = vec![Arc::new(jwt), Arc::new(api_keys)];
    authenticators.extend(extra);
    let engine: Arc<dyn PolicyEngine> = Arc::new(RbacEngine::new(Policy::amaters()).unwrap());
    let routes = RouteTable::new()
        .route("GET /collections/{name}", "read", "collection:{name}")
        .unwrap()
        .route("PUT /collections/{name}", "write", "collection:{name}")
        .unwrap();
    let router = Router::new()
        .route(
            "/collections/{name}",
            get(|p: Principal| async move { format!("{}:{}", p.id(), p.auth_method()) })
                .put(|p: Principal| async move { p.id().to_owned() }),
        )
        .layer(AuthzLayer::new(engine, routes))
        .route("/health", get(|| async { "ok" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink))
                .layer(
                    AuthLayer::new(AuthenticatorChain::new(authenticators))
                        .public_paths(PublicPaths::none().exact(["/health"])),
                ),
        );
    Stack {
        router,
        sink: memory,
        issuer,
        reader_key: reader.key.expose().to_owned(),
        admin_key: admin.key.expose().to_owned(),
    }
}

fn stack() -> Stack {
    let memory = Arc::new(MemorySink::new());
    stack_with(Vec::new(), memory.clone(), memory)
}

async fn send(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn last_event(sink: &MemorySink) -> AuditEvent {
    sink.events().last().cloned().unwrap()
}

/// A root CA and one client certificate for `svc-mtls` (clientAuth), with rcgen.
fn client_certificate() -> (
    portcullis_mtls::MtlsAuthenticator,
    portcullis_core::PeerCertificates,
) {
    use portcullis_testkit::pki;
    let ca = pki::ca("Stack Test CA", None);
    let leaf_der = pki::leaf(&ca, "svc-mtls", 2, |_| {});
    let material = portcullis_mtls::TrustMaterial::new(&[ca.der], &[], pki::now()).unwrap();
    let policy = portcullis_mtls::MtlsPolicy::default().roles(portcullis_mtls::RoleSource::Table(
        [("svc-mtls".to_owned(), vec!["reader".to_owned()])].into(),
    ));
    let authenticator = portcullis_mtls::MtlsAuthenticator::new(
        Arc::new(portcullis_mtls::TrustStore::new(material)),
        policy,
    );
    (
        authenticator,
        portcullis_core::PeerCertificates::new(vec![leaf_der]),
    )
}

#[tokio::test]
async fn jwt_api_key_and_mtls_on_one_route() {
    let (mtls, chain) = client_certificate();
    let memory = Arc::new(MemorySink::new());
    let s = stack_with(vec![Arc::new(mtls)], memory.clone(), memory);
    let request = |extra: Option<(&str, String)>| {
        let mut request = Request::get("/collections/docs");
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        // What the TLS acceptor (`portcullis_mtls::server::serve`) does for each request.
        request.extensions_mut().insert(chain.clone());
        request
    };
    let body = |response: http::Response<Body>| async move {
        (
            response.status(),
            String::from_utf8(
                response
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap(),
        )
    };
    // The certificate alone.
    let response = s.router.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(
        body(response).await,
        (StatusCode::OK, "svc-mtls:mTLS".to_owned())
    );
    // Certificate and API key: the chain's order (JWT, API key, mTLS) makes the key win.
    let response = s
        .router
        .clone()
        .oneshot(request(Some(("x-api-key", s.reader_key.clone()))))
        .await
        .unwrap();
    assert_eq!(
        body(response).await,
        (StatusCode::OK, "svc-reader:APIKey".to_owned())
    );
    let token = s
        .issuer
        .issue(&TokenRequest::access("alice").roles(["reader"]))
        .unwrap();
    let response = s
        .router
        .clone()
        .oneshot(request(Some(bearer(token.token.expose()))))
        .await
        .unwrap();
    assert_eq!(
        body(response).await,
        (StatusCode::OK, "alice:JWT".to_owned())
    );
}

#[tokio::test]
async fn jwt_and_api_key_on_one_route_give_the_same_principal_type() {
    let s = stack();
    let token = s
        .issuer
        .issue(&TokenRequest::access("alice").roles(["reader"]))
        .unwrap();
    let (status, _, body) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[bearer(token.token.expose())],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice:JWT"));
    let (status, _, body) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[("x-api-key", s.reader_key.clone())],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "svc-reader:APIKey")
    );
    // Two credentials: the chain's order (JWT first) decides.
    let (status, _, body) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[
            bearer(token.token.expose()),
            ("x-api-key", s.admin_key.clone()),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice:JWT"));
    let event = last_event(&s.sink);
    assert_eq!(event.result, AuditResult::Allowed);
    assert_eq!(
        event.metadata.get("authenticator"),
        Some(&serde_json::json!("jwt"))
    );
}

#[tokio::test]
async fn every_failure_has_its_status_and_challenge() {
    let s = stack();
    // No credentials.
    let (status, headers, body) = send(&s.router, "GET", "/collections/docs", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
    let challenges: Vec<_> = headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer realm=")),
        "{challenges:?}"
    );
    // Malformed header.
    let (status, headers, _) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[("authorization", "Bearer".into())],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );
    // Expired token.
    let an_hour_ago = portcullis_core::OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let past = issuer().clock(Arc::new(portcullis_core::ManualClock::new(an_hour_ago)));
    let expired = past
        .issue(&TokenRequest::access("alice").ttl(Duration::from_secs(60)))
        .unwrap();
    let (status, headers, _) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[bearer(expired.token.expose())],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(last_event(&s.sink).reason.unwrap().contains("expired"));
    // Unknown API key.
    let unknown = s.reader_key.replace(&s.reader_key[8..14], "zzzzzz");
    assert_eq!(
        send(
            &s.router,
            "GET",
            "/collections/docs",
            &[("x-api-key", unknown)]
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // Denied action.
    let (status, _, body) = send(
        &s.router,
        "PUT",
        "/collections/docs",
        &[("x-api-key", s.reader_key.clone())],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, r#"{"detail":"Permission required"}"#)
    );
    let event = last_event(&s.sink);
    assert_eq!(event.result, AuditResult::Denied);
    assert!(event.reason.is_some());
    // Unmapped route: denied by default.
    assert_eq!(
        send(
            &s.router,
            "GET",
            "/elsewhere",
            &[("x-api-key", s.reader_key.clone())]
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Public path, with and without (even bad) credentials.
    assert_eq!(
        send(&s.router, "GET", "/health", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&s.router, "GET", "/health", &[bearer("x.y.z")])
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_jwks_endpoint_that_is_down_gives_503() {
    // A JWKS URL on a loopback port where nothing listens.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let remote = RemoteJwks::new(
        &url,
        Arc::new(portcullis_jwt::HyperFetcher::new().unwrap()),
        JwksOptions::default().timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let jwt = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://idp.test", remote).audiences(["api"]))
        .build()
        .unwrap();
    let sink = Arc::new(MemorySink::new());
    let router = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(AuditLayer::new(sink.clone()))
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(jwt)])));
    let idp = TokenIssuer::new(
        "https://idp.test",
        SigningKey::generate("i1", Algorithm::ES256).unwrap(),
    )
    .audiences(["api"]);
    let token = idp.issue(&TokenRequest::access("bob")).unwrap();
    let (status, _, body) = send(&router, "GET", "/x", &[bearer(token.token.expose())]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, r#"{"detail":"Service unavailable"}"#);
}

#[tokio::test]
async fn a_fail_closed_audit_sink_that_refuses_gives_503() {
    #[derive(Debug)]
    struct Refusing;
    #[async_trait::async_trait]
    impl AuditSink for Refusing {
        async fn record(&self, _: AuditEvent) -> Result<(), portcullis_core::AuditError> {
            Err(portcullis_core::AuditError::Refused("queue full".into()))
        }
        async fn flush(&self) -> Result<(), portcullis_core::AuditError> {
            Ok(())
        }
    }
    let memory = Arc::new(MemorySink::new());
    let s = stack_with(Vec::new(), Arc::new(Refusing), memory);
    let (status, _, _) = send(
        &s.router,
        "GET",
        "/collections/docs",
        &[("x-api-key", s.reader_key.clone())],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_event_per_request_under_concurrency() {
    let s = stack();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let router = s.router.clone();
            let key = s.reader_key.clone();
            tokio::spawn(async move {
                let path = format!("/collections/c{i}");
                let (method, headers) = match i % 4 {
                    0 => ("GET", vec![("x-api-key", key)]),
                    1 => ("PUT", vec![("x-api-key", key)]),
                    2 => ("GET", vec![]),
                    _ => ("GET", vec![("x-api-key", "pc_test_nope".to_owned())]),
                };
                send(&router, method, &path, &headers).await.0
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events = s.sink.events();
    assert_eq!(events.len(), 1000);
    let mut paths: Vec<String> = events
        .iter()
        .map(|e| e.request_path.clone().unwrap())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 1000, "no request recorded twice");
}

#[tokio::test]
async fn optional_mode_and_the_extractor_without_a_layer() {
    let s = stack();
    let chain = AuthenticatorChain::new(vec![Arc::new(
        JwtAuthenticator::builder()
            .issuer(IssuerConfig::new("https://auth.test", s.issuer.clone()).audiences(["api"]))
            .build()
            .unwrap(),
    )]);
    let router = Router::new()
        .route(
            "/me",
            get(|p: Option<Principal>| async move {
                p.map_or("anonymous".to_owned(), |p| p.id().to_owned())
            }),
        )
        .layer(AuthLayer::new(chain).mode(AuthMode::Optional));
    assert_eq!(send(&router, "GET", "/me", &[]).await.2, "anonymous");
    let token = s.issuer.issue(&TokenRequest::access("carol")).unwrap();
    assert_eq!(
        send(&router, "GET", "/me", &[bearer(token.token.expose())])
            .await
            .2,
        "carol"
    );
    // Malformed credentials are still refused in optional mode.
    assert_eq!(
        send(&router, "GET", "/me", &[bearer("a.b.c")]).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Forgetting the layer: a loud 500 naming it, not a confusing 401.
    let bare = Router::new().route("/me", get(|p: Principal| async move { p.id().to_owned() }));
    let (status, _, body) = send(&bare, "GET", "/me", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("AuthLayer"), "{body}");
}
