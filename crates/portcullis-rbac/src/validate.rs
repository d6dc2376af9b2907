//! Loading and validation: every problem of a policy, with its place in the file, as errors
//! and warnings (in the style of cedar's `Validator`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use portcullis_core::Location;
use serde::Deserialize;
use toml::Spanned;

use crate::action::{ActionSet, ActionVocabulary, ActionsDef};
use crate::condition::{Condition, ConditionDef};
use crate::limits::Limits;
use crate::model::{Builtins, PolicyDocument, RoleDef, RuleDef};
use crate::pattern::ResourcePattern;

/// Longest role name, in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 128;

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
    /// The policy is larger than the loader's [`Limits`] allow.
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
    issues: Vec<ValidationIssue>,
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

    fn push(
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

// ---------------------------------------------------------------------------------------
// Source locations of a TOML file.

#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSpans {
    resource: Option<Range<usize>>,
    actions: Vec<Range<usize>>,
    when: Option<Range<usize>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RoleSpans {
    name: Option<Range<usize>>,
    permissions: Vec<RuleSpans>,
    deny: Vec<RuleSpans>,
    inherits: Vec<Range<usize>>,
}

/// Where each part of a document was in its file.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    line_starts: Vec<usize>,
    text: String,
    roles: Vec<RoleSpans>,
    default_role: Option<Range<usize>>,
    default_mode: Option<Range<usize>>,
    actions: Option<Range<usize>>,
}

impl SourceMap {
    fn location(&self, span: Option<&Range<usize>>) -> Option<Location> {
        let offset = span?.start;
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts.get(line.checked_sub(1)?).copied()?;
        let column = self.text.get(line_start..offset)?.chars().count() + 1;
        Some(Location::new(line, column))
    }

    fn role(&self, index: usize) -> Option<&RoleSpans> {
        self.roles.get(index)
    }

