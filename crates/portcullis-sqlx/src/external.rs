//! Accounts of external OpenID providers linked to local accounts ([`LinkedIdentities`], from
//! [`Store::linked_identities`]): a provider's issuer and subject name one person there and
//! at most one local account here.

use time::OffsetDateTime;

use crate::db::{Columns, Store, StoreError, on_pool};

/// One link.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkedIdentity {
    /// The provider's issuer (`iss`).
    pub issuer: String,
    /// The person at the provider (`sub`).
    pub subject: String,
    /// The local account.
    pub user_id: String,
    /// The provider's name as the login named it (`google`, `microsoft`, `okta`, …).
    pub provider: String,
    /// The email address the provider vouched for when the link was made, if any.
    pub email: Option<String>,
    /// When the link was made.
    pub linked_at: OffsetDateTime,
    /// When it was last used to log in.
    pub last_login_at: OffsetDateTime,
}

/// The `external_identities` table.
#[derive(Debug, Clone, Copy)]
pub struct LinkedIdentities<'a> {
    store: &'a Store,
}

const COLUMNS: &str = "issuer, subject, user_id, provider, email, linked_at, last_login_at";

fn link_from(row: &impl Columns) -> Result<LinkedIdentity, sqlx::Error> {
    Ok(LinkedIdentity {
        issuer: row.text("issuer")?,
        subject: row.text("subject")?,
        user_id: row.text("user_id")?,
        provider: row.text("provider")?,
        email: row.opt_text("email")?,
        linked_at: row.time("linked_at")?,
        last_login_at: row.time("last_login_at")?,
    })
}

impl Store {
    /// The links between external accounts and local ones.
    #[must_use]
    pub fn linked_identities(&self) -> LinkedIdentities<'_> {
        LinkedIdentities { store: self }
    }
}

impl LinkedIdentities<'_> {
    /// The link of the external account `subject` at `issuer`.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn find(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<LinkedIdentity>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM external_identities WHERE issuer = $1 AND subject = $2");
        let link = on_pool!(self.store, pool => {
            match sqlx::query(&sql).bind(issuer).bind(subject).fetch_optional(pool).await? {
                Some(row) => Some(link_from(&row)?),
                None => None,
            }
        });
        Ok(link)
    }

    /// The links of a local account, oldest first.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn of_user(&self, user_id: &str) -> Result<Vec<LinkedIdentity>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM external_identities WHERE user_id = $1 ORDER BY linked_at"
        );
        let links = on_pool!(self.store, pool => {
            let rows = sqlx::query(&sql).bind(user_id).fetch_all(pool).await?;
            rows.iter().map(link_from).collect::<Result<Vec<_>, _>>()?
        });
        Ok(links)
    }

    /// Links the external account `subject` at `issuer` to the local account `user_id`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when that external account is already linked (to any local
    /// account: a link is never moved silently); [`StoreError::Invalid`] for an empty issuer
    /// or subject; [`StoreError::NotFound`]-like database errors for an unknown user.
    pub async fn link(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
        provider: &str,
        email: Option<&str>,
    ) -> Result<(), StoreError> {
        if issuer.is_empty() || subject.is_empty() {
            return Err(StoreError::Invalid(
                "an external identity needs an issuer and a subject".into(),
            ));
        }
        let now = self.store.now();
        on_pool!(self.store, pool => {
            sqlx::query(
                "INSERT INTO external_identities (issuer, subject, user_id, provider, email, \
                 linked_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .bind(provider)
            .bind(email)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records a login through the link.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn touch(&self, issuer: &str, subject: &str) -> Result<(), StoreError> {
        let now = self.store.now();
        on_pool!(self.store, pool => {
            sqlx::query(
                "UPDATE external_identities SET last_login_at = $1 \
                 WHERE issuer = $2 AND subject = $3",
            )
            .bind(now)
            .bind(issuer)
            .bind(subject)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes a link. Returns whether it existed.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn unlink(&self, issuer: &str, subject: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM external_identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }
}
