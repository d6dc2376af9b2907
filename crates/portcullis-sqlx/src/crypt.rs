//! Secrets encrypted at rest ([`Encryptor`]): AES-256-GCM from ring, several keys known by
//! id (the newest encrypts, every one decrypts, so keys rotate without downtime), and
//! associated data that binds a ciphertext to its table, column and row, so a value copied
//! into another row or column does not decrypt.
//!
//! A sealed value is text: `pc1.{key id}.{base64url(nonce ‖ ciphertext ‖ tag)}`. The version
//! and key id are authenticated with the associated data.

use std::fmt;

use base64::Engine as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

const VERSION: &str = "pc1";

/// Where a value lives: what its ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    /// The table.
    pub table: &'a str,
    /// The column.
    pub column: &'a str,
    /// The row's key.
    pub row: &'a str,
}

impl<'a> Location<'a> {
    /// The value of `column` in the row `row` of `table`.
    #[must_use]
    pub fn new(table: &'a str, column: &'a str, row: &'a str) -> Self {
        Self { table, column, row }
    }

    /// The associated data: each part length-prefixed, so no two locations share it.
    fn associated_data(&self, key_id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [VERSION, key_id, self.table, self.column, self.row] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Why a value could not be sealed or opened, or keys not loaded. The texts never contain
/// key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// The key configuration is unusable.
    #[error("encryption keys: {0}")]
    Keys(String),
    /// The value was sealed with a key this encryptor does not have.
    #[error("unknown encryption key `{0}`")]
    UnknownKey(String),
    /// Not a sealed value, tampered with, or sealed for another location.
    #[error("the sealed value does not open here")]
    Invalid,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// AES-256-GCM field encryption with rotating keys. `Debug` shows the key ids only.
pub struct Encryptor {
    /// Newest first: the first encrypts.
    keys: Vec<(String, LessSafeKey)>,
    random: SystemRandom,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Encryptor").field("key_ids", &ids).finish()
    }
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn decode_key(text: &str) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    let text = text.trim();
    let engines = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| CryptError::Keys("a key is not base64".into()))
}

