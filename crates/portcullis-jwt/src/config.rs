//! Configuration compatible with the AmateRS `[auth.jwt]` table and the Aethera environment
//! variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::Algorithm;
use portcullis_core::{Clock, SecretString};
use serde::Deserialize;

use crate::authenticator::{IssuerConfig, IssuerMatcher, JwtAuthenticator, KeySource};
use crate::claims::Validation;
use crate::error::{ConfigError, KeyError};
use crate::issuer::{SigningKey, TokenIssuer};
use crate::keys::{KeySet, VerificationKey};

/// Secrets that appear in documentation and sample files. A service configured with one of
/// them (or anything containing `change-me`, `changeme`, `your-secret` or `placeholder`)
/// refuses to start unless the caller explicitly allows it for development.
const PLACEHOLDERS: [&str; 8] = [
    "your-secret-key",
    "your-secret-key-here",
    "secret",
    "changeit",
    "password",
    "jwt-secret",
    "supersecret",
    "dev-secret",
];

/// Whether a placeholder secret (one of the sample files', see [`is_placeholder_secret`]) is
/// accepted. Only development may accept one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaceholderSecrets {
    /// A placeholder secret is a configuration error (the default).
    #[default]
    Refuse,
    /// A placeholder secret is accepted: development only (the example servers' `--dev`).
    InsecureAccept,
}

/// Whether a secret is a well-known placeholder.
#[must_use]
pub fn is_placeholder_secret(secret: &str) -> bool {
    let lower = secret.trim().to_ascii_lowercase();
    PLACEHOLDERS.contains(&lower.as_str())
        || [
            "change-me",
            "changeme",
            "change_me",
            "your-secret",
            "placeholder",
            "dev-only",
        ]
        .iter()
        .any(|marker| lower.contains(marker))
}

fn default_true() -> bool {
    true
}

fn default_algorithm() -> String {
    "HS256".into()
}

fn default_expiration() -> u64 {
    3600
}

/// The AmateRS `[auth.jwt]` table, plus optional additions (`private_key_path`, `kid`,
/// `leeway_secs`, `roles_claim`).
///
/// ```
/// let config: portcullis_jwt::AmatersJwtConfig = toml::from_str(r#"
///     enabled = true
///     secret = "4f1c0b7e9a2d8c3b6e5f1a0d9c8b7a6e5d4c3b2a"
///     algorithm = "HS256"
///     expiration_secs = 3600
///     issuer = "amaters-server"
///     audience = "amaters-clients"
/// "#)?;
/// use portcullis_jwt::PlaceholderSecrets;
/// let authenticator = config.authenticator(std::path::Path::new("."), PlaceholderSecrets::Refuse)?;
/// let issuer = config.token_issuer(std::path::Path::new("."), PlaceholderSecrets::Refuse)?;
/// assert!(issuer.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AmatersJwtConfig {
    /// Whether JWT authentication is on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The HMAC secret (HS256/384/512).
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// A PEM public key (RS/PS/ES/EdDSA), relative to the config file's directory.
    #[serde(default)]
    pub public_key_path: Option<PathBuf>,
    /// A PEM private key to issue tokens with (addition).
    #[serde(default)]
    pub private_key_path: Option<PathBuf>,
    /// The algorithm (default HS256).
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Lifetime of issued tokens, in seconds (default 3600).
    #[serde(default = "default_expiration")]
    pub expiration_secs: u64,
    /// `iss` required in tokens (and written into issued ones).
    #[serde(default)]
    pub issuer: Option<String>,
    /// `aud` required in tokens (and written into issued ones).
    #[serde(default)]
    pub audience: Option<String>,
    /// Key id for issued tokens (addition; tokens without `kid` are accepted either way).
    #[serde(default)]
    pub kid: Option<String>,
    /// Clock-skew leeway in seconds (addition; default 30, at most 300).
    #[serde(default)]
    pub leeway_secs: Option<u64>,
    /// Where the roles are in the claims (addition; default `roles`).
    #[serde(default)]
    pub roles_claim: Option<String>,
}

/// Setters, one per field; each returns the changed value.
impl AmatersJwtConfig {
    /// Sets [`enabled`](Self::enabled).
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets [`secret`](Self::secret).
    #[must_use]
    pub fn secret(mut self, secret: Option<SecretString>) -> Self {
        self.secret = secret;
        self
    }

    /// Sets [`public_key_path`](Self::public_key_path).
    #[must_use]
    pub fn public_key_path(mut self, public_key_path: Option<PathBuf>) -> Self {
        self.public_key_path = public_key_path;
        self
    }

    /// Sets [`private_key_path`](Self::private_key_path).
    #[must_use]
    pub fn private_key_path(mut self, private_key_path: Option<PathBuf>) -> Self {
        self.private_key_path = private_key_path;
        self
    }

