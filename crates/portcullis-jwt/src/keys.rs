//! Verification keys and key sets, with the JWK hygiene of Wycheproof's JWK tests.
//!
//! A key is bound to one algorithm when it is loaded (its `alg`, or the algorithm of its curve),
//! except an RSA key published without `alg`, which may be used with any RSA algorithm the
//! issuer allows (never with another key type); a token can only be verified with a key that
//! allows the token's `alg`. Keys that are not for signatures
//! (`use: enc`, `key_ops` without `verify`, encryption algorithms, curves for key agreement)
//! are left out of a JWKS and reported; keys that claim to be signature keys but are weak or
//! inconsistent make the whole set an error.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::algorithm::{Algorithm, KeyType};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use ring::agreement;
use ring::rand::SystemRandom;
use serde_json::Value;

use crate::der;
use crate::error::{JwtError, KeyError};
use crate::provider::RingVerifier;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// Largest key file (PEM key, JWKS document) read, in bytes.
pub const MAX_KEY_FILE_LEN: u64 = 1024 * 1024;

/// The minimum HMAC key length for an algorithm: the hash output size (RFC 7518 §3.2).
#[must_use]
pub fn min_hmac_key_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// The RSA algorithms, which an RSA key published without `alg` may be used with.
fn rsa_algorithms() -> impl Iterator<Item = Algorithm> {
    crate::algorithm::ALL
        .into_iter()
        .filter(|alg| alg.key_type() == KeyType::Rsa)
}

/// Which algorithms a key may be used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// Exactly this one.
    One(Algorithm),
    /// Any RSA algorithm: an RSA JWK published without `alg` (what most OpenID providers
    /// publish). The issuer's allowed algorithms narrow it further.
    AnyRsa,
}

/// One key, bound to the algorithms it may verify, ready to verify (parsed once).
pub struct VerificationKey {
    kid: Option<String>,
    binding: Binding,
    verifier: RingVerifier,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl VerificationKey {
    fn build(alg: Algorithm, key: &DecodingKey) -> Result<Self, KeyError> {
        Self::bound(Binding::One(alg), alg, key)
    }

    /// A key with `binding`, verified by a ring verifier built for `carrier` (an algorithm of
    /// the binding: ring's RSA public key does not depend on the algorithm).
    fn bound(binding: Binding, carrier: Algorithm, key: &DecodingKey) -> Result<Self, KeyError> {
        let verifier =
            RingVerifier::new(carrier, key).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self {
            kid: None,
            binding,
            verifier,
        })
    }

