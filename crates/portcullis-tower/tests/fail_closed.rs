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

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
use portcullis_audit::MemorySink;
use portcullis_core::{Authenticator, AuthenticatorChain, PolicyEngine, Principal};
use portcullis_rbac::RbacEngine;
use portcullis_tower::{AuditLayer, AuthLayer, GuardLayer, PublicPaths};
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
    let mut request = Request::builder().uri(path);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
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
