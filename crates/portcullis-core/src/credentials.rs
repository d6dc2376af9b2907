//! Credentials carried by a request, and the [`CredentialExtractor`] that finds them.
//!
//! Extraction is purely syntactic: it finds and checks the shape of what the client sent and
//! never decides whether a credential is valid (that is an [`Authenticator`]'s job). Every
//! malformed input becomes a typed [`CredentialError`], never a panic.
//!
//! [`Authenticator`]: crate::Authenticator

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use http::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, request::Parts};
use rustls_pki_types::CertificateDer;

use crate::secret::SecretString;

/// The verified TLS client certificate chain of the connection, end entity first.
///
/// A TLS acceptor puts this into each request's extensions; the mTLS authenticator reads it
/// from there. Only the acceptor should insert it: a layer that inserts it from a header
/// would let clients choose their own identity.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificates(Arc<[CertificateDer<'static>]>);

impl PeerCertificates {
    /// Wraps a chain, end entity first.
    #[must_use]
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self(chain.into())
    }

    /// The end-entity (client) certificate.
    #[must_use]
    pub fn end_entity(&self) -> Option<&CertificateDer<'static>> {
        self.0.first()
    }

    /// The certificates after the end entity (intermediates).
    #[must_use]
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        self.0.get(1..).unwrap_or_default()
    }

    /// The whole chain, end entity first.
    #[must_use]
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0
    }

    /// Number of certificates in the chain.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the chain is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Total size of the chain in bytes.
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.0.iter().map(|c| c.as_ref().len()).sum()
    }
}

impl fmt::Debug for PeerCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCertificates")
            .field("certificates", &self.0.len())
            .field("bytes", &self.total_bytes())
            .finish()
    }
}

/// Where an API key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeySource {
    /// In the configured API-key header (default `X-API-Key`).
    Header(HeaderName),
    /// In `Authorization: ApiKey <key>`.
    AuthorizationScheme,
}

/// One credential found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer(SecretString),
    /// `Authorization: Basic <base64(user:password)>` (RFC 7617).
    Basic {
        /// The user id (before the first colon).
        username: String,
        /// The password (after the first colon).
        password: SecretString,
    },
    /// An API key, from the API-key header or `Authorization: ApiKey`.
    ApiKey {
        /// The key as sent.
        key: SecretString,
        /// Where it was found.
        source: ApiKeySource,
    },
    /// The value of the configured session cookie.
    SessionCookie(SecretString),
    /// The TLS client certificate chain placed in the request extensions by the acceptor.
    PeerCertificates(PeerCertificates),
    /// An `Authorization` header with a scheme Portcullis does not know. Its value is not kept.
    UnsupportedScheme {
        /// The scheme as sent (a token, at most 64 bytes).
        scheme: String,
    },
}

impl Credential {
    /// A short name of the kind of credential, safe to log (`"bearer"`, `"api_key"`, ...).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "bearer",
            Self::Basic { .. } => "basic",
            Self::ApiKey { .. } => "api_key",
            Self::SessionCookie(_) => "session_cookie",
            Self::PeerCertificates(_) => "peer_certificates",
            Self::UnsupportedScheme { .. } => "unsupported_scheme",
        }
    }
}

/// Every credential found in one request, in the order: `Authorization`, API-key header,
/// session cookie, TLS peer certificates.
///
/// ```
/// use portcullis_core::{CredentialExtractor, Credentials};
///
/// let request = http::Request::builder()
///     .uri("/collections/docs")
///     .header("Authorization", "Bearer eyJhbGciOi.eyJzdWIi.c2ln")
///     .body(())?;
/// let (parts, _body) = request.into_parts();
///
/// let credentials: Credentials = CredentialExtractor::new().extract(&parts)?;
/// assert_eq!(credentials.bearer().map(|t| t.expose()), Some("eyJhbGciOi.eyJzdWIi.c2ln"));
/// assert!(credentials.api_key().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    items: Vec<Credential>,
}

impl Credentials {
    /// No credentials.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Credentials from a list (for tests and custom extractors).
    #[must_use]
    pub fn from_list(items: Vec<Credential>) -> Self {
        Self { items }
    }

