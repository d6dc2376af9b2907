//! Every item J1–J33 of `shared/SECURITY-CHECKLIST.md` §4 as a named test, run through
//! `JwtAuthenticator` exactly as a service would use it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::{AuthErrorKind, AuthOutcome, Authenticator, Clock, Credentials, ManualClock};
use portcullis_jwt::{
    Algorithm, ClaimMapping, ClaimPath, ConfigError, IssuerConfig, IssuerMatcher, JwkPolicy,
    JwtAuthenticator, JwtError, KeyError, KeyReferencePolicy, KeySet, SigningKey, TokenIssuer,
    TokenProfile, TokenRequest, TypPolicy, Validation, VerificationKey,
};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use serde_json::{Value, json};
use time::OffsetDateTime;

const NOW: i64 = 1_800_000_000;
const SECRET: &[u8] = b"an-hs256-secret-of-32-bytes-or-more!";
const ISS: &str = "https://issuer.example";
const AUD: &str = "api";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
    ))
}

/// A token from raw header and claims JSON, MACed with `secret`.
fn hs(header: &str, claims: &str, secret: &[u8], alg: hmac::Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
    format!("{input}.{}", b64(tag))
}

fn hs256(header: &str, claims: &str) -> String {
    hs(header, claims, SECRET, hmac::HMAC_SHA256)
}

fn good_claims() -> String {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 600, "iat": NOW - 10, "roles": ["admin"]})
        .to_string()
}

fn claims_with(changes: Value) -> String {
    let mut claims: Value = serde_json::from_str(&good_claims()).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims.to_string()
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn hmac_key() -> VerificationKey {
    VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap()
}

fn verifier_with(issuer: IssuerConfig) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(issuer)
        .clock(clock())
        .build()
        .unwrap()
}

fn verifier() -> JwtAuthenticator {
    verifier_with(
        IssuerConfig::new(ISS, hmac_key()).validation(
            Validation::default()
                .audiences([AUD])
                .leeway(Duration::ZERO)
                .unwrap(),
        ),
    )
}

async fn verify(token: &str) -> Result<portcullis_core::Principal, JwtError> {
    verifier().verify(token).await
}

#[tokio::test]
async fn baseline_a_good_token_is_accepted() {
    let principal = verify(&hs256(HEADER, &good_claims())).await.unwrap();
    assert_eq!(principal.id(), "alice");
    assert!(principal.has_role("admin"));
    assert_eq!(principal.attribute("iss"), Some(&json!(ISS)));
}

#[tokio::test]
async fn j01_alg_none_is_rejected_in_every_spelling() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = format!(r#"{{"alg":"{alg}"}}"#);
        let unsigned = format!("{}.{}.", b64(&header), b64(good_claims()));
        assert!(verify(&unsigned).await.is_err(), "{alg} unsigned");
        let with_sig = format!("{}.{}.{}", b64(&header), b64(good_claims()), b64("x"));
        assert_eq!(
            verify(&with_sig).await.unwrap_err(),
            JwtError::AlgorithmNone,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn j02_an_algorithm_other_than_the_keys_is_rejected() {
    let hs384 = hs(
        r#"{"alg":"HS384"}"#,
        &good_claims(),
        SECRET,
        hmac::HMAC_SHA384,
    );
    assert_eq!(
        verify(&hs384).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );
    let lowercase = hs256(r#"{"alg":"hs256"}"#, &good_claims());
    assert_eq!(
        verify(&lowercase).await.unwrap_err(),
        JwtError::UnsupportedAlgorithm
    );
}

fn ec_key_pair() -> (sig::EcdsaKeyPair, Value) {
    let rng = SystemRandom::new();
    let pkcs8 =
        sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "ec-1",
        "x": b64(&point[1..33]), "y": b64(&point[33..])});
    (pair, jwk)
}

fn es256(pair: &sig::EcdsaKeyPair, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature))
}

fn ec_verifier(jwk: &Value) -> JwtAuthenticator {
    let keys = KeySet::from_jwks_json(
        json!({"keys": [jwk]}).to_string().as_bytes(),
        &JwkPolicy::default(),
    )
    .unwrap();
    verifier_with(IssuerConfig::new(ISS, keys).audiences([AUD]))
}

fn rfc_rsa_public_jwk() -> Value {
    // RFC 7515 Appendix A.2's RSA public key.
    json!({"kty":"RSA","kid":"rsa-1","alg":"RS256",
        "n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
        "e":"AQAB"})
}

#[tokio::test]
async fn j03_hmac_keyed_with_a_public_key_is_rejected() {
    // HS256 MACed with the EC public point, and with the RSA modulus.
    let (_, ec_jwk) = ec_key_pair();
    let point: Vec<u8> = [
        vec![4u8],
        URL_SAFE_NO_PAD
            .decode(ec_jwk["x"].as_str().unwrap())
            .unwrap(),
        URL_SAFE_NO_PAD
            .decode(ec_jwk["y"].as_str().unwrap())
            .unwrap(),
    ]
    .concat();
    let forged = hs(
        r#"{"alg":"HS256","kid":"ec-1"}"#,
        &good_claims(),
        &point,
        hmac::HMAC_SHA256,
    );
    assert_eq!(
        ec_verifier(&ec_jwk).verify(&forged).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );
    let forged_json = hs(
        r#"{"alg":"HS256","kid":"ec-1"}"#,
        &good_claims(),
        ec_jwk.to_string().as_bytes(),
        hmac::HMAC_SHA256,
    );
    assert_eq!(
        ec_verifier(&ec_jwk).verify(&forged_json).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );

    let rsa = rfc_rsa_public_jwk();
    let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    let forged = hs(
        r#"{"alg":"HS256","kid":"rsa-1"}"#,
        &good_claims(),
        &n,
        hmac::HMAC_SHA256,
    );
    assert_eq!(
        ec_verifier(&rsa).verify(&forged).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );
    // A set cannot mix HMAC and public keys, so no allow-list can mix the families.
    let mixed = KeySet::new(vec![
        hmac_key().with_kid("h"),
        VerificationKey::from_jwk(&rsa, &JwkPolicy::default())
            .unwrap()
            .unwrap(),
    ]);
    assert_eq!(mixed.unwrap_err(), KeyError::MixedKeySet);
}

