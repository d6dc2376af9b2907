//! Validation: every problem of a policy, with its place in the file, as errors and warnings
//! (in the style of cedar's `Validator`).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use portcullis_core::Location;

use crate::action::{ActionSet, ActionVocabulary};
use crate::condition::Condition;
use crate::diagnostics::{IssueKind, PolicyError, Severity, ValidationReport};
use crate::limits::Limits;
use crate::lints::lint_redundancy;
use crate::model::{PolicyDocument, RoleDef, RuleDef};
use crate::pattern::ResourcePattern;
use crate::policy::{AncestorWalker, MAX_ROLE_NAME_LEN, Policy, Role, Rule, valid_role_name};
use crate::source::{RuleSpans, SourceMap};

pub(crate) struct Validator<'a> {
    pub(crate) map: Option<&'a SourceMap>,
    pub(crate) report: ValidationReport,
}

impl Validator<'_> {
    pub(crate) fn at(&self, span: Option<&Range<usize>>) -> Option<Location> {
        self.map.and_then(|m| m.location(span))
    }

    pub(crate) fn error(
        &mut self,
        kind: IssueKind,
        location: Option<Location>,
        role: Option<&str>,
        msg: String,
    ) {
        self.report.push(Severity::Error, kind, location, role, msg);
    }

    pub(crate) fn warn(
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
pub(crate) enum Origin {
    Builtin,
    Document(usize),
}

pub(crate) fn validate(
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
    pub(crate) fn role_at(&self, defs: &[(&RoleDef, Origin)], role: usize) -> Option<Location> {
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
