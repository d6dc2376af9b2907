//! What validation finds: [`ValidationIssue`]s with their [`Severity`], [`IssueKind`] and
//! place in the file, gathered in a [`ValidationReport`]; [`PolicyError`] when a policy cannot
//! be loaded.

use std::fmt;

use portcullis_core::Location;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The policy cannot be used.
    Error,
    /// The policy works, but probably not as intended.
    Warning,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueKind {
    /// The file is not valid TOML or does not have the expected shape.
    Syntax,
    /// A role name is invalid.
    InvalidRoleName,
    /// Two roles with the same name.
    DuplicateRole,
    /// A file role replaces a built-in role.
    ReplacesBuiltin,
    /// `inherits`, `default_role` or `superuser_roles` names no role.
    UnknownRole,
    /// Roles inherit from each other in a cycle.
    InheritanceCycle,
    /// A resource pattern is invalid.
    InvalidPattern,
    /// An action is not in the vocabulary.
    UnknownAction,
    /// A rule lists no action.
    NoActions,
    /// The action vocabulary is invalid.
    InvalidActions,
    /// A condition is invalid.
    InvalidCondition,
    /// `default_mode` is not `deny-by-default`.
    UnsupportedMode,
    /// A rule grants nothing that another rule of the role (own or inherited) does not
    /// already grant.
    RedundantRule,
    /// An action in a rule is implied by another action of the same rule.
    RedundantAction,
    /// A role grants nothing.
    EmptyRole,
    /// The policy is larger than the loader's [`Limits`](crate::Limits) allow.
    LimitExceeded,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationIssue {
    /// Error or warning.
    pub severity: Severity,
    /// What kind.
    pub kind: IssueKind,
    /// Where in the file, when the policy came from a file.
    pub location: Option<Location>,
    /// The role concerned, if any.
    pub role: Option<String>,
    /// A sentence for people.
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}")?;
        if let Some(location) = self.location {
            write!(f, " at {location}")?;
        }
        if let Some(role) = &self.role {
            write!(f, " in role `{role}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub(crate) issues: Vec<ValidationIssue>,
}

impl ValidationReport {
    /// All problems, in file order where known.
    #[must_use]
    pub fn issues(&self) -> &[ValidationIssue] {
        &self.issues
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues.iter().filter(|i| i.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &ValidationIssue> {
        self.issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
    }

    /// Whether there is no error (warnings allowed).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        kind: IssueKind,
        location: Option<Location>,
        role: Option<&str>,
        message: String,
    ) {
        self.issues.push(ValidationIssue {
            severity,
            kind,
            location,
            role: role.map(str::to_owned),
            message,
        });
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// A policy could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy:\n{report}")]
#[non_exhaustive]
pub struct PolicyError {
    /// Everything that is wrong (and the warnings).
    pub report: ValidationReport,
}
