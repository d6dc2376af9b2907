//! A `ring`-backed [`jsonwebtoken::crypto::CryptoProvider`].
//!
//! Portcullis calls this provider's factories itself (`RING_PROVIDER`); it never goes
//! through jsonwebtoken's process-wide default, so no combination of Cargo features and no
//! provider installed by the application can make Portcullis panic or switch crypto.
//! Applications that also call `jsonwebtoken::encode`/`decode` directly can make the same
//! provider their process default with [`install_default`].
//!
//! Keys are parsed once, when the verifier or signer is built: HMAC keys become a
//! `ring::hmac::Key`, private keys become ring key pairs. ring has no pre-parsed public key
//! type for RSA, ECDSA or Ed25519 verification, so those keep their encoded form and ring
//! parses it on each call (a few hundred nanoseconds next to a 20–60 µs signature check).

use std::fmt;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error as JwtLibError, ErrorKind as JwtLibErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use ring::{digest, hmac};

use crate::algorithm::{Algorithm, KeyType};
use crate::der;

/// The ring provider, whose factories the verifier and the issuer call.
pub(crate) static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_component_from_private_key,
        compute_digest,
    },
};

/// Makes Portcullis's ring provider jsonwebtoken's process-wide default, for code that calls
/// jsonwebtoken directly. Returns `false` when another provider was installed first (which
/// does not affect Portcullis: it always calls its own provider explicitly).
pub fn install_default() -> bool {
    RING_PROVIDER.install_default().is_ok()
}

fn lib_error(kind: JwtLibErrorKind) -> JwtLibError {
    JwtLibError::from(kind)
}

fn sig_error() -> signature::Error {
    signature::Error::new()
}

/// Portcullis's algorithm for one of jsonwebtoken's (none for the ones it does not support).
fn ours(algorithm: jsonwebtoken::Algorithm) -> jsonwebtoken::errors::Result<Algorithm> {
    crate::algorithm::ALL
        .into_iter()
        .find(|alg| alg.to_jsonwebtoken() == algorithm)
        .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidAlgorithm))
}

fn new_verifier(
    algorithm: &jsonwebtoken::Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(RingVerifier::new(ours(*algorithm)?, key)?))
}

/// Builds a signer for `algorithm` from `key` (PKCS#8 or PKCS#1 DER for RSA, PKCS#8 for EC and
/// Ed25519, the raw secret for HMAC).
fn new_signer(
    algorithm: &jsonwebtoken::Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    Ok(Box::new(RingSigner::new(ours(*algorithm)?, key)?))
}

impl RingSigner {
    /// What [`RING_PROVIDER`]'s signer factory builds (a concrete, `Send + Sync` type).
    pub(crate) fn new(
        algorithm: Algorithm,
        key: &EncodingKey,
    ) -> jsonwebtoken::errors::Result<Self> {
        let algorithm = &algorithm;
        if key.family() != algorithm.to_jsonwebtoken().family() {
            return Err(lib_error(JwtLibErrorKind::InvalidAlgorithm));
        }
        let bytes = key.as_bytes();
        let kind = match algorithm.key_type() {
            KeyType::Hmac => {
                let hmac = algorithm
                    .hmac()
                    .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidAlgorithm))?;
                SignerKind::Hmac(hmac::Key::new(hmac, bytes))
            }
            KeyType::Rsa => {
                let pair = rsa_key_pair(bytes)
                    .map_err(|e| lib_error(JwtLibErrorKind::InvalidRsaKey(e.to_string())))?;
                SignerKind::Rsa(pair)
            }
            KeyType::Ec => {
                let (signing, _, _) = algorithm
                    .ecdsa()
                    .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidEcdsaKey))?;
                let pair = sig::EcdsaKeyPair::from_pkcs8(signing, bytes, &SystemRandom::new())
                    .map_err(|_| lib_error(JwtLibErrorKind::InvalidEcdsaKey))?;
                SignerKind::Ecdsa(pair)
            }
            KeyType::Ed25519 => {
                let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes)
                    .map_err(|_| lib_error(JwtLibErrorKind::InvalidEddsaKey))?;
                SignerKind::Ed25519(pair)
            }
        };
        Ok(RingSigner {
            algorithm: *algorithm,
            kind,
            rng: SystemRandom::new(),
        })
    }
}

