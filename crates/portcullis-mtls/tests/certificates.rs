//! Certificates generated in the tests (rcgen): every case of issue #5's list, CRL hot swap,
//! identities, forwarded certificates and the AmateRS configuration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_core::{
    AuthErrorKind, AuthOutcome, Authenticator, Credential, Credentials, ManualClock,
    PeerCertificates,
};
use portcullis_mtls::forwarded::{Forwarded, ForwardedCertificates};
use portcullis_mtls::{
    AmatersMtlsConfig, EkuPolicy, IdentitySource, MtlsAuthenticator, MtlsError, MtlsPolicy,
    RevocationDepth, RoleSource, TrustMaterial, TrustStore,
};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, Issuer,
    KeyIdMethod, KeyPair, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::Duration;

use portcullis_testkit::pki::{Ca, ca, crl, leaf, now};

struct Pki {
    root: Ca,
    intermediate: Ca,
}

fn pki() -> Pki {
    let root = ca("Portcullis Test Root", None);
    let intermediate = ca("Portcullis Test Intermediate", Some(&root));
    Pki { root, intermediate }
}

fn authenticator(
    pki: &Pki,
    crls: &[CertificateRevocationListDer<'static>],
    policy: MtlsPolicy,
) -> MtlsAuthenticator {
    let material = TrustMaterial::new(std::slice::from_ref(&pki.root.der), crls, now()).unwrap();
    MtlsAuthenticator::new(Arc::new(TrustStore::new(material)), policy)
}

fn chain(pki: &Pki, leaf: CertificateDer<'static>) -> PeerCertificates {
    PeerCertificates::new(vec![leaf, pki.intermediate.der.clone()])
}

#[test]
fn a_good_client_certificate_becomes_a_principal() {
    let pki = pki();
    let auth = authenticator(&pki, &[], MtlsPolicy::default());
    let principal = auth
        .verify(&chain(
            &pki,
            leaf(&pki.intermediate, "billing-service", 10, |_| {}),
        ))
        .unwrap();
    assert_eq!(principal.id(), "billing-service");
    assert_eq!(principal.auth_method(), portcullis_core::AuthMethod::Mtls);
    for attribute in [
        "cert_serial",
        "cert_issuer",
        "cert_fingerprint_sha256",
        "cert_not_after",
    ] {
        assert!(principal.attribute(attribute).is_some(), "{attribute}");
    }
    assert!(
        principal
            .attribute("cert_issuer")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("Intermediate")
    );
    assert!(principal.expires_at().is_some());
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let pki = pki();
    let auth = authenticator(&pki, &[], MtlsPolicy::default());
    let expired = leaf(&pki.intermediate, "old", 11, |p| {
        p.not_before = now() - Duration::days(30);
        p.not_after = now() - Duration::days(1);
    });
    assert_eq!(
        auth.verify(&chain(&pki, expired)).unwrap_err(),
        MtlsError::Expired
    );
    let future = leaf(&pki.intermediate, "future", 12, |p| {
        p.not_before = now() + Duration::days(1);
        p.not_after = now() + Duration::days(30);
    });
    assert_eq!(
        auth.verify(&chain(&pki, future.clone())).unwrap_err(),
        MtlsError::NotYetValid
    );
    // The injected clock decides: two days later the same certificate is valid.
    let later = auth
        .clone()
        .with_clock(Arc::new(ManualClock::new(now() + Duration::days(2))));
    assert!(later.verify(&chain(&pki, future)).is_ok());
}

#[test]
fn the_client_auth_eku_is_required_by_default() {
    let pki = pki();
    let strict = authenticator(&pki, &[], MtlsPolicy::default());
    let server_only = leaf(&pki.intermediate, "web", 13, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    });
    assert!(matches!(
        strict.verify(&chain(&pki, server_only.clone())),
        Err(MtlsError::WrongKeyUsage(_))
    ));
    let no_eku = leaf(&pki.intermediate, "legacy", 14, |p| {
        p.extended_key_usages = Vec::new()
    });
    assert!(matches!(
        strict.verify(&chain(&pki, no_eku.clone())),
        Err(MtlsError::WrongKeyUsage(_))
    ));
    let both = leaf(&pki.intermediate, "both", 15, |p| {
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    });
    assert!(strict.verify(&chain(&pki, both)).is_ok());
    // webpki's "required if present" only as an explicit opt-in.
    let lenient = authenticator(
        &pki,
        &[],
        MtlsPolicy::default().eku(EkuPolicy::InsecureClientAuthIfPresent),
    );
    assert!(lenient.verify(&chain(&pki, no_eku)).is_ok());
    assert!(lenient.verify(&chain(&pki, server_only)).is_err());
}