    /// An HMAC key. Secrets shorter than the hash output (32/48/64 bytes) are refused.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if !alg.is_hmac() {
            return Err(KeyError::Inconsistent(
                "HMAC secret for a non-HMAC algorithm",
            ));
        }
        if secret.len() < min_hmac_key_len(alg) {
            return Err(KeyError::Weak("HMAC secret shorter than the hash output"));
        }
        Self::build(alg, &DecodingKey::from_secret(secret))
    }

    /// A public key in PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`, or a certificate), for an RSA,
    /// ECDSA or EdDSA algorithm.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let malformed = |e: jsonwebtoken::errors::Error| KeyError::Malformed(e.to_string());
        let key = match alg.key_type() {
            KeyType::Rsa => {
                let key = DecodingKey::from_rsa_pem(pem).map_err(malformed)?;
                let (n, e) = der::rsa_public_key(key.try_get_as_bytes().map_err(malformed)?)
                    .map_err(|_| KeyError::Malformed("RSA public key".into()))?;
                check_rsa(&n, &e)?;
                DecodingKey::from_rsa_raw_components(&n, &e)
            }
            KeyType::Ec => {
                let key = DecodingKey::from_ec_pem(pem).map_err(malformed)?;
                check_ec_point(alg, key.try_get_as_bytes().map_err(malformed)?)?;
                key
            }
            KeyType::Ed25519 => {
                let key = DecodingKey::from_ed_pem(pem).map_err(malformed)?;
                if key.try_get_as_bytes().map_err(malformed)?.len() != 32 {
                    return Err(KeyError::Malformed("Ed25519 public key".into()));
                }
                key
            }
            KeyType::Hmac => {
                return Err(KeyError::Inconsistent(
                    "PEM keys are for RSA, ECDSA or EdDSA",
                ));
            }
        };
        Self::build(alg, &key)
    }

    /// Names the key (its `kid`).
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key is bound to; `None` for an RSA key published without `alg`,
    /// which may be used with any RSA algorithm (see [`VerificationKey::algorithms`]).
    #[must_use]
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self.binding {
            Binding::One(alg) => Some(alg),
            Binding::AnyRsa => None,
        }
    }

    /// The algorithms this key may verify.
    #[must_use]
    pub fn algorithms(&self) -> Vec<Algorithm> {
        match self.binding {
            Binding::One(alg) => vec![alg],
            Binding::AnyRsa => rsa_algorithms().collect(),
        }
    }

    /// Whether this key may verify a token signed with `alg`.
    #[must_use]
    pub fn allows(&self, alg: Algorithm) -> bool {
        match self.binding {
            Binding::One(bound) => bound == alg,
            Binding::AnyRsa => alg.key_type() == KeyType::Rsa,
        }
    }

    /// Whether this is a symmetric (HMAC) key.
    #[must_use]
    pub fn is_symmetric(&self) -> bool {
        matches!(self.binding, Binding::One(alg) if alg.is_hmac())
    }

    /// Checks `signature` over `signing_input` for a token whose header says `alg`.
    pub fn verify(
        &self,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), JwtError> {
        if !self.allows(alg) {
            return Err(JwtError::AlgorithmMismatch);
        }
        self.verifier
            .verify_with(alg, signing_input, signature)
            .map_err(|_| JwtError::BadSignature)
    }

    /// Parses one JWK. `Ok(None)` means the JWK is not a signature-verification key that
    /// Portcullis supports (an encryption key, say) and was left out; the string says why.
    pub fn from_jwk(jwk: &Value, policy: &JwkPolicy) -> Result<Result<Self, String>, KeyError> {
        let Value::Object(members) = jwk else {
            return Err(KeyError::Malformed("a JWK is not a JSON object".into()));
        };
        let text = |name: &'static str| -> Result<Option<&str>, KeyError> {
            match members.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(KeyError::Malformed(format!(
                    "JWK member {name} is not a string"
                ))),
            }
        };
        let kty = text("kty")?.ok_or_else(|| KeyError::Malformed("JWK without kty".into()))?;
        let kid = text("kid")?.map(str::to_owned);
        if let Some(usage) = text("use")?
            && usage != "sig"
        {
            return Ok(Err(format!("use {usage:?} is not sig")));
        }
        if let Some(ops) = members.get("key_ops") {
            let Value::Array(ops) = ops else {
                return Err(KeyError::Malformed("key_ops is not an array".into()));
            };
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Ok(Err("key_ops does not include verify".into()));
            }
        }
        let alg = match text("alg")? {
            Some(name) => match name.parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                Err(_) => {
                    return Ok(Err(format!(
                        "algorithm {name:?} is not a supported JWS algorithm"
                    )));
                }
            },
            None => None,
        };
        let bytes = |name: &'static str| -> Result<Vec<u8>, KeyError> {
            let value = text(name)?.ok_or(KeyError::Malformed(format!("JWK without {name}")))?;
            URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| KeyError::Malformed(format!("JWK member {name} is not base64url")))
        };
        let (alg, key) = match kty {
            "oct" => {
                let alg = alg
                    .or(policy.default_hmac_alg)
                    .ok_or(KeyError::Inconsistent(
                        "a symmetric JWK needs an alg (none configured by default)",
                    ))?;
                if !alg.is_hmac() {
                    return Err(KeyError::Inconsistent("kty oct with a non-HMAC alg"));
                }
                let k = bytes("k")?;
                if k.len() < min_hmac_key_len(alg) {
                    return Err(KeyError::Weak("HMAC key shorter than the hash output"));
                }
                (alg, DecodingKey::from_secret(&k))
            }
            "RSA" => {
                let binding = match alg {
                    Some(alg) if alg.key_type() == KeyType::Rsa => Binding::One(alg),
                    Some(_) => return Err(KeyError::Inconsistent("kty RSA with a non-RSA alg")),
                    None => Binding::AnyRsa,
                };
                let n = strip_zeros(bytes("n")?);
                let e = strip_zeros(bytes("e")?);
                check_rsa(&n, &e)?;
                let key = DecodingKey::from_rsa_raw_components(&n, &e);
                let mut key = Self::bound(binding, alg.unwrap_or(Algorithm::RS256), &key)?;
                key.kid = kid;
                return Ok(Ok(key));
            }
            "EC" => {
                let crv = text("crv")?.ok_or(KeyError::Malformed("EC JWK without crv".into()))?;
                let curve_alg = match crv {
                    "P-256" => Algorithm::ES256,
                    "P-384" => Algorithm::ES384,
                    other => return Ok(Err(format!("curve {other:?} is not supported"))),
                };
                let alg = alg.unwrap_or(curve_alg);
                if alg != curve_alg {
                    return Err(KeyError::Inconsistent("EC curve does not match alg"));
                }
                let size = if alg == Algorithm::ES256 { 32 } else { 48 };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != size || y.len() != size {
                    return Err(KeyError::Malformed(
                        "EC coordinates of the wrong size".into(),
                    ));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                check_ec_point(alg, &point)?;
                (alg, DecodingKey::from_ec_der(&point))
            }
            "OKP" => {
                let crv = text("crv")?.ok_or(KeyError::Malformed("OKP JWK without crv".into()))?;
                if crv != "Ed25519" {
                    return Ok(Err(format!(
                        "curve {crv:?} is not a supported signature curve"
                    )));
                }
                let alg = alg.unwrap_or(Algorithm::EdDSA);
                if alg != Algorithm::EdDSA {
                    return Err(KeyError::Inconsistent("Ed25519 key with a non-EdDSA alg"));
                }
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err(KeyError::Malformed(
                        "Ed25519 public key of the wrong size".into(),
                    ));
                }
                (alg, DecodingKey::from_ed_der(&x))
            }
            other => return Ok(Err(format!("kty {other:?} is not supported"))),
        };
        let mut key = Self::build(alg, &key)?;
        key.kid = kid;
        Ok(Ok(key))
    }
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// The bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// `n mod p` for a small `p`.
fn mod_small(n: &[u8], p: u32) -> u32 {
    n.iter()
        .fold(0u32, |acc, byte| ((acc << 8) | u32::from(*byte)) % p)
}

