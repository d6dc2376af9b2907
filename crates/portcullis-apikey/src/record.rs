//! What is stored for a key: never the key, only a keyed hash of its secret.

use std::fmt;

use base64::Engine as _;
use ring::{digest, hmac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The server-side secret mixed into every stored hash (HMAC-SHA-256 key). Kept out of the
/// key store (environment, secret manager): a dump of the store alone cannot be used to test
/// guesses, and changing the pepper invalidates every key.
pub struct Pepper {
    key: hmac::Key,
}

/// Shortest pepper accepted, in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

/// A pepper that is too short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pepper must be at least {MIN_PEPPER_LEN} bytes")]
pub struct WeakPepper;

impl Pepper {
    /// A pepper from at least 32 bytes of secret material.
    ///
    /// # Errors
    /// [`WeakPepper`] when it is shorter.
    pub fn new(bytes: &[u8]) -> Result<Self, WeakPepper> {
        if bytes.len() < MIN_PEPPER_LEN {
            return Err(WeakPepper);
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// The keyed hash of a key's secret part.
    #[must_use]
    pub fn hash(&self, secret: &str) -> KeyHash {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        KeyHash(out)
    }

    /// Whether `secret` hashes to `expected`, compared in constant time (ring's
    /// `hmac::verify`).
    #[must_use]
    pub fn verify(&self, secret: &str, expected: &KeyHash) -> bool {
        hmac::verify(&self.key, secret.as_bytes(), &expected.0).is_ok()
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

/// 32 bytes of hash: HMAC-SHA-256 of a Portcullis key's secret, or SHA-256 of a whole
/// AmateRS key. Serialized as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub(crate) [u8; 32]);

impl KeyHash {
    /// SHA-256 of a whole key: the AmateRS `key_hash` (before base64).
    #[must_use]
    pub fn sha256(key: &str) -> Self {
        let d = digest::digest(&digest::SHA256, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// The hash in standard base64, as AmateRS writes `key_hash`.
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Parses standard base64 of 32 bytes.
    ///
    /// # Errors
    /// When the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, InvalidHash> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| InvalidHash)?,
        );
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| InvalidHash)?;
        Ok(Self(array))
    }

    /// Compares in constant time.
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        portcullis_core::constant_time_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// A hash that is not base64 of 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a key hash must be standard base64 of 32 bytes")]
pub struct InvalidHash;

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// How a record's key is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", content = "hash", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verifier {
    /// A Portcullis key: HMAC-SHA-256 of its secret part with the pepper.
    HmacSha256(KeyHash),
    /// An AmateRS key: SHA-256 of the whole key (`key_hash`).
    Sha256(KeyHash),
}

/// One stored key. Contains no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyRecord {
    /// The key id (the public part of a Portcullis key, or the AmateRS `id`).
    pub id: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// The subject id of the principal the key authenticates (AmateRS `user_id`).
    pub owner: String,
    /// Roles of the principal.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes of the key (for example `read` for a read-only key).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Tenant the key belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// How the key is checked.
    pub verifier: Verifier,
    /// When the key was created.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// When the key stops working.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// When the key was revoked.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked_at: Option<OffsetDateTime>,
    /// When the key was last used (recorded in batches, off the request path).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used_at: Option<OffsetDateTime>,
    /// Anything else (AmateRS `attributes`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

impl KeyRecord {
    /// A record for a new Portcullis key.
    #[must_use]
    pub fn new(id: impl Into<String>, owner: impl Into<String>, verifier: Verifier) -> Self {
        Self {
            id: id.into(),
            name: String::new(),
            owner: owner.into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            tenant: None,
            verifier,
            created_at: None,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            attributes: Map::new(),
        }
    }

    /// Whether the key is revoked at `now`.
    #[must_use]
    pub fn is_revoked_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_some_and(|t| now >= t)
    }

    /// Whether the key has expired at `now` ("on or after").
    #[must_use]
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// The AmateRS `api_keys.json` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmatersKey {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) key_hash: Option<KeyHash>,
    /// Only with `hash_keys = false`: the key itself (hashed on load, never kept).
    #[serde(default)]
    pub(crate) key: Option<String>,
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    #[serde(default)]
    pub(crate) tenant: Option<String>,
    #[serde(default)]
    pub(crate) attributes: Map<String, Value>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) revoked_at: Option<OffsetDateTime>,
}