#[tokio::test]
async fn j04_a_jwk_is_only_used_for_its_algorithm_and_purpose() {
    let (pair, mut jwk) = ec_key_pair();
    let token = es256(&pair, r#"{"alg":"ES256","kid":"ec-1"}"#, &good_claims());
    assert!(ec_verifier(&jwk).verify(&token).await.is_ok());
    // use: enc keys are left out of the set, so nothing verifies with them.
    jwk["use"] = json!("enc");
    let set = KeySet::from_jwks_json(
        json!({"keys": [jwk.clone()]}).to_string().as_bytes(),
        &JwkPolicy::default(),
    )
    .unwrap();
    assert!(set.is_empty() && set.skipped().len() == 1);
    jwk["use"] = json!("sig");
    jwk["key_ops"] = json!(["sign"]);
    let set = KeySet::from_jwks_json(
        json!({"keys": [jwk.clone()]}).to_string().as_bytes(),
        &JwkPolicy::default(),
    )
    .unwrap();
    assert!(set.is_empty());
    jwk.as_object_mut().unwrap().remove("key_ops");
    // alg / crv disagreement is an error.
    jwk["alg"] = json!("ES384");
    assert!(VerificationKey::from_jwk(&jwk, &JwkPolicy::default()).is_err());
    // An RSA key bound to PS256 does not verify RS256 tokens.
    let mut rsa = rfc_rsa_public_jwk();
    rsa["alg"] = json!("PS256");
    let key = VerificationKey::from_jwk(&rsa, &JwkPolicy::default())
        .unwrap()
        .unwrap();
    assert_eq!(key.algorithm(), Some(Algorithm::PS256));
    assert_eq!(
        key.verify(Algorithm::RS256, b"x", &vec![0; 256]),
        Err(JwtError::AlgorithmMismatch)
    );
}

#[test]
fn j05_weak_keys_are_refused_at_load() {
    assert!(matches!(
        VerificationKey::hmac(Algorithm::HS256, b""),
        Err(KeyError::Weak(_))
    ));
    assert!(matches!(
        VerificationKey::hmac(Algorithm::HS256, &[1; 31]),
        Err(KeyError::Weak(_))
    ));
    assert!(matches!(
        VerificationKey::hmac(Algorithm::HS384, &[1; 47]),
        Err(KeyError::Weak(_))
    ));
    assert!(matches!(
        VerificationKey::hmac(Algorithm::HS512, &[1; 63]),
        Err(KeyError::Weak(_))
    ));
    let mut rsa = rfc_rsa_public_jwk();
    rsa["e"] = json!("AQ"); // e = 1
    assert!(matches!(
        VerificationKey::from_jwk(&rsa, &JwkPolicy::default()),
        Err(KeyError::Weak(_))
    ));
    let mut short = rfc_rsa_public_jwk();
    let n = URL_SAFE_NO_PAD
        .decode(short["n"].as_str().unwrap())
        .unwrap();
    short["n"] = json!(b64(&n[..128])); // 1024 bits
    assert!(matches!(
        VerificationKey::from_jwk(&short, &JwkPolicy::default()),
        Err(KeyError::Weak(_))
    ));
    // The ROCA fingerprint is checked with the Wycheproof key in tests/vectors.rs (JWK tc7).
}

#[test]
fn j06_keyset_hygiene() {
    let a = json!({"kty":"oct","alg":"HS256","kid":"k","k": b64([1u8; 32])});
    let b = json!({"kty":"oct","alg":"HS256","kid":"k","k": b64([2u8; 32])});
    let dup = json!({"keys": [a, b]}).to_string();
    assert_eq!(
        KeySet::from_jwks_json(dup.as_bytes(), &JwkPolicy::default()).unwrap_err(),
        KeyError::DuplicateKid
    );
    let (_, ec) = ec_key_pair();
    let mixed =
        json!({"keys": [json!({"kty":"oct","alg":"HS256","kid":"h","k": b64([1u8; 32])}), ec]})
            .to_string();
    assert_eq!(
        KeySet::from_jwks_json(mixed.as_bytes(), &JwkPolicy::default()).unwrap_err(),
        KeyError::MixedKeySet
    );
}

#[tokio::test]
async fn j07_kid_is_an_exact_lookup_without_fallback() {
    // The only key is unnamed (a configured secret or PEM key): a token naming any kid is
    // checked with it, as a real provider's tokens carry a kid. The kid is never used as a
    // path, a query or anything but an exact map key, so injection strings are inert: the
    // signature decides.
    let other_secret = b"another-secret-of-32-bytes-or-more!!";
    for kid in [
        json!("../../dev/null"),
        json!("' OR '1'='1"),
        json!("|cmd"),
        json!("\u{0}"),
        json!("x".repeat(200)),
        json!("unknown"),
    ] {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        assert!(
            verify(&hs256(&header, &good_claims())).await.is_ok(),
            "{kid}"
        );
        let forged = hs(&header, &good_claims(), other_secret, hmac::HMAC_SHA256);
        assert_eq!(
            verify(&forged).await.unwrap_err(),
            JwtError::BadSignature,
            "{kid}"
        );
    }
    // A kid that is not a string, or longer than a lookup key needs to be, is a malformed
    // header.
    for kid in [json!(7), json!("x".repeat(10_240))] {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        assert!(verify(&hs256(&header, &good_claims())).await.is_err());
    }
    let named = verifier_with(
        IssuerConfig::new(ISS, KeySet::new(vec![hmac_key().with_kid("k1")]).unwrap())
            .audiences([AUD]),
    );
    assert_eq!(
        named
            .verify(&hs256(r#"{"alg":"HS256","kid":"K1"}"#, &good_claims()))
            .await
            .unwrap_err(),
        JwtError::UnknownKey
    );
    assert_eq!(
        named
            .verify(&hs256(r#"{"alg":"HS256"}"#, &good_claims()))
            .await
            .unwrap_err(),
        JwtError::UnknownKey
    );
    assert!(
        named
            .verify(&hs256(r#"{"alg":"HS256","kid":"k1"}"#, &good_claims()))
            .await
            .is_ok()
    );
}

/// A TCP listener on 127.0.0.1 that counts connections.
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = (&stream).read(&mut buf);
        }
    });
    (url, count)
}

#[tokio::test]
async fn j08_jku_and_x5u_never_cause_a_fetch() {
    let (url, count) = counting_listener();
    let header = json!({"alg": "HS256", "jku": url, "x5u": url}).to_string();
    let token = hs256(&header, &good_claims());
    // Ignored by default (the token is still checked against the configured key)...
    assert!(verify(&token).await.is_ok());
    // ...or refused by policy.
    let strict = verifier_with(
        IssuerConfig::new(ISS, hmac_key())
            .audiences([AUD])
            .key_references(KeyReferencePolicy::Reject),
    );
    assert_eq!(
        strict.verify(&token).await.unwrap_err(),
        JwtError::KeyReferenceInHeader
    );
    // And a forged token pointing at the attacker's JWKS is rejected, with no connection.
    let forged = hs(&header, &good_claims(), &[9; 32], hmac::HMAC_SHA256);
    assert_eq!(verify(&forged).await.unwrap_err(), JwtError::BadSignature);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn j09_an_embedded_jwk_never_supplies_the_key() {
    let (attacker, attacker_jwk) = ec_key_pair();
    let (_, trusted_jwk) = ec_key_pair();
    let header = json!({"alg": "ES256", "kid": "ec-1", "jwk": attacker_jwk}).to_string();
    let token = es256(&attacker, &header, &good_claims());
    assert_eq!(
        ec_verifier(&trusted_jwk).verify(&token).await.unwrap_err(),
        JwtError::BadSignature
    );
    let header = json!({"alg": "ES256", "kid": "ec-1", "x5c": ["MIIB"]}).to_string();
    let token = es256(&attacker, &header, &good_claims());
    assert_eq!(
        ec_verifier(&trusted_jwk).verify(&token).await.unwrap_err(),
        JwtError::BadSignature
    );
}

#[tokio::test]
async fn j10_crit_is_refused_in_every_form() {
    for crit in [
        json!(["x-unknown"]),
        json!(["b64"]),
        json!(["exp"]),
        json!([]),
        json!("b64"),
        json!(null),
    ] {
        let header = json!({"alg": "HS256", "crit": crit, "x-unknown": "v", "exp": 1}).to_string();
        assert_eq!(
            verify(&hs256(&header, &good_claims())).await.unwrap_err(),
            JwtError::CriticalHeader,
            "{crit}"
        );
    }
}

#[tokio::test]
async fn j11_unencoded_payload_is_refused() {
    let header = r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#;
    assert!(verify(&hs256(header, &good_claims())).await.is_err());
    let header = r#"{"alg":"HS256","b64":false}"#;
    assert_eq!(
        verify(&hs256(header, &good_claims())).await.unwrap_err(),
        JwtError::ForbiddenHeader("b64")
    );
}

#[tokio::test]
async fn j12_jwe_parameters_in_a_jws_are_refused() {
    for (name, header) in [
        ("enc", r#"{"alg":"HS256","enc":"A256GCM"}"#),
        ("zip", r#"{"alg":"HS256","zip":"DEF"}"#),
    ] {
        assert_eq!(
            verify(&hs256(header, &good_claims())).await.unwrap_err(),
            JwtError::ForbiddenHeader(name)
        );
    }
}

#[tokio::test]
async fn j13_psychic_ecdsa_signatures_are_rejected() {
    let (_, jwk) = ec_key_pair();
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"ES256","kid":"ec-1"}"#),
        b64(good_claims())
    );
    let n = hex_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let zero = vec![0u8; 32];
    let mut one = vec![0u8; 32];
    one[31] = 1;
    for (r, s) in [
        (&zero, &zero),
        (&n, &n),
        (&zero, &one),
        (&one, &zero),
        (&n, &one),
        (&one, &n),
    ] {
        let token = format!("{input}.{}", b64([r.as_slice(), s.as_slice()].concat()));
        assert_eq!(
            ec_verifier(&jwk).verify(&token).await.unwrap_err(),
            JwtError::BadSignature
        );
    }
    // The full Wycheproof P1363 file (tcIds 11–53 included) runs in tests/vectors.rs.
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn j14_der_and_wrong_length_ecdsa_signatures_are_rejected() {
    let (pair, jwk) = ec_key_pair();
    let good = es256(&pair, r#"{"alg":"ES256","kid":"ec-1"}"#, &good_claims());
    let (input, sig_b64) = good.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    let mut der = vec![0x30, 0x44, 0x02, 0x20];
    der.extend_from_slice(&signature[..32]);
    der.extend_from_slice(&[0x02, 0x20]);
    der.extend_from_slice(&signature[32..]);
    let verifier = ec_verifier(&jwk);
    for bad in [
        der,
        signature[..63].to_vec(),
        [signature.clone(), vec![0]].concat(),
    ] {
        let token = format!("{input}.{}", b64(&bad));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            JwtError::BadSignature
        );
    }
    assert!(verifier.verify(&good).await.is_ok());
}

/// `n - s` for the P-256 order, big-endian.
fn negate_mod_n(s: &[u8]) -> Vec<u8> {
    let n = hex_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

#[tokio::test]
async fn j15_ecdsa_malleability_is_a_property_so_replay_is_keyed_on_jti() {
    // (r, n - s) verifies too: anything that must recognise "the same token" (revocation,
    // one-time use) keys on `jti`, which TokenIssuer always sets, never on signature bytes.
    let (pair, jwk) = ec_key_pair();
    let good = es256(&pair, r#"{"alg":"ES256","kid":"ec-1"}"#, &good_claims());
    let (input, sig_b64) = good.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    let twin = [signature[..32].to_vec(), negate_mod_n(&signature[32..])].concat();
    let twin_token = format!("{input}.{}", b64(&twin));
    assert_ne!(twin_token, good);
    assert!(ec_verifier(&jwk).verify(&twin_token).await.is_ok());
    let issuer = TokenIssuer::new(ISS, SigningKey::generate("k", Algorithm::ES256).unwrap());
    let token = issuer.issue(&TokenRequest::access("alice")).unwrap();
    assert_eq!(token.jti.len(), 22);
}

#[test]
fn j16_points_off_the_curve_or_on_another_curve_are_refused() {
    let (_, mut jwk) = ec_key_pair();
    let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    y[31] ^= 1;
    jwk["y"] = json!(b64(&y));
    assert!(matches!(
        VerificationKey::from_jwk(&jwk, &JwkPolicy::default()),
        Err(KeyError::Malformed(_))
    ));
    let (_, mut other) = ec_key_pair();
    other["crv"] = json!("P-384");
    other.as_object_mut().unwrap().remove("alg");
    assert!(VerificationKey::from_jwk(&other, &JwkPolicy::default()).is_err());
}

#[tokio::test]
async fn j17_duplicate_members_are_refused_wherever_they_are() {
    let dup_header = r#"{"alg":"HS256","alg":"HS256"}"#;
    assert!(matches!(
        verify(&hs256(dup_header, &good_claims())).await,
        Err(JwtError::Malformed(_))
    ));
    let dup_kid = r#"{"alg":"HS256","kid":"a","kid":"b"}"#;
    assert!(matches!(
        verify(&hs256(dup_kid, &good_claims())).await,
        Err(JwtError::Malformed(_))
    ));
    let base = good_claims();
    let body = &base[1..];
    for extra in [
        r#""exp":1,"#,
        r#""aud":"other","#,
        r#""roles":["viewer"],"#,
        r#""iat":1,"#,
        r#""scope":"a","scope":"b","#,
        r#""\u0061ud":"api","#,
        r#""sub":"bob","#,
    ] {
        let claims = format!("{{{extra}{body}");
        assert!(
            matches!(
                verify(&hs256(HEADER, &claims)).await,
                Err(JwtError::Malformed(_))
            ),
            "{extra}"
        );
    }
    let nested = claims_with(json!({"realm_access": {"roles": ["a"]}}))
        .replace(r#"{"roles":["a"]}"#, r#"{"roles":["a"],"roles":["admin"]}"#);
    assert!(matches!(
        verify(&hs256(HEADER, &nested)).await,
        Err(JwtError::Malformed(_))
    ));
}

#[tokio::test]
async fn j18_nested_tokens_are_refused() {
    let inner = hs256(HEADER, &good_claims());
    let cty = r#"{"alg":"HS256","cty":"JWT"}"#;
    assert_eq!(
        verify(&hs256(cty, &good_claims())).await.unwrap_err(),
        JwtError::Nested
    );
    assert_eq!(
        verify(&hs256(HEADER, &json!(inner).to_string()))
            .await
            .unwrap_err(),
        JwtError::Nested
    );
    assert_eq!(
        verify(&hs256(HEADER, &inner)).await.unwrap_err(),
        JwtError::Nested
    );
}

#[tokio::test]
async fn j19_jwe_and_json_serializations_are_refused() {
    let jwe = "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.a.b.c.d";
    assert!(matches!(verify(jwe).await, Err(JwtError::Malformed(_))));
    let json_form =
        json!({"payload": b64(good_claims()), "protected": b64(HEADER), "signature": "x"})
            .to_string();
    assert!(verify(&json_form).await.is_err());
    let polyglot = format!("{}.{}", hs256(HEADER, &good_claims()), json_form);
    assert!(verify(&polyglot).await.is_err());
}

#[tokio::test]
async fn j20_typ_keeps_token_kinds_apart() {
    let access_only = verifier_with(
        IssuerConfig::new(ISS, hmac_key()).validation(
            Validation::default()
                .audiences([AUD])
                .typ(TypPolicy::access_token()),
        ),
    );
    for (typ, ok) in [
        (Some("at+jwt"), true),
        (Some("application/at+jwt"), true),
        (Some("AT+JWT"), true),
        (Some("JWT"), false),
        (None, false),
        (Some("refresh+jwt"), false),
    ] {
        let header = match typ {
            Some(t) => json!({"alg": "HS256", "typ": t}).to_string(),
            None => json!({"alg": "HS256"}).to_string(),
        };
        let claims = claims_with(json!({"nonce": "n-0S6_WzA2Mj"}));
        assert_eq!(
            access_only.verify(&hs256(&header, &claims)).await.is_ok(),
            ok,
            "{typ:?}"
        );
    }
    // The default policy accepts JWT and at+jwt but not other kinds.
    assert_eq!(
        verify(&hs256(
            r#"{"alg":"HS256","typ":"refresh+jwt"}"#,
            &good_claims()
        ))
        .await
        .unwrap_err(),
        JwtError::WrongType
    );
    assert_eq!(
        verify(&hs256(
            r#"{"alg":"HS256","typ":"logout+jwt"}"#,
            &good_claims()
        ))
        .await
        .unwrap_err(),
        JwtError::WrongType
    );
}

#[tokio::test]
async fn j21_exp_edge_cases() {
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"exp": null}))))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("exp")
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"exp": NOW}))))
            .await
            .unwrap_err(),
        JwtError::Expired
    );
    assert!(
        verify(&hs256(HEADER, &claims_with(json!({"exp": NOW + 1}))))
            .await
            .is_ok()
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"exp": NOW - 1}))))
            .await
            .unwrap_err(),
        JwtError::Expired
    );
    for bad in [
        json!("2030-01-01"),
        json!(-1),
        json!(1e300),
        json!({}),
        json!([NOW + 60]),
        json!(true),
        json!(u64::MAX),
    ] {
        assert_eq!(
            verify(&hs256(HEADER, &claims_with(json!({"exp": bad}))))
                .await
                .unwrap_err(),
            JwtError::InvalidClaim("exp"),
            "{bad}"
        );
    }
    // null is "missing"-like but present: refused as a wrong type.
    let null_exp = good_claims().replace(&format!("\"exp\":{}", NOW + 600), "\"exp\":null");
    assert_eq!(
        verify(&hs256(HEADER, &null_exp)).await.unwrap_err(),
        JwtError::InvalidClaim("exp")
    );
    // Fractional: rounded down, deterministically.
    assert_eq!(
        verify(&hs256(
            HEADER,
            &claims_with(json!({"exp": NOW as f64 + 0.7}))
        ))
        .await
        .unwrap_err(),
        JwtError::Expired
    );
    assert!(
        verify(&hs256(
            HEADER,
            &claims_with(json!({"exp": NOW as f64 + 1.2}))
        ))
        .await
        .is_ok()
    );
    // Lifetime above the policy maximum.
    let short_lived = verifier_with(
        IssuerConfig::new(ISS, hmac_key()).validation(
            Validation::default()
                .audiences([AUD])
                .max_lifetime(Duration::from_secs(3600)),
        ),
    );
    let long = claims_with(json!({"iat": NOW - 10, "exp": NOW + 86_400}));
    assert_eq!(
        short_lived.verify(&hs256(HEADER, &long)).await.unwrap_err(),
        JwtError::TooOld
    );
    // With a leeway, exp = now - leeway - 1 is expired, exp = now - leeway + 1 is not.
    let lenient = verifier_with(
        IssuerConfig::new(ISS, hmac_key()).validation(
            Validation::default()
                .audiences([AUD])
                .leeway(Duration::from_secs(60))
                .unwrap(),
        ),
    );
    assert_eq!(
        lenient
            .verify(&hs256(HEADER, &claims_with(json!({"exp": NOW - 61}))))
            .await
            .unwrap_err(),
        JwtError::Expired
    );
    let principal = lenient
        .verify(&hs256(HEADER, &claims_with(json!({"exp": NOW - 59}))))
        .await
        .unwrap();
    assert!(principal.expires_at().is_some());
}

