//! Interoperability with an independent implementation: PyJWT (with python-cryptography)
//! signs tokens that Portcullis verifies, and verifies tokens that Portcullis issues, for
//! HS256, RS256, PS256, ES256 and EdDSA. Also the AmateRS `[auth.jwt]` configuration with an
//! RS256 public key file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use portcullis_jwt::{
    Algorithm, AmatersJwtConfig, IssuerConfig, JwkPolicy, JwtAuthenticator, KeySet, SigningKey,
    TokenIssuer, TokenRequest, VerificationKey,
};
use portcullis_testkit::python;
use serde_json::{Value, json};

const SIGN_WITH_PYJWT: &str = r#"
import json, sys, time, jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
now = int(time.time())
claims = {"iss": "https://py.example", "aud": "api", "sub": "py-user", "iat": now, "exp": now + 600,
          "roles": ["analyst"], "scope": "projects:read"}
secret = "a-pyjwt-hs256-secret-that-is-32-bytes-long"
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
keys = {
    "RS256": rsa_key,
    "PS256": rsa_key,
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}
out = {"HS256": {"token": jwt.encode(claims, secret, algorithm="HS256"), "secret": secret}}
for alg, key in keys.items():
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    jwk.update({"kid": "py-" + alg, "alg": alg, "use": "sig"})
    out[alg] = {"token": jwt.encode(claims, key, algorithm=alg, headers={"kid": "py-" + alg}),
                "pem": pem, "private_pem": private, "jwk": jwk}
json.dump(out, sys.stdout)
"#;

const VERIFY_WITH_PYJWT: &str = r#"
import json, sys, jwt
data = json.load(sys.stdin)
results = {}
for case in data["cases"]:
    try:
        if case["alg"].startswith("HS"):
            key = case["secret"]
        else:
            key = jwt.PyJWK(case["jwk"]).key
        claims = jwt.decode(case["token"], key, algorithms=[case["alg"]], audience="api",
                            issuer="https://rust.example", options={"require": ["exp", "iss", "aud", "sub"]})
        header = jwt.get_unverified_header(case["token"])
        results[case["alg"]] = {"ok": True, "sub": claims["sub"], "roles": claims.get("roles"),
                                "typ": header.get("typ"), "jti": claims.get("jti")}
    except Exception as e:
        results[case["alg"]] = {"ok": False, "error": repr(e)}
json.dump(results, sys.stdout)
"#;

