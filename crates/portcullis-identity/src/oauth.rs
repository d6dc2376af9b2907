//! Logging in with an account at an OpenID provider (`POST /auth/oauth/login` in the Aethera
//! document): the client sends what the provider gave it, and [`OAuthProviders::verify`] finds
//! out who it names, checking that it was issued to **this** application.
//!
//! A provider's access token is not bound to the application that receives it: accepting any
//! valid Google token would let every other site its users visit log in here as them (token
//! substitution). So each kind of token is checked the way its provider allows:
//!
//! | provider | `id_token` | `access_token` |
//! |---|---|---|
//! | Google | verified offline, `aud` one of our client ids ([`presets::google`]) | Google's tokeninfo endpoint: `aud` (and `azp`) must be our client ids |
//! | Microsoft | verified offline, `aud` our client id, any tenant or ours | refused: Graph access tokens cannot be verified by anyone but Graph, so an ID token is required |
//! | Okta | verified offline, `aud` our client id | introspection (RFC 7662) with our client credentials, `client_id` ours; or, without a secret, a JWT access token for our authorization server with `cid` ours |
//! | any OpenID provider | by discovery, `aud` our client id | introspection, `client_id` ours |
//!
//! ID tokens are verified in the [`TokenProfile::IdToken`] profile (a bearer route, which uses
//! an access-token profile, never accepts one). Roles are never taken from the provider: a
//! linked account has the roles of its local account. The `okta_domain` of a request only
//! picks among the domains the server was configured with; nothing is fetched from a URL the
//! client chose.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use portcullis_core::{Principal, SecretString};
use portcullis_jwt::presets::{self, ProviderOptions};
use portcullis_jwt::{
    ConfigError, FetchError, FormPost, HttpFetcher, IssuerConfig, JwtAuthenticator, TokenProfile,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Google's tokeninfo endpoint (it takes the token in a form `POST`, which keeps it out of
/// URLs and their logs).
pub const GOOGLE_TOKENINFO: &str = "https://oauth2.googleapis.com/tokeninfo";

/// Google's issuer, as its ID tokens and tokeninfo name it.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The largest tokeninfo or introspection answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// The largest token accepted from a client.
const MAX_TOKEN: usize = 16 * 1024;

/// The providers a login may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// `google`.
    Google,
    /// `microsoft` (Entra ID).
    Microsoft,
    /// `okta` (with the request's `okta_domain`).
    Okta,
    /// `oidc`: any OpenID provider found by discovery.
    OpenId,
}

impl ProviderKind {
    /// Its name in a request.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Microsoft => "microsoft",
            Self::Okta => "okta",
            Self::OpenId => "oidc",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProviderKind {
    type Err = OAuthError;

    fn from_str(name: &str) -> Result<Self, OAuthError> {
        match name {
            "google" => Ok(Self::Google),
            "microsoft" => Ok(Self::Microsoft),
            "okta" => Ok(Self::Okta),
            "oidc" => Ok(Self::OpenId),
            _ => Err(OAuthError::UnknownProvider),
        }
    }
}

/// How a provider's access tokens are checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccessTokenCheck {
    /// Access tokens are refused; the client must send an `id_token` (Microsoft: Graph access
    /// tokens can only be verified by Graph).
    IdTokenRequired,
    /// Google's tokeninfo: the token's `aud`, and its `azp` when present, must be one of
    /// `client_ids`.
    TokenInfo {
        /// The endpoint ([`GOOGLE_TOKENINFO`]).
        url: Uri,
        /// Our OAuth client ids.
        client_ids: Vec<String>,
    },
    /// RFC 7662 introspection, authenticated with our client credentials: the token must be
    /// `active`, a bearer token, issued by `issuer` and to `client_id`, for a user.
    Introspection {
        /// The introspection endpoint.
        url: Uri,
        /// The `iss` the answer must name when it names one.
        issuer: String,
        /// Our client id.
        client_id: String,
        /// Our client secret.
        client_secret: SecretString,
    },
    /// JWT access tokens for our own authorization server (its audience), verified offline;
    /// the client they were issued to (`cid` at Okta, `client_id` in RFC 9068) must be
    /// `client_id`.
    Jwt {
        /// Verifies the tokens (issuer, keys, audience, access-token profile).
        verifier: JwtAuthenticator,
        /// Our client id.
        client_id: String,
    },
}

