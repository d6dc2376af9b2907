//! Data filtering: what a principal may access among the resources of one type, in a form a
//! caller can turn into a SQL `WHERE` clause instead of checking rows one by one.

use std::collections::BTreeSet;

use portcullis_core::{Principal, RequestContext};
use time::OffsetDateTime;

use crate::condition::Truth;
use crate::pattern::PatternKind;
use crate::policy::{Policy, Rule, ancestors};

/// A set of resource ids within one type (the part after `type:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scope {
    /// Every id.
    pub everything: bool,
    /// These ids exactly.
    pub ids: BTreeSet<String>,
    /// Ids of exactly one segment below each of these (`""` means every one-segment id).
    pub children_of: BTreeSet<String>,
    /// Ids of one or more segments below each of these.
    pub descendants_of: BTreeSet<String>,
}

impl Scope {
    /// Whether the scope contains nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.ids.is_empty()
            && self.children_of.is_empty()
            && self.descendants_of.is_empty()
    }

    /// Whether `id` is in the scope.
    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        if self.everything || self.ids.contains(id) {
            return true;
        }
        let below = |base: &str| -> Option<&str> {
            if base.is_empty() {
                Some(id)
            } else {
                id.strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix(':'))
            }
        };
        self.children_of
            .iter()
            .any(|b| below(b).is_some_and(|rest| !rest.is_empty() && !rest.contains(':')))
            || self
                .descendants_of
                .iter()
                .any(|b| below(b).is_some_and(|rest| !rest.is_empty()))
    }

    fn sql(
        &self,
        column: &str,
        params: &mut Vec<String>,
        placeholder: &dyn Fn(usize) -> String,
    ) -> String {
        if self.everything {
            return "TRUE".to_owned();
        }
        let mut parts = Vec::new();
        if !self.ids.is_empty() {
            let marks: Vec<String> = self
                .ids
                .iter()
                .map(|id| {
                    params.push(id.clone());
                    placeholder(params.len())
                })
                .collect();
            parts.push(format!("{column} IN ({})", marks.join(", ")));
        }
        for base in &self.children_of {
            if base.is_empty() {
                parts.push(format!("({column} <> '' AND {column} NOT LIKE '%:%')"));
            } else {
                params.push(format!("{}:%", escape_like(base)));
                let under = placeholder(params.len());
                params.push(format!("{}:%:%", escape_like(base)));
                let deeper = placeholder(params.len());
                parts.push(format!(
                    "({column} LIKE {under} ESCAPE '\\' AND {column} NOT LIKE {deeper} ESCAPE '\\')"
                ));
            }
        }
        for base in &self.descendants_of {
            params.push(format!("{}:_%", escape_like(base)));
            parts.push(format!(
                "{column} LIKE {} ESCAPE '\\'",
                placeholder(params.len())
            ));
        }
        match parts.as_slice() {
            [] => "FALSE".to_owned(),
            [one] if one.starts_with('(') => one.clone(),
            _ => format!("({})", parts.join(" OR ")),
        }
    }
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a principal may do among the resources of one type: the ids in `allowed` and not in
/// `denied`.
///
/// Conditions are evaluated against the context given to
/// [`RbacEngine::permitted`](crate::RbacEngine::permitted); an allow rule whose condition
/// cannot be decided there (a tenant condition without a resource tenant) is left out, and
/// such a deny rule is kept, so the filter never shows more than the engine would allow.
///
/// ```
/// use portcullis_core::{AuthMethod, Principal, PrincipalKind};
/// use portcullis_rbac::RbacEngine;
/// use time::OffsetDateTime;
///
/// let engine = RbacEngine::from_toml(r#"
///     builtins = "none"
///     [[roles]]
///     name = "analyst"
///     permissions = [
///       { resource = "collection:datasets", actions = ["read"] },
///       { resource = "collection:models", actions = ["write"] },
///     ]
/// "#)?;
/// let p = Principal::builder("p", PrincipalKind::User, AuthMethod::Jwt, OffsetDateTime::UNIX_EPOCH)
///     .role("analyst")
///     .build()?;
/// let filter = engine.permitted(&p, "read", "collection", None);
/// let (clause, params) = filter.to_sql("name", SqlPlaceholders::Numbered);
/// assert_eq!(clause, "(name IN ($1, $2))");
/// assert_eq!(params, ["datasets", "models"]);
/// # use portcullis_rbac::SqlPlaceholders;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Permitted {
    /// Ids some rule allows.
    pub allowed: Scope,
    /// Ids an explicit deny forbids.
    pub denied: Scope,
}