/// An RSA private key in PKCS#8 or PKCS#1 DER.
pub(crate) fn rsa_key_pair(der: &[u8]) -> Result<sig::RsaKeyPair, ring::error::KeyRejected> {
    sig::RsaKeyPair::from_pkcs8(der).or_else(|_| sig::RsaKeyPair::from_der(der))
}

enum VerifierKind {
    /// HMAC, checked with ring's constant-time tag comparison.
    Hmac(hmac::Key),
    /// RSA PKCS#1 v1.5 or PSS (2048 to 8192 bits, ring's bounds).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ECDSA (fixed-length r‖s, as JWS requires) or Ed25519, over an encoded point.
    Point(Vec<u8>),
}

/// A ring verifier for one algorithm, built once per key.
pub(crate) struct RingVerifier {
    algorithm: Algorithm,
    kind: VerifierKind,
}

/// `Debug` for key holders: the algorithm (and key id), never the key.
pub(crate) fn debug_key(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    kid: Option<&str>,
    algorithm: Algorithm,
) -> fmt::Result {
    let mut debug = f.debug_struct(name);
    if let Some(kid) = kid {
        debug.field("kid", &kid);
    }
    debug
        .field("algorithm", &algorithm)
        .field("key", &"[redacted]")
        .finish()
}

impl fmt::Debug for RingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_key(f, "RingVerifier", None, self.algorithm)
    }
}

impl RingVerifier {
    /// What [`RING_PROVIDER`]'s verifier factory builds (a concrete, `Send + Sync` type).
    /// Refuses a key of another family than the algorithm's.
    pub(crate) fn new(
        algorithm: Algorithm,
        key: &DecodingKey,
    ) -> jsonwebtoken::errors::Result<Self> {
        if key.family() != algorithm.to_jsonwebtoken().family() {
            return Err(lib_error(JwtLibErrorKind::InvalidAlgorithm));
        }
        let kind = match algorithm.key_type() {
            KeyType::Hmac => {
                let hmac = algorithm
                    .hmac()
                    .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidAlgorithm))?;
                VerifierKind::Hmac(hmac::Key::new(hmac, key.try_get_as_bytes()?))
            }
            KeyType::Rsa => {
                let (n, e) = match key.kind() {
                    DecodingKeyKind::RsaModulusExponent { n, e } => (n.clone(), e.clone()),
                    DecodingKeyKind::SecretOrDer(der) => {
                        der::rsa_public_key(der).map_err(|_| {
                            lib_error(JwtLibErrorKind::InvalidRsaKey("bad RSA key".into()))
                        })?
                    }
                };
                VerifierKind::Rsa { n, e }
            }
            KeyType::Ec | KeyType::Ed25519 => VerifierKind::Point(key.try_get_as_bytes()?.to_vec()),
        };
        Ok(Self { algorithm, kind })
    }
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.verify_bytes(msg, signature)
    }
}

impl RingVerifier {
    /// Checks `signature` over `msg` with the verifier's own algorithm.
    pub(crate) fn verify_bytes(
        &self,
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), signature::Error> {
        self.verify_with(self.algorithm, msg, signature)
    }

