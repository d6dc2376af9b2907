//! [`ApiKeyAuthenticator`]: checks API keys from the API-key header, `Authorization: ApiKey`,
//! or a bearer token that carries one of the configured prefixes.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use portcullis_core::{
    AuthError, AuthMethod, AuthOutcome, Authenticator, Challenge, Clock, Credentials, Principal,
    PrincipalKind, SecretString, SystemClock,
};
use time::{Duration, OffsetDateTime};

use crate::format::{FormatError, KeyPrefix, parse_key};
use crate::record::{KeyHash, KeyRecord, Pepper, Verifier};
use crate::store::{KeyStore, StoreError};

/// Default longest key accepted, in bytes (checked before anything else).
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// Counters of the work done, for metrics and for tests that prove unknown and known keys
/// cost the same.
#[derive(Debug, Default)]
pub struct ApiKeyStats {
    lookups: AtomicU64,
    comparisons: AtomicU64,
    rejected_offline: AtomicU64,
}

impl ApiKeyStats {
    /// Store lookups made.
    #[must_use]
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Hash comparisons made (real or dummy).
    #[must_use]
    pub fn comparisons(&self) -> u64 {
        self.comparisons.load(Ordering::Relaxed)
    }

    /// Keys refused before any lookup (malformed, bad checksum, unknown prefix, hygiene).
    #[must_use]
    pub fn rejected_offline(&self) -> u64 {
        self.rejected_offline.load(Ordering::Relaxed)
    }
}

/// Failed attempts per key id within a window; past the limit, the key id is refused with
/// 429 until the window ends.
#[derive(Debug)]
struct FailureLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (u32, OffsetDateTime)>>,
}

impl FailureLimiter {
    fn is_blocked(&self, id: &str, now: OffsetDateTime) -> bool {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .get(id)
            .is_some_and(|(n, start)| *n >= self.limit && now - *start < self.window)
    }

    fn failed(&self, id: &str, now: OffsetDateTime) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        // Bound memory: forget expired windows when the table grows.
        if counts.len() > 100_000 {
            counts.retain(|_, (_, start)| now - *start < self.window);
        }
        let entry = counts.entry(id.to_owned()).or_insert((0, now));
        if now - entry.1 >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    fn succeeded(&self, id: &str) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// Checks API keys and builds the key owner's [`Principal`].
///
/// * Portcullis keys (`<prefix><id>_<secret><checksum>`): the format and checksum are
///   checked offline, the record is found by id, and `HMAC-SHA-256(pepper, secret)` is
///   compared in constant time. An unknown id still costs one comparison against a dummy
///   hash.
/// * AmateRS keys (when enabled): found by the SHA-256 of the whole key (`key_hash`).
///
/// Unknown, wrong, revoked and expired keys all give the client the same 401; the audit
/// event (the error's `Display`) says which. Too many failures for one key id within the
/// window give 429. Keys are never read from the query string.
///
/// ```
/// use std::sync::Arc;
/// use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
/// use portcullis_core::{AuthOutcome, Authenticator, Credential, Credentials, ApiKeySource};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let pepper = Pepper::new(&[7u8; 32])?;
/// let prefix = KeyPrefix::new("pc_live_")?;
/// let (key, record) = issue_key(&prefix, &pepper, "deploy-bot")?;
/// let store = Arc::new(MemoryStore::new(vec![record])?);
///
/// let auth = ApiKeyAuthenticator::builder(store, pepper).prefix(prefix).build();
/// let credentials = Credentials::from_list(vec![Credential::ApiKey {
///     key: key.key.clone(),
///     source: ApiKeySource::AuthorizationScheme,
/// }]);
/// match auth.authenticate(&credentials).await {
///     AuthOutcome::Authenticated(principal) => assert_eq!(principal.id(), "deploy-bot"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ApiKeyAuthenticator {
    store: Arc<dyn KeyStore>,
    pepper: Option<Pepper>,
    prefixes: Vec<KeyPrefix>,
    amaters_keys: bool,
    clock: Arc<dyn Clock>,
    max_key_len: usize,
    limiter: FailureLimiter,
    usage: Mutex<HashMap<String, OffsetDateTime>>,
    dummy: KeyHash,
    realm: Option<Challenge>,
    stats: ApiKeyStats,
}

impl fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuthenticator")
            .field("store", &self.store)
            .field("pepper", &self.pepper)
            .field("prefixes", &self.prefixes)
            .field("amaters_keys", &self.amaters_keys)
            .field("max_key_len", &self.max_key_len)
            .finish_non_exhaustive()
    }
}

/// Builds an [`ApiKeyAuthenticator`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ApiKeyAuthenticatorBuilder {
    store: Arc<dyn KeyStore>,
    pepper: Option<Pepper>,
    prefixes: Vec<KeyPrefix>,
    amaters_keys: bool,
    clock: Arc<dyn Clock>,
    max_key_len: usize,
    failure_limit: u32,
    failure_window: Duration,
    realm: String,
}

