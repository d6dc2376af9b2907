//! [`Rejection`]: the responses every layer and extractor sends instead of calling the
//! service, set once on the authentication layer and carried to the others in the
//! [`AuthContext`](crate::AuthContext).

use std::fmt;

use std::time::Duration;

use crate::context::MISSING_AUTH_LAYER;
use crate::error::{
    AuthError, Challenge, DEFAULT_RETRY_AFTER, NOT_AUTHENTICATED, PERMISSION_REQUIRED,
    SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS,
};
use http::{HeaderValue, Response, StatusCode, header};

/// Builds rejection responses. The default, [`JsonRejection`], answers like the Aethera API:
/// `{"detail": "Not authenticated"}` and `{"detail": "Permission required"}`.
///
/// Set it once, on the authentication layer: the authorization layer, the guards and the
/// `Principal` extractors read it from the request's [`AuthContext`](crate::AuthContext), so
/// every part of the stack answers alike.
pub trait Rejection: fmt::Debug + Send + Sync + 'static {
    /// A failed or missing authentication: 401 (or 429/503 per [`AuthError::status`]), with
    /// the `WWW-Authenticate` challenges on a 401 and `Retry-After` on a 503.
    fn unauthenticated(&self, error: &AuthError, challenges: &[Challenge]) -> Response<String>;

    /// A denied authorization: 403.
    fn forbidden(&self) -> Response<String>;

    /// The audit trail refused the event (fail-closed) or another dependency is down: 503,
    /// with `Retry-After`.
    fn unavailable(&self) -> Response<String>;

    /// A layer or extractor that needs the authentication layer found none (a programming
    /// error): 500, naming the missing layer in debug builds. Answered alike by every part
    /// of the stack; it cannot use a custom rejection (none was set where none ran).
    fn missing_auth_layer(&self) -> Response<String> {
        missing_auth_layer()
    }
}

/// Marks the response of [`missing_auth_layer`] (a response extension), so that a test can
/// tell the programming error from any other 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingAuthLayer;

/// The answer to a request that no authentication layer handled (see
/// [`Rejection::missing_auth_layer`]): 500, with the name of the missing layer in debug builds
/// and a generic message in release builds, marked with [`MissingAuthLayer`] and logged as an
/// error.
#[must_use]
pub fn missing_auth_layer() -> Response<String> {
    tracing::error!(target: "portcullis", "{MISSING_AUTH_LAYER}");
    let detail = if cfg!(debug_assertions) {
        MISSING_AUTH_LAYER
    } else {
        "Internal server error"
    };
    let mut response = json(StatusCode::INTERNAL_SERVER_ERROR, detail);
    response.extensions_mut().insert(MissingAuthLayer);
    response
}

/// Sets `Retry-After` to whole seconds (at least 1).
fn retry_after(response: &mut Response<String>, after: Duration) {
    let seconds = after.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// JSON bodies with a `detail` member (the Aethera error texts).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

fn json(status: StatusCode, detail: &str) -> Response<String> {
    let mut response = Response::new(serde_json::json!({ "detail": detail }).to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Rejection for JsonRejection {
    fn unauthenticated(&self, error: &AuthError, challenges: &[Challenge]) -> Response<String> {
        let status = error.status();
        let detail = match status {
            StatusCode::TOO_MANY_REQUESTS => TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE => SERVICE_UNAVAILABLE,
            _ => NOT_AUTHENTICATED,
        };
        let mut response = json(status, detail);
        match status {
            StatusCode::UNAUTHORIZED => {
                for challenge in challenges {
                    response.headers_mut().append(
                        header::WWW_AUTHENTICATE,
                        challenge.header_value(Some(error)),
                    );
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => retry_after(&mut response, DEFAULT_RETRY_AFTER),
            _ => {}
        }
        response
    }

    fn forbidden(&self) -> Response<String> {
        json(StatusCode::FORBIDDEN, PERMISSION_REQUIRED)
    }

    fn unavailable(&self) -> Response<String> {
        let mut response = json(StatusCode::SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE);
        retry_after(&mut response, DEFAULT_RETRY_AFTER);
        response
    }
}