#[tokio::test]
async fn tokens_signed_by_pyjwt_verify() {
    if !python::pyjwt() {
        return;
    }
    let signed = python::run(SIGN_WITH_PYJWT, &json!({}));
    for (alg, algorithm) in [
        ("HS256", Algorithm::HS256),
        ("RS256", Algorithm::RS256),
        ("PS256", Algorithm::PS256),
        ("ES256", Algorithm::ES256),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let case = &signed[alg];
        // Keys from PEM files (unnamed) and from the JWK PyJWT exported (named).
        let keys = if alg == "HS256" {
            KeySet::new(vec![
                VerificationKey::hmac(algorithm, case["secret"].as_str().unwrap().as_bytes())
                    .unwrap(),
            ])
            .unwrap()
        } else {
            let from_pem =
                VerificationKey::from_pem(algorithm, case["pem"].as_str().unwrap().as_bytes())
                    .unwrap();
            let from_jwk = VerificationKey::from_jwk(&case["jwk"], &JwkPolicy::default())
                .unwrap()
                .unwrap();
            assert_eq!(from_jwk.kid(), Some(format!("py-{alg}").as_str()));
            KeySet::new(vec![from_pem, from_jwk]).unwrap()
        };
        let verifier = JwtAuthenticator::builder()
            .issuer(IssuerConfig::new("https://py.example", keys).audiences(["api"]))
            .build()
            .unwrap();
        let principal = verifier
            .verify(case["token"].as_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(principal.id(), "py-user");
        assert_eq!(principal.roles(), ["analyst"]);
        assert_eq!(principal.scopes(), ["projects:read"]);
    }
}

#[test]
fn tokens_issued_by_portcullis_verify_in_pyjwt() {
    if !python::pyjwt() {
        return;
    }
    let signed = python::run(SIGN_WITH_PYJWT, &json!({}));
    let secret = b"a-portcullis-secret-for-pyjwt-of-32-bytes";
    let mut keys = vec![
        (
            "HS256",
            SigningKey::hmac(Some("h1"), Algorithm::HS256, secret).unwrap(),
        ),
        (
            "ES256",
            SigningKey::generate("e1", Algorithm::ES256).unwrap(),
        ),
        (
            "EdDSA",
            SigningKey::generate("d1", Algorithm::EdDSA).unwrap(),
        ),
    ];
    // ring cannot generate RSA keys: sign with the one python-cryptography made.
    for alg in ["RS256", "PS256"] {
        let algorithm = if alg == "RS256" {
            Algorithm::RS256
        } else {
            Algorithm::PS256
        };
        let pem = signed[alg]["private_pem"].as_str().unwrap();
        keys.push((
            alg,
            SigningKey::from_pem(Some("r1"), algorithm, pem.as_bytes()).unwrap(),
        ));
    }
    let mut cases = Vec::new();
    for (alg, key) in keys {
        let jwk = key.public_jwk().cloned().map(Value::Object);
        let issuer = TokenIssuer::new("https://rust.example", key).audiences(["api"]);
        let token = issuer
            .issue(&TokenRequest::access("rust-user").roles(["admin"]))
            .unwrap();
        cases.push(
            json!({"alg": alg, "token": token.token.expose(), "jwk": jwk,
            "secret": String::from_utf8(secret.to_vec()).unwrap()}),
        );
    }
    let results = python::run(VERIFY_WITH_PYJWT, &json!({ "cases": cases }));
    for alg in ["HS256", "ES256", "EdDSA", "RS256", "PS256"] {
        let result = &results[alg];
        assert_eq!(result["ok"], true, "{alg}: {result}");
        assert_eq!(result["sub"], "rust-user");
        assert_eq!(result["roles"], json!(["admin"]));
        assert_eq!(result["typ"], "at+jwt");
        assert!(result["jti"].as_str().is_some_and(|j| !j.is_empty()));
    }
}

#[tokio::test]
async fn amaters_rs256_configuration_with_a_public_key_file() {
    if !python::pyjwt() {
        return;
    }
    let signed = python::run(SIGN_WITH_PYJWT, &json!({}));
    let dir = std::env::temp_dir().join(format!("portcullis-jwt-amaters-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("public_key.pem"),
        signed["RS256"]["pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("private_key.pem"),
        signed["RS256"]["private_pem"].as_str().unwrap(),
    )
    .unwrap();
    let config: AmatersJwtConfig = toml::from_str(
        r#"
        enabled = true
        public_key_path = "public_key.pem"
        private_key_path = "private_key.pem"
        algorithm = "RS256"
        expiration_secs = 3600
        issuer = "amaters-server"
        audience = "amaters-clients"
        "#,
    )
    .unwrap();
    let verifier = config
        .authenticator(&dir, portcullis_jwt::PlaceholderSecrets::Refuse)
        .unwrap();
    let issuer = config
        .token_issuer(&dir, portcullis_jwt::PlaceholderSecrets::Refuse)
        .unwrap()
        .unwrap();
    let token = issuer
        .issue(&TokenRequest::access("user-id").roles(["admin"]))
        .unwrap();
    let principal = verifier.verify(token.token.expose()).await.unwrap();
    assert_eq!(principal.id(), "user-id");
    assert_eq!(principal.roles(), ["admin"]);
    // The PyJWT token has another issuer and audience: refused.
    assert!(
        verifier
            .verify(signed["RS256"]["token"].as_str().unwrap())
            .await
            .is_err()
    );
    // Outside testing: a key configured without a kid (`public_key_path`) refused every
    // token carrying one ("no key for this token"), as a real provider's tokens do. The one
    // configured key now verifies them, whatever kid they name; the signature decides.
    let provider_token = python::run(
        SIGN_WITH_KID,
        &json!({
            "private_pem": signed["RS256"]["private_pem"],
            "kid": "provider-key-2026-11",
            "claims": {"iss": "amaters-server", "aud": "amaters-clients", "sub": "svc-a"},
        }),
    );
    let principal = verifier
        .verify(provider_token["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(principal.id(), "svc-a");
    // Signed by another key with the same kid: refused.
    let forged = python::run(
        SIGN_WITH_KID,
        &json!({
            "private_pem": Value::Null,
            "kid": "provider-key-2026-11",
            "claims": {"iss": "amaters-server", "aud": "amaters-clients", "sub": "svc-a"},
        }),
    );
    assert!(
        verifier
            .verify(forged["token"].as_str().unwrap())
            .await
            .is_err()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Signs `claims` (plus `iat` and `exp`) with RS256 and a `kid` header, with the given PKCS#8
/// key or, when it is null, a fresh one.
const SIGN_WITH_KID: &str = r#"
import json, sys, time, jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
data = json.load(sys.stdin)
if data["private_pem"] is None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
else:
    key = serialization.load_pem_private_key(data["private_pem"].encode(), password=None)
now = int(time.time())
claims = dict(data["claims"], iat=now, exp=now + 600)
json.dump({"token": jwt.encode(claims, key, algorithm="RS256", headers={"kid": data["kid"]})}, sys.stdout)
"#;
