//! [`RbacEngine`]: the compiled policy behind an atomic pointer, so it can be replaced while
//! requests are being evaluated.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use portcullis_core::{
    AccessRequest, Clock, Decision, PolicyEngine, Principal, RequestContext, SystemClock,
};

use crate::compile::{Snapshot, TooLarge, Verdict};
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
    /// Bumped after every swap; threads keep the snapshot of the generation they last saw.
    generation: AtomicU64,
    /// Tells engines apart in the per-thread cache.
    id: u64,
    clock: Arc<dyn Clock>,
}

/// The snapshot a thread used last, so that a decision costs one atomic load (of the
/// generation) instead of an `ArcSwap` load. A thread keeps at most one snapshot alive this
/// way, until it next evaluates.
struct Cached {
    engine: u64,
    generation: u64,
    snapshot: Arc<Snapshot>,
}

thread_local! {
    static LAST_SNAPSHOT: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

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
            generation: AtomicU64::new(0),
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
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
        // After the store: a thread that sees the new generation loads the new snapshot.
        self.generation.fetch_add(1, Ordering::AcqRel);
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

impl RbacEngine {
    /// Decides on a snapshot loaded from the engine, and leaves it in this thread's cache
    /// (unless the cache is in use: a re-entrant call, from a clock that evaluates policies,
    /// or a call while the thread is being torn down).
    #[cold]
    #[inline(never)]
    fn verdict_uncached(
        &self,
        request: &AccessRequest<'_>,
        generation: u64,
    ) -> (Verdict, Option<Arc<Snapshot>>) {
        let snapshot = self.current.load_full();
        let _ = LAST_SNAPSHOT.try_with(|cell| {
            if let Ok(mut slot) = cell.try_borrow_mut() {
                *slot = Some(Cached {
                    engine: self.id,
                    generation,
                    snapshot: Arc::clone(&snapshot),
                });
            }
        });
        let verdict = snapshot.verdict(request, &|| self.clock.now());
        (verdict, verdict.needs_source().then_some(snapshot))
    }
}

impl PolicyEngine for RbacEngine {
    fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        // One atomic load (of the generation) when this thread's cached snapshot is current.
        // The snapshot answers a `Verdict`, from which the explained decision is built here.
        let generation = self.generation.load(Ordering::Acquire);
        let cached = LAST_SNAPSHOT
            .try_with(|cell| {
                let slot = cell.try_borrow().ok()?;
                let cached = slot
                    .as_ref()
                    .filter(|c| c.engine == self.id && c.generation == generation)?;
                let snapshot = &cached.snapshot;
                let verdict = snapshot.verdict(request, &|| self.clock.now());
                Some((
                    verdict,
                    verdict.needs_source().then(|| Arc::clone(snapshot)),
                ))
            })
            .ok()
            .flatten();
        let (verdict, source) =
            cached.unwrap_or_else(|| self.verdict_uncached(request, generation));
        verdict.into_decision(source)
    }

    fn holds_role(&self, principal: &Principal, role: &str) -> bool {
        self.has_role(principal, role)
    }
}

fn read(path: &std::path::Path) -> Result<String, RbacError> {
    std::fs::read_to_string(path).map_err(|e| RbacError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