#[tokio::test]
async fn j22_nbf() {
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"nbf": NOW + 1}))))
            .await
            .unwrap_err(),
        JwtError::NotYetValid
    );
    assert!(
        verify(&hs256(HEADER, &claims_with(json!({"nbf": NOW}))))
            .await
            .is_ok()
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"nbf": "now"}))))
            .await
            .unwrap_err(),
        JwtError::InvalidClaim("nbf")
    );
}

#[tokio::test]
async fn j23_iat_and_max_age() {
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"iat": NOW + 5}))))
            .await
            .unwrap_err(),
        JwtError::IssuedInFuture
    );
    let fresh_only = verifier_with(
        IssuerConfig::new(ISS, hmac_key()).validation(
            Validation::default()
                .audiences([AUD])
                .leeway(Duration::ZERO)
                .unwrap()
                .max_age(Duration::from_secs(300)),
        ),
    );
    assert_eq!(
        fresh_only
            .verify(&hs256(HEADER, &claims_with(json!({"iat": NOW - 301}))))
            .await
            .unwrap_err(),
        JwtError::TooOld
    );
    assert!(
        fresh_only
            .verify(&hs256(HEADER, &claims_with(json!({"iat": NOW - 300}))))
            .await
            .is_ok()
    );
    assert_eq!(
        fresh_only
            .verify(&hs256(HEADER, &claims_with(json!({"iat": null}))))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("iat")
    );
}