impl Encryptor {
    /// Keys by id, newest first (the first encrypts). Each key is 32 bytes.
    ///
    /// # Errors
    /// [`CryptError::Keys`] for no key, a key that is not 32 bytes, an id that is empty,
    /// longer than 32 characters or not `[A-Za-z0-9_-]`, or an id given twice.
    pub fn new<I, S>(keys: I) -> Result<Self, CryptError>
    where
        I: IntoIterator<Item = (S, Zeroizing<Vec<u8>>)>,
        S: Into<String>,
    {
        let mut loaded: Vec<(String, LessSafeKey)> = Vec::new();
        for (id, bytes) in keys {
            let id = id.into();
            if !valid_id(&id) {
                return Err(CryptError::Keys(format!(
                    "key id `{id}` must be 1 to 32 of [A-Za-z0-9_-]"
                )));
            }
            if loaded.iter().any(|(known, _)| *known == id) {
                return Err(CryptError::Keys(format!("key id `{id}` is given twice")));
            }
            if bytes.len() != 32 {
                return Err(CryptError::Keys(format!(
                    "key `{id}` is {} bytes; AES-256 needs 32",
                    bytes.len()
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| CryptError::Keys(format!("key `{id}` is unusable")))?;
            loaded.push((id, LessSafeKey::new(key)));
        }
        if loaded.is_empty() {
            return Err(CryptError::Keys("no key".into()));
        }
        Ok(Self {
            keys: loaded,
            random: SystemRandom::new(),
        })
    }

    /// Keys from an environment value: one base64 key (the seed's `DB_ENCRYPTION_KEY`,
    /// id `default`), or a comma-separated list of `id:base64key`, newest first, for a
    /// rotation (`2026-12:…,default:…`).
    ///
    /// # Errors
    /// As [`new`](Self::new), and for a value that is neither form.
    pub fn from_env_value(value: &str) -> Result<Self, CryptError> {
        let value = value.trim();
        if !value.contains(':') {
            return Self::new([("default", decode_key(value)?)]);
        }
        let keys = value
            .split(',')
            .map(|entry| {
                let (id, key) = entry
                    .split_once(':')
                    .ok_or_else(|| CryptError::Keys("each entry is id:base64key".into()))?;
                Ok((id.trim().to_owned(), decode_key(key)?))
            })
            .collect::<Result<Vec<_>, CryptError>>()?;
        Self::new(keys)
    }

    /// The id of the key that encrypts.
    #[must_use]
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map_or("", |(id, _)| id.as_str())
    }

    /// Seals `plaintext` for `location` with the newest key and a random 96-bit nonce.
    ///
    /// # Errors
    /// [`CryptError::Random`].
    pub fn encrypt(&self, plaintext: &[u8], location: Location<'_>) -> Result<String, CryptError> {
        let (id, key) = self
            .keys
            .first()
            .ok_or_else(|| CryptError::Keys("no key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CryptError::Random)?;
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(location.associated_data(id)),
            &mut body,
        )
        .map_err(|_| CryptError::Invalid)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sealed);
        Ok(format!("{VERSION}.{id}.{encoded}"))
    }

    /// Opens a value sealed by [`encrypt`](Self::encrypt) with any of the keys.
    ///
    /// # Errors
    /// [`CryptError::UnknownKey`]; [`CryptError::Invalid`] for a malformed or tampered value,
    /// or one sealed for another location.
    pub fn decrypt(
        &self,
        sealed: &str,
        location: Location<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, CryptError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptError::Invalid);
        };
        let key = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .map(|(_, key)| key)
            .ok_or_else(|| CryptError::UnknownKey(id.to_owned()))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptError::Invalid)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptError::Invalid);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptError::Invalid)?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = key
            .open_in_place(nonce, Aad::from(location.associated_data(id)), &mut buffer)
            .map_err(|_| CryptError::Invalid)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }

    /// Whether `sealed` was made with an older key (a re-encryption job rewrites it).
    #[must_use]
    pub fn needs_reencryption(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.current_key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![byte; 32])
    }

    const HERE: Location<'static> = Location {
        table: "oauth_clients",
        column: "client_secret",
        row: "client-1",
    };

    #[test]
    fn values_open_only_where_they_were_sealed() {
        let crypt = Encryptor::new([("k1", key(7))]).unwrap();
        let sealed = crypt.encrypt(b"an endpoint token", HERE).unwrap();
        assert!(sealed.starts_with("pc1.k1."));
        assert!(!sealed.contains("endpoint"));
        assert_eq!(
            &crypt.decrypt(&sealed, HERE).unwrap()[..],
            b"an endpoint token"
        );
        // Two seals of one value differ (random nonces).
        assert_ne!(sealed, crypt.encrypt(b"an endpoint token", HERE).unwrap());
        // Moved to another row, column or table: refused.
        for elsewhere in [
            Location::new("oauth_clients", "client_secret", "client-2"),
            Location::new("oauth_clients", "other_secret", "client-1"),
            Location::new("providers", "client_secret", "client-1"),
        ] {
            assert_eq!(crypt.decrypt(&sealed, elsewhere), Err(CryptError::Invalid));
        }
        // Tampered with, truncated, or not a sealed value.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            tampered.as_str(),
            &sealed[..sealed.len() - 4],
            "plain text",
            "pc1.k1.",
            "pc2.k1.AAAA",
        ] {
            assert_eq!(crypt.decrypt(bad, HERE), Err(CryptError::Invalid), "{bad}");
        }
        // A key id swapped in the text is authenticated too.
        let other = Encryptor::new([("k1", key(7)), ("k2", key(7))]).unwrap();
        let relabelled = sealed.replacen("pc1.k1.", "pc1.k2.", 1);
        assert_eq!(other.decrypt(&relabelled, HERE), Err(CryptError::Invalid));
    }

    #[test]
    fn keys_rotate_newest_encrypts_all_decrypt() {
        let old = Encryptor::new([("2025", key(1))]).unwrap();
        let sealed_old = old.encrypt(b"totp secret", HERE).unwrap();
        let rotated = Encryptor::new([("2026", key(2)), ("2025", key(1))]).unwrap();
        assert_eq!(
            &rotated.decrypt(&sealed_old, HERE).unwrap()[..],
            b"totp secret"
        );
        assert!(rotated.needs_reencryption(&sealed_old));
        let sealed_new = rotated.encrypt(b"totp secret", HERE).unwrap();
        assert!(sealed_new.starts_with("pc1.2026."));
        assert!(!rotated.needs_reencryption(&sealed_new));
        // Once the old key is retired, its values are refused by name.
        let retired = Encryptor::new([("2026", key(2))]).unwrap();
        assert_eq!(
            retired.decrypt(&sealed_old, HERE),
            Err(CryptError::UnknownKey("2025".into()))
        );
        assert!(format!("{rotated:?}").contains("2026"));
    }

    #[test]
    fn key_configuration_is_checked() {
        // The seed's form: one urlsafe-base64 32-byte key.
        let one = base64::engine::general_purpose::URL_SAFE.encode([9u8; 32]);
        assert_eq!(
            Encryptor::from_env_value(&one).unwrap().current_key_id(),
            "default"
        );
        let list = format!(
            "new:{},default:{one}",
            base64::engine::general_purpose::STANDARD.encode([3u8; 32])
        );
        assert_eq!(
            Encryptor::from_env_value(&list).unwrap().current_key_id(),
            "new"
        );
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        for bad in [
            short.as_str(),
            "not base64!",
            "a:",
            &format!("x:{one},x:{one}"),
            &format!("bad id:{one}"),
        ] {
            assert!(
                matches!(Encryptor::from_env_value(bad), Err(CryptError::Keys(_))),
                "{bad}"
            );
        }
        assert!(Encryptor::new(Vec::<(String, Zeroizing<Vec<u8>>)>::new()).is_err());
    }
}
