//! The Aethera environment variables, read once at start.

use std::net::SocketAddr;

use portcullis::jwt::{AetheraJwtSettings, PlaceholderSecrets};

/// Who is bootstrapped as administrator on first start.
pub(crate) struct Admin {
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) password: portcullis::SecretString,
}

/// The OAuth providers of `/auth/oauth/login`, from `OAUTH_*` variables. A provider is on
/// when its client id is set: without one a token cannot be checked to be ours.
#[derive(Default)]
pub(crate) struct OAuthSettings {
    /// `OAUTH_GOOGLE_CLIENT_ID` (a comma-separated list for web and mobile clients).
    pub(crate) google_client_ids: Vec<String>,
    /// `OAUTH_MICROSOFT_CLIENT_ID`.
    pub(crate) microsoft_client_id: Option<String>,
    /// `OAUTH_MICROSOFT_TENANT_ID` (any tenant when unset or `common`).
    pub(crate) microsoft_tenant: Option<String>,
    /// `OAUTH_OKTA_DOMAIN` (a comma-separated list: the `okta_domain` a request may name).
    pub(crate) okta_domains: Vec<String>,
    /// `OAUTH_OKTA_CLIENT_ID`.
    pub(crate) okta_client_id: Option<String>,
    /// `OAUTH_OKTA_CLIENT_SECRET`: Okta access tokens are introspected.
    pub(crate) okta_client_secret: Option<portcullis::SecretString>,
    /// `OAUTH_OKTA_AUTHORIZATION_SERVER` (`default`, or unset for the org server).
    pub(crate) okta_authorization_server: Option<String>,
    /// `OAUTH_OKTA_AUDIENCE`: without a secret, JWT access tokens for this audience.
    pub(crate) okta_audience: Option<String>,
    /// `OAUTH_OIDC_ISSUER`, `OAUTH_OIDC_CLIENT_ID`, `OAUTH_OIDC_CLIENT_SECRET`: any OpenID
    /// provider by discovery, as provider `oidc`.
    pub(crate) oidc: Option<(String, String, Option<portcullis::SecretString>)>,
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|list| {
            list.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl OAuthSettings {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let okta_domains = list(lookup("OAUTH_OKTA_DOMAIN"));
        let okta_client_id = set("OAUTH_OKTA_CLIENT_ID");
        if !okta_domains.is_empty() && okta_client_id.is_none() {
            return Err(
                "OAUTH_OKTA_DOMAIN needs OAUTH_OKTA_CLIENT_ID: without our client id an \
                        Okta token cannot be checked to be ours"
                    .into(),
            );
        }
        let oidc = match (set("OAUTH_OIDC_ISSUER"), set("OAUTH_OIDC_CLIENT_ID")) {
            (Some(issuer), Some(client_id)) => Some((
                issuer,
                client_id,
                set("OAUTH_OIDC_CLIENT_SECRET").map(portcullis::SecretString::new),
            )),
            (None, None) => None,
            _ => return Err("OAUTH_OIDC_ISSUER and OAUTH_OIDC_CLIENT_ID go together".into()),
        };
        Ok(Self {
            google_client_ids: list(lookup("OAUTH_GOOGLE_CLIENT_ID")),
            microsoft_client_id: set("OAUTH_MICROSOFT_CLIENT_ID"),
            microsoft_tenant: set("OAUTH_MICROSOFT_TENANT_ID"),
            okta_domains,
            okta_client_id,
            okta_client_secret: set("OAUTH_OKTA_CLIENT_SECRET").map(portcullis::SecretString::new),
            okta_authorization_server: set("OAUTH_OKTA_AUTHORIZATION_SERVER"),
            okta_audience: set("OAUTH_OKTA_AUDIENCE"),
            oidc,
        })
    }
}

pub(crate) struct Settings {
    pub(crate) dev: bool,
    pub(crate) database_url: String,
    pub(crate) listen: SocketAddr,
    pub(crate) jwt: AetheraJwtSettings,
    /// `JWT_SECRET_KEY` was missing and `--dev` made one up (tokens die with the process).
    pub(crate) generated_secret: bool,
    pub(crate) audit_requests: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) admin: Option<Admin>,
    pub(crate) oauth: OAuthSettings,
    /// `DB_ENCRYPTION_KEY`: seals TOTP secrets at rest (without it, enrolment answers 503).
    pub(crate) encryption_key: Option<portcullis::SecretString>,
}

