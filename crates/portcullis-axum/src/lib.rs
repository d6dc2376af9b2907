#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::{AuditFilter, AuditQuery, PERMISSION_REQUIRED, PolicyEngine};
pub use portcullis_core::{Principal, PrincipalRejection};
use portcullis_tower::GuardLayer;
use serde::Deserialize;

/// A route layer that requires an Aethera-style permission (`projects:create`). It decides on
/// public paths too: 401 without a principal.
pub fn require_permission(
    engine: Arc<dyn PolicyEngine>,
    permission: impl Into<String>,
) -> GuardLayer {
    GuardLayer::require_permission(engine, permission)
}

/// A route layer that requires a role, as `engine` assigns roles (the RBAC default role
/// counts for a principal that holds none; inheritance does not). It decides on public paths
/// too: 401 without a principal.
pub fn require_role(engine: Arc<dyn PolicyEngine>, role: impl Into<String>) -> GuardLayer {
    GuardLayer::require_role(engine, role)
}

/// The client address from axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`); pass to
/// `AuditLayer::peer_addr`.
#[must_use]
pub fn connect_info_peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| extensions.get::<SocketAddr>().map(SocketAddr::ip))
}

/// Query parameters of `GET /audit/logs` (the Aethera names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditLogParams {
    /// The principal id.
    pub user_id: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// The resource type.
    pub resource_type: Option<String>,
    /// The resource id.
    pub resource_id: Option<String>,
    /// At most this many events (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Skip this many (default 0).
    pub offset: Option<usize>,
}

/// The (action, resource) `GET /audit/logs` requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditLogAccess {
    /// The action asked of the policy.
    pub action: String,
    /// The resource.
    pub resource: String,
}

impl AuditLogAccess {
    /// Aethera: the `audit:read` permission.
    #[must_use]
    pub fn aethera() -> Self {
        Self {
            action: "audit:read".into(),
            resource: "audit".into(),
        }
    }

    /// AmateRS-style action levels: `admin` on `audit`.
    #[must_use]
    pub fn amaters() -> Self {
        Self {
            action: "admin".into(),
            resource: "audit".into(),
        }
    }
}

#[derive(Clone)]
struct AuditState {
    query: Arc<dyn AuditQuery>,
    engine: Arc<dyn PolicyEngine>,
    access: Arc<AuditLogAccess>,
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(serde_json::json!({ "detail": text }))).into_response()
}

async fn audit_logs(
    State(state): State<AuditState>,
    principal: Principal,
    params: Result<Query<AuditLogParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let decision = state.engine.evaluate(&portcullis_core::AccessRequest::new(
        &principal,
        &state.access.action,
        &state.access.resource,
    ));
    if !decision.is_allowed() {
        return detail(StatusCode::FORBIDDEN, PERMISSION_REQUIRED);
    }
    let Ok(Query(params)) = params else {
        return detail(StatusCode::BAD_REQUEST, "Invalid query parameters");
    };
    let mut filter = AuditFilter::new();
    if let Some(user_id) = params.user_id {
        filter = filter.principal_id(user_id);
    }
    if let Some(action) = params.action {
        filter = filter.action(action);
    }
    if let Some(resource_type) = params.resource_type {
        filter = filter.resource_type(resource_type);
    }
    if let Some(resource_id) = params.resource_id {
        filter = filter.resource_id(resource_id);
    }
    let limit = params.limit.unwrap_or(100).min(1000);
    match state
        .query
        .query(&filter, params.offset.unwrap_or(0), limit)
        .await
    {
        Ok(events) => Json(events).into_response(),
        Err(_) => {
            let mut response = detail(
                StatusCode::SERVICE_UNAVAILABLE,
                portcullis_core::SERVICE_UNAVAILABLE,
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(portcullis_core::DEFAULT_RETRY_AFTER.as_secs()),
            );
            response
        }
    }
}

/// `GET /audit/logs` with the Aethera filters (`user_id`, `action`, `resource_type`,
/// `resource_id`, `limit` default 100, `offset`), requiring `access` (for Aethera,
/// [`AuditLogAccess::aethera`]: `audit:read`). Merge it into a router behind the
/// `AuthLayer`.
pub fn audit_logs_router<S: Clone + Send + Sync + 'static>(
    query: Arc<dyn AuditQuery>,
    engine: Arc<dyn PolicyEngine>,
    access: AuditLogAccess,
) -> Router<S> {
    Router::new()
        .route("/audit/logs", get(audit_logs))
        .with_state(AuditState {
            query,
            engine,
            access: Arc::new(access),
        })
}

/// Helpers for tests.
pub mod testing {
    use axum::http::Response;

    /// Panics if `response` is the 500 a layer or extractor answers when no `AuthLayer` ran
    /// (it carries [`portcullis_core::MissingAuthLayer`]).
    pub fn assert_auth_layer_ran<B>(response: &Response<B>) {
        assert!(
            response
                .extensions()
                .get::<portcullis_core::MissingAuthLayer>()
                .is_none(),
            "{}",
            portcullis_core::MISSING_AUTH_LAYER
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn me_without_the_auth_layer() -> Response {
        Router::new()
            .route("/me", get(|p: Principal| async move { p.id().to_owned() }))
            .oneshot(Request::get("/me").body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    #[should_panic(expected = "wrap the router in portcullis_tower::AuthLayer")]
    async fn a_forgotten_auth_layer_is_caught() {
        let response = me_without_the_auth_layer().await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        testing::assert_auth_layer_ran(&response);
    }

    #[tokio::test]
    async fn other_errors_are_not_mistaken_for_it() {
        let response = detail(StatusCode::INTERNAL_SERVER_ERROR, "boom");
        testing::assert_auth_layer_ran(&response);
    }
}
