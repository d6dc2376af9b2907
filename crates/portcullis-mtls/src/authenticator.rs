//! [`MtlsAuthenticator`]: the verified client certificate becomes the `Principal`.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::{
    AuthMethod, AuthOutcome, Authenticator, Challenge, Clock, Credentials, PeerCertificates,
    Principal, PrincipalKind, SystemClock,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};

use crate::error::MtlsError;
use crate::identity::{IdentitySource, attribute_strings, identity};
use crate::store::TrustStore;

/// How the extended key usage is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EkuPolicy {
    /// The certificate must carry the `clientAuth` EKU (default).
    #[default]
    RequireClientAuth,
    /// webpki's default: `clientAuth` is required only when an EKU extension is present, so a
    /// certificate without any EKU (a server's, an old one) authenticates a client.
    InsecureClientAuthIfPresent,
}

/// How much of the chain is checked against the CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationDepth {
    /// The end-entity certificate only.
    EndEntity,
    /// Every certificate of the chain but the anchor (default).
    #[default]
    Chain,
}

/// What happens when no CRL covers a certificate (or the CRL has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownStatus {
    /// Refuse (default).
    #[default]
    Deny,
    /// Accept a certificate whose revocation status nobody can tell: a CA without a CRL
    /// revokes nothing.
    InsecureAllow,
}

/// Where roles come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoleSource {
    /// No roles (the RBAC default role applies).
    #[default]
    None,
    /// A table from identity (exact match) to roles.
    Table(HashMap<String, Vec<String>>),
    /// The subject's organizational units.
    OrganizationalUnits,
}

/// What an [`MtlsAuthenticator`] requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtlsPolicy {
    /// The EKU rule.
    pub eku: EkuPolicy,
    /// Revocation depth (when CRLs are loaded).
    pub revocation_depth: RevocationDepth,
    /// Unknown revocation status (when CRLs are loaded).
    pub unknown_status: UnknownStatus,
    /// Most certificates accepted in the presented chain (default 5).
    pub max_chain_len: usize,
    /// Most bytes accepted in the presented chain (default 64 KiB).
    pub max_chain_bytes: usize,
    /// The identity.
    pub identity: IdentitySource,
    /// Organizations allowed (the subject's O, exact; empty: any).
    pub allowed_organizations: Vec<String>,
    /// Roles.
    pub roles: RoleSource,
    /// The principal kind (default `Service`: certificates mostly identify workloads).
    pub kind: PrincipalKind,
}

/// Setters, one per field; each returns the changed value.
impl MtlsPolicy {
    /// Sets [`eku`](Self::eku).
    #[must_use]
    pub fn eku(mut self, eku: EkuPolicy) -> Self {
        self.eku = eku;
        self
    }

    /// Sets [`revocation_depth`](Self::revocation_depth).
    #[must_use]
    pub fn revocation_depth(mut self, revocation_depth: RevocationDepth) -> Self {
        self.revocation_depth = revocation_depth;
        self
    }

    /// Sets [`unknown_status`](Self::unknown_status).
    #[must_use]
    pub fn unknown_status(mut self, unknown_status: UnknownStatus) -> Self {
        self.unknown_status = unknown_status;
        self
    }

    /// Sets [`max_chain_len`](Self::max_chain_len).
    #[must_use]
    pub fn max_chain_len(mut self, max_chain_len: usize) -> Self {
        self.max_chain_len = max_chain_len;
        self
    }

    /// Sets [`max_chain_bytes`](Self::max_chain_bytes).
    #[must_use]
    pub fn max_chain_bytes(mut self, max_chain_bytes: usize) -> Self {
        self.max_chain_bytes = max_chain_bytes;
        self
    }

