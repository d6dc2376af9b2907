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
        }
        if trusted.is_empty() {
            return Err(MtlsError::Store("no usable trust anchor".into()));
        }
        let crls = parse_crls(crls)?;
        Ok(Self {
            anchors: trusted,
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

fn read(path: &Path) -> Result<Vec<u8>, MtlsError> {
    std::fs::read(path).map_err(|e| MtlsError::Store(format!("{}: {e}", path.display())))
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

/// PEM CRLs from a file.
pub(crate) fn load_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, MtlsError> {
    let bytes = read(path)?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .map(|crl| crl.map_err(|e| MtlsError::Store(format!("{}: {e:?}", path.display()))))
        .collect()
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

    /// Loads anchors from a PEM file or directory and CRLs from an optional PEM file.
    pub fn from_paths(anchors: &Path, crls: Option<&Path>) -> Result<Self, MtlsError> {
        Self::from_anchor_paths(&[anchors], crls)
    }

    /// Loads anchors from several PEM files or directories (a certificate found twice is kept
    /// once) and CRLs from an optional PEM file.
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

    /// Re-reads the files and swaps them in. On error the material in force stays.
    pub fn reload(&self, anchors: &[&Path], crls: Option<&Path>) -> Result<(), MtlsError> {
        self.current.store(Arc::new(Self::load(anchors, crls)?));
        Ok(())
    }

    /// Replaces everything at once.
    pub fn replace(&self, material: TrustMaterial) {
        self.current.store(Arc::new(material));
    }

    /// Replaces only the CRLs, keeping the anchors.
    pub fn set_crls(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), MtlsError> {
        let current = self.current.load_full();
        let crls = parse_crls(crls)?;
        self.current.store(Arc::new(TrustMaterial {
            anchors: current.anchors.clone(),
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
