//! The key format: `<prefix><id>_<secret><checksum>`.
//!
//! * `prefix`: configurable, such as `pc_live_` or `pc_test_`, so a live key is refused by a
//!   test deployment and the other way round, and secret scanners recognise leaked keys;
//! * `id`: 12 base62 characters encoding 64 random bits, public, used to find the key's record;
//! * `secret`: 43 base62 characters encoding 32 bytes (256 bits) from the system CSPRNG;
//! * `checksum`: 6 base62 characters of the CRC-32 of everything before it, so that a
//!   mistyped or truncated key is refused offline, before any store lookup.
//!
//! Base62 (`0-9A-Za-z`) keeps the key one "word" for double-click selection, like GitHub's
//! token format.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use portcullis_core::SecretString;

/// Characters of the key id.
pub const ID_LEN: usize = 12;
/// Characters of the secret (32 bytes in base62).
pub const SECRET_LEN: usize = 43;
/// Characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Bytes of entropy in the secret.
pub const SECRET_BYTES: usize = 32;
/// Longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 32;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `bytes` (big-endian) in base62, left-padded with `0` to `width` characters.
/// Returns `None` if the number needs more than `width` characters.
pub(crate) fn base62(bytes: &[u8], width: usize) -> Option<String> {
    let mut number: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while number.iter().any(|b| *b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(acc / 62).ok()?;
            remainder = acc % 62;
        }
        digits.push(*ALPHABET.get(usize::try_from(remainder).ok()?)?);
    }
    if digits.len() > width {
        return None;
    }
    digits.resize(width, b'0');
    digits.reverse();
    String::from_utf8(digits).ok()
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, it cannot panic"
)]
static CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            k += 1;
        }
        table[n] = crc;
        n += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected), as used by zlib and GitHub's token checksums.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in data {
        let index = usize::from((crc as u8) ^ *byte);
        crc = (crc >> 8) ^ CRC_TABLE.get(index).copied().unwrap_or(0);
    }
    !crc
}

fn checksum(body: &str) -> Option<String> {
    base62(&crc32(body.as_bytes()).to_be_bytes(), CHECKSUM_LEN)
}

/// A key prefix such as `pc_live_`: 1 to 32 characters of `[A-Za-z0-9_]`, ending in `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

/// Errors of the key format and its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The prefix is not `[A-Za-z0-9_]{1,32}` ending in `_`.
    #[error("a key prefix is 1 to 32 characters of [A-Za-z0-9_] and ends with `_`")]
    InvalidPrefix,
    /// The key does not start with an accepted prefix.
    #[error("the key does not have an accepted prefix")]
    UnknownPrefix,
    /// The key is not `<id>_<secret><checksum>` after its prefix.
    #[error("the key is not in the expected format")]
    Malformed,
    /// The checksum does not match (a typo, a truncated key).
    #[error("the key checksum does not match")]
    BadChecksum,
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

