//! Authorization: the [`PolicyEngine`] trait, the [`AccessRequest`] it evaluates and the
//! [`Decision`] it returns.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::principal::Principal;

/// Facts about the request beyond who, what and which: where it came from, when, and which
/// tenant owns the resource. Policy conditions read these.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestContext {
    /// The client's address, after trusted-proxy handling.
    pub source_ip: Option<IpAddr>,
    /// The time of the request; engines use their own clock when absent.
    pub time: Option<OffsetDateTime>,
    /// The tenant that owns the requested resource, for tenant-isolation conditions.
    pub resource_tenant: Option<String>,
    /// Anything else an application's conditions need.
    pub attributes: Map<String, Value>,
}

impl RequestContext {
    /// An empty context.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the client's address.
    #[must_use]
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets the time of the request.
    #[must_use]
    pub fn with_time(mut self, time: OffsetDateTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Sets the tenant that owns the resource.
    #[must_use]
    pub fn with_resource_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.resource_tenant = Some(tenant.into());
        self
    }

    /// Adds an attribute.
    #[must_use]
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// One question for a [`PolicyEngine`]: may `principal` do `action` on `resource`?
///
/// It only borrows, so building one costs nothing.
///
/// ```
/// use portcullis_core::{AccessRequest, AuthMethod, Principal, PrincipalKind};
/// use time::OffsetDateTime;
///
/// let alice = Principal::builder("alice", PrincipalKind::User, AuthMethod::Jwt, OffsetDateTime::UNIX_EPOCH)
///     .role("reader")
///     .build()?;
/// let request = AccessRequest::new(&alice, "read", "collection:datasets");
/// assert_eq!(request.resource(), "collection:datasets");
/// # Ok::<(), portcullis_core::PrincipalError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    principal: &'a Principal,
    action: &'a str,
    resource: &'a str,
    context: Option<&'a RequestContext>,
}

impl<'a> AccessRequest<'a> {
    /// A request without context.
    #[must_use]
    pub fn new(principal: &'a Principal, action: &'a str, resource: &'a str) -> Self {
        Self {
            principal,
            action,
            resource,
            context: None,
        }
    }

    /// Adds the request context.
    #[must_use]
    pub fn with_context(mut self, context: &'a RequestContext) -> Self {
        self.context = Some(context);
        self
    }

    /// Who asks.
    #[must_use]
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }

    /// The action (`read`, `write`, `admin`, `create`, ...).
    #[must_use]
    pub fn action(&self) -> &'a str {
        self.action
    }

    /// The resource (`collection:datasets`, `project:42`, `server`). It is data, never a
    /// pattern: a `*` in it is an ordinary character.
    #[must_use]
    pub fn resource(&self) -> &'a str {
        self.resource
    }

    /// The context, when given.
    #[must_use]
    pub fn context(&self) -> Option<&'a RequestContext> {
        self.context
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

impl Effect {
    /// `"allow"` or `"deny"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The rule behind a decision: which role held it, how the principal came to hold that role,
/// and the rule itself.
///
/// A grant either owns its strings ([`Grant::new`]) or points into a compiled policy
/// ([`Grant::from_source`]), so that an engine can explain every decision without allocating
/// and without keeping a string per rule and role.
#[derive(Clone)]
pub struct Grant {
    repr: GrantRepr,
}

#[derive(Clone)]
enum GrantRepr {
    /// Boxed, so that a grant (and a [`Decision`]) stays small to move in the indexed case
    /// that engines on the hot path use.
    Owned(Box<OwnedGrant>),
    Indexed {
        source: Arc<dyn GrantSource>,
        rule: u32,
        path: u32,
    },
}

#[derive(Clone)]
struct OwnedGrant {
    role: Arc<str>,
    via: Arc<[Arc<str>]>,
    rule: Arc<str>,
}

/// A compiled policy that can describe its rules by index; see [`Grant::from_source`].
pub trait GrantSource: fmt::Debug + Send + Sync {
    /// The role that defines rule `rule`.
    fn grant_role(&self, rule: u32) -> &str;
    /// The text of rule `rule` (for example `collection:* read`).
    fn grant_rule(&self, rule: u32) -> &str;
    /// The roles of inheritance path number `path`, from the role the principal holds down
    /// to the child of the grant's role (see [`Grant::via`]). Built when an explanation is
    /// asked for, so that a compiled policy need not keep every path whole.
    fn grant_via(&self, path: u32) -> Vec<&str>;
}

impl Grant {
    /// A grant from `role`, reached through the roles in `via` (from the role the principal
    /// holds down to `role`'s child; empty when the principal holds `role` directly), by
    /// `rule` (a human-readable rendering such as `collection:* read`).
    #[must_use]
    pub fn new(role: Arc<str>, via: Arc<[Arc<str>]>, rule: Arc<str>) -> Self {
        Self {
            repr: GrantRepr::Owned(Box::new(OwnedGrant { role, via, rule })),
        }
    }

