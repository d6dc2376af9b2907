//! Roles, permissions and inheritance in the database: [`RbacStore`] is Aethera's
//! `RBACService` (`assign_role`, `grant_permission`, `get_user_permissions`,
//! `has_permission`, …) and keeps a `portcullis_rbac::RbacEngine` in step with the tables, on
//! this instance and on every other one.
//!
//! Every change runs in one transaction that also validates the policy it produces (exactly
//! as a roles file is validated: a change that would make it invalid changes nothing), bumps
//! the policy version, writes an `admin` audit event and, on PostgreSQL, announces the new
//! version with `NOTIFY`. [`RbacStore::watch`] applies announced versions on every instance.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use portcullis_core::{
    AuditEvent, AuditEventType, AuditPrincipal, AuditResult, IdSource as _, Principal,
    PrincipalKind,
};
use portcullis_rbac::{Builtins, Limits, Policy, PolicyDocument, RbacEngine, RoleDef, RuleDef};

use crate::audit::{EventRow, insert_events};
use crate::db::{Columns, Engine, Store, StoreError, Ts, on_pool};

/// The `NOTIFY` channel of policy versions.
pub const POLICY_CHANNEL: &str = "portcullis_policy";

/// Whether a rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The rule grants.
    Allow,
    /// The rule forbids, over every allow of every role.
    Deny,
}

impl Effect {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// A role to create with [`RbacStore::create_role`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewRole {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Roles whose rules it also has.
    pub inherits: Vec<String>,
    /// Whether its holders may do everything (explicit denies still apply).
    pub superuser: bool,
}

impl NewRole {
    /// A role called `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            inherits: Vec::new(),
            superuser: false,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a parent role.
    #[must_use]
    pub fn inherits(mut self, parent: impl Into<String>) -> Self {
        self.inherits.push(parent.into());
        self
    }

    /// Makes it a superuser role.
    #[must_use]
    pub fn superuser(mut self, superuser: bool) -> Self {
        self.superuser = superuser;
        self
    }
}

/// How [`RbacStore::watch`] keeps the engine current.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchOptions {
    /// How often the version is read even without a notification (SQLite has none; on
    /// PostgreSQL this catches notifications lost while the listening connection was down).
    /// Default 250 ms on SQLite, 5 s on PostgreSQL.
    pub poll: Option<Duration>,
    /// How long the engine may go without a successful check of the version before it stops
    /// trusting its snapshot and denies everything until the database answers again (default
    /// 60 s). A revoked permission must not stay granted forever because the database is away.
    pub max_staleness: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            poll: None,
            max_staleness: Duration::from_secs(60),
        }
    }
}

impl WatchOptions {
    /// Sets [`poll`](Self::poll).
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = Some(every);
        self
    }

    /// Sets [`max_staleness`](Self::max_staleness).
    #[must_use]
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }
}

/// Roles and permissions in the database, and the engine built from them.
///
/// The *template* is a policy document whose settings (`builtins`, `actions`, `default_role`,
/// `superuser_attribute`) shape every snapshot; its roles (built-ins included) are written to
/// the tables once, when the tables hold no role yet. After that the tables are the truth.
#[derive(Debug, Clone)]
pub struct RbacStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    template: PolicyDocument,
    limits: Limits,
    tenant: Option<String>,
    engine: Arc<RbacEngine>,
    version: AtomicI64,
}

/// A stored role's id and whether it is global.
struct RoleRef {
    id: i64,
    global: bool,
}

impl RbacStore {
    /// Opens the roles of `store` for every tenant's global roles, seeding the tables from
    /// `template` when they hold no role, and builds the engine.
    ///
    /// # Errors
    /// When the database fails, or the stored roles do not validate.
    pub async fn open(store: &Store, template: PolicyDocument) -> Result<Self, StoreError> {
        Self::open_with(store, template, None, Limits::default()).await
    }

