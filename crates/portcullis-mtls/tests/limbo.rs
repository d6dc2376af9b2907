//! The x509-limbo cases that concern client authentication (`validation_kind: CLIENT`), run
//! through `MtlsAuthenticator` (identity from the email SAN, `clientAuth` required).
//!
//! Known differences, all in the fail-closed direction (a valid certificate refused, never
//! an invalid one accepted): rustls-webpki 0.103 does not implement rfc822Name (email) name
//! constraints and rejects every email SAN under an email-constrained CA, so the five
//! `rfc5280::nc::nc-permits-email-*` cases expected to succeed fail
//! (`shared/SECURITY-CHECKLIST.md` §3 and §5b record the same observation).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use portcullis_core::{ManualClock, PeerCertificates};
use portcullis_mtls::{IdentitySource, MtlsAuthenticator, MtlsPolicy, TrustMaterial, TrustStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::Value;
use time::OffsetDateTime;

fn limbo() -> Option<Value> {
    portcullis_testkit::vectors::json("x509-limbo/limbo.json")
}

fn certs(values: &Value) -> Vec<CertificateDer<'static>> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_str().unwrap().as_bytes()).unwrap())
        .collect()
}

/// The `crl::*` and `pathlen::*` cases are server certificates (`serverAuth` only): through
/// the client authenticator every one of them is refused, the ones limbo accepts for their
/// intended use because they are not client certificates. Their CRL and path-length
/// semantics run through the same trust machinery in the crate's unit tests
/// (`authenticator/tests.rs`), validated for `serverAuth` as limbo does.
#[test]
fn crl_and_pathlen_cases_are_not_client_certificates() {
    let Some(limbo) = limbo() else { return };
    let mut ran = 0;
    for case in limbo["testcases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        if !id.starts_with("crl::") && !id.starts_with("pathlen::") {
            continue;
        }
        ran += 1;
        let time = case["validation_time"]
            .as_str()
            .map_or_else(OffsetDateTime::now_utc, |t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
            });
        let crls: Vec<CertificateRevocationListDer<'static>> = case["crls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pem| {
                CertificateRevocationListDer::from_pem_slice(pem.as_str().unwrap().as_bytes())
                    .unwrap()
            })
            .collect();
        let peer =
            CertificateDer::from_pem_slice(case["peer_certificate"].as_str().unwrap().as_bytes())
                .unwrap();
        let mut chain = vec![peer];
        chain.extend(certs(&case["untrusted_intermediates"]));
        let Ok(material) = TrustMaterial::new(&certs(&case["trusted_certs"]), &crls, time) else {
            assert_ne!(
                case["expected_result"], "SUCCESS",
                "{id}: a valid CRL was refused"
            );
            continue;
        };
        let authenticator = MtlsAuthenticator::new(
            Arc::new(TrustStore::new(material)),
            MtlsPolicy::default()
                .identity(IdentitySource::SanDns)
                .max_chain_len(16),
        )
        .with_clock(Arc::new(ManualClock::new(time)));
        let result = authenticator.verify(&PeerCertificates::new(chain));
        assert!(
            result.is_err(),
            "{id}: a server certificate authenticated a client"
        );
    }
    assert_eq!(ran, 21);
}

#[test]
fn client_authentication_cases() {
    let Some(limbo) = limbo() else { return };
    let mut differences = BTreeSet::new();
    let mut ran = 0;
    for case in limbo["testcases"].as_array().unwrap() {
        if case["validation_kind"] != "CLIENT" {
            continue;
        }
        ran += 1;
        let id = case["id"].as_str().unwrap().to_owned();
        let time = match case["validation_time"].as_str() {
            Some(t) => {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
            }
            None => OffsetDateTime::now_utc(),
        };
        let crls: Vec<CertificateRevocationListDer<'static>> = case["crls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pem| {
                CertificateRevocationListDer::from_pem_slice(pem.as_str().unwrap().as_bytes())
                    .unwrap()
            })
            .collect();
        let peer =
            CertificateDer::from_pem_slice(case["peer_certificate"].as_str().unwrap().as_bytes())
                .unwrap();
        let mut chain = vec![peer];
        chain.extend(certs(&case["untrusted_intermediates"]));
        let accepted =
            TrustMaterial::new(&certs(&case["trusted_certs"]), &crls, time).is_ok_and(|material| {
                let authenticator = MtlsAuthenticator::new(
                    Arc::new(TrustStore::new(material)),
                    MtlsPolicy::default()
                        .identity(IdentitySource::SanEmail)
                        .max_chain_len(16),
                )
                .with_clock(Arc::new(ManualClock::new(time)));
                authenticator.verify(&PeerCertificates::new(chain)).is_ok()
            });
        let expected = case["expected_result"] == "SUCCESS";
        if accepted != expected {
            assert!(!accepted, "{id}: an invalid certificate was accepted");
            differences.insert(id);
        }
    }
    assert_eq!(ran, 10);
    let known: BTreeSet<String> = [
        "rfc5280::nc::nc-permits-email-domain",
        "rfc5280::nc::nc-permits-email-exact",
        "rfc5280::nc::nc-permits-email-literal-asterisk-exact-match",
        "rfc5280::nc::nc-permits-email-literal-double-asterisk",
        "rfc5280::nc::nc-permits-email-literal-mid-asterisk",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(differences, known);
}
