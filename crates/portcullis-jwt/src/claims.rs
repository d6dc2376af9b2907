//! Claim validation (fail closed) and the mapping from claims to a [`Principal`].

use std::time::Duration;

use portcullis_core::{AuthMethod, Principal, PrincipalKind};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::JwtError;
use crate::json::{ClaimsSet, StrictObject};

/// The largest leeway a validator accepts (clock skew, not a grace period).
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The latest NumericDate accepted: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Which `typ` header values a validator accepts (RFC 8725 §3.11, RFC 9068 §2.1).
///
/// Comparison ignores ASCII case and an `application/` prefix (RFC 7515 §4.1.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypPolicy {
    accepted: Vec<String>,
    allow_missing: bool,
}

impl TypPolicy {
    /// Only RFC 9068 access tokens: `typ` must be `at+jwt`. An ID token (`JWT`) or any other
    /// kind of token is refused.
    #[must_use]
    pub fn access_token() -> Self {
        Self {
            accepted: vec!["at+jwt".into()],
            allow_missing: false,
        }
    }

    /// Tokens typed `JWT`, `at+jwt` or untyped: what most issuers (and the AmateRS and Aethera
    /// services, which use PyJWT defaults) produce. Other types (`refresh+jwt`,
    /// `logout+jwt`, `secevent+jwt`, ...) are refused.
    #[must_use]
    pub fn jwt() -> Self {
        Self {
            accepted: vec!["jwt".into(), "at+jwt".into()],
            allow_missing: true,
        }
    }

    /// Exactly these types (case-insensitive); `allow_missing` accepts an untyped token too.
    #[must_use]
    pub fn one_of<I: IntoIterator<Item = S>, S: Into<String>>(
        types: I,
        allow_missing: bool,
    ) -> Self {
        Self {
            accepted: types
                .into_iter()
                .map(|t| normalize_typ(&t.into()))
                .collect(),
            allow_missing,
        }
    }

    pub(crate) fn check(&self, typ: Option<&str>) -> Result<(), JwtError> {
        match typ {
            None if self.allow_missing => Ok(()),
            None => Err(JwtError::WrongType),
            Some(typ) => {
                // RFC 7515 §4.1.9: compare without an `application/` prefix, ignoring case.
                let bare = match typ.get(..12) {
                    Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
                        typ.get(12..).unwrap_or("")
                    }
                    _ => typ,
                };
                if self.accepted.iter().any(|a| a.eq_ignore_ascii_case(bare)) {
                    Ok(())
                } else {
                    Err(JwtError::WrongType)
                }
            }
        }
    }
}

impl Default for TypPolicy {
    fn default() -> Self {
        Self::jwt()
    }
}

fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// What kind of token a resource server accepts from an issuer: an access token (in the
/// RFC 9068 profile or a provider's own form) or an ID token. An ID token whose `aud` is the
/// configured audience is not an access token, and the profile keeps one from being accepted
/// as the other.
///
/// | profile | `typ` | also required | refused |
/// |---|---|---|---|
/// | [`Jwt`](TokenProfile::Jwt) | `JWT`, `at+jwt` or none | | |
/// | [`AccessToken`](TokenProfile::AccessToken) (RFC 9068) | `at+jwt` | `sub`, `client_id`, `iat`, `jti` | |
/// | [`IdToken`](TokenProfile::IdToken) (OpenID Connect) | `JWT` or none | `sub`, `iat`; `azp` with several audiences | an `azp` that is not a configured audience |
/// | [`MicrosoftAccessToken`](TokenProfile::MicrosoftAccessToken) | `JWT` or none | `ver` `1.0` or `2.0`; `scp` or `roles` | `nonce` (ID tokens of a sign-in) |
/// | [`OktaAccessToken`](TokenProfile::OktaAccessToken) | `JWT`, `at+jwt` or none | `cid`, `scp` | `nonce` |
/// | [`Auth0AccessToken`](TokenProfile::Auth0AccessToken) | `JWT` or `at+jwt` (the RFC 9068 profile) | `azp` | `nonce` |
///
/// Google issues no JWT access tokens (its access tokens are opaque): verify its ID tokens.
/// The provider rows follow the providers' documentation of their access tokens: Microsoft
/// Entra ID v1 and v2 access tokens carry `ver` and the delegated `scp` or application
/// `roles`; Okta's carry the client id as `cid` and the scopes as `scp`; Auth0's carry the
/// client as `azp`. Their ID tokens carry none of these markers, or a `nonce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenProfile {
    /// Any JWT the issuer signs (typed `JWT`, `at+jwt` or untyped): for issuers you run
    /// yourself (a [`TokenIssuer`](crate::TokenIssuer), the AmateRS and Aethera services,
    /// which issue untyped tokens with PyJWT). The default of [`Validation`].
    #[default]
    Jwt,
    /// RFC 9068 JWT access tokens. The default for a generic OpenID provider
    /// ([`presets::discovered`](crate::presets::discovered)).
    AccessToken,
    /// OpenID Connect ID tokens (for an endpoint such as `/auth/oauth/login`, where the client
    /// sends the ID token it received, and for Google).
    IdToken,
    /// Microsoft Entra ID access tokens (v1 and v2).
    MicrosoftAccessToken,
    /// Okta access tokens (org and custom authorization servers).
    OktaAccessToken,
    /// Auth0 access tokens.
    Auth0AccessToken,
}

