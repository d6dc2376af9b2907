//! Tenant isolation on PostgreSQL with row-level security: [`TenantTransaction`] runs work
//! with `app.tenant_id` set for that transaction only, taken from the principal.
//!
//! An application protects a table of its own (one with a `tenant_id TEXT NOT NULL` column)
//! once, in its migrations: `SELECT portcullis_isolate_tenants('projects')`. The table's rows
//! are then visible and writable only inside a [`TenantTransaction`] of their tenant, for
//! every role including the table's owner (`FORCE ROW LEVEL SECURITY`); the application's role
//! must not be a superuser nor have `BYPASSRLS`. Outside such a transaction the setting is
//! empty and no row matches: a forgotten transaction fails closed.

use std::ops::{Deref, DerefMut};

use portcullis_core::Principal;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::db::{Store, StoreError};

/// A transaction in which the row-level security policies see one tenant. Dropped without
/// [`commit`](Self::commit), it rolls back. Either way the setting ends with it: the pooled
/// connection goes back without a tenant.
#[derive(Debug)]
pub struct TenantTransaction {
    tx: Transaction<'static, Postgres>,
    tenant: String,
}

impl Store {
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    /// Starts a transaction scoped to the principal's tenant.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when the principal has no tenant (nothing runs: fail closed) or
    /// the store is not on PostgreSQL; [`StoreError::Unavailable`] when the database is away.
    pub async fn tenant_transaction(
        &self,
        principal: &Principal,
    ) -> Result<TenantTransaction, StoreError> {
        let Some(tenant) = principal.tenant().filter(|t| !t.is_empty()) else {
            tracing::warn!(
                principal = principal.id(),
                "tenant transaction refused: no tenant"
            );
            return Err(StoreError::Invalid(
                "the principal has no tenant: tenant-scoped work refused".into(),
            ));
        };
        let Some(pool) = self.postgres() else {
            return Err(StoreError::Invalid(
                "tenant isolation needs PostgreSQL row-level security".into(),
            ));
        };
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        Ok(TenantTransaction {
            tx,
            tenant: tenant.to_owned(),
        })
    }
}

impl TenantTransaction {
    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Commits the work.
    ///
    /// # Errors
    /// When the commit fails (nothing was written).
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

impl Deref for TenantTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
