//! [`AuthError`]: why authentication failed, precisely for operators and generically for
//! clients, and the RFC 6750 [`Challenge`] that goes with it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::{HeaderValue, StatusCode};

use crate::credentials::CredentialError;

/// The message every client sees when authentication fails.
pub const NOT_AUTHENTICATED: &str = "Not authenticated";
/// The message every client sees when authorization denies a request.
pub const PERMISSION_REQUIRED: &str = "Permission required";
/// The message every client sees when a dependency of authentication is down.
pub const SERVICE_UNAVAILABLE: &str = "Service unavailable";
/// The message every client sees when it has failed too often.
pub const TOO_MANY_REQUESTS: &str = "Too many requests";
/// The `Retry-After` of a 503 when the error does not say when to retry.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, precisely. This is for the audit log and operators; clients only see
/// [`AuthError::client_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carried no credentials.
    MissingCredentials,
    /// The credentials could not be read (duplicated, oversized, not ASCII, bad syntax).
    MalformedCredentials(CredentialError),
    /// Credentials were present but no configured authenticator handles their kind.
    UnsupportedCredentials,
    /// The credential is not valid: bad signature, unknown key, wrong secret, failed claim
    /// check. The reason names which, never the credential itself.
    InvalidCredentials(Cow<'static, str>),
    /// The credential has expired.
    Expired,
    /// The credential is not valid yet.
    NotYetValid,
    /// The credential was revoked.
    Revoked,
    /// Something authentication depends on (a JWKS endpoint, a database) is unreachable; the
    /// request is refused with 503, never allowed and never reported as a bad credential.
    DependencyUnavailable(Cow<'static, str>),
    /// Too many failed attempts for this credential or client: 429 until the window ends.
    TooManyAttempts,
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCredentials => f.write_str("no credentials"),
            Self::MalformedCredentials(e) => write!(f, "malformed credentials: {e}"),
            Self::UnsupportedCredentials => {
                f.write_str("no configured authenticator accepts these credentials")
            }
            Self::InvalidCredentials(reason) => write!(f, "invalid credentials: {reason}"),
            Self::Expired => f.write_str("credential expired"),
            Self::NotYetValid => f.write_str("credential not yet valid"),
            Self::Revoked => f.write_str("credential revoked"),
            Self::DependencyUnavailable(what) => write!(f, "dependency unavailable: {what}"),
            Self::TooManyAttempts => f.write_str("too many failed attempts"),
        }
    }
}

/// The `error` code of an RFC 6750 §3.1 challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerErrorCode {
    /// `invalid_request`: the request is malformed.
    InvalidRequest,
    /// `invalid_token`: the token is expired, revoked, malformed or otherwise invalid.
    InvalidToken,
    /// `insufficient_scope`: the token lacks a required scope.
    InsufficientScope,
}

impl BearerErrorCode {
    /// The code as written in the challenge.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// Why authentication failed.
///
/// `Display` gives the precise reason for operators and audit events; what a client may see
/// is [`status`](AuthError::status), [`client_message`](AuthError::client_message) and a
/// `WWW-Authenticate` header built from [`Challenge::header_value`].
///
/// ```
/// use http::StatusCode;
/// use portcullis_core::{AuthError, Challenge};
///
/// // A bearer token was sent and refused.
/// let error = AuthError::invalid_credentials("signature mismatch").with_bearer_token_sent(true);
/// assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(error.client_message(), "Not authenticated");
/// assert_eq!(error.to_string(), "invalid credentials: signature mismatch");
///
/// let challenge = Challenge::bearer("api")?;
/// assert_eq!(
///     challenge.header_value(Some(&error)),
///     r#"Bearer realm="api", error="invalid_token""#,
/// );
/// # Ok::<(), portcullis_core::ChallengeError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct AuthError {
    kind: AuthErrorKind,
    authenticator: Option<Cow<'static, str>>,
    /// Whether the request carried an `Authorization: Bearer` token (RFC 6750 §3.1: the
    /// `Bearer` challenge names an error only then).
    bearer_token_sent: bool,
    /// Facts about the refused credential for the audit event (never secret: a certificate's
    /// subject and serial, a token's key id).
    details: Box<[(&'static str, String)]>,
    #[source]
    source: Option<BoxError>,
}

impl AuthError {
    /// An error of the given kind.
    #[must_use]
    pub fn new(kind: AuthErrorKind) -> Self {
        Self {
            kind,
            authenticator: None,
            bearer_token_sent: false,
            details: Box::new([]),
            source: None,
        }
    }

    /// No credentials.
    #[must_use]
    pub fn missing_credentials() -> Self {
        Self::new(AuthErrorKind::MissingCredentials)
    }

    /// Credentials nobody handles.
    #[must_use]
    pub fn unsupported_credentials() -> Self {
        Self::new(AuthErrorKind::UnsupportedCredentials)
    }

    /// An invalid credential, with a reason that must not contain the credential.
    #[must_use]
    pub fn invalid_credentials(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::InvalidCredentials(reason.into()))
    }

    /// An expired credential.
    #[must_use]
    pub fn expired() -> Self {
        Self::new(AuthErrorKind::Expired)
    }

    /// A credential used before it is valid.
    #[must_use]
    pub fn not_yet_valid() -> Self {
        Self::new(AuthErrorKind::NotYetValid)
    }

    /// A revoked credential.
    #[must_use]
    pub fn revoked() -> Self {
        Self::new(AuthErrorKind::Revoked)
    }

    /// Too many failed attempts; answered with 429.
    #[must_use]
    pub fn too_many_attempts() -> Self {
        Self::new(AuthErrorKind::TooManyAttempts)
    }

    /// A dependency is down; answered with 503.
    #[must_use]
    pub fn dependency_unavailable(what: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::DependencyUnavailable(what.into()))
    }

