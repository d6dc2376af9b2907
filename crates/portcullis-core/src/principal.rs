//! Who is calling: [`Principal`], its [`PrincipalKind`] and its [`AuthMethod`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Longest subject id, role, scope or tenant accepted, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 1024;

/// What kind of caller a [`Principal`] is. An anonymous caller is not a principal: a request
/// without credentials has no `Principal` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A workload: another service, a job, a device.
    Service,
    /// The holder of an API key (the key's owner is recorded as the subject id).
    ApiKey,
}

impl PrincipalKind {
    /// The lowercase name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::ApiKey => "api_key",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a principal proved who it is.
///
/// Serialized with the names the AmateRS audit log uses (`"JWT"`, `"mTLS"`, ...); parsing
/// accepts those and their lowercase or snake_case spellings (`"jwt"`, `"api_key"`, `"mtls"`).
///
/// ```
/// use portcullis_core::AuthMethod;
///
/// assert_eq!(AuthMethod::Jwt.to_string(), "JWT");
/// assert_eq!("api_key".parse::<AuthMethod>(), Ok(AuthMethod::ApiKey));
/// assert_eq!("mTLS".parse::<AuthMethod>(), Ok(AuthMethod::Mtls));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A JSON Web Token verified with a configured key.
    Jwt,
    /// An OpenID Connect token (JWT from a discovered issuer).
    Oidc,
    /// A TLS client certificate.
    Mtls,
    /// An API key.
    ApiKey,
    /// A username and password.
    Password,
    /// A server-side session (cookie).
    Session,
}

impl AuthMethod {
    /// The name written to audit logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "JWT",
            Self::Oidc => "OIDC",
            Self::Mtls => "mTLS",
            Self::ApiKey => "APIKey",
            Self::Password => "Password",
            Self::Session => "Session",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string names no [`AuthMethod`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown authentication method `{0}`")]
pub struct UnknownAuthMethod(String);

impl FromStr for AuthMethod {
    type Err = UnknownAuthMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "jwt" => Ok(Self::Jwt),
            "oidc" | "openidconnect" | "oauth" => Ok(Self::Oidc),
            "mtls" | "tls" | "clientcertificate" => Ok(Self::Mtls),
            "apikey" => Ok(Self::ApiKey),
            "password" => Ok(Self::Password),
            "session" => Ok(Self::Session),
            _ => Err(UnknownAuthMethod(truncate_for_error(s))),
        }
    }
}