    /// Opens the roles of one tenant: the global roles and the tenant's own.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_for_tenant(
        store: &Store,
        template: PolicyDocument,
        tenant: &str,
    ) -> Result<Self, StoreError> {
        Self::open_with(store, template, Some(tenant.to_owned()), Limits::default()).await
    }

    /// [`open`](Self::open) with a tenant and [`Limits`].
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub async fn open_with(
        store: &Store,
        template: PolicyDocument,
        tenant: Option<String>,
        limits: Limits,
    ) -> Result<Self, StoreError> {
        seed(store, &template, &limits).await?;
        let (version, doc) = load(store, &template, tenant.as_deref()).await?;
        let policy = validate(&doc, &limits)?;
        let engine = RbacEngine::new(policy).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                template,
                limits,
                tenant,
                engine: Arc::new(engine),
                version: AtomicI64::new(version),
            }),
        })
    }

    /// The engine: give it to the authorization layer. It is swapped in place when the roles
    /// change (by this store, or on another instance while [`watch`](Self::watch) runs).
    #[must_use]
    pub fn engine(&self) -> Arc<RbacEngine> {
        self.inner.engine.clone()
    }

    /// The policy version the engine holds.
    #[must_use]
    pub fn version(&self) -> i64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// Reloads the roles if their version changed. Returns whether it did.
    ///
    /// # Errors
    /// When the database fails (the engine keeps its snapshot) or the stored roles do not
    /// validate (the engine keeps its snapshot, and the error says why).
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let stored = current_version(&self.inner.store).await?;
        if stored == self.version() {
            return Ok(false);
        }
        let (version, doc) = load(
            &self.inner.store,
            &self.inner.template,
            self.inner.tenant.as_deref(),
        )
        .await?;
        let policy = validate(&doc, &self.inner.limits)?;
        self.inner
            .engine
            .swap(policy)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.inner.version.store(version, Ordering::Release);
        tracing::info!(version, "policy reloaded from the database");
        Ok(true)
    }

    /// Keeps the engine current until the returned handle is dropped: on PostgreSQL it
    /// `LISTEN`s for new versions (and polls, for notifications lost while disconnected); on
    /// SQLite it polls the version.
    #[must_use]
    pub fn watch(&self, options: WatchOptions) -> WatchHandle {
        let store = self.clone();
        let task = tokio::spawn(async move { store.watch_loop(options).await });
        WatchHandle { task }
    }

    async fn watch_loop(self, options: WatchOptions) {
        let engine = self.inner.store.engine();
        let poll = options.poll.unwrap_or(match engine {
            Engine::Postgres => Duration::from_secs(5),
            Engine::Sqlite => Duration::from_millis(250),
        });
        let mut last_ok = tokio::time::Instant::now();
        let mut denying = false;
        #[cfg(feature = "postgres")]
        let mut listener = None;
        loop {
            #[cfg(feature = "postgres")]
            if engine == Engine::Postgres {
                if listener.is_none() {
                    listener = listen(self.inner.store.listen_url()).await;
                }
                if let Some(active) = listener.as_mut() {
                    match tokio::time::timeout(poll, active.recv()).await {
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "policy listener lost its connection");
                            listener = None;
                            tokio::time::sleep(poll.min(Duration::from_secs(1))).await;
                        }
                    }
                } else {
                    tokio::time::sleep(poll.min(Duration::from_secs(1))).await;
                }
            }
            if engine == Engine::Sqlite {
                tokio::time::sleep(poll).await;
            }
            if denying {
                // The snapshot was replaced by deny-all: reload whatever the version.
                self.inner.version.store(-1, Ordering::Release);
            }
            match self.refresh().await {
                Ok(_) => {
                    last_ok = tokio::time::Instant::now();
                    if denying {
                        tracing::info!("database reachable again: policy restored");
                        denying = false;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "policy version check failed");
                    if !denying && last_ok.elapsed() > options.max_staleness {
                        tracing::error!(
                            staleness = ?last_ok.elapsed(),
                            "policy could not be checked for too long: denying everything"
                        );
                        if self.inner.engine.swap(Policy::deny_all()).is_ok() {
                            denying = true;
                        }
                    }
                }
            }
        }
    }

    /// Aethera's `create_role`, global (for a tenant store: the tenant's own role).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken; [`StoreError::Invalid`] when the
    /// policy would not validate (an unknown parent, a cycle, a limit).
    pub async fn create_role(&self, role: NewRole, by: &str) -> Result<(), StoreError> {
        let detail = format!("create role `{}`", role.name);
        let owned = (self.inner.tenant.clone(),);
        let role_name = role.name.clone();
        self.change(
            "create_role",
            &role_name,
            by,
            detail,
            move |tx: &mut dyn Tables| {
                Box::pin(async move {
                    let tenant = owned.0.as_deref();
                    // A name may exist once across global roles and the tenant's.
                    if tx.role(&role.name, tenant).await?.is_some() {
                        return Err(StoreError::Conflict(format!("role `{}`", role.name)));
                    }
                    let id = tx.insert_role(&role, tenant).await?;
                    for parent in &role.inherits {
                        let parent = tx.role(parent, tenant).await?.ok_or_else(|| {
                            StoreError::Invalid(format!("unknown parent role `{parent}`"))
                        })?;
                        tx.inherit(id, parent.id).await?;
                    }
                    Ok(())
                })
            },
        )
        .await
    }

    /// Deletes a role, its rules and its assignments.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown role; [`StoreError::Invalid`] when another role
    /// inherits it or it is the default role.
    pub async fn delete_role(&self, name: &str, by: &str) -> Result<(), StoreError> {
        let detail = format!("delete role `{name}`");
        let owned = (self.inner.tenant.clone(), name.to_owned());
        self.change(
            "delete_role",
            name,
            by,
            detail,
            move |tx: &mut dyn Tables| {
                Box::pin(async move {
                    let (tenant, name) = (owned.0.as_deref(), owned.1.as_str());
                    let role = tx.own_role(name, tenant).await?;
                    if tx.has_children(role.id).await? {
                        return Err(StoreError::Invalid(format!(
                            "role `{name}` is inherited by another role"
                        )));
                    }
                    tx.delete_role(role.id).await
                })
            },
        )
        .await
    }

    /// Aethera's `grant_permission(role, "projects:delete")`: the permission on every
    /// resource (`*`).
    ///
    /// # Errors
    /// As [`grant`](Self::grant).
    pub async fn grant_permission(
        &self,
        role: &str,
        permission: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        self.grant(role, "*", permission, Effect::Allow, by).await
    }

    /// Aethera's `revoke_permission`: removes the grant of the permission on `*`.
    ///
    /// # Errors
    /// As [`revoke`](Self::revoke).
    pub async fn revoke_permission(
        &self,
        role: &str,
        permission: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        self.revoke(role, "*", permission, Effect::Allow, by).await
    }

    /// Adds a rule to a role: `effect` the action `permission` on resources matching
    /// `resource` (`*`, `collection:*`, `collection:datasets`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown role or permission; [`StoreError::Invalid`]
    /// when the pattern is invalid.
    pub async fn grant(
        &self,
        name: &str,
        resource: &str,
        permission: &str,
        effect: Effect,
        by: &str,
    ) -> Result<(), StoreError> {
        let effect_name = effect.as_str();
        let detail = format!("{effect_name} `{resource} {permission}` to role `{name}`");
        let owned = (
            self.inner.tenant.clone(),
            name.to_owned(),
            resource.to_owned(),
            permission.to_owned(),
        );
        self.change(
            "grant_permission",
            name,
            by,
            detail,
            move |tx: &mut dyn Tables| {
                Box::pin(async move {
                    let (tenant, name, resource, permission) = (
                        owned.0.as_deref(),
                        owned.1.as_str(),
                        owned.2.as_str(),
                        owned.3.as_str(),
                    );
                    let role = tx.own_role(name, tenant).await?;
                    if !tx.permission_exists(permission).await? {
                        return Err(StoreError::NotFound(format!("permission `{permission}`")));
                    }
                    tx.add_rule(role.id, resource, permission, effect).await
                })
            },
        )
        .await
    }

    /// Removes a rule from a role.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown role or a rule the role does not have.
    pub async fn revoke(
        &self,
        name: &str,
        resource: &str,
        permission: &str,
        effect: Effect,
        by: &str,
    ) -> Result<(), StoreError> {
        let effect_name = effect.as_str();
        let detail = format!("remove {effect_name} `{resource} {permission}` from role `{name}`");
        let owned = (
            self.inner.tenant.clone(),
            name.to_owned(),
            resource.to_owned(),
            permission.to_owned(),
        );
        self.change(
            "revoke_permission",
            name,
            by,
            detail,
            move |tx: &mut dyn Tables| {
                Box::pin(async move {
                    let (tenant, name, resource, permission) = (
                        owned.0.as_deref(),
                        owned.1.as_str(),
                        owned.2.as_str(),
                        owned.3.as_str(),
                    );
                    let role = tx.own_role(name, tenant).await?;
                    if tx
                        .remove_rule(role.id, resource, permission, effect)
                        .await?
                    {
                        Ok(())
                    } else {
                        Err(StoreError::NotFound(format!(
                            "rule `{resource} {permission}` of role `{name}`"
                        )))
                    }
                })
            },
        )
        .await
    }

    /// Makes `role` inherit `parent`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown role; [`StoreError::Invalid`] for a cycle.
    pub async fn add_parent(&self, name: &str, parent: &str, by: &str) -> Result<(), StoreError> {
        let detail = format!("role `{name}` inherits `{parent}`");
        let owned = (
            self.inner.tenant.clone(),
            name.to_owned(),
            parent.to_owned(),
        );
        self.change(
            "add_parent",
            name,
            by,
            detail,
            move |tx: &mut dyn Tables| {
                Box::pin(async move {
                    let (tenant, name, parent) =
                        (owned.0.as_deref(), owned.1.as_str(), owned.2.as_str());
                    let role = tx.own_role(name, tenant).await?;
                    let parent = tx
                        .role(parent, tenant)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(format!("role `{parent}`")))?;
                    if role.global && !parent.global {
                        return Err(StoreError::Invalid(
                            "a global role cannot inherit a tenant's role".into(),
                        ));
                    }
                    tx.inherit(role.id, parent.id).await
                })
            },
        )
        .await
    }

    /// Aethera's `assign_role(user, role, assigned_by)`. Assignments are not part of the
    /// policy: they take effect for [`has_permission`](Self::has_permission) at once, and for
    /// tokens when they are next issued.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user or role.
    pub async fn assign_role(&self, user: &str, name: &str, by: &str) -> Result<(), StoreError> {
        let detail = format!("assign role `{name}` to user `{user}`");
        let (user_, by_) = (user.to_owned(), by.to_owned());
        self.assignment("assign_role", user, name, by, detail, move |tx, role| {
            Box::pin(async move { tx.assign(&user_, role, &by_).await })
        })
        .await
    }

    /// Removes an assignment.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user does not hold the role.
    pub async fn revoke_role(&self, user: &str, name: &str, by: &str) -> Result<(), StoreError> {
        let detail = format!("revoke role `{name}` from user `{user}`");
        let (user_, name_) = (user.to_owned(), name.to_owned());
        self.assignment("revoke_role", user, name, by, detail, move |tx, role| {
            Box::pin(async move {
                if tx.unassign(&user_, role).await? {
                    Ok(())
                } else {
                    Err(StoreError::NotFound(format!(
                        "assignment of `{name_}` to `{user_}`"
                    )))
                }
            })
        })
        .await
    }

    /// The roles assigned to `user`, by name.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn user_roles(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                   WHERE ur.user_id = $1 ORDER BY r.name";
        let names: Vec<String> = on_pool!(self.inner.store, pool => {
            sqlx::query_scalar(sql).bind(user).fetch_all(pool).await?
        });
        Ok(names)
    }

    /// The user as a principal: its roles from the table, its superuser flag as the
    /// `is_superuser` attribute (honoured when the template's `superuser_attribute` names
    /// it). `None` for an unknown or disabled user.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn principal(&self, user: &str) -> Result<Option<Principal>, StoreError> {
        let Some(account) = self.inner.store.users().find_by_id(user).await? else {
            return Ok(None);
        };
        if !account.is_active {
            return Ok(None);
        }
        let roles = self.user_roles(user).await?;
        let mut builder = Principal::builder(
            &account.id,
            PrincipalKind::User,
            portcullis_core::AuthMethod::Password,
            self.inner.store.clock.now(),
        )
        .name(&account.username)
        .roles(roles)
        .attribute("is_superuser", account.is_superuser);
        if let Some(tenant) = &account.tenant {
            builder = builder.tenant(tenant);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    /// Aethera's `has_permission(user, "projects:create")`, decided by the engine (the same
    /// answer as for a request carrying the user's roles). An unknown or disabled user has no
    /// permission.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn has_permission(&self, user: &str, permission: &str) -> Result<bool, StoreError> {
        Ok(self
            .principal(user)
            .await?
            .is_some_and(|p| self.inner.engine.has_permission(&p, permission)))
    }

    /// Aethera's `get_user_permissions(user)`: every permission of the vocabulary the user
    /// holds, in vocabulary order.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_user_permissions(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let Some(principal) = self.principal(user).await? else {
            return Ok(Vec::new());
        };
        let engine = &self.inner.engine;
        let policy = engine.policy();
        Ok(policy
            .vocabulary()
            .names()
            .iter()
            .filter(|permission| engine.has_permission(&principal, permission))
            .cloned()
            .collect())
    }

    /// Runs a policy change: `work`, then validation of the result, the version bump, the
    /// audit event and the notification, all in one transaction; then the local refresh.
    /// Returns `Ok` once the change is committed, even if the local reload has to wait.
    async fn change(
        &self,
        action: &str,
        role: &str,
        by: &str,
        detail: String,
        work: impl for<'t> FnOnce(&'t mut dyn Tables) -> Work<'t> + Send,
    ) -> Result<(), StoreError> {
        self.transact(action, role, by, detail, true, work).await?;
        // The change is committed: a failed reload here must not report it as failed. The
        // engine catches up on the next refresh (or the watch) and denies if it cannot.
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "policy changed, but this instance could not reload it yet");
        }
        Ok(())
    }

    /// Runs a change of `user`'s assignment of the role `name` (resolved as this scope sees
    /// it): `work` and the audit event in one transaction.
    async fn assignment(
        &self,
        action: &str,
        user: &str,
        name: &str,
        by: &str,
        detail: String,
        work: impl for<'t> FnOnce(&'t mut dyn Tables, i64) -> Work<'t> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (name_, tenant_) = (name.to_owned(), self.inner.tenant.clone());
        self.transact(action, user, by, detail, false, move |tx| {
            Box::pin(async move {
                let role = tx
                    .role(&name_, tenant_.as_deref())
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("role `{name_}`")))?;
                work(tx, role.id).await
            })
        })
        .await
    }

    async fn transact(
        &self,
        action: &str,
        resource: &str,
        by: &str,
        detail: String,
        bumps_policy: bool,
        work: impl for<'t> FnOnce(&'t mut dyn Tables) -> Work<'t> + Send,
    ) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let now = store.now();
        let mut event = AuditEvent::new(
            store.ids.event_id(),
            AuditEventType::Admin,
            AuditResult::Success,
            now.0,
        )
        .with_audit_principal(AuditPrincipal::with_id(by))
        .with_action(action)
        .with_resource_parts(
            if bumps_policy { "role" } else { "user_role" },
            Some(resource.to_owned()),
        )
        .with_reason(detail);
        if let Some(tenant) = &self.inner.tenant {
            event = event.with_metadata("tenant", tenant.as_str());
        }
        on_pool!(store, pool => {
            let mut conn = pool.begin().await?;
            let mut tx = Tx { conn: &mut *conn, now };
            // Take the write lock first (the version row): changes serialize, and SQLite
            // never has to upgrade a read transaction.
            let version = tx.bump_version(bumps_policy).await?;
            work(&mut tx as &mut dyn Tables).await?;
            if bumps_policy {
                let (_, doc) = tx.load(&self.inner.template, self.inner.tenant.as_deref()).await?;
                validate(&doc, &self.inner.limits)?;
                event = event.with_metadata("policy_version", version);
            }
            let rows = [EventRow::new(&event).map_err(|e| StoreError::Invalid(e.to_string()))?];
            insert_events!(tx.conn, rows);
            if bumps_policy && store.engine() == Engine::Postgres {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(POLICY_CHANNEL)
                    .bind(version.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            conn.commit().await?;
        });
        Ok(())
    }
}

