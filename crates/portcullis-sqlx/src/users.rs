//! Accounts: the Aethera `users` table ([`Users`], from [`Store::users`]).

use std::fmt;

use portcullis_core::IdSource as _;
use time::OffsetDateTime;

use crate::db::{Columns, Store, StoreError, on_pool};

/// One account. `Debug` leaves the password hash out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// Its id (a UUID).
    pub id: String,
    /// Its tenant, if the service has tenants.
    pub tenant: Option<String>,
    /// Its login name; unique.
    pub username: String,
    /// Its email address; unique regardless of case.
    pub email: Option<String>,
    /// A name for people.
    pub full_name: Option<String>,
    /// The PHC string of its password (argon2id), if it has one.
    pub password_hash: Option<String>,
    /// Whether it may log in.
    pub is_active: bool,
    /// Whether it may do everything (Aethera's `is_superuser`).
    pub is_superuser: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("full_name", &self.full_name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("is_active", &self.is_active)
            .field("is_superuser", &self.is_superuser)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What [`Users::create`] needs: a username, and the rest through the setters.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct NewUser {
    /// The login name.
    pub username: String,
    /// The email address.
    pub email: Option<String>,
    /// A name for people.
    pub full_name: Option<String>,
    /// The PHC string of the password.
    pub password_hash: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// Whether the account may do everything.
    pub is_superuser: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("tenant", &self.tenant)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

impl NewUser {
    /// An account called `username`.
    #[must_use]
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            ..Self::default()
        }
    }

    /// Sets the email address.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the name for people.
    #[must_use]
    pub fn full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }

    /// Sets the password's PHC string (hash it first; the store never sees a password).
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Makes the account a superuser.
    #[must_use]
    pub fn superuser(mut self, superuser: bool) -> Self {
        self.is_superuser = superuser;
        self
    }
}

/// The `users` table.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    store: &'a Store,
}

const COLUMNS: &str = "id, tenant_id, username, email, full_name, password_hash, is_active, \
                       is_superuser, created_at, updated_at";

fn user_from(row: &impl Columns) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.text("id")?,
        tenant: row.opt_text("tenant_id")?,
        username: row.text("username")?,
        email: row.opt_text("email")?,
        full_name: row.opt_text("full_name")?,
        password_hash: row.opt_text("password_hash")?,
        is_active: row.flag("is_active")?,
        is_superuser: row.flag("is_superuser")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

impl Store {
    /// Creates a tenant (users, roles and keys name it by `id`). Creating one that exists
    /// changes nothing.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for an empty id.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<(), StoreError> {
        if id.is_empty() {
            return Err(StoreError::Invalid("a tenant id must not be empty".into()));
        }
        let now = self.now();
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The accounts.
    #[must_use]
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }
}

impl Users<'_> {
    /// Creates an account.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the username or email (in any case) is taken;
    /// [`StoreError::Invalid`] for an empty username.
    pub async fn create(&self, new: NewUser) -> Result<User, StoreError> {
        if new.username.trim().is_empty() {
            return Err(StoreError::Invalid("a username must not be empty".into()));
        }
        let id = self.store.ids.event_id().as_str().to_owned();
        let now = self.store.now();
        let sql = "INSERT INTO users (id, tenant_id, username, email, full_name, password_hash, \
                   is_active, is_superuser, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $8)";
        on_pool!(self.store, pool => {
            sqlx::query(sql)
                .bind(&id)
                .bind(&new.tenant)
                .bind(&new.username)
                .bind(&new.email)
                .bind(&new.full_name)
                .bind(&new.password_hash)
                .bind(new.is_superuser)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(User {
            id,
            tenant: new.tenant,
            username: new.username,
            email: new.email,
            full_name: new.full_name,
            password_hash: new.password_hash,
            is_active: true,
            is_superuser: new.is_superuser,
            created_at: now.0,
            updated_at: now.0,
        })
    }

    async fn find(&self, condition: &str, value: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE {condition}");
        let user = on_pool!(self.store, pool => {
            match sqlx::query(&sql).bind(value).fetch_optional(pool).await? {
                Some(row) => Some(user_from(&row)?),
                None => None,
            }
        });
        Ok(user)
    }

    /// The account with this id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn find_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.find("id = $1", id).await
    }

    /// The account with this username (exactly: usernames are case-sensitive).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.find("username = $1", username).await
    }

    /// The account with this email address, in any case.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.find("lower(email) = lower($1)", email).await
    }

    async fn update(&self, assignment: &str, id: &str, value: Value<'_>) -> Result<(), StoreError> {
        let sql = format!("UPDATE users SET {assignment}, updated_at = $2 WHERE id = $3");
        let now = self.store.now();
        let changed = on_pool!(self.store, pool => {
            let query = sqlx::query(&sql);
            let query = match value {
                Value::Text(text) => query.bind(text),
                Value::Flag(flag) => query.bind(flag),
            };
            query.bind(now).bind(id).execute(pool).await?.rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound(format!("user `{id}`")));
        }
        Ok(())
    }

    /// Deletes the account; its role assignments, refresh tokens and sessions go with it
    /// (its audit events stay). Returns whether it existed.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(self.store, pool => {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted > 0)
    }

    /// The accounts, by username, `limit` from `offset` (at most 1000).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY username LIMIT $1 OFFSET $2");
        let (limit, offset) = (
            i64::try_from(limit.min(1000)).unwrap_or(1000),
            i64::try_from(offset).unwrap_or(i64::MAX),
        );
        let users = on_pool!(self.store, pool => {
            let rows = sqlx::query(&sql).bind(limit).bind(offset).fetch_all(pool).await?;
            rows.iter().map(user_from).collect::<Result<Vec<_>, _>>()?
        });
        Ok(users)
    }

    /// Replaces the password's PHC string.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError> {
        self.update("password_hash = $1", id, Value::Text(hash))
            .await
    }

    /// Disables (`false`) or enables the account.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn set_active(&self, id: &str, active: bool) -> Result<(), StoreError> {
        self.update("is_active = $1", id, Value::Flag(active)).await
    }

    /// Makes the account a superuser (`true`) or not.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn set_superuser(&self, id: &str, superuser: bool) -> Result<(), StoreError> {
        self.update("is_superuser = $1", id, Value::Flag(superuser))
            .await
    }
}

/// The new value of one column.
#[derive(Clone, Copy)]
enum Value<'a> {
    Text(&'a str),
    Flag(bool),
}
