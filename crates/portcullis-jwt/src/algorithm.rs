//! [`Algorithm`]: the JWS signature algorithms Portcullis verifies and signs with (its own
//! type, so that jsonwebtoken's can change without changing this crate's API).

use std::fmt;
use std::str::FromStr;

use ring::signature as sig;

use crate::error::JwtError;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037 for EdDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// A shared secret.
    Hmac,
    /// An RSA key.
    Rsa,
    /// An EC key on the curve of the algorithm.
    Ec,
    /// An Ed25519 key.
    Ed25519,
}

/// Every algorithm, in the order of the enum.
pub(crate) const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl Algorithm {
    /// The JWA name (`HS256`, `EdDSA`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether this is an HMAC (symmetric) algorithm.
    #[must_use]
    pub const fn is_hmac(self) -> bool {
        matches!(self.key_type(), KeyType::Hmac)
    }

    /// The kind of key the algorithm needs: the one place that tells the families apart.
    pub(crate) const fn key_type(self) -> KeyType {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => KeyType::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyType::Rsa
            }
            Self::ES256 | Self::ES384 => KeyType::Ec,
            Self::EdDSA => KeyType::Ed25519,
        }
    }

    /// The same algorithm for jsonwebtoken (for its key types and crypto provider).
    pub(crate) const fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::HS384 => jsonwebtoken::Algorithm::HS384,
            Self::HS512 => jsonwebtoken::Algorithm::HS512,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::PS384 => jsonwebtoken::Algorithm::PS384,
            Self::PS512 => jsonwebtoken::Algorithm::PS512,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// ring's parameters for each algorithm, in one place: `None` for an algorithm of another
/// family (so a mix-up is refused, never defaulted).
impl Algorithm {
    /// The HMAC of an `HS*` algorithm.
    pub(crate) fn hmac(self) -> Option<ring::hmac::Algorithm> {
        match self {
            Self::HS256 => Some(ring::hmac::HMAC_SHA256),
            Self::HS384 => Some(ring::hmac::HMAC_SHA384),
            Self::HS512 => Some(ring::hmac::HMAC_SHA512),
            _ => None,
        }
    }

    /// The verification parameters of an `RS*`/`PS*` algorithm (2048 to 8192 bits).
    pub(crate) fn rsa_verification(self) -> Option<&'static sig::RsaParameters> {
        match self {
            Self::RS256 => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
            Self::RS384 => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
            Self::RS512 => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
            Self::PS256 => Some(&sig::RSA_PSS_2048_8192_SHA256),
            Self::PS384 => Some(&sig::RSA_PSS_2048_8192_SHA384),
            Self::PS512 => Some(&sig::RSA_PSS_2048_8192_SHA512),
            _ => None,
        }
    }

    /// The signature encoding of an `RS*`/`PS*` algorithm.
    pub(crate) fn rsa_encoding(self) -> Option<&'static dyn sig::RsaEncoding> {
        match self {
            Self::RS256 => Some(&sig::RSA_PKCS1_SHA256),
            Self::RS384 => Some(&sig::RSA_PKCS1_SHA384),
            Self::RS512 => Some(&sig::RSA_PKCS1_SHA512),
            Self::PS256 => Some(&sig::RSA_PSS_SHA256),
            Self::PS384 => Some(&sig::RSA_PSS_SHA384),
            Self::PS512 => Some(&sig::RSA_PSS_SHA512),
            _ => None,
        }
    }

    /// The signing parameters of an `ES*` algorithm, with its JWK curve name and the size of
    /// a coordinate in bytes.
    pub(crate) fn ecdsa(
        self,
    ) -> Option<(&'static sig::EcdsaSigningAlgorithm, &'static str, usize)> {
        match self {
            Self::ES256 => Some((&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)),
            Self::ES384 => Some((&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)),
            _ => None,
        }
    }

    /// The verification of an algorithm over an encoded point (`ES*`, `EdDSA`).
    pub(crate) fn point_verification(self) -> Option<&'static dyn sig::VerificationAlgorithm> {
        match self {
            Self::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED),
            Self::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED),
            Self::EdDSA => Some(&sig::ED25519),
            _ => None,
        }
    }
}

impl FromStr for Algorithm {
    type Err = JwtError;

    /// Parses a name exactly as JWA spells it; `none` in any case is its own error.
    fn from_str(name: &str) -> Result<Self, JwtError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(JwtError::AlgorithmNone);
        }
        ALL.into_iter()
            .find(|alg| alg.as_str() == name)
            .ok_or(JwtError::UnsupportedAlgorithm)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_jsonwebtoken() {
        for alg in ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
            assert_eq!(format!("{:?}", alg.to_jsonwebtoken()), alg.as_str());
        }
        assert_eq!("NONE".parse::<Algorithm>(), Err(JwtError::AlgorithmNone));
        assert_eq!(
            "hs256".parse::<Algorithm>(),
            Err(JwtError::UnsupportedAlgorithm)
        );
        assert_eq!(
            "ES512".parse::<Algorithm>(),
            Err(JwtError::UnsupportedAlgorithm)
        );
    }
}
