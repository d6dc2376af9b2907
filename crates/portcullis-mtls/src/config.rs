//! The AmateRS `[auth.mtls]` table.

use std::collections::HashMap;
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
#[non_exhaustive]
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
    /// Roles per identity (addition; exact match). Without an entry, the RBAC default role
    /// applies.
    #[serde(default)]
    pub roles: HashMap<String, Vec<String>>,
}

/// Setters, one per field; each returns the changed value.
impl AmatersMtlsConfig {
    /// Sets [`enabled`](Self::enabled).
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets [`ca_certs_dir`](Self::ca_certs_dir).
    #[must_use]
    pub fn ca_certs_dir(mut self, ca_certs_dir: PathBuf) -> Self {
        self.ca_certs_dir = ca_certs_dir;
        self
    }

    /// Sets [`crl_path`](Self::crl_path).
    #[must_use]
    pub fn crl_path(mut self, crl_path: Option<PathBuf>) -> Self {
        self.crl_path = crl_path;
        self
    }

    /// Sets [`verify_cn`](Self::verify_cn).
    #[must_use]
    pub fn verify_cn(mut self, verify_cn: bool) -> Self {
        self.verify_cn = verify_cn;
        self
    }

    /// Sets [`allowed_organizations`](Self::allowed_organizations).
    #[must_use]
    pub fn allowed_organizations(mut self, allowed_organizations: Vec<String>) -> Self {
        self.allowed_organizations = allowed_organizations;
        self
    }

    /// Sets [`roles`](Self::roles).
    #[must_use]
    pub fn roles(mut self, roles: HashMap<String, Vec<String>>) -> Self {
        self.roles = roles;
        self
    }
}

impl AmatersMtlsConfig {
    /// The authenticator, with paths relative to `base_dir`.
    pub fn authenticator(&self, base_dir: &Path) -> Result<MtlsAuthenticator, MtlsError> {
        if !self.enabled {
            return Err(MtlsError::Store("[auth.mtls] is not enabled".into()));
        }
        let store = self.trust_store(base_dir, None)?;
        Ok(MtlsAuthenticator::new(Arc::new(store), self.policy()))
    }

    /// The files the trust anchors come from: `ca_certs_dir`, and `[network] tls_ca` when
    /// given (relative paths against `base_dir`).
    #[must_use]
    pub fn anchor_paths(
        &self,
        base_dir: &Path,
        network: Option<&AmatersNetworkConfig>,
    ) -> Vec<PathBuf> {
        let mut paths = vec![base_dir.join(&self.ca_certs_dir)];
        paths.extend(
            network
                .and_then(|n| n.tls_ca.as_ref())
                .map(|ca| base_dir.join(ca)),
        );
        paths
    }

    /// The CRL file, if any.
    #[must_use]
    pub fn crl_file(&self, base_dir: &Path) -> Option<PathBuf> {
        self.crl_path.as_ref().map(|p| base_dir.join(p))
    }

    /// One trust store for the TLS handshake and the authenticator, from
    /// [`AmatersMtlsConfig::anchor_paths`] and the CRL file.
    pub fn trust_store(
        &self,
        base_dir: &Path,
        network: Option<&AmatersNetworkConfig>,
    ) -> Result<TrustStore, MtlsError> {
        let anchors = self.anchor_paths(base_dir, network);
        let anchors: Vec<&Path> = anchors.iter().map(PathBuf::as_path).collect();
        TrustStore::from_anchor_paths(&anchors, self.crl_file(base_dir).as_deref())
    }

    /// The policy this table describes (identity, organizations, roles).
    #[must_use]
    pub fn policy(&self) -> MtlsPolicy {
        MtlsPolicy {
            identity: if self.verify_cn {
                IdentitySource::CommonName
            } else {
                IdentitySource::SanUri
            },
            allowed_organizations: self.allowed_organizations.clone(),
            roles: if self.roles.is_empty() {
                crate::RoleSource::None
            } else {
                crate::RoleSource::Table(self.roles.clone())
            },
            ..MtlsPolicy::default()
        }
    }
}

/// AmateRS `[network]`: `tls_enabled`, `tls_cert`, `tls_key`, `tls_ca`, `require_client_cert`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AmatersNetworkConfig {
    /// Serve over TLS.
    #[serde(default = "yes")]
    pub tls_enabled: bool,
    /// The server certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// The server private key (PEM, PKCS#8 or PKCS#1 or SEC1).
    pub tls_key: PathBuf,
    /// A CA bundle trusted for client certificates in addition to `[auth.mtls] ca_certs_dir`.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Refuse the handshake without a valid client certificate.
    #[serde(default = "yes")]
    pub require_client_cert: bool,
}

/// Setters, one per field; each returns the changed value.
impl AmatersNetworkConfig {
    /// Sets [`tls_enabled`](Self::tls_enabled).
    #[must_use]
    pub fn tls_enabled(mut self, tls_enabled: bool) -> Self {
        self.tls_enabled = tls_enabled;
        self
    }

    /// Sets [`tls_cert`](Self::tls_cert).
    #[must_use]
    pub fn tls_cert(mut self, tls_cert: PathBuf) -> Self {
        self.tls_cert = tls_cert;
        self
    }

    /// Sets [`tls_key`](Self::tls_key).
    #[must_use]
    pub fn tls_key(mut self, tls_key: PathBuf) -> Self {
        self.tls_key = tls_key;
        self
    }

    /// Sets [`tls_ca`](Self::tls_ca).
    #[must_use]
    pub fn tls_ca(mut self, tls_ca: Option<PathBuf>) -> Self {
        self.tls_ca = tls_ca;
        self
    }

    /// Sets [`require_client_cert`](Self::require_client_cert).
    #[must_use]
    pub fn require_client_cert(mut self, require_client_cert: bool) -> Self {
        self.require_client_cert = require_client_cert;
        self
    }
}