/// The work of one change, on the transaction's tables.
type Work<'t> = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 't>>;

/// Stops [`RbacStore::watch`] when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(feature = "postgres")]
async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut listener = match sqlx::postgres::PgListener::connect(url).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot open the policy listener");
            return None;
        }
    };
    match listener.listen(POLICY_CHANNEL).await {
        Ok(()) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for policy versions");
            None
        }
    }
}

fn validate(doc: &PolicyDocument, limits: &Limits) -> Result<Policy, StoreError> {
    Policy::from_document_with_limits(doc, limits).map_err(|e| StoreError::Invalid(e.to_string()))
}

async fn current_version(store: &Store) -> Result<i64, StoreError> {
    let version: i64 = on_pool!(store, pool => {
        sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
            .fetch_one(pool)
            .await?
    });
    Ok(version)
}

/// Reads the version and the roles visible to `tenant` in one consistent snapshot.
async fn load(
    store: &Store,
    template: &PolicyDocument,
    tenant: Option<&str>,
) -> Result<(i64, PolicyDocument), StoreError> {
    let loaded = on_pool!(store, pool => {
        let mut conn = pool.begin().await?;
        if store.engine() == Engine::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *conn)
                .await?;
        }
        let mut tx = Tx { conn: &mut *conn, now: store.now() };
        let loaded = tx.load(template, tenant).await?;
        conn.commit().await?;
        loaded
    });
    Ok(loaded)
}