impl ApiKeyAuthenticator {
    /// Starts building: keys are looked up in `store` and hashed with `pepper`.
    pub fn builder(store: Arc<dyn KeyStore>, pepper: Pepper) -> ApiKeyAuthenticatorBuilder {
        ApiKeyAuthenticatorBuilder {
            pepper: Some(pepper),
            amaters_keys: false,
            ..Self::amaters(store)
        }
    }

    /// Starts building an authenticator of AmateRS keys only (the SHA-256 of the whole key is
    /// stored, so no pepper is needed). Portcullis-format keys need [`ApiKeyAuthenticator::builder`]
    /// and its pepper; with this builder they are refused.
    pub fn amaters(store: Arc<dyn KeyStore>) -> ApiKeyAuthenticatorBuilder {
        ApiKeyAuthenticatorBuilder {
            store,
            pepper: None,
            prefixes: Vec::new(),
            amaters_keys: true,
            clock: Arc::new(SystemClock),
            max_key_len: DEFAULT_MAX_KEY_LEN,
            failure_limit: 10,
            failure_window: Duration::minutes(1),
            realm: "api".to_owned(),
        }
    }

    /// The work counters.
    #[must_use]
    pub fn stats(&self) -> &ApiKeyStats {
        &self.stats
    }

    /// Writes the batched `last_used_at` times to the store. Call it periodically from a
    /// background task (for example every few seconds with `tokio::time::interval`), and at
    /// shutdown; requests only record the time in memory.
    ///
    /// # Errors
    /// When the store fails; the times are then kept for the next flush.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let batch: Vec<(String, OffsetDateTime)> = {
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            usage.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.record_usage(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, at) in batch {
                    usage.entry(id).or_insert(at);
                }
                Err(e)
            }
        }
    }

    fn offline_reject(&self, reason: &'static str) -> AuthOutcome {
        self.stats.rejected_offline.fetch_add(1, Ordering::Relaxed);
        AuthOutcome::Rejected(AuthError::invalid_credentials(reason))
    }

    /// The key to check, if these credentials carry one for us.
    fn presented<'c>(&self, credentials: &'c Credentials) -> Option<&'c SecretString> {
        if let Some((key, _)) = credentials.api_key() {
            return Some(key);
        }
        // A key of ours sent as a bearer token is recognised by its prefix.
        credentials.bearer().filter(|token| {
            self.prefixes
                .iter()
                .any(|p| token.expose().starts_with(p.as_str()))
        })
    }

    fn principal(&self, record: &KeyRecord, now: OffsetDateTime) -> Result<Principal, AuthError> {
        let mut builder = Principal::builder(
            record.owner.clone(),
            PrincipalKind::ApiKey,
            AuthMethod::ApiKey,
            now,
        )
        .roles(record.roles.iter().cloned())
        .scopes(record.scopes.iter().cloned())
        .attributes(record.attributes.clone())
        .attribute("api_key_id", record.id.clone());
        if !record.name.is_empty() {
            builder = builder.attribute("api_key_name", record.name.clone());
        }
        if let Some(tenant) = &record.tenant {
            builder = builder.tenant(tenant.clone());
        }
        if let Some(expires) = record.expires_at {
            builder = builder.expires_at(expires);
        }
        builder.build().map_err(|e| {
            AuthError::invalid_credentials("the key's record is invalid").with_source(e)
        })
    }

    /// One store lookup, counted; a store failure becomes a 503, never a 401.
    async fn lookup(
        &self,
        found: impl Future<Output = Result<Option<Arc<KeyRecord>>, StoreError>>,
    ) -> Result<Option<Arc<KeyRecord>>, AuthError> {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        found
            .await
            .map_err(|e| AuthError::dependency_unavailable("api key store").with_source(e))
    }

    /// The hash to compare against (the record's, of the scheme `pick` accepts, or the dummy)
    /// and whether it is real; counts the comparison the caller is about to make.
    fn expected(
        &self,
        record: Option<&KeyRecord>,
        pick: fn(Verifier) -> Option<KeyHash>,
    ) -> (KeyHash, bool) {
        self.stats.comparisons.fetch_add(1, Ordering::Relaxed);
        match record.and_then(|r| pick(r.verifier)) {
            Some(hash) => (hash, true),
            None => (self.dummy, false),
        }
    }

    fn failure(&self, id: &str, now: OffsetDateTime, error: AuthError) -> AuthOutcome {
        // An unknown AmateRS key has no id to count failures against.
        if !id.is_empty() {
            self.limiter.failed(id, now);
        }
        AuthOutcome::Rejected(error)
    }

    async fn check(&self, key: &str, now: OffsetDateTime) -> AuthOutcome {
        let ours = self.prefixes.iter().any(|p| key.starts_with(p.as_str()));
        let (record, lookup_id, matches) = if ours {
            let parsed = match parse_key(key, &self.prefixes) {
                Ok(parsed) => parsed,
                Err(FormatError::BadChecksum) => {
                    return self.offline_reject("api key checksum mismatch");
                }
                Err(_) => return self.offline_reject("malformed api key"),
            };
            let id = String::from(parsed.id);
            if self.limiter.is_blocked(&id, now) {
                return AuthOutcome::Rejected(AuthError::too_many_attempts());
            }
            let record = match self.lookup(self.store.find_by_id(&id)).await {
                Ok(record) => record,
                Err(e) => return AuthOutcome::Rejected(e),
            };
            // Always one comparison: against the record's hash, or a dummy for unknown ids.
            let (expected, real) = self.expected(record.as_deref(), |v| match v {
                Verifier::HmacSha256(hash) => Some(hash),
                _ => None,
            });
            let Some(pepper) = &self.pepper else {
                return self
                    .offline_reject("Portcullis-format keys need a pepper, none is configured");
            };
            let matches = pepper.verify(parsed.secret.expose(), &expected) && real;
            (record, id, matches)
        } else if self.amaters_keys {
            let hash = KeyHash::sha256(key);
            let record = match self.lookup(self.store.find_by_hash(&hash)).await {
                Ok(record) => record,
                Err(e) => return AuthOutcome::Rejected(e),
            };
            let (expected, real) = self.expected(record.as_deref(), |v| match v {
                Verifier::Sha256(hash) => Some(hash),
                _ => None,
            });
            let matches = hash.ct_eq(&expected) && real;
            let id = record.as_deref().map_or_else(String::new, |r| r.id.clone());
            if !id.is_empty() && self.limiter.is_blocked(&id, now) {
                return AuthOutcome::Rejected(AuthError::too_many_attempts());
            }
            (record, id, matches)
        } else {
            return self.offline_reject("api key has no accepted prefix");
        };

        let Some(record) = record else {
            return self.failure(
                &lookup_id,
                now,
                AuthError::invalid_credentials("unknown api key id"),
            );
        };
        if !matches {
            return self.failure(
                &lookup_id,
                now,
                AuthError::invalid_credentials("wrong api key secret"),
            );
        }
        if record.is_revoked_at(now) {
            return self.failure(&lookup_id, now, AuthError::revoked());
        }
        if record.is_expired_at(now) {
            return self.failure(&lookup_id, now, AuthError::expired());
        }
        self.limiter.succeeded(&lookup_id);
        match self.principal(&record, now) {
            Ok(principal) => {
                let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
                match usage.get_mut(record.id.as_str()) {
                    Some(at) => *at = now,
                    None => {
                        usage.insert(record.id.clone(), now);
                    }
                }
                AuthOutcome::Authenticated(principal)
            }
            Err(e) => AuthOutcome::Rejected(e),
        }
    }
}

