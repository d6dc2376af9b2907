//! [`JwtAuthenticator`]: bearer JWTs from one or several issuers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::algorithm::Algorithm;
use async_trait::async_trait;
use portcullis_core::{
    AuthOutcome, Authenticator, Challenge, Clock, Credentials, Principal, SystemClock,
};
use serde_json::Value;

use crate::claims::{ClaimMapping, TokenProfile, Validation};
use crate::error::{ConfigError, JwtError};
use crate::issuer::TokenIssuer;
use crate::jose::{HeaderCache, decode_header_in, decode_into, parse_claims, split_compact};
use crate::keys::{KeySet, VerificationKey};
use crate::remote::RemoteJwks;
use crate::revocation::RevocationList;

/// Default largest token accepted, checked before any decoding (8 KiB).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed key set (secrets, PEM keys, a JWKS file).
    Static(Arc<KeySet>),
    /// A JWKS URL or OIDC discovery, cached.
    Remote(RemoteJwks),
    /// The verification keys of a local [`TokenIssuer`], following its rotations.
    Issuer(TokenIssuer),
}

impl KeySource {
    /// The key without waiting, or `None` when a remote key set must be fetched.
    fn resolve_now(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<VerificationKey>, JwtError>> {
        match self {
            Self::Static(set) => Some(set.find(kid, alg).cloned()),
            Self::Remote(remote) => remote.resolve_cached(kid, alg),
            Self::Issuer(issuer) => Some(issuer.verification_keys().find(kid, alg).cloned()),
        }
    }
}

/// Where a synchronous verification got to.
enum Step {
    Done(Principal),
    /// The issuer's remote key set must be asked for this key first.
    NeedKey {
        remote: RemoteJwks,
        kid: Option<String>,
        alg: Algorithm,
    },
}

impl From<KeySet> for KeySource {
    fn from(set: KeySet) -> Self {
        Self::Static(Arc::new(set))
    }
}

impl From<VerificationKey> for KeySource {
    fn from(key: VerificationKey) -> Self {
        match KeySet::new(vec![key]) {
            Ok(set) => Self::Static(Arc::new(set)),
            // One key cannot be a duplicate or a mix.
            Err(_) => Self::Static(Arc::new(KeySet::default())),
        }
    }
}

impl From<RemoteJwks> for KeySource {
    fn from(remote: RemoteJwks) -> Self {
        Self::Remote(remote)
    }
}

impl From<TokenIssuer> for KeySource {
    fn from(issuer: TokenIssuer) -> Self {
        Self::Issuer(issuer)
    }
}

/// Which `iss` values an [`IssuerConfig`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerMatcher {
    /// Tokens must carry one of these exact `iss` values.
    Exact(Vec<String>),
    /// A multi-tenant template such as Microsoft's
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`: `iss` is `prefix + tenant + suffix`
    /// where the tenant is one path segment equal to the token's `tenant_claim` (`tid`), and,
    /// when `allowed_tenants` is not empty, one of them.
    Template {
        /// Text before the tenant.
        prefix: String,
        /// Text after the tenant.
        suffix: String,
        /// The claim that must equal the tenant.
        tenant_claim: String,
        /// Tenants accepted (empty: any).
        allowed_tenants: Vec<String>,
    },
    /// No `iss` check: for a single locally configured key (AmateRS without `issuer`).
    /// At most one such issuer may be configured and it cannot use remote keys.
    Unchecked,
}

impl IssuerMatcher {
    /// A template with one `{tenantid}` placeholder.
    pub fn template(template: &str, tenant_claim: &str) -> Result<Self, ConfigError> {
        let (prefix, suffix) = template
            .split_once("{tenantid}")
            .ok_or_else(|| ConfigError::Invalid("issuer template lacks {tenantid}".into()))?;
        Ok(Self::Template {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            tenant_claim: tenant_claim.to_owned(),
            allowed_tenants: Vec::new(),
        })
    }

    fn template_matches(
        &self,
        iss: &str,
        claims: &crate::json::ClaimsSet<'_>,
    ) -> Result<bool, JwtError> {
        let Self::Template {
            prefix,
            suffix,
            tenant_claim,
            allowed_tenants,
        } = self
        else {
            return Ok(false);
        };
        let Some(tenant) = iss
            .strip_prefix(prefix.as_str())
            .and_then(|r| r.strip_suffix(suffix.as_str()))
        else {
            return Ok(false);
        };
        if tenant.is_empty() || tenant.contains('/') {
            return Ok(false);
        }
        match claims.other.get(tenant_claim) {
            Some(Value::String(claimed)) if claimed == tenant => {}
            Some(Value::String(_)) => {
                return Err(JwtError::InvalidClaim("tenant does not match iss"));
            }
            Some(_) => return Err(JwtError::InvalidClaim("tenant")),
            None => return Err(JwtError::MissingClaim("tid")),
        }
        if !allowed_tenants.is_empty() && !allowed_tenants.iter().any(|t| t == tenant) {
            return Err(JwtError::UnknownIssuer);
        }
        Ok(true)
    }
}

/// What to do with `jku`, `x5u`, `jwk` and `x5c` header parameters. They are never fetched
/// and never supply a key either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyReferencePolicy {
    /// Ignore them (default: some providers add `x5c` for information).
    #[default]
    Ignore,
    /// Refuse tokens that carry them.
    Reject,
}

/// One trusted issuer: how to recognise its tokens, where its keys are, what to check and how
/// to map its claims.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub(crate) matcher: IssuerMatcher,
    pub(crate) keys: KeySource,
    pub(crate) validation: Validation,
    pub(crate) mapping: ClaimMapping,
    pub(crate) key_references: KeyReferencePolicy,
    /// The algorithms the issuer signs with, when configured.
    pub(crate) algorithms: Option<Vec<Algorithm>>,
}

impl IssuerConfig {
    /// Tokens whose `iss` is exactly `issuer`, verified with `keys`.
    pub fn new(issuer: impl Into<String>, keys: impl Into<KeySource>) -> Self {
        Self::with_matcher(IssuerMatcher::Exact(vec![issuer.into()]), keys)
    }

    /// Tokens recognised by `matcher`.
    pub fn with_matcher(matcher: IssuerMatcher, keys: impl Into<KeySource>) -> Self {
        Self {
            matcher,
            keys: keys.into(),
            validation: Validation::default(),
            mapping: ClaimMapping::default(),
            key_references: KeyReferencePolicy::default(),
            algorithms: None,
        }
    }

    /// The algorithms the issuer signs with: a token with another `alg` is refused before any
    /// key is looked up or fetched. Without this setting, the issuer's discovery document
    /// decides (`id_token_signing_alg_values_supported`) when the keys come from discovery;
    /// a remote JWKS refuses HMAC algorithms; a fixed key set refuses what its keys are not
    /// bound to. Set it when access tokens are signed with algorithms the discovery document
    /// does not list (it lists those of ID tokens); one RSA algorithm here binds RSA keys
    /// published without `alg` to it.
    #[must_use]
    pub fn algorithms<I: IntoIterator<Item = Algorithm>>(mut self, algorithms: I) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// What kind of token is accepted (see [`TokenProfile`]); shorthand for
    /// `validation(validation.profile(profile))`.
    #[must_use]
    pub fn profile(mut self, profile: TokenProfile) -> Self {
        self.validation = self.validation.profile(profile);
        self
    }

    /// Whether the issuer signs with `alg` (see [`IssuerConfig::algorithms`]).
    fn signs_with(&self, alg: Algorithm) -> bool {
        if let Some(algorithms) = &self.algorithms {
            return algorithms.contains(&alg);
        }
        match &self.keys {
            KeySource::Remote(remote) => match remote.discovered_algorithms() {
                Some(algorithms) => algorithms.contains(&alg),
                // A JWKS holds public keys: an HMAC token cannot be verified by it.
                None => !alg.is_hmac(),
            },
            KeySource::Static(_) | KeySource::Issuer(_) => true,
        }
    }

    /// The claim checks (audience, leeway, max age, `typ`).
    #[must_use]
    pub fn validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// Shorthand for requiring one of these audiences.
    #[must_use]
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.validation = self.validation.audiences(audiences);
        self
    }

    /// The claims → principal mapping.
    #[must_use]
    pub fn mapping(mut self, mapping: ClaimMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// The header key-reference policy.
    #[must_use]
    pub fn key_references(mut self, policy: KeyReferencePolicy) -> Self {
        self.key_references = policy;
        self
    }

    /// The matcher.
    #[must_use]
    pub fn matcher(&self) -> &IssuerMatcher {
        &self.matcher
    }
}

/// Verifies bearer JWTs from the configured issuers and maps them to a [`Principal`].
///
/// ```
/// use portcullis_jwt::{Algorithm, IssuerConfig, JwtAuthenticator, VerificationKey};
///
/// let key = VerificationKey::hmac(Algorithm::HS256, &[7u8; 32])?;
/// let authenticator = JwtAuthenticator::builder()
///     .issuer(IssuerConfig::new("amaters-server", key).audiences(["amaters-clients"]))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct JwtAuthenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: Vec<IssuerConfig>,
    exact: HashMap<String, usize>,
    templates: Vec<usize>,
    unchecked: Option<usize>,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    realm: String,
    headers: HeaderCache,
    revocations: Option<Arc<dyn RevocationList>>,
}