/// Writes the template's roles when the tables hold none, and its vocabulary always.
async fn seed(store: &Store, template: &PolicyDocument, limits: &Limits) -> Result<(), StoreError> {
    let vocabulary = template
        .actions
        .clone()
        .unwrap_or_else(|| template.builtins.default_actions());
    let mut roles = template.builtins.roles();
    roles.extend(template.roles.iter().cloned());
    if roles
        .iter()
        .flat_map(|r| r.permissions.iter().chain(&r.deny))
        .any(|rule| rule.when.is_some())
    {
        return Err(StoreError::Invalid(
            "rules with conditions (`when`) cannot be stored in the database".into(),
        ));
    }
    // The template must validate on its own before any of it is written.
    validate(template, limits)?;
    on_pool!(store, pool => {
        // Instances starting at once on empty tables: one seeds, the others then find roles.
        let mut conn = match store.engine() {
            Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => pool.begin().await?,
        };
        if store.engine() == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7075886766117520230)")
                .execute(&mut *conn)
                .await?;
        }
        let mut tx = Tx { conn: &mut *conn, now: store.now() };
        for name in &vocabulary.names {
            sqlx::query("INSERT INTO permissions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .execute(&mut *tx.conn)
                .await?;
        }
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles")
            .fetch_one(&mut *tx.conn)
            .await?;
        if existing == 0 && !roles.is_empty() {
            tx.bump_version(true).await?;
            let mut ids = BTreeMap::new();
            for role in &roles {
                let new = NewRole {
                    name: role.name.clone(),
                    description: role.description.clone(),
                    inherits: Vec::new(),
                    superuser: role.superuser,
                };
                let id = tx.insert_role(&new, None).await?;
                ids.insert(role.name.as_str(), id);
                for (rules, effect) in [(&role.permissions, Effect::Allow), (&role.deny, Effect::Deny)] {
                    for rule in rules {
                        for action in &rule.actions {
                            tx.add_rule(id, &rule.resource, action, effect).await?;
                        }
                    }
                }
            }
            for role in &roles {
                for parent in &role.inherits {
                    if let (Some(&id), Some(&parent_id)) =
                        (ids.get(role.name.as_str()), ids.get(parent.as_str()))
                    {
                        tx.inherit(id, parent_id).await?;
                    }
                }
            }
        }
        conn.commit().await?;
    });
    Ok(())
}