    /// Adds a credential at the end.
    pub fn push(&mut self, credential: Credential) {
        self.items.push(credential);
    }

    /// Whether the request carried no credential at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All credentials, in extraction order.
    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.items.iter()
    }

    /// The bearer token, if any.
    #[must_use]
    pub fn bearer(&self) -> Option<&SecretString> {
        self.items.iter().find_map(|c| match c {
            Credential::Bearer(token) => Some(token),
            _ => None,
        })
    }

    /// The Basic user id and password, if any.
    #[must_use]
    pub fn basic(&self) -> Option<(&str, &SecretString)> {
        self.items.iter().find_map(|c| match c {
            Credential::Basic { username, password } => Some((username.as_str(), password)),
            _ => None,
        })
    }

    /// The API key and where it was found, if any.
    #[must_use]
    pub fn api_key(&self) -> Option<(&SecretString, &ApiKeySource)> {
        self.items.iter().find_map(|c| match c {
            Credential::ApiKey { key, source } => Some((key, source)),
            _ => None,
        })
    }

    /// The session cookie value, if any.
    #[must_use]
    pub fn session_cookie(&self) -> Option<&SecretString> {
        self.items.iter().find_map(|c| match c {
            Credential::SessionCookie(value) => Some(value),
            _ => None,
        })
    }

    /// The TLS peer certificate chain, if any.
    #[must_use]
    pub fn peer_certificates(&self) -> Option<&PeerCertificates> {
        self.items.iter().find_map(|c| match c {
            Credential::PeerCertificates(chain) => Some(chain),
            _ => None,
        })
    }
}