#[tokio::test]
async fn j24_leeway_is_bounded_and_cannot_wrap() {
    assert!(matches!(
        Validation::default().leeway(Duration::from_secs(301)),
        Err(ConfigError::Invalid(_))
    ));
    // A clock near the epoch with the largest leeway neither panics nor wraps.
    let early: Arc<dyn Clock> = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(10).unwrap(),
    ));
    let verifier = JwtAuthenticator::builder()
        .issuer(
            IssuerConfig::new(ISS, hmac_key()).validation(
                Validation::default()
                    .leeway(Duration::from_secs(300))
                    .unwrap(),
            ),
        )
        .clock(early)
        .build()
        .unwrap();
    let claims = json!({"iss": ISS, "sub": "a", "exp": 0, "nbf": 253_402_300_799_i64}).to_string();
    assert_eq!(
        verifier.verify(&hs256(HEADER, &claims)).await.unwrap_err(),
        JwtError::NotYetValid
    );
}

#[tokio::test]
async fn j25_audience() {
    for (aud, ok) in [
        (json!(null), false),
        (json!(123), false),
        (json!({}), false),
        (json!(["api", 5]), false),
        (json!([]), false),
        (json!(["other", "api"]), true),
        (json!("API"), false),
        (json!("api "), false),
        (json!("api"), true),
    ] {
        assert_eq!(
            verify(&hs256(HEADER, &claims_with(json!({"aud": aud}))))
                .await
                .is_ok(),
            ok,
            "{aud}"
        );
    }
}

