//! [`Policy`]: a roles file or document that passed validation, and the walk over a role's
//! ancestors that validation, compilation and filters share.

use crate::action::{ActionSet, ActionVocabulary};
use crate::condition::Condition;
use crate::diagnostics::{IssueKind, PolicyError, Severity, ValidationReport};
use crate::limits::Limits;
use crate::model::{Builtins, PolicyDocument};
use crate::pattern::ResourcePattern;
use crate::source::parse_toml;
use crate::validate::validate;

/// Longest role name, in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 128;

/// A validated rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) pattern: ResourcePattern,
    /// The granted (or denied) actions, closed under implication.
    pub(crate) actions: ActionSet,
    pub(crate) condition: Option<Condition>,
    /// `pattern actions…` as written, for explanations.
    pub(crate) text: String,
}

/// A validated role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) allow: Vec<Rule>,
    pub(crate) deny: Vec<Rule>,
    /// Indexes of the parent roles.
    pub(crate) parents: Vec<usize>,
    pub(crate) superuser: bool,
}

/// A policy that passed validation: roles resolved, patterns parsed, actions compiled,
/// inheritance acyclic. Compile it into an engine with
/// [`RbacEngine::new`](crate::RbacEngine::new).
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) vocabulary: ActionVocabulary,
    pub(crate) roles: Vec<Role>,
    pub(crate) default_role: Option<usize>,
    pub(crate) superuser_attribute: Option<String>,
    pub(crate) report: ValidationReport,
    /// The limits it was loaded under (reloads use them too).
    pub(crate) limits: Limits,
}

impl Policy {
    /// Loads an AmateRS-style `roles.toml` (with the additions described on
    /// [`PolicyDocument`]) under the default [`Limits`].
    ///
    /// # Errors
    /// A [`PolicyError`] listing every problem with its line and column.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        Self::from_toml_with_limits(text, &Limits::default())
    }

    /// [`Policy::from_toml`] under other limits.
    ///
    /// # Errors
    /// A [`PolicyError`] listing every problem with its line and column; a policy over a
    /// limit is refused with an [`IssueKind::LimitExceeded`] error.
    pub fn from_toml_with_limits(text: &str, limits: &Limits) -> Result<Self, PolicyError> {
        let (doc, map) = parse_toml(text)?;
        validate(&doc, Some(&map), limits)
    }

    /// Validates a policy built in code or read from a database, under the default
    /// [`Limits`].
    ///
    /// # Errors
    /// A [`PolicyError`] listing every problem.
    pub fn from_document(doc: &PolicyDocument) -> Result<Self, PolicyError> {
        Self::from_document_with_limits(doc, &Limits::default())
    }

    /// [`Policy::from_document`] under other limits.
    ///
    /// # Errors
    /// A [`PolicyError`] listing every problem.
    pub fn from_document_with_limits(
        doc: &PolicyDocument,
        limits: &Limits,
    ) -> Result<Self, PolicyError> {
        validate(doc, None, limits)
    }

    /// The limits this policy was loaded under.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The same policy with `role` as the role of principals that hold none (what the
    /// AmateRS server's `[authz] default_role` sets over the roles file's).
    ///
    /// # Errors
    /// When the policy has no role of that name.
    pub fn with_default_role(mut self, role: &str) -> Result<Self, PolicyError> {
        match self.roles.iter().position(|r| r.name == role) {
            Some(index) => {
                self.default_role = Some(index);
                Ok(self)
            }
            None => {
                let mut report = ValidationReport::default();
                report.push(
                    Severity::Error,
                    IssueKind::UnknownRole,
                    None,
                    None,
                    format!("default_role `{}` is not a role", role.escape_debug()),
                );
                Err(PolicyError { report })
            }
        }
    }

    /// The role of principals that hold none, if any.
    #[must_use]
    pub fn default_role(&self) -> Option<&str> {
        self.default_role
            .and_then(|i| self.roles.get(i))
            .map(|r| r.name.as_str())
    }

    /// Only the AmateRS built-in roles.
    #[must_use]
    pub fn amaters() -> Self {
        Self::builtin(Builtins::Amaters)
    }

    /// Only the Aethera built-in roles.
    #[must_use]
    pub fn aethera() -> Self {
        Self::builtin(Builtins::Aethera)
    }

    /// A policy with no role: denies everything.
    #[must_use]
    pub fn deny_all() -> Self {
        Self::builtin(Builtins::None)
    }

    fn builtin(builtins: Builtins) -> Self {
        let doc = PolicyDocument {
            builtins,
            ..PolicyDocument::default()
        };
        // The built-in sets are valid by construction; should that ever break, deny all.
        validate(&doc, None, &Limits::default()).unwrap_or_else(|_| Self {
            vocabulary: ActionVocabulary::amaters_levels(),
            roles: Vec::new(),
            default_role: None,
            superuser_attribute: None,
            report: ValidationReport::default(),
            limits: Limits::default(),
        })
    }

    /// The warnings found while validating.
    #[must_use]
    pub fn report(&self) -> &ValidationReport {
        &self.report
    }

    /// The action vocabulary.
    #[must_use]
    pub fn vocabulary(&self) -> &ActionVocabulary {
        &self.vocabulary
    }

    /// The role names, built-ins first.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name.as_str())
    }

    /// A role's description.
    #[must_use]
    pub fn description(&self, role: &str) -> Option<&str> {
        self.roles
            .iter()
            .find(|r| r.name == role)
            .map(|r| r.description.as_str())
    }
}

