//! Revoked JWTs by `jti` in the `token_revocations` table, and [`RevocationCache`], the
//! `portcullis_jwt::RevocationList` that every instance keeps in memory: a revocation reaches
//! every instance within one refresh interval (500 ms by default), with no query per request.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use portcullis_core::{AuditEvent, AuditEventType, AuditPrincipal, AuditResult, IdSource as _};
use portcullis_jwt::{RevocationList, RevocationsUnavailable};
use time::OffsetDateTime;

use crate::audit::{EventRow, insert_events};
use crate::db::{Store, StoreError, Ts, on_pool};

/// Settings of a [`RevocationCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevocationOptions {
    /// How often the list is read again (default 500 ms).
    pub refresh: Duration,
    /// How long the cache may go without a successful read before it answers "unavailable"
    /// (tokens are then refused with 503) instead of trusting an old list (default 10 s).
    pub max_staleness: Duration,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            refresh: Duration::from_millis(500),
            max_staleness: Duration::from_secs(10),
        }
    }
}

impl RevocationOptions {
    /// Sets [`refresh`](Self::refresh).
    #[must_use]
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// Sets [`max_staleness`](Self::max_staleness).
    #[must_use]
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }
}

/// The revoked `jti`s still worth remembering (their tokens have not expired), in memory,
/// refreshed from the database in the background while the cache lives.
#[derive(Debug)]
pub struct RevocationCache {
    store: Store,
    revoked: ArcSwap<HashSet<String>>,
    last_sync: Mutex<Option<Instant>>,
    options: RevocationOptions,
}

impl RevocationCache {
    /// Reads the list once, then keeps it current until the cache is dropped.
    ///
    /// # Errors
    /// When the first read fails.
    pub async fn start(store: &Store, options: RevocationOptions) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(Self {
            store: store.clone(),
            revoked: ArcSwap::from_pointee(HashSet::new()),
            last_sync: Mutex::new(None),
            options,
        });
        cache.sync().await?;
        let weak = Arc::downgrade(&cache);
        let every = cache.options.refresh;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(cache) = weak.upgrade() else { return };
                if let Err(error) = cache.sync().await {
                    tracing::error!(%error, "token revocation list not refreshed");
                }
            }
        });
        Ok(cache)
    }

    /// Reads the list now.
    ///
    /// # Errors
    /// When the database fails; the cache keeps its list.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let now = self.store.now();
        let jtis: Vec<String> = on_pool!(self.store, pool => {
            sqlx::query_scalar("SELECT jti FROM token_revocations WHERE expires_at > $1")
                .bind(now)
                .fetch_all(pool)
                .await?
        });
        self.revoked.store(Arc::new(jtis.into_iter().collect()));
        *self
            .last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }

    /// Revokes the token `jti` until `expires_at` (its `exp`), records an `admin` audit event
    /// in the same transaction, and updates this instance's cache at once (others within one
    /// refresh interval).
    ///
    /// # Errors
    /// When the database fails; nothing is revoked then.
    pub async fn revoke(
        &self,
        jti: &str,
        expires_at: OffsetDateTime,
        reason: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let store = &self.store;
        let now = store.now();
        let event = AuditEvent::new(
            store.ids.event_id(),
            AuditEventType::Admin,
            AuditResult::Success,
            now.0,
        )
        .with_audit_principal(AuditPrincipal::with_id(by))
        .with_action("revoke_token")
        .with_reason(reason)
        .with_metadata("jti", jti);
        let rows = [EventRow::new(&event).map_err(|e| StoreError::Invalid(e.to_string()))?];
        on_pool!(store, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO token_revocations (jti, expires_at, revoked_at, reason) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(Ts::new(expires_at))
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            insert_events!(tx, rows);
            tx.commit().await?;
        });
        let mut revoked = HashSet::clone(&self.revoked.load());
        revoked.insert(jti.to_owned());
        self.revoked.store(Arc::new(revoked));
        Ok(())
    }

    /// Deletes revocations of tokens that have expired anyway. Returns how many.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.store.now();
        let purged = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM token_revocations WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }

    /// How many revoked ids the cache holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.revoked.load().len()
    }

    /// Whether the cache holds no revoked id.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RevocationList for RevocationCache {
    fn is_revoked(&self, jti: &str) -> Result<bool, RevocationsUnavailable> {
        let last = *self
            .last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last {
            Some(at) if at.elapsed() <= self.options.max_staleness => {
                Ok(self.revoked.load().contains(jti))
            }
            _ => Err(RevocationsUnavailable(format!(
                "not refreshed for more than {:?}",
                self.options.max_staleness
            ))),
        }
    }
}
