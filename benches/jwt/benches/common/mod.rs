//! The tokens, keys and verifiers the JWT benches share: one typical access token per
//! algorithm (sub, exp, iat, iss, aud, three roles, kid in the header).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, TokenRequest, Validation,
};
use ring::{hmac, signature as sig};
use serde_json::Value;

pub(crate) const ISSUER: &str = "https://auth.example.com";
pub(crate) const AUDIENCE: &str = "orders-api";
const SECRET: &[u8] = b"benchmark-hs256-secret-of-at-least-32-bytes";

/// The claims jsonwebtoken deserializes into (what its users would write).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    pub(crate) iss: String,
    pub(crate) roles: Vec<String>,
}

pub(crate) struct Fixture {
    pub(crate) name: &'static str,
    pub(crate) alg: Algorithm,
    pub(crate) token: String,
    pub(crate) verifier: JwtAuthenticator,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) public: Public,
}

/// Public key material for the raw ring check.
pub(crate) enum Public {
    Hmac(hmac::Key),
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Point(Vec<u8>),
}

fn b64d(value: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(value.as_str().unwrap_or_default())
        .unwrap_or_default()
}

pub(crate) fn fixtures() -> Vec<Fixture> {
    let rsa_pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/rsa2048.pem"))
        .expect("benches/jwt/keys/rsa2048.pem");
    let keys = vec![
        (
            "HS256",
            SigningKey::hmac(Some("k1"), Algorithm::HS256, SECRET).expect("hmac"),
        ),
        (
            "RS256",
            SigningKey::from_pem(Some("k1"), Algorithm::RS256, &rsa_pem).expect("rsa"),
        ),
        (
            "ES256",
            SigningKey::generate("k1", Algorithm::ES256).expect("ec"),
        ),
        (
            "EdDSA",
            SigningKey::generate("k1", Algorithm::EdDSA).expect("ed"),
        ),
    ];
    keys.into_iter()
        .map(|(name, key)| {
            let alg = key.algorithm();
            let jwk = key.public_jwk().cloned().map(Value::Object);
            let (decoding_key, public) = match &jwk {
                None => (
                    DecodingKey::from_secret(SECRET),
                    Public::Hmac(hmac::Key::new(hmac::HMAC_SHA256, SECRET)),
                ),
                Some(jwk) => {
                    let parsed: jsonwebtoken::jwk::Jwk =
                        serde_json::from_value(jwk.clone()).expect("jwk");
                    let decoding = DecodingKey::from_jwk(&parsed).expect("decoding key");
                    let public = match alg {
                        Algorithm::RS256 => Public::Rsa {
                            n: b64d(&jwk["n"]),
                            e: b64d(&jwk["e"]),
                        },
                        Algorithm::ES256 => {
                            Public::Point([vec![4], b64d(&jwk["x"]), b64d(&jwk["y"])].concat())
                        }
                        _ => Public::Point(b64d(&jwk["x"])),
                    };
                    (decoding, public)
                }
            };
            let issuer = TokenIssuer::new(ISSUER, key)
                .audiences([AUDIENCE])
                .access_ttl(Duration::from_secs(3600));
            let token = issuer
                .issue(&TokenRequest::access("user-42").roles(["admin", "analyst", "viewer"]))
                .expect("token")
                .token
                .expose()
                .to_owned();
            let verifier = JwtAuthenticator::builder()
                .issuer(
                    IssuerConfig::new(ISSUER, issuer.clone()).validation(
                        Validation::default()
                            .audiences([AUDIENCE])
                            .max_age(Duration::from_secs(7200)),
                    ),
                )
                .build()
                .expect("verifier");
            Fixture {
                name,
                alg,
                token,
                verifier,
                decoding_key,
                public,
            }
        })
        .collect()
}

/// The strict jsonwebtoken validation its users would configure.
pub(crate) fn jsonwebtoken_validation(alg: Algorithm) -> jsonwebtoken::Validation {
    let alg: jsonwebtoken::Algorithm = alg.as_str().parse().expect("same JWA name");
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    validation
}

/// The signature check alone, straight on ring (the floor).
pub(crate) fn ring_verify(public: &Public, alg: Algorithm, token: &str) -> bool {
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    match public {
        Public::Hmac(key) => hmac::verify(key, input.as_bytes(), &signature).is_ok(),
        Public::Rsa { n, e } => sig::RsaPublicKeyComponents { n, e }
            .verify(
                &sig::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &signature,
            )
            .is_ok(),
        Public::Point(point) => {
            let algorithm: &dyn sig::VerificationAlgorithm = if alg == Algorithm::ES256 {
                &sig::ECDSA_P256_SHA256_FIXED
            } else {
                &sig::ED25519
            };
            sig::UnparsedPublicKey::new(algorithm, point)
                .verify(input.as_bytes(), &signature)
                .is_ok()
        }
    }
}

/// Polls a future that completes without waiting (static keys) with a no-op waker, so the
/// measurement is the verification and not an executor.
pub(crate) fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("static keys never wait"),
    }
}

/// `jsonwebtoken::decode` on every fixture with the process-wide provider installed by the
/// caller (one bench binary per provider: jsonwebtoken allows one per process).
pub(crate) fn bench_jsonwebtoken(c: &mut criterion::Criterion, provider: &str) {
    let fixtures = fixtures();
    let mut group = c.benchmark_group("jwt_verify");
    for f in &fixtures {
        let validation = jsonwebtoken_validation(f.alg);
        let decoded = jsonwebtoken::decode::<Claims>(&f.token, &f.decoding_key, &validation)
            .expect("jsonwebtoken accepts the token");
        assert_eq!(decoded.claims.roles.len(), 3);
        group.bench_function(format!("jsonwebtoken_{provider}/{}", f.name), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Claims>(
                    std::hint::black_box(&f.token),
                    &f.decoding_key,
                    &validation,
                )
                .is_ok()
            });
        });
    }
    group.finish();
}