impl fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuers", &self.inner.issuers)
            .field("max_token_bytes", &self.inner.max_token_bytes)
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtAuthenticator`].
#[derive(Debug)]
pub struct JwtAuthenticatorBuilder {
    issuers: Vec<IssuerConfig>,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
    realm: String,
    revocations: Option<Arc<dyn RevocationList>>,
}

impl JwtAuthenticatorBuilder {
    /// Refuses tokens whose `jti` is on `list`; tokens without a `jti` are then refused too
    /// (they could not be revoked).
    #[must_use]
    pub fn revocations(mut self, list: Arc<dyn RevocationList>) -> Self {
        self.revocations = Some(list);
        self
    }

    /// Adds an issuer.
    #[must_use]
    pub fn issuer(mut self, issuer: IssuerConfig) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The largest token accepted (default [`DEFAULT_MAX_TOKEN_BYTES`]).
    #[must_use]
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The clock for `exp`/`nbf`/`iat` checks.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The realm of the `WWW-Authenticate: Bearer` challenge (default `api`).
    #[must_use]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<JwtAuthenticator, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::Invalid("no issuer configured".into()));
        }
        let mut exact = HashMap::new();
        let mut templates = Vec::new();
        let mut unchecked = None;
        for (index, issuer) in self.issuers.iter().enumerate() {
            match &issuer.matcher {
                IssuerMatcher::Exact(values) => {
                    if values.is_empty() {
                        return Err(ConfigError::Invalid(
                            "an issuer needs at least one iss value".into(),
                        ));
                    }
                    for value in values {
                        if exact.insert(value.clone(), index).is_some() {
                            return Err(ConfigError::Invalid(format!(
                                "issuer {value:?} configured twice"
                            )));
                        }
                    }
                }
                IssuerMatcher::Template { .. } => templates.push(index),
                IssuerMatcher::Unchecked => {
                    if unchecked.replace(index).is_some() {
                        return Err(ConfigError::Invalid(
                            "at most one issuer without iss check".into(),
                        ));
                    }
                    if matches!(issuer.keys, KeySource::Remote(_)) {
                        return Err(ConfigError::Invalid(
                            "remote keys need an issuer to check before fetching".into(),
                        ));
                    }
                }
            }
        }
        Ok(JwtAuthenticator {
            inner: Arc::new(Inner {
                issuers: self.issuers,
                exact,
                templates,
                unchecked,
                max_token_bytes: self.max_token_bytes,
                clock: self.clock,
                realm: self.realm,
                headers: HeaderCache::default(),
                revocations: self.revocations,
            }),
        })
    }
}

impl JwtAuthenticator {
    /// Starts a builder.
    #[must_use]
    pub fn builder() -> JwtAuthenticatorBuilder {
        JwtAuthenticatorBuilder {
            issuers: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            clock: Arc::new(SystemClock),
            realm: "api".into(),
            revocations: None,
        }
    }

    /// Verifies a compact token and returns the principal.
    ///
    /// Everything but fetching a remote key set is synchronous; with static keys or a fresh
    /// cached JWKS nothing waits.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        match self.verify_now(token, None)? {
            Step::Done(principal) => Ok(principal),
            Step::NeedKey { remote, kid, alg } => {
                let key = remote.resolve(kid.as_deref(), alg).await?;
                match self.verify_now(token, Some(&key))? {
                    Step::Done(principal) => Ok(principal),
                    Step::NeedKey { .. } => Err(JwtError::UnknownKey),
                }
            }
        }
    }

    /// Parses, checks and verifies `token`, with `key` when the caller fetched it.
    fn verify_now(
        &self,
        token: &str,
        key: Option<&Arc<VerificationKey>>,
    ) -> Result<Step, JwtError> {
        let inner = &*self.inner;
        let segments = split_compact(token, inner.max_token_bytes)?;
        // The header of a token like one that verified before is already checked; otherwise
        // decode it into a small stack buffer (larger headers go to the heap).
        let slot = inner.headers.slot(segments.header);
        let (mut header_stack, mut header_heap);
        let (header, cached) = match slot.as_ref().and_then(|s| s.header(segments.header)) {
            Some(header) => (header, true),
            None => {
                (header_stack, header_heap) = ([0u8; 512], Vec::new());
                let header =
                    decode_header_in(segments.header, &mut header_stack, &mut header_heap)?;
                (header, false)
            }
        };
        let (mut payload_stack, mut payload_heap) = ([0u8; 1024], Vec::new());
        let payload = decode_into(
            segments.payload,
            &mut payload_stack,
            &mut payload_heap,
            "payload is not base64url",
        )?;
        let claims = parse_claims(payload)?;
        let issuer = self.select_issuer(&claims)?;
        if header.carries_key_reference && issuer.key_references == KeyReferencePolicy::Reject {
            return Err(JwtError::KeyReferenceInHeader);
        }
        issuer.validation.typ.check(header.typ.as_deref())?;
        // Before any key lookup: a token in an algorithm the issuer does not use spends no
        // refetch of its key set.
        if !issuer.signs_with(header.alg) {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        let key = match key {
            Some(key) => Arc::clone(key),
            None => match issuer.keys.resolve_now(header.kid.as_deref(), header.alg) {
                Some(key) => key?,
                None => {
                    let KeySource::Remote(remote) = &issuer.keys else {
                        return Err(JwtError::UnknownKey);
                    };
                    return Ok(Step::NeedKey {
                        remote: remote.clone(),
                        kid: header.kid.map(std::borrow::Cow::into_owned),
                        alg: header.alg,
                    });
                }
            },
        };
        let (mut signature_stack, mut signature_heap) = ([0u8; 512], Vec::new());
        let signature = decode_into(
            segments.signature,
            &mut signature_stack,
            &mut signature_heap,
            "signature is not base64url",
        )?;
        key.verify(header.alg, segments.signing_input, signature)?;
        let now = inner.clock.now();
        let exp = issuer.validation.check(&claims, now.unix_timestamp())?;
        if let Some(list) = &inner.revocations {
            let jti = match claims.other.get("jti") {
                Some(Value::String(jti)) if !jti.is_empty() => jti,
                Some(_) => return Err(JwtError::InvalidClaim("jti")),
                None => return Err(JwtError::MissingClaim("jti")),
            };
            match list.is_revoked(jti) {
                Ok(false) => {}
                Ok(true) => return Err(JwtError::Revoked),
                Err(error) => return Err(JwtError::RevocationsUnavailable(error.0)),
            }
        }
        let principal = issuer.mapping.principal(claims, exp, now)?;
        if !cached {
            inner.headers.remember(segments.header, &header);
        }
        Ok(Step::Done(principal))
    }

    fn select_issuer(
        &self,
        claims: &crate::json::ClaimsSet<'_>,
    ) -> Result<&IssuerConfig, JwtError> {
        let inner = &*self.inner;
        let pick = |index: usize| inner.issuers.get(index).ok_or(JwtError::UnknownIssuer);
        match &claims.iss {
            Some(Value::String(iss)) => {
                if let Some(index) = inner.exact.get(iss.as_str()) {
                    return pick(*index);
                }
                for index in &inner.templates {
                    let issuer = pick(*index)?;
                    if issuer.matcher.template_matches(iss, claims)? {
                        return Ok(issuer);
                    }
                }
                inner.unchecked.map_or(Err(JwtError::UnknownIssuer), pick)
            }
            Some(_) => Err(JwtError::InvalidClaim("iss")),
            None => inner
                .unchecked
                .map_or(Err(JwtError::MissingClaim("iss")), pick),
        }
    }
}

/// Whether a bearer token is meant as a JWT: it has a `.` (compact serializations separate
/// their segments with dots; a truncated token with one dot is still a JWT, and malformed), or
/// it starts with `eyJ`, the base64url of `{"` that every JOSE header begins with. Anything
/// else (an opaque session token, an API key, which have no dots) is left to the next
/// authenticator.
fn looks_like_jwt(token: &str) -> bool {
    token.contains('.') || token.starts_with("eyJ")
}

#[async_trait]
impl Authenticator for JwtAuthenticator {
    fn name(&self) -> &str {
        "jwt"
    }

    fn challenge(&self) -> Option<Challenge> {
        Challenge::bearer(self.inner.realm.clone()).ok()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        let Some(token) = credentials.bearer() else {
            return AuthOutcome::NotApplicable;
        };
        let token = token.expose();
        if !looks_like_jwt(token) {
            return AuthOutcome::NotApplicable;
        }
        match self.verify(token).await {
            Ok(principal) => AuthOutcome::Authenticated(principal),
            Err(error) => AuthOutcome::Rejected(error.into_auth_error()),
        }
    }
}
