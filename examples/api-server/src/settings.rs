//! The Aethera environment variables, read once at start.

use std::net::SocketAddr;

use portcullis::jwt::{AetheraJwtSettings, PlaceholderSecrets};

/// Who is bootstrapped as administrator on first start.
pub(crate) struct Admin {
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) password: portcullis::SecretString,
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
        let cors_origins = lookup("CORS_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            dev,
            database_url: lookup("DATABASE_URL").unwrap_or_else(|| "sqlite://aethera.db".into()),
            listen,
            jwt,
            generated_secret,
            audit_requests: flag(&lookup, "ENABLE_AUDIT_LOGGING")?,
            cors_origins,
            admin,
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