    fn rule(&self, role: usize, deny: bool, index: usize) -> Option<&RuleSpans> {
        let spans = self.role(role)?;
        if deny {
            spans.deny.get(index)
        } else {
            spans.permissions.get(index)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpannedDocument {
    #[serde(default)]
    builtins: Builtins,
    #[serde(default)]
    actions: Option<Spanned<ActionsDef>>,
    #[serde(default)]
    default_role: Option<Spanned<String>>,
    #[serde(default)]
    default_mode: Option<Spanned<String>>,
    #[serde(default)]
    superuser_attribute: Option<String>,
    #[serde(default)]
    roles: Vec<SpannedRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpannedRole {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<SpannedRule>,
    #[serde(default)]
    deny: Vec<SpannedRule>,
    #[serde(default)]
    inherits: Vec<Spanned<String>>,
    #[serde(default)]
    superuser: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpannedRule {
    resource: Spanned<String>,
    actions: Vec<Spanned<String>>,
    #[serde(default)]
    when: Option<Spanned<ConditionDef>>,
}

fn unspan_rule(rule: SpannedRule) -> (RuleDef, RuleSpans) {
    let spans = RuleSpans {
        resource: Some(rule.resource.span()),
        actions: rule.actions.iter().map(Spanned::span).collect(),
        when: rule.when.as_ref().map(Spanned::span),
    };
    let def = RuleDef {
        resource: rule.resource.into_inner(),
        actions: rule.actions.into_iter().map(Spanned::into_inner).collect(),
        when: rule.when.map(Spanned::into_inner),
    };
    (def, spans)
}

/// Largest roles file accepted, in bytes.
pub const MAX_POLICY_FILE_LEN: usize = 64 * 1024 * 1024;

pub(crate) fn parse_toml(text: &str) -> Result<(PolicyDocument, SourceMap), PolicyError> {
    let mut map = SourceMap {
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        text: text.to_owned(),
        ..SourceMap::default()
    };
    if text.len() > MAX_POLICY_FILE_LEN {
        let mut report = ValidationReport::default();
        report.push(
            Severity::Error,
            IssueKind::Syntax,
            None,
            None,
            format!("the roles file is larger than {MAX_POLICY_FILE_LEN} bytes"),
        );
        return Err(PolicyError { report });
    }
    let spanned: SpannedDocument = match toml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let mut report = ValidationReport::default();
            let location = map.location(e.span().as_ref());
            report.push(
                Severity::Error,
                IssueKind::Syntax,
                location,
                None,
                e.message().to_owned(),
            );
            return Err(PolicyError { report });
        }
    };
    map.default_role = spanned.default_role.as_ref().map(Spanned::span);
    map.default_mode = spanned.default_mode.as_ref().map(Spanned::span);
    map.actions = spanned.actions.as_ref().map(Spanned::span);
    let mut roles = Vec::with_capacity(spanned.roles.len());
    for role in spanned.roles {
        let mut spans = RoleSpans {
            name: Some(role.name.span()),
            inherits: role.inherits.iter().map(Spanned::span).collect(),
            ..RoleSpans::default()
        };
        let mut permissions = Vec::with_capacity(role.permissions.len());
        for rule in role.permissions {
            let (def, rule_spans) = unspan_rule(rule);
            permissions.push(def);
            spans.permissions.push(rule_spans);
        }
        let mut deny = Vec::with_capacity(role.deny.len());
        for rule in role.deny {
            let (def, rule_spans) = unspan_rule(rule);
            deny.push(def);
            spans.deny.push(rule_spans);
        }
        map.roles.push(spans);
        roles.push(RoleDef {
            name: role.name.into_inner(),
            description: role.description,
            permissions,
            deny,
            inherits: role.inherits.into_iter().map(Spanned::into_inner).collect(),
            superuser: role.superuser,
        });
    }
    let doc = PolicyDocument {
        builtins: spanned.builtins,
        actions: spanned.actions.map(Spanned::into_inner),
        default_role: spanned.default_role.map(Spanned::into_inner),
        default_mode: spanned.default_mode.map(Spanned::into_inner),
        superuser_attribute: spanned.superuser_attribute,
        roles,
    };
    Ok((doc, map))
}

// ---------------------------------------------------------------------------------------
// The validated policy.

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

struct Validator<'a> {
    map: Option<&'a SourceMap>,
    report: ValidationReport,
}

impl Validator<'_> {
    fn at(&self, span: Option<&Range<usize>>) -> Option<Location> {
        self.map.and_then(|m| m.location(span))
    }

    fn error(
        &mut self,
        kind: IssueKind,
        location: Option<Location>,
        role: Option<&str>,
        msg: String,
    ) {
        self.report.push(Severity::Error, kind, location, role, msg);
    }

    fn warn(
        &mut self,
        kind: IssueKind,
        location: Option<Location>,
        role: Option<&str>,
        msg: String,
    ) {
        self.report
            .push(Severity::Warning, kind, location, role, msg);
    }
}

/// Where a role came from: a built-in, or the document's role at this index.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Builtin,
    Document(usize),
}