impl TokenProfile {
    /// The `typ` values of the profile.
    #[must_use]
    pub fn typ_policy(self) -> TypPolicy {
        match self {
            Self::Jwt | Self::OktaAccessToken => TypPolicy::jwt(),
            Self::AccessToken => TypPolicy::access_token(),
            Self::IdToken | Self::MicrosoftAccessToken => TypPolicy::one_of(["JWT"], true),
            Self::Auth0AccessToken => TypPolicy::one_of(["JWT", "at+jwt"], false),
        }
    }

    /// The profile's claims (after the signature and the registered claims were checked).
    fn check(self, claims: &ClaimsSet<'_>, audiences: &[String]) -> Result<(), JwtError> {
        let other = &claims.other;
        let string = |name: &'static str| match other.get(name) {
            Some(Value::String(_)) => Ok(()),
            Some(_) => Err(JwtError::InvalidClaim(name)),
            None => Err(JwtError::MissingClaim(name)),
        };
        let present = |name: &str| other.get(name).is_some();
        let no_nonce = || {
            if present("nonce") {
                Err(JwtError::WrongType)
            } else {
                Ok(())
            }
        };
        match self {
            Self::Jwt => Ok(()),
            Self::AccessToken => {
                claims.sub.as_ref().ok_or(JwtError::MissingClaim("sub"))?;
                claims.iat.as_ref().ok_or(JwtError::MissingClaim("iat"))?;
                string("client_id")?;
                string("jti")
            }
            Self::IdToken => {
                claims.sub.as_ref().ok_or(JwtError::MissingClaim("sub"))?;
                claims.iat.as_ref().ok_or(JwtError::MissingClaim("iat"))?;
                let several = matches!(&claims.aud, Some(Value::Array(a)) if a.len() > 1);
                match other.get("azp") {
                    None if several => Err(JwtError::MissingClaim("azp")),
                    None => Ok(()),
                    Some(Value::String(azp)) => {
                        if audiences.is_empty() || audiences.iter().any(|a| a == azp) {
                            Ok(())
                        } else {
                            Err(JwtError::AudienceMismatch)
                        }
                    }
                    Some(_) => Err(JwtError::InvalidClaim("azp")),
                }
            }
            Self::MicrosoftAccessToken => {
                match other.get("ver") {
                    Some(Value::String(v)) if v == "1.0" || v == "2.0" => {}
                    Some(_) => return Err(JwtError::InvalidClaim("ver")),
                    None => return Err(JwtError::MissingClaim("ver")),
                }
                if !present("scp") && !present("roles") {
                    return Err(JwtError::MissingClaim("scp"));
                }
                no_nonce()
            }
            Self::OktaAccessToken => {
                string("cid")?;
                if !present("scp") {
                    return Err(JwtError::MissingClaim("scp"));
                }
                no_nonce()
            }
            Self::Auth0AccessToken => {
                string("azp")?;
                no_nonce()
            }
        }
    }
}