/// One transaction on the role tables of either engine.
struct Tx<'c, C> {
    conn: &'c mut C,
    now: Ts,
}

/// What a change does to the role tables: the same SQL on either engine, so that a change is
/// written once.
#[async_trait::async_trait]
trait Tables: Send {
    async fn bump_version(&mut self, bumps: bool) -> Result<i64, StoreError>;
    async fn role(
        &mut self,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<Option<RoleRef>, StoreError>;
    async fn own_role(&mut self, name: &str, tenant: Option<&str>) -> Result<RoleRef, StoreError>;
    async fn insert_role(
        &mut self,
        role: &NewRole,
        tenant: Option<&str>,
    ) -> Result<i64, StoreError>;
    async fn delete_role(&mut self, id: i64) -> Result<(), StoreError>;
    async fn has_children(&mut self, id: i64) -> Result<bool, StoreError>;
    async fn inherit(&mut self, id: i64, parent: i64) -> Result<(), StoreError>;
    async fn permission_exists(&mut self, name: &str) -> Result<bool, StoreError>;
    async fn add_rule(
        &mut self,
        role: i64,
        resource: &str,
        permission: &str,
        effect: Effect,
    ) -> Result<(), StoreError>;
    async fn remove_rule(
        &mut self,
        role: i64,
        resource: &str,
        permission: &str,
        effect: Effect,
    ) -> Result<bool, StoreError>;
    async fn assign(&mut self, user: &str, role: i64, by: &str) -> Result<(), StoreError>;
    async fn unassign(&mut self, user: &str, role: i64) -> Result<bool, StoreError>;
    async fn load(
        &mut self,
        template: &PolicyDocument,
        tenant: Option<&str>,
    ) -> Result<(i64, PolicyDocument), StoreError>;
}

macro_rules! tables_for {
    ($conn:ty) => {
        #[async_trait::async_trait]
        impl Tables for Tx<'_, $conn> {
            async fn bump_version(&mut self, bumps: bool) -> Result<i64, StoreError> {
                let sql = if bumps {
                    "UPDATE policy_version SET version = version + 1 WHERE id = 1 RETURNING version"
                } else {
                    "UPDATE policy_version SET version = version WHERE id = 1 RETURNING version"
                };
                Ok(sqlx::query_scalar(sql).fetch_one(&mut *self.conn).await?)
            }

            /// The role called `name` that `tenant` sees: its own, or a global one.
            async fn role(
                &mut self,
                name: &str,
                tenant: Option<&str>,
            ) -> Result<Option<RoleRef>, StoreError> {
                let row: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT id, tenant_id FROM roles WHERE name = $1 \
                     AND (tenant_id IS NULL OR tenant_id = $2) \
                     ORDER BY tenant_id IS NULL LIMIT 1",
                )
                .bind(name)
                .bind(tenant)
                .fetch_optional(&mut *self.conn)
                .await?;
                Ok(row.map(|(id, tenant_id)| RoleRef { id, global: tenant_id.is_none() }))
            }

            /// The role called `name` that this scope may change: a tenant store changes only
            /// the tenant's own roles.
            async fn own_role(&mut self, name: &str, tenant: Option<&str>) -> Result<RoleRef, StoreError> {
                match self.role(name, tenant).await? {
                    Some(role) if tenant.is_none() || !role.global => Ok(role),
                    Some(_) => Err(StoreError::Invalid(format!(
                        "role `{name}` is global: change it through a store without a tenant"
                    ))),
                    None => Err(StoreError::NotFound(format!("role `{name}`"))),
                }
            }

            async fn insert_role(&mut self, role: &NewRole, tenant: Option<&str>) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(
                    "INSERT INTO roles (tenant_id, name, description, is_superuser, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(tenant)
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.superuser)
                .bind(self.now)
                .fetch_one(&mut *self.conn)
                .await?)
            }

            async fn delete_role(&mut self, id: i64) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM roles WHERE id = $1")
                    .bind(id)
                    .execute(&mut *self.conn)
                    .await?;
                Ok(())
            }

            async fn has_children(&mut self, id: i64) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_inherits WHERE parent_id = $1")
                    .bind(id)
                    .fetch_one(&mut *self.conn)
                    .await?;
                Ok(n > 0)
            }

            async fn inherit(&mut self, id: i64, parent: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO role_inherits (role_id, parent_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(parent)
                .execute(&mut *self.conn)
                .await?;
                Ok(())
            }

            async fn permission_exists(&mut self, name: &str) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM permissions WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *self.conn)
                    .await?;
                Ok(n > 0)
            }

            async fn add_rule(
                &mut self,
                role: i64,
                resource: &str,
                permission: &str,
                effect: Effect,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO role_permissions (role_id, resource, permission, effect) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(role)
                .bind(resource)
                .bind(permission)
                .bind(effect.as_str())
                .execute(&mut *self.conn)
                .await?;
                Ok(())
            }

            async fn remove_rule(
                &mut self,
                role: i64,
                resource: &str,
                permission: &str,
                effect: Effect,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM role_permissions WHERE role_id = $1 AND resource = $2 \
                     AND permission = $3 AND effect = $4",
                )
                .bind(role)
                .bind(resource)
                .bind(permission)
                .bind(effect.as_str())
                .execute(&mut *self.conn)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn assign(&mut self, user: &str, role: i64, by: &str) -> Result<(), StoreError> {
                let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1")
                    .bind(user)
                    .fetch_one(&mut *self.conn)
                    .await?;
                if known == 0 {
                    return Err(StoreError::NotFound(format!("user `{user}`")));
                }
                sqlx::query(
                    "INSERT INTO user_roles (user_id, role_id, assigned_by, assigned_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(user)
                .bind(role)
                .bind(by)
                .bind(self.now)
                .execute(&mut *self.conn)
                .await?;
                Ok(())
            }

            async fn unassign(&mut self, user: &str, role: i64) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
                    .bind(user)
                    .bind(role)
                    .execute(&mut *self.conn)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            /// The version and the policy document of the roles `tenant` sees.
            async fn load(
                &mut self,
                template: &PolicyDocument,
                tenant: Option<&str>,
            ) -> Result<(i64, PolicyDocument), StoreError> {
                let version: i64 = sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
                    .fetch_one(&mut *self.conn)
                    .await?;
                let scope = "(r.tenant_id IS NULL OR r.tenant_id = $1)";
                let roles = sqlx::query(&format!(
                    "SELECT r.id, r.name, r.description, r.is_superuser FROM roles r \
                     WHERE {scope} ORDER BY r.id"
                ))
                .bind(tenant)
                .fetch_all(&mut *self.conn)
                .await?;
                let mut defs: BTreeMap<i64, RoleDef> = BTreeMap::new();
                for row in &roles {
                    let mut role = RoleDef::new(row.text("name")?);
                    role.description = row.text("description")?;
                    role.superuser = row.flag("is_superuser")?;
                    defs.insert(row.int("id")?, role);
                }
                let rules: Vec<(i64, String, String, String)> = sqlx::query_as(&format!(
                    "SELECT p.role_id, p.resource, p.permission, p.effect FROM role_permissions p \
                     JOIN roles r ON r.id = p.role_id WHERE {scope} \
                     ORDER BY p.role_id, p.effect, p.resource, p.permission"
                ))
                .bind(tenant)
                .fetch_all(&mut *self.conn)
                .await?;
                for (role_id, resource, permission, effect) in rules {
                    let Some(role) = defs.get_mut(&role_id) else { continue };
                    let list = if effect == "deny" { &mut role.deny } else { &mut role.permissions };
                    match list.last_mut() {
                        Some(rule) if rule.resource == resource => rule.actions.push(permission),
                        _ => list.push(RuleDef::new(resource, &[permission.as_str()])),
                    }
                }
                let parents: Vec<(i64, String)> = sqlx::query_as(&format!(
                    "SELECT i.role_id, r.name FROM role_inherits i JOIN roles r ON r.id = i.parent_id \
                     WHERE {scope} ORDER BY i.role_id, r.name"
                ))
                .bind(tenant)
                .fetch_all(&mut *self.conn)
                .await?;
                for (role_id, parent) in parents {
                    if let Some(role) = defs.get_mut(&role_id) {
                        role.inherits.push(parent);
                    }
                }
                let doc = PolicyDocument {
                    builtins: Builtins::None,
                    actions: Some(
                        template
                            .actions
                            .clone()
                            .unwrap_or_else(|| template.builtins.default_actions()),
                    ),
                    roles: defs.into_values().collect(),
                    ..template.clone()
                };
                Ok((version, doc))
            }
        }
    };
}
#[cfg(feature = "postgres")]
tables_for!(sqlx::PgConnection);
#[cfg(feature = "sqlite")]
tables_for!(sqlx::SqliteConnection);

/// Every change is a `Send` future, so it can run in an axum handler or a spawned task (a
/// compile-time check: it fails to build, not to run).
#[cfg(test)]
#[allow(dead_code, reason = "only compiled, never called")]
fn changes_are_send(rbac: &RbacStore) {
    fn send<T: Send>(_: T) {}
    send(rbac.create_role(NewRole::new("r"), "by"));
    send(rbac.delete_role("r", "by"));
    send(rbac.grant_permission("r", "p", "by"));
    send(rbac.revoke_permission("r", "p", "by"));
    send(rbac.add_parent("r", "q", "by"));
    send(rbac.assign_role("u", "r", "by"));
    send(rbac.revoke_role("u", "r", "by"));
    send(rbac.refresh());
}
