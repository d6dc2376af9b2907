//! Third-party vectors: Wycheproof JWS/JWK (its signature primitives are run against the
//! provider in `src/provider/tests.rs`), the RFC 7515/7519/7797/
//! 8037 examples and the RFC 7520 JOSE cookbook, from `shared/vectors/`.
//!
//! Label quirks overridden here (documented in `shared/SECURITY-CHECKLIST.md` §1):
//! * JWS tc367, tc370 are byte-identical to the valid tc357 but labelled invalid: accepted.
//! * JWS tc372, tc373 contain `?` but are labelled valid: rejected (strict base64url).
//! * JWS tc346, tc350: the key says PS256, the token is PS384: rejected (alg bound to key).
//! * JWS tc347, tc351: key alg "ES521" / ES512 token, unsupported: rejected.
//! * JWS tc349 (`key_ops: ["sign, verify"]` on the private key) agrees with its label: the
//!   verifier uses the group's public key, which has no `key_ops`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_core::{Clock, ManualClock};
use portcullis_jwt::jws::verify_compact_jws;
use portcullis_jwt::{
    Algorithm, IssuerConfig, IssuerMatcher, JwkPolicy, JwtAuthenticator, JwtError, KeySet,
};
use serde_json::Value;

fn load(path: &str) -> Option<Value> {
    portcullis_testkit::vectors::json(path)
}

/// Runs a Wycheproof JOSE file (JWS or JWK) and returns the tcIds whose outcome differs
/// from the label.
fn run_jose_file(path: &str) -> Option<(usize, BTreeMap<u64, String>)> {
    let file = load(path)?;
    let mut count = 0;
    let mut differences = BTreeMap::new();
    for group in file["testGroups"].as_array().unwrap() {
        let key = group.get("public").unwrap_or(&group["private"]);
        let keys = KeySet::from_jwks_json(key.to_string().as_bytes(), &JwkPolicy::default());
        for test in group["tests"].as_array().unwrap() {
            count += 1;
            let id = test["tcId"].as_u64().unwrap();
            let expected = test["result"].as_str().unwrap();
            let jws = test["jws"].as_str().unwrap();
            let outcome = match &keys {
                Err(e) => Err(format!("key set refused: {e}")),
                Ok(keys) => verify_compact_jws(jws, keys, 64 * 1024)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            let agrees = match expected {
                "valid" => outcome.is_ok(),
                "invalid" => outcome.is_err(),
                _ => true,
            };
            if !agrees {
                differences.insert(id, format!("{expected}: {outcome:?} ({})", test["comment"]));
            }
        }
    }
    Some((count, differences))
}

#[test]
fn wycheproof_json_web_signature() {
    let Some((count, differences)) =
        run_jose_file("wycheproof/testvectors_v1/json_web_signature_test.json")
    else {
        return;
    };
    assert_eq!(count, 401);
    let expected: Vec<u64> = vec![346, 347, 350, 351, 367, 370, 372, 373];
    assert_eq!(
        differences.keys().copied().collect::<Vec<_>>(),
        expected,
        "unexpected disagreements: {differences:#?}"
    );
}

#[test]
fn wycheproof_json_web_key() {
    let Some((count, differences)) =
        run_jose_file("wycheproof/testvectors_v1/json_web_key_test.json")
    else {
        return;
    };
    assert_eq!(count, 26);
    assert!(differences.is_empty(), "{differences:#?}");
}

#[test]
fn wycheproof_json_web_crypto_signatures() {
    // The older combined file: only its JWS groups apply (JWE is not supported).
    let Some(file) = load("wycheproof/testvectors_v1/json_web_crypto_test.json") else {
        return;
    };
    let mut checked = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let Some(key) = group.get("public").or_else(|| group.get("private")) else {
            continue;
        };
        for test in group["tests"].as_array().unwrap() {
            let Some(jws) = test.get("jws").and_then(Value::as_str) else {
                continue;
            };
            checked += 1;
            let keys = KeySet::from_jwks_json(key.to_string().as_bytes(), &JwkPolicy::default());
            let accepted = keys
                .as_ref()
                .is_ok_and(|keys| verify_compact_jws(jws, keys, 64 * 1024).is_ok());
            if test["result"] == "invalid" {
                assert!(!accepted, "tcId {} accepted", test["tcId"]);
            }
        }
    }
    println!("{checked} JWS tests from json_web_crypto_test.json");
}