/// The time-based and audience checks applied to every token of an issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway_secs: i64,
    pub(crate) max_age_secs: Option<i64>,
    pub(crate) max_lifetime_secs: Option<i64>,
    pub(crate) profile: TokenProfile,
    pub(crate) typ: TypPolicy,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            leeway_secs: 30,
            max_age_secs: None,
            max_lifetime_secs: None,
            profile: TokenProfile::default(),
            typ: TokenProfile::default().typ_policy(),
        }
    }
}

impl Validation {
    /// Requires `aud` to name one of these audiences (exact, case-sensitive). With no audience
    /// configured, `aud` is not checked.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s, at most [`MAX_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Result<Self, crate::ConfigError> {
        if leeway > MAX_LEEWAY {
            return Err(crate::ConfigError::Invalid(format!(
                "leeway {}s exceeds the maximum of {}s",
                leeway.as_secs(),
                MAX_LEEWAY.as_secs()
            )));
        }
        self.leeway_secs = i64::try_from(leeway.as_secs()).unwrap_or(0);
        Ok(self)
    }

    /// Refuses tokens whose `iat` is older than this (and makes `iat` required).
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age_secs = Some(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        self
    }

    /// Refuses tokens whose lifetime (`exp - iat`) is longer than this.
    #[must_use]
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime_secs = Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        self
    }

    /// Which `typ` values are accepted (default: the profile's, [`TokenProfile::typ_policy`]).
    /// Set after [`Validation::profile`], which resets it.
    #[must_use]
    pub fn typ(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }

    /// What kind of token is accepted (default [`TokenProfile::Jwt`]); also sets the
    /// profile's `typ` values.
    #[must_use]
    pub fn profile(mut self, profile: TokenProfile) -> Self {
        self.profile = profile;
        self.typ = profile.typ_policy();
        self
    }

    /// The kind of token accepted.
    #[must_use]
    pub fn token_profile(&self) -> TokenProfile {
        self.profile
    }

    /// Checks the registered claims at `now` (Unix seconds). Returns `exp`.
    pub(crate) fn check(&self, claims: &ClaimsSet<'_>, now: i64) -> Result<i64, JwtError> {
        let leeway = self.leeway_secs;
        // RFC 7519 §4.1.4: reject "on or after" exp; fractional values round toward the
        // stricter outcome (exp down, nbf and iat up).
        let exp = match &claims.exp {
            None => return Err(JwtError::MissingClaim("exp")),
            Some(v) => numeric_date(v, "exp", Rounding::Down)?,
        };
        if now >= exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = &claims.nbf {
            let nbf = numeric_date(nbf, "nbf", Rounding::Up)?;
            if nbf > now.saturating_add(leeway) {
                return Err(JwtError::NotYetValid);
            }
        }
        let iat = match &claims.iat {
            Some(iat) => Some(numeric_date(iat, "iat", Rounding::Up)?),
            None if self.max_age_secs.is_some() => return Err(JwtError::MissingClaim("iat")),
            None => None,
        };
        if let Some(iat) = iat {
            if iat > now.saturating_add(leeway) {
                return Err(JwtError::IssuedInFuture);
            }
            if let Some(max_age) = self.max_age_secs
                && now.saturating_sub(iat) > max_age.saturating_add(leeway)
            {
                return Err(JwtError::TooOld);
            }
            if let Some(max_lifetime) = self.max_lifetime_secs
                && exp.saturating_sub(iat) > max_lifetime
            {
                return Err(JwtError::TooOld);
            }
        }
        if !self.audiences.is_empty() {
            self.check_audience(claims.aud.as_ref())?;
        }
        self.profile.check(claims, &self.audiences)?;
        Ok(exp)
    }

    fn check_audience(&self, aud: Option<&Value>) -> Result<(), JwtError> {
        let accepted = |a: &str| self.audiences.iter().any(|c| c == a);
        match aud {
            None => Err(JwtError::MissingClaim("aud")),
            Some(Value::String(a)) if accepted(a) => Ok(()),
            Some(Value::String(_)) => Err(JwtError::AudienceMismatch),
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    return Err(JwtError::InvalidClaim("aud"));
                }
                let mut matched = false;
                for item in items {
                    let Value::String(a) = item else {
                        return Err(JwtError::InvalidClaim("aud"));
                    };
                    matched |= accepted(a);
                }
                if matched {
                    Ok(())
                } else {
                    Err(JwtError::AudienceMismatch)
                }
            }
            Some(_) => Err(JwtError::InvalidClaim("aud")),
        }
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