    /// Attaches the underlying error (kept for operators, never shown to clients).
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Records which authenticator produced the error.
    #[must_use]
    pub fn with_authenticator(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.authenticator = Some(name.into());
        self
    }

    /// Records whether the request carried a bearer token. The authentication layer sets it
    /// from the request; RFC 6750 §3.1 wants no `error` in the `Bearer` challenge when no
    /// bearer token was sent (a bad API key, say).
    #[must_use]
    pub fn with_bearer_token_sent(mut self, sent: bool) -> Self {
        self.bearer_token_sent = sent;
        self
    }

    /// Whether the request carried a bearer token.
    #[must_use]
    pub fn bearer_token_sent(&self) -> bool {
        self.bearer_token_sent
    }

    /// Adds a fact about the refused credential for the audit event (a certificate's
    /// subject, serial and fingerprint, a token's key id). Never a secret.
    #[must_use]
    pub fn with_detail(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let mut details = std::mem::take(&mut self.details).into_vec();
        details.push((name, value.into()));
        self.details = details.into_boxed_slice();
        self
    }

    /// The facts added with [`AuthError::with_detail`], in order.
    #[must_use]
    pub fn details(&self) -> &[(&'static str, String)] {
        &self.details
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &AuthErrorKind {
        &self.kind
    }

    /// The authenticator that produced the error, when known.
    #[must_use]
    pub fn authenticator(&self) -> Option<&str> {
        self.authenticator.as_deref()
    }

    /// The HTTP status for the client: 503 when a dependency is down, 429 after too many
    /// failures, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self.kind {
            AuthErrorKind::DependencyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthErrorKind::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The generic message for the client: [`NOT_AUTHENTICATED`], [`SERVICE_UNAVAILABLE`] or
    /// [`TOO_MANY_REQUESTS`].
    #[must_use]
    pub fn client_message(&self) -> &'static str {
        match self.kind {
            AuthErrorKind::DependencyUnavailable(_) => SERVICE_UNAVAILABLE,
            AuthErrorKind::TooManyAttempts => TOO_MANY_REQUESTS,
            _ => NOT_AUTHENTICATED,
        }
    }

    /// The RFC 6750 §3.1 error code of the `Bearer` challenge: `invalid_request` for a
    /// malformed `Authorization` header, `invalid_token` for a bearer token that was sent and
    /// refused, and none otherwise: when no bearer token was sent (no credentials, or another
    /// kind of credential such as an API key; §3.1: "the resource server SHOULD NOT include an
    /// error code"), and for a 503 or 429.
    #[must_use]
    pub fn bearer_error(&self) -> Option<BearerErrorCode> {
        match &self.kind {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::DependencyUnavailable(_)
            | AuthErrorKind::TooManyAttempts => None,
            AuthErrorKind::MalformedCredentials(e) if e.is_bearer_invalid_request() => {
                Some(BearerErrorCode::InvalidRequest)
            }
            AuthErrorKind::MalformedCredentials(_) => None,
            _ if self.bearer_token_sent => Some(BearerErrorCode::InvalidToken),
            _ => None,
        }
    }

    /// Whether the client should be sent a `WWW-Authenticate` challenge (every 401).
    #[must_use]
    pub fn needs_challenge(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED
    }
}

impl From<CredentialError> for AuthError {
    fn from(error: CredentialError) -> Self {
        Self::new(AuthErrorKind::MalformedCredentials(error))
    }
}

/// Errors building a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The scheme is not an RFC 7230 token.
    #[error("`{0}` is not a valid authentication scheme")]
    InvalidScheme(String),
    /// The realm contains a quote, a backslash or a character outside visible ASCII and space.
    #[error("the realm may only contain visible ASCII and spaces, without quotes or backslashes")]
    InvalidRealm,
}

/// One `WWW-Authenticate` challenge (RFC 7235 §4.1), such as `Bearer realm="api"`.
///
/// Each authenticator advertises its challenge; a 401 carries the challenge of every
/// configured scheme. For the `Bearer` scheme the RFC 6750 `error` code is added from the
/// [`AuthError`]; an `error_description` is never added, because the precise reason is for
/// the audit log, not for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: Cow<'static, str>,
    realm: Cow<'static, str>,
}

