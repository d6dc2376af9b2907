//! What the authentication layer leaves in a request's extensions, and (feature `axum`) the
//! `Principal` extractors built on it.

use std::sync::Arc;

use crate::error::Challenge;

/// Placed in the request extensions by the authentication layer for every request it
/// handles, authenticated or not. Its presence is how extractors tell "no credentials" (401)
/// from "the layer is missing" (a programming error, 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// The authenticator that accepted the credentials (`"jwt"`, `"api_key"`, ...), if any.
    pub authenticator: Option<Arc<str>>,
    /// The challenges of the configured authenticators, for a 401 raised downstream.
    pub challenges: Arc<[Challenge]>,
    /// Whether the request matched a public path.
    pub public: bool,
}

/// The message of the 500 an extractor returns when no authentication layer ran.
pub const MISSING_AUTH_LAYER: &str = "portcullis: the Principal extractor ran on a request that no AuthLayer handled; wrap the router in portcullis_tower::AuthLayer";

#[cfg(feature = "axum")]
mod axum_impl {
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use http::{HeaderValue, StatusCode, header};

    use super::{AuthContext, MISSING_AUTH_LAYER};
    use crate::error::NOT_AUTHENTICATED;
    use crate::principal::Principal;

    static MISSING_LAYER: AtomicU64 = AtomicU64::new(0);

    /// How many times an extractor found no authentication layer (for tests: it should stay
    /// zero).
    #[must_use]
    pub fn missing_auth_layer_count() -> u64 {
        MISSING_LAYER.load(Ordering::Relaxed)
    }

    /// Why a [`Principal`] could not be extracted.
    #[derive(Debug, Clone)]
    #[non_exhaustive]
    pub enum PrincipalRejection {
        /// The request is not authenticated: 401 with the configured challenges.
        NotAuthenticated(AuthContext),
        /// No authentication layer handled the request: 500 naming the layer.
        MissingAuthLayer,
    }

    impl IntoResponse for PrincipalRejection {
        fn into_response(self) -> Response {
            let json = |detail: &str| serde_json::json!({ "detail": detail }).to_string();
            match self {
                Self::NotAuthenticated(context) => {
                    let mut response =
                        (StatusCode::UNAUTHORIZED, json(NOT_AUTHENTICATED)).into_response();
                    for challenge in context.challenges.iter() {
                        response
                            .headers_mut()
                            .append(header::WWW_AUTHENTICATE, challenge.header_value(None));
                    }
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
                Self::MissingAuthLayer => {
                    let detail = if cfg!(debug_assertions) {
                        MISSING_AUTH_LAYER
                    } else {
                        "Internal server error"
                    };
                    let mut response =
                        (StatusCode::INTERNAL_SERVER_ERROR, json(detail)).into_response();
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    response
                }
            }
        }
    }

    fn context(parts: &Parts) -> Result<&AuthContext, PrincipalRejection> {
        parts.extensions.get::<AuthContext>().ok_or_else(|| {
            MISSING_LAYER.fetch_add(1, Ordering::Relaxed);
            PrincipalRejection::MissingAuthLayer
        })
    }

    impl<S: Send + Sync> FromRequestParts<S> for Principal {
        type Rejection = PrincipalRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            let context = context(parts)?;
            match parts.extensions.get::<Principal>() {
                Some(principal) => Ok(principal.clone()),
                None => Err(PrincipalRejection::NotAuthenticated(context.clone())),
            }
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
        type Rejection = PrincipalRejection;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            context(parts)?;
            Ok(parts.extensions.get::<Principal>().cloned())
        }
    }
}

#[cfg(feature = "axum")]
pub use axum_impl::{PrincipalRejection, missing_auth_layer_count};
