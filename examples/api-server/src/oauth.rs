//! The OAuth providers of `/auth/oauth/login`, built from the `OAUTH_*` settings.

use std::sync::Arc;

use portcullis::identity::{OAuthProvider, OAuthProviders, OktaSettings};
use portcullis::jwt::HyperFetcher;
use portcullis::jwt::presets::ProviderOptions;

use crate::settings::OAuthSettings;

/// Every configured provider (none: every OAuth login is answered 422 "not configured").
/// The generic `oidc` provider reads its discovery document now, so a wrong issuer stops
/// the start rather than every login.
pub(crate) async fn providers(settings: &OAuthSettings) -> Result<OAuthProviders, String> {
    let fetcher = HyperFetcher::new().map_err(|e| format!("HTTP client: {e}"))?;
    let options = ProviderOptions::new(Arc::new(fetcher));
    let mut providers = OAuthProviders::new();
    if !settings.google_client_ids.is_empty() {
        let ids: Vec<&str> = settings
            .google_client_ids
            .iter()
            .map(String::as_str)
            .collect();
        providers = providers.with(
            OAuthProvider::google(&ids, &options)
                .map_err(|e| format!("OAUTH_GOOGLE_CLIENT_ID: {e}"))?,
        );
    }
    if let Some(client_id) = &settings.microsoft_client_id {
        providers = providers.with(
            OAuthProvider::microsoft(client_id, settings.microsoft_tenant.as_deref(), &options)
                .map_err(|e| format!("OAUTH_MICROSOFT_*: {e}"))?,
        );
    }
    if let Some(client_id) = &settings.okta_client_id {
        for domain in &settings.okta_domains {
            let mut okta = OktaSettings::new(domain.as_str(), client_id.as_str());
            if let Some(server) = &settings.okta_authorization_server {
                okta = okta.authorization_server(server.as_str());
            }
            if let Some(secret) = &settings.okta_client_secret {
                okta = okta.client_secret(secret.clone());
            }
            if let Some(audience) = &settings.okta_audience {
                okta = okta.audience(audience.as_str());
            }
            providers = providers.with(
                OAuthProvider::okta(okta, &options)
                    .map_err(|e| format!("OAUTH_OKTA_DOMAIN {domain}: {e}"))?,
            );
        }
    }
    if let Some((issuer, client_id, secret)) = &settings.oidc {
        providers = providers.with(
            OAuthProvider::discover(issuer, client_id, secret.clone(), &options)
                .await
                .map_err(|e| format!("OAUTH_OIDC_ISSUER {issuer}: {e}"))?,
        );
    }
    Ok(providers)
}
