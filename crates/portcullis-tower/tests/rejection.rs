//! One rejection for the whole stack: the one set on the `AuthLayer` answers for the
//! authorization layer, the guards and the `Principal` extractors, and a missing `AuthLayer`
//! gets the same 500 everywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation should stop the test"
)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_apikey::{ApiKeyAuthenticator, MemoryStore};
use portcullis_core::{
    AuthError, AuthenticatorChain, Challenge, PolicyEngine, Principal, Rejection,
};
use portcullis_rbac::RbacEngine;
use portcullis_tower::{AuthLayer, AuthzLayer, GuardLayer, RouteTable};
use tower::ServiceExt as _;

/// Plain-text rejections, to tell them from the default JSON ones.
#[derive(Debug)]
struct Text;

fn text(status: StatusCode, body: &str) -> Response<String> {
    let mut response = Response::new(body.to_owned());
    *response.status_mut() = status;
    response
}

impl Rejection for Text {
    fn unauthenticated(&self, _: &AuthError, _: &[Challenge]) -> Response<String> {
        text(StatusCode::UNAUTHORIZED, "who are you?")
    }

    fn forbidden(&self) -> Response<String> {
        text(StatusCode::FORBIDDEN, "not for you")
    }

    fn unavailable(&self) -> Response<String> {
        text(StatusCode::SERVICE_UNAVAILABLE, "later")
    }
}

async fn get_body(router: &Router, path: &str) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn routes(engine: &Arc<dyn PolicyEngine>) -> Router {
    let table = RouteTable::new()
        .route("GET /mapped", "read", "thing")
        .unwrap();
    Router::new()
        .route("/mapped", get(|| async { "mapped" }))
        .route("/unmapped", get(|| async { "unmapped" }))
        .layer(AuthzLayer::new(engine.clone(), table))
        .merge(
            Router::new()
                .route("/guarded", get(|| async { "guarded" }))
                .route_layer(GuardLayer::require_role(engine.clone(), "admin")),
        )
        .merge(Router::new().route(
            "/extracted",
            get(|p: Principal| async move { p.id().to_owned() }),
        ))
}

#[tokio::test]
async fn the_auth_layers_rejection_answers_everywhere() {
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(RbacEngine::new(portcullis_rbac::Policy::amaters()).unwrap());
    let keys =
        ApiKeyAuthenticator::amaters(Arc::new(MemoryStore::new(Vec::new()).unwrap())).build();
    let router = routes(&engine).layer(
        AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(keys)]))
            .mode(portcullis_tower::AuthMode::Optional)
            .rejection(Text),
    );
    // Without credentials (optional mode lets the request in), each part refuses in the
    // AuthLayer's words.
    for path in ["/mapped", "/unmapped", "/guarded", "/extracted"] {
        let (status, body) = get_body(&router, path).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::UNAUTHORIZED, "who are you?"),
            "{path}"
        );
    }
    // With a principal that may not: the same rejection's 403, from the layer and the guard.
    let record = portcullis_apikey::KeyRecord::new(
        "key-1",
        "reader-bot",
        portcullis_apikey::Verifier::Sha256(portcullis_apikey::KeyHash::sha256("reader-key")),
    );
    let mut record = record;
    record.roles = vec!["reader".into()];
    let keys =
        ApiKeyAuthenticator::amaters(Arc::new(MemoryStore::new(vec![record]).unwrap())).build();
    let router = routes(&engine)
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(keys)])).rejection(Text));
    for path in ["/mapped", "/unmapped", "/guarded"] {
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .uri(path)
                    .header("x-api-key", "reader-key")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "not for you", "{path}");
    }
}

#[tokio::test]
async fn a_missing_auth_layer_is_the_same_500_everywhere() {
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(RbacEngine::new(portcullis_rbac::Policy::amaters()).unwrap());
    let router = routes(&engine);
    let mut bodies = Vec::new();
    for path in ["/mapped", "/unmapped", "/guarded", "/extracted"] {
        let (status, body) = get_body(&router, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        assert!(body.contains("AuthLayer"), "{path}: {body}");
        bodies.push(body);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
}