fn rfc_example(id: &str) -> Option<Value> {
    let file = load("rfc_jose_examples.json")?;
    let example = file["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned();
    Some(example.unwrap_or_else(|| panic!("no example {id}")))
}

fn key_set(jwk: &Value) -> KeySet {
    KeySet::from_jwks_json(
        jwk.to_string().as_bytes(),
        &JwkPolicy::default().default_hmac_alg(Some(Algorithm::HS256)),
    )
    .unwrap()
}

#[tokio::test]
async fn rfc_examples_with_valid_signatures_verify() {
    for (id, alg) in [
        ("rfc7515-A.1", Algorithm::HS256),
        ("rfc7515-A.2", Algorithm::RS256),
        ("rfc7515-A.3", Algorithm::ES256),
        ("rfc8037-A.4", Algorithm::EdDSA),
        ("rfc7797-4.1", Algorithm::HS256),
    ] {
        let Some(example) = rfc_example(id) else {
            return;
        };
        let keys = key_set(&example["key"]);
        let verified = verify_compact_jws(example["token"].as_str().unwrap(), &keys, 8192)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(verified.header.alg, alg);
        if let Some(payload) = example.get("payload_utf8").and_then(Value::as_str) {
            assert_eq!(verified.payload, payload.as_bytes(), "{id}");
        }
        // As JWTs, only the examples whose payload is a claims set get past parsing.
        let verifier = JwtAuthenticator::builder()
            .issuer(IssuerConfig::with_matcher(IssuerMatcher::Unchecked, keys))
            .build()
            .unwrap();
        let jwt = verifier.verify(example["token"].as_str().unwrap()).await;
        let claims_set = matches!(id, "rfc7515-A.1" | "rfc7515-A.2" | "rfc7515-A.3");
        match jwt {
            Err(JwtError::Expired) => assert!(claims_set, "{id}"),
            Err(JwtError::Malformed(_)) => assert!(!claims_set, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rfc7519_example_jwt_is_expired_now_and_valid_in_2011() {
    let Some(example) = rfc_example("rfc7515-A.1") else {
        return;
    };
    let keys = key_set(&example["key"]);
    let token = example["token"].as_str().unwrap();
    let at = |unix: i64| -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(
            time::OffsetDateTime::from_unix_timestamp(unix).unwrap(),
        ))
    };
    let verifier = |clock| {
        JwtAuthenticator::builder()
            .issuer(IssuerConfig::new("joe", keys.clone()))
            .clock(clock)
            .build()
            .unwrap()
    };
    let now = verifier(at(time::OffsetDateTime::now_utc().unix_timestamp()));
    assert_eq!(now.verify(token).await.unwrap_err(), JwtError::Expired);
    // One minute before exp the signature and claims hold (there is no sub, so no principal).
    let then = verifier(at(1_300_819_380 - 60));
    assert_eq!(
        then.verify(token).await.unwrap_err(),
        JwtError::MissingClaim("sub")
    );
    let unchecked = JwtAuthenticator::builder()
        .issuer(IssuerConfig::with_matcher(
            IssuerMatcher::Exact(vec!["mallory".into()]),
            keys.clone(),
        ))
        .build()
        .unwrap();
    assert_eq!(
        unchecked.verify(token).await.unwrap_err(),
        JwtError::UnknownIssuer
    );
}

#[test]
fn rfc_examples_that_must_be_rejected() {
    let cases = [
        ("rfc7515-A.4", "ES512 is not supported"),
        ("rfc7515-A.5", "alg none"),
        ("rfc7515-A.6", "JSON serialization"),
        ("rfc7515-A.7", "flattened JSON serialization"),
        ("rfc7515-E", "crit with an unknown extension"),
        ("rfc7519-A.1", "JWE"),
        ("rfc7519-A.2", "nested JWT in a JWE"),
        ("rfc7797-4.2", "b64 false, detached payload"),
    ];
    let fallback = KeySet::new(vec![
        portcullis_jwt::VerificationKey::hmac(Algorithm::HS256, &[9; 32]).unwrap(),
    ])
    .unwrap();
    for (id, why) in cases {
        let Some(example) = rfc_example(id) else {
            return;
        };
        let keys = example.get("key").map_or_else(
            || fallback.clone(),
            |k| {
                KeySet::from_jwks_json(
                    k.to_string().as_bytes(),
                    &JwkPolicy::default().default_hmac_alg(Some(Algorithm::HS256)),
                )
                .unwrap_or_else(|_| fallback.clone())
            },
        );
        let token = example["token"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| example["token"].to_string());
        assert!(
            verify_compact_jws(&token, &keys, 64 * 1024).is_err(),
            "{id} accepted ({why})"
        );
    }
}

#[test]
fn jose_cookbook_compact_signatures() {
    let Some(dir) = portcullis_testkit::vectors::dir() else {
        return;
    };
    let mut verified = 0;
    for (file, outcome) in [
        ("4_1.rsa_v15_signature.json", true),
        ("4_2.rsa-pss_signature.json", true),
        ("4_3.ecdsa_signature.json", false), // ES512: unsupported, refused cleanly
        ("4_4.hmac-sha2_integrity_protection.json", true),
    ] {
        let text = std::fs::read_to_string(dir.join("jose-cookbook/jws").join(file)).unwrap();
        let example: Value = serde_json::from_str(&text).unwrap();
        let compact = example["output"]["compact"].as_str().unwrap();
        // The cookbook's RSA key has no `alg`: it may be used with any RSA algorithm (the
        // issuer's allowed algorithms narrow that), so the RS256 and the PS384 examples both
        // verify with it.
        let policy = JwkPolicy::default();
        let keys = KeySet::from_jwks_json(example["input"]["key"].to_string().as_bytes(), &policy);
        let result = keys.map_err(|e| e.to_string()).and_then(|keys| {
            verify_compact_jws(compact, &keys, 64 * 1024).map_err(|e| e.to_string())
        });
        assert_eq!(result.is_ok(), outcome, "{file}: {result:?}");
        if let Ok(jws) = result {
            assert_eq!(
                jws.payload,
                example["input"]["payload"].as_str().unwrap().as_bytes()
            );
            verified += 1;
        }
    }
    assert_eq!(verified, 3);
}
