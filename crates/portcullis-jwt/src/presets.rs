//! OpenID providers: Google, Microsoft Entra ID (single- and multi-tenant), Okta, Auth0, and
//! any issuer by discovery. Each preset knows the provider's issuer and JWKS URL, so tokens
//! are verified from the cached key set with no network call per request.

use std::sync::Arc;

use portcullis_core::{AuthMethod, Metrics};

use crate::authenticator::{IssuerConfig, IssuerMatcher};
use crate::claims::{ClaimMapping, ClaimPath, TokenProfile};
use crate::error::{ConfigError, FetchError};
use crate::remote::{HttpFetcher, JwksOptions, RemoteJwks};

fn fetch_error(e: FetchError) -> ConfigError {
    ConfigError::Invalid(e.to_string())
}

fn oidc_mapping(roles: &str, tenant: Option<&str>) -> ClaimMapping {
    ClaimMapping {
        roles: ClaimPath::new(roles),
        tenant: tenant.map(ClaimPath::new),
        auth_method: AuthMethod::Oidc,
        ..ClaimMapping::default()
    }
}

fn no_audience() -> ConfigError {
    ConfigError::Invalid("an OpenID provider needs at least one audience (your client id)".into())
}

/// Where a preset fetches from and with which settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderOptions {
    /// The HTTP client.
    pub fetcher: Arc<dyn HttpFetcher>,
    /// Cache settings.
    pub jwks: JwksOptions,
    /// Told of every JWKS and discovery fetch.
    pub metrics: Option<Arc<dyn Metrics>>,
}

/// Setters, one per field; each returns the changed value.
impl ProviderOptions {
    /// Sets [`fetcher`](Self::fetcher).
    #[must_use]
    pub fn fetcher(mut self, fetcher: Arc<dyn HttpFetcher>) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Sets [`jwks`](Self::jwks).
    #[must_use]
    pub fn jwks(mut self, jwks: JwksOptions) -> Self {
        self.jwks = jwks;
        self
    }

    /// Counts the fetches of the key sets made with these options.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn counted(&self, remote: RemoteJwks) -> RemoteJwks {
        match &self.metrics {
            Some(metrics) => remote.with_metrics(Arc::clone(metrics)),
            None => remote,
        }
    }
}

impl ProviderOptions {
    /// Default cache settings with this client.
    #[must_use]
    pub fn new(fetcher: Arc<dyn HttpFetcher>) -> Self {
        Self {
            fetcher,
            jwks: JwksOptions::default(),
            metrics: None,
        }
    }

    fn remote(&self, jwks_uri: &str) -> Result<RemoteJwks, ConfigError> {
        RemoteJwks::new(jwks_uri, Arc::clone(&self.fetcher), self.jwks.clone())
            .map(|remote| self.counted(remote))
            .map_err(fetch_error)
    }
}

fn audiences(list: &[&str]) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() {
        return Err(no_audience());
    }
    Ok(list.iter().map(|s| (*s).to_owned()).collect())
}

/// Google ID tokens (`iss` is `https://accounts.google.com` or `accounts.google.com`; `aud` is
/// your OAuth client id), in the [`TokenProfile::IdToken`] profile: Google's access tokens are
/// opaque, so what a Google-signed JWT proves is a sign-in.
pub fn google(client_ids: &[&str], options: &ProviderOptions) -> Result<IssuerConfig, ConfigError> {
    let matcher = IssuerMatcher::Exact(vec![
        "https://accounts.google.com".into(),
        "accounts.google.com".into(),
    ]);
    Ok(IssuerConfig::with_matcher(
        matcher,
        options.remote("https://www.googleapis.com/oauth2/v3/certs")?,
    )
    .audiences(audiences(client_ids)?)
    .profile(TokenProfile::IdToken)
    .mapping(oidc_mapping("roles", Some("hd"))))
}

/// Microsoft Entra ID v2 access tokens for one tenant ([`TokenProfile::MicrosoftAccessToken`]:
/// `ver` and `scp` or `roles` required, ID tokens of a sign-in refused).
pub fn microsoft(
    tenant_id: &str,
    audiences_list: &[&str],
    options: &ProviderOptions,
) -> Result<IssuerConfig, ConfigError> {
    if tenant_id.is_empty() || tenant_id.contains('/') {
        return Err(ConfigError::Invalid("invalid tenant id".into()));
    }
    let issuer = format!("https://login.microsoftonline.com/{tenant_id}/v2.0");
    let jwks = format!("https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys");
    Ok(IssuerConfig::new(issuer, options.remote(&jwks)?)
        .audiences(audiences(audiences_list)?)
        .profile(TokenProfile::MicrosoftAccessToken)
        .mapping(oidc_mapping("roles", Some("tid"))))
}

