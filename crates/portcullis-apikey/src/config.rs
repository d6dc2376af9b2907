//! The AmateRS `[auth.api_key]` table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::authenticator::ApiKeyAuthenticator;
use crate::format::KeyPrefix;
use crate::record::Pepper;
use crate::store::{FileOptions, JsonFileStore, StoreError};

fn yes() -> bool {
    true
}

fn default_header() -> String {
    "X-API-Key".into()
}

/// AmateRS `[auth.api_key]`: `enabled`, `keys_file`, `header_name`, `hash_keys`, plus
/// `prefixes` (addition: the Portcullis key prefixes accepted besides AmateRS keys).
///
/// ```
/// let config: portcullis_apikey::AmatersApiKeyConfig = toml::from_str(r#"
///     enabled = true
///     keys_file = "api_keys.json"
///     header_name = "X-API-Key"
///     hash_keys = true
/// "#)?;
/// assert_eq!(config.header_name, "X-API-Key");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AmatersApiKeyConfig {
    /// Whether API-key authentication is on (default `true`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The JSON key file, relative to the configuration file's directory.
    pub keys_file: PathBuf,
    /// The header carrying the key (default `X-API-Key`).
    #[serde(default = "default_header")]
    pub header_name: String,
    /// Whether entries carry only hashes (default `true`, the only safe choice).
    #[serde(default = "yes")]
    pub hash_keys: bool,
    /// Portcullis-format key prefixes accepted (for example `pc_live_`); they need a pepper.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

impl AmatersApiKeyConfig {
    /// The key file, relative to `base_dir`.
    #[must_use]
    pub fn keys_path(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.keys_file)
    }

    /// The authenticator over the key file. AmateRS keys (SHA-256 of the whole key) need no
    /// pepper; Portcullis-format keys (`prefixes`) are HMACs with `pepper`, which is then
    /// required.
    ///
    /// # Errors
    /// When the key file cannot be read or is invalid, a prefix is invalid, or prefixes are
    /// configured without a pepper.
    pub fn authenticator(
        &self,
        base_dir: &Path,
        pepper: Option<Pepper>,
    ) -> Result<ApiKeyAuthenticator, StoreError> {
        let store = JsonFileStore::open(
            self.keys_path(base_dir),
            FileOptions {
                hash_keys: self.hash_keys,
            },
        )?;
        let prefixes = self
            .prefixes
            .iter()
            .map(|p| {
                KeyPrefix::new(p).map_err(|e| StoreError::Invalid(format!("prefix `{p}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let store = Arc::new(store);
        let mut builder = match (pepper, prefixes.is_empty()) {
            (Some(pepper), _) => {
                ApiKeyAuthenticator::builder(store, pepper).accept_amaters_keys(true)
            }
            (None, true) => ApiKeyAuthenticator::amaters(store),
            (None, false) => {
                return Err(StoreError::Invalid(
                    "Portcullis-format key prefixes need a pepper".into(),
                ));
            }
        };
        for prefix in prefixes {
            builder = builder.prefix(prefix);
        }
        Ok(builder.build())
    }
}
