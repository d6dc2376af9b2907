//! Second factors: recovery codes ([`RecoveryCodes`], from [`Store::recovery_codes`]; only the
//! SHA-256 of each code is stored, each spent by its first use) and TOTP authenticators
//! ([`TotpFactors`], from [`Store::totp_factors`]; the secret sealed, a step accepted once).

use portcullis_core::SecretString;
use ring::digest;

use crate::db::{Store, StoreError, on_pool};

/// Hex SHA-256 of a normalised code (upper case, without separators), so `abcd-efgh` and
/// `ABCDEFGH` are one code.
fn hash(code: &SecretString) -> String {
    let normalised: String = code
        .expose()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let digest = digest::digest(&digest::SHA256, normalised.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `recovery_codes` table.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryCodes<'a> {
    store: &'a Store,
}

impl Store {
    /// The recovery codes.
    #[must_use]
    pub fn recovery_codes(&self) -> RecoveryCodes<'_> {
        RecoveryCodes { store: self }
    }
}

impl RecoveryCodes<'_> {
    /// Replaces the user's codes with `codes` (the old ones stop working), in one
    /// transaction.
    ///
    /// # Errors
    /// When the database fails (nothing changed).
    pub async fn replace(&self, user_id: &str, codes: &[SecretString]) -> Result<(), StoreError> {
        let now = self.store.now();
        on_pool!(self.store, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            for code in codes {
                sqlx::query(
                    "INSERT INTO recovery_codes (user_id, code_hash, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(user_id)
                .bind(hash(code))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Spends `code` of the user: `true` when it was one of theirs and unused (it is now
    /// used), `false` otherwise. Two uses at once spend it once: one of them gets `false`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn consume(&self, user_id: &str, code: &SecretString) -> Result<bool, StoreError> {
        let now = self.store.now();
        let spent = on_pool!(self.store, pool => {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 \
                 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .bind(hash(code))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(spent == 1)
    }

    /// How many unused codes the user has.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self.store, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

/// One account's TOTP authenticator, as stored.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotpFactor {
    /// The secret, sealed by an [`Encryptor`](crate::Encryptor) for
    /// `totp_factors.secret` of the user.
    pub sealed_secret: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// 6 to 8.
    pub digits: i64,
    /// The last step a code was accepted for.
    pub last_step: Option<i64>,
    /// When a first code confirmed it; `None` while enrolment is pending.
    pub confirmed_at: Option<time::OffsetDateTime>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("last_step", &self.last_step)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

/// The `totp_factors` table.
#[derive(Debug, Clone, Copy)]
pub struct TotpFactors<'a> {
    store: &'a Store,
}

impl Store {
    /// The TOTP authenticators.
    #[must_use]
    pub fn totp_factors(&self) -> TotpFactors<'_> {
        TotpFactors { store: self }
    }
}

impl TotpFactors<'_> {
    /// Starts (or restarts) an enrolment: stores an unconfirmed authenticator.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the user has a confirmed one (remove it first).
    pub async fn enrol(
        &self,
        user_id: &str,
        sealed_secret: &str,
        algorithm: &str,
        digits: i64,
    ) -> Result<(), StoreError> {
        let now = self.store.now();
        let written = on_pool!(self.store, pool => {
            sqlx::query(
                "INSERT INTO totp_factors (user_id, secret, algorithm, digits, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
                 algorithm = excluded.algorithm, digits = excluded.digits, last_step = NULL, \
                 created_at = excluded.created_at WHERE totp_factors.confirmed_at IS NULL",
            )
            .bind(user_id)
            .bind(sealed_secret)
            .bind(algorithm)
            .bind(digits)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if written == 0 {
            return Err(StoreError::Conflict(
                "the account has a confirmed authenticator".into(),
            ));
        }
        Ok(())
    }

    /// The user's authenticator.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn find(&self, user_id: &str) -> Result<Option<TotpFactor>, StoreError> {
        use crate::db::Columns as _;
        let sql = "SELECT secret, algorithm, digits, COALESCE(last_step, -1) AS last_step, \
                   confirmed_at FROM totp_factors WHERE user_id = $1";
        let factor = on_pool!(self.store, pool => {
            match sqlx::query(sql).bind(user_id).fetch_optional(pool).await? {
                Some(row) => Some(TotpFactor {
                    sealed_secret: row.text("secret")?,
                    algorithm: row.text("algorithm")?,
                    digits: row.int("digits")?,
                    last_step: Some(row.int("last_step")?).filter(|step| *step >= 0),
                    confirmed_at: row.opt_time("confirmed_at")?,
                }),
                None => None,
            }
        });
        Ok(factor)
    }

    /// Records that a code of `step` was accepted (and confirms the authenticator): `false`
    /// when a code of this step or a later one was accepted already (a replay, also from
    /// another instance), so the caller must refuse the code.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let now = self.store.now();
        let accepted = on_pool!(self.store, pool => {
            sqlx::query(
                "UPDATE totp_factors SET last_step = $1, \
                 confirmed_at = COALESCE(confirmed_at, $2) \
                 WHERE user_id = $3 AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(step)
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(accepted == 1)
    }

    /// Removes the user's authenticator. Returns whether there was one.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn remove(&self, user_id: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
                .bind(user_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }
}

/// The `login_challenges` table: logins waiting for their second factor.
#[derive(Debug, Clone, Copy)]
pub struct LoginChallenges<'a> {
    store: &'a Store,
}

impl Store {
    /// The logins waiting for a second factor.
    #[must_use]
    pub fn login_challenges(&self) -> LoginChallenges<'_> {
        LoginChallenges { store: self }
    }
}

impl LoginChallenges<'_> {
    /// Stores a challenge (a CSPRNG value) for `user_id` until `expires_at`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn create(
        &self,
        challenge: &SecretString,
        user_id: &str,
        expires_at: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now = self.store.now();
        on_pool!(self.store, pool => {
            sqlx::query(
                "INSERT INTO login_challenges (id_hash, user_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(crate::tokens::hash(challenge))
            .bind(user_id)
            .bind(now)
            .bind(crate::db::Ts::new(expires_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Takes a challenge: its user when it exists and has not expired. It is deleted either
    /// way, so each challenge is answered once (two takes at once: one gets it).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn take(&self, challenge: &SecretString) -> Result<Option<String>, StoreError> {
        use crate::db::Columns as _;
        let now = self.store.now();
        let taken = on_pool!(self.store, pool => {
            let row = sqlx::query(
                "DELETE FROM login_challenges WHERE id_hash = $1 RETURNING user_id, expires_at",
            )
            .bind(crate::tokens::hash(challenge))
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Some((row.text("user_id")?, row.time("expires_at")?)),
                None => None,
            }
        });
        Ok(taken.and_then(|(user, expires_at)| (expires_at > now.0).then_some(user)))
    }
}
