//! Where key records live: the [`KeyStore`] trait, an in-memory store and the JSON file
//! store (the AmateRS `api_keys.json`, reloadable without a restart).

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::record::{AmatersKey, KeyHash, KeyRecord, Verifier};

/// A store failure. Authentication answers 503 for it, never 401 and never an allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// The stored data is invalid.
    #[error("invalid key data: {0}")]
    Invalid(String),
}

/// Lookup of key records. Implementations look a key up by its id (or, for AmateRS keys, by
/// the SHA-256 of the whole key): a verifier never loads every key.
#[async_trait]
pub trait KeyStore: Debug + Send + Sync {
    /// The record with this id.
    async fn find_by_id(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError>;

    /// The AmateRS record whose `key_hash` is `hash`.
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, StoreError>;

    /// Records when keys were last used (a batch, coalesced per key).
    async fn record_usage(&self, used: &[(String, OffsetDateTime)]) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<KeyRecord>, foldhash::fast::RandomState>,
    by_hash: HashMap<[u8; 32], Arc<KeyRecord>, foldhash::fast::RandomState>,
}

impl Index {
    fn build(records: Vec<KeyRecord>) -> Result<Self, StoreError> {
        let mut index = Self::default();
        for record in records {
            let record = Arc::new(record);
            if let Verifier::Sha256(hash) = record.verifier
                && index.by_hash.insert(hash.0, record.clone()).is_some()
            {
                return Err(StoreError::Invalid(format!(
                    "two keys have the same key_hash (`{}`)",
                    record.id
                )));
            }
            if index
                .by_id
                .insert(record.id.clone(), record.clone())
                .is_some()
            {
                return Err(StoreError::Invalid(format!(
                    "duplicate key id `{}`",
                    record.id
                )));
            }
        }
        Ok(index)
    }
}

/// Keys in memory, swapped atomically on every change (reads never wait).
#[derive(Debug)]
pub struct MemoryStore {
    index: ArcSwap<Index>,
    lookups: AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            index: ArcSwap::from_pointee(Index::default()),
            lookups: AtomicU64::new(0),
        }
    }
}

impl MemoryStore {
    /// A store holding `records`.
    ///
    /// # Errors
    /// On duplicate ids or AmateRS hashes.
    pub fn new(records: Vec<KeyRecord>) -> Result<Self, StoreError> {
        let store = Self::default();
        store.replace_all(records)?;
        Ok(store)
    }

    /// Replaces every record at once.
    ///
    /// # Errors
    /// On duplicate ids or AmateRS hashes; the store is then unchanged.
    pub fn replace_all(&self, records: Vec<KeyRecord>) -> Result<(), StoreError> {
        self.index.store(Arc::new(Index::build(records)?));
        Ok(())
    }

    /// Adds or replaces one record.
    ///
    /// # Errors
    /// When another record has the same AmateRS hash.
    pub fn upsert(&self, record: KeyRecord) -> Result<(), StoreError> {
        let mut records: Vec<KeyRecord> = self
            .records()
            .into_iter()
            .filter(|r| r.id != record.id)
            .map(|r| (*r).clone())
            .collect();
        records.push(record);
        self.replace_all(records)
    }

    /// Revokes a key from `at` on. Returns whether the key exists.
    ///
    /// # Errors
    /// Never in practice (the rebuilt index has the same ids).
    pub fn revoke(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let Some(current) = self.index.load().by_id.get(id).cloned() else {
            return Ok(false);
        };
        let mut revoked = (*current).clone();
        revoked.revoked_at = Some(at);
        self.upsert(revoked)?;
        Ok(true)
    }

    /// Every record (for administration and for dumps: records hold no secret).
    #[must_use]
    pub fn records(&self) -> Vec<Arc<KeyRecord>> {
        let mut all: Vec<_> = self.index.load().by_id.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// How many lookups (by id or hash) were made: lets tests prove that malformed keys never
    /// reach the store.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn find_by_id(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(self.index.load().by_id.get(id).cloned())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(self.index.load().by_hash.get(&hash.0).cloned())
    }

    async fn record_usage(&self, used: &[(String, OffsetDateTime)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let current = self.index.load();
        let mut records: Vec<KeyRecord> = current.by_id.values().map(|r| (**r).clone()).collect();
        for record in &mut records {
            if let Some((_, at)) = used.iter().rev().find(|(id, _)| *id == record.id)
                && record.last_used_at.is_none_or(|t| t < *at)
            {
                record.last_used_at = Some(*at);
            }
        }
        self.replace_all(records)
    }
}

/// How to read an `api_keys.json` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileOptions {
    /// AmateRS `hash_keys`: when `true` (the default and the only safe choice), entries must
    /// carry `key_hash`; when `false`, entries may carry the key itself in `key`, which is
    /// hashed on load and never kept.
    pub hash_keys: bool,
}

