//! The responses the layers send instead of calling the service.

use std::fmt;

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use portcullis_core::{
    AuthError, Challenge, DEFAULT_RETRY_AFTER, NOT_AUTHENTICATED, PERMISSION_REQUIRED,
    SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS,
};

/// Builds rejection responses. The default, [`JsonRejection`], answers like the Aethera API:
/// `{"detail": "Not authenticated"}` and `{"detail": "Permission required"}`.
pub trait Rejection: fmt::Debug + Send + Sync + 'static {
    /// A failed or missing authentication: 401 (or 429/503 per [`AuthError::status`]), with
    /// the `WWW-Authenticate` challenges on a 401 and `Retry-After` on a 503.
    fn unauthenticated(&self, error: &AuthError, challenges: &[Challenge]) -> Response<String>;

    /// A denied authorization: 403.
    fn forbidden(&self) -> Response<String>;

    /// The audit trail refused the event (fail-closed) or another dependency is down: 503,
    /// with `Retry-After`.
    fn unavailable(&self) -> Response<String>;
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

/// Converts a rejection into the service's response body type.
pub(crate) fn convert<B: From<String>>(response: Response<String>) -> Response<B> {
    response.map(B::from)
}
