//! Refresh-token families and server-side sessions, shared by every instance: only the
//! SHA-256 of a token or session id is stored, so a copy of the tables logs nobody in.
//!
//! Refresh tokens rotate: each use spends the token and issues the next of its family. A
//! spent token presented again is a replay (the token was stolen, or the client raced
//! itself): the whole family is revoked, so neither the thief nor the user can go on without
//! logging in again.

use std::fmt;

use portcullis_core::SecretString;
use ring::digest;
use time::OffsetDateTime;

use crate::db::{Columns, Store, StoreError, Ts, on_pool};

/// Hex SHA-256 of a secret: what the tables hold in place of tokens and session ids.
pub(crate) fn hash(secret: &SecretString) -> String {
    let digest = digest::digest(&digest::SHA256, secret.expose().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The refresh tokens (`Store::refresh_tokens`).
#[derive(Debug, Clone, Copy)]
pub struct RefreshTokens<'a> {
    store: &'a Store,
}

/// A refresh token's family and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshGrant {
    /// The user the family belongs to.
    pub user_id: String,
    /// The family (one login).
    pub family_id: String,
    /// When the login that started the family happened (the `auth_time` of every access
    /// token issued from it); `None` for a family started before the store recorded it.
    pub authenticated_at: Option<OffsetDateTime>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was valid: it is spent and `next` now stands for the family.
    Rotated(RefreshGrant),
    /// The token was already spent: the family is revoked (every token of it), and the event
    /// should be audited as a `security_violation`.
    ReuseDetected(RefreshGrant),
    /// Unknown, expired or revoked: refused, nothing changed.
    Refused,
}

impl Store {
    /// The refresh tokens.
    #[must_use]
    pub fn refresh_tokens(&self) -> RefreshTokens<'_> {
        RefreshTokens { store: self }
    }

    /// The browser sessions.
    #[must_use]
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }
}

impl RefreshTokens<'_> {
    /// Stores the first token of a new family (a login, which happens now) for `user`, valid
    /// until `expires_at`. Returns the family id.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user (foreign key), or when the database fails.
    pub async fn start_family(
        &self,
        user: &str,
        token: &SecretString,
        expires_at: OffsetDateTime,
    ) -> Result<String, StoreError> {
        use portcullis_core::IdSource as _;
        let family = self.store.ids.event_id().as_str().to_owned();
        let (now, token_hash) = (self.store.now(), hash(token));
        let sql = "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, \
                   expires_at, authenticated_at) VALUES ($1, $2, $3, $4, $5, $4)";
        let result = on_pool!(self.store, pool => {
            sqlx::query(sql)
                .bind(&token_hash)
                .bind(&family)
                .bind(user)
                .bind(now)
                .bind(Ts::new(expires_at))
                .execute(pool)
                .await
                .map(drop)
        });
        result.map_err(|e| foreign_key_is_not_found(e.into(), user))?;
        Ok(family)
    }

    /// Spends `presented` and, when it was valid, stores `next` in its family (valid until
    /// `expires_at`), in one transaction: two instances presented the same token at once
    /// cannot both rotate it.
    ///
    /// # Errors
    /// When the database fails; nothing changed then.
    pub async fn rotate(
        &self,
        presented: &SecretString,
        next: &SecretString,
        expires_at: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        let (now, presented_hash, next_hash) = (self.store.now(), hash(presented), hash(next));
        let rotation = on_pool!(self.store, pool => {
            let mut tx = pool.begin().await?;
            // Spend the token if it is live: one statement, so exactly one caller wins.
            let spent = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 \
                 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
                 RETURNING user_id, family_id, authenticated_at",
            )
            .bind(now)
            .bind(&presented_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let rotation = if let Some(row) = spent {
                let grant = grant_from(&row)?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, \
                     expires_at, authenticated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&next_hash)
                .bind(&grant.family_id)
                .bind(&grant.user_id)
                .bind(now)
                .bind(Ts::new(expires_at))
                .bind(grant.authenticated_at.map(Ts::new))
                .execute(&mut *tx)
                .await?;
                Rotation::Rotated(grant)
            } else {
                let known = sqlx::query(
                    "SELECT user_id, family_id, authenticated_at, used_at FROM refresh_tokens \
                     WHERE token_hash = $1",
                )
                .bind(&presented_hash)
                .fetch_optional(&mut *tx)
                .await?;
                match known {
                    Some(row) if row.opt_time("used_at")?.is_some() => {
                        let grant = grant_from(&row)?;
                        sqlx::query(
                            "UPDATE refresh_tokens SET revoked_at = $1 \
                             WHERE family_id = $2 AND revoked_at IS NULL",
                        )
                        .bind(now)
                        .bind(&grant.family_id)
                        .execute(&mut *tx)
                        .await?;
                        Rotation::ReuseDetected(grant)
                    }
                    _ => Rotation::Refused,
                }
            };
            tx.commit().await?;
            rotation
        });
        if let Rotation::ReuseDetected(grant) = &rotation {
            tracing::warn!(
                user = grant.user_id,
                family = grant.family_id,
                "refresh token reused: family revoked"
            );
        }
        Ok(rotation)
    }

    /// The family and owner of a token this store issued, live, spent, expired or revoked
    /// (for logout: check the owner, then [`revoke_family`](Self::revoke_family)); `None` for
    /// a token it never issued.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn grant_of(
        &self,
        presented: &SecretString,
    ) -> Result<Option<RefreshGrant>, StoreError> {
        let presented_hash = hash(presented);
        let grant = on_pool!(self.store, pool => {
            match sqlx::query(
                "SELECT user_id, family_id, authenticated_at FROM refresh_tokens \
                 WHERE token_hash = $1",
            )
            .bind(&presented_hash)
            .fetch_optional(pool)
            .await?
            {
                Some(row) => Some(grant_from(&row)?),
                None => None,
            }
        });
        Ok(grant)
    }

    /// Revokes every token of a family (logout). Returns how many were live.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        self.revoke_where("family_id = $2", family).await
    }

    /// Revokes every token of every family of `user` (logout everywhere). Returns how many
    /// were live.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn revoke_user(&self, user: &str) -> Result<u64, StoreError> {
        self.revoke_where("user_id = $2", user).await
    }

    async fn revoke_where(&self, condition: &str, value: &str) -> Result<u64, StoreError> {
        let now = self.store.now();
        let sql = format!(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE {condition} AND revoked_at IS NULL"
        );
        let revoked = on_pool!(self.store, pool => {
            sqlx::query(&sql).bind(now).bind(value).execute(pool).await?.rows_affected()
        });
        Ok(revoked)
    }

    /// Deletes tokens that expired before `before`. Returns how many.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn purge_expired(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let purged = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
                .bind(Ts::new(before))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}

