//! Trust anchors and CRLs, swapped atomically.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor};
use time::OffsetDateTime;
use webpki::{CertRevocationList, OwnedCertRevocationList};

use crate::error::MtlsError;

/// One consistent set of trust anchors and CRLs.
#[derive(Debug)]
pub struct TrustMaterial {
    pub(crate) anchors: Vec<TrustAnchor<'static>>,
    /// The anchors' certificates, for checks of CRLs they issue.
    pub(crate) anchor_certificates: Vec<CertificateDer<'static>>,
    pub(crate) crls: Vec<CertRevocationList<'static>>,
    pub(crate) skipped: Vec<String>,
}

impl TrustMaterial {
    /// Builds the material from DER certificates and CRLs. Anchors that have expired at
    /// `now` are left out (webpki does not check anchor validity) and reported in
    /// [`TrustMaterial::skipped`].
    pub fn new(
        anchors: &[CertificateDer<'_>],
        crls: &[CertificateRevocationListDer<'_>],
        now: OffsetDateTime,
    ) -> Result<Self, MtlsError> {
        let mut trusted = Vec::with_capacity(anchors.len());
        let mut anchor_certificates = Vec::with_capacity(anchors.len());
        let mut skipped = Vec::new();
        for (index, der) in anchors.iter().enumerate() {
            let expired = x509_parser::parse_x509_certificate(der)
                .map(|(_, cert)| cert.validity().not_after.timestamp() < now.unix_timestamp())
                .map_err(|e| {
                    MtlsError::Store(format!("anchor {index} is not a certificate: {e}"))
                })?;
            if expired {
                skipped.push(format!("anchor {index}: expired"));
                continue;
            }
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| MtlsError::Store(format!("anchor {index}: {e}")))?;
            trusted.push(anchor.to_owned());
            anchor_certificates.push(der.clone().into_owned());
        }
        if trusted.is_empty() {
            return Err(MtlsError::Store("no usable trust anchor".into()));
        }
        for (index, der) in crls.iter().enumerate() {
            check_crl(index, der, anchors)?;
        }
        let crls = parse_crls(crls)?;
        Ok(Self {
            anchors: trusted,
            anchor_certificates,
            crls,
            skipped,
        })
    }

    /// Anchors in use.
    #[must_use]
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// CRLs in use.
    #[must_use]
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    /// Certificates left out, with the reason.
    #[must_use]
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

/// What RFC 5280 requires of a CRL that rustls-webpki does not check: a `CRLNumber`
/// extension (§5.2.3: conforming issuers MUST include it), not marked critical (§5.2.3: it is
/// a non-critical extension), and, for a CRL issued by a trust anchor, that the anchor may sign
/// CRLs (§4.2.1.3: the `cRLSign` bit when the anchor has a key usage extension; webpki checks
/// it for intermediates, but keeps no key usage for anchors).
fn check_crl(
    index: usize,
    der: &CertificateRevocationListDer<'_>,
    anchors: &[CertificateDer<'_>],
) -> Result<(), MtlsError> {
    let refuse = |why: &str| MtlsError::Store(format!("CRL {index}: {why}"));
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| refuse(&e.to_string()))?;
    let number = crl
        .extensions()
        .iter()
        .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_CRL_NUMBER)
        .ok_or_else(|| refuse("no CRLNumber extension (RFC 5280 §5.2.3)"))?;
    if number.critical {
        return Err(refuse(
            "the CRLNumber extension is marked critical (RFC 5280 §5.2.3)",
        ));
    }
    let issuer = crl.issuer().as_raw();
    for anchor in anchors {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(anchor) else {
            continue;
        };
        if cert.subject().as_raw() != issuer {
            continue;
        }
        match cert.key_usage() {
            Ok(Some(usage)) if !usage.value.crl_sign() => {
                return Err(refuse(&format!(
                    "its issuer `{}` has a key usage without cRLSign (RFC 5280 §4.2.1.3)",
                    cert.subject()
                )));
            }
            Ok(_) => {}
            Err(e) => return Err(refuse(&format!("issuer key usage: {e}"))),
        }
    }
    Ok(())
}

/// Parses DER CRLs (numbered in errors).
fn parse_crls(
    crls: &[CertificateRevocationListDer<'_>],
) -> Result<Vec<CertRevocationList<'static>>, MtlsError> {
    crls.iter()
        .enumerate()
        .map(|(index, der)| {
            OwnedCertRevocationList::from_der(der)
                .map(CertRevocationList::from)
                .map_err(|e| MtlsError::Store(format!("CRL {index}: {e}")))
        })
        .collect()
}

/// Largest certificate or CRL file read, in bytes (the CRLs of a large CA run to tens of MB).
pub const MAX_TRUST_FILE_LEN: u64 = 64 * 1024 * 1024;

fn read(path: &Path) -> Result<Vec<u8>, MtlsError> {
    portcullis_core::read_bounded(path, MAX_TRUST_FILE_LEN)
        .map_err(|e| MtlsError::Store(format!("{}: {e}", path.display())))
}

/// PEM certificates from a file, or from every regular file of a directory (sorted by name).
pub(crate) fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, MtlsError> {
    let mut files = Vec::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| MtlsError::Store(format!("{}: {e}", path.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| MtlsError::Store(e.to_string()))?;
            if entry
                .file_type()
                .map_err(|e| MtlsError::Store(e.to_string()))?
                .is_file()
            {
                files.push(entry.path());
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut certificates = Vec::new();
    for file in files {
        let bytes = read(&file)?;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            certificates
                .push(cert.map_err(|e| MtlsError::Store(format!("{}: {e:?}", file.display())))?);
        }
    }
    Ok(certificates)
}

/// The CRLs of a file: PEM (one or more `X509 CRL` blocks) or one DER CRL (the form CAs
/// usually publish). A file that holds no CRL (empty, text, other PEM blocks) is an error: a
/// configured CRL file that yields nothing must never turn revocation checking off.
pub(crate) fn load_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, MtlsError> {
    let bytes = read(path)?;
    let refuse = |why: String| MtlsError::Store(format!("{}: {why}", path.display()));
    let text_start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let crls: Vec<CertificateRevocationListDer<'static>> = match text_start {
        None => return Err(refuse("the CRL file is empty".into())),
        // A DER CRL is a SEQUENCE: it starts with 0x30.
        Some(_) if bytes.first() == Some(&0x30) => {
            vec![CertificateRevocationListDer::from(bytes)]
        }
        Some(_) => CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| refuse(format!("{e:?}")))?,
    };
    if crls.is_empty() {
        return Err(refuse(
            "no CRL in the file (expected PEM `X509 CRL` blocks or one DER CRL)".into(),
        ));
    }
    Ok(crls)
}