#[tokio::test]
async fn j26_issuer_and_subject() {
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"iss": [ISS]}))))
            .await
            .unwrap_err(),
        JwtError::InvalidClaim("iss")
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"iss": null}))))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("iss")
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"iss": 5}))))
            .await
            .unwrap_err(),
        JwtError::InvalidClaim("iss")
    );
    assert_eq!(
        verify(&hs256(
            HEADER,
            &claims_with(json!({"iss": "https://issuer.example/"}))
        ))
        .await
        .unwrap_err(),
        JwtError::UnknownIssuer
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"sub": null}))))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("sub")
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"sub": 42}))))
            .await
            .unwrap_err(),
        JwtError::InvalidClaim("sub")
    );
    assert_eq!(
        verify(&hs256(HEADER, &claims_with(json!({"sub": ""}))))
            .await
            .unwrap_err(),
        JwtError::InvalidClaim("sub")
    );
}

#[tokio::test]
async fn j27_size_is_capped_before_decoding() {
    let huge_claims = claims_with(json!({"padding": "x".repeat(16 * 1024)}));
    assert_eq!(
        verify(&hs256(HEADER, &huge_claims)).await.unwrap_err(),
        JwtError::TooLarge
    );
    let dots = ".".repeat(4 * 1024 * 1024);
    let started = std::time::Instant::now();
    assert_eq!(verify(&dots).await.unwrap_err(), JwtError::TooLarge);
    assert!(started.elapsed() < Duration::from_secs(1));
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let claims = claims_with(json!({"deep": "X"})).replace("\"X\"", &deep);
    assert!(matches!(
        verify(&hs256(HEADER, &claims)).await,
        Err(JwtError::Malformed(_))
    ));
}

