//! The provider's factories, and the Wycheproof signature primitives run through them.

use serde_json::Value;

use super::*;

#[test]
fn hmac_round_trip_through_the_factories() {
    let secret = [7u8; 32];
    let signer = (RING_PROVIDER.signer_factory)(
        &jsonwebtoken::Algorithm::HS256,
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    let verifier = (RING_PROVIDER.verifier_factory)(
        &jsonwebtoken::Algorithm::HS256,
        &DecodingKey::from_secret(&secret),
    )
    .unwrap();
    let tag = signer.try_sign(b"message").unwrap();
    assert!(verifier.verify(b"message", &tag).is_ok());
    assert!(verifier.verify(b"messagf", &tag).is_err());
}

#[test]
fn a_key_of_another_family_is_refused() {
    let key = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
    assert!((RING_PROVIDER.verifier_factory)(&jsonwebtoken::Algorithm::RS256, &key).is_err());
    let key = DecodingKey::from_ed_der(&[1; 32]);
    assert!((RING_PROVIDER.verifier_factory)(&jsonwebtoken::Algorithm::HS256, &key).is_err());
}

#[test]
fn jwk_helpers_work_with_ring_keys() {
    let rng = SystemRandom::new();
    let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let public = ed_component_from_private_key(pkcs8.as_ref(), &EllipticCurve::Ed25519).unwrap();
    assert_eq!(public.len(), 32);
    let pkcs8 =
        sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let (curve, x, y) =
        ec_components_from_private_key(pkcs8.as_ref(), jsonwebtoken::Algorithm::ES256).unwrap();
    assert_eq!((curve, x.len(), y.len()), (EllipticCurve::P256, 32, 32));
    assert_eq!(
        compute_digest(b"abc", ThumbprintHash::SHA256)
            .unwrap()
            .len(),
        32
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs a Wycheproof primitive file through the provider; returns (checked, disagreements).
fn run_primitive(
    path: &str,
    alg: Algorithm,
    key_of: impl Fn(&Value) -> DecodingKey,
) -> Option<(usize, Vec<u64>)> {
    let file = portcullis_testkit::vectors::json(path)?;
    let mut checked = 0;
    let mut differences = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        if let Some(tag) = group.get("tagSize").and_then(Value::as_u64) {
            let full = match alg {
                Algorithm::HS384 => 384,
                Algorithm::HS512 => 512,
                _ => 256,
            };
            if tag != full {
                continue; // truncated MACs do not exist in JWS
            }
        }
        let shared_key = if group.get("tagSize").is_some() {
            None
        } else {
            Some(key_of(group))
        };
        let jwt_alg = alg.to_jsonwebtoken();
        for test in group["tests"].as_array().unwrap() {
            let key = match &shared_key {
                Some(key) => key.clone(),
                None => key_of(test),
            };
            let Ok(verifier) = (RING_PROVIDER.verifier_factory)(&jwt_alg, &key) else {
                // ring refuses the key itself (e.g. an out-of-range RSA key): a rejection.
                if test["result"] == "valid" {
                    differences.push(test["tcId"].as_u64().unwrap());
                }
                checked += 1;
                continue;
            };
            let message = hex(test["msg"].as_str().unwrap());
            let signature = hex(test
                .get("sig")
                .or_else(|| test.get("tag"))
                .and_then(Value::as_str)
                .unwrap());
            let ok = verifier.verify(&message, &signature).is_ok();
            let agrees = match test["result"].as_str().unwrap() {
                "valid" => ok,
                "invalid" => !ok,
                _ => true,
            };
            if !agrees {
                differences.push(test["tcId"].as_u64().unwrap());
            }
            checked += 1;
        }
    }
    Some((checked, differences))
}

/// Builds the key of a Wycheproof group (or test, for MAC files).
type KeyOf = fn(&Value) -> DecodingKey;

fn ec_key(group: &Value) -> DecodingKey {
    let key = &group["publicKey"];
    let size = if key["curve"] == "secp256r1" { 32 } else { 48 };
    let strip = |s: &str| {
        let mut bytes = hex(s);
        while bytes.len() > size && bytes[0] == 0 {
            bytes.remove(0);
        }
        let mut padded = vec![0; size.saturating_sub(bytes.len())];
        padded.extend(bytes);
        padded
    };
    let mut point = vec![4];
    point.extend(strip(key["wx"].as_str().unwrap()));
    point.extend(strip(key["wy"].as_str().unwrap()));
    DecodingKey::from_ec_der(&point)
}

fn rsa_key(group: &Value) -> DecodingKey {
    let key = &group["publicKey"];
    let strip = |s: &str| {
        let mut bytes = hex(s);
        while bytes.len() > 1 && bytes[0] == 0 {
            bytes.remove(0);
        }
        bytes
    };
    DecodingKey::from_rsa_raw_components(
        &strip(key["modulus"].as_str().unwrap()),
        &strip(key["publicExponent"].as_str().unwrap()),
    )
}

#[test]
fn wycheproof_primitives_through_the_ring_provider() {
    let cases: Vec<(&str, Algorithm, KeyOf)> = vec![
        (
            "ecdsa_secp256r1_sha256_p1363_test.json",
            Algorithm::ES256,
            ec_key,
        ),
        (
            "ecdsa_secp384r1_sha384_p1363_test.json",
            Algorithm::ES384,
            ec_key,
        ),
        ("ed25519_test.json", Algorithm::EdDSA, |g| {
            DecodingKey::from_ed_der(&hex(g["publicKey"]["pk"].as_str().unwrap()))
        }),
        (
            "rsa_signature_2048_sha256_test.json",
            Algorithm::RS256,
            rsa_key,
        ),
        (
            "rsa_signature_3072_sha384_test.json",
            Algorithm::RS384,
            rsa_key,
        ),
        (
            "rsa_signature_4096_sha512_test.json",
            Algorithm::RS512,
            rsa_key,
        ),
        (
            "rsa_pss_2048_sha256_mgf1_32_test.json",
            Algorithm::PS256,
            rsa_key,
        ),
        (
            "rsa_pss_3072_sha256_mgf1_32_test.json",
            Algorithm::PS256,
            rsa_key,
        ),
        (
            "rsa_pss_2048_sha384_mgf1_48_test.json",
            Algorithm::PS384,
            rsa_key,
        ),
        (
            "rsa_pss_4096_sha512_mgf1_64_test.json",
            Algorithm::PS512,
            rsa_key,
        ),
        ("hmac_sha256_test.json", Algorithm::HS256, |t| {
            DecodingKey::from_secret(&hex(t["key"].as_str().unwrap()))
        }),
        ("hmac_sha384_test.json", Algorithm::HS384, |t| {
            DecodingKey::from_secret(&hex(t["key"].as_str().unwrap()))
        }),
        ("hmac_sha512_test.json", Algorithm::HS512, |t| {
            DecodingKey::from_secret(&hex(t["key"].as_str().unwrap()))
        }),
    ];
    let mut total = 0;
    for (file, alg, key_of) in cases {
        let Some((checked, differences)) =
            run_primitive(&format!("wycheproof/testvectors_v1/{file}"), alg, key_of)
        else {
            return;
        };
        assert!(checked > 50, "{file}: only {checked} tests ran");
        assert!(
            differences.is_empty(),
            "{file}: disagreements on tcIds {differences:?}"
        );
        total += checked;
    }
    println!("{total} primitive signature vectors agree");
}