    /// A grant that refers to rule `rule` and path `path` of a compiled policy. Cloning it
    /// clones one `Arc`.
    #[must_use]
    pub fn from_source(source: Arc<dyn GrantSource>, rule: u32, path: u32) -> Self {
        Self {
            repr: GrantRepr::Indexed { source, rule, path },
        }
    }

    /// The role whose rule matched.
    #[must_use]
    pub fn role(&self) -> &str {
        match &self.repr {
            GrantRepr::Owned(owned) => &owned.role,
            GrantRepr::Indexed { source, rule, .. } => source.grant_role(*rule),
        }
    }

    /// The inheritance path from the role the principal holds to [`Grant::role`]: the role
    /// the principal holds first, down to `role`'s child; empty when the principal holds
    /// `role` itself.
    #[must_use]
    pub fn via(&self) -> Vec<&str> {
        match &self.repr {
            GrantRepr::Owned(owned) => owned.via.iter().map(|r| &**r).collect(),
            GrantRepr::Indexed { source, path, .. } => source.grant_via(*path),
        }
    }

    /// The matching rule.
    #[must_use]
    pub fn rule(&self) -> &str {
        match &self.repr {
            GrantRepr::Owned(owned) => &owned.rule,
            GrantRepr::Indexed { source, rule, .. } => source.grant_rule(*rule),
        }
    }
}

impl PartialEq for Grant {
    fn eq(&self, other: &Self) -> bool {
        self.role() == other.role() && self.via() == other.via() && self.rule() == other.rule()
    }
}

impl Eq for Grant {}

impl std::hash::Hash for Grant {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.role().hash(state);
        self.via().hash(state);
        self.rule().hash(state);
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("role", &self.role())
            .field("via", &self.via())
            .field("rule", &self.rule())
            .finish()
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "role `{}`", self.role())?;
        let via = self.via();
        if !via.is_empty() {
            f.write_str(" (inherited via ")?;
            for (i, role) in via.iter().enumerate() {
                if i > 0 {
                    f.write_str(" -> ")?;
                }
                write!(f, "`{role}`")?;
            }
            f.write_str(")")?;
        }
        write!(f, ", rule `{}`", self.rule())
    }
}

/// Why a [`Decision`] came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionReason {
    /// A rule allowed the request.
    Allowed(Grant),
    /// The principal is a superuser: every permission.
    Superuser,
    /// An explicit deny rule forbade the request; it overrides every allow.
    ExplicitDeny(Grant),
    /// No rule matched: denied by default.
    NoMatch,
    /// The request itself is not acceptable (unknown action, malformed resource name).
    InvalidRequest(Cow<'static, str>),
    /// The engine could not evaluate the request; an error is always a denial.
    EvaluationError(Cow<'static, str>),
}

/// The answer of a [`PolicyEngine`]: allow or deny, and why.
///
/// The effect is derived from the reason, so an allow without a rule, or an error that
/// allows, cannot be constructed.
///
/// ```
/// use portcullis_core::{Decision, DecisionReason, Effect};
///
/// let decision = Decision::no_match();
/// assert_eq!(decision.effect(), Effect::Deny);
/// assert!(!decision.is_allowed());
/// assert_eq!(decision.to_string(), "denied: no rule matched (deny by default)");
/// assert_eq!(Decision::error("policy not loaded").effect(), Effect::Deny);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    reason: DecisionReason,
}

impl Decision {
    /// Allowed by `grant`.
    pub fn allow(grant: Grant) -> Self {
        Self {
            reason: DecisionReason::Allowed(grant),
        }
    }

    /// Allowed because the principal is a superuser.
    pub fn superuser() -> Self {
        Self {
            reason: DecisionReason::Superuser,
        }
    }

    /// Denied by an explicit deny rule.
    pub fn explicit_deny(grant: Grant) -> Self {
        Self {
            reason: DecisionReason::ExplicitDeny(grant),
        }
    }

    /// Denied because nothing matched.
    pub fn no_match() -> Self {
        Self {
            reason: DecisionReason::NoMatch,
        }
    }