    /// Checks `signature` over `msg` with `algorithm`: the verifier's own, or, for an RSA key,
    /// any RSA algorithm (the caller decides which ones a key may be used with).
    pub(crate) fn verify_with(
        &self,
        algorithm: Algorithm,
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), signature::Error> {
        match &self.kind {
            VerifierKind::Hmac(key) if algorithm == self.algorithm => {
                hmac::verify(key, msg, signature).map_err(|_| sig_error())
            }
            VerifierKind::Hmac(_) => Err(sig_error()),
            VerifierKind::Rsa { n, e } => {
                let params = algorithm.rsa_verification().ok_or_else(sig_error)?;
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, signature)
                    .map_err(|_| sig_error())
            }
            VerifierKind::Point(_) if algorithm != self.algorithm => Err(sig_error()),
            VerifierKind::Point(public_key) => {
                let algorithm = self.algorithm.point_verification().ok_or_else(sig_error)?;
                sig::UnparsedPublicKey::new(algorithm, public_key)
                    .verify(msg, signature)
                    .map_err(|_| sig_error())
            }
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.algorithm.to_jsonwebtoken()
    }
}

enum SignerKind {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair),
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
}

/// A pre-parsed ring key pair (or HMAC key) that signs for one algorithm.
pub(crate) struct RingSigner {
    algorithm: Algorithm,
    kind: SignerKind,
    rng: SystemRandom,
}

impl fmt::Debug for RingSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_key(f, "RingSigner", None, self.algorithm)
    }
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match &self.kind {
            SignerKind::Hmac(key) => Ok(hmac::sign(key, msg).as_ref().to_vec()),
            SignerKind::Rsa(pair) => {
                let encoding = self.algorithm.rsa_encoding().ok_or_else(sig_error)?;
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &self.rng, msg, &mut out)
                    .map_err(|_| sig_error())?;
                Ok(out)
            }
            SignerKind::Ecdsa(pair) => pair
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| sig_error()),
            SignerKind::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.algorithm.to_jsonwebtoken()
    }
}

fn rsa_components_from_private_key(key: &[u8]) -> jsonwebtoken::errors::Result<(Vec<u8>, Vec<u8>)> {
    let pair =
        rsa_key_pair(key).map_err(|e| lib_error(JwtLibErrorKind::InvalidRsaKey(e.to_string())))?;
    der::rsa_public_key(pair.public_key().as_ref())
        .map_err(|_| lib_error(JwtLibErrorKind::InvalidRsaKey("bad RSA key".into())))
}

fn rsa_components_from_public_key(key: &[u8]) -> jsonwebtoken::errors::Result<(Vec<u8>, Vec<u8>)> {
    der::rsa_public_key(key)
        .map_err(|_| lib_error(JwtLibErrorKind::InvalidRsaKey("bad RSA public key".into())))
}

fn ec_components_from_private_key(
    key: &[u8],
    algorithm: jsonwebtoken::Algorithm,
) -> jsonwebtoken::errors::Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let algorithm = ours(algorithm)?;
    let (signing, _, size) = algorithm
        .ecdsa()
        .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidEcdsaKey))?;
    let curve = if algorithm == Algorithm::ES256 {
        EllipticCurve::P256
    } else {
        EllipticCurve::P384
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, key, &SystemRandom::new())
        .map_err(|_| lib_error(JwtLibErrorKind::InvalidEcdsaKey))?;
    let (x, y) = split_point(pair.public_key().as_ref(), size)
        .ok_or_else(|| lib_error(JwtLibErrorKind::InvalidEcdsaKey))?;
    Ok((curve, x, y))
}

/// Splits an uncompressed point `04 ‖ x ‖ y` into its coordinates.
pub(crate) fn split_point(point: &[u8], size: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let (tag, rest) = point.split_first()?;
    if *tag != 4 || rest.len() != 2 * size {
        return None;
    }
    let (x, y) = rest.split_at(size);
    Some((x.to_vec(), y.to_vec()))
}

fn ed_component_from_private_key(
    key: &[u8],
    curve: &EllipticCurve,
) -> jsonwebtoken::errors::Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(lib_error(JwtLibErrorKind::InvalidAlgorithm));
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key)
        .map_err(|_| lib_error(JwtLibErrorKind::InvalidEddsaKey))?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> jsonwebtoken::errors::Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(lib_error(JwtLibErrorKind::InvalidAlgorithm)),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests;
