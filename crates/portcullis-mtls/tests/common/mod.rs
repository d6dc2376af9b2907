//! Test PKI made with rcgen, shared by the mTLS test crates (each uses a part of it).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "test helpers: each test crate uses some of them"
)]

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::{Duration, OffsetDateTime};

pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

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

pub fn leaf(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    configure: impl FnOnce(&mut CertificateParams),
) -> CertificateDer<'static> {
    leaf_with_key(issuer, cn, serial, configure).0
}

/// A client certificate (clientAuth, valid for 30 days) and its private key.
pub fn leaf_with_key(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    configure: impl FnOnce(&mut CertificateParams),
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
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