/// Okta settings: the domain, which authorization server, and our client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OktaSettings {
    /// The Okta domain (`dev-123456.okta.com`).
    pub domain: String,
    /// A custom authorization server (`default` for the default one), or `None` for the org
    /// server. ID tokens and access tokens must come from the same one, so that both name a
    /// person with the same issuer.
    pub authorization_server: Option<String>,
    /// Our client id.
    pub client_id: String,
    /// Our client secret: access tokens are then introspected.
    pub client_secret: Option<SecretString>,
    /// The audience of our authorization server's access tokens (`api://default`): without
    /// a secret, JWT access tokens for it are verified offline.
    pub audience: Option<String>,
}

impl OktaSettings {
    /// Okta at `domain` for the client `client_id`, org authorization server, ID tokens only.
    #[must_use]
    pub fn new(domain: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            domain: domain.into(),
            authorization_server: None,
            client_id: client_id.into(),
            client_secret: None,
            audience: None,
        }
    }

    /// Sets the custom authorization server.
    #[must_use]
    pub fn authorization_server(mut self, id: impl Into<String>) -> Self {
        self.authorization_server = Some(id.into());
        self
    }

    /// Sets the client secret (access tokens are introspected).
    #[must_use]
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Sets the audience of JWT access tokens.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

/// One provider: how its ID tokens and access tokens are verified.
#[derive(Debug, Clone)]
pub struct OAuthProvider {
    kind: ProviderKind,
    domain: Option<String>,
    id_tokens: Option<JwtAuthenticator>,
    access_tokens: AccessTokenCheck,
    fetcher: Arc<dyn HttpFetcher>,
    timeout: Duration,
}

fn invalid(text: &str) -> ConfigError {
    ConfigError::Invalid(text.to_owned())
}

fn id_token_verifier(config: IssuerConfig) -> Result<JwtAuthenticator, ConfigError> {
    JwtAuthenticator::builder()
        .issuer(config.profile(TokenProfile::IdToken))
        .build()
}

fn parse_uri(url: &str) -> Result<Uri, ConfigError> {
    url.parse()
        .map_err(|_| ConfigError::Invalid(format!("`{url}` is not a URL")))
}

impl OAuthProvider {
    /// A provider of `kind` whose ID tokens `id_tokens` recognises (verified in the
    /// [`TokenProfile::IdToken`] profile whatever profile the configuration had; its audiences
    /// must be our client ids) and whose access tokens are checked by `access_tokens`, with
    /// HTTP through `options`.
    ///
    /// # Errors
    /// When the verifier cannot be built, or it accepts neither kind of token.
    pub fn new(
        kind: ProviderKind,
        id_tokens: Option<IssuerConfig>,
        access_tokens: AccessTokenCheck,
        options: &ProviderOptions,
    ) -> Result<Self, ConfigError> {
        if id_tokens.is_none() && matches!(access_tokens, AccessTokenCheck::IdTokenRequired) {
            return Err(invalid(
                "a provider must accept ID tokens or have a way to check access tokens",
            ));
        }
        Ok(Self {
            kind,
            domain: None,
            id_tokens: id_tokens.map(id_token_verifier).transpose()?,
            access_tokens,
            fetcher: Arc::clone(&options.fetcher),
            timeout: options.jwks.timeout,
        })
    }

    /// Google: ID tokens for `client_ids` verified offline, access tokens through tokeninfo.
    ///
    /// # Errors
    /// When `client_ids` is empty.
    pub fn google(client_ids: &[&str], options: &ProviderOptions) -> Result<Self, ConfigError> {
        let id_tokens = presets::google(client_ids, options)?;
        let check = AccessTokenCheck::TokenInfo {
            url: parse_uri(GOOGLE_TOKENINFO)?,
            client_ids: client_ids.iter().map(|id| (*id).to_owned()).collect(),
        };
        Self::new(ProviderKind::Google, Some(id_tokens), check, options)
    }

