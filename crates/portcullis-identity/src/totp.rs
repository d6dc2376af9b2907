//! Time-based one-time passwords (RFC 6238 on RFC 4226's HOTP), on ring's HMAC: codes of 6
//! to 8 digits over SHA-1, SHA-256 or SHA-512, a 30-second step by default, one step of clock
//! skew either way, a code accepted once (the step it matched is returned, and a step not
//! after the last one used is refused), compared in constant time. [`Totp::uri`] is the
//! `otpauth://` URI authenticator apps enrol from.

use std::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The HMAC of a [`Totp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1: what every authenticator app supports (and the default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            // HOTP's HMAC-SHA-1 is not SHA-1's collision weakness: HMAC needs only a PRF.
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The size of a new secret: the hash's output, as RFC 4226 §4 recommends.
    fn secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Its name in an `otpauth://` URI.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

/// Why a [`Totp`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The shared secret is shorter than 128 bits (RFC 4226 §4, R6).
    #[error("a TOTP secret must be at least 16 bytes")]
    SecretTooShort,
    /// Codes have 6, 7 or 8 digits.
    #[error("a TOTP code has 6 to 8 digits")]
    Digits,
    /// The step is 1 second to 10 minutes.
    #[error("a TOTP step is 1 to 600 seconds")]
    Step,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// One account's TOTP generator. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct Totp {
    secret: Zeroizing<Vec<u8>>,
    algorithm: TotpAlgorithm,
    digits: u32,
    step: u64,
    skew: u64,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("step", &self.step)
            .field("skew", &self.skew)
            .finish()
    }
}

impl Totp {
    /// A generator over `secret` with `digits` digits, a 30-second step and one step of
    /// skew either way.
    ///
    /// # Errors
    /// [`TotpError::SecretTooShort`] under 16 bytes; [`TotpError::Digits`] outside 6–8.
    pub fn new(
        secret: impl Into<Vec<u8>>,
        algorithm: TotpAlgorithm,
        digits: u32,
    ) -> Result<Self, TotpError> {
        let secret = Zeroizing::new(secret.into());
        if secret.len() < 16 {
            return Err(TotpError::SecretTooShort);
        }
        if !(6..=8).contains(&digits) {
            return Err(TotpError::Digits);
        }
        Ok(Self {
            secret,
            algorithm,
            digits,
            step: 30,
            skew: 1,
        })
    }

    /// A generator with a new random secret of the hash's size.
    ///
    /// # Errors
    /// [`TotpError::Random`]; [`TotpError::Digits`] outside 6–8.
    pub fn generate(algorithm: TotpAlgorithm, digits: u32) -> Result<Self, TotpError> {
        let mut secret = vec![0u8; algorithm.secret_len()];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| TotpError::Random)?;
        Self::new(secret, algorithm, digits)
    }

    /// Sets the step (RFC 6238's X; 30 s by default).
    ///
    /// # Errors
    /// [`TotpError::Step`] outside 1–600 seconds.
    pub fn step(mut self, seconds: u64) -> Result<Self, TotpError> {
        if !(1..=600).contains(&seconds) {
            return Err(TotpError::Step);
        }
        self.step = seconds;
        Ok(self)
    }

    /// Sets how many steps before and after the current one a code may be from (1 by
    /// default; 0 accepts the current step only).
    #[must_use]
    pub fn skew(mut self, steps: u64) -> Self {
        self.skew = steps.min(10);
        self
    }

    /// The shared secret (to store encrypted, and to show once at enrolment).
    #[must_use]
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The step a Unix time falls in.
    #[must_use]
    pub fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.step
    }

    /// The HOTP code of counter `counter` (RFC 4226 §5.3: dynamic truncation).
    #[must_use]
    pub fn hotp(&self, counter: u64) -> String {
        let key = hmac::Key::new(self.algorithm.hmac(), &self.secret);
        let tag = hmac::sign(&key, &counter.to_be_bytes());
        let mac = tag.as_ref();
        // The low nibble of the last byte picks 4 bytes; every tag is at least 20 bytes,
        // so the offset (at most 15) plus 4 is always inside it.
        let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
        let word = mac
            .get(offset..offset + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_be_bytes(b) & 0x7fff_ffff);
        let modulus = 10u32.pow(self.digits);
        format!("{:0width$}", word % modulus, width = self.digits as usize)
    }

    /// The code at a Unix time.
    #[must_use]
    pub fn code_at(&self, unix_time: u64) -> String {
        self.hotp(self.step_at(unix_time))
    }

    /// Checks `code` at `unix_time`: the step it matches (within the skew), if that step is
    /// after `last_used` (the step returned by the previous successful check of this
    /// account; store it, so that a code is accepted only once). `None` for a wrong, stale,
    /// reused or malformed code. Every candidate is compared in constant time.
    #[must_use]
    pub fn verify(&self, code: &str, unix_time: u64, last_used: Option<u64>) -> Option<u64> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = self.step_at(unix_time);
        let mut matched = None;
        for counter in now.saturating_sub(self.skew)..=now.saturating_add(self.skew) {
            let fresh = last_used.is_none_or(|last| counter > last);
            let equal =
                portcullis_core::constant_time_eq(self.hotp(counter).as_bytes(), code.as_bytes());
            if equal && fresh && matched.is_none() {
                matched = Some(counter);
            }
        }
        matched
    }

    /// The `otpauth://totp/` URI of this generator (the key-URI format authenticator apps
    /// read, usually from a QR code): `issuer` and `account` label it in the app.
    #[must_use]
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", percent(issuer), percent(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            base32(&self.secret),
            percent(issuer),
            self.algorithm.name(),
            self.digits,
            self.step
        )
    }
}