    /// Sets [`algorithm`](Self::algorithm).
    #[must_use]
    pub fn algorithm(mut self, algorithm: String) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets [`expiration_secs`](Self::expiration_secs).
    #[must_use]
    pub fn expiration_secs(mut self, expiration_secs: u64) -> Self {
        self.expiration_secs = expiration_secs;
        self
    }

    /// Sets [`issuer`](Self::issuer).
    #[must_use]
    pub fn issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Sets [`audience`](Self::audience).
    #[must_use]
    pub fn audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// Sets [`kid`](Self::kid).
    #[must_use]
    pub fn kid(mut self, kid: Option<String>) -> Self {
        self.kid = kid;
        self
    }

    /// Sets [`leeway_secs`](Self::leeway_secs).
    #[must_use]
    pub fn leeway_secs(mut self, leeway_secs: Option<u64>) -> Self {
        self.leeway_secs = leeway_secs;
        self
    }

    /// Sets [`roles_claim`](Self::roles_claim).
    #[must_use]
    pub fn roles_claim(mut self, roles_claim: Option<String>) -> Self {
        self.roles_claim = roles_claim;
        self
    }
}

impl Default for AmatersJwtConfig {
    /// Enabled, HS256, tokens of one hour, no key yet.
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
            public_key_path: None,
            private_key_path: None,
            algorithm: default_algorithm(),
            expiration_secs: default_expiration(),
            issuer: None,
            audience: None,
            kid: None,
            leeway_secs: None,
            roles_claim: None,
        }
    }
}

impl AmatersJwtConfig {
    fn parsed_algorithm(&self) -> Result<Algorithm, ConfigError> {
        self.algorithm.parse::<Algorithm>().map_err(|_| {
            ConfigError::Invalid(format!("unsupported algorithm {:?}", self.algorithm))
        })
    }

    fn checked_secret(
        &self,
        placeholders: PlaceholderSecrets,
    ) -> Result<Option<&[u8]>, ConfigError> {
        match &self.secret {
            None => Ok(None),
            Some(secret)
                if is_placeholder_secret(secret.expose())
                    && placeholders == PlaceholderSecrets::Refuse =>
            {
                Err(ConfigError::PlaceholderSecret)
            }
            Some(secret) => Ok(Some(secret.expose().as_bytes())),
        }
    }

    fn read(base: &Path, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let full = base.join(path);
        portcullis_core::read_bounded(&full, crate::keys::MAX_KEY_FILE_LEN).map_err(|e| {
            ConfigError::Key(KeyError::Io {
                path: full.display().to_string(),
                message: e.to_string(),
            })
        })
    }

    /// The verifier; `placeholders` says whether a placeholder secret is accepted.
    pub fn authenticator(
        &self,
        base_dir: &Path,
        placeholders: PlaceholderSecrets,
    ) -> Result<JwtAuthenticator, ConfigError> {
        self.authenticator_with_clock(base_dir, placeholders, None)
    }

    /// [`AmatersJwtConfig::authenticator`] with another clock (tests).
    pub fn authenticator_with_clock(
        &self,
        base_dir: &Path,
        placeholders: PlaceholderSecrets,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<JwtAuthenticator, ConfigError> {
        if !self.enabled {
            return Err(ConfigError::Invalid("[auth.jwt] is not enabled".into()));
        }
        let alg = self.parsed_algorithm()?;
        let mut keys = Vec::new();
        if let Some(secret) = self.checked_secret(placeholders)? {
            // Both forms verify: tokens from other AmateRS components carry no kid, ours do.
            keys.push(VerificationKey::hmac(alg, secret)?);
            if let Some(kid) = &self.kid {
                keys.push(VerificationKey::hmac(alg, secret)?.with_kid(kid));
            }
        } else if let Some(path) = &self.public_key_path {
            let pem = Self::read(base_dir, path)?;
            keys.push(VerificationKey::from_pem(alg, &pem)?);
        } else {
            return Err(ConfigError::Invalid(
                "[auth.jwt] needs secret or public_key_path".into(),
            ));
        }
        let keys = KeySource::from(KeySet::new(keys)?);
        let matcher = match &self.issuer {
            Some(issuer) => IssuerMatcher::Exact(vec![issuer.clone()]),
            None => IssuerMatcher::Unchecked,
        };
        let mut validation = Validation::default();
        if let Some(audience) = &self.audience {
            validation = validation.audiences([audience.clone()]);
        }
        if let Some(leeway) = self.leeway_secs {
            validation = validation.leeway(Duration::from_secs(leeway))?;
        }
        let mut issuer = IssuerConfig::with_matcher(matcher, keys).validation(validation);
        if let Some(roles) = &self.roles_claim {
            issuer = issuer.mapping(crate::ClaimMapping {
                roles: crate::ClaimPath::new(roles.clone()),
                ..crate::ClaimMapping::default()
            });
        }
        let mut builder = JwtAuthenticator::builder().issuer(issuer);
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        builder.build()
    }

    /// The issuer for this configuration: with the secret (HS*) or `private_key_path`.
    /// `None` when only a public key is configured.
    pub fn token_issuer(
        &self,
        base_dir: &Path,
        placeholders: PlaceholderSecrets,
    ) -> Result<Option<TokenIssuer>, ConfigError> {
        let alg = self.parsed_algorithm()?;
        let key = if let Some(secret) = self.checked_secret(placeholders)? {
            SigningKey::hmac(self.kid.as_deref(), alg, secret)?
        } else if let Some(path) = &self.private_key_path {
            SigningKey::from_pem(self.kid.as_deref(), alg, &Self::read(base_dir, path)?)?
        } else {
            return Ok(None);
        };
        let issuer = TokenIssuer::new(self.issuer.clone().unwrap_or_default(), key)
            .audiences(self.audience.iter().cloned())
            .access_ttl(Duration::from_secs(self.expiration_secs));
        Ok(Some(issuer))
    }
}

/// The Aethera settings: `JWT_SECRET_KEY`, `JWT_ALGORITHM`, `ACCESS_TOKEN_EXPIRE_MINUTES`,
/// `REFRESH_TOKEN_EXPIRE_DAYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AetheraJwtSettings {
    /// `JWT_SECRET_KEY`.
    pub secret: SecretString,
    /// `JWT_ALGORITHM` (default HS256).
    pub algorithm: Algorithm,
    /// `ACCESS_TOKEN_EXPIRE_MINUTES` (default 30).
    pub access_ttl: Duration,
    /// `REFRESH_TOKEN_EXPIRE_DAYS` (default 7).
    pub refresh_ttl: Duration,
}