impl<'a> IntoIterator for &'a Credentials {
    type Item = &'a Credential;
    type IntoIter = std::slice::Iter<'a, Credential>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// Why the credentials of a request could not be read. The client sees only a generic 401;
/// this goes to the audit event. Values sent by the client are never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// More than one header of a name that must appear once (`Authorization`, the API-key
    /// header).
    #[error("{count} `{header}` headers; at most one is allowed")]
    DuplicateHeader {
        /// The header name.
        header: HeaderName,
        /// How many were sent (capped at the number counted before giving up).
        count: usize,
    },
    /// The session cookie appears more than once (cookie tossing).
    #[error("the session cookie appears more than once")]
    DuplicateSessionCookie,
    /// A header value longer than the configured limit.
    #[error("`{header}` is {len} bytes long, the limit is {max}")]
    TooLong {
        /// The header name.
        header: HeaderName,
        /// Its length in bytes.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Too many headers of one name (`Cookie`).
    #[error("more than {max} `{header}` headers")]
    TooManyHeaders {
        /// The header name.
        header: HeaderName,
        /// The configured limit.
        max: usize,
    },
    /// A header value with bytes outside visible ASCII (non-ASCII, control characters, tab).
    #[error("`{header}` contains bytes outside visible ASCII")]
    NotVisibleAscii {
        /// The header name.
        header: HeaderName,
    },
    /// An `Authorization` header with no credentials after the scheme, an empty API-key header
    /// or an empty session cookie.
    #[error("`{header}` carries an empty credential")]
    Empty {
        /// The header name.
        header: HeaderName,
    },
    /// An `Authorization` header that does not follow `scheme SP token68` (RFC 7235 §2.1).
    #[error("malformed `authorization` header: {reason}")]
    MalformedAuthorization {
        /// What is wrong, without the value.
        reason: &'static str,
    },
    /// A `Basic` credential that is not base64 of `user-id ":" password` in UTF-8.
    #[error("malformed basic credentials: {reason}")]
    MalformedBasic {
        /// What is wrong, without the value.
        reason: &'static str,
    },
    /// The TLS peer certificate chain in the request extensions is empty.
    #[error("the TLS peer certificate chain is empty")]
    EmptyPeerCertificates,
    /// More header fields than the configured limit.
    #[error("the request has {count} header fields, the limit is {max}")]
    TooManyHeaderFields {
        /// How many were sent.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A header section (names and values) larger than the configured limit.
    #[error("the request's headers are larger than {max} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        max: usize,
    },
}

impl CredentialError {
    /// Whether an RFC 6750 `Bearer` challenge calls this error `invalid_request`: the
    /// `Authorization` header is malformed, or the request as a whole is (too many or too
    /// large headers). A malformed cookie or API-key header is not the bearer scheme's concern.
    #[must_use]
    pub fn is_bearer_invalid_request(&self) -> bool {
        match self {
            Self::DuplicateHeader { header, .. }
            | Self::TooLong { header, .. }
            | Self::NotVisibleAscii { header }
            | Self::Empty { header } => header == AUTHORIZATION,
            Self::MalformedAuthorization { .. }
            | Self::TooManyHeaderFields { .. }
            | Self::HeadersTooLarge { .. } => true,
            Self::TooManyHeaders { .. }
            | Self::DuplicateSessionCookie
            | Self::MalformedBasic { .. }
            | Self::EmptyPeerCertificates => false,
        }
    }
}

/// Configuration errors of a [`CredentialExtractor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractorConfigError {
    /// The API-key header name is not a valid HTTP header name.
    #[error("`{0}` is not a valid header name")]
    InvalidHeaderName(String),
    /// The API-key header may not be `Authorization` or `Cookie`, which are parsed separately.
    #[error("`{0}` cannot be used as the API-key header")]
    ReservedHeaderName(String),
    /// The cookie name is not an RFC 6265 token.
    #[error("`{0}` is not a valid cookie name")]
    InvalidCookieName(String),
    /// A limit of zero would reject every credential.
    #[error("the {0} limit must be at least 1")]
    ZeroLimit(&'static str),
}

/// Default longest `Authorization`, API-key or session-cookie value, in bytes (8 KiB: room for a
/// JWT with many claims, far from what a header-flooding client would send).
pub const DEFAULT_MAX_CREDENTIAL_LEN: usize = 8 * 1024;
/// Default longest single `Cookie` header, in bytes.
pub const DEFAULT_MAX_COOKIE_HEADER_LEN: usize = 8 * 1024;
/// Default largest number of `Cookie` headers examined (HTTP/2 may split cookies).
pub const DEFAULT_MAX_COOKIE_HEADERS: usize = 32;
/// Default largest number of header fields in a request (hyper's own default limit; servers
/// should set their HTTP limits above Portcullis's, so that Portcullis answers and audits).
pub const DEFAULT_MAX_HEADER_FIELDS: usize = 100;
/// Default largest header section (names and values), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest `Authorization` scheme name kept in [`Credential::UnsupportedScheme`].
const MAX_SCHEME_LEN: usize = 64;

/// Finds the credentials in a request's headers and extensions.
///
/// * `Authorization`: scheme matched case-insensitively (RFC 7235 §2.1); `Bearer` with an RFC
///   6750 `b64token`; `Basic` (RFC 7617); `ApiKey <key>`; any other scheme becomes
///   [`Credential::UnsupportedScheme`]. Several `Authorization` headers are an error.
/// * The API-key header, `X-API-Key` by default ([`CredentialExtractor::api_key_header`]).
/// * A session cookie, when a name is configured ([`CredentialExtractor::session_cookie`]).
/// * [`PeerCertificates`] from the request extensions.
///
/// The query string is never read: a key in the URL ends up in proxy and server logs, so
/// `?api_key=...` is ignored.
///
/// Limits ([`DEFAULT_MAX_CREDENTIAL_LEN`] and friends) are checked before anything else is
/// done with a value, the size of the whole header section first
/// ([`DEFAULT_MAX_HEADER_FIELDS`], [`DEFAULT_MAX_HEADER_BYTES`]). A request over them is
/// refused with a 401 `invalid_request` that the audit trail records, provided the HTTP server
/// lets it through: configure the server's own limits above these (hyper answers a bare `431`
/// past its limits, before any layer runs; `portcullis_mtls::server::ServeOptions` does).
#[derive(Debug, Clone)]
#[must_use]
pub struct CredentialExtractor {
    api_key_header: Option<HeaderName>,
    session_cookie: Option<String>,
    max_credential_len: usize,
    max_cookie_header_len: usize,
    max_cookie_headers: usize,
    max_header_fields: usize,
    max_header_bytes: usize,
}

impl Default for CredentialExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialExtractor {
    /// The default extractor: `Authorization`, `X-API-Key`, no session cookie, peer
    /// certificates.
    pub fn new() -> Self {
        Self {
            api_key_header: Some(HeaderName::from_static("x-api-key")),
            session_cookie: None,
            max_credential_len: DEFAULT_MAX_CREDENTIAL_LEN,
            max_cookie_header_len: DEFAULT_MAX_COOKIE_HEADER_LEN,
            max_cookie_headers: DEFAULT_MAX_COOKIE_HEADERS,
            max_header_fields: DEFAULT_MAX_HEADER_FIELDS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }

    /// Sets the largest number of header fields and the largest header section (names and
    /// values, in bytes) a request may have.
    ///
    /// # Errors
    /// When either limit is zero.
    pub fn header_limits(
        mut self,
        max_fields: usize,
        max_bytes: usize,
    ) -> Result<Self, ExtractorConfigError> {
        if max_fields == 0 {
            return Err(ExtractorConfigError::ZeroLimit("header field count"));
        }
        if max_bytes == 0 {
            return Err(ExtractorConfigError::ZeroLimit("header section size"));
        }
        self.max_header_fields = max_fields;
        self.max_header_bytes = max_bytes;
        Ok(self)
    }

    /// The largest number of header fields and header section size accepted.
    #[must_use]
    pub fn header_limit_values(&self) -> (usize, usize) {
        (self.max_header_fields, self.max_header_bytes)
    }

    /// Reads API keys from `name` instead of `X-API-Key` (the AmateRS `header_name` setting).
    ///
    /// # Errors
    /// When `name` is not a header name, or is `Authorization` or `Cookie`.
    pub fn api_key_header(mut self, name: &str) -> Result<Self, ExtractorConfigError> {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ExtractorConfigError::InvalidHeaderName(name.to_owned()))?;
        if header == AUTHORIZATION || header == COOKIE {
            return Err(ExtractorConfigError::ReservedHeaderName(name.to_owned()));
        }
        self.api_key_header = Some(header);
        Ok(self)
    }