/// Input hygiene: visible ASCII only (no space, tab, NUL, control or non-ASCII character),
/// non-empty, at most `max` bytes.
fn clean(key: &str, max: usize) -> bool {
    !key.is_empty() && key.len() <= max && key.bytes().all(|b| (0x21..0x7f).contains(&b))
}

#[async_trait]
impl Authenticator for ApiKeyAuthenticator {
    fn name(&self) -> &str {
        "api_key"
    }

    fn challenge(&self) -> Option<Challenge> {
        self.realm.clone()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        let Some(key) = self.presented(credentials) else {
            return AuthOutcome::NotApplicable;
        };
        if !clean(key.expose(), self.max_key_len) {
            return self.offline_reject("malformed api key");
        }
        let now = self.clock.now();
        self.check(key.expose(), now).await
    }
}

impl ApiKeyAuthenticatorBuilder {
    /// Accepts keys with this prefix (call once per prefix; a test deployment accepts only
    /// `pc_test_`, a live one only `pc_live_`).
    pub fn prefix(mut self, prefix: KeyPrefix) -> Self {
        if !self.prefixes.contains(&prefix) {
            self.prefixes.push(prefix);
        }
        self
    }

    /// Also accepts AmateRS keys (any other string) by the SHA-256 of the whole key.
    pub fn accept_amaters_keys(mut self, accept: bool) -> Self {
        self.amaters_keys = accept;
        self
    }

    /// The clock for expiry, revocation and `last_used_at`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Longest key accepted (default [`DEFAULT_MAX_KEY_LEN`]).
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.max_key_len = max.max(1);
        self
    }

    /// After `limit` failures for one key id within `window`, that id gets 429 until the
    /// window ends (default 10 per minute).
    pub fn failure_limit(mut self, limit: u32, window: Duration) -> Self {
        self.failure_limit = limit.max(1);
        self.failure_window = window;
        self
    }

    /// The realm of the `ApiKey` challenge sent with a 401 (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Builds the authenticator.
    pub fn build(self) -> ApiKeyAuthenticator {
        // The dummy hash for unknown ids: random-looking and never a real key's hash.
        let dummy = KeyHash::sha256("portcullis: no such api key");
        ApiKeyAuthenticator {
            store: self.store,
            pepper: self.pepper,
            prefixes: self.prefixes,
            amaters_keys: self.amaters_keys,
            clock: self.clock,
            max_key_len: self.max_key_len,
            limiter: FailureLimiter {
                limit: self.failure_limit,
                window: self.failure_window,
                counts: Mutex::new(HashMap::new()),
            },
            usage: Mutex::new(HashMap::new()),
            dummy,
            realm: Challenge::new("ApiKey", self.realm).ok(),
            stats: ApiKeyStats::default(),
        }
    }
}
