#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod authenticator;
mod config;
mod format;
mod record;
mod store;

pub use authenticator::{
    ApiKeyAuthenticator, ApiKeyAuthenticatorBuilder, ApiKeyStats, DEFAULT_MAX_KEY_LEN,
};
pub use config::AmatersApiKeyConfig;
pub use format::{
    CHECKSUM_LEN, FormatError, GeneratedKey, ID_LEN, KeyId, KeyPrefix, MAX_PREFIX_LEN, ParsedKey,
    SECRET_BYTES, SECRET_LEN, generate_key, parse_key,
};
pub use record::{InvalidHash, KeyHash, KeyRecord, MIN_PEPPER_LEN, Pepper, Verifier, WeakPepper};
pub use store::{
    FileOptions, JsonFileStore, KeyStore, MAX_KEY_FILE_LEN, MemoryStore, StoreError, parse_key_file,
};

/// Generates a key for `owner` and the record to store for it. The key is shown once (hand
/// `generated.key` to its owner); the record holds only `HMAC-SHA-256(pepper, secret)`.
///
/// # Errors
/// [`FormatError::Random`] if the CSPRNG fails.
pub fn issue_key(
    prefix: &KeyPrefix,
    pepper: &Pepper,
    owner: impl Into<String>,
) -> Result<(GeneratedKey, KeyRecord), FormatError> {
    let generated = generate_key(prefix)?;
    let hash = pepper.hash(generated.secret.expose());
    let record = KeyRecord::new(generated.id.as_str(), owner, Verifier::HmacSha256(hash));
    Ok((generated, record))
}

/// The AmateRS `key_hash` of a key: standard base64 of its SHA-256, as the AmateRS document's
/// "Generating API key hash" step prints it (`echo -n "$KEY" | openssl dgst -sha256 -binary |
/// base64`).
///
/// ```
/// assert_eq!(
///     portcullis_apikey::amaters_key_hash("my-secret-api-key"),
///     "Ml7e3Ww7mYj2I8f5ZKu5sBa3aw+LNHTfD318I7lBOB8=",
/// );
/// ```
#[must_use]
pub fn amaters_key_hash(key: &str) -> String {
    KeyHash::sha256(key).to_base64()
}

pub mod testing {
    //! For tests of code that checks API keys: keys that are well formed but not issued.
    pub use crate::format::assemble_key;
}