    /// Microsoft Entra ID: ID tokens for `client_id`, from `tenant` (a tenant id) or from any
    /// tenant (`None` or `common`). Access tokens are refused.
    ///
    /// # Errors
    /// When `client_id` is empty or the tenant id is invalid.
    pub fn microsoft(
        client_id: &str,
        tenant: Option<&str>,
        options: &ProviderOptions,
    ) -> Result<Self, ConfigError> {
        let id_tokens = match tenant {
            None | Some("common") => presets::microsoft_multi_tenant(&[client_id], &[], options)?,
            Some(tenant) => presets::microsoft(tenant, &[client_id], options)?,
        };
        Self::new(
            ProviderKind::Microsoft,
            Some(id_tokens),
            AccessTokenCheck::IdTokenRequired,
            options,
        )
    }

    /// Okta at `settings.domain`: ID tokens for our client, access tokens introspected (with a
    /// client secret) or verified as JWTs for our authorization server's audience.
    ///
    /// # Errors
    /// When the domain is not a bare host name or the client id is empty.
    pub fn okta(settings: OktaSettings, options: &ProviderOptions) -> Result<Self, ConfigError> {
        let domain = settings.domain.to_ascii_lowercase();
        let bare = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        if !bare {
            return Err(invalid(
                "an Okta domain is a host name such as dev-123456.okta.com",
            ));
        }
        let server = settings.authorization_server.as_deref();
        let id_tokens = presets::okta(&domain, server, &[settings.client_id.as_str()], options)?;
        let issuer = match server {
            Some(id) => format!("https://{domain}/oauth2/{id}"),
            None => format!("https://{domain}"),
        };
        let check = match (settings.client_secret, settings.audience) {
            (Some(client_secret), _) => AccessTokenCheck::Introspection {
                url: parse_uri(&match server {
                    Some(id) => format!("https://{domain}/oauth2/{id}/v1/introspect"),
                    None => format!("https://{domain}/oauth2/v1/introspect"),
                })?,
                issuer,
                client_id: settings.client_id.clone(),
                client_secret,
            },
            (None, Some(audience)) => AccessTokenCheck::Jwt {
                verifier: JwtAuthenticator::builder()
                    .issuer(presets::okta(
                        &domain,
                        server,
                        &[audience.as_str()],
                        options,
                    )?)
                    .build()?,
                client_id: settings.client_id.clone(),
            },
            (None, None) => AccessTokenCheck::IdTokenRequired,
        };
        Ok(Self::new(ProviderKind::Okta, Some(id_tokens), check, options)?.domain(domain))
    }

