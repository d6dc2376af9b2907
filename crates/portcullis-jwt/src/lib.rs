//! JWT and OpenID Connect authentication for Portcullis.
//!
//! * [`JwtAuthenticator`] verifies bearer tokens from one or several issuers with every check
//!   of RFC 8725 switched on: the algorithm is bound to the key (never taken from the token),
//!   `exp` is required, `iss`/`aud` are required whenever configured, `typ` is checked per kind
//!   of token, duplicate JSON members and unknown `crit` are refused, and the size is capped
//!   before decoding. The claims become a [`portcullis_core::Principal`].
//! * Keys: HMAC secrets, PEM public keys, JWK/JWKS documents ([`KeySet`]), remote JWKS with a
//!   single-flight cache ([`RemoteJwks`]), OIDC discovery and provider [`presets`] (Google,
//!   Microsoft Entra ID, Okta, Auth0).
//! * [`TokenIssuer`] signs access and service tokens, publishes a JWKS and rotates keys.
//! * All cryptography goes through ring, in a `jsonwebtoken` `CryptoProvider` that Portcullis
//!   calls explicitly ([`install_default`] makes it jsonwebtoken's default too).
//! * [`AmatersJwtConfig`] and [`AetheraJwtSettings`] read the configurations the AmateRS and
//!   Aethera services use.
//!
//! ```
//! use portcullis_jwt::{
//!     Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest,
//! };
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let issuer = TokenIssuer::new("https://auth.example.com", SigningKey::generate("k1", Algorithm::ES256)?)
//!     .audiences(["orders-api"]);
//! let verifier = JwtAuthenticator::builder()
//!     .issuer(IssuerConfig::new(issuer.issuer(), issuer.clone()).audiences(["orders-api"]))
//!     .build()?;
//! let token = issuer.issue(&TokenRequest::access("alice").roles(["admin"]))?;
//! let principal = verifier.verify(token.token.expose()).await?;
//! assert_eq!(principal.id(), "alice");
//! assert!(principal.has_role("admin"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod algorithm;
mod authenticator;
mod claims;
mod config;
mod der;
mod error;
#[cfg(feature = "remote")]
mod hyper_fetcher;
mod issuer;
mod jose;
mod json;
mod keys;
pub mod presets;

pub mod jws {
    //! A compact JWS verified against a [`KeySet`](crate::KeySet) with the same strict parsing
    //! as a token, for signed payloads that are not JWTs (the claims are not read).
    pub use crate::jose::{JoseHeader, VerifiedJws, verify_compact_jws};
}
mod provider;
mod remote;

pub use algorithm::Algorithm;
pub use authenticator::{
    DEFAULT_MAX_TOKEN_BYTES, IssuerConfig, IssuerMatcher, JwtAuthenticator,
    JwtAuthenticatorBuilder, KeyReferencePolicy, KeySource,
};
pub use claims::{ClaimMapping, ClaimPath, MAX_LEEWAY, TokenProfile, TypPolicy, Validation};
pub use config::{AetheraJwtSettings, AmatersJwtConfig, PlaceholderSecrets, is_placeholder_secret};
pub use error::{ConfigError, FetchError, JwtError, KeyError};
#[cfg(feature = "remote")]
pub use hyper_fetcher::HyperFetcher;
pub use issuer::{IssuedToken, SigningKey, TokenIssuer, TokenRequest};
pub use keys::{JwkPolicy, KeySet, MIN_RSA_BITS, VerificationKey, min_hmac_key_len};
pub use provider::install_default;
pub use remote::{FetchedDocument, HttpFetcher, JwksOptions, JwksStatus, RemoteJwks};