#[test]
fn untrusted_self_signed_and_ca_as_leaf_are_refused() {
    let pki = pki();
    let other = pki_other();
    let auth = authenticator(&pki, &[], MtlsPolicy::default());
    let foreign = leaf(&other.intermediate, "mallory", 16, |_| {});
    let foreign_chain = PeerCertificates::new(vec![foreign, other.intermediate.der.clone()]);
    assert!(matches!(
        auth.verify(&foreign_chain),
        Err(MtlsError::Untrusted(_))
    ));
    // Self-signed client certificate.
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "selfie");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let selfie = params.self_signed(&key).unwrap().der().clone();
    assert!(matches!(
        auth.verify(&PeerCertificates::new(vec![selfie])),
        Err(MtlsError::Untrusted(_))
    ));
    // The intermediate CA certificate presented as a client certificate.
    let ca_leaf = PeerCertificates::new(vec![pki.intermediate.der.clone()]);
    assert!(matches!(
        auth.verify(&ca_leaf),
        Err(MtlsError::WrongKeyUsage(_))
    ));
}

fn pki_other() -> Pki {
    let root = ca("Other Root", None);
    let intermediate = ca("Other Intermediate", Some(&root));
    Pki { root, intermediate }
}

#[test]
fn crls_revoke_end_entities_and_intermediates() {
    let pki = pki();
    let good = leaf(&pki.intermediate, "good", 20, |_| {});
    let revoked = leaf(&pki.intermediate, "revoked", 21, |_| {});
    let intermediate_crl = crl(&pki.intermediate, &[21], now() + Duration::days(7));
    let root_crl = crl(&pki.root, &[], now() + Duration::days(7));
    let auth = authenticator(
        &pki,
        &[intermediate_crl.clone(), root_crl],
        MtlsPolicy::default(),
    );
    assert!(auth.verify(&chain(&pki, good.clone())).is_ok());
    assert_eq!(
        auth.verify(&chain(&pki, revoked)).unwrap_err(),
        MtlsError::Revoked
    );

    // The intermediate revoked by the root: refused with whole-chain checking...
    let intermediate_serial = {
        let (_, parsed) = x509_parser::parse_x509_certificate(&pki.intermediate.der).unwrap();
        parsed.tbs_certificate.raw_serial().to_vec()
    };
    let mut root_params = CertificateRevocationListParams {
        this_update: now() - Duration::days(1),
        next_update: now() + Duration::days(7),
        crl_number: SerialNumber::from(2u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from_slice(&intermediate_serial),
            revocation_time: now() - Duration::hours(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let revoking_root = root_params
        .signed_by(&Issuer::from_params(&pki.root.params, &pki.root.key))
        .unwrap()
        .der()
        .clone();
    let chain_check = authenticator(
        &pki,
        &[intermediate_crl.clone(), revoking_root.clone()],
        MtlsPolicy::default(),
    );
    assert_eq!(
        chain_check.verify(&chain(&pki, good.clone())).unwrap_err(),
        MtlsError::Revoked
    );
    // ...and not with end-entity-only checking.
    let ee_only = authenticator(
        &pki,
        &[intermediate_crl, revoking_root],
        MtlsPolicy::default().revocation_depth(RevocationDepth::EndEntity),
    );
    assert!(ee_only.verify(&chain(&pki, good)).is_ok());
    root_params.revoked_certs.clear();
}

#[test]
fn an_expired_crl_is_an_error() {
    let pki = pki();
    let good = leaf(&pki.intermediate, "good", 30, |_| {});
    let stale = crl(&pki.intermediate, &[], now() - Duration::hours(1));
    let root_crl = crl(&pki.root, &[], now() + Duration::days(7));
    let auth = authenticator(&pki, &[stale, root_crl], MtlsPolicy::default());
    assert_eq!(auth.verify(&chain(&pki, good)), Err(MtlsError::CrlExpired));
}

#[test]
fn a_crl_swapped_at_run_time_revokes_without_a_restart() {
    let pki = pki();
    let cert = leaf(&pki.intermediate, "soon-revoked", 40, |_| {});
    let root_crl = crl(&pki.root, &[], now() + Duration::days(7));
    let auth = authenticator(
        &pki,
        &[
            crl(&pki.intermediate, &[], now() + Duration::days(7)),
            root_crl.clone(),
        ],
        MtlsPolicy::default(),
    );
    assert!(auth.verify(&chain(&pki, cert.clone())).is_ok());
    auth.store()
        .set_crls(&[
            crl(&pki.intermediate, &[40], now() + Duration::days(7)),
            root_crl,
        ])
        .unwrap();
    assert_eq!(
        auth.verify(&chain(&pki, cert)).unwrap_err(),
        MtlsError::Revoked
    );
}

#[test]
fn organizations_and_dn_injection() {
    let pki = pki();
    let policy = MtlsPolicy::default().allowed_organizations(vec!["admin".into(), "Acme".into()]);
    let auth = authenticator(&pki, &[], policy);
    let acme = leaf(&pki.intermediate, "alice", 50, |p| {
        p.distinguished_name.push(DnType::OrganizationName, "Acme")
    });
    assert!(auth.verify(&chain(&pki, acme)).is_ok());
    let evil = leaf(&pki.intermediate, "bob", 51, |p| {
        p.distinguished_name
            .push(DnType::OrganizationName, "Evil Corp")
    });
    assert_eq!(
        auth.verify(&chain(&pki, evil)).unwrap_err(),
        MtlsError::OrganizationNotAllowed
    );
    // A CN that looks like a DN is one string: it is not `alice` and does not carry O=admin.
    let injected = leaf(&pki.intermediate, "alice,O=admin", 52, |_| {});
    assert_eq!(
        auth.verify(&chain(&pki, injected.clone())).unwrap_err(),
        MtlsError::OrganizationNotAllowed
    );
    let open = authenticator(&pki, &[], MtlsPolicy::default());
    assert_eq!(
        open.verify(&chain(&pki, injected)).unwrap().id(),
        "alice,O=admin"
    );
}

#[test]
fn chain_bounds_are_checked_before_parsing() {
    let pki = pki();
    let auth = authenticator(
        &pki,
        &[],
        MtlsPolicy::default()
            .max_chain_len(2)
            .max_chain_bytes(8 * 1024),
    );
    let cert = leaf(&pki.intermediate, "c", 60, |_| {});
    let long = PeerCertificates::new(vec![
        cert.clone(),
        pki.intermediate.der.clone(),
        pki.root.der.clone(),
    ]);
    assert_eq!(
        auth.verify(&long).unwrap_err(),
        MtlsError::ChainBounds("too many certificates")
    );
    let huge = PeerCertificates::new(vec![CertificateDer::from(vec![0u8; 9 * 1024])]);
    assert_eq!(
        auth.verify(&huge).unwrap_err(),
        MtlsError::ChainBounds("chain too large")
    );
    assert_eq!(
        auth.verify(&PeerCertificates::new(Vec::new())).unwrap_err(),
        MtlsError::ChainBounds("no certificate")
    );
    let garbage = PeerCertificates::new(vec![CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])]);
    assert!(matches!(
        auth.verify(&garbage),
        Err(MtlsError::Malformed(_))
    ));
}

#[test]
fn identities_from_san_and_spiffe_and_roles() {
    let pki = pki();
    let svid = leaf(&pki.intermediate, "ignored", 70, |p| {
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://prod.example/ns/billing/sa/api"
                .try_into()
                .unwrap(),
        )];
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "payments");
    });
    let spiffe = authenticator(
        &pki,
        &[],
        MtlsPolicy::default()
            .identity(IdentitySource::Spiffe {
                trust_domain: Some("prod.example".into()),
            })
            .roles(RoleSource::OrganizationalUnits),
    );
    let principal = spiffe.verify(&chain(&pki, svid.clone())).unwrap();
    assert_eq!(principal.id(), "spiffe://prod.example/ns/billing/sa/api");
    assert_eq!(principal.roles(), ["payments"]);
    let other_domain = authenticator(
        &pki,
        &[],
        MtlsPolicy::default().identity(IdentitySource::Spiffe {
            trust_domain: Some("staging.example".into()),
        }),
    );
    assert!(matches!(
        other_domain.verify(&chain(&pki, svid)),
        Err(MtlsError::Identity(_))
    ));

    let mailer = leaf(&pki.intermediate, "x", 71, |p| {
        p.subject_alt_names = vec![SanType::Rfc822Name("Alice@Example.com".try_into().unwrap())];
    });
    let table = HashMap::from([("Alice@Example.com".to_owned(), vec!["admin".to_owned()])]);
    let by_email = authenticator(
        &pki,
        &[],
        MtlsPolicy::default()
            .identity(IdentitySource::SanEmail)
            .roles(RoleSource::Table(table)),
    );
    let principal = by_email.verify(&chain(&pki, mailer)).unwrap();
    assert_eq!(principal.roles(), ["admin"]);
    // Exact match: another case maps to no role.
    let lower = leaf(&pki.intermediate, "x", 72, |p| {
        p.subject_alt_names = vec![SanType::Rfc822Name("alice@example.com".try_into().unwrap())];
    });
    assert!(
        by_email
            .verify(&chain(&pki, lower))
            .unwrap()
            .roles()
            .is_empty()
    );
    // No SAN of the configured kind.
    let no_san = leaf(&pki.intermediate, "y", 73, |_| {});
    assert!(matches!(
        by_email.verify(&chain(&pki, no_san)),
        Err(MtlsError::Identity(_))
    ));
}