fn validate(
    doc: &PolicyDocument,
    map: Option<&SourceMap>,
    limits: &Limits,
) -> Result<Policy, PolicyError> {
    let mut v = Validator {
        map,
        report: ValidationReport::default(),
    };

    // The vocabulary.
    let actions_def = doc
        .actions
        .clone()
        .unwrap_or_else(|| doc.builtins.default_actions());
    let vocabulary = match ActionVocabulary::new(&actions_def) {
        Ok(vocabulary) => vocabulary,
        Err(e) => {
            let at = v.at(map.and_then(|m| m.actions.as_ref()));
            v.error(IssueKind::InvalidActions, at, None, e.to_string());
            ActionVocabulary::amaters_levels()
        }
    };

    if let Some(mode) = &doc.default_mode
        && mode != "deny-by-default"
    {
        let at = v.at(map.and_then(|m| m.default_mode.as_ref()));
        v.error(
            IssueKind::UnsupportedMode,
            at,
            None,
            format!("default_mode `{mode}` is not supported; the only mode is `deny-by-default`"),
        );
    }

    // Names: built-ins first, then the document's roles (which may replace a built-in).
    let builtin_roles = doc.builtins.roles();
    let mut defs: Vec<(&RoleDef, Origin)> =
        builtin_roles.iter().map(|r| (r, Origin::Builtin)).collect();
    let mut index: HashMap<String, usize> = defs
        .iter()
        .enumerate()
        .map(|(i, (r, _))| (r.name.clone(), i))
        .collect();
    let mut from_document: HashSet<String> = HashSet::new();
    for (i, role) in doc.roles.iter().enumerate() {
        let at = v.at(map.and_then(|m| m.role(i)).and_then(|r| r.name.as_ref()));
        if !valid_role_name(&role.name) {
            v.error(
                IssueKind::InvalidRoleName,
                at,
                None,
                format!(
                    "`{}` is not a valid role name (ASCII letters, digits, `_`, `-`, `.`; at most {MAX_ROLE_NAME_LEN} bytes)",
                    role.name.escape_debug()
                ),
            );
            continue;
        }
        if !from_document.insert(role.name.clone()) {
            v.error(
                IssueKind::DuplicateRole,
                at,
                Some(&role.name),
                format!("role `{}` is defined more than once", role.name),
            );
            continue;
        }
        match index.get(&role.name) {
            Some(&existing) => {
                v.warn(
                    IssueKind::ReplacesBuiltin,
                    at,
                    Some(&role.name),
                    format!(
                        "role `{}` replaces the built-in role of that name",
                        role.name
                    ),
                );
                if let Some(slot) = defs.get_mut(existing) {
                    *slot = (role, Origin::Document(i));
                }
            }
            None => {
                index.insert(role.name.clone(), defs.len());
                defs.push((role, Origin::Document(i)));
            }
        }
    }

    if !check_sizes(&mut v, &defs, limits) {
        return Err(v.finish());
    }

    // Rules and parents.
    let mut roles: Vec<Role> = Vec::with_capacity(defs.len());
    for (def, origin) in &defs {
        let doc_index = match origin {
            Origin::Document(i) => Some(*i),
            Origin::Builtin => None,
        };
        let role_name = Some(def.name.as_str());
        let mut parents = Vec::new();
        for (k, parent) in def.inherits.iter().enumerate() {
            let at = v.at(doc_index
                .and_then(|i| map.and_then(|m| m.role(i)))
                .and_then(|r| r.inherits.get(k)));
            match index.get(parent) {
                Some(&p) if !parents.contains(&p) => parents.push(p),
                Some(_) => v.warn(
                    IssueKind::RedundantRule,
                    at,
                    role_name,
                    format!("`{parent}` is inherited twice"),
                ),
                None => v.error(
                    IssueKind::UnknownRole,
                    at,
                    role_name,
                    format!("inherits unknown role `{}`", parent.escape_debug()),
                ),
            }
        }
        let mut rules = [Vec::new(), Vec::new()];
        for (deny, list) in [(false, &def.permissions), (true, &def.deny)] {
            for (j, rule) in list.iter().enumerate() {
                let spans = doc_index.and_then(|i| map.and_then(|m| m.rule(i, deny, j)));
                if let Some(rule) = validate_rule(&mut v, &vocabulary, rule, spans, role_name)
                    && let Some(slot) = rules.get_mut(usize::from(deny))
                {
                    slot.push(rule);
                }
            }
        }
        let [allow, deny] = rules;
        roles.push(Role {
            name: def.name.clone(),
            description: def.description.clone(),
            allow,
            deny,
            parents,
            superuser: def.superuser,
        });
    }

    // Cycles.
    for cycle in find_cycles(&roles) {
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|i| roles.get(*i).map(|r| r.name.as_str()))
            .collect();
        let first = cycle.first().copied().unwrap_or_default();
        let at = match defs.get(first) {
            Some((_, Origin::Document(i))) => {
                v.at(map.and_then(|m| m.role(*i)).and_then(|r| r.name.as_ref()))
            }
            _ => None,
        };
        v.error(
            IssueKind::InheritanceCycle,
            at,
            names.first().copied(),
            format!("inheritance cycle: {}", names.join(" -> ")),
        );
    }

    let default_role = match &doc.default_role {
        None => None,
        Some(name) => {
            let found = index.get(name).copied();
            if found.is_none() {
                let at = v.at(map.and_then(|m| m.default_role.as_ref()));
                v.error(
                    IssueKind::UnknownRole,
                    at,
                    None,
                    format!("default_role `{}` is not a role", name.escape_debug()),
                );
            }
            found
        }
    };

    // The hierarchy's size, before anything walks it role by role.
    if v.report.is_ok() {
        check_depth(&mut v, &roles, &defs, limits);
    }
    if v.report.is_ok() {
        check_compiled_size(&mut v, &roles, &defs, limits);
    }
    if v.report.is_ok() {
        lint_redundancy(&mut v, &roles, &defs, &vocabulary);
    }

    if !v.report.is_ok() {
        return Err(v.finish());
    }
    let report = v.finish().report;
    Ok(Policy {
        vocabulary,
        roles,
        default_role,
        superuser_attribute: doc.superuser_attribute.clone(),
        report,
        limits: *limits,
    })
}