    /// Any OpenID provider at `issuer`: its discovery document is read now (its `issuer`
    /// must be `issuer`); ID tokens for `client_id` are verified with its keys, and with
    /// `client_secret` access tokens go to its `introspection_endpoint`.
    ///
    /// # Errors
    /// When the document cannot be fetched or is not the issuer's, or a secret is given and
    /// the document names no introspection endpoint.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: Option<SecretString>,
        options: &ProviderOptions,
    ) -> Result<Self, ConfigError> {
        let id_tokens = presets::discovered(issuer, &[client_id], options)?;
        let check = match client_secret {
            None => AccessTokenCheck::IdTokenRequired,
            Some(client_secret) => {
                let url = parse_uri(&format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                ))?;
                let fetched = tokio::time::timeout(
                    options.jwks.timeout,
                    options.fetcher.get(&url, MAX_ANSWER),
                )
                .await
                .map_err(|_| invalid("the discovery document did not arrive in time"))?
                .map_err(|e| ConfigError::Invalid(format!("discovery document: {e}")))?;
                let document: Map<String, Value> = serde_json::from_slice(&fetched.body)
                    .map_err(|_| invalid("the discovery document is not a JSON object"))?;
                if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err(invalid("the discovery document names another issuer"));
                }
                let endpoint = document
                    .get("introspection_endpoint")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("the provider has no introspection endpoint"))?;
                AccessTokenCheck::Introspection {
                    url: parse_uri(endpoint)?,
                    issuer: issuer.to_owned(),
                    client_id: client_id.to_owned(),
                    client_secret,
                }
            }
        };
        Self::new(ProviderKind::OpenId, Some(id_tokens), check, options)
    }

    /// Files the provider under an Okta domain (what a request's `okta_domain` must equal).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into().to_ascii_lowercase());
        self
    }

    /// Which provider this is.
    #[must_use]
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn verify_id_token(&self, token: &str) -> Result<ExternalIdentity, OAuthError> {
        let Some(verifier) = &self.id_tokens else {
            return Err(OAuthError::AccessTokenRequired);
        };
        let principal = verifier
            .verify(token)
            .await
            .map_err(|e| OAuthError::Rejected(format!("id_token: {e}")))?;
        Ok(self.identity_from_id_token(&principal))
    }

    fn identity_from_id_token(&self, principal: &Principal) -> ExternalIdentity {
        let attribute = |name: &str| principal.attribute(name).and_then(Value::as_str);
        ExternalIdentity {
            provider: self.kind,
            issuer: attribute("iss").unwrap_or_default().to_owned(),
            subject: principal.id().to_owned(),
            email: principal
                .email()
                .filter(|_| verified(principal.attribute("email_verified")))
                .map(str::to_owned),
            name: principal.name().map(str::to_owned),
            preferred_username: attribute("preferred_username").map(str::to_owned),
        }
    }

    async fn post(&self, url: &Uri, form: &FormPost) -> Result<Map<String, Value>, FetchError> {
        let fetched =
            tokio::time::timeout(self.timeout, self.fetcher.post_form(url, form, MAX_ANSWER))
                .await
                .map_err(|_| FetchError::Timeout)??;
        serde_json::from_slice(&fetched.body)
            .map_err(|_| FetchError::InvalidDocument("not a JSON object".into()))
    }

    async fn verify_access_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ExternalIdentity, OAuthError> {
        let token = SecretString::new(token);
        match &self.access_tokens {
            AccessTokenCheck::IdTokenRequired => Err(OAuthError::IdTokenRequired),
            AccessTokenCheck::TokenInfo { url, client_ids } => {
                let form = FormPost::new().field("access_token", token);
                let answer = match self.post(url, &form).await {
                    Ok(answer) => answer,
                    // Google answers 400 for a token it does not know or that expired.
                    Err(FetchError::Status(400)) => {
                        return Err(OAuthError::Rejected(
                            "access_token: unknown to tokeninfo or expired".into(),
                        ));
                    }
                    Err(e) => return Err(OAuthError::Unavailable(format!("tokeninfo: {e}"))),
                };
                tokeninfo_identity(&answer, client_ids, now)
            }
            AccessTokenCheck::Introspection {
                url,
                issuer,
                client_id,
                client_secret,
            } => {
                let form = FormPost::new()
                    .field("token", token)
                    .field("token_type_hint", SecretString::new("access_token"))
                    .basic_auth(client_id.as_str(), client_secret.clone());
                let answer = self
                    .post(url, &form)
                    .await
                    .map_err(|e| OAuthError::Unavailable(format!("introspection: {e}")))?;
                introspection_identity(self.kind, &answer, issuer, client_id, now)
            }
            AccessTokenCheck::Jwt {
                verifier,
                client_id,
            } => {
                let principal = verifier
                    .verify(token.expose())
                    .await
                    .map_err(|e| OAuthError::Rejected(format!("access_token: {e}")))?;
                jwt_access_identity(self.kind, &principal, client_id)
            }
        }
    }
}

/// Whether an `email_verified` claim says yes (a boolean, or the string `"true"` as Google's
/// tokeninfo and some providers write it).
fn verified(claim: Option<&Value>) -> bool {
    match claim {
        Some(Value::Bool(yes)) => *yes,
        Some(Value::String(text)) => text == "true",
        _ => false,
    }
}