#[tokio::test]
async fn the_authenticator_speaks_the_core_protocol() {
    let pki = pki();
    let auth = authenticator(&pki, &[], MtlsPolicy::default());
    let good = Credentials::from_list(vec![Credential::PeerCertificates(chain(
        &pki,
        leaf(&pki.intermediate, "svc", 80, |_| {}),
    ))]);
    assert!(matches!(
        auth.authenticate(&good).await,
        AuthOutcome::Authenticated(_)
    ));
    let expired = leaf(&pki.intermediate, "old", 81, |p| {
        p.not_before = now() - Duration::days(30);
        p.not_after = now() - Duration::days(1);
    });
    match auth
        .authenticate(&Credentials::from_list(vec![Credential::PeerCertificates(
            chain(&pki, expired),
        )]))
        .await
    {
        AuthOutcome::Rejected(error) => assert_eq!(error.kind(), &AuthErrorKind::Expired),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        auth.authenticate(&Credentials::none()).await,
        AuthOutcome::NotApplicable
    ));
}

fn escape(pem: &str) -> String {
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn forwarded_certificates_only_from_trusted_proxies() {
    let pki = pki();
    let auth = authenticator(&pki, &[], MtlsPolicy::default());
    let cert = leaf(&pki.intermediate, "proxied", 90, |_| {});
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &cert)
    );
    let chain_pem = format!("{pem}{}", pki.intermediate.pem);
    let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
    let nginx = ForwardedCertificates::nginx(
        http::HeaderName::from_static("x-ssl-client-cert"),
        vec![proxy.into()],
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-ssl-client-cert", escape(&chain_pem).parse().unwrap());
    match nginx.extract(&headers, Some(proxy)).unwrap() {
        Forwarded::Certificates(chain) => assert_eq!(auth.verify(&chain).unwrap().id(), "proxied"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        nginx
            .extract(&headers, Some("203.0.113.7".parse().unwrap()))
            .unwrap(),
        Forwarded::Untrusted
    ));
    assert!(matches!(
        nginx.extract(&headers, None).unwrap(),
        Forwarded::Untrusted
    ));
    assert!(matches!(
        nginx.extract(&http::HeaderMap::new(), Some(proxy)).unwrap(),
        Forwarded::Absent
    ));

    let envoy = ForwardedCertificates::envoy(vec![proxy.into()]);
    let mut headers = http::HeaderMap::new();
    let xfcc = format!(
        "By=spiffe://mesh/ns/a;Hash=abc;Cert=\"{}\";Chain=\"{}\";Subject=\"CN=proxied\";URI=",
        escape(&pem),
        escape(&chain_pem)
    );
    headers.insert("x-forwarded-client-cert", xfcc.parse().unwrap());
    match envoy.extract(&headers, Some(proxy)).unwrap() {
        Forwarded::Certificates(chain) => {
            assert_eq!(chain.len(), 2);
            assert_eq!(auth.verify(&chain).unwrap().id(), "proxied");
        }
        other => panic!("{other:?}"),
    }
    let mut bad = http::HeaderMap::new();
    bad.insert("x-forwarded-client-cert", "Cert=\"%ZZ\"".parse().unwrap());
    assert!(envoy.extract(&bad, Some(proxy)).is_err());
}