    /// Sets [`identity`](Self::identity).
    #[must_use]
    pub fn identity(mut self, identity: IdentitySource) -> Self {
        self.identity = identity;
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
    pub fn roles(mut self, roles: RoleSource) -> Self {
        self.roles = roles;
        self
    }

    /// Sets [`kind`](Self::kind).
    #[must_use]
    pub fn kind(mut self, kind: PrincipalKind) -> Self {
        self.kind = kind;
        self
    }
}

impl Default for MtlsPolicy {
    fn default() -> Self {
        Self {
            eku: EkuPolicy::default(),
            revocation_depth: RevocationDepth::default(),
            unknown_status: UnknownStatus::default(),
            max_chain_len: 5,
            max_chain_bytes: 64 * 1024,
            identity: IdentitySource::CommonName,
            allowed_organizations: Vec::new(),
            roles: RoleSource::None,
            kind: PrincipalKind::Service,
        }
    }
}

/// Authenticates the TLS client certificate chain.
#[derive(Clone)]
pub struct MtlsAuthenticator {
    store: Arc<TrustStore>,
    policy: Arc<MtlsPolicy>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MtlsAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsAuthenticator")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn map_webpki(error: webpki::Error) -> MtlsError {
    use webpki::Error as E;
    match error {
        E::CertExpired { .. } => MtlsError::Expired,
        E::CertNotValidYet { .. } => MtlsError::NotYetValid,
        E::CertRevoked => MtlsError::Revoked,
        E::UnknownRevocationStatus => MtlsError::UnknownRevocationStatus(format!("{error:?}")),
        E::CrlExpired { .. } => MtlsError::CrlExpired,
        E::CaUsedAsEndEntity => {
            MtlsError::WrongKeyUsage("a CA certificate presented as the client's certificate")
        }
        #[expect(deprecated, reason = "webpki 0.103 still defines the old variant")]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            MtlsError::WrongKeyUsage("the clientAuth extended key usage is required")
        }
        other => MtlsError::Untrusted(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

impl MtlsAuthenticator {
    /// Verifies against `store` with `policy`.
    #[must_use]
    pub fn new(store: Arc<TrustStore>, policy: MtlsPolicy) -> Self {
        Self {
            store,
            policy: Arc::new(policy),
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock (tests, replays).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The trust store (to reload or swap CRLs).
    #[must_use]
    pub fn store(&self) -> &Arc<TrustStore> {
        &self.store
    }

    /// Verifies a chain (end entity first) and builds the principal.
    pub fn verify(&self, chain: &PeerCertificates) -> Result<Principal, MtlsError> {
        let end_entity = chain
            .end_entity()
            .ok_or(MtlsError::ChainBounds("no certificate"))?;
        if chain.len() > self.policy.max_chain_len {
            return Err(MtlsError::ChainBounds("too many certificates"));
        }
        if chain.total_bytes() > self.policy.max_chain_bytes {
            return Err(MtlsError::ChainBounds("chain too large"));
        }
        let now = self.clock.now();
        self.verify_path(end_entity, chain.intermediates(), now)?;
        self.principal(end_entity, now)
    }

    /// The trust decision alone (bounds, path to an anchor, revocation, `clientAuth`), as the
    /// TLS handshake needs it.
    pub fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), MtlsError> {
        let bytes = end_entity.len() + intermediates.iter().map(|c| c.len()).sum::<usize>();
        self.check_bounds(1 + intermediates.len(), bytes)?;
        let now = self.clock.now();
        self.verify_path(end_entity, intermediates, now)?;
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|e| MtlsError::Malformed(format!("{e}")))?;
        self.check_eku(&cert)
    }

    /// The chain bounds, checked before any parsing.
    fn check_bounds(&self, count: usize, bytes: usize) -> Result<(), MtlsError> {
        if count > self.policy.max_chain_len {
            return Err(MtlsError::ChainBounds("too many certificates"));
        }
        if bytes > self.policy.max_chain_bytes {
            return Err(MtlsError::ChainBounds("chain too large"));
        }
        Ok(())
    }

    fn verify_path(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: OffsetDateTime,
    ) -> Result<(), MtlsError> {
        self.verify_path_for(end_entity, intermediates, now, KeyUsage::client_auth())
    }

    /// The path and revocation checks for `usage` (client authentication everywhere but in
    /// the tests that run x509-limbo's server-certificate CRL and path-length cases through
    /// this trust machinery).
    fn verify_path_for(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: OffsetDateTime,
        usage: KeyUsage,
    ) -> Result<(), MtlsError> {
        let policy = &*self.policy;
        let unix = u64::try_from(now.unix_timestamp())
            .map_err(|_| MtlsError::Untrusted("clock before 1970".into()))?;
        let cert = EndEntityCert::try_from(end_entity)
            .map_err(|e| MtlsError::Malformed(format!("{e:?}")))?;
        let material = self.store.snapshot();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = material.crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            let builder = RevocationOptionsBuilder::new(&crl_refs)
                .map_err(|_| MtlsError::Store("CRL set".into()))?
                .with_depth(match policy.revocation_depth {
                    RevocationDepth::EndEntity => RevocationCheckDepth::EndEntity,
                    RevocationDepth::Chain => RevocationCheckDepth::Chain,
                })
                .with_status_policy(match policy.unknown_status {
                    UnknownStatus::Deny => UnknownStatusPolicy::Deny,
                    UnknownStatus::InsecureAllow => UnknownStatusPolicy::Allow,
                })
                .with_expiration_policy(ExpirationPolicy::Enforce);
            Some(builder.build())
        };
        // webpki applies the EKU rule to every certificate of the path, and CA certificates
        // rarely carry EKUs: the path is checked with "clientAuth if present", and the end
        // entity's own EKU separately.
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &material.anchors,
            intermediates,
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix)),
            usage,
            revocation,
            None,
        )
        .map(|_| ())
        .map_err(map_webpki)
    }

    fn check_eku(
        &self,
        cert: &x509_parser::certificate::X509Certificate<'_>,
    ) -> Result<(), MtlsError> {
        if self.policy.eku == EkuPolicy::RequireClientAuth {
            let client_auth = match cert.extended_key_usage() {
                Ok(Some(eku)) => eku.value.client_auth,
                Ok(None) => false,
                Err(e) => return Err(MtlsError::Malformed(format!("extendedKeyUsage: {e}"))),
            };
            if !client_auth {
                return Err(MtlsError::WrongKeyUsage(
                    "the clientAuth extended key usage is required",
                ));
            }
        }
        Ok(())
    }

    fn principal(&self, der: &[u8], now: OffsetDateTime) -> Result<Principal, MtlsError> {
        let policy = &*self.policy;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| MtlsError::Malformed(format!("{e}")))?;
        self.check_eku(&cert)?;
        let id = identity(&cert, &policy.identity)?;
        let organizations = attribute_strings(cert.subject().iter_organization(), "organization")?;
        if !policy.allowed_organizations.is_empty()
            && !organizations
                .iter()
                .any(|o| policy.allowed_organizations.iter().any(|a| a == o))
        {
            return Err(MtlsError::OrganizationNotAllowed);
        }
        let roles: Vec<String> = match &policy.roles {
            RoleSource::None => Vec::new(),
            RoleSource::Table(table) => table.get(&id).cloned().unwrap_or_default(),
            RoleSource::OrganizationalUnits => attribute_strings(
                cert.subject().iter_organizational_unit(),
                "organizational unit",
            )?
            .into_iter()
            .map(str::to_owned)
            .collect(),
        };
        let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
            .map_err(|_| MtlsError::Malformed("notAfter".into()))?;
        let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let mut builder = Principal::builder(id, policy.kind, AuthMethod::Mtls, now)
            .roles(roles)
            .expires_at(not_after.max(now))
            .attribute("cert_serial", cert.tbs_certificate.raw_serial_as_string())
            .attribute("cert_issuer", cert.issuer().to_string())
            .attribute("cert_fingerprint_sha256", fingerprint)
            .attribute("cert_not_after", not_after.unix_timestamp());
        if !organizations.is_empty() {
            builder = builder.attribute("cert_organizations", organizations);
        }
        builder
            .build()
            .map_err(|e| MtlsError::Identity(e.to_string()))
    }
}

