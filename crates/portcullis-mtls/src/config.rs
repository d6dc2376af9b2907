//! The AmateRS `[auth.mtls]` table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::authenticator::{MtlsAuthenticator, MtlsPolicy};
use crate::error::MtlsError;
use crate::identity::IdentitySource;
use crate::store::TrustStore;

fn yes() -> bool {
    true
}

/// AmateRS `[auth.mtls]`: `enabled`, `ca_certs_dir`, `crl_path`, `verify_cn`,
/// `allowed_organizations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmatersMtlsConfig {
    /// Whether client-certificate authentication is on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A directory of trusted CA certificates (or one PEM bundle).
    pub ca_certs_dir: PathBuf,
    /// A PEM file of CRLs.
    #[serde(default)]
    pub crl_path: Option<PathBuf>,
    /// Take the identity from the subject CN (otherwise from the single URI SAN).
    #[serde(default = "yes")]
    pub verify_cn: bool,
    /// Organizations allowed (empty: any).
    #[serde(default)]
    pub allowed_organizations: Vec<String>,
}

impl AmatersMtlsConfig {
    /// The authenticator, with paths relative to `base_dir`.
    pub fn authenticator(&self, base_dir: &Path) -> Result<MtlsAuthenticator, MtlsError> {
        if !self.enabled {
            return Err(MtlsError::Store("[auth.mtls] is not enabled".into()));
        }
        let crl = self.crl_path.as_ref().map(|p| base_dir.join(p));
        let store = TrustStore::from_paths(&base_dir.join(&self.ca_certs_dir), crl.as_deref())?;
        let policy = MtlsPolicy {
            identity: if self.verify_cn {
                IdentitySource::CommonName
            } else {
                IdentitySource::SanUri
            },
            allowed_organizations: self.allowed_organizations.clone(),
            ..MtlsPolicy::default()
        };
        Ok(MtlsAuthenticator::new(Arc::new(store), policy))
    }
}
