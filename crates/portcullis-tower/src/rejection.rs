//! The responses the layers send instead of calling the service.

use std::fmt;

use http::{HeaderValue, Response, StatusCode, header};
use portcullis_core::{
    AuthError, Challenge, NOT_AUTHENTICATED, PERMISSION_REQUIRED, SERVICE_UNAVAILABLE,
    TOO_MANY_REQUESTS,
};

/// Builds rejection responses. The default, [`JsonRejection`], answers like the Aethera API:
/// `{"detail": "Not authenticated"}` and `{"detail": "Permission required"}`.
pub trait Rejection: fmt::Debug + Send + Sync + 'static {
    /// A failed or missing authentication: 401 (or 429/503 per [`AuthError::status`]), with
    /// the `WWW-Authenticate` challenges on a 401.
    fn unauthenticated(&self, error: &AuthError, challenges: &[Challenge]) -> Response<String>;

    /// A denied authorization: 403.
    fn forbidden(&self) -> Response<String>;

    /// The audit trail refused the event (fail-closed) or another dependency is down: 503.
    fn unavailable(&self) -> Response<String>;
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
        if status == StatusCode::UNAUTHORIZED {
            for challenge in challenges {
                response.headers_mut().append(
                    header::WWW_AUTHENTICATE,
                    challenge.header_value(Some(error)),
                );
            }
        }
        response
    }

    fn forbidden(&self) -> Response<String> {
        json(StatusCode::FORBIDDEN, PERMISSION_REQUIRED)
    }

    fn unavailable(&self) -> Response<String> {
        json(StatusCode::SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE)
    }
}

/// Converts a rejection into the service's response body type.
pub(crate) fn convert<B: From<String>>(response: Response<String>) -> Response<B> {
    response.map(B::from)
}
