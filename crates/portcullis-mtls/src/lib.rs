//! Client-certificate (mTLS) authentication for Portcullis.
//!
//! * [`TrustStore`]: trust anchors (a PEM bundle or every certificate of a directory, the
//!   AmateRS `ca_certs_dir`) and CRLs (AmateRS `crl_path`), swapped atomically at run time
//!   with [`TrustStore::reload`] or [`TrustStore::set_crls`]; the next verification uses the
//!   new set, none sees half of it.
//! * [`MtlsAuthenticator`]: verifies the peer chain (request extension
//!   [`PeerCertificates`](portcullis_core::PeerCertificates)) with rustls-webpki on ring: the
//!   `clientAuth` EKU is required by default (webpki's "required if present" is an explicit
//!   opt-in), CRLs with expired CRLs refused (`ExpirationPolicy::Enforce`), configurable
//!   check depth and unknown-status policy, chain length and size bounded before parsing.
//! * Identity from the CN, a SAN (email, DNS, URI) or a SPIFFE ID, chosen by configuration
//!   and matched exactly (a CN `alice,O=admin` is that whole string; the DN is never parsed
//!   from text); `allowed_organizations` checks the subject's O attributes; roles from a
//!   table or from the OUs. The principal records serial, issuer, fingerprint and expiry.
//! * [`forwarded`]: a client certificate forwarded by a trusted TLS terminator (nginx
//!   `$ssl_client_escaped_cert`, Envoy `x-forwarded-client-cert`), accepted only from
//!   configured proxy addresses.
//! * [`AmatersMtlsConfig`]: the AmateRS `[auth.mtls]` table.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod authenticator;
mod config;
mod error;
pub mod forwarded;
mod identity;
#[cfg(feature = "server")]
pub mod server;
mod store;

pub use authenticator::{
    EkuPolicy, MtlsAuthenticator, MtlsPolicy, RevocationDepth, RoleSource, UnknownStatus,
    certificate_facts,
};
pub use config::{AmatersMtlsConfig, AmatersNetworkConfig};
pub use error::MtlsError;
pub use identity::{IdentitySource, SpiffeId};
pub use store::{TrustMaterial, TrustStore};

/// The certificate and key types of the public API (and their PEM parsing).
pub use rustls_pki_types;
