#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod authenticator;
mod config;
mod error;
pub mod forwarded;
mod identity;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
mod store;

pub use authenticator::{
    EkuPolicy, MtlsAuthenticator, MtlsPolicy, RevocationDepth, RoleSource, UnknownStatus,
    certificate_facts,
};
pub use config::{AmatersMtlsConfig, AmatersNetworkConfig};
pub use error::MtlsError;
pub use identity::{IdentitySource, SpiffeId};
pub use store::{MAX_TRUST_FILE_LEN, TrustMaterial, TrustStore};

/// The certificate and key types of the public API (and their PEM parsing).
pub use rustls_pki_types;