impl Validator<'_> {
    /// The report in file order: located issues by position, then the others in the order
    /// found.
    fn finish(mut self) -> PolicyError {
        self.report.issues.sort_by_key(|i| {
            i.location
                .map_or((usize::MAX, usize::MAX), |l| (l.line, l.column))
        });
        PolicyError {
            report: self.report,
        }
    }

    /// Where the name of role `role` (an index into `defs`) is, when it came from the file.
    fn role_at(&self, defs: &[(&RoleDef, Origin)], role: usize) -> Option<Location> {
        match defs.get(role) {
            Some((_, Origin::Document(i))) => self.at(self
                .map
                .and_then(|m| m.role(*i))
                .and_then(|r| r.name.as_ref())),
            _ => None,
        }
    }
}

/// The number of roles and of rules as written, against the limits; `false` (and an error)
/// when one is over.
fn check_sizes(v: &mut Validator<'_>, defs: &[(&RoleDef, Origin)], limits: &Limits) -> bool {
    if defs.len() > limits.max_roles {
        let at = v.role_at(defs, limits.max_roles);
        let name = defs.get(limits.max_roles).map(|(d, _)| d.name.as_str());
        v.error(
            IssueKind::LimitExceeded,
            at,
            name,
            format!(
                "the policy has {} roles; the limit is {} (`Limits::max_roles`)",
                defs.len(),
                limits.max_roles
            ),
        );
        return false;
    }
    let mut rules = 0usize;
    for (r, (def, _)) in defs.iter().enumerate() {
        rules = rules.saturating_add(def.permissions.len() + def.deny.len());
        if rules > limits.max_rules {
            let at = v.role_at(defs, r);
            v.error(
                IssueKind::LimitExceeded,
                at,
                Some(&def.name),
                format!(
                    "the policy has more than {} rules (`Limits::max_rules`)",
                    limits.max_rules
                ),
            );
            return false;
        }
    }
    true
}

/// Errors reported for one limit, at most (a hierarchy can break a limit in many places).
const MAX_LIMIT_ERRORS: usize = 16;

/// The longest inheritance chain of every role (the role itself counted), against the limit.
/// Runs only on an acyclic hierarchy. Reports the roles where a chain first gets too long.
fn check_depth(
    v: &mut Validator<'_>,
    roles: &[Role],
    defs: &[(&RoleDef, Origin)],
    limits: &Limits,
) {
    let depths = chain_lengths(roles);
    let too_long = |r: usize| {
        depths
            .get(r)
            .is_some_and(|d| *d > limits.max_inheritance_depth)
    };
    let mut reported = 0;
    for (r, role) in roles.iter().enumerate() {
        // Where a chain first crosses the limit: every parent is within it.
        if !too_long(r) || role.parents.iter().any(|p| too_long(*p)) {
            continue;
        }
        reported += 1;
        if reported > MAX_LIMIT_ERRORS {
            break;
        }
        let at = v.role_at(defs, r);
        v.error(
            IssueKind::LimitExceeded,
            at,
            Some(&role.name),
            format!(
                "the inheritance chain of `{}` is {} roles long; the limit is {} \
                 (`Limits::max_inheritance_depth`)",
                role.name,
                depths.get(r).copied().unwrap_or_default(),
                limits.max_inheritance_depth
            ),
        );
    }
}