impl KeyPrefix {
    /// Checks and wraps a prefix.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`].
    pub fn new(prefix: &str) -> Result<Self, FormatError> {
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.ends_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(FormatError::InvalidPrefix)
        }
    }

    /// The prefix.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public id of a key (12 base62 characters). Safe to log.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// Checks and wraps an id.
    ///
    /// # Errors
    /// [`FormatError::Malformed`] unless it is 12 base62 characters.
    pub fn parse(id: &str) -> Result<Self, FormatError> {
        if id.len() == ID_LEN && is_base62(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(FormatError::Malformed)
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = FormatError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key as presented, split into its parts. The secret stays redacted.
#[derive(Debug)]
#[non_exhaustive]
pub struct ParsedKey {
    /// The prefix it carried.
    pub prefix: KeyPrefix,
    /// Its id.
    pub id: KeyId,
    /// Its secret part.
    pub secret: SecretString,
}

/// Parses a presented key against the accepted prefixes. The checksum is verified here, so a
/// mistyped key never reaches the store.
///
/// # Errors
/// [`FormatError::UnknownPrefix`], [`FormatError::Malformed`] or [`FormatError::BadChecksum`].
pub fn parse_key(key: &str, accepted: &[KeyPrefix]) -> Result<ParsedKey, FormatError> {
    let prefix = accepted
        .iter()
        .filter(|p| key.starts_with(p.as_str()))
        .max_by_key(|p| p.0.len())
        .ok_or(FormatError::UnknownPrefix)?;
    let rest = key.get(prefix.0.len()..).ok_or(FormatError::Malformed)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN {
        return Err(FormatError::Malformed);
    }
    let id = rest.get(..ID_LEN).ok_or(FormatError::Malformed)?;
    let separator = rest.get(ID_LEN..=ID_LEN).ok_or(FormatError::Malformed)?;
    let secret = rest
        .get(ID_LEN + 1..ID_LEN + 1 + SECRET_LEN)
        .ok_or(FormatError::Malformed)?;
    let check = rest
        .get(ID_LEN + 1 + SECRET_LEN..)
        .ok_or(FormatError::Malformed)?;
    if separator != "_" || !is_base62(id) || !is_base62(secret) || !is_base62(check) {
        return Err(FormatError::Malformed);
    }
    let body = key
        .get(..key.len() - CHECKSUM_LEN)
        .ok_or(FormatError::Malformed)?;
    let expected = checksum(body).ok_or(FormatError::Malformed)?;
    if !portcullis_core::constant_time_eq(expected.as_bytes(), check.as_bytes()) {
        return Err(FormatError::BadChecksum);
    }
    Ok(ParsedKey {
        prefix: prefix.clone(),
        id: KeyId::parse(id)?,
        secret: SecretString::new(secret),
    })
}

/// Assembles a well-formed key from its parts, adding the checksum. (The checksum only
/// catches typos: it is public, and anyone can assemble a well-formed key. What makes a key
/// valid is its secret.)
///
/// # Errors
/// [`FormatError::Malformed`] unless `secret` is 43 base62 characters.
pub fn assemble_key(prefix: &KeyPrefix, id: &KeyId, secret: &str) -> Result<String, FormatError> {
    if secret.len() != SECRET_LEN || !is_base62(secret) {
        return Err(FormatError::Malformed);
    }
    let body = Zeroizing::new(format!("{prefix}{id}_{secret}"));
    let check = checksum(&body).ok_or(FormatError::Malformed)?;
    Ok(format!("{}{check}", body.as_str()))
}

/// A newly generated key: the full key, shown once, and its id.
#[derive(Debug)]
#[non_exhaustive]
pub struct GeneratedKey {
    /// The whole key to hand to its owner (`Debug` prints `[redacted]`).
    pub key: SecretString,
    /// Its public id.
    pub id: KeyId,
    /// Its secret part, for hashing into the record.
    pub(crate) secret: SecretString,
}

/// Generates a key with `prefix`: 8 random bytes for the id, 32 for the secret, both from the
/// system CSPRNG (ring).
///
/// # Errors
/// [`FormatError::Random`] if the CSPRNG fails.
pub fn generate_key(prefix: &KeyPrefix) -> Result<GeneratedKey, FormatError> {
    let rng = SystemRandom::new();
    let mut id_bytes = [0u8; 8];
    rng.fill(&mut id_bytes).map_err(|_| FormatError::Random)?;
    let mut secret_bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    rng.fill(secret_bytes.as_mut())
        .map_err(|_| FormatError::Random)?;
    let id = base62(&id_bytes, ID_LEN).ok_or(FormatError::Random)?;
    let secret =
        Zeroizing::new(base62(secret_bytes.as_ref(), SECRET_LEN).ok_or(FormatError::Random)?);
    let body = Zeroizing::new(format!("{prefix}{id}_{}", secret.as_str()));
    let check = checksum(&body).ok_or(FormatError::Random)?;
    Ok(GeneratedKey {
        key: SecretString::new(format!("{}{check}", body.as_str())),
        id: KeyId::parse(&id)?,
        secret: SecretString::new(secret.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_answer() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_widths() {
        assert_eq!(base62(&[0], 3).unwrap(), "000");
        assert_eq!(base62(&[61], 2).unwrap(), "0z");
        assert_eq!(base62(&[62], 2).unwrap(), "10");
        assert_eq!(base62(&[0xff; 32], SECRET_LEN).unwrap().len(), SECRET_LEN);
        assert_eq!(base62(&[0xff; 8], ID_LEN).unwrap().len(), ID_LEN);
        assert!(base62(&[0xff; 9], ID_LEN).is_none());
        assert_eq!(
            base62(&[0xff; 4], CHECKSUM_LEN).unwrap().len(),
            CHECKSUM_LEN
        );
        assert!(base62(&[0xff; 33], SECRET_LEN).is_none());
    }

    #[test]
    fn generated_keys_parse_and_a_typo_is_caught() {
        let prefix = KeyPrefix::new("pc_live_").unwrap();
        let generated = generate_key(&prefix).unwrap();
        let key = generated.key.expose().to_owned();
        let parsed = parse_key(&key, std::slice::from_ref(&prefix)).unwrap();
        assert_eq!(parsed.id, generated.id);
        assert_eq!(parsed.secret.expose(), generated.secret.expose());

        let mut typo = key.clone().into_bytes();
        let i = prefix.as_str().len() + ID_LEN + 5;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            parse_key(&typo, &[prefix]).unwrap_err(),
            FormatError::BadChecksum
        );
    }

    #[test]
    fn prefixes() {
        assert!(KeyPrefix::new("pc_live_").is_ok());
        for bad in ["", "pc", "pc-live_", "pc_live", &"a_".repeat(20)] {
            assert_eq!(
                KeyPrefix::new(bad),
                Err(FormatError::InvalidPrefix),
                "{bad}"
            );
        }
    }
}
