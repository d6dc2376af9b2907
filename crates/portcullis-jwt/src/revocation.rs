//! Revoked tokens: a [`RevocationList`] the authenticator asks about each token's `jti`
//! (`portcullis-sqlx` keeps one in step with a database shared by every instance).

use std::fmt;

/// Which token ids are revoked. Asked on the request path, so an implementation answers from
/// memory (a cache kept current in the background), never with a query per request.
pub trait RevocationList: fmt::Debug + Send + Sync {
    /// Whether the token with this `jti` is revoked.
    ///
    /// # Errors
    /// When the list cannot be trusted (its source has been unreachable for too long): the
    /// token is then refused with 503, never accepted.
    fn is_revoked(&self, jti: &str) -> Result<bool, RevocationsUnavailable>;
}

/// A revocation list that cannot be trusted now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revocation list unavailable: {0}")]
pub struct RevocationsUnavailable(pub String);