/// A NumericDate: a non-negative JSON number no later than year 9999.
fn numeric_date(value: &Value, name: &'static str, rounding: Rounding) -> Result<i64, JwtError> {
    let Value::Number(number) = value else {
        return Err(JwtError::InvalidClaim(name));
    };
    if let Some(i) = number.as_i64() {
        if !(0..=253_402_300_799).contains(&i) {
            return Err(JwtError::InvalidClaim(name));
        }
        return Ok(i);
    }
    match number.as_f64() {
        Some(f) if f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&f) => {
            let rounded = match rounding {
                Rounding::Down => f.floor(),
                Rounding::Up => f.ceil(),
            };
            #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
            Ok(rounded as i64)
        }
        _ => Err(JwtError::InvalidClaim(name)),
    }
}

/// A claim name, possibly a dotted path into nested objects (`realm_access.roles`). A name
/// that exists as a top-level claim (such as an Auth0 namespaced claim
/// `https://example.com/roles`) is taken as is before the dots are considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    /// A claim path.
    #[must_use]
    pub fn new(path: impl Into<String>) -> Self {
        Self(path.into())
    }

    /// The path as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn top(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }

    fn lookup<'a>(&self, claims: &'a StrictObject<'_>) -> Option<&'a Value> {
        if let Some(value) = claims.get(&self.0) {
            return Some(value);
        }
        if !self.0.contains('.') {
            return None;
        }
        let mut segments = self.0.split('.');
        let mut current = claims.get(segments.next()?)?;
        for segment in segments {
            current = current.as_object()?.get(segment)?;
        }
        Some(current)
    }

    /// Removes the claim (or, for a nested path, the top-level claim holding it) and returns
    /// the value at the path.
    fn take_from(&self, claims: &mut StrictObject<'_>) -> Option<Value> {
        if let Some(value) = claims.take(&self.0) {
            return Some(value);
        }
        if !self.0.contains('.') {
            return None;
        }
        let value = self.lookup(claims).cloned();
        if value.is_some() {
            claims.take(self.top());
        }
        value
    }
}

/// How claims become a [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimMapping {
    /// Where the roles are: an array of strings or a space-separated string. Default `roles`.
    pub roles: ClaimPath,
    /// Where the tenant is (`tid`, `org_id`, ...). Default none.
    pub tenant: Option<ClaimPath>,
    /// The display name claim. Default `name`.
    pub name: ClaimPath,
    /// The email claim. Default `email`.
    pub email: ClaimPath,
    /// How the principal authenticated (JWT for configured keys, OIDC for providers).
    pub auth_method: AuthMethod,
}

/// Setters, one per field; each returns the changed value.
impl ClaimMapping {
    /// Sets [`roles`](Self::roles).
    #[must_use]
    pub fn roles(mut self, roles: ClaimPath) -> Self {
        self.roles = roles;
        self
    }

    /// Sets [`tenant`](Self::tenant).
    #[must_use]
    pub fn tenant(mut self, tenant: Option<ClaimPath>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Sets [`name`](Self::name).
    #[must_use]
    pub fn name(mut self, name: ClaimPath) -> Self {
        self.name = name;
        self
    }

    /// Sets [`email`](Self::email).
    #[must_use]
    pub fn email(mut self, email: ClaimPath) -> Self {
        self.email = email;
        self
    }

    /// Sets [`auth_method`](Self::auth_method).
    #[must_use]
    pub fn auth_method(mut self, auth_method: AuthMethod) -> Self {
        self.auth_method = auth_method;
        self
    }
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            roles: ClaimPath::new("roles"),
            tenant: None,
            name: ClaimPath::new("name"),
            email: ClaimPath::new("email"),
            auth_method: AuthMethod::Jwt,
        }
    }
}