/// The ROCA fingerprint (CVE-2017-15361): moduli made by the affected Infineon library are,
/// modulo each of these small primes, in the subgroup generated by 65537.
fn is_roca_modulus(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = mod_small(n, p);
        let generator = 65537 % p;
        let mut power = 1u32;
        // The subgroup generated by 65537 has at most p - 1 elements.
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
            if power == 1 {
                break;
            }
        }
        false
    })
}

fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), KeyError> {
    if bit_len(n) < MIN_RSA_BITS {
        return Err(KeyError::Weak("RSA modulus shorter than 2048 bits"));
    }
    if n.last().is_some_and(|b| b & 1 == 0) {
        return Err(KeyError::Weak("RSA modulus is even"));
    }
    let exponent_ok = e.len() <= 4
        && e.last().is_some_and(|b| b & 1 == 1)
        && e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) >= 3;
    if !exponent_ok {
        return Err(KeyError::Weak(
            "RSA public exponent must be odd, at least 3 and at most 32 bits",
        ));
    }
    if is_roca_modulus(n) {
        return Err(KeyError::Weak(
            "RSA modulus has the ROCA fingerprint (CVE-2017-15361)",
        ));
    }
    Ok(())
}

/// Checks that an uncompressed point is on the curve of `alg`, using ring's ECDH public-key
/// validation (ring has no other public API that validates a point without a signature).
fn check_ec_point(alg: Algorithm, point: &[u8]) -> Result<(), KeyError> {
    let curve = match alg {
        Algorithm::ES256 => &agreement::ECDH_P256,
        Algorithm::ES384 => &agreement::ECDH_P384,
        _ => return Err(KeyError::Inconsistent("not an ECDSA algorithm")),
    };
    let rng = SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(curve, &rng)
        .map_err(|_| KeyError::Malformed("cannot generate a probe key".into()))?;
    let peer = agreement::UnparsedPublicKey::new(curve, point);
    agreement::agree_ephemeral(private, &peer, |_| ())
        .map_err(|_| KeyError::Malformed("EC point is not on the curve".into()))
}

