#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod audit;
mod authn;
mod clock;
mod context;
mod credentials;
mod error;
mod ip;
mod location;
mod metrics;
#[cfg(feature = "os")]
mod os;
mod policy;
mod principal;
mod query;
mod rejection;
mod secret;

pub use audit::{
    AuditError, AuditEvent, AuditEventType, AuditPrincipal, AuditResult, AuditSink, EventId,
    InvalidEventId,
};
pub use authn::{AuthOutcome, Authenticator, AuthenticatorChain, ChainOutcome};
pub use clock::{Clock, IdSource, ManualClock, SequentialIds};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use context::PrincipalRejection;
pub use context::{AuthContext, MISSING_AUTH_LAYER, PeerAddrFn, socket_addr_peer};
pub use credentials::{
    ApiKeySource, Credential, CredentialError, CredentialExtractor, Credentials,
    DEFAULT_MAX_COOKIE_HEADER_LEN, DEFAULT_MAX_COOKIE_HEADERS, DEFAULT_MAX_CREDENTIAL_LEN,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELDS, ExtractorConfigError, PeerCertificates,
};
pub use error::{
    AuthError, AuthErrorKind, BearerErrorCode, Challenge, ChallengeError, DEFAULT_RETRY_AFTER,
    NOT_AUTHENTICATED, PERMISSION_REQUIRED, SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS,
};
pub use ip::{InvalidIpNet, IpNet};
pub use location::Location;
pub use metrics::{AuthenticationOutcome, CounterSnapshot, Counters, Measurement, Metrics};
#[cfg(feature = "os")]
#[cfg_attr(docsrs, doc(cfg(feature = "os")))]
pub use os::{RandomIds, SystemClock, read_bounded, read_bounded_text};
pub use policy::{
    AccessRequest, Decision, DecisionReason, Effect, Grant, GrantSource, PolicyEngine,
    RequestContext,
};
pub use principal::{
    AuthMethod, MAX_IDENTIFIER_LEN, Principal, PrincipalBuilder, PrincipalError, PrincipalKind,
    UnknownAuthMethod,
};
pub use query::{AuditFilter, AuditQuery, FlushingQuery};
pub use rejection::{JsonRejection, MissingAuthLayer, Rejection, missing_auth_layer};
pub use secret::{SecretString, constant_time_eq};

/// Re-exported so implementors of the async traits use the same macro version.
pub use async_trait::async_trait;
/// Re-exported: the certificate type inside [`PeerCertificates`].
pub use rustls_pki_types::CertificateDer;
/// Re-exported: the time type used throughout the public API.
pub use time::OffsetDateTime;