/// What the audit trail records of a refused certificate: its subject, serial number (hex, as
/// printed by `openssl x509 -serial`) and SHA-256 fingerprint. Nothing of it is secret.
#[must_use]
pub fn certificate_facts(der: &[u8]) -> Vec<(&'static str, String)> {
    let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => vec![
            ("cert_subject", cert.subject().to_string()),
            ("cert_serial", cert.tbs_certificate.raw_serial_as_string()),
            ("cert_fingerprint_sha256", fingerprint),
        ],
        Err(_) => vec![("cert_fingerprint_sha256", fingerprint)],
    }
}

#[async_trait]
impl Authenticator for MtlsAuthenticator {
    fn name(&self) -> &str {
        "mtls"
    }

    fn challenge(&self) -> Option<Challenge> {
        None
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        let Some(chain) = credentials.peer_certificates() else {
            return AuthOutcome::NotApplicable;
        };
        match self.verify(chain) {
            Ok(principal) => AuthOutcome::Authenticated(principal),
            Err(error) => {
                // The audit event names the certificate that was refused.
                let facts = chain
                    .end_entity()
                    .map(|der| certificate_facts(der))
                    .unwrap_or_default();
                let error = facts
                    .into_iter()
                    .fold(error.into_auth_error(), |error, (name, value)| {
                        error.with_detail(name, value)
                    });
                AuthOutcome::Rejected(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
