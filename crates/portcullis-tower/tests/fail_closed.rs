//! Regressions from outside testing: every place the stack failed open or answered without
//! a trace. Each test names the finding it pins.
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
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
use portcullis_audit::MemorySink;
use portcullis_core::{
    AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink, Authenticator,
    AuthenticatorChain, PolicyEngine, Principal,
};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwksOptions, JwtAuthenticator, RemoteJwks, SigningKey, TokenIssuer,
    TokenRequest,
};
use portcullis_rbac::RbacEngine;
use portcullis_tower::{
    AuditLayer, AuthLayer, AuthzLayer, GuardLayer, PublicPaths, RouteTable, Unmapped,
};
use tower::ServiceExt as _;

const PEPPER: &[u8] = b"a-pepper-for-the-fail-closed-tests-0123";

const ROLES: &str = r#"
default_role = "reader"

[[roles]]
name = "reader"
permissions = [{ resource = "*", actions = ["read"] }]

[[roles]]
name = "editor"
permissions = [{ resource = "*", actions = ["write"] }]
inherits = ["reader"]
"#;

struct Keys {
    /// A key whose record holds no role (the policy's default role applies).
    roleless: String,
    reader: String,
    editor: String,
}

fn api_keys() -> (Arc<dyn Authenticator>, Keys) {
    api_keys_in_realm("api")
}

fn api_keys_in_realm(realm: &str) -> (Arc<dyn Authenticator>, Keys) {
    let prefix = KeyPrefix::new("pc_fc_").unwrap();
    let pepper = Pepper::new(PEPPER).unwrap();
    let (roleless, roleless_record) = issue_key(&prefix, &pepper, "svc-roleless").unwrap();
    let (reader, mut reader_record) = issue_key(&prefix, &pepper, "svc-reader").unwrap();
    reader_record.roles = vec!["reader".into()];
    let (editor, mut editor_record) = issue_key(&prefix, &pepper, "svc-editor").unwrap();
    editor_record.roles = vec!["editor".into()];
    let store = MemoryStore::new(vec![roleless_record, reader_record, editor_record]).unwrap();
    let authenticator = ApiKeyAuthenticator::builder(Arc::new(store), Pepper::new(PEPPER).unwrap())
        .prefix(prefix)
        .realm(realm)
        .build();
    (
        Arc::new(authenticator),
        Keys {
            roleless: roleless.key.expose().to_owned(),
            reader: reader.key.expose().to_owned(),
            editor: editor.key.expose().to_owned(),
        },
    )
}

fn engine() -> Arc<RbacEngine> {
    Arc::new(RbacEngine::from_toml(ROLES).unwrap())
}

async fn send(router: &Router, path: &str, key: Option<&str>) -> (StatusCode, String) {
    let headers: Vec<(&str, String)> = key
        .map(|k| vec![("x-api-key", k.to_owned())])
        .unwrap_or_default();
    let (status, _, body) = send_with(router, path, &headers).await;
    (status, body)
}