impl Challenge {
    /// A challenge for `scheme` in `realm`.
    ///
    /// # Errors
    /// When the scheme is not a token or the realm would need escaping.
    pub fn new(
        scheme: impl Into<Cow<'static, str>>,
        realm: impl Into<Cow<'static, str>>,
    ) -> Result<Self, ChallengeError> {
        let scheme = scheme.into();
        let realm = realm.into();
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(ChallengeError::InvalidScheme(scheme.into_owned()));
        }
        if !realm
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ChallengeError::InvalidRealm);
        }
        Ok(Self { scheme, realm })
    }

    /// A `Bearer` challenge (RFC 6750).
    ///
    /// # Errors
    /// As [`Challenge::new`].
    pub fn bearer(realm: impl Into<Cow<'static, str>>) -> Result<Self, ChallengeError> {
        Self::new("Bearer", realm)
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A copy in another realm (the authentication layer gives every challenge of a server
    /// one realm).
    ///
    /// # Errors
    /// As [`Challenge::new`].
    pub fn in_realm(&self, realm: Cow<'static, str>) -> Result<Self, ChallengeError> {
        Self::new(self.scheme.clone(), realm)
    }

    /// The challenge as text, with the RFC 6750 `error` code for `Bearer` challenges (see
    /// [`AuthError::bearer_error`]).
    #[must_use]
    pub fn render(&self, error: Option<&AuthError>) -> String {
        let mut text = format!("{} realm=\"{}\"", self.scheme, self.realm);
        if self.scheme.eq_ignore_ascii_case("bearer")
            && let Some(code) = error.and_then(AuthError::bearer_error)
        {
            text.push_str(", error=\"");
            text.push_str(code.as_str());
            text.push('"');
        }
        text
    }

    /// The challenge as a header value.
    #[must_use]
    pub fn header_value(&self, error: Option<&AuthError>) -> HeaderValue {
        // Scheme and realm were checked to be visible ASCII, so this cannot fail; fall back
        // to the bare scheme rather than panic.
        HeaderValue::from_str(&self.render(error))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        assert_eq!(
            AuthError::missing_credentials().status(),
            StatusCode::UNAUTHORIZED
        );
        let down = AuthError::dependency_unavailable("jwks endpoint");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.client_message(), SERVICE_UNAVAILABLE);
        assert!(!down.needs_challenge());
        assert_eq!(AuthError::revoked().client_message(), NOT_AUTHENTICATED);
        let throttled = AuthError::too_many_attempts();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.client_message(), TOO_MANY_REQUESTS);
        assert!(!throttled.needs_challenge());
    }

    #[test]
    fn rfc6750_error_codes() {
        let bearer = Challenge::bearer("portcullis").unwrap();
        assert_eq!(
            bearer.render(Some(&AuthError::missing_credentials())),
            r#"Bearer realm="portcullis""#
        );
        assert_eq!(bearer.render(None), r#"Bearer realm="portcullis""#);
        let malformed = AuthError::from(CredentialError::MalformedAuthorization {
            reason: "no space after the scheme",
        });
        assert_eq!(
            bearer.render(Some(&malformed)),
            r#"Bearer realm="portcullis", error="invalid_request""#
        );
        // A malformed credential elsewhere (a cookie, the API-key header) is not the bearer
        // scheme's concern.
        let cookie = AuthError::from(CredentialError::DuplicateSessionCookie);
        assert_eq!(bearer.render(Some(&cookie)), r#"Bearer realm="portcullis""#);
        assert_eq!(
            bearer.render(Some(&AuthError::expired().with_bearer_token_sent(true))),
            r#"Bearer realm="portcullis", error="invalid_token""#
        );
        // A refused credential that was not a bearer token (a bad API key): no error code.
        assert_eq!(
            bearer.render(Some(&AuthError::invalid_credentials("unknown key"))),
            r#"Bearer realm="portcullis""#
        );
        let api_key = Challenge::new("ApiKey", "portcullis").unwrap();
        assert_eq!(
            api_key.render(Some(&AuthError::expired())),
            r#"ApiKey realm="portcullis""#
        );
    }

    #[test]
    fn challenge_validation() {
        assert!(Challenge::new("Bad Scheme", "x").is_err());
        assert!(Challenge::new("", "x").is_err());
        assert_eq!(Challenge::bearer("a\"b"), Err(ChallengeError::InvalidRealm));
        assert_eq!(Challenge::bearer("a\nb"), Err(ChallengeError::InvalidRealm));
        assert_eq!(Challenge::bearer("é"), Err(ChallengeError::InvalidRealm));
    }

    #[test]
    fn precise_reason_and_source_are_kept() {
        let err = AuthError::invalid_credentials("unknown kid")
            .with_authenticator("jwt")
            .with_source(std::io::Error::other("inner"));
        assert_eq!(err.authenticator(), Some("jwt"));
        assert_eq!(err.to_string(), "invalid credentials: unknown kid");
        assert!(std::error::Error::source(&err).is_some());
    }
}