impl AetheraJwtSettings {
    /// Reads the variables from the process environment.
    pub fn from_env(placeholders: PlaceholderSecrets) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), placeholders)
    }

    /// Reads the variables through `lookup` (for tests and other sources).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        placeholders: PlaceholderSecrets,
    ) -> Result<Self, ConfigError> {
        let secret = lookup("JWT_SECRET_KEY")
            .ok_or_else(|| ConfigError::Invalid("JWT_SECRET_KEY is not set".into()))?;
        if is_placeholder_secret(&secret) && placeholders == PlaceholderSecrets::Refuse {
            return Err(ConfigError::PlaceholderSecret);
        }
        let algorithm = match lookup("JWT_ALGORITHM") {
            Some(name) => name
                .parse::<Algorithm>()
                .map_err(|_| ConfigError::Invalid(format!("unsupported JWT_ALGORITHM {name:?}")))?,
            None => Algorithm::HS256,
        };
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!("{name} must be a positive integer"))
                    }),
            }
        };
        let minutes = number("ACCESS_TOKEN_EXPIRE_MINUTES", 30)?;
        let days = number("REFRESH_TOKEN_EXPIRE_DAYS", 7)?;
        Ok(Self {
            secret: SecretString::new(secret),
            algorithm,
            access_ttl: Duration::from_secs(minutes.saturating_mul(60)),
            refresh_ttl: Duration::from_secs(days.saturating_mul(86_400)),
        })
    }

    /// An issuer signing with the secret.
    pub fn token_issuer(&self, issuer: &str) -> Result<TokenIssuer, ConfigError> {
        let key = SigningKey::hmac(None, self.algorithm, self.secret.expose().as_bytes())?;
        Ok(TokenIssuer::new(issuer, key).access_ttl(self.access_ttl))
    }

    /// A verifier for tokens signed with the secret (no `iss` check: Aethera's tokens carry
    /// none).
    pub fn authenticator(&self) -> Result<JwtAuthenticator, ConfigError> {
        let key = VerificationKey::hmac(self.algorithm, self.secret.expose().as_bytes())?;
        JwtAuthenticator::builder()
            .issuer(IssuerConfig::with_matcher(IssuerMatcher::Unchecked, key))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised() {
        assert!(is_placeholder_secret("your-secret-key"));
        assert!(is_placeholder_secret("your-secret-key-here"));
        assert!(is_placeholder_secret(
            "dev-only-secret-change-me-0123456789abcdef"
        ));
        assert!(!is_placeholder_secret("Zq3v9mX2pL8nR4tY7wB1cK6dF0gH5jS"));
    }

    #[test]
    fn aethera_defaults_and_errors() {
        let env = |name: &str| match name {
            "JWT_SECRET_KEY" => Some("0123456789abcdef0123456789abcdefXYZ".to_owned()),
            _ => None,
        };
        let settings = AetheraJwtSettings::from_lookup(env, PlaceholderSecrets::Refuse).unwrap();
        assert_eq!(settings.access_ttl, Duration::from_secs(1800));
        assert_eq!(settings.refresh_ttl, Duration::from_secs(7 * 86_400));
        let bad = |name: &str| match name {
            "JWT_SECRET_KEY" => Some("your-secret-key-here".to_owned()),
            _ => None,
        };
        assert_eq!(
            AetheraJwtSettings::from_lookup(bad, PlaceholderSecrets::Refuse),
            Err(ConfigError::PlaceholderSecret)
        );
    }
}
