//! A test PKI made with rcgen: CAs, client certificates and CRLs, valid around now.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::{Duration, OffsetDateTime};

/// A CA: what it signs with and its certificate.
#[derive(Debug)]
pub struct Ca {
    /// The parameters it was made from (needed to sign with it).
    pub params: CertificateParams,
    /// Its key pair.
    pub key: KeyPair,
    /// Its certificate, DER.
    pub der: CertificateDer<'static>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its private key.
pub type Identity = (CertificateDer<'static>, PrivateKeyDer<'static>);

/// The current time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A CA named `name` (self-signed, or signed by `parent`) that may sign certificates and
/// CRLs, valid from ten days ago for a year.
pub fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now() - Duration::days(10);
    params.not_after = now() + Duration::days(365);
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        None => params.self_signed(&key).unwrap(),
        Some(parent) => params
            .signed_by(&key, &Issuer::from_params(&parent.params, &parent.key))
            .unwrap(),
    };
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    }
}

/// A client certificate from `issuer` (see [`leaf_with_key`]) without its key.
pub fn leaf(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    configure: impl FnOnce(&mut CertificateParams),
) -> CertificateDer<'static> {
    leaf_with_key(issuer, cn, serial, configure).0
}

/// A client certificate (`clientAuth`, valid for 30 days from yesterday) for `cn` with
/// `serial`, adjusted by `configure`, and its private key.
pub fn leaf_with_key(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    configure: impl FnOnce(&mut CertificateParams),
) -> Identity {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now() - Duration::days(1);
    params.not_after = now() + Duration::days(30);
    configure(&mut params);
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
        .unwrap()
        .der()
        .clone();
    (
        der,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A server certificate for `localhost` (`serverAuth`, DNS and 127.0.0.1 names) from `issuer`.
pub fn localhost(issuer: &Ca, serial: u64) -> Identity {
    leaf_with_key(issuer, "localhost", serial, |params| {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("localhost".try_into().unwrap()),
            rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        ];
    })
}

/// A CRL from `issuer` (number 1, issued a week before `next_update`) revoking `revoked`.
pub fn crl(
    issuer: &Ca,
    revoked: &[u64],
    next_update: OffsetDateTime,
) -> CertificateRevocationListDer<'static> {
    let params = CertificateRevocationListParams {
        this_update: next_update - Duration::days(7),
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(*serial),
                revocation_time: now() - Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(&Issuer::from_params(&issuer.params, &issuer.key))
        .unwrap()
        .der()
        .clone()
}

/// DER bytes as PEM with `label` (`CERTIFICATE`, `X509 CRL`, `PRIVATE KEY`), in lines of 64.
pub fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut body = String::new();
    for line in encoded.as_bytes().chunks(64) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push('\n');
    }
    format!("-----BEGIN {label}-----\n{body}-----END {label}-----\n")
}