/// For every role, the number of roles in its longest inheritance chain, itself included.
/// The hierarchy must be acyclic.
fn chain_lengths(roles: &[Role]) -> Vec<usize> {
    // Iterative depth-first search, so that a deep chain cannot overflow the stack.
    let mut lengths = vec![0usize; roles.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..roles.len() {
        if lengths.get(start).is_some_and(|l| *l != 0) {
            continue;
        }
        stack.push((start, 0));
        while let Some((node, next)) = stack.last_mut() {
            let parents = roles
                .get(*node)
                .map(|r| r.parents.as_slice())
                .unwrap_or_default();
            if let Some(&parent) = parents.get(*next) {
                *next += 1;
                if lengths.get(parent) == Some(&0) {
                    stack.push((parent, 0));
                }
            } else {
                let done = *node;
                let longest = parents
                    .iter()
                    .filter_map(|p| lengths.get(*p))
                    .max()
                    .copied()
                    .unwrap_or(0);
                if let Some(l) = lengths.get_mut(done) {
                    *l = longest + 1;
                }
                stack.pop();
            }
        }
    }
    lengths
}

/// Refuses, before anything is built, a hierarchy whose flattened form would be larger than
/// the limit. Stops counting as soon as the estimate crosses it, so the check itself is
/// bounded by the limit.
fn check_compiled_size(
    v: &mut Validator<'_>,
    roles: &[Role],
    defs: &[(&RoleDef, Origin)],
    limits: &Limits,
) {
    let mut walker = AncestorWalker::new(roles.len());
    let mut estimate = 0usize;
    for (r, role) in roles.iter().enumerate() {
        estimate = estimate.saturating_add(role_estimate(role));
        walker.walk(roles, r, |_, ancestor| {
            estimate = estimate.saturating_add(inherited_estimate(ancestor));
            estimate <= limits.max_compiled_bytes
        });
        if estimate > limits.max_compiled_bytes {
            let at = v.role_at(defs, r);
            v.error(
                IssueKind::LimitExceeded,
                at,
                Some(&role.name),
                format!(
                    "compiling the policy would take more than {} bytes once the rules \
                     inherited by `{}` are counted (`Limits::max_compiled_bytes`); \
                     inheritance is flattened, so a deep or wide hierarchy repeats every \
                     ancestor's rules in each descendant",
                    limits.max_compiled_bytes, role.name
                ),
            );
            return;
        }
    }
}

/// Estimated compiled bytes of a role itself: its name, its rules' texts and records.
fn role_estimate(role: &Role) -> usize {
    let rules = role.allow.iter().chain(&role.deny);
    role.name.len()
        + crate::compile::ROLE_BYTES
        + rules
            .map(|r| r.text.len() + crate::compile::RULE_BYTES)
            .sum::<usize>()
}

/// Estimated compiled bytes that holding `ancestor` (or the role itself) adds to a role: one
/// inheritance path node, and one index entry per rule.
fn inherited_estimate(ancestor: &Role) -> usize {
    crate::compile::PATH_BYTES
        + (ancestor.allow.len() + ancestor.deny.len()) * crate::compile::INHERITED_RULE_BYTES
}

fn validate_rule(
    v: &mut Validator<'_>,
    vocabulary: &ActionVocabulary,
    rule: &RuleDef,
    spans: Option<&RuleSpans>,
    role: Option<&str>,
) -> Option<Rule> {
    let mut ok = true;
    let pattern = match ResourcePattern::parse(&rule.resource) {
        Ok(p) => Some(p),
        Err(e) => {
            let at = v.at(spans.and_then(|s| s.resource.as_ref()));
            v.error(
                IssueKind::InvalidPattern,
                at,
                role,
                format!(
                    "`{}` is not a valid resource pattern: {e}",
                    rule.resource.escape_debug()
                ),
            );
            ok = false;
            None
        }
    };
    if rule.actions.is_empty() {
        let at = v.at(spans.and_then(|s| s.resource.as_ref()));
        v.error(
            IssueKind::NoActions,
            at,
            role,
            format!(
                "the rule on `{}` lists no action",
                rule.resource.escape_debug()
            ),
        );
        ok = false;
    }
    let granted = |name: &str| {
        if name == "*" {
            Some(vocabulary.all())
        } else {
            vocabulary.granted(name)
        }
    };
    let mut actions = ActionSet::EMPTY;
    for (k, name) in rule.actions.iter().enumerate() {
        match granted(name) {
            Some(set) => actions = actions.union(set),
            None => {
                let at = v.at(spans.and_then(|s| s.actions.get(k)));
                v.error(
                    IssueKind::UnknownAction,
                    at,
                    role,
                    format!(
                        "unknown action `{}` (declared: {})",
                        name.escape_debug(),
                        vocabulary.names().join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    if ok && rule.actions.len() > 1 {
        // An action that the others already include (reported once per distinct action).
        for (k, name) in rule.actions.iter().enumerate() {
            let Some(set) = granted(name) else { continue };
            let first = rule.actions.iter().position(|n| granted(n) == Some(set)) == Some(k);
            let others = rule
                .actions
                .iter()
                .enumerate()
                .filter(|(m, _)| *m != k)
                .filter_map(|(_, n)| granted(n))
                .fold(ActionSet::EMPTY, ActionSet::union);
            if first && others.contains(set) {
                let at = v.at(spans.and_then(|s| s.actions.get(k)));
                v.warn(
                    IssueKind::RedundantAction,
                    at,
                    role,
                    format!("`{name}` is already included by the other actions of this rule"),
                );
            }
        }
    }
    let condition = match &rule.when {
        None => None,
        Some(def) => match Condition::compile(def) {
            Ok(c) => Some(c),
            Err(e) => {
                let at = v.at(spans.and_then(|s| s.when.as_ref()));
                v.error(IssueKind::InvalidCondition, at, role, e.to_string());
                ok = false;
                None
            }
        },
    };
    let pattern = pattern?;
    if !ok {
        return None;
    }
    let text = format!("{} {}", rule.resource, rule.actions.join(","));
    Some(Rule {
        pattern,
        actions,
        condition,
        text,
    })
}

/// The cycles in the inheritance graph (at most [`MAX_LIMIT_ERRORS`]), each reported once,
/// as a path that returns to its start.
fn find_cycles(roles: &[Role]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; roles.len()];
    let mut cycles = Vec::new();
    for start in 0..roles.len() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        // Iterative DFS: (node, next parent index to visit); `path` mirrors the stack.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        let mut path: Vec<usize> = vec![start];
        if let Some(m) = marks.get_mut(start) {
            *m = Mark::Active;
        }
        while let Some((node, next)) = stack.last_mut() {
            let parents = roles
                .get(*node)
                .map(|r| r.parents.as_slice())
                .unwrap_or_default();
            if let Some(&parent) = parents.get(*next) {
                *next += 1;
                match marks.get(parent).copied() {
                    Some(Mark::New) => {
                        if let Some(m) = marks.get_mut(parent) {
                            *m = Mark::Active;
                        }
                        stack.push((parent, 0));
                        path.push(parent);
                    }
                    Some(Mark::Active) if cycles.len() < MAX_LIMIT_ERRORS => {
                        if let Some(pos) = path.iter().position(|p| *p == parent) {
                            let mut cycle: Vec<usize> =
                                path.get(pos..).unwrap_or_default().to_vec();
                            cycle.push(parent);
                            cycles.push(cycle);
                        }
                    }
                    _ => {}
                }
            } else {
                let done = *node;
                if let Some(m) = marks.get_mut(done) {
                    *m = Mark::Done;
                }
                stack.pop();
                path.pop();
            }
        }
    }
    cycles
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

type LintMap<'a, V> = HashMap<&'a str, V, foldhash::fast::FixedState>;

/// Warns about allow rules that another unconditioned allow rule of the same role (own or
/// inherited) already covers, and roles that grant nothing.
fn lint_redundancy(
    v: &mut Validator<'_>,
    roles: &[Role],
    defs: &[(&RoleDef, Origin)],
    vocabulary: &ActionVocabulary,
) {
    let _ = vocabulary;
    type Covers = Vec<(ActionSet, usize, usize)>;
    let mut everything;
    let mut exact: LintMap<'_, Covers> = LintMap::default();
    let mut children: LintMap<'_, Covers> = LintMap::default();
    let mut descendants: LintMap<'_, Covers> = LintMap::default();
    let mut walker = AncestorWalker::new(roles.len());
    for (r, role) in roles.iter().enumerate() {
        let Some((_, Origin::Document(doc_index))) = defs.get(r) else {
            continue;
        };
        let chain = walker.walk(roles, r, |_, _| true);
        if role.allow.is_empty() && role.parents.is_empty() && !role.superuser {
            let at = v.at(v
                .map
                .and_then(|m| m.role(*doc_index))
                .and_then(|s| s.name.as_ref()));
            v.warn(
                IssueKind::EmptyRole,
                at,
                Some(&role.name),
                "the role grants nothing".to_owned(),
            );
        }
        // Index the unconditioned allow rules of the role and its ancestors by base (the maps
        // are reused from role to role).
        everything = ActionSet::EMPTY;
        exact.clear();
        children.clear();
        descendants.clear();
        for ancestor in chain {
            let holder = &ancestor.role;
            let Some(h) = roles.get(*holder) else {
                continue;
            };
            for (j, rule) in h.allow.iter().enumerate() {
                if rule.condition.is_some() {
                    continue;
                }
                let entry = (rule.actions, *holder, j);
                use crate::pattern::PatternKind as K;
                match rule.pattern.kind() {
                    K::Everything => everything = everything.union(rule.actions),
                    K::Exact => exact.entry(rule.pattern.base()).or_default().push(entry),
                    K::Children => children.entry(rule.pattern.base()).or_default().push(entry),
                    K::Descendants => descendants
                        .entry(rule.pattern.base())
                        .or_default()
                        .push(entry),
                }
            }
        }
        for (j, rule) in role.allow.iter().enumerate() {
            // Another rule covers this one; of two identical rules of the role, only the
            // later one is reported.
            let is_other = |e: &&(ActionSet, usize, usize)| {
                if e.1 != r {
                    return true;
                }
                if e.2 == j {
                    return false;
                }
                !(e.2 > j
                    && role
                        .allow
                        .get(e.2)
                        .is_some_and(|o| o.pattern == rule.pattern && o.actions == rule.actions))
            };
            let covers = |list: Option<&Vec<(ActionSet, usize, usize)>>, need: ActionSet| {
                list.is_some_and(|l| l.iter().filter(is_other).any(|e| e.0.contains(need)))
            };
            let need = rule.actions;
            let base = rule.pattern.base();
            use crate::pattern::PatternKind as K;
            let mut covered = everything.contains(need) && rule.pattern.kind() != K::Everything;
            if !covered {
                // Candidate covering patterns: same base of a wider-or-equal kind, or an
                // ancestor base with `**`, or the parent base with `*` for an exact rule.
                covered = match rule.pattern.kind() {
                    K::Everything => false,
                    K::Exact => {
                        covers(exact.get(base), need)
                            || base
                                .rsplit_once(':')
                                .is_some_and(|(parent, _)| covers(children.get(parent), need))
                    }
                    K::Children => {
                        covers(children.get(base), need) || covers(descendants.get(base), need)
                    }
                    K::Descendants => covers(descendants.get(base), need),
                };
                if !covered && rule.pattern.kind() != K::Everything {
                    // Any `**` on a proper ancestor of the base.
                    let mut rest = base;
                    while let Some((parent, _)) = rest.rsplit_once(':') {
                        if covers(descendants.get(parent), need) {
                            covered = true;
                            break;
                        }
                        rest = parent;
                    }
                }
            }
            if covered {
                let at = v.at(v
                    .map
                    .and_then(|m| m.rule(*doc_index, false, j))
                    .and_then(|s| s.resource.as_ref()));
                v.warn(
                    IssueKind::RedundantRule,
                    at,
                    Some(&role.name),
                    format!(
                        "the rule `{}` grants nothing that other rules of the role (or its parents) do not already grant",
                        rule.text
                    ),
                );
            }
        }
    }
}