async fn send_with(
    router: &Router,
    path: &str,
    headers: &[(&str, String)],
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().uri(path);
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

fn challenges(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn issuer() -> TokenIssuer {
    TokenIssuer::new(
        "https://auth.test",
        SigningKey::hmac(Some("k1"), Algorithm::HS256, &[7; 32]).unwrap(),
    )
    .audiences(["api"])
}

fn jwt() -> Arc<dyn Authenticator> {
    Arc::new(
        JwtAuthenticator::builder()
            .issuer(IssuerConfig::new("https://auth.test", issuer()).audiences(["api"]))
            .build()
            .unwrap(),
    )
}

/// A JWT verifier whose JWKS endpoint is a loopback port where nothing listens.
fn jwt_with_jwks_down() -> Arc<dyn Authenticator> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    drop(listener);
    let remote = RemoteJwks::new(
        &url,
        Arc::new(portcullis_jwt::HyperFetcher::new().unwrap()),
        JwksOptions::default().timeout(Duration::from_millis(500)),
    )
    .unwrap();
    Arc::new(
        JwtAuthenticator::builder()
            .issuer(IssuerConfig::new("https://idp.test", remote).audiences(["api"]))
            .build()
            .unwrap(),
    )
}

fn idp_token() -> String {
    TokenIssuer::new(
        "https://idp.test",
        SigningKey::generate("i1", Algorithm::ES256).unwrap(),
    )
    .audiences(["api"])
    .issue(&TokenRequest::access("bob"))
    .unwrap()
    .token
    .expose()
    .to_owned()
}

#[derive(Debug)]
struct Refusing;

#[async_trait::async_trait]
impl AuditSink for Refusing {
    async fn record(&self, _: AuditEvent) -> Result<(), AuditError> {
        Err(AuditError::Refused("queue full".into()))
    }
    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Finding 1: `require_role` / `require_permission` on a route under a public prefix never
/// ran, because the guard reused the authorization service that passes public requests.
#[tokio::test]
async fn a_guard_decides_on_a_public_path() {
    let (authenticator, keys) = api_keys();
    let engine = engine();
    let policy: Arc<dyn PolicyEngine> = engine.clone();
    let router = Router::new()
        .route(
            "/public/editors",
            get(|p: Principal| async move { p.id().to_owned() }),
        )
        .route_layer(GuardLayer::require_role(policy.clone(), "editor"))
        .merge(
            Router::new()
                .route(
                    "/public/writers",
                    get(|p: Principal| async move { p.id().to_owned() }),
                )
                .route_layer(GuardLayer::require_permission(policy, "write")),
        )
        .route("/public/hello", get(|| async { "hello" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(Arc::new(MemorySink::new())))
                .layer(
                    AuthLayer::new(AuthenticatorChain::new(vec![authenticator]))
                        .public_paths(PublicPaths::none().prefixes(["/public"])),
                ),
        );
    // The unguarded public route is public.
    assert_eq!(send(&router, "/public/hello", None).await.0, StatusCode::OK);
    for path in ["/public/editors", "/public/writers"] {
        // No principal: 401, not the handler.
        let (status, body) = send(&router, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
        // A principal without the role or permission: 403.
        assert_eq!(
            send(&router, path, Some(&keys.reader)).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        // With it: the handler runs.
        let (status, body) = send(&router, path, Some(&keys.editor)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, "svc-editor");
    }
}

/// Finding 4: `RbacEngine::has_role` counted the default role for a principal holding none,
/// while the tower `require_role` did not. A role now means the same to both.
#[tokio::test]
async fn require_role_and_the_engine_agree_on_the_default_role() {
    let (authenticator, keys) = api_keys();
    let engine = engine();
    let policy: Arc<dyn PolicyEngine> = engine.clone();
    let router = Router::new()
        .route(
            "/readers",
            get(|p: Principal| async move { p.id().to_owned() }),
        )
        .route_layer(GuardLayer::require_role(policy.clone(), "reader"))
        .merge(
            Router::new()
                .route(
                    "/editors",
                    get(|p: Principal| async move { p.id().to_owned() }),
                )
                .route_layer(GuardLayer::require_role(policy, "editor")),
        )
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![authenticator])));
    let principal = Principal::builder(
        "svc-roleless",
        portcullis_core::PrincipalKind::ApiKey,
        portcullis_core::AuthMethod::ApiKey,
        time::OffsetDateTime::now_utc(),
    )
    .build()
    .unwrap();
    // The engine says a principal with no role holds the default role...
    assert!(engine.has_role(&principal, "reader"));
    assert!(engine.holds_role(&principal, "reader"));
    assert!(!engine.has_role(&principal, "editor"));
    // ...and so does the guard.
    assert_eq!(
        send(&router, "/readers", Some(&keys.roleless)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, "/editors", Some(&keys.roleless)).await.0,
        StatusCode::FORBIDDEN
    );
    // Inheritance does not count for either: an editor does not hold `reader`.
    let editor = Principal::builder(
        "svc-editor",
        portcullis_core::PrincipalKind::ApiKey,
        portcullis_core::AuthMethod::ApiKey,
        time::OffsetDateTime::now_utc(),
    )
    .role("editor")
    .build()
    .unwrap();
    assert!(!engine.has_role(&editor, "reader"));
    assert_eq!(
        send(&router, "/readers", Some(&keys.editor)).await.0,
        StatusCode::FORBIDDEN
    );
}

/// Finding 9: 503 answers (a JWKS endpoint down, an audit trail that refuses) carried no
/// `Retry-After`.
#[tokio::test]
async fn a_503_says_when_to_retry() {
    let router = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![
            jwt_with_jwks_down(),
        ])));
    let (status, headers, _) = send_with(
        &router,
        "/x",
        &[("authorization", format!("Bearer {}", idp_token()))],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "5");

    let (authenticator, keys) = api_keys();
    let router = Router::new().route("/x", get(|| async { "x" })).layer(
        tower::ServiceBuilder::new()
            .layer(AuditLayer::new(Arc::new(Refusing)))
            .layer(AuthLayer::new(AuthenticatorChain::new(vec![authenticator]))),
    );
    let (status, headers, _) = send_with(&router, "/x", &[("x-api-key", keys.reader)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "5");
}