fn string<'a>(answer: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    answer
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A number, or a string of digits (tokeninfo writes its numbers as strings).
fn number(answer: &Map<String, Value>, name: &str) -> Option<i64> {
    match answer.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn rejected(text: &str) -> OAuthError {
    OAuthError::Rejected(format!("access_token: {text}"))
}

/// Who a Google tokeninfo answer names, if the token was issued to us.
fn tokeninfo_identity(
    answer: &Map<String, Value>,
    client_ids: &[String],
    now: OffsetDateTime,
) -> Result<ExternalIdentity, OAuthError> {
    if answer.contains_key("error") || answer.contains_key("error_description") {
        return Err(rejected("tokeninfo refused it"));
    }
    let ours = |name: &str| string(answer, name).is_some_and(|v| client_ids.iter().any(|c| c == v));
    if !ours("aud") {
        return Err(rejected("issued to another application (aud)"));
    }
    if answer.contains_key("azp") && !ours("azp") {
        return Err(rejected("issued to another application (azp)"));
    }
    match (number(answer, "exp"), number(answer, "expires_in")) {
        (Some(exp), _) if exp <= now.unix_timestamp() => return Err(rejected("expired")),
        (_, Some(left)) if left <= 0 => return Err(rejected("expired")),
        (None, None) => return Err(rejected("tokeninfo gave no expiry")),
        _ => {}
    }
    let subject = string(answer, "sub")
        .ok_or_else(|| rejected("names no user (was the openid scope asked for?)"))?;
    Ok(ExternalIdentity {
        provider: ProviderKind::Google,
        issuer: GOOGLE_ISSUER.to_owned(),
        subject: subject.to_owned(),
        email: string(answer, "email")
            .filter(|_| verified(answer.get("email_verified")))
            .map(str::to_owned),
        name: None,
        preferred_username: None,
    })
}

/// Who an RFC 7662 answer names, if the token is active, ours and a user's.
fn introspection_identity(
    kind: ProviderKind,
    answer: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    now: OffsetDateTime,
) -> Result<ExternalIdentity, OAuthError> {
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(rejected("not active"));
    }
    if string(answer, "client_id") != Some(client_id) {
        return Err(rejected("issued to another application (client_id)"));
    }
    if let Some(iss) = answer.get("iss")
        && iss.as_str() != Some(issuer)
    {
        return Err(rejected("issued by another issuer"));
    }
    if let Some(kind) = answer.get("token_type")
        && !kind
            .as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
    {
        return Err(rejected("not a bearer access token"));
    }
    if number(answer, "exp").is_some_and(|exp| exp <= now.unix_timestamp()) {
        return Err(rejected("expired"));
    }
    // Okta names the user by login in `sub` and by id in `uid`; its ID tokens use the id.
    let subject = string(answer, "uid")
        .or_else(|| string(answer, "sub"))
        .filter(|sub| *sub != client_id)
        .ok_or_else(|| rejected("a client's token, not a user's"))?;
    Ok(ExternalIdentity {
        provider: kind,
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        email: None,
        name: None,
        preferred_username: string(answer, "username").map(str::to_owned),
    })
}

/// Who a verified JWT access token names, if it was issued to us and to a user.
fn jwt_access_identity(
    kind: ProviderKind,
    principal: &Principal,
    client_id: &str,
) -> Result<ExternalIdentity, OAuthError> {
    let claim = |name: &str| principal.attribute(name).and_then(Value::as_str);
    let client = claim("cid").or_else(|| claim("client_id"));
    if client != Some(client_id) {
        return Err(rejected("issued to another application (cid)"));
    }
    let subject = claim("uid").unwrap_or(principal.id()).to_owned();
    if subject == client_id {
        return Err(rejected("a client's token, not a user's"));
    }
    Ok(ExternalIdentity {
        provider: kind,
        issuer: claim("iss").unwrap_or_default().to_owned(),
        subject,
        email: None,
        name: None,
        preferred_username: None,
    })
}

/// The configured providers.
#[derive(Debug, Clone, Default)]
pub struct OAuthProviders {
    providers: Vec<OAuthProvider>,
}