#[test]
fn amaters_configuration_with_a_ca_directory_and_crl_file() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("portcullis-mtls-{}", std::process::id()));
    let ca_dir = dir.join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("root.pem"), &pki.root.pem).unwrap();
    let crl_der = crl(&pki.intermediate, &[101], now() + Duration::days(7));
    let root_crl = crl(&pki.root, &[], now() + Duration::days(7));
    let to_pem = |der: &[u8]| {
        format!(
            "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
        )
    };
    std::fs::write(
        dir.join("crl.pem"),
        format!("{}{}", to_pem(&crl_der), to_pem(&root_crl)),
    )
    .unwrap();
    let config: AmatersMtlsConfig = toml::from_str(
        r#"
        enabled = true
        ca_certs_dir = "ca"
        crl_path = "crl.pem"
        verify_cn = true
        allowed_organizations = ["Acme"]
        "#,
    )
    .unwrap();
    let auth = config.authenticator(&dir).unwrap();
    let good = leaf(&pki.intermediate, "alice", 100, |p| {
        p.distinguished_name.push(DnType::OrganizationName, "Acme")
    });
    assert_eq!(auth.verify(&chain(&pki, good)).unwrap().id(), "alice");
    let revoked = leaf(&pki.intermediate, "bob", 101, |p| {
        p.distinguished_name.push(DnType::OrganizationName, "Acme")
    });
    assert_eq!(
        auth.verify(&chain(&pki, revoked)).unwrap_err(),
        MtlsError::Revoked
    );
    // Reload with an untrusted directory fails and keeps the anchors in force.
    assert!(
        auth.store()
            .reload(&[dir.join("missing").as_path()], None)
            .is_err()
    );
    assert_eq!(auth.store().snapshot().anchor_count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