fn flag(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool, String> {
    match lookup(name).as_deref().map(str::trim) {
        None | Some("") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(other) => Err(format!("{name} must be true or false, not {other:?}")),
    }
}

impl Settings {
    /// Reads the settings through `lookup` (the process environment in `main`).
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        dev: bool,
    ) -> Result<Self, String> {
        if !flag(&lookup, "ENABLE_AUTHENTICATION")? {
            return Err(
                "ENABLE_AUTHENTICATION=false is refused: every route but the public \
                        ones needs a principal, and Portcullis never serves them without one"
                    .into(),
            );
        }
        let placeholders = if dev {
            PlaceholderSecrets::InsecureAccept
        } else {
            PlaceholderSecrets::Refuse
        };
        let (jwt, generated_secret) = match lookup("JWT_SECRET_KEY") {
            Some(_) => (
                AetheraJwtSettings::from_lookup(&lookup, placeholders).map_err(|e| {
                    format!("{e} (JWT_SECRET_KEY: use 32 random bytes or more; --dev accepts the sample's)")
                })?,
                false,
            ),
            None if dev => {
                let secret = random_secret()?;
                let with_secret = |name: &str| {
                    if name == "JWT_SECRET_KEY" {
                        Some(secret.clone())
                    } else {
                        lookup(name)
                    }
                };
                (
                    AetheraJwtSettings::from_lookup(with_secret, placeholders)
                        .map_err(|e| e.to_string())?,
                    true,
                )
            }
            None => {
                return Err("JWT_SECRET_KEY is not set (or pass --dev for a throwaway one)".into());
            }
        };
        if jwt.secret.expose().len() < 32 && !dev {
            return Err("JWT_SECRET_KEY must be at least 32 bytes".into());
        }
        let host = lookup("HOST").unwrap_or_else(|| "127.0.0.1".into());
        let port = lookup("PORT").unwrap_or_else(|| "8000".into());
        let listen = format!("{host}:{port}")
            .parse::<SocketAddr>()
            .map_err(|_| format!("HOST/PORT {host}:{port} is not an address"))?;
        let admin = lookup("ADMIN_PASSWORD").map(|password| Admin {
            username: lookup("ADMIN_USERNAME").unwrap_or_else(|| "admin".into()),
            email: lookup("ADMIN_EMAIL").unwrap_or_else(|| "admin@example.com".into()),
            password: portcullis::SecretString::new(password),
        });
        let cors_origins = list(lookup("CORS_ORIGINS"));
        let oauth = OAuthSettings::from_lookup(&lookup)?;
        Ok(Self {
            dev,
            database_url: lookup("DATABASE_URL").unwrap_or_else(|| "sqlite://aethera.db".into()),
            listen,
            jwt,
            generated_secret,
            audit_requests: flag(&lookup, "ENABLE_AUDIT_LOGGING")?,
            cors_origins,
            admin,
            oauth,
            encryption_key: lookup("DB_ENCRYPTION_KEY").map(portcullis::SecretString::new),
        })
    }
}

fn random_secret() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random generator failed".to_owned())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_placeholder_secret_is_refused_outside_development() {
        let sample = [("JWT_SECRET_KEY", "your-secret-key-here")];
        assert!(Settings::from_lookup(env(&sample), false).is_err());
        assert!(Settings::from_lookup(env(&sample), true).is_ok());
        assert!(Settings::from_lookup(env(&[]), false).is_err());
        let dev = Settings::from_lookup(env(&[]), true).unwrap();
        assert!(dev.generated_secret);
        assert_eq!(dev.database_url, "sqlite://aethera.db");
        assert_eq!(dev.listen.port(), 8000);
    }

    #[test]
    fn flags_and_numbers_are_strict() {
        let secret = ("JWT_SECRET_KEY", "Zq3v9mX2pL8nR4tY7wB1cK6dF0gH5jS-abc");
        assert!(
            Settings::from_lookup(env(&[secret, ("ENABLE_AUTHENTICATION", "false")]), true)
                .is_err()
        );
        assert!(
            Settings::from_lookup(env(&[secret, ("ENABLE_AUDIT_LOGGING", "maybe")]), false)
                .is_err()
        );
        assert!(
            Settings::from_lookup(env(&[secret, ("ACCESS_TOKEN_EXPIRE_MINUTES", "-5")]), false)
                .is_err()
        );
        assert!(
            Settings::from_lookup(
                env(&[secret, ("OAUTH_OKTA_DOMAIN", "dev-1.okta.com")]),
                false
            )
            .is_err(),
            "an Okta domain without our client id"
        );
        let okta = Settings::from_lookup(
            env(&[
                secret,
                ("OAUTH_OKTA_DOMAIN", "dev-1.okta.com, dev-2.okta.com"),
                ("OAUTH_OKTA_CLIENT_ID", "0oa1"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(
            okta.oauth.okta_domains,
            ["dev-1.okta.com", "dev-2.okta.com"]
        );
        assert!(
            Settings::from_lookup(
                env(&[secret, ("OAUTH_OIDC_ISSUER", "https://op.example")]),
                false
            )
            .is_err()
        );
        let off = Settings::from_lookup(env(&[secret, ("ENABLE_AUDIT_LOGGING", "false")]), false)
            .unwrap();
        assert!(!off.audit_requests);
        assert!(
            Settings::from_lookup(
                env(&[("JWT_SECRET_KEY", "short-but-not-placeholder")]),
                false
            )
            .is_err()
        );
    }
}