impl OAuthProviders {
    /// No provider: every OAuth login is refused.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider. Okta providers are told apart by their domain; of the other kinds
    /// the last one added counts.
    #[must_use]
    pub fn with(mut self, provider: OAuthProvider) -> Self {
        self.providers
            .retain(|p| p.kind != provider.kind || p.domain != provider.domain);
        self.providers.push(provider);
        self
    }

    /// Whether any provider is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    fn find(&self, login: &OAuthLogin) -> Result<&OAuthProvider, OAuthError> {
        let kind: ProviderKind = login.provider.parse()?;
        let mut of_kind = self.providers.iter().filter(|p| p.kind == kind);
        if kind != ProviderKind::Okta {
            return of_kind.next().ok_or(OAuthError::NotConfigured(kind));
        }
        let all: Vec<&OAuthProvider> = of_kind.collect();
        match (login.okta_domain.as_deref(), all.as_slice()) {
            (_, []) => Err(OAuthError::NotConfigured(kind)),
            // One configured domain: the request may leave it out.
            (None, [only]) => Ok(only),
            (None, _) => Err(OAuthError::DomainRequired),
            (Some(asked), _) => {
                let asked = asked.trim().to_ascii_lowercase();
                all.into_iter()
                    .find(|p| p.domain.as_deref() == Some(asked.as_str()))
                    .ok_or(OAuthError::DomainNotAllowed)
            }
        }
    }

    /// Who the login's tokens name, checked with the provider it names. When both an ID
    /// token and an access token are sent, both are verified and must name the same person.
    ///
    /// # Errors
    /// [`OAuthError`]: the request names no configured provider or domain, or carries no
    /// token ([`OAuthError::is_client_error`]), a token is refused
    /// ([`OAuthError::Rejected`]), or the provider cannot be reached
    /// ([`OAuthError::Unavailable`]).
    pub async fn verify(
        &self,
        login: &OAuthLogin,
        now: OffsetDateTime,
    ) -> Result<ExternalIdentity, OAuthError> {
        let provider = self.find(login)?;
        let too_long =
            |t: &Option<SecretString>| t.as_ref().is_some_and(|t| t.expose().len() > MAX_TOKEN);
        if too_long(&login.id_token) || too_long(&login.access_token) {
            return Err(OAuthError::Rejected("token longer than 16 KiB".into()));
        }
        // An empty or blank token is no token: it is never sent to a provider.
        let present = |t: &Option<SecretString>| {
            t.as_ref()
                .map(SecretString::expose)
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned)
        };
        let by_id_token = match present(&login.id_token) {
            Some(token) => Some(provider.verify_id_token(&token).await?),
            None => None,
        };
        let by_access_token = match present(&login.access_token) {
            Some(token) => Some(provider.verify_access_token(&token, now).await?),
            None => None,
        };
        match (by_id_token, by_access_token) {
            (None, None) => Err(OAuthError::MissingToken),
            (Some(identity), None) | (None, Some(identity)) => Ok(identity),
            (Some(by_id), Some(by_access)) => {
                if by_id.issuer == by_access.issuer && by_id.subject == by_access.subject {
                    Ok(by_id)
                } else {
                    Err(OAuthError::Rejected(
                        "the id_token and the access_token name different accounts".into(),
                    ))
                }
            }
        }
    }
}

/// What `POST /auth/oauth/login` sends. `Debug` leaves the tokens out.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct OAuthLogin {
    /// `google`, `microsoft`, `okta` or `oidc`.
    pub provider: String,
    /// The provider's access token.
    pub access_token: Option<SecretString>,
    /// The provider's ID token.
    pub id_token: Option<SecretString>,
    /// For Okta: which of the configured domains.
    pub okta_domain: Option<String>,
}

impl fmt::Debug for OAuthLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthLogin")
            .field("provider", &self.provider)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("okta_domain", &self.okta_domain)
            .finish()
    }
}