impl Serialize for AuthMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuthMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The reasons a [`Principal`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrincipalError {
    /// A subject id, role, scope or tenant is empty.
    #[error("{field} is empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A subject id, role, scope or tenant is longer than [`MAX_IDENTIFIER_LEN`].
    #[error("{field} is {len} bytes long, the limit is {MAX_IDENTIFIER_LEN}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A subject id, role, scope or tenant contains a control character (which could forge
    /// log lines or confuse matching).
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
    },
    /// The credential expires before the principal authenticated.
    #[error("the credential expires before the authentication time")]
    ExpiresBeforeAuthentication,
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), PrincipalError> {
    if value.is_empty() {
        return Err(PrincipalError::Empty { field });
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(PrincipalError::TooLong {
            field,
            len: value.len(),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(PrincipalError::ControlCharacter { field });
    }
    Ok(())
}

pub(crate) fn truncate_for_error(s: &str) -> String {
    const LIMIT: usize = 64;
    let mut end = s.len().min(LIMIT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut shown: String = s
        .get(..end)
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if end < s.len() {
        shown.push('…');
    }
    shown
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PrincipalData {
    id: String,
    kind: PrincipalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    auth_method: AuthMethod,
    #[serde(with = "time::serde::rfc3339")]
    authenticated_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    expires_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    attributes: Map<String, Value>,
}

impl PrincipalData {
    fn validate(mut self) -> Result<Self, PrincipalError> {
        check_identifier("subject id", &self.id)?;
        for role in &self.roles {
            check_identifier("role", role)?;
        }
        for scope in &self.scopes {
            check_identifier("scope", scope)?;
        }
        if let Some(tenant) = &self.tenant {
            check_identifier("tenant", tenant)?;
        }
        if let (Some(expires), auth) = (self.expires_at, self.authenticated_at)
            && expires < auth
        {
            return Err(PrincipalError::ExpiresBeforeAuthentication);
        }
        dedup_in_order(&mut self.roles);
        dedup_in_order(&mut self.scopes);
        self.authenticated_at = self.authenticated_at.to_offset(time::UtcOffset::UTC);
        self.expires_at = self.expires_at.map(|t| t.to_offset(time::UtcOffset::UTC));
        Ok(self)
    }
}

fn dedup_in_order(values: &mut Vec<String>) {
    // Roles and scopes are few: compare pairwise without allocating; hash past 16.
    if values.len() <= 16 {
        let mut i = 1;
        while i < values.len() {
            let duplicate = values
                .get(..i)
                .zip(values.get(i))
                .is_some_and(|(before, v)| before.contains(v));
            if duplicate {
                values.remove(i);
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    values.retain(|v| seen.insert(v.clone()));
}

/// Who is calling: the result of a successful authentication.
///
/// A `Principal` is immutable and cheap to clone (the data is shared behind an [`Arc`]). It is
/// built by authenticators through [`Principal::builder`], which validates every field; an
/// application normally receives one from the authentication layer and only reads it.
///
/// ```
/// use portcullis_core::{AuthMethod, Principal, PrincipalKind};
/// use time::macros::datetime;
///
/// let principal = Principal::builder(
///     "user123",
///     PrincipalKind::User,
///     AuthMethod::Jwt,
///     datetime!(2026-01-17 12:00 UTC),
/// )
/// .name("John Doe")
/// .role("admin")
/// .scope("projects:read")
/// .tenant("acme")
/// .expires_at(datetime!(2026-01-17 12:30 UTC))
/// .build()?;
///
/// assert_eq!(principal.id(), "user123");
/// assert!(principal.has_role("admin"));
/// assert!(principal.is_expired_at(datetime!(2026-01-17 12:30 UTC)));
/// # Ok::<(), portcullis_core::PrincipalError>(())
/// ```
///
/// Serialization is a plain JSON object (see the crate README), and deserialization runs the
/// same validation as the builder. A principal deserialized from a place an attacker can
/// write to is not authenticated: only deserialize principals your own code stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    data: Arc<PrincipalData>,
}

impl Principal {
    /// Starts building a principal. `authenticated_at` is the time the credential was checked
    /// (take it from the authenticator's [`Clock`](crate::Clock)).
    pub fn builder(
        id: impl Into<String>,
        kind: PrincipalKind,
        auth_method: AuthMethod,
        authenticated_at: OffsetDateTime,
    ) -> PrincipalBuilder {
        PrincipalBuilder {
            data: PrincipalData {
                id: id.into(),
                kind,
                name: None,
                email: None,
                roles: Vec::new(),
                scopes: Vec::new(),
                tenant: None,
                auth_method,
                authenticated_at,
                expires_at: None,
                attributes: Map::new(),
            },
        }
    }

    /// The subject id: stable and unique within the issuer (`sub`, a certificate identity, an
    /// API key's owner).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.data.id
    }

    /// What kind of caller this is.
    #[must_use]
    pub fn kind(&self) -> PrincipalKind {
        self.data.kind
    }

    /// Display name, when the credential carried one.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.data.name.as_deref()
    }

    /// Email address, when the credential carried one.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.data.email.as_deref()
    }

    /// Roles, in the order the credential listed them, without duplicates.
    #[must_use]
    pub fn roles(&self) -> &[String] {
        &self.data.roles
    }

    /// Whether the principal holds `role` (exact, case-sensitive comparison).
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.data.roles.iter().any(|r| r == role)
    }

    /// OAuth scopes or API-key scopes.
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        &self.data.scopes
    }

    /// Whether the principal holds `scope` (exact, case-sensitive comparison).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.data.scopes.iter().any(|s| s == scope)
    }

    /// Tenant or organization the principal belongs to.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.data.tenant.as_deref()
    }

    /// How the principal authenticated.
    #[must_use]
    pub fn auth_method(&self) -> AuthMethod {
        self.data.auth_method
    }

    /// When the credential was checked, in UTC.
    #[must_use]
    pub fn authenticated_at(&self) -> OffsetDateTime {
        self.data.authenticated_at
    }

    /// When the credential stops being valid, in UTC, if it expires.
    #[must_use]
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.data.expires_at
    }

    /// Whether the credential has expired at `now`. Expiry is "on or after" (RFC 7519 §4.1.4):
    /// a credential is expired at its expiry instant.
    #[must_use]
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.data.expires_at.is_some_and(|exp| now >= exp)
    }

    /// Every other claim or attribute the credential carried.
    #[must_use]
    pub fn attributes(&self) -> &Map<String, Value> {
        &self.data.attributes
    }

    /// One attribute by name.
    #[must_use]
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.data.attributes.get(key)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &*self.data;
        f.debug_struct("Principal")
            .field("id", &d.id)
            .field("kind", &d.kind)
            .field("name", &d.name)
            .field("email", &d.email)
            .field("roles", &d.roles)
            .field("scopes", &d.scopes)
            .field("tenant", &d.tenant)
            .field("auth_method", &d.auth_method)
            .field("authenticated_at", &d.authenticated_at)
            .field("expires_at", &d.expires_at)
            .field("attributes", &d.attributes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = PrincipalData::deserialize(deserializer)?
            .validate()
            .map_err(serde::de::Error::custom)?;
        Ok(Self {
            data: Arc::new(data),
        })
    }
}

/// Builds a [`Principal`]; see [`Principal::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PrincipalBuilder {
    data: PrincipalData,
}

