//! The AmateRS `[auth.jwt]` table, the Aethera environment, and issuer key rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{Clock, ManualClock};
use portcullis_jwt::{
    AetheraJwtSettings, Algorithm, AmatersJwtConfig, ConfigError, IssuerConfig, JwtAuthenticator,
    JwtError, SigningKey, TokenIssuer, TokenRequest,
};
use time::OffsetDateTime;

const AMATERS: &str = r#"
enabled = true
secret = "k8W2v7qN1pR5tY9zB3xC6mF0hJ4sL8dG"
algorithm = "HS256"
expiration_secs = 3600
issuer = "amaters-server"
audience = "amaters-clients"
"#;

#[tokio::test]
async fn amaters_hs256_round_trip_and_seed_claims() {
    let config: AmatersJwtConfig = toml::from_str(AMATERS).unwrap();
    let verifier = config
        .authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse)
        .unwrap();
    let issuer = config
        .token_issuer(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse)
        .unwrap()
        .unwrap();
    let mut request = TokenRequest::access("user-id").roles(["admin"]);
    request.name = Some("User Name".into());
    request
        .extra
        .insert("custom_field".into(), "custom_value".into());
    let token = issuer.issue(&request).unwrap();
    assert_eq!(
        token.expires_at - token.issued_at,
        time::Duration::seconds(3600)
    );
    let principal = verifier.verify(token.token.expose()).await.unwrap();
    assert_eq!(principal.id(), "user-id");
    assert_eq!(principal.name(), Some("User Name"));
    assert_eq!(principal.roles(), ["admin"]);
    assert_eq!(
        principal.attribute("custom_field"),
        Some(&"custom_value".into())
    );
    // Wrong audience: refused.
    let other = issuer
        .issue(&TokenRequest::access("user-id").audiences(["elsewhere"]))
        .unwrap();
    assert_eq!(
        verifier.verify(other.token.expose()).await.unwrap_err(),
        JwtError::AudienceMismatch
    );
}

#[test]
fn amaters_configuration_errors() {
    let placeholder = AMATERS.replace("k8W2v7qN1pR5tY9zB3xC6mF0hJ4sL8dG", "your-secret-key");
    let config: AmatersJwtConfig = toml::from_str(&placeholder).unwrap();
    assert_eq!(
        config
            .authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse)
            .unwrap_err(),
        ConfigError::PlaceholderSecret
    );
    // --dev: the placeholder passes the placeholder check but is still too short for HS256.
    assert!(matches!(
        config.authenticator(
            Path::new("."),
            portcullis_jwt::PlaceholderSecrets::InsecureAccept
        ),
        Err(ConfigError::Key(_))
    ));
    let short = AMATERS.replace("k8W2v7qN1pR5tY9zB3xC6mF0hJ4sL8dG", "short-and-weak-key");
    let config: AmatersJwtConfig = toml::from_str(&short).unwrap();
    assert!(matches!(
        config.authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse),
        Err(ConfigError::Key(_))
    ));
    let none = AMATERS.replace("HS256", "none");
    let config: AmatersJwtConfig = toml::from_str(&none).unwrap();
    assert!(matches!(
        config.authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse),
        Err(ConfigError::Invalid(_))
    ));
    assert!(toml::from_str::<AmatersJwtConfig>(&format!("{AMATERS}\nsecrte = \"typo\"")).is_err());
    let disabled: AmatersJwtConfig =
        toml::from_str(&AMATERS.replace("enabled = true", "enabled = false")).unwrap();
    assert!(
        disabled
            .authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse)
            .is_err()
    );
    let missing = AMATERS
        .replace(
            "secret = \"k8W2v7qN1pR5tY9zB3xC6mF0hJ4sL8dG\"",
            "public_key_path = \"/nonexistent.pem\"",
        )
        .replace("HS256", "RS256");
    let config: AmatersJwtConfig = toml::from_str(&missing).unwrap();
    assert!(matches!(
        config.authenticator(Path::new("."), portcullis_jwt::PlaceholderSecrets::Refuse),
        Err(ConfigError::Key(_))
    ));
    // The secret is redacted in Debug.
    let config: AmatersJwtConfig = toml::from_str(AMATERS).unwrap();
    assert!(!format!("{config:?}").contains("k8W2v7qN"));
}