fn grant_from(row: &impl Columns) -> Result<RefreshGrant, sqlx::Error> {
    Ok(RefreshGrant {
        user_id: row.text("user_id")?,
        family_id: row.text("family_id")?,
        authenticated_at: row.opt_time("authenticated_at")?,
    })
}

fn foreign_key_is_not_found(error: StoreError, user: &str) -> StoreError {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            StoreError::NotFound(format!("user `{user}`"))
        }
        other => other,
    }
}

/// One browser session.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// Whose.
    pub user_id: String,
    /// What the application keeps with it (JSON).
    pub data: String,
    /// When it started.
    pub created_at: OffsetDateTime,
    /// When it was last used (before this lookup).
    pub last_seen_at: OffsetDateTime,
    /// When it ends.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("data", &format_args!("[{} bytes]", self.data.len()))
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The server-side sessions (`Store::sessions`).
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a> {
    store: &'a Store,
}

impl Sessions<'_> {
    /// Stores a session whose id (the cookie's value, from a CSPRNG) is `id`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user; [`StoreError::Conflict`] for an id in use.
    pub async fn create(
        &self,
        id: &SecretString,
        user: &str,
        data: &str,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (now, id_hash) = (self.store.now(), hash(id));
        let sql = "INSERT INTO sessions (id_hash, user_id, data, created_at, last_seen_at, \
                   expires_at) VALUES ($1, $2, $3, $4, $4, $5)";
        let result = on_pool!(self.store, pool => {
            sqlx::query(sql)
                .bind(&id_hash)
                .bind(user)
                .bind(data)
                .bind(now)
                .bind(Ts::new(expires_at))
                .execute(pool)
                .await
                .map(drop)
        });
        result.map_err(|e| foreign_key_is_not_found(e.into(), user))
    }

    /// The live session with this id, marked as seen now; `None` when unknown or expired.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get(&self, id: &SecretString) -> Result<Option<Session>, StoreError> {
        let (now, id_hash) = (self.store.now(), hash(id));
        let session = on_pool!(self.store, pool => {
            let row = sqlx::query(
                "SELECT user_id, data, created_at, last_seen_at, expires_at FROM sessions \
                 WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(&id_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(row) => {
                    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                        .bind(now)
                        .bind(&id_hash)
                        .execute(pool)
                        .await?;
                    Some(Session {
                        user_id: row.text("user_id")?,
                        data: row.text("data")?,
                        created_at: row.time("created_at")?,
                        last_seen_at: row.time("last_seen_at")?,
                        expires_at: row.time("expires_at")?,
                    })
                }
            }
        });
        Ok(session)
    }

    /// Ends one session (logout). Returns whether it existed.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete(&self, id: &SecretString) -> Result<bool, StoreError> {
        let id_hash = hash(id);
        let deleted = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(&id_hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted > 0)
    }

    /// Ends every session of `user` (logout everywhere). Returns how many.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let deleted = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }

    /// Deletes sessions that have expired. Returns how many.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.store.now();
        let purged = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(purged)
    }
}