/// Trust anchors and CRLs that can be replaced while connections are being verified.
#[derive(Debug)]
pub struct TrustStore {
    current: ArcSwap<TrustMaterial>,
}

impl TrustStore {
    /// A store holding `material`.
    #[must_use]
    pub fn new(material: TrustMaterial) -> Self {
        Self {
            current: ArcSwap::from_pointee(material),
        }
    }

    /// Loads anchors from a PEM file or directory and CRLs from an optional file (PEM or DER;
    /// a file that holds no CRL is an error).
    pub fn from_paths(anchors: &Path, crls: Option<&Path>) -> Result<Self, MtlsError> {
        Self::from_anchor_paths(&[anchors], crls)
    }

    /// Loads anchors from several PEM files or directories (a certificate found twice is kept
    /// once) and CRLs from an optional file (PEM or DER; a file that holds no CRL is an
    /// error).
    pub fn from_anchor_paths(anchors: &[&Path], crls: Option<&Path>) -> Result<Self, MtlsError> {
        Ok(Self::new(Self::load(anchors, crls)?))
    }

    fn load(anchors: &[&Path], crls: Option<&Path>) -> Result<TrustMaterial, MtlsError> {
        let mut certificates: Vec<CertificateDer<'static>> = Vec::new();
        for path in anchors {
            for cert in load_certificates(path)? {
                if !certificates.contains(&cert) {
                    certificates.push(cert);
                }
            }
        }
        let crls = match crls {
            Some(path) => load_crls(path)?,
            None => Vec::new(),
        };
        TrustMaterial::new(&certificates, &crls, OffsetDateTime::now_utc())
    }

    /// Re-reads the files and swaps them in. On error (a CRL file that holds no CRL among
    /// them) the material in force stays, CRLs included.
    pub fn reload(&self, anchors: &[&Path], crls: Option<&Path>) -> Result<(), MtlsError> {
        self.current.store(Arc::new(Self::load(anchors, crls)?));
        Ok(())
    }

    /// Replaces everything at once.
    pub fn replace(&self, material: TrustMaterial) {
        self.current.store(Arc::new(material));
    }

    /// Replaces only the CRLs, keeping the anchors. An empty list is refused (it would turn
    /// revocation checking off): call [`TrustStore::clear_crls`] for that.
    pub fn set_crls(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), MtlsError> {
        if crls.is_empty() {
            return Err(MtlsError::Store(
                "no CRL given (clear_crls turns revocation checking off)".into(),
            ));
        }
        self.replace_crls(crls)
    }

    /// Stops checking revocation: no CRL is in force any more.
    pub fn clear_crls(&self) {
        let current = self.current.load_full();
        self.current.store(Arc::new(TrustMaterial {
            anchors: current.anchors.clone(),
            anchor_certificates: current.anchor_certificates.clone(),
            crls: Vec::new(),
            skipped: current.skipped.clone(),
        }));
    }

    fn replace_crls(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), MtlsError> {
        let current = self.current.load_full();
        for (index, der) in crls.iter().enumerate() {
            check_crl(index, der, &current.anchor_certificates)?;
        }
        let crls = parse_crls(crls)?;
        self.current.store(Arc::new(TrustMaterial {
            anchors: current.anchors.clone(),
            anchor_certificates: current.anchor_certificates.clone(),
            crls,
            skipped: current.skipped.clone(),
        }));
        Ok(())
    }

    /// The material in force.
    #[must_use]
    pub fn snapshot(&self) -> Arc<TrustMaterial> {
        self.current.load_full()
    }
}
