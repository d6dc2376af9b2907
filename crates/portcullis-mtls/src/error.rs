//! Errors of this crate. None carries certificate contents beyond what is safe to log.

use portcullis_core::AuthError;

/// Why a client certificate was not accepted, or a trust store could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MtlsError {
    /// No certificate, or more certificates or bytes than the configured bounds.
    #[error("client certificate chain refused: {0}")]
    ChainBounds(&'static str),
    /// The certificate (or a CRL, or an anchor) is not valid DER/PEM.
    #[error("malformed certificate material: {0}")]
    Malformed(String),
    /// The chain does not verify: untrusted issuer, bad signature, wrong EKU, constraints.
    #[error("certificate chain not trusted: {0}")]
    Untrusted(String),
    /// The certificate (or one in its chain) has expired.
    #[error("certificate expired")]
    Expired,
    /// The certificate is not valid yet.
    #[error("certificate not valid yet")]
    NotYetValid,
    /// A CRL lists the certificate (or, with whole-chain checking, an intermediate).
    #[error("certificate revoked")]
    Revoked,
    /// The revocation status cannot be determined (no CRL for the issuer) and the policy
    /// denies unknown status.
    #[error("revocation status unknown: {0}")]
    UnknownRevocationStatus(String),
    /// The CRL that covers the certificate has expired (its `nextUpdate` has passed).
    #[error("the CRL covering the certificate has expired")]
    CrlExpired,
    /// The certificate is not for client authentication: no `clientAuth` extended key usage,
    /// or a CA certificate presented as the client's own.
    #[error("certificate not valid for client authentication: {0}")]
    WrongKeyUsage(&'static str),
    /// The configured identity is absent, ambiguous or malformed.
    #[error("no usable identity in the certificate: {0}")]
    Identity(String),
    /// The subject's organization is not allowed.
    #[error("organization not allowed")]
    OrganizationNotAllowed,
    /// The trust store could not be loaded.
    #[error("trust store: {0}")]
    Store(String),
    /// A forwarded certificate header came from an address that is not a trusted proxy.
    #[error("forwarded client certificate from an untrusted address")]
    UntrustedForwarder,
}

impl MtlsError {
    /// The client-facing error (401; the precise reason stays in the audit event).
    #[must_use]
    pub fn into_auth_error(self) -> AuthError {
        let error = match self {
            Self::Expired => AuthError::expired(),
            Self::NotYetValid => AuthError::not_yet_valid(),
            Self::Revoked => AuthError::revoked(),
            other => AuthError::invalid_credentials(other.to_string()),
        };
        error.with_authenticator("mtls")
    }
}
