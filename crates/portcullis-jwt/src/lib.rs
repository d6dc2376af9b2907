#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
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
mod revocation;

pub use algorithm::Algorithm;
pub use authenticator::{
    DEFAULT_MAX_TOKEN_BYTES, IssuerConfig, IssuerMatcher, JwtAuthenticator,
    JwtAuthenticatorBuilder, KeyReferencePolicy, KeySource,
};
pub use claims::{ClaimMapping, ClaimPath, MAX_LEEWAY, TokenProfile, TypPolicy, Validation};
pub use config::{AetheraJwtSettings, AmatersJwtConfig, PlaceholderSecrets, is_placeholder_secret};
pub use error::{ConfigError, FetchError, JwtError, KeyError};
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use hyper_fetcher::HyperFetcher;
pub use issuer::{IssuedToken, SigningKey, TokenIssuer, TokenRequest};
pub use keys::{
    JwkPolicy, KeySet, MAX_KEY_FILE_LEN, MIN_RSA_BITS, VerificationKey, min_hmac_key_len,
};
pub use provider::install_default;
pub use remote::{FetchedDocument, FormPost, HttpFetcher, JwksOptions, JwksStatus, RemoteJwks};
pub use revocation::{RevocationList, RevocationsUnavailable};