impl OAuthLogin {
    /// A login with `provider`; add a token with the setters.
    #[must_use]
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            ..Self::default()
        }
    }

    /// Sets the access token.
    #[must_use]
    pub fn access_token(mut self, token: SecretString) -> Self {
        self.access_token = Some(token);
        self
    }

    /// Sets the ID token.
    #[must_use]
    pub fn id_token(mut self, token: SecretString) -> Self {
        self.id_token = Some(token);
        self
    }

    /// Sets the Okta domain.
    #[must_use]
    pub fn okta_domain(mut self, domain: impl Into<String>) -> Self {
        self.okta_domain = Some(domain.into());
        self
    }
}

/// A person at a provider, as a verified token names them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExternalIdentity {
    /// Which provider.
    pub provider: ProviderKind,
    /// Its issuer.
    pub issuer: String,
    /// The person there (`sub`; Okta's user id).
    pub subject: String,
    /// Their email address, only when the provider says it verified it.
    pub email: Option<String>,
    /// Their name.
    pub name: Option<String>,
    /// Their login name there.
    pub preferred_username: Option<String>,
}

/// Why an OAuth login was refused. The `Display` text is what a client may be shown; the
/// precise reason of [`Rejected`](Self::Rejected) goes to the audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The provider is not one of `google`, `microsoft`, `okta`, `oidc`.
    #[error("provider must be one of 'google', 'microsoft', 'okta', 'oidc'")]
    UnknownProvider,
    /// This server has no such provider configured.
    #[error("provider '{0}' is not configured on this server")]
    NotConfigured(ProviderKind),
    /// Several Okta domains are configured and the request named none.
    #[error("okta_domain is required")]
    DomainRequired,
    /// The request's `okta_domain` is not one the server is configured with.
    #[error("okta_domain is not one this server accepts")]
    DomainNotAllowed,
    /// Neither `access_token` nor `id_token` was sent.
    #[error("access_token or id_token is required")]
    MissingToken,
    /// The provider's access tokens cannot be checked here: send its ID token.
    #[error("this provider requires an id_token")]
    IdTokenRequired,
    /// The provider is configured without ID tokens: send its access token.
    #[error("this provider requires an access_token")]
    AccessTokenRequired,
    /// A token is invalid, expired, not issued to us, or not a user's (the text is for the
    /// audit trail, not for the client).
    #[error("OAuth authentication failed")]
    Rejected(String),
    /// The provider could not be asked (503).
    #[error("OAuth provider unavailable")]
    Unavailable(String),
}