/// Finding 10: a request that sent no bearer token but a bad API key got
/// `Bearer realm="api", error="invalid_token"`. RFC 6750 §3.1: no `error` when no bearer
/// token was sent. And a server answers in one realm, whatever its authenticators' own.
#[tokio::test]
async fn the_bearer_challenge_names_an_error_only_for_a_bearer_token() {
    let (authenticator, keys) = api_keys_in_realm("keys");
    let router = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![
            jwt(),
            authenticator.clone(),
        ])));
    let bad_key = keys.reader.replace(&keys.reader[6..12], "zzzzzz");
    let (status, headers, _) = send_with(&router, "/x", &[("x-api-key", bad_key.clone())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&headers),
        [r#"Bearer realm="api""#, r#"ApiKey realm="api""#]
    );
    // No credentials at all: no error either.
    let (_, headers, _) = send_with(&router, "/x", &[]).await;
    assert_eq!(
        challenges(&headers),
        [r#"Bearer realm="api""#, r#"ApiKey realm="api""#]
    );
    // A bad bearer token: invalid_token.
    let (_, headers, _) =
        send_with(&router, "/x", &[("authorization", "Bearer a.b.c".into())]).await;
    assert_eq!(
        challenges(&headers)[0],
        r#"Bearer realm="api", error="invalid_token""#
    );
    // A malformed Authorization header: invalid_request.
    let (_, headers, _) = send_with(&router, "/x", &[("authorization", "Bearer".into())]).await;
    assert_eq!(
        challenges(&headers)[0],
        r#"Bearer realm="api", error="invalid_request""#
    );
    // One realm set on the layer applies to every challenge.
    let router = Router::new().route("/x", get(|| async { "x" })).layer(
        AuthLayer::new(AuthenticatorChain::new(vec![jwt(), authenticator]))
            .realm("orders")
            .unwrap(),
    );
    let (_, headers, _) = send_with(&router, "/x", &[("x-api-key", bad_key)]).await;
    assert_eq!(
        challenges(&headers),
        [r#"Bearer realm="orders""#, r#"ApiKey realm="orders""#]
    );
    assert!(
        AuthLayer::new(AuthenticatorChain::new(vec![jwt()]))
            .realm("a\"b")
            .is_err()
    );
}

/// Finding 14: a handler's 500 was audited as an authentication failure even for an
/// authenticated principal. The event type and result follow what happened.
#[tokio::test]
async fn a_handler_failure_is_not_an_authentication_failure() {
    let (authenticator, keys) = api_keys();
    let sink = Arc::new(MemorySink::new());
    let engine: Arc<dyn PolicyEngine> = engine();
    let routes = RouteTable::new()
        .route("GET /checked", "read", "checked")
        .unwrap();
    let failing = || async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") };
    let router = Router::new()
        .route("/checked", get(failing))
        .layer(AuthzLayer::new(engine, routes))
        .route("/unchecked", get(failing))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink.clone()))
                .layer(AuthLayer::new(AuthenticatorChain::new(vec![
                    authenticator,
                    jwt_with_jwks_down(),
                ]))),
        );
    let last = || sink.events().last().cloned().unwrap();

    let (status, _) = send(&router, "/unchecked", Some(&keys.reader)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let event = last();
    assert_eq!(
        (event.event_type, event.result, event.response_status),
        (
            AuditEventType::Authentication,
            AuditResult::Success,
            Some(500)
        )
    );
    assert_eq!(
        event.principal.as_ref().map(|p| p.id.as_str()),
        Some("svc-reader")
    );

    let (status, _) = send(&router, "/checked", Some(&keys.reader)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let event = last();
    assert_eq!(
        (event.event_type, event.result, event.response_status),
        (
            AuditEventType::Authorization,
            AuditResult::Allowed,
            Some(500)
        )
    );

    // A refused credential is a failure; a dependency down is an error.
    send(&router, "/unchecked", Some("pc_fc_nope")).await;
    assert_eq!(last().result, AuditResult::Failure);
    let (status, _, _) = send_with(
        &router,
        "/unchecked",
        &[("authorization", format!("Bearer {}", idp_token()))],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let event = last();
    assert_eq!(
        (event.event_type, event.result),
        (AuditEventType::Authentication, AuditResult::Error)
    );
}

/// Finding 15: the route table matched on the raw path, so `/items/hello%20world` and
/// `/items/caf%C3%A9` were refused and such ids unreachable. Captured segments are decoded;
/// one that decodes to a separator, a wildcard, a `/` or a control character (or is not
/// UTF-8, overlong forms included) is refused, also when unmapped requests pass.
#[tokio::test]
async fn captured_segments_are_decoded_and_checked() {
    let (authenticator, keys) = api_keys();
    let engine: Arc<dyn PolicyEngine> = engine();
    for unmapped in [Unmapped::Deny, Unmapped::InsecurePass] {
        let sink = Arc::new(MemorySink::new());
        let routes = RouteTable::new()
            .route("GET /items/{id}", "read", "item:{id}")
            .unwrap();
        let router = Router::new()
            .route(
                "/items/{id}",
                get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
            )
            .layer(AuthzLayer::with_unmapped(engine.clone(), routes, unmapped))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(AuditLayer::new(sink.clone()))
                    .layer(AuthLayer::new(AuthenticatorChain::new(vec![
                        authenticator.clone(),
                    ]))),
            );
        for (path, id) in [
            ("/items/hello%20world", "hello world"),
            ("/items/caf%C3%A9", "café"),
            ("/items/plain", "plain"),
        ] {
            let (status, body) = send(&router, path, Some(&keys.reader)).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, id), "{path}");
            let event = sink.events().last().cloned().unwrap();
            assert_eq!(
                event.resource_id.as_deref(),
                Some(id),
                "{path}: the decision was about the decoded name"
            );
        }
        for path in [
            "/items/a%3Ab",
            "/items/a:b",
            "/items/%2A",
            "/items/a%2Fb",
            "/items/a%00",
            "/items/%C0%AF",
            "/items/%E0%80%AF",
            "/items/%C0%BA",
            "/items/%FF",
            "/items/%zz",
            "/items/%4",
        ] {
            let (status, body) = send(&router, path, Some(&keys.reader)).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{path} ({unmapped:?}): {body}"
            );
            let event = sink.events().last().cloned().unwrap();
            assert_eq!(event.result, AuditResult::Denied, "{path}");
            assert!(
                event.reason.as_deref().unwrap().contains("path segment"),
                "{path}: {:?}",
                event.reason
            );
        }
    }
}