#[tokio::test]
async fn aethera_environment() {
    let env = |name: &str| match name {
        "JWT_SECRET_KEY" => Some("Zq3v9mX2pL8nR4tY7wB1cK6dF0gH5jS2".to_owned()),
        "JWT_ALGORITHM" => Some("HS256".to_owned()),
        "ACCESS_TOKEN_EXPIRE_MINUTES" => Some("30".to_owned()),
        "REFRESH_TOKEN_EXPIRE_DAYS" => Some("7".to_owned()),
        _ => None,
    };
    let settings =
        AetheraJwtSettings::from_lookup(env, portcullis_jwt::PlaceholderSecrets::Refuse).unwrap();
    let issuer = settings.token_issuer("aethera").unwrap();
    let token = issuer.issue(&TokenRequest::access("42")).unwrap();
    assert_eq!(
        token.expires_at - token.issued_at,
        time::Duration::minutes(30)
    );
    assert_eq!(
        settings
            .authenticator()
            .unwrap()
            .verify(token.token.expose())
            .await
            .unwrap()
            .id(),
        "42"
    );
    let bad = |name: &str| match name {
        "JWT_SECRET_KEY" => Some("Zq3v9mX2pL8nR4tY7wB1cK6dF0gH5jS2".to_owned()),
        "ACCESS_TOKEN_EXPIRE_MINUTES" => Some("soon".to_owned()),
        _ => None,
    };
    assert!(
        AetheraJwtSettings::from_lookup(bad, portcullis_jwt::PlaceholderSecrets::Refuse).is_err()
    );
}

#[tokio::test]
async fn rotation_publishes_the_previous_key_until_it_retires() {
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let issuer = TokenIssuer::new(
        "https://auth.example",
        SigningKey::generate("k1", Algorithm::EdDSA).unwrap(),
    )
    .audiences(["api"])
    .clock(dyn_clock.clone());
    let verifier = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.example", issuer.clone()).audiences(["api"]))
        .clock(dyn_clock)
        .build()
        .unwrap();
    let old = issuer.issue(&TokenRequest::access("a")).unwrap();
    issuer
        .rotate(
            SigningKey::generate("k2", Algorithm::EdDSA).unwrap(),
            Duration::from_secs(900),
        )
        .unwrap();
    let new = issuer.issue(&TokenRequest::access("a")).unwrap();
    assert_eq!(issuer.current_kid().as_deref(), Some("k2"));
    assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 2);
    assert!(verifier.verify(old.token.expose()).await.is_ok());
    assert!(verifier.verify(new.token.expose()).await.is_ok());
    clock.advance(time::Duration::seconds(901));
    assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 1);
    issuer
        .rotate(
            SigningKey::generate("k3", Algorithm::EdDSA).unwrap(),
            Duration::from_secs(900),
        )
        .unwrap();
    // k1 retired and dropped; k2 now previous; the old token's key is gone.
    assert_eq!(
        verifier.verify(old.token.expose()).await.unwrap_err(),
        JwtError::UnknownKey
    );
    // Symmetric and asymmetric keys cannot be mixed by a rotation.
    assert!(
        issuer
            .rotate(
                SigningKey::generate("h", Algorithm::HS256).unwrap(),
                Duration::from_secs(1)
            )
            .is_err()
    );
    // Reserved claims cannot be smuggled through `extra`.
    let mut request = TokenRequest::access("a");
    request.extra.insert("sub".into(), "admin".into());
    assert!(issuer.issue(&request).is_err());
    // A service token carries client_id and its scopes, and maps to a service principal.
    let service = issuer
        .issue(&TokenRequest::service("billing", "api", ["invoices:write"]))
        .unwrap();
    let principal = verifier.verify(service.token.expose()).await.unwrap();
    assert_eq!(principal.kind(), portcullis_core::PrincipalKind::Service);
    assert_eq!(principal.scopes(), ["invoices:write"]);
}