impl OAuthError {
    /// Whether the request itself is wrong (422): an unknown or unconfigured provider or
    /// domain, or a missing token.
    #[must_use]
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Rejected(_) | Self::Unavailable(_))
    }

    /// The precise reason, for the audit event.
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            Self::Rejected(why) | Self::Unavailable(why) => why.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    const OURS: &str = "1008719970978-hb24n2dstb40o45d4feuo2ukqmcc6381.apps.googleusercontent.com";

    /// The answer Google documents for an access token of a signed-in user ("Validating an
    /// access token", tokeninfo), with our client id.
    fn google_answer(aud: &str, azp: &str, expires_in: &str) -> Map<String, Value> {
        object(&format!(
            r#"{{"azp": "{azp}", "aud": "{aud}", "sub": "110248495921238986420",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email",
                "exp": "1700003600", "expires_in": "{expires_in}",
                "email": "jane@example.com", "email_verified": "true",
                "access_type": "online"}}"#
        ))
    }

    #[test]
    fn tokeninfo_takes_only_our_tokens() {
        let ours = [OURS.to_owned()];
        let identity =
            tokeninfo_identity(&google_answer(OURS, OURS, "3599"), &ours, now()).unwrap();
        assert_eq!(identity.subject, "110248495921238986420");
        assert_eq!(identity.issuer, GOOGLE_ISSUER);
        assert_eq!(identity.email.as_deref(), Some("jane@example.com"));

        // Another application's token: the substitution the check exists for.
        let other = "407408718192.apps.googleusercontent.com";
        for answer in [
            google_answer(other, other, "3599"),
            google_answer(other, OURS, "3599"),
            google_answer(OURS, other, "3599"),
        ] {
            assert!(matches!(
                tokeninfo_identity(&answer, &ours, now()),
                Err(OAuthError::Rejected(_))
            ));
        }
        assert!(tokeninfo_identity(&google_answer(OURS, OURS, "0"), &ours, now()).is_err());
        let mut expired = google_answer(OURS, OURS, "3599");
        expired.insert("exp".into(), Value::from("1699999999"));
        assert!(tokeninfo_identity(&expired, &ours, now()).is_err());
        let mut no_user = google_answer(OURS, OURS, "3599");
        no_user.remove("sub");
        assert!(tokeninfo_identity(&no_user, &ours, now()).is_err());
        let mut unverified = google_answer(OURS, OURS, "3599");
        unverified.insert("email_verified".into(), Value::from("false"));
        assert_eq!(
            tokeninfo_identity(&unverified, &ours, now()).unwrap().email,
            None
        );
        assert!(
            tokeninfo_identity(
                &object(r#"{"error_description": "Invalid Value"}"#),
                &ours,
                now()
            )
            .is_err()
        );
    }

    /// The answer Okta documents for its introspection endpoint (`uid` is the user id its ID
    /// tokens carry as `sub`).
    #[test]
    fn introspection_takes_only_our_users_tokens() {
        let issuer = "https://dev-123456.okta.com/oauth2/default";
        let answer = |client: &str, sub: &str| {
            object(&format!(
                r#"{{"active": true, "token_type": "Bearer", "scope": "openid profile",
                    "client_id": "{client}", "username": "john.doe@example.com",
                    "exp": 1700003600, "iat": 1699996400, "sub": "{sub}",
                    "aud": "api://default", "iss": "{issuer}", "jti": "AT.7P4KlczBYVcWLkxduEuKeZfeiNYkZIC9uGJ28Cc-YaI",
                    "uid": "00uid4BxXw6I6TV4m0g3"}}"#
            ))
        };
        let ok = introspection_identity(
            ProviderKind::Okta,
            &answer("0oaid4BxXw6I6TV4m0g3", "john.doe@example.com"),
            issuer,
            "0oaid4BxXw6I6TV4m0g3",
            now(),
        )
        .unwrap();
        assert_eq!(ok.subject, "00uid4BxXw6I6TV4m0g3");
        let refused = |answer: Map<String, Value>| {
            introspection_identity(
                ProviderKind::Okta,
                &answer,
                issuer,
                "0oaid4BxXw6I6TV4m0g3",
                now(),
            )
            .is_err()
        };
        assert!(refused(answer("0oaOTHERAPP", "john.doe@example.com")));
        assert!(refused(object(r#"{"active": false}"#)));
        let mut wrong_issuer = answer("0oaid4BxXw6I6TV4m0g3", "x");
        wrong_issuer.insert("iss".into(), Value::from("https://evil.okta.com"));
        assert!(refused(wrong_issuer));
        let mut refresh = answer("0oaid4BxXw6I6TV4m0g3", "x");
        refresh.insert("token_type".into(), Value::from("refresh_token"));
        assert!(refused(refresh));
        let mut machine = answer("0oaid4BxXw6I6TV4m0g3", "0oaid4BxXw6I6TV4m0g3");
        machine.remove("uid");
        assert!(refused(machine));
        let mut expired = answer("0oaid4BxXw6I6TV4m0g3", "x");
        expired.insert("exp".into(), Value::from(1_699_999_999));
        assert!(refused(expired));
    }

    #[test]
    fn provider_names() {
        for kind in [
            ProviderKind::Google,
            ProviderKind::Microsoft,
            ProviderKind::Okta,
            ProviderKind::OpenId,
        ] {
            assert_eq!(kind.name().parse::<ProviderKind>().unwrap(), kind);
        }
        assert_eq!(
            "Google".parse::<ProviderKind>(),
            Err(OAuthError::UnknownProvider)
        );
        let login = OAuthLogin::new("okta").access_token(SecretString::new("secret-token"));
        assert!(!format!("{login:?}").contains("secret-token"));
    }
}
