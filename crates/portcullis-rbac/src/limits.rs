//! [`Limits`]: how large a policy the loader accepts.

/// How large a policy the loader accepts. A policy over a limit is refused with a located
/// error before anything is compiled, so that no roles file can make the loader allocate
/// without bound (inheritance is flattened when compiling: every role's index holds the rules
/// of all its ancestors, which grows with the square of a deep or funnel-shaped hierarchy).
///
/// ```
/// use portcullis_rbac::{Limits, Policy};
///
/// let limits = Limits::default().max_inheritance_depth(4);
/// let chain = "[[roles]]\nname = \"r0\"\npermissions = [{ resource = \"*\", actions = [\"read\"] }]\n\
///              [[roles]]\nname = \"r1\"\ninherits = [\"r0\"]\n\
///              [[roles]]\nname = \"r2\"\ninherits = [\"r1\"]\n";
/// assert!(Policy::from_toml_with_limits(chain, &limits).is_ok());
/// let error = Policy::from_toml_with_limits(chain, &Limits::default().max_inheritance_depth(1))
///     .unwrap_err();
/// assert!(error.to_string().contains("inheritance chain"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    pub(crate) max_roles: usize,
    pub(crate) max_rules: usize,
    pub(crate) max_inheritance_depth: usize,
    pub(crate) max_compiled_bytes: usize,
}

/// Default for [`Limits::max_roles`].
pub const DEFAULT_MAX_ROLES: usize = 100_000;
/// Default for [`Limits::max_rules`].
pub const DEFAULT_MAX_RULES: usize = 2_000_000;
/// Default for [`Limits::max_inheritance_depth`].
pub const DEFAULT_MAX_INHERITANCE_DEPTH: usize = 32;
/// Default for [`Limits::max_compiled_bytes`] (256 MiB).
pub const DEFAULT_MAX_COMPILED_BYTES: usize = 256 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_roles: DEFAULT_MAX_ROLES,
            max_rules: DEFAULT_MAX_RULES,
            max_inheritance_depth: DEFAULT_MAX_INHERITANCE_DEPTH,
            max_compiled_bytes: DEFAULT_MAX_COMPILED_BYTES,
        }
    }
}

impl Limits {
    /// The most roles, built-in roles included (default [`DEFAULT_MAX_ROLES`]).
    #[must_use]
    pub fn max_roles(mut self, roles: usize) -> Self {
        self.max_roles = roles;
        self
    }

    /// The most rules, allow and deny, as written (default [`DEFAULT_MAX_RULES`]).
    #[must_use]
    pub fn max_rules(mut self, rules: usize) -> Self {
        self.max_rules = rules;
        self
    }

    /// The most roles in one inheritance chain, the role itself included: with 2, a role may
    /// inherit roles that inherit nothing (default [`DEFAULT_MAX_INHERITANCE_DEPTH`]).
    #[must_use]
    pub fn max_inheritance_depth(mut self, depth: usize) -> Self {
        self.max_inheritance_depth = depth;
        self
    }

    /// The largest compiled policy, in bytes of its indexes (default
    /// [`DEFAULT_MAX_COMPILED_BYTES`]). The loader estimates the size from the flattened
    /// inheritance before building anything, and the compiler checks the real size.
    #[must_use]
    pub fn max_compiled_bytes(mut self, bytes: usize) -> Self {
        self.max_compiled_bytes = bytes;
        self
    }

    /// The most roles.
    #[must_use]
    pub fn roles(&self) -> usize {
        self.max_roles
    }

    /// The most rules.
    #[must_use]
    pub fn rules(&self) -> usize {
        self.max_rules
    }

    /// The longest inheritance chain.
    #[must_use]
    pub fn inheritance_depth(&self) -> usize {
        self.max_inheritance_depth
    }

    /// The largest compiled size, in bytes.
    #[must_use]
    pub fn compiled_bytes(&self) -> usize {
        self.max_compiled_bytes
    }
}