fn string_claim(value: Option<Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

/// An array of strings, or one space-separated string.
fn string_list(value: Option<Value>, name: &'static str) -> Result<Vec<String>, JwtError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(JwtError::InvalidClaim(name)),
            })
            .collect(),
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

impl ClaimMapping {
    /// Builds the principal from validated claims, moving their values.
    pub(crate) fn principal(
        &self,
        claims: ClaimsSet<'_>,
        exp: i64,
        now: OffsetDateTime,
    ) -> Result<Principal, JwtError> {
        let ClaimsSet {
            iss,
            sub,
            aud,
            other: mut claims,
            ..
        } = claims;
        let subject = match sub {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(JwtError::InvalidClaim("sub")),
            None => return Err(JwtError::MissingClaim("sub")),
        };
        let roles = string_list(self.roles.take_from(&mut claims), "roles")?;
        let tenant = match &self.tenant {
            Some(path) => string_claim(path.take_from(&mut claims), "tenant")?,
            None => None,
        };
        let name = string_claim(self.name.take_from(&mut claims), "name")?;
        let email = string_claim(self.email.take_from(&mut claims), "email")?;
        let mut scopes = string_list(claims.take("scope"), "scope")?;
        scopes.extend(string_list(claims.take("scp"), "scp")?);
        let is_service = matches!(claims.get("client_id"), Some(Value::String(c)) if *c == subject);
        if let Some(iss) = iss {
            claims.0.push(("iss".into(), iss));
        }
        if let Some(aud) = aud {
            claims.0.push(("aud".into(), aud));
        }
        let attributes = claims.into_map();

        let kind = if is_service {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        let expires = OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|_| JwtError::InvalidClaim("exp"))?
            .max(now);
        let mut builder = Principal::builder(subject, kind, self.auth_method, now)
            .roles(roles)
            .scopes(scopes)
            .expires_at(expires)
            .attributes(attributes);
        if let Some(tenant) = tenant {
            builder = builder.tenant(tenant);
        }
        if let Some(name) = name {
            builder = builder.name(name);
        }
        if let Some(email) = email {
            builder = builder.email(email);
        }
        builder
            .build()
            .map_err(|e| JwtError::Principal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> ClaimsSet<'_> {
        ClaimsSet::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn exp_is_on_or_after() {
        let v = Validation::default().leeway(Duration::ZERO).unwrap();
        assert_eq!(
            v.check(&claims(r#"{"exp":100}"#), 100),
            Err(JwtError::Expired)
        );
        assert_eq!(v.check(&claims(r#"{"exp":100}"#), 99), Ok(100));
        assert_eq!(
            v.check(&claims(r#"{"exp":100.9}"#), 100),
            Err(JwtError::Expired)
        );
        for bad in [r#""100""#, "null", "-1", "1e300", "{}", "[100]"] {
            let json = format!(r#"{{"exp":{bad}}}"#);
            assert!(v.check(&claims(&json), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn typ_comparison_ignores_case_and_application_prefix() {
        let p = TypPolicy::access_token();
        assert!(p.check(Some("at+JWT")).is_ok());
        assert!(p.check(Some("application/at+jwt")).is_ok());
        assert!(p.check(Some("JWT")).is_err());
        assert!(p.check(None).is_err());
    }

    #[test]
    fn nested_and_namespaced_paths() {
        let c = claims(r#"{"realm_access":{"roles":["a"]},"https://x.io/roles":["b"]}"#);
        assert_eq!(
            ClaimPath::new("realm_access.roles").lookup(&c.other),
            Some(&serde_json::json!(["a"]))
        );
        assert_eq!(
            ClaimPath::new("https://x.io/roles").lookup(&c.other),
            Some(&serde_json::json!(["b"]))
        );
    }
}
