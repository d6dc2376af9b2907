//! Secret strings: redacted in `Debug`, zeroed on drop, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// A secret taken from a request or a configuration file: a bearer token, an API key, a
/// password, a session id.
///
/// `Debug` prints `[redacted]`, the memory is zeroed when the value is dropped, and
/// [`SecretString::constant_time_eq`] compares without leaking the position of the first
/// difference. There is deliberately no `Display` and no `Serialize`: reading the secret takes
/// an explicit call to [`SecretString::expose`].
///
/// ```
/// use portcullis_core::SecretString;
///
/// let token = SecretString::new("s3cr3t-t0ken");
/// assert_eq!(format!("{token:?}"), "SecretString([redacted])");
/// assert!(token.constant_time_eq("s3cr3t-t0ken"));
/// assert!(!token.constant_time_eq("s3cr3t-t0keN"));
/// ```
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Call this only where the secret is used (hashing, signature
    /// verification), never to log or display it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Length of the secret in bytes (not secret in itself).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with `other` in time that depends only on the lengths of the two values.
    #[must_use]
    pub fn constant_time_eq(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.constant_time_eq(other.expose())
    }
}

impl Eq for SecretString {}

/// Reads a secret from configuration (a JSON or TOML string). There is deliberately no
/// `Serialize`: secrets are not written back out by accident.
impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Compares two byte strings in time that depends only on their lengths, never on where they
/// differ (with the `subtle` crate, whose comparison is written so that the optimiser cannot
/// turn it into an early exit). Different lengths compare unequal (lengths are not treated as
/// secret).
///
/// ```
/// assert!(portcullis_core::constant_time_eq(b"abc", b"abc"));
/// assert!(!portcullis_core::constant_time_eq(b"abc", b"abd"));
/// assert!(!portcullis_core::constant_time_eq(b"abc", b"abcd"));
/// ```
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SecretString::new("hunter2-very-secret");
        let printed = format!("{secret:?} {:#?}", secret);
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn comparison_of_every_length_and_difference() {
        let base: Vec<u8> = (0..=64).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(constant_time_eq(a, a));
            assert!(!constant_time_eq(a, &base[..len + 1]));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!constant_time_eq(a, &b), "len {len}, difference at {at}");
            }
        }
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(SecretString::new("a"), SecretString::from("a"));
        assert_ne!(SecretString::new("a"), SecretString::from("b"));
        assert!(SecretString::default().is_empty());
        assert_eq!(SecretString::new("abc").len(), 3);
    }
}