pub(crate) fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROLE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A role among the ancestors of another (see [`AncestorWalker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ancestor {
    /// The role.
    pub(crate) role: usize,
    /// Through which earlier entry of the walk it was reached (its child on the path from
    /// the role whose ancestors these are); `None` for that role itself.
    pub(crate) via: Option<usize>,
}

/// Walks the ancestors of roles breadth-first (the role itself first, then nearer ancestors
/// before farther ones), each once, reusing its buffers from role to role.
#[derive(Debug)]
pub(crate) struct AncestorWalker {
    /// The walk in progress (or last finished).
    found: Vec<Ancestor>,
    /// `seen[r] == stamp` when role `r` is in the current walk.
    seen: Vec<u32>,
    stamp: u32,
}

impl AncestorWalker {
    pub(crate) fn new(roles: usize) -> Self {
        Self {
            found: Vec::new(),
            seen: vec![0; roles],
            stamp: 0,
        }
    }

    /// Calls `visit(index in the walk, role)` for `role` and each of its ancestors, nearest
    /// first, until it returns `false`. Returns the walk.
    pub(crate) fn walk(
        &mut self,
        roles: &[Role],
        role: usize,
        mut visit: impl FnMut(usize, &Role) -> bool,
    ) -> &[Ancestor] {
        self.found.clear();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // The stamps wrapped around: forget every earlier walk.
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        let stamp = self.stamp;
        if let Some(s) = self.seen.get_mut(role) {
            *s = stamp;
        }
        self.found.push(Ancestor { role, via: None });
        let mut next = 0;
        while let Some(current) = self.found.get(next).copied() {
            let Some(r) = roles.get(current.role) else {
                break;
            };
            if !visit(next, r) {
                break;
            }
            for &parent in &r.parents {
                if let Some(s) = self.seen.get_mut(parent)
                    && *s != stamp
                {
                    *s = stamp;
                    self.found.push(Ancestor {
                        role: parent,
                        via: Some(next),
                    });
                }
            }
            next += 1;
        }
        &self.found
    }
}

/// The role and its ancestors, nearest first, each once.
pub(crate) fn ancestors(roles: &[Role], role: usize) -> Vec<Ancestor> {
    AncestorWalker::new(roles.len())
        .walk(roles, role, |_, _| true)
        .to_vec()
}
