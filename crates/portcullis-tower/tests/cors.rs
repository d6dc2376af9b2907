//! The CORS layer of tower-http goes outside `AuthLayer` (README, "CORS"): a browser's
//! preflight carries no credentials and must be answered before authentication; inside, it
//! gets a 401. The actual request still needs credentials either way.
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
use http::{HeaderValue, Method, Request, StatusCode, header};
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
use portcullis_audit::MemorySink;
use portcullis_core::{AuthenticatorChain, Principal};
use portcullis_tower::{AuditLayer, AuthLayer};
use tower::ServiceExt as _;
use tower_http::cors::CorsLayer;

const PEPPER: &[u8] = b"a-pepper-for-the-cors-tests-0123456789ab";
const ORIGIN: &str = "https://app.example.com";

fn chain() -> (AuthenticatorChain, String) {
    let prefix = KeyPrefix::new("pc_test_").unwrap();
    let (key, record) = issue_key(&prefix, &Pepper::new(PEPPER).unwrap(), "svc").unwrap();
    let keys = ApiKeyAuthenticator::builder(
        Arc::new(MemoryStore::new(vec![record]).unwrap()),
        Pepper::new(PEPPER).unwrap(),
    )
    .prefix(prefix)
    .build();
    (
        AuthenticatorChain::new(vec![Arc::new(keys)]),
        key.key.expose().to_owned(),
    )
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static(ORIGIN))
        .allow_methods([Method::GET, Method::PUT])
        .allow_headers([
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-api-key"),
        ])
}

fn app(cors_outside: bool) -> (Router, String) {
    let (chain, key) = chain();
    let audit = AuditLayer::new(Arc::new(MemorySink::new()));
    let auth = AuthLayer::new(chain);
    let router = Router::new().route(
        "/data",
        get(|p: Principal| async move { p.id().to_owned() }),
    );
    let router = if cors_outside {
        router.layer(
            tower::ServiceBuilder::new()
                .layer(cors())
                .layer(audit)
                .layer(auth),
        )
    } else {
        router.layer(
            tower::ServiceBuilder::new()
                .layer(audit)
                .layer(auth)
                .layer(cors()),
        )
    };
    (router, key)
}

async fn preflight(router: &Router) -> http::Response<Body> {
    router
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/data")
                .header(header::ORIGIN, ORIGIN)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "x-api-key")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn get_data(router: &Router, key: Option<&str>) -> http::Response<Body> {
    let mut request = Request::get("/data").header(header::ORIGIN, ORIGIN);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn outside_the_auth_layer_cors_answers_the_preflight() {
    let (router, key) = app(true);
    let response = preflight(&router).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ORIGIN
    );
    // The request itself still needs credentials, and its answers carry the CORS headers
    // (so the browser shows the 401 to the page instead of a CORS error).
    let refused = get_data(&router, None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ORIGIN
    );
    let allowed = get_data(&router, Some(&key)).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ORIGIN
    );
}

#[tokio::test]
async fn inside_the_auth_layer_the_preflight_is_refused() {
    let (router, _) = app(false);
    let response = preflight(&router).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}