impl PrincipalBuilder {
    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.data.name = Some(name.into());
        self
    }

    /// Sets the email address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.data.email = Some(email.into());
        self
    }

    /// Adds one role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.data.roles.push(role.into());
        self
    }

    /// Adds several roles.
    pub fn roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        let roles = roles.into_iter().map(Into::into);
        if self.data.roles.is_empty() {
            // Collecting a `Vec<String>` back into a `Vec` reuses its allocation.
            self.data.roles = roles.collect();
        } else {
            self.data.roles.extend(roles);
        }
        self
    }

    /// Adds one scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.data.scopes.push(scope.into());
        self
    }

    /// Adds several scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into);
        if self.data.scopes.is_empty() {
            self.data.scopes = scopes.collect();
        } else {
            self.data.scopes.extend(scopes);
        }
        self
    }

    /// Sets the tenant or organization.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.data.tenant = Some(tenant.into());
        self
    }

    /// Sets when the credential expires.
    pub fn expires_at(mut self, expires_at: OffsetDateTime) -> Self {
        self.data.expires_at = Some(expires_at);
        self
    }

    /// Adds one attribute (replacing an earlier one of the same name).
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.attributes.insert(key.into(), value.into());
        self
    }

    /// Adds several attributes.
    pub fn attributes(mut self, attributes: Map<String, Value>) -> Self {
        if self.data.attributes.is_empty() {
            self.data.attributes = attributes;
        } else {
            self.data.attributes.extend(attributes);
        }
        self
    }

    /// Validates and builds the principal.
    ///
    /// # Errors
    /// When the subject id, a role, a scope or the tenant is empty, longer than
    /// [`MAX_IDENTIFIER_LEN`] or contains a control character, or when the expiry precedes the
    /// authentication time. Duplicate roles and scopes are removed, keeping the first.
    pub fn build(self) -> Result<Principal, PrincipalError> {
        Ok(Principal {
            data: Arc::new(self.data.validate()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn base() -> PrincipalBuilder {
        Principal::builder(
            "alice",
            PrincipalKind::User,
            AuthMethod::Jwt,
            datetime!(2026-01-17 12:00 UTC),
        )
    }

    #[test]
    fn builder_validates_identifiers() {
        assert_eq!(
            Principal::builder(
                "",
                PrincipalKind::User,
                AuthMethod::Jwt,
                OffsetDateTime::UNIX_EPOCH
            )
            .build(),
            Err(PrincipalError::Empty {
                field: "subject id"
            })
        );
        assert_eq!(
            base().role("ad\nmin").build(),
            Err(PrincipalError::ControlCharacter { field: "role" })
        );
        assert!(matches!(
            base().tenant("x".repeat(MAX_IDENTIFIER_LEN + 1)).build(),
            Err(PrincipalError::TooLong {
                field: "tenant",
                ..
            })
        ));
        assert_eq!(
            base().expires_at(datetime!(2026-01-17 11:59 UTC)).build(),
            Err(PrincipalError::ExpiresBeforeAuthentication)
        );
    }

    #[test]
    fn roles_are_deduplicated_in_order() {
        let p = base().roles(["b", "a", "b"]).build().unwrap();
        assert_eq!(p.roles(), ["b", "a"]);
        assert!(p.has_role("a"));
        assert!(!p.has_role("A"));
        let many: Vec<String> = (0..40).map(|i| format!("r{}", i % 20)).collect();
        let many = base().roles(many).build().unwrap();
        assert_eq!(many.roles().len(), 20);
        assert_eq!(many.roles()[19], "r19");
    }

    #[test]
    fn expiry_is_on_or_after() {
        let p = base()
            .expires_at(datetime!(2026-01-17 12:30 UTC))
            .build()
            .unwrap();
        assert!(!p.is_expired_at(datetime!(2026-01-17 12:29:59 UTC)));
        assert!(p.is_expired_at(datetime!(2026-01-17 12:30 UTC)));
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let p = base()
            .name("Alice")
            .email("alice@example.com")
            .role("admin")
            .scope("projects:read")
            .tenant("acme")
            .attribute("department", "ops")
            .build()
            .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: Principal = serde_json::from_str(&json).unwrap();
        assert_eq!(p, back);

        let bad = json.replace("\"alice\"", "\"\"");
        assert!(serde_json::from_str::<Principal>(&bad).is_err());
    }

    #[test]
    fn auth_method_names() {
        for m in [
            AuthMethod::Jwt,
            AuthMethod::Oidc,
            AuthMethod::Mtls,
            AuthMethod::ApiKey,
            AuthMethod::Password,
            AuthMethod::Session,
        ] {
            assert_eq!(m.as_str().parse::<AuthMethod>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<AuthMethod>(&json).unwrap(), m);
        }
        assert!("kerberos".parse::<AuthMethod>().is_err());
        let long = "\u{7}".repeat(100);
        let err = long.parse::<AuthMethod>().unwrap_err().to_string();
        assert!(!err.contains('\u{7}'));
    }

    #[test]
    fn debug_lists_attribute_names_only() {
        let p = base()
            .attribute("secret_claim", "value-xyz")
            .build()
            .unwrap();
        let printed = format!("{p:?}");
        assert!(printed.contains("secret_claim"));
        assert!(!printed.contains("value-xyz"));
    }
}
