//! What the authentication layer leaves in a request's extensions, and (feature `axum`) the
//! `Principal` extractors built on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Extensions;

use crate::error::Challenge;
use crate::rejection::{JsonRejection, Rejection};

/// Placed in the request extensions by the authentication layer for every request it
/// handles, authenticated or not. Its presence is how extractors tell "no credentials" (401)
/// from "the layer is missing" (a programming error, 500), and it carries what every part of
/// the stack downstream needs to answer the way the authentication layer does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthContext {
    authenticator: Option<Arc<str>>,
    challenges: Arc<[Challenge]>,
    public: bool,
    rejection: Arc<dyn Rejection>,
}

impl AuthContext {
    /// The context of a request: who accepted its credentials, the challenges of a 401, whether
    /// its path is public, and how rejections look.
    #[must_use]
    pub fn new(
        authenticator: Option<Arc<str>>,
        challenges: Arc<[Challenge]>,
        public: bool,
        rejection: Arc<dyn Rejection>,
    ) -> Self {
        Self {
            authenticator,
            challenges,
            public,
            rejection,
        }
    }

    /// The authenticator that accepted the credentials (`"jwt"`, `"api_key"`, ...), if any.
    #[must_use]
    pub fn authenticator(&self) -> Option<&str> {
        self.authenticator.as_deref()
    }

    /// The challenges of the configured authenticators, for a 401 raised downstream.
    #[must_use]
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// Whether the request matched a public path.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// How rejections look (the one set on the authentication layer).
    #[must_use]
    pub fn rejection(&self) -> &dyn Rejection {
        &*self.rejection
    }
}

impl Default for AuthContext {
    /// An anonymous request on a non-public path, with no challenge and [`JsonRejection`].
    fn default() -> Self {
        Self::new(None, Arc::from([]), false, Arc::new(JsonRejection))
    }
}

/// How a layer finds the client's address in the request extensions (the audit layer, the
/// forwarded-certificate layer): [`socket_addr_peer`] for a hyper accept loop that inserts a
/// `SocketAddr`, `portcullis_axum::connect_info_peer` for axum's `ConnectInfo`.
pub type PeerAddrFn = fn(&Extensions) -> Option<IpAddr>;

/// The default [`PeerAddrFn`]: a `SocketAddr` in the request extensions.
#[must_use]
pub fn socket_addr_peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// The message of the 500 an extractor returns when no authentication layer ran.
pub const MISSING_AUTH_LAYER: &str = "portcullis: the Principal extractor ran on a request that no AuthLayer handled; wrap the router in portcullis_tower::AuthLayer";

#[cfg(feature = "axum")]
mod axum_impl {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;

    use super::AuthContext;
    use crate::error::AuthError;
    use crate::principal::Principal;

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
            // The rejection set on the authentication layer answers, as the layers do.
            let response = match self {
                Self::NotAuthenticated(context) => context
                    .rejection()
                    .unauthenticated(&AuthError::missing_credentials(), context.challenges()),
                Self::MissingAuthLayer => crate::rejection::missing_auth_layer(),
            };
            response.into_response()
        }
    }

    fn context(parts: &Parts) -> Result<&AuthContext, PrincipalRejection> {
        parts
            .extensions
            .get::<AuthContext>()
            .ok_or(PrincipalRejection::MissingAuthLayer)
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
pub use axum_impl::PrincipalRejection;