    /// Denied because the request is not acceptable.
    pub fn invalid_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: DecisionReason::InvalidRequest(reason.into()),
        }
    }

    /// Denied because evaluation failed.
    pub fn error(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: DecisionReason::EvaluationError(reason.into()),
        }
    }

    /// Allow or deny.
    #[must_use]
    pub fn effect(&self) -> Effect {
        match self.reason {
            DecisionReason::Allowed(_) | DecisionReason::Superuser => Effect::Allow,
            _ => Effect::Deny,
        }
    }

    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.effect() == Effect::Allow
    }

    /// Whether the request is refused.
    #[must_use]
    pub fn is_denied(&self) -> bool {
        !self.is_allowed()
    }

    /// Why.
    #[must_use]
    pub fn reason(&self) -> &DecisionReason {
        &self.reason
    }

    /// A short, stable code for the reason: `allowed`, `superuser`, `explicit_deny`,
    /// `no_match`, `invalid_request`, `evaluation_error`.
    #[must_use]
    pub fn reason_code(&self) -> &'static str {
        match self.reason {
            DecisionReason::Allowed(_) => "allowed",
            DecisionReason::Superuser => "superuser",
            DecisionReason::ExplicitDeny(_) => "explicit_deny",
            DecisionReason::NoMatch => "no_match",
            DecisionReason::InvalidRequest(_) => "invalid_request",
            DecisionReason::EvaluationError(_) => "evaluation_error",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            DecisionReason::Allowed(grant) => write!(f, "allowed by {grant}"),
            DecisionReason::Superuser => f.write_str("allowed: superuser"),
            DecisionReason::ExplicitDeny(grant) => write!(f, "denied by explicit deny in {grant}"),
            DecisionReason::NoMatch => f.write_str("denied: no rule matched (deny by default)"),
            DecisionReason::InvalidRequest(why) => write!(f, "denied: invalid request: {why}"),
            DecisionReason::EvaluationError(why) => write!(f, "denied: evaluation error: {why}"),
        }
    }
}

/// Decides whether a principal may perform an action on a resource.
///
/// Evaluation is synchronous and must not do I/O: load and compile policies ahead of time and
/// swap them atomically. Any failure is a [`Decision::error`], which denies.
///
/// ```
/// use portcullis_core::{AccessRequest, Decision, Grant, PolicyEngine};
/// use std::sync::Arc;
///
/// /// Lets holders of one role read everything (a real engine lives in `portcullis-rbac`).
/// #[derive(Debug)]
/// struct ReadersRead {
///     grant: Grant,
/// }
///
/// impl PolicyEngine for ReadersRead {
///     fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
///         if request.action() == "read" && request.principal().has_role(self.grant.role()) {
///             Decision::allow(self.grant.clone())
///         } else {
///             Decision::no_match()
///         }
///     }
/// }
///
/// let engine = ReadersRead { grant: Grant::new("reader".into(), Arc::new([]), "* read".into()) };
/// # let _ = engine;
/// ```
pub trait PolicyEngine: fmt::Debug + Send + Sync {
    /// Evaluates one request.
    fn evaluate(&self, request: &AccessRequest<'_>) -> Decision;

    /// Whether the principal holds `role` in this engine's sense: the role as assigned, plus
    /// whatever the engine assigns by itself (the RBAC engine gives its default role to a
    /// principal that holds none). Inheritance does not count: holding a role is a statement
    /// about the assignment, not about permissions. Role guards (`require_role`) ask this, so
    /// that a role means the same thing to a guard as to the engine's decisions.
    fn holds_role(&self, principal: &Principal, role: &str) -> bool {
        principal.has_role(role)
    }
}

impl<P: PolicyEngine + ?Sized> PolicyEngine for Arc<P> {
    fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        (**self).evaluate(request)
    }

    fn holds_role(&self, principal: &Principal, role: &str) -> bool {
        (**self).holds_role(principal, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant::new(
            "reader".into(),
            Arc::from(vec![Arc::<str>::from("admin"), Arc::<str>::from("user")]),
            "collection:* read".into(),
        )
    }

    #[test]
    fn effect_follows_reason() {
        assert!(Decision::allow(grant()).is_allowed());
        assert!(Decision::superuser().is_allowed());
        assert!(Decision::explicit_deny(grant()).is_denied());
        assert!(Decision::no_match().is_denied());
        assert!(Decision::invalid_request("x").is_denied());
        assert!(Decision::error("x").is_denied());
    }

    #[test]
    fn explanations_name_role_path_and_rule() {
        assert_eq!(
            Decision::allow(grant()).to_string(),
            "allowed by role `reader` (inherited via `admin` -> `user`), rule `collection:* read`"
        );
        assert_eq!(
            Decision::explicit_deny(grant()).reason_code(),
            "explicit_deny"
        );
        assert_eq!(Effect::Deny.as_str(), "deny");
    }
}
