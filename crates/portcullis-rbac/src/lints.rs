//! Warnings for policies that work but probably not as intended: allow rules another rule
//! already covers, roles that grant nothing.

use std::collections::HashMap;

use crate::action::{ActionSet, ActionVocabulary};
use crate::diagnostics::IssueKind;
use crate::model::RoleDef;
use crate::policy::{AncestorWalker, Role};
use crate::validate::{Origin, Validator};

type LintMap<'a, V> = HashMap<&'a str, V, foldhash::fast::FixedState>;

/// Warns about allow rules that another unconditioned allow rule of the same role (own or
/// inherited) already covers, and roles that grant nothing.
pub(crate) fn lint_redundancy(
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