/// RFC 4648 base32, without padding (as otpauth URIs carry it).
#[must_use]
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let index = ((buffer >> bits) & 31) as usize;
            out.extend(ALPHABET.get(index).map(|c| char::from(*c)));
        }
    }
    if bits > 0 {
        let index = ((buffer << (5 - bits)) & 31) as usize;
        out.extend(ALPHABET.get(index).map(|c| char::from(*c)));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: every time and mode of the table, 8 digits.
    #[test]
    fn rfc_6238_appendix_b() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        let sha1 = Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 8).unwrap();
        let sha256 = Totp::new(SEED_SHA256, TotpAlgorithm::Sha256, 8).unwrap();
        let sha512 = Totp::new(SEED_SHA512, TotpAlgorithm::Sha512, 8).unwrap();
        for (time, one, two, five) in table {
            assert_eq!(sha1.code_at(time), one, "SHA1 at {time}");
            assert_eq!(sha256.code_at(time), two, "SHA256 at {time}");
            assert_eq!(sha512.code_at(time), five, "SHA512 at {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values of counters 0 to 9, 6 digits.
    #[test]
    fn rfc_4226_appendix_d() {
        let hotp = Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 6).unwrap();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp.hotp(counter as u64), *code, "counter {counter}");
        }
    }

    #[test]
    fn codes_are_accepted_once_within_the_skew() {
        let totp = Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 8).unwrap();
        let code = totp.code_at(59);
        assert_eq!(totp.verify(&code, 59, None), Some(1));
        // The same code again (a replay) is refused once its step was used.
        assert_eq!(totp.verify(&code, 59, Some(1)), None);
        // One step of skew either way, not two.
        assert_eq!(totp.verify(&code, 59 + 30, None), Some(1));
        assert_eq!(totp.verify(&code, 59 - 30, None), Some(1));
        assert_eq!(totp.verify(&code, 59 + 60, None), None);
        // A later code after an earlier one is fine; an earlier one after a later is not.
        let next = totp.code_at(89);
        assert_eq!(totp.verify(&next, 89, Some(1)), Some(2));
        assert_eq!(totp.verify(&code, 89, Some(2)), None);
        for malformed in ["", "9428708", "942870820", "9428708a", "９４２８７０８２"] {
            assert_eq!(totp.verify(malformed, 59, None), None, "{malformed:?}");
        }
        assert_eq!(totp.skew(0).verify(&code, 59 + 30, None), None);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(
            Totp::new(&b"short"[..], TotpAlgorithm::Sha1, 6).unwrap_err(),
            TotpError::SecretTooShort
        );
        assert_eq!(
            Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 9).unwrap_err(),
            TotpError::Digits
        );
        assert_eq!(
            Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 5).unwrap_err(),
            TotpError::Digits
        );
        let totp = Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 6).unwrap();
        assert_eq!(totp.clone().step(0).unwrap_err(), TotpError::Step);
        assert!(!format!("{totp:?}").contains("1234"));
        let generated = Totp::generate(TotpAlgorithm::Sha256, 6).unwrap();
        assert_eq!(generated.secret().len(), 32);
        assert_ne!(
            generated.secret(),
            Totp::generate(TotpAlgorithm::Sha256, 6).unwrap().secret()
        );
    }

    /// RFC 4648 §10 base32 vectors (padding left off, as in otpauth URIs), and the URI.
    #[test]
    fn base32_and_the_otpauth_uri() {
        for (text, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(text.as_bytes()), encoded, "{text:?}");
        }
        let totp = Totp::new(SEED_SHA1, TotpAlgorithm::Sha1, 6).unwrap();
        assert_eq!(
            totp.uri("Aethera API", "john@example.com"),
            "otpauth://totp/Aethera%20API:john%40example.com?secret=\
             GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Aethera%20API&algorithm=SHA1&digits=6&period=30"
        );
    }
}