#[tokio::test]
async fn j28_non_canonical_base64url_is_refused() {
    let good = hs256(HEADER, &good_claims());
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let variants = [
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.{s}="),
        format!("{}.{p}.{s}", h.replace('e', "+")),
        format!(
            "{h}.{p}.{}",
            s.replacen(|c: char| c.is_alphanumeric(), "/", 1)
        ),
        format!("{h}.{p} .{s}"),
        format!("{h}.{p}?.{s}"),
        format!("{h}#.{p}.{s}"),
        format!("{h}.{p}\n.{s}"),
    ];
    for variant in variants {
        assert!(verify(&variant).await.is_err(), "{variant}");
    }
    // Non-zero unused bits in the last character of the signature (32 bytes = 43 chars).
    let last = s.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let tweaked = alphabet.chars().nth(index ^ 1).unwrap();
    let token = format!("{h}.{p}.{}{tweaked}", &s[..s.len() - 1]);
    assert!(matches!(verify(&token).await, Err(JwtError::Malformed(_))));
}

#[tokio::test]
async fn j29_structural_problems() {
    let good = hs256(HEADER, &good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        String::new(),
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.{}", parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("Bearer {good}"),
        format!(" {good}"),
        format!("{good} "),
    ] {
        assert!(verify(&bad).await.is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn j30_legal_but_unsupported_algorithms_fail_cleanly() {
    for alg in ["ES512", "ES256K", "RS1", "HS1", "PS256 ", ""] {
        let header = json!({"alg": alg}).to_string();
        assert_eq!(
            verify(&hs256(&header, &good_claims())).await.unwrap_err(),
            JwtError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn j31_utf8_bom_and_trailing_bytes() {
    let sign = |header: &[u8], claims: &[u8]| {
        let input = format!("{}.{}", b64(header), b64(claims));
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), input.as_bytes());
        format!("{input}.{}", b64(tag))
    };
    let claims = good_claims();
    let bom = [b"\xef\xbb\xbf".as_slice(), claims.as_bytes()].concat();
    let trailing = [claims.as_bytes(), b"x"].concat();
    let invalid = claims
        .replace("alice", "al\u{fffd}ce")
        .replace('\u{fffd}', "\u{1}")
        .into_bytes();
    let mut bad_utf8 = claims.clone().into_bytes();
    let at = bad_utf8.iter().position(|b| *b == b'a').unwrap();
    bad_utf8[at + 1] = 0xff;
    for (header, claims) in [
        (HEADER.as_bytes().to_vec(), bom),
        (HEADER.as_bytes().to_vec(), trailing),
        (HEADER.as_bytes().to_vec(), bad_utf8),
        (
            [b"\xef\xbb\xbf".as_slice(), HEADER.as_bytes()].concat(),
            claims.as_bytes().to_vec(),
        ),
        (
            [HEADER.as_bytes(), b" {}"].concat(),
            claims.as_bytes().to_vec(),
        ),
        (HEADER.as_bytes().to_vec(), invalid),
    ] {
        assert!(verify(&sign(&header, &claims)).await.is_err());
    }
}

#[tokio::test]
async fn j32_claims_must_be_an_object() {
    for claims in [r#"["sub"]"#, r#""alice""#, "42", "null"] {
        assert!(
            matches!(
                verify(&hs256(HEADER, claims)).await,
                Err(JwtError::Malformed(_))
            ),
            "{claims}"
        );
    }
}

#[tokio::test]
async fn j33_hmac_tags_are_checked_whole_with_ring() {
    // ring::hmac::verify compares in constant time; what a test can check is that every
    // corruption (first byte, last byte, truncation, extension) is refused the same way.
    let good = hs256(HEADER, &good_claims());
    let (input, s) = good.rsplit_once('.').unwrap();
    let tag = URL_SAFE_NO_PAD.decode(s).unwrap();
    let mut first = tag.clone();
    first[0] ^= 1;
    let mut last = tag.clone();
    last[31] ^= 1;
    for bad in [
        first,
        last,
        tag[..31].to_vec(),
        [tag.clone(), vec![0]].concat(),
        Vec::new(),
    ] {
        let token = format!("{input}.{}", b64(&bad));
        assert!(verify(&token).await.is_err());
    }
}

#[tokio::test]
async fn claims_map_to_the_principal() {
    let mapping = ClaimMapping::default()
        .roles(ClaimPath::new("realm_access.roles"))
        .tenant(Some(ClaimPath::new("tid")));
    let verifier = verifier_with(
        IssuerConfig::new(ISS, hmac_key())
            .audiences([AUD])
            .mapping(mapping),
    );
    let claims = claims_with(
        json!({"realm_access": {"roles": ["analyst", "viewer"]}, "tid": "t-1",
        "name": "Alice", "email": "alice@example.com", "scope": "projects:read audit:read", "custom_field": "v"}),
    );
    let principal = verifier.verify(&hs256(HEADER, &claims)).await.unwrap();
    assert_eq!(principal.roles(), ["analyst", "viewer"]);
    assert_eq!(principal.tenant(), Some("t-1"));
    assert_eq!(principal.name(), Some("Alice"));
    assert_eq!(principal.email(), Some("alice@example.com"));
    assert_eq!(principal.scopes(), ["projects:read", "audit:read"]);
    assert_eq!(principal.attribute("custom_field"), Some(&json!("v")));
    assert_eq!(principal.expires_at().unwrap().unix_timestamp(), NOW + 600);
    // A claim of the wrong type is an error, not ignored.
    let wrong = claims_with(json!({"realm_access": {"roles": "x"}, "tid": 5}));
    assert_eq!(
        verifier.verify(&hs256(HEADER, &wrong)).await.unwrap_err(),
        JwtError::InvalidClaim("tenant")
    );
    let wrong = claims_with(json!({"realm_access": {"roles": [1]}}));
    assert_eq!(
        verifier.verify(&hs256(HEADER, &wrong)).await.unwrap_err(),
        JwtError::InvalidClaim("roles")
    );
    // scp as an array (Microsoft, Okta).
    let scp = claims_with(json!({"scp": ["read", "write"]}));
    assert_eq!(
        verify(&hs256(HEADER, &scp)).await.unwrap().scopes(),
        ["read", "write"]
    );
}

#[tokio::test]
async fn several_issuers_each_with_its_own_keys() {
    let (pair, jwk) = ec_key_pair();
    let ec_keys = KeySet::from_jwks_json(
        json!({"keys": [jwk]}).to_string().as_bytes(),
        &JwkPolicy::default(),
    )
    .unwrap();
    let verifier = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new(ISS, hmac_key()).audiences([AUD]))
        .issuer(IssuerConfig::new("https://other.example", ec_keys).audiences(["other-api"]))
        .clock(clock())
        .build()
        .unwrap();
    let other = claims_with(json!({"iss": "https://other.example", "aud": "other-api"}));
    assert!(
        verifier
            .verify(&es256(&pair, r#"{"alg":"ES256","kid":"ec-1"}"#, &other))
            .await
            .is_ok()
    );
    // The HMAC issuer's secret does not verify the other issuer's tokens, and vice versa.
    assert_eq!(
        verifier.verify(&hs256(HEADER, &other)).await.unwrap_err(),
        JwtError::UnknownKey
    );
    let with_kid = hs256(r#"{"alg":"HS256","kid":"ec-1"}"#, &other);
    assert_eq!(
        verifier.verify(&with_kid).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );
    let mine_signed_by_other = es256(&pair, r#"{"alg":"ES256","kid":"ec-1"}"#, &good_claims());
    assert_eq!(
        verifier.verify(&mine_signed_by_other).await.unwrap_err(),
        JwtError::AlgorithmMismatch
    );
}

#[tokio::test]
async fn microsoft_multi_tenant_issuer_must_match_tid() {
    let mut matcher =
        IssuerMatcher::template("https://login.microsoftonline.com/{tenantid}/v2.0", "tid")
            .unwrap();
    let verifier =
        verifier_with(IssuerConfig::with_matcher(matcher.clone(), hmac_key()).audiences([AUD]));
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let iss = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    assert!(
        verifier
            .verify(&hs256(
                HEADER,
                &claims_with(json!({"iss": iss, "tid": tenant}))
            ))
            .await
            .is_ok()
    );
    assert!(
        verifier
            .verify(&hs256(
                HEADER,
                &claims_with(json!({"iss": iss, "tid": "other"}))
            ))
            .await
            .is_err()
    );
    assert!(
        verifier
            .verify(&hs256(HEADER, &claims_with(json!({"iss": iss}))))
            .await
            .is_err()
    );
    let sneaky = "https://login.microsoftonline.com/a/b/v2.0";
    assert_eq!(
        verifier
            .verify(&hs256(
                HEADER,
                &claims_with(json!({"iss": sneaky, "tid": "a/b"}))
            ))
            .await
            .unwrap_err(),
        JwtError::UnknownIssuer
    );
    if let IssuerMatcher::Template {
        allowed_tenants, ..
    } = &mut matcher
    {
        allowed_tenants.push("only-this-one".into());
    }
    let restricted =
        verifier_with(IssuerConfig::with_matcher(matcher, hmac_key()).audiences([AUD]));
    assert_eq!(
        restricted
            .verify(&hs256(
                HEADER,
                &claims_with(json!({"iss": iss, "tid": tenant}))
            ))
            .await
            .unwrap_err(),
        JwtError::UnknownIssuer
    );
}

#[tokio::test]
async fn the_authenticator_speaks_the_core_protocol() {
    let verifier = verifier();
    let creds = |v: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        portcullis_core::CredentialExtractor::default()
            .extract_from(&headers, &http::Extensions::new())
            .unwrap()
    };
    let good = creds(&format!("Bearer {}", hs256(HEADER, &good_claims())));
    assert!(matches!(
        verifier.authenticate(&good).await,
        AuthOutcome::Authenticated(_)
    ));
    let expired = creds(&format!(
        "Bearer {}",
        hs256(HEADER, &claims_with(json!({"exp": NOW - 5})))
    ));
    match verifier.authenticate(&expired).await {
        AuthOutcome::Rejected(e) => assert_eq!(e.kind(), &AuthErrorKind::Expired),
        other => panic!("{other:?}"),
    }
    // An opaque bearer token (no dots) is for another authenticator.
    assert!(matches!(
        verifier.authenticate(&creds("Bearer opaque-token")).await,
        AuthOutcome::NotApplicable
    ));
    assert!(matches!(
        verifier.authenticate(&Credentials::default()).await,
        AuthOutcome::NotApplicable
    ));
    // Outside testing: a two-segment (truncated) token was left to the other authenticators
    // and audited as "no configured authenticator accepts these credentials". A bearer with a
    // dot, or starting like a JOSE header, is a JWT, and malformed.
    let token = hs256(HEADER, &good_claims());
    let (two_segments, _) = token.rsplit_once('.').unwrap();
    let (header_only, _) = two_segments.split_once('.').unwrap();
    for bearer in [two_segments, header_only, &format!("{header_only}.")] {
        match verifier
            .authenticate(&creds(&format!("Bearer {bearer}")))
            .await
        {
            AuthOutcome::Rejected(e) => {
                assert!(
                    e.to_string().contains("three segments") || e.to_string().contains("malformed"),
                    "{bearer}: {e}"
                );
                assert_eq!(e.authenticator(), Some("jwt"));
                assert!(e.bearer_token_sent());
            }
            other => panic!("{bearer}: {other:?}"),
        }
    }
    assert!(
        verifier
            .challenge()
            .unwrap()
            .render(None)
            .starts_with("Bearer realm=")
    );
}

/// A verifier remembers the checked headers of tokens that verified; that must never let a
/// token with a known header skip the signature, the claims or a header rule.
#[tokio::test]
async fn a_remembered_header_skips_no_check() {
    let v = verifier();
    let good = hs256(HEADER, &good_claims());
    for _ in 0..3 {
        assert!(v.verify(&good).await.is_ok());
    }
    // The same header with another payload and the old signature.
    let (input, tag) = good.rsplit_once('.').unwrap();
    let (header_segment, _) = input.split_once('.').unwrap();
    let forged = format!(
        "{header_segment}.{}.{tag}",
        b64(claims_with(json!({"sub": "mallory"})))
    );
    assert!(matches!(
        v.verify(&forged).await,
        Err(JwtError::BadSignature)
    ));
    // The same header, correctly signed, with claims that must fail.
    let expired = hs256(HEADER, &claims_with(json!({"exp": NOW - 1})));
    assert!(v.verify(&expired).await.is_err());
    let wrong_audience = hs256(HEADER, &claims_with(json!({"aud": "other"})));
    assert!(v.verify(&wrong_audience).await.is_err());
    // The same header with a signature by another key.
    let other_key = hs(
        HEADER,
        &good_claims(),
        b"another-secret-of-32-bytes-or-more!!",
        hmac::HMAC_SHA256,
    );
    assert!(matches!(
        v.verify(&other_key).await,
        Err(JwtError::BadSignature)
    ));
    // Headers that fail a rule fail every time, however often they are sent.
    for header in [
        r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#,
        r#"{"alg":"HS256","typ":"JWT","b64":false}"#,
        r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"none","typ":"JWT"}"#,
    ] {
        let token = hs256(header, &good_claims());
        for _ in 0..3 {
            assert!(v.verify(&token).await.is_err(), "{header}");
        }
    }
    assert!(v.verify(&good).await.is_ok());
}

/// The token profiles: each provider's access tokens, shaped as its documentation shows them,
/// are accepted by its profile, and its ID tokens are not (Microsoft Entra ID v1 and v2, Okta,
/// Auth0); the RFC 9068 and ID-token profiles check their required claims.
#[tokio::test]
async fn token_profiles_tell_access_tokens_from_id_tokens() {
    let check = |profile: TokenProfile| {
        verifier_with(
            IssuerConfig::new(ISS, hmac_key())
                .audiences([AUD])
                .profile(profile),
        )
    };
    let token = |typ: Option<&str>, claims: Value| {
        let header = match typ {
            Some(typ) => json!({"alg": "HS256", "typ": typ}),
            None => json!({"alg": "HS256"}),
        };
        hs256(&header.to_string(), &claims_with(claims))
    };
    let accepted = |v: &JwtAuthenticator, t: String| {
        let v = v.clone();
        async move { v.verify(&t).await }
    };

    // Microsoft Entra ID: v1 (`appid`) and v2 (`azp`) access tokens, delegated (`scp`) and
    // application (`roles`); an ID token of a sign-in has a nonce and no scp.
    let microsoft = check(TokenProfile::MicrosoftAccessToken);
    for claims in [
        json!({"ver": "1.0", "appid": "c1", "scp": "orders.read"}),
        json!({"ver": "2.0", "azp": "c1", "scp": "orders.read"}),
        json!({"ver": "2.0", "azp": "c1", "roles": ["orders.admin"]}),
    ] {
        assert!(
            accepted(&microsoft, token(Some("JWT"), claims.clone()))
                .await
                .is_ok(),
            "{claims}"
        );
    }
    let id_token = json!({"ver": "2.0", "nonce": "n-1", "roles": null});
    assert!(
        accepted(&microsoft, token(Some("JWT"), id_token))
            .await
            .is_err()
    );
    let no_scope = json!({"ver": "2.0", "roles": null});
    assert_eq!(
        accepted(&microsoft, token(Some("JWT"), no_scope))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("scp")
    );

    // Okta: access tokens carry `cid` and `scp`; ID tokens carry neither (but a nonce).
    let okta = check(TokenProfile::OktaAccessToken);
    let at = json!({"ver": 1, "cid": "0oa1", "uid": "00u1", "scp": ["openid", "orders"]});
    assert!(accepted(&okta, token(None, at)).await.is_ok());
    let id = json!({"ver": 1, "amr": ["pwd"], "nonce": "n-1", "idp": "00o1"});
    assert_eq!(
        accepted(&okta, token(None, id)).await.unwrap_err(),
        JwtError::MissingClaim("cid")
    );

    // Auth0: access tokens carry `azp` (typ JWT, or at+jwt with the RFC 9068 profile); ID
    // tokens carry a nonce.
    let auth0 = check(TokenProfile::Auth0AccessToken);
    let at = json!({"azp": "c1", "scope": "read:orders"});
    assert!(
        accepted(&auth0, token(Some("JWT"), at.clone()))
            .await
            .is_ok()
    );
    assert!(accepted(&auth0, token(Some("at+jwt"), at)).await.is_ok());
    let id = json!({"azp": "c1", "nonce": "n-1", "name": "Alice"});
    assert_eq!(
        accepted(&auth0, token(Some("JWT"), id)).await.unwrap_err(),
        JwtError::WrongType
    );

    // RFC 9068: at+jwt with client_id and jti.
    let rfc9068 = check(TokenProfile::AccessToken);
    let at = json!({"client_id": "c1", "jti": "j-1"});
    assert!(
        accepted(&rfc9068, token(Some("at+jwt"), at.clone()))
            .await
            .is_ok()
    );
    assert!(
        accepted(&rfc9068, token(Some("application/at+jwt"), at.clone()))
            .await
            .is_ok()
    );
    assert_eq!(
        accepted(&rfc9068, token(Some("JWT"), at.clone()))
            .await
            .unwrap_err(),
        JwtError::WrongType
    );
    assert_eq!(
        accepted(&rfc9068, token(Some("at+jwt"), json!({"jti": "j-1"})))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("client_id")
    );
    assert_eq!(
        accepted(&rfc9068, token(Some("at+jwt"), json!({"client_id": "c1"})))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("jti")
    );

    // ID tokens: JWT or untyped, never at+jwt; azp when there are several audiences, and one
    // of ours when present.
    let id = check(TokenProfile::IdToken);
    assert!(
        accepted(&id, token(Some("JWT"), json!({"nonce": "n"})))
            .await
            .is_ok()
    );
    assert!(accepted(&id, token(None, json!({}))).await.is_ok());
    assert_eq!(
        accepted(&id, token(Some("at+jwt"), json!({})))
            .await
            .unwrap_err(),
        JwtError::WrongType
    );
    assert_eq!(
        accepted(&id, token(None, json!({"aud": [AUD, "other"]})))
            .await
            .unwrap_err(),
        JwtError::MissingClaim("azp")
    );
    assert!(
        accepted(&id, token(None, json!({"aud": [AUD, "other"], "azp": AUD})))
            .await
            .is_ok()
    );
    assert_eq!(
        accepted(&id, token(None, json!({"azp": "someone-else"})))
            .await
            .unwrap_err(),
        JwtError::AudienceMismatch
    );
}
