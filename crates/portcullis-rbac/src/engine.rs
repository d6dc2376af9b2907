//! [`RbacEngine`]: the compiled policy behind an atomic pointer, so it can be replaced while
//! requests are being evaluated.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_core::{
    AccessRequest, Clock, Decision, PolicyEngine, Principal, RequestContext, SystemClock,
};

use crate::compile::{Snapshot, TooLarge};
use crate::diagnostics::{PolicyError, ValidationReport};
use crate::filter::{Permitted, permitted};
use crate::policy::Policy;

/// Errors building or reloading an engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RbacError {
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy is too large.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The roles file could not be read.
    #[error("cannot read the roles file `{path}`: {message}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// The RBAC policy engine.
///
/// ```
/// use portcullis_core::{AccessRequest, AuthMethod, PolicyEngine, Principal, PrincipalKind};
/// use portcullis_rbac::RbacEngine;
/// use time::OffsetDateTime;
///
/// let engine = RbacEngine::from_toml(r#"
///     [[roles]]
///     name = "data_scientist"
///     description = "Data scientist with specific collection access"
///     permissions = [
///       { resource = "collection:datasets", actions = ["read", "write"] },
///       { resource = "collection:models", actions = ["read"] },
///     ]
///     inherits = ["reader"]
/// "#)?;
///
/// let alice = Principal::builder("alice", PrincipalKind::User, AuthMethod::Jwt, OffsetDateTime::UNIX_EPOCH)
///     .role("data_scientist")
///     .build()?;
///
/// let decision = engine.evaluate(&AccessRequest::new(&alice, "write", "collection:datasets"));
/// assert!(decision.is_allowed());
/// let decision = engine.evaluate(&AccessRequest::new(&alice, "write", "collection:models"));
/// assert!(decision.is_denied());
/// let decision = engine.evaluate(&AccessRequest::new(&alice, "read", "collection:other"));
/// assert_eq!(
///     decision.to_string(),
///     "allowed by role `reader` (inherited via `data_scientist`), rule `collection:* read`"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RbacEngine {
    current: ArcSwap<Snapshot>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for RbacEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.current.load();
        f.debug_struct("RbacEngine")
            .field("roles", &snapshot.policy.roles.len())
            .field("clock", &self.clock)
            .finish()
    }
}

impl RbacEngine {
    /// Compiles a validated policy.
    ///
    /// # Errors
    /// Only when the policy is too large to index.
    pub fn new(policy: Policy) -> Result<Self, RbacError> {
        Ok(Self {
            current: ArcSwap::from_pointee(Snapshot::compile(Arc::new(policy))?),
            clock: Arc::new(SystemClock),
        })
    }

    /// Loads, validates and compiles a roles file's text.
    ///
    /// # Errors
    /// Every problem of the file, with locations.
    pub fn from_toml(text: &str) -> Result<Self, RbacError> {
        Self::new(Policy::from_toml(text)?)
    }

