//! A service as a user assembles it on the database: API keys from `api_keys`, decisions from
//! roles in the tables, one audit event per request in `audit_logs`, and `GET /audit/logs`
//! reading them back; a role granted through the store changes what the running service
//! allows, without a restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, Pepper, issue_key};
use portcullis_audit::{BufferConfig, BufferedSink};
use portcullis_axum::{AuditLogAccess, audit_logs_router};
use portcullis_core::{
    AuditEventType, AuditFilter, AuditQuery, AuditSink, AuthenticatorChain, PolicyEngine, Principal,
};
use portcullis_rbac::{Builtins, PolicyDocument};
use portcullis_sqlx::{RbacStore, SqlAuditWriter, WatchOptions};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, RouteTable};
use tower::ServiceExt as _;

const PEPPER: &[u8] = b"a-pepper-for-the-sqlx-service-test-0123";

async fn get_as(router: &Router, path: &str, key: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(path)
        .header("X-API-Key", key)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_service_on_the_database_authenticates_authorizes_audits_and_follows_grants() {
    for db in common::all("service").await {
        let store = &db.store;
        let template = PolicyDocument {
            builtins: Builtins::Aethera,
            ..PolicyDocument::default()
        };
        let rbac = RbacStore::open(store, template).await.unwrap();
        let _watch = rbac.watch(WatchOptions::default());
        let prefix = KeyPrefix::new("pc_live_").unwrap();
        let pepper = Pepper::new(PEPPER).unwrap();
        let (viewer_key, mut viewer) = issue_key(&prefix, &pepper, "svc-viewer").unwrap();
        viewer.roles = vec!["viewer".into()];
        store.api_keys().insert(&viewer).await.unwrap();
        let (admin_key, mut admin) = issue_key(&prefix, &pepper, "svc-admin").unwrap();
        admin.roles = vec!["admin".into()];
        store.api_keys().insert(&admin).await.unwrap();

        let keys = ApiKeyAuthenticator::builder(Arc::new(store.api_keys()), pepper)
            .prefix(prefix)
            .build();
        let engine: Arc<dyn PolicyEngine> = rbac.engine();
        let sink: Arc<dyn AuditSink> = Arc::new(
            BufferedSink::new(SqlAuditWriter::new(store), BufferConfig::default()).unwrap(),
        );
        let routes = RouteTable::new()
            .route("GET /projects/{id}", "projects:read", "projects")
            .unwrap()
            .route("GET /runs/{id}", "runs:read", "runs")
            .unwrap();
        let query: Arc<dyn AuditQuery> = Arc::new(store.audit());
        let router = Router::new()
            .route(
                "/projects/{id}",
                get(|p: Principal| async move { p.id().to_owned() }),
            )
            .route(
                "/runs/{id}",
                get(|p: Principal| async move { p.id().to_owned() }),
            )
            .layer(AuthzLayer::new(engine.clone(), routes))
            .merge(audit_logs_router(query, engine, AuditLogAccess::aethera()))
            .layer(
                tower::ServiceBuilder::new()
                    .layer(AuditLayer::new(sink.clone()))
                    .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(
                        keys,
                    )]))),
            );

        let viewer_key = viewer_key.key.expose().to_owned();
        assert_eq!(
            get_as(&router, "/projects/7", &viewer_key).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&router, "/runs/7", &viewer_key).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            get_as(&router, "/projects/7", "pc_live_forged").await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get_as(&router, "/audit/logs", &viewer_key).await.0,
            StatusCode::FORBIDDEN
        );

        // An administrator grants viewers `runs:read` through the store: the running service
        // follows without a restart.
        rbac.grant_permission("viewer", "runs:read", "admin-1")
            .await
            .unwrap();
        assert_eq!(
            get_as(&router, "/runs/7", &viewer_key).await.0,
            StatusCode::OK,
            "{}",
            db.name
        );

        // Revoking the key in the table shuts it out at once.
        store
            .api_keys()
            .revoke(&viewer.id, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert_eq!(
            get_as(&router, "/projects/7", &viewer_key).await.0,
            StatusCode::UNAUTHORIZED
        );

        sink.flush().await.unwrap();
        let (status, body) = get_as(
            &router,
            "/audit/logs?user_id=svc-viewer&limit=100",
            admin_key.key.expose(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let paths: Vec<_> = events
            .iter()
            .map(|e| e["request_path"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            paths,
            ["/projects/7", "/runs/7", "/audit/logs", "/runs/7"],
            "{}: one event per request of the viewer, in order",
            db.name
        );
        let grant = store
            .audit()
            .query(&AuditFilter::new().event_type(AuditEventType::Admin), 0, 10)
            .await
            .unwrap();
        assert_eq!(grant.len(), 1, "the grant is audited too");
        db.finish().await;
    }
}