/// How JWKs without an `alg` member are bound.
///
/// An EC or OKP key is bound to the algorithm of its curve. An RSA key without `alg` may be
/// used with any RSA algorithm (RS256/384/512, PS256/384/512), never with another key type:
/// OpenID providers publish RSA keys without `alg` and sign with RS256 or PS256. This relaxes
/// RFC 8725 §3.1's one algorithm per key for keys whose publisher named none; the issuer's
/// allowed algorithms (`IssuerConfig::algorithms`, or the discovery document's
/// `id_token_signing_alg_values_supported`) narrow it, and one RSA algorithm there binds such
/// keys strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JwkPolicy {
    /// The algorithm for symmetric keys without `alg` (default none: such keys are refused).
    pub default_hmac_alg: Option<Algorithm>,
}

/// Setters, one per field; each returns the changed value.
impl JwkPolicy {
    /// Sets [`default_hmac_alg`](Self::default_hmac_alg).
    #[must_use]
    pub fn default_hmac_alg(mut self, default_hmac_alg: Option<Algorithm>) -> Self {
        self.default_hmac_alg = default_hmac_alg;
        self
    }
}

/// A set of verification keys with exact `kid` lookup.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    by_kid: HashMap<String, usize, foldhash::fast::RandomState>,
    skipped: Vec<String>,
}

impl KeySet {
    /// A set from keys. Refuses duplicate `kid`s, a mix of symmetric and asymmetric keys, and
    /// two unnamed keys for one algorithm.
    pub fn new(keys: Vec<VerificationKey>) -> Result<Self, KeyError> {
        Self::from_shared(keys.into_iter().map(Arc::new).collect())
    }