    /// Does not read any API-key header (`Authorization: ApiKey` is still read).
    pub fn without_api_key_header(mut self) -> Self {
        self.api_key_header = None;
        self
    }

    /// Reads the session from the cookie called `name`.
    ///
    /// # Errors
    /// When `name` is not an RFC 6265 cookie name (an RFC 7230 token).
    pub fn session_cookie(mut self, name: &str) -> Result<Self, ExtractorConfigError> {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(ExtractorConfigError::InvalidCookieName(name.to_owned()));
        }
        self.session_cookie = Some(name.to_owned());
        Ok(self)
    }

    /// Sets the longest accepted credential value in bytes.
    ///
    /// # Errors
    /// When `max` is zero.
    pub fn max_credential_len(mut self, max: usize) -> Result<Self, ExtractorConfigError> {
        if max == 0 {
            return Err(ExtractorConfigError::ZeroLimit("credential length"));
        }
        self.max_credential_len = max;
        Ok(self)
    }

    /// Sets the longest accepted `Cookie` header in bytes and how many `Cookie` headers are
    /// examined.
    ///
    /// # Errors
    /// When either limit is zero.
    pub fn cookie_limits(
        mut self,
        max_header_len: usize,
        max_headers: usize,
    ) -> Result<Self, ExtractorConfigError> {
        if max_header_len == 0 {
            return Err(ExtractorConfigError::ZeroLimit("cookie header length"));
        }
        if max_headers == 0 {
            return Err(ExtractorConfigError::ZeroLimit("cookie header count"));
        }
        self.max_cookie_header_len = max_header_len;
        self.max_cookie_headers = max_headers;
        Ok(self)
    }

    /// The configured API-key header, if any.
    #[must_use]
    pub fn api_key_header_name(&self) -> Option<&HeaderName> {
        self.api_key_header.as_ref()
    }