/// Microsoft Entra ID v2 access tokens from any tenant (or only `allowed_tenants` when not
/// empty), in the [`TokenProfile::MicrosoftAccessToken`] profile:
/// the `{tenantid}` in `https://login.microsoftonline.com/{tenantid}/v2.0` must equal the
/// token's `tid`.
pub fn microsoft_multi_tenant(
    audiences_list: &[&str],
    allowed_tenants: &[&str],
    options: &ProviderOptions,
) -> Result<IssuerConfig, ConfigError> {
    let mut matcher =
        IssuerMatcher::template("https://login.microsoftonline.com/{tenantid}/v2.0", "tid")?;
    if let IssuerMatcher::Template {
        allowed_tenants: allowed,
        ..
    } = &mut matcher
    {
        *allowed = allowed_tenants.iter().map(|t| (*t).to_owned()).collect();
    }
    let jwks = options.remote("https://login.microsoftonline.com/common/discovery/v2.0/keys")?;
    Ok(IssuerConfig::with_matcher(matcher, jwks)
        .audiences(audiences(audiences_list)?)
        .profile(TokenProfile::MicrosoftAccessToken)
        .mapping(oidc_mapping("roles", Some("tid"))))
}

/// Okta: the org authorization server (`authorization_server = None`, issuer
/// `https://{domain}`) or a custom one (issuer `https://{domain}/oauth2/{id}`, `default` for the
/// default server). Roles come from the `groups` claim. Access tokens, in the
/// [`TokenProfile::OktaAccessToken`] profile (`cid` and `scp` required).
pub fn okta(
    domain: &str,
    authorization_server: Option<&str>,
    audiences_list: &[&str],
    options: &ProviderOptions,
) -> Result<IssuerConfig, ConfigError> {
    let (issuer, jwks) = match authorization_server {
        Some(id) => (
            format!("https://{domain}/oauth2/{id}"),
            format!("https://{domain}/oauth2/{id}/v1/keys"),
        ),
        None => (
            format!("https://{domain}"),
            format!("https://{domain}/oauth2/v1/keys"),
        ),
    };
    Ok(IssuerConfig::new(issuer, options.remote(&jwks)?)
        .audiences(audiences(audiences_list)?)
        .profile(TokenProfile::OktaAccessToken)
        .mapping(oidc_mapping("groups", None)))
}

/// Auth0 (`iss` is `https://{domain}/` with the trailing slash). `roles_claim` is your
/// namespaced roles claim (for example `https://example.com/roles`). Access tokens, in the
/// [`TokenProfile::Auth0AccessToken`] profile (`azp` required, ID tokens refused).
pub fn auth0(
    domain: &str,
    audiences_list: &[&str],
    roles_claim: &str,
    options: &ProviderOptions,
) -> Result<IssuerConfig, ConfigError> {
    let issuer = format!("https://{domain}/");
    let jwks = format!("https://{domain}/.well-known/jwks.json");
    Ok(IssuerConfig::new(issuer, options.remote(&jwks)?)
        .audiences(audiences(audiences_list)?)
        .profile(TokenProfile::Auth0AccessToken)
        .mapping(oidc_mapping(roles_claim, Some("org_id"))))
}

/// Any OpenID provider, by discovery of `{issuer}/.well-known/openid-configuration` on the
/// first token (the document's `issuer` must equal `issuer`), accepting RFC 9068 access
/// tokens ([`TokenProfile::AccessToken`]); call `.profile(TokenProfile::IdToken)` on the
/// result to accept ID tokens instead. The algorithms are those the document lists
/// (`id_token_signing_alg_values_supported`) unless set with [`IssuerConfig::algorithms`].
pub fn discovered(
    issuer: &str,
    audiences_list: &[&str],
    options: &ProviderOptions,
) -> Result<IssuerConfig, ConfigError> {
    let remote = RemoteJwks::discover(issuer, Arc::clone(&options.fetcher), options.jwks.clone())
        .map(|remote| options.counted(remote))
        .map_err(fetch_error)?;
    Ok(IssuerConfig::new(issuer, remote)
        .audiences(audiences(audiences_list)?)
        .profile(TokenProfile::AccessToken)
        .mapping(oidc_mapping("roles", None)))
}