/// How to write SQL parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlPlaceholders {
    /// `?` (SQLite, MySQL).
    Question,
    /// `$1`, `$2`, … (PostgreSQL).
    Numbered,
}

impl Permitted {
    /// Whether nothing is permitted.
    #[must_use]
    pub fn is_nothing(&self) -> bool {
        self.allowed.is_empty() || self.denied.everything
    }

    /// Whether every id is permitted.
    #[must_use]
    pub fn is_everything(&self) -> bool {
        self.allowed.everything && self.denied.is_empty()
    }

    /// Whether one id is permitted.
    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        self.allowed.contains(id) && !self.denied.contains(id)
    }

    /// A SQL condition on `column` (which must be a trusted identifier: it is not escaped)
    /// and its parameters, in order. `LIKE` patterns are escaped with `\`.
    #[must_use]
    pub fn to_sql(&self, column: &str, style: SqlPlaceholders) -> (String, Vec<String>) {
        let placeholder = move |n: usize| match style {
            SqlPlaceholders::Question => "?".to_owned(),
            SqlPlaceholders::Numbered => format!("${n}"),
        };
        if self.is_nothing() {
            return ("FALSE".to_owned(), Vec::new());
        }
        let mut params = Vec::new();
        let allowed = self.allowed.sql(column, &mut params, &placeholder);
        if self.denied.is_empty() {
            return (allowed, params);
        }
        let denied = self.denied.sql(column, &mut params, &placeholder);
        (format!("({allowed} AND NOT {denied})"), params)
    }
}

fn add_rule(scope: &mut Scope, rule: &Rule, resource_type: &str) {
    let base = rule.pattern.base();
    let below_type = |b: &str| -> Option<String> {
        if b == resource_type {
            Some(String::new())
        } else {
            b.strip_prefix(resource_type)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_owned)
        }
    };
    match rule.pattern.kind() {
        PatternKind::Everything => scope.everything = true,
        PatternKind::Exact => {
            if let Some(id) = below_type(base).filter(|id| !id.is_empty()) {
                scope.ids.insert(id);
            }
        }
        PatternKind::Children => {
            if let Some(under) = below_type(base) {
                scope.children_of.insert(under);
            }
        }
        PatternKind::Descendants => {
            if let Some(under) = below_type(base) {
                if under.is_empty() {
                    scope.everything = true;
                } else {
                    scope.descendants_of.insert(under);
                }
            } else if resource_type
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with(':'))
            {
                // `a:**` covers every resource of type `a:b`.
                scope.everything = true;
            }
        }
    }
}

pub(crate) fn permitted(
    policy: &Policy,
    principal: &Principal,
    action: &str,
    resource_type: &str,
    context: Option<&RequestContext>,
    now: &dyn Fn() -> OffsetDateTime,
) -> Permitted {
    let mut out = Permitted::default();
    let Some(wanted) = policy.vocabulary.requested(action) else {
        return out;
    };
    let mut held: Vec<usize> = principal
        .roles()
        .iter()
        .filter_map(|name| policy.roles.iter().position(|r| &r.name == name))
        .collect();
    if principal.roles().is_empty()
        && let Some(default) = policy.default_role
    {
        held.push(default);
    }
    let superuser = held.iter().any(|r| {
        ancestors(&policy.roles, *r)
            .iter()
            .any(|a| policy.roles.get(a.role).is_some_and(|x| x.superuser))
    }) || policy
        .superuser_attribute
        .as_deref()
        .is_some_and(|name| principal.attribute(name) == Some(&serde_json::Value::Bool(true)));
    if superuser {
        out.allowed.everything = true;
    }
    for role in held {
        for ancestor in ancestors(&policy.roles, role) {
            let Some(a) = policy.roles.get(ancestor.role) else {
                continue;
            };
            for rule in &a.allow {
                if rule.actions.contains(wanted)
                    && rule
                        .condition
                        .as_ref()
                        .is_none_or(|c| c.evaluate(principal, context, now) == Truth::True)
                {
                    add_rule(&mut out.allowed, rule, resource_type);
                }
            }
            for rule in &a.deny {
                if rule.actions.contains(wanted)
                    && rule
                        .condition
                        .as_ref()
                        .is_none_or(|c| c.evaluate(principal, context, now) != Truth::False)
                {
                    add_rule(&mut out.denied, rule, resource_type);
                }
            }
        }
    }
    out
}