    /// [`KeySet::new`] for keys already shared with another set.
    pub fn from_shared(keys: Vec<Arc<VerificationKey>>) -> Result<Self, KeyError> {
        let symmetric = keys.iter().filter(|k| k.is_symmetric()).count();
        if symmetric != 0 && symmetric != keys.len() {
            return Err(KeyError::MixedKeySet);
        }
        let mut by_kid =
            HashMap::with_capacity_and_hasher(keys.len(), foldhash::fast::RandomState::default());
        let mut unnamed: Vec<Algorithm> = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            match &key.kid {
                Some(kid) => {
                    if by_kid.insert(kid.clone(), index).is_some() {
                        return Err(KeyError::DuplicateKid);
                    }
                }
                None => {
                    let algorithms = key.algorithms();
                    if algorithms.iter().any(|a| unnamed.contains(a)) {
                        return Err(KeyError::AmbiguousUnnamedKeys);
                    }
                    unnamed.extend(algorithms);
                }
            }
        }
        Ok(Self {
            keys,
            by_kid,
            skipped: Vec::new(),
        })
    }

    /// Parses a JWKS document (`{"keys": [...]}`) or a single JWK.
    pub fn from_jwks_json(json: &[u8], policy: &JwkPolicy) -> Result<Self, KeyError> {
        let document = crate::json::StrictObject::parse(json)
            .map_err(|e| KeyError::Malformed(format!("JWKS is not a JSON object: {e}")))?;
        let jwks: Vec<Value> = match document.get("keys") {
            Some(Value::Array(keys)) => keys.clone(),
            Some(_) => return Err(KeyError::Malformed("JWKS keys is not an array".into())),
            None => vec![Value::Object(document.into_map())],
        };
        let mut keys = Vec::with_capacity(jwks.len());
        let mut skipped = Vec::new();
        for (index, jwk) in jwks.iter().enumerate() {
            match VerificationKey::from_jwk(jwk, policy)? {
                Ok(key) => keys.push(key),
                Err(reason) => skipped.push(format!("key {index}: {reason}")),
            }
        }
        let mut set = Self::new(keys)?;
        set.skipped = skipped;
        Ok(set)
    }

    /// Reads a JWKS file (at most [`MAX_KEY_FILE_LEN`] bytes).
    pub fn from_jwks_file(path: &std::path::Path, policy: &JwkPolicy) -> Result<Self, KeyError> {
        let bytes =
            portcullis_core::read_bounded(path, MAX_KEY_FILE_LEN).map_err(|e| KeyError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Self::from_jwks_json(&bytes, policy)
    }

    /// Finds the key for a token, which must allow the token's algorithm: the key named by
    /// the token's `kid`, exactly; for a token without `kid`, the one unnamed key that allows
    /// its algorithm. A set of one unnamed key (a key configured from a PEM file or a secret)
    /// also takes tokens that name any `kid`, as a real provider's tokens do. There is no other
    /// fallback: a named key is only ever found by its own `kid`.
    pub fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&Arc<VerificationKey>, JwtError> {
        let key = match kid {
            Some(kid) => match self.by_kid.get(kid).and_then(|i| self.keys.get(*i)) {
                Some(key) => key,
                None => match self.keys.as_slice() {
                    [only] if only.kid.is_none() => only,
                    _ => return Err(JwtError::UnknownKey),
                },
            },
            None => {
                let mut unnamed = self.keys.iter().filter(|k| k.kid.is_none());
                match unnamed.clone().find(|k| k.allows(alg)) {
                    Some(key) => key,
                    None if unnamed.next().is_some() => return Err(JwtError::AlgorithmMismatch),
                    None => return Err(JwtError::UnknownKey),
                }
            }
        };
        if !key.allows(alg) {
            return Err(JwtError::AlgorithmMismatch);
        }
        Ok(key)
    }

    /// Whether a key has this id.
    #[must_use]
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.keys
    }

    /// Number of keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// JWKs left out of the document, with the reason (for logs; contains no key material).
    #[must_use]
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The algorithms of the keys, by JWA name, each once (for diagnostics).
    #[must_use]
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for alg in self.keys.iter().flat_map(|k| k.algorithms()) {
            let name = alg.as_str();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_and_small_modulus() {
        assert_eq!(bit_len(&[0x01, 0x00]), 9);
        assert_eq!(bit_len(&[0x80]), 8);
        assert_eq!(mod_small(&[0x01, 0x00], 7), 256 % 7);
    }

    #[test]
    fn hmac_keys_shorter_than_the_hash_are_weak() {
        assert!(VerificationKey::hmac(Algorithm::HS256, &[1; 31]).is_err());
        assert!(VerificationKey::hmac(Algorithm::HS256, &[1; 32]).is_ok());
        assert!(VerificationKey::hmac(Algorithm::HS512, &[1; 63]).is_err());
        assert!(VerificationKey::hmac(Algorithm::RS256, &[1; 64]).is_err());
    }

    #[test]
    fn lookup_is_exact() {
        let a = VerificationKey::hmac(Algorithm::HS256, &[1; 32])
            .unwrap()
            .with_kid("a");
        let set = KeySet::new(vec![a]).unwrap();
        assert!(set.find(Some("a"), Algorithm::HS256).is_ok());
        assert_eq!(
            set.find(Some("A"), Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
        assert_eq!(
            set.find(None, Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
        assert_eq!(
            set.find(Some("a"), Algorithm::HS384).unwrap_err(),
            JwtError::AlgorithmMismatch
        );
        // With several keys, a token without kid only finds an unnamed key.
        let b = VerificationKey::hmac(Algorithm::HS256, &[2; 32])
            .unwrap()
            .with_kid("b");
        let a = VerificationKey::hmac(Algorithm::HS256, &[1; 32])
            .unwrap()
            .with_kid("a");
        let set = KeySet::new(vec![a, b]).unwrap();
        assert_eq!(
            set.find(None, Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
        assert_eq!(
            set.find(Some("c"), Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
    }

    /// Outside testing: a key configured without a kid (`public_key_path`) refused every
    /// token from a real provider, because those carry a kid. A set of one unnamed key
    /// verifies whatever kid a token names; a named key still needs its own kid.
    #[test]
    fn a_single_unnamed_key_matches_any_kid() {
        let set = KeySet::new(vec![
            VerificationKey::hmac(Algorithm::HS256, &[1; 32]).unwrap(),
        ])
        .unwrap();
        assert!(set.find(Some("provider-key-7"), Algorithm::HS256).is_ok());
        assert!(set.find(None, Algorithm::HS256).is_ok());
        assert_eq!(
            set.find(Some("provider-key-7"), Algorithm::HS512)
                .unwrap_err(),
            JwtError::AlgorithmMismatch
        );
        let named = KeySet::new(vec![
            VerificationKey::hmac(Algorithm::HS256, &[1; 32])
                .unwrap()
                .with_kid("k1"),
        ])
        .unwrap();
        assert_eq!(
            named.find(Some("k2"), Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
        // A named key is only found by its kid.
        assert_eq!(
            named.find(None, Algorithm::HS256).unwrap_err(),
            JwtError::UnknownKey
        );
    }
}