    /// Extracts the credentials of a request.
    ///
    /// # Errors
    /// A [`CredentialError`] for any malformed, duplicated or oversized credential. A request
    /// with no credentials is not an error: it yields an empty [`Credentials`].
    pub fn extract(&self, parts: &Parts) -> Result<Credentials, CredentialError> {
        self.extract_from(&parts.headers, &parts.extensions)
    }

    /// Extracts the credentials from headers and extensions directly.
    ///
    /// # Errors
    /// As [`CredentialExtractor::extract`].
    pub fn extract_from(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Credentials, CredentialError> {
        let fields = headers.len();
        if fields > self.max_header_fields {
            return Err(CredentialError::TooManyHeaderFields {
                count: fields,
                max: self.max_header_fields,
            });
        }
        let bytes = headers.iter().fold(0usize, |sum, (name, value)| {
            sum.saturating_add(name.as_str().len() + value.len())
        });
        if bytes > self.max_header_bytes {
            return Err(CredentialError::HeadersTooLarge {
                max: self.max_header_bytes,
            });
        }
        let mut credentials = Credentials::none();

        if let Some(value) = single_header(headers, &AUTHORIZATION)? {
            credentials.push(self.parse_authorization(value)?);
        }

        if let Some(name) = &self.api_key_header
            && let Some(value) = single_header(headers, name)?
        {
            let key = self.visible_ascii(name, value)?;
            if key.is_empty() {
                return Err(CredentialError::Empty {
                    header: name.clone(),
                });
            }
            credentials.push(Credential::ApiKey {
                key: SecretString::new(key),
                source: ApiKeySource::Header(name.clone()),
            });
        }

        if let Some(cookie_name) = &self.session_cookie
            && let Some(value) = self.find_cookie(headers, cookie_name)?
        {
            credentials.push(Credential::SessionCookie(SecretString::new(value)));
        }

        if let Some(chain) = extensions.get::<PeerCertificates>() {
            if chain.is_empty() {
                return Err(CredentialError::EmptyPeerCertificates);
            }
            credentials.push(Credential::PeerCertificates(chain.clone()));
        }

        Ok(credentials)
    }

    fn visible_ascii<'v>(
        &self,
        header: &HeaderName,
        value: &'v HeaderValue,
    ) -> Result<&'v str, CredentialError> {
        let bytes = value.as_bytes();
        if bytes.len() > self.max_credential_len {
            return Err(CredentialError::TooLong {
                header: header.clone(),
                len: bytes.len(),
                max: self.max_credential_len,
            });
        }
        // Visible ASCII and spaces only: tab, DEL and obs-text are refused.
        if !bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(CredentialError::NotVisibleAscii {
                header: header.clone(),
            });
        }
        std::str::from_utf8(bytes).map_err(|_| CredentialError::NotVisibleAscii {
            header: header.clone(),
        })
    }

    fn parse_authorization(&self, value: &HeaderValue) -> Result<Credential, CredentialError> {
        let text = self.visible_ascii(&AUTHORIZATION, value)?;
        let (scheme, rest) = match text.split_once(' ') {
            Some((scheme, rest)) => (scheme, rest.trim_start_matches(' ')),
            None => (text, ""),
        };
        if scheme.is_empty() {
            return Err(CredentialError::MalformedAuthorization {
                reason: "missing scheme",
            });
        }
        if !scheme.bytes().all(is_tchar) {
            return Err(CredentialError::MalformedAuthorization {
                reason: "scheme is not a token",
            });
        }
        if rest.is_empty() {
            return Err(CredentialError::Empty {
                header: AUTHORIZATION,
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if !is_token68(rest) {
                return Err(CredentialError::MalformedAuthorization {
                    reason: "bearer token is not a b64token",
                });
            }
            Ok(Credential::Bearer(SecretString::new(rest)))
        } else if scheme.eq_ignore_ascii_case("basic") {
            parse_basic(rest)
        } else if scheme.eq_ignore_ascii_case("apikey") {
            if rest.contains(' ') {
                return Err(CredentialError::MalformedAuthorization {
                    reason: "api key contains a space",
                });
            }
            Ok(Credential::ApiKey {
                key: SecretString::new(rest),
                source: ApiKeySource::AuthorizationScheme,
            })
        } else {
            let mut end = scheme.len().min(MAX_SCHEME_LEN);
            while !scheme.is_char_boundary(end) {
                end -= 1;
            }
            Ok(Credential::UnsupportedScheme {
                scheme: scheme.get(..end).unwrap_or_default().to_owned(),
            })
        }
    }

    fn find_cookie(
        &self,
        headers: &HeaderMap,
        cookie_name: &str,
    ) -> Result<Option<String>, CredentialError> {
        let mut found: Option<String> = None;
        for (index, value) in headers.get_all(COOKIE).iter().enumerate() {
            if index >= self.max_cookie_headers {
                return Err(CredentialError::TooManyHeaders {
                    header: COOKIE,
                    max: self.max_cookie_headers,
                });
            }
            if value.len() > self.max_cookie_header_len {
                return Err(CredentialError::TooLong {
                    header: COOKIE,
                    len: value.len(),
                    max: self.max_cookie_header_len,
                });
            }
            for pair in value.as_bytes().split(|b| *b == b';') {
                let pair = trim_ows(pair);
                let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                    continue;
                };
                let (name, raw) = pair.split_at(eq);
                if name != cookie_name.as_bytes() {
                    continue;
                }
                if found.is_some() {
                    return Err(CredentialError::DuplicateSessionCookie);
                }
                let raw = raw.get(1..).unwrap_or_default();
                let unquoted = match raw {
                    [b'"', inner @ .., b'"'] => inner,
                    other => other,
                };
                if unquoted.is_empty() {
                    return Err(CredentialError::Empty { header: COOKIE });
                }
                if unquoted.len() > self.max_credential_len {
                    return Err(CredentialError::TooLong {
                        header: COOKIE,
                        len: unquoted.len(),
                        max: self.max_credential_len,
                    });
                }
                if !unquoted.iter().all(|b| is_cookie_octet(*b)) {
                    return Err(CredentialError::NotVisibleAscii { header: COOKIE });
                }
                let text = std::str::from_utf8(unquoted)
                    .map_err(|_| CredentialError::NotVisibleAscii { header: COOKIE })?;
                found = Some(text.to_owned());
            }
        }
        Ok(found)
    }
}

fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, CredentialError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    let extra = values.take(1_000).count();
    if extra > 0 {
        return Err(CredentialError::DuplicateHeader {
            header: name.clone(),
            count: extra + 1,
        });
    }
    Ok(first)
}

fn parse_basic(encoded: &str) -> Result<Credential, CredentialError> {
    if !is_token68(encoded) {
        return Err(CredentialError::MalformedBasic {
            reason: "not a token68",
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| CredentialError::MalformedBasic {
            reason: "not base64",
        })?;
    let decoded = zeroize::Zeroizing::new(decoded);
    let text = std::str::from_utf8(&decoded).map_err(|_| CredentialError::MalformedBasic {
        reason: "not UTF-8",
    })?;
    let (username, password) = text
        .split_once(':')
        .ok_or(CredentialError::MalformedBasic {
            reason: "no colon between user id and password",
        })?;
    if username.is_empty() {
        return Err(CredentialError::MalformedBasic {
            reason: "empty user id",
        });
    }
    if text.chars().any(char::is_control) {
        return Err(CredentialError::MalformedBasic {
            reason: "control character",
        });
    }
    Ok(Credential::Basic {
        username: username.to_owned(),
        password: SecretString::new(password),
    })
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 7235 `token68` (the same grammar as RFC 6750 `b64token`):
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// RFC 6750 `b64token` characters (before the trailing `=`), as a lookup table: bearer
/// tokens are long and every request checks one.
const TOKEN68: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        #[expect(clippy::cast_possible_truncation, reason = "b < 256")]
        let c = b as u8;
        #[expect(clippy::indexing_slicing, reason = "b < 256 = table length")]
        {
            table[b] =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        }
        b += 1;
    }
    table
};

fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    #[expect(clippy::indexing_slicing, reason = "a u8 index into a 256-entry table")]
    let allowed = |b: u8| TOKEN68[usize::from(b)];
    !body.is_empty() && body.bytes().all(allowed)
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests;
