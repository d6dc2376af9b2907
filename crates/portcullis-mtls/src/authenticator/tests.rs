//! x509-limbo's `crl::*` and `pathlen::*` cases through the authenticator's trust machinery:
//! the CRL loading and checks, the revocation options and the path building that client
//! authentication uses. Their leaves are server certificates (limbo validates them as
//! `SERVER`), so the path is checked for `serverAuth` here; `tests/fail_closed.rs` runs the
//! same cases through the public client authenticator, where each is refused as a client
//! certificate.

use std::collections::BTreeSet;
use std::sync::Arc;

use portcullis_core::ManualClock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::Value;
use time::OffsetDateTime;
use webpki::KeyUsage;

use super::{MtlsAuthenticator, MtlsPolicy};
use crate::{IdentitySource, TrustMaterial, TrustStore};

fn limbo() -> Option<Value> {
    portcullis_testkit::vectors::json("x509-limbo/limbo.json")
}

fn pems<T: PemObject>(values: &Value) -> Vec<T> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|pem| T::from_pem_slice(pem.as_str().unwrap().as_bytes()).unwrap())
        .collect()
}

/// Runs a case; `Ok` when the chain is accepted.
fn run(case: &Value) -> Result<(), String> {
    let time = case["validation_time"]
        .as_str()
        .map_or_else(OffsetDateTime::now_utc, |t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
        });
    let crls: Vec<CertificateRevocationListDer<'static>> = pems(&case["crls"]);
    let trusted: Vec<CertificateDer<'static>> = pems(&case["trusted_certs"]);
    let intermediates: Vec<CertificateDer<'static>> = pems(&case["untrusted_intermediates"]);
    let peer =
        CertificateDer::from_pem_slice(case["peer_certificate"].as_str().unwrap().as_bytes())
            .unwrap();
    let material = TrustMaterial::new(&trusted, &crls, time).map_err(|e| e.to_string())?;
    // limbo's max chain depth counts intermediates; the policy bounds the presented chain.
    let max_chain_len = case["max_chain_depth"]
        .as_u64()
        .map_or(16, |depth| usize::try_from(depth).unwrap() + 1);
    let authenticator = MtlsAuthenticator::new(
        Arc::new(TrustStore::new(material)),
        MtlsPolicy {
            identity: IdentitySource::SanDns,
            max_chain_len,
            ..MtlsPolicy::default()
        },
    )
    .with_clock(Arc::new(ManualClock::new(time)));
    authenticator
        .check_bounds(1 + intermediates.len(), 0)
        .map_err(|e| e.to_string())?;
    authenticator
        .verify_path_for(&peer, &intermediates, time, KeyUsage::server_auth())
        .map_err(|e| e.to_string())
}

#[test]
fn limbo_crl_and_pathlen_cases() {
    let Some(limbo) = limbo() else { return };
    let mut ran = 0;
    let mut differences = BTreeSet::new();
    for case in limbo["testcases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        if !id.starts_with("crl::") && !id.starts_with("pathlen::") {
            continue;
        }
        ran += 1;
        let expected = case["expected_result"] == "SUCCESS";
        let result = run(case);
        if result.is_ok() != expected {
            assert!(
                result.is_err(),
                "{id}: an invalid chain was accepted (expected failure)"
            );
            differences.insert(id.to_owned());
        }
    }
    assert_eq!(ran, 21);
    // Known differences, all refusing a chain limbo accepts (fail closed): webpki refuses a
    // CA certificate as the end entity even with pathlen (by design), does not treat a
    // self-issued intermediate as free of path length, and the presented-chain bound counts
    // every certificate sent, self-issued ones included.
    let known: BTreeSet<String> = [
        "pathlen::validation-ignores-pathlen-in-leaf",
        "pathlen::self-issued-certs-pathlen",
        "pathlen::max-chain-depth-1-self-issued",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(differences, known);
}