/// Setters, one per field; each returns the changed value.
impl FileOptions {
    /// Sets [`hash_keys`](Self::hash_keys).
    #[must_use]
    pub fn hash_keys(mut self, hash_keys: bool) -> Self {
        self.hash_keys = hash_keys;
        self
    }
}

impl Default for FileOptions {
    fn default() -> Self {
        Self { hash_keys: true }
    }
}

/// The JSON key file: a JSON array whose entries are either AmateRS entries (`id`, `name`,
/// `key_hash`, `user_id`, `roles`, `attributes`, optional `expires_at`) or Portcullis
/// [`KeyRecord`]s. [`JsonFileStore::reload`] re-reads it and swaps the keys atomically; a file
/// that fails to load leaves the keys in force untouched.
#[derive(Debug)]
pub struct JsonFileStore {
    path: PathBuf,
    options: FileOptions,
    memory: MemoryStore,
}

impl JsonFileStore {
    /// Opens and loads the file.
    ///
    /// # Errors
    /// When the file cannot be read or is invalid.
    pub fn open(path: impl Into<PathBuf>, options: FileOptions) -> Result<Self, StoreError> {
        let store = Self {
            path: path.into(),
            options,
            memory: MemoryStore::default(),
        };
        store.reload()?;
        Ok(store)
    }

    /// Re-reads the file and swaps the keys in.
    ///
    /// # Errors
    /// When the file cannot be read or is invalid; the keys in force stay.
    pub fn reload(&self) -> Result<usize, StoreError> {
        let records = load_file(&self.path, self.options)?;
        let count = records.len();
        self.memory.replace_all(records)?;
        Ok(count)
    }

    /// The keys in force.
    #[must_use]
    pub fn records(&self) -> Vec<Arc<KeyRecord>> {
        self.memory.records()
    }

    /// The path of the file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many lookups were made.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.memory.lookups()
    }
}

#[async_trait]
impl KeyStore for JsonFileStore {
    async fn find_by_id(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.memory.find_by_id(id).await
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.memory.find_by_hash(hash).await
    }

    /// Kept in memory: the key file is configuration and is not rewritten.
    async fn record_usage(&self, used: &[(String, OffsetDateTime)]) -> Result<(), StoreError> {
        self.memory.record_usage(used).await
    }
}

/// Parses the text of a key file.
///
/// # Errors
/// When it is not a JSON array of valid entries.
pub fn parse_key_file(text: &str, options: FileOptions) -> Result<Vec<KeyRecord>, StoreError> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut records = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let is_record = entry.get("verifier").is_some();
        if is_record {
            let record: KeyRecord = serde_json::from_value(entry)
                .map_err(|e| StoreError::Invalid(format!("entry {i}: {e}")))?;
            records.push(record);
            continue;
        }
        let key: AmatersKey = serde_json::from_value(entry)
            .map_err(|e| StoreError::Invalid(format!("entry {i}: {e}")))?;
        let hash = match (key.key_hash, key.key, options.hash_keys) {
            (Some(hash), None, _) => hash,
            (None, Some(plain), false) => KeyHash::sha256(&plain),
            (None, Some(_), true) => {
                return Err(StoreError::Invalid(format!(
                    "entry {i} (`{}`) holds a plaintext `key` but hash_keys = true; store `key_hash` instead",
                    key.id
                )));
            }
            (Some(_), Some(_), _) => {
                return Err(StoreError::Invalid(format!(
                    "entry {i} (`{}`) has both `key` and `key_hash`",
                    key.id
                )));
            }
            (None, None, _) => {
                return Err(StoreError::Invalid(format!(
                    "entry {i} (`{}`) has no `key_hash`",
                    key.id
                )));
            }
        };
        // AmateRS advises "set expiration dates in key attributes": honour both places.
        let expires_at = key.expires_at.or_else(|| {
            key.attributes
                .get("expires_at")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
        });
        let mut record = KeyRecord::new(key.id, key.user_id, Verifier::Sha256(hash));
        record.name = key.name;
        record.roles = key.roles;
        record.scopes = key.scopes;
        record.tenant = key.tenant;
        record.attributes = key.attributes;
        record.expires_at = expires_at;
        record.revoked_at = key.revoked_at;
        records.push(record);
    }
    Ok(records)
}

/// Largest key file read, in bytes (about 200,000 AmateRS records).
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024 * 1024;

fn load_file(path: &Path, options: FileOptions) -> Result<Vec<KeyRecord>, StoreError> {
    let text = portcullis_core::read_bounded_text(path, MAX_KEY_FILE_LEN)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    parse_key_file(&text, options)
}