    /// Reads and loads a roles file (AmateRS `roles_file`).
    ///
    /// # Errors
    /// When the file cannot be read or is invalid.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, RbacError> {
        Self::from_toml(&read(path.as_ref())?)
    }

    /// Uses `clock` for time-window conditions when a request carries no time.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the policy atomically. Requests being evaluated finish on the old snapshot;
    /// every later request sees the new one; none blocks.
    ///
    /// # Errors
    /// Only when the policy is too large; the current policy then stays in force.
    pub fn swap(&self, policy: Policy) -> Result<(), RbacError> {
        let snapshot = Snapshot::compile(Arc::new(policy))?;
        self.current.store(Arc::new(snapshot));
        Ok(())
    }

    /// Loads a new roles file's text and swaps it in, under the [`Limits`](crate::Limits) the
    /// policy in force was loaded with. When the file is invalid, the current policy stays in
    /// force (a bad reload never opens anything up) and the problems are returned.
    ///
    /// # Errors
    /// Every problem of the file.
    pub fn reload_toml(&self, text: &str) -> Result<ValidationReport, RbacError> {
        let limits = *self.current.load().policy.limits();
        let policy = Policy::from_toml_with_limits(text, &limits)?;
        let report = policy.report().clone();
        self.swap(policy)?;
        Ok(report)
    }

    /// Reloads a roles file from disk; see [`RbacEngine::reload_toml`].
    ///
    /// # Errors
    /// When the file cannot be read or is invalid; the current policy stays in force.
    pub fn reload_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<ValidationReport, RbacError> {
        self.reload_toml(&read(path.as_ref())?)
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> Arc<Policy> {
        self.current.load().policy.clone()
    }

    /// Aethera's `has_permission(user, "projects:create")`: whether the principal holds the
    /// permission (an action of the vocabulary) on the resource named by the permission's
    /// first part (`projects`). With the Aethera built-in roles, whose rules are on `*`, this
    /// is "does any role of the principal grant the permission".
    #[must_use]
    pub fn has_permission(&self, principal: &Principal, permission: &str) -> bool {
        self.require_permission(principal, permission).is_allowed()
    }

    /// Like [`RbacEngine::has_permission`], with the decision and its explanation.
    pub fn require_permission(&self, principal: &Principal, permission: &str) -> Decision {
        let resource = permission.split_once(':').map_or(permission, |(r, _)| r);
        self.evaluate(&AccessRequest::new(principal, permission, resource))
    }

    /// Aethera's `require_role("admin")`: the principal holds the role (exactly, or through
    /// the default role when it holds none). Inheritance does not count: a role check is a
    /// statement about the assignment, not about permissions. The same answer as
    /// [`PolicyEngine::holds_role`], which the tower and axum role guards ask.
    #[must_use]
    pub fn has_role(&self, principal: &Principal, role: &str) -> bool {
        if principal.roles().is_empty() {
            let snapshot = self.current.load();
            return snapshot
                .policy
                .default_role
                .and_then(|i| snapshot.policy.roles.get(i))
                .is_some_and(|r| r.name == role);
        }
        principal.has_role(role)
    }

    /// The permissions (actions) the principal holds on `resource`, in vocabulary order:
    /// Aethera's `get_user_permissions` for one resource.
    #[must_use]
    pub fn permissions_on(&self, principal: &Principal, resource: &str) -> Vec<String> {
        let snapshot = self.current.load();
        snapshot
            .vocabulary()
            .names()
            .iter()
            .filter(|action| {
                self.evaluate(&AccessRequest::new(principal, action, resource))
                    .is_allowed()
            })
            .cloned()
            .collect()
    }

    /// What the principal may `action` among the resources of `resource_type`, as a filter a
    /// caller can turn into a SQL `WHERE` clause (see [`Permitted`]).
    #[must_use]
    pub fn permitted(
        &self,
        principal: &Principal,
        action: &str,
        resource_type: &str,
        context: Option<&RequestContext>,
    ) -> Permitted {
        let snapshot = self.current.load();
        permitted(
            &snapshot.policy,
            principal,
            action,
            resource_type,
            context,
            &|| self.clock.now(),
        )
    }

    /// Approximate heap size of the compiled indexes, in bytes.
    #[must_use]
    pub fn compiled_size(&self) -> usize {
        self.current.load().heap_size()
    }

    /// Whether `action` is in the vocabulary.
    #[must_use]
    pub fn knows_action(&self, action: &str) -> bool {
        self.current.load().action_set(action).is_some()
    }
}

impl PolicyEngine for RbacEngine {
    fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        let snapshot = self.current.load();
        let verdict = snapshot.verdict(request, &|| self.clock.now());
        // The snapshot explains a grant, so it goes with the decision; a swap meanwhile
        // does not change it.
        let source = verdict
            .needs_source()
            .then(|| arc_swap::Guard::into_inner(snapshot));
        verdict.into_decision(source)
    }

    fn holds_role(&self, principal: &Principal, role: &str) -> bool {
        self.has_role(principal, role)
    }
}

fn read(path: &std::path::Path) -> Result<String, RbacError> {
    portcullis_core::read_bounded_text(path, crate::MAX_POLICY_FILE_LEN as u64).map_err(|e| {
        RbacError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    })
}
