//! API keys in the `api_keys` table: [`SqlKeyStore`] is a `portcullis_apikey::KeyStore`, so
//! every instance of a service sees a key the moment it is issued or revoked.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_apikey::{KeyHash, KeyRecord, KeyStore, StoreError as KeyStoreError, Verifier};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::db::{Columns, Store, StoreError, Ts, on_pool};

/// The `api_keys` table.
#[derive(Debug, Clone)]
pub struct SqlKeyStore {
    store: Store,
}

impl Store {
    /// The API keys in this database.
    #[must_use]
    pub fn api_keys(&self) -> SqlKeyStore {
        SqlKeyStore {
            store: self.clone(),
        }
    }
}

const COLUMNS: &str = "id, name, user_id, tenant_id, roles, scopes, scheme, key_hash, \
                       attributes, created_at, expires_at, revoked_at, last_used_at";

fn json_list(text: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid(format!("api_keys.{column}: {e}")))
}

fn record_from(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    let hash = KeyHash::from_base64(&row.text("key_hash")?)
        .map_err(|e| StoreError::Invalid(format!("api_keys.key_hash: {e}")))?;
    let verifier = match row.text("scheme")?.as_str() {
        "hmac_sha256" => Verifier::HmacSha256(hash),
        "sha256" => Verifier::Sha256(hash),
        other => return Err(StoreError::Invalid(format!("api_keys.scheme `{other}`"))),
    };
    let mut record = KeyRecord::new(row.text("id")?, row.text("user_id")?, verifier);
    record.name = row.text("name")?;
    record.tenant = row.opt_text("tenant_id")?;
    record.roles = json_list(&row.text("roles")?, "roles")?;
    record.scopes = json_list(&row.text("scopes")?, "scopes")?;
    record.attributes = serde_json::from_str::<Map<String, Value>>(&row.text("attributes")?)
        .map_err(|e| StoreError::Invalid(format!("api_keys.attributes: {e}")))?;
    record.created_at = row.opt_time("created_at")?;
    record.expires_at = row.opt_time("expires_at")?;
    record.revoked_at = row.opt_time("revoked_at")?;
    record.last_used_at = row.opt_time("last_used_at")?;
    Ok(record)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn scheme_and_hash(verifier: &Verifier) -> Result<(&'static str, String), StoreError> {
    match verifier {
        Verifier::HmacSha256(hash) => Ok(("hmac_sha256", hash.to_base64())),
        Verifier::Sha256(hash) => Ok(("sha256", hash.to_base64())),
        _ => Err(StoreError::Invalid("unknown key verifier".into())),
    }
}

fn key_error(error: StoreError) -> KeyStoreError {
    match error {
        StoreError::Invalid(message) => KeyStoreError::Invalid(message),
        other => KeyStoreError::Unavailable(other.to_string()),
    }
}

impl SqlKeyStore {
    /// Stores a new key record (from `portcullis_apikey::issue_key`, or an AmateRS entry).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id, or an AmateRS `key_hash`, is taken.
    pub async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let (scheme, hash) = scheme_and_hash(&record.verifier)?;
        let (roles, scopes) = (to_json(&record.roles)?, to_json(&record.scopes)?);
        let attributes = to_json(&record.attributes)?;
        let sql = "INSERT INTO api_keys (id, name, user_id, tenant_id, roles, scopes, scheme, \
                   key_hash, attributes, created_at, expires_at, revoked_at, last_used_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        let created = Some(Ts::new(record.created_at.unwrap_or(self.store.clock.now())));
        on_pool!(self.store, pool => {
            sqlx::query(sql)
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.owner)
                .bind(&record.tenant)
                .bind(&roles)
                .bind(&scopes)
                .bind(scheme)
                .bind(&hash)
                .bind(&attributes)
                .bind(created)
                .bind(record.expires_at.map(Ts::new))
                .bind(record.revoked_at.map(Ts::new))
                .bind(record.last_used_at.map(Ts::new))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revokes a key from `at` on. Returns whether the key exists.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn revoke(&self, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = on_pool!(self.store, pool => {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
                .bind(Ts::new(at))
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// The keys of `user`, by id.
    ///
    /// # Errors
    /// When the database fails or a stored record is invalid.
    pub async fn of_user(&self, user: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id");
        on_pool!(self.store, pool => {
            sqlx::query(&sql)
                .bind(user)
                .fetch_all(pool)
                .await?
                .iter()
                .map(record_from)
                .collect()
        })
    }

    async fn find(&self, condition: &str, value: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {condition}");
        on_pool!(self.store, pool => {
            match sqlx::query(&sql).bind(value).fetch_optional(pool).await? {
                Some(row) => record_from(&row).map(Some),
                None => Ok(None),
            }
        })
    }
}

#[async_trait]
impl KeyStore for SqlKeyStore {
    async fn find_by_id(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, KeyStoreError> {
        self.find("id = $1", id)
            .await
            .map(|r| r.map(Arc::new))
            .map_err(key_error)
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, KeyStoreError> {
        self.find("scheme = 'sha256' AND key_hash = $1", &hash.to_base64())
            .await
            .map(|r| r.map(Arc::new))
            .map_err(key_error)
    }

    /// One transaction for the whole batch; a key's time only moves forward.
    async fn record_usage(&self, used: &[(String, OffsetDateTime)]) -> Result<(), KeyStoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let sql = "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
                   AND (last_used_at IS NULL OR last_used_at < $1)";
        let result: Result<(), StoreError> = async {
            on_pool!(self.store, pool => {
                let mut tx = pool.begin().await?;
                for (id, at) in used {
                    sqlx::query(sql).bind(Ts::new(*at)).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            });
            Ok(())
        }
        .await;
        result.map_err(key_error)
    }
}
