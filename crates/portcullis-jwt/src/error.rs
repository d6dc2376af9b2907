//! Errors of this crate. None of them carries token or key material.

use portcullis_core::AuthError;

/// Why a token was not accepted. The message is precise and safe for the audit log; clients
/// only ever see the generic 401/503 built by [`JwtError::into_auth_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is longer than the configured maximum (checked before decoding).
    #[error("token exceeds the maximum size")]
    TooLarge,
    /// The token is not a well-formed compact JWS with a JSON claims set.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none` (in any case).
    #[error("unsecured tokens (alg none) are refused")]
    AlgorithmNone,
    /// An algorithm name Portcullis does not support (or not spelled as JWA spells it).
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The token's `alg` is not the algorithm bound to the key.
    #[error("token algorithm does not match the key's algorithm")]
    AlgorithmMismatch,
    /// The token's `alg` is not one the issuer uses (its configured algorithms, or those its
    /// discovery document lists). Refused before any key lookup or fetch.
    #[error("the issuer does not sign with this algorithm")]
    AlgorithmNotAllowed,
    /// The header has `crit`: Portcullis implements no critical extension.
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    /// A header parameter that has no place in a JWS JWT (`b64`, `enc`, `zip`).
    #[error("header parameter {0} is not accepted")]
    ForbiddenHeader(&'static str),
    /// A header carrying `jku`, `x5u`, `jwk` or `x5c` while the policy refuses them.
    #[error("header key references (jku, x5u, jwk, x5c) are refused by policy")]
    KeyReferenceInHeader,
    /// A nested JWT (`cty: JWT`, or a payload that is itself a token).
    #[error("nested tokens are not accepted")]
    Nested,
    /// The token's `typ` is not one the validator accepts for this kind of token.
    #[error("token type not accepted here")]
    WrongType,
    /// No configured issuer matches the token's `iss`.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// No key has the token's `kid` (or the token has no `kid` and no key is unnamed).
    #[error("no key for this token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
    /// `exp` is at or before now (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// The token is older than the maximum age, or lives longer than the maximum lifetime.
    #[error("token too old or too long-lived")]
    TooOld,
    /// `aud` does not name a configured audience.
    #[error("audience not accepted")]
    AudienceMismatch,
    /// The keys for the issuer cannot be obtained (JWKS endpoint down past the stale bound).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// The token's `jti` is on the revocation list.
    #[error("token revoked")]
    Revoked,
    /// The revocation list cannot be trusted now (its database is away).
    #[error("revocation list unavailable: {0}")]
    RevocationsUnavailable(String),
    /// The claims could not be turned into a principal.
    #[error("claims do not make a valid principal: {0}")]
    Principal(String),
}

impl JwtError {
    /// The error a client-facing layer turns into 401 (or 503 for unavailable keys).
    #[must_use]
    pub fn into_auth_error(self) -> AuthError {
        let error = match self {
            Self::Expired => AuthError::expired(),
            Self::NotYetValid => AuthError::not_yet_valid(),
            Self::KeysUnavailable(what) | Self::RevocationsUnavailable(what) => {
                AuthError::dependency_unavailable(what)
            }
            other => AuthError::invalid_credentials(other.to_string()),
        };
        // A JWT error is always about a bearer token that was sent.
        error.with_authenticator("jwt").with_bearer_token_sent(true)
    }
}

/// A key or key set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key material is not what it claims to be.
    #[error("malformed key: {0}")]
    Malformed(String),
    /// The key is too weak for use (short HMAC secret, small or bad RSA modulus/exponent).
    #[error("weak key: {0}")]
    Weak(&'static str),
    /// The key's `alg`, `crv`, `kty`, `use` or `key_ops` disagree, or name an algorithm this key
    /// cannot do.
    #[error("inconsistent key: {0}")]
    Inconsistent(&'static str),
    /// The algorithm is not supported.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Symmetric and asymmetric keys in one set.
    #[error("a key set mixes symmetric and asymmetric keys")]
    MixedKeySet,
    /// Two keys with the same `kid`.
    #[error("duplicate key id in key set")]
    DuplicateKid,
    /// Two keys without a `kid` for the same algorithm: a token without `kid` would be ambiguous.
    #[error("more than one unnamed key for one algorithm")]
    AmbiguousUnnamedKeys,
    /// A key file could not be read.
    #[error("cannot read key file {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A value out of its allowed range or a missing value.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The HMAC secret is a well-known placeholder ("your-secret-key", "change-me", ...).
    #[error("the JWT secret is a placeholder; set a real secret (at least 32 random bytes)")]
    PlaceholderSecret,
}

/// Fetching a JWKS or discovery document failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not acceptable (not https and not loopback, no host, ...).
    #[error("refused URL: {0}")]
    RefusedUrl(String),
    /// Connection, TLS or protocol failure.
    #[error("transport: {0}")]
    Transport(String),
    /// No complete answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body exceeded the size limit.
    #[error("response too large")]
    TooLarge,
    /// The document is not what it should be.
    #[error("invalid document: {0}")]
    InvalidDocument(String),
}
