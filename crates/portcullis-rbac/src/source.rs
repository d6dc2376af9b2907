//! The roles file as TOML: parsed with the span of every role, rule, action and condition,
//! so that each problem is reported with its line and column.

use std::ops::Range;

use portcullis_core::Location;
use serde::Deserialize;
use toml::Spanned;

use crate::action::ActionsDef;
use crate::condition::ConditionDef;
use crate::diagnostics::{IssueKind, PolicyError, Severity, ValidationReport};
use crate::model::{Builtins, PolicyDocument, RoleDef, RuleDef};

#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSpans {
    pub(crate) resource: Option<Range<usize>>,
    pub(crate) actions: Vec<Range<usize>>,
    pub(crate) when: Option<Range<usize>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RoleSpans {
    pub(crate) name: Option<Range<usize>>,
    pub(crate) permissions: Vec<RuleSpans>,
    pub(crate) deny: Vec<RuleSpans>,
    pub(crate) inherits: Vec<Range<usize>>,
}

/// Where each part of a document was in its file.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    pub(crate) line_starts: Vec<usize>,
    pub(crate) text: String,
    pub(crate) roles: Vec<RoleSpans>,
    pub(crate) default_role: Option<Range<usize>>,
    pub(crate) default_mode: Option<Range<usize>>,
    pub(crate) actions: Option<Range<usize>>,
}

impl SourceMap {
    pub(crate) fn location(&self, span: Option<&Range<usize>>) -> Option<Location> {
        let offset = span?.start;
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let line_start = self.line_starts.get(line.checked_sub(1)?).copied()?;
        let column = self.text.get(line_start..offset)?.chars().count() + 1;
        Some(Location::new(line, column))
    }

    pub(crate) fn role(&self, index: usize) -> Option<&RoleSpans> {
        self.roles.get(index)
    }

    pub(crate) fn rule(&self, role: usize, deny: bool, index: usize) -> Option<&RuleSpans> {
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
    builtins: Option<Builtins>,
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

/// A document-wide error (no place in the file).
fn refused(message: String) -> PolicyError {
    let mut report = ValidationReport::default();
    report.push(Severity::Error, IssueKind::Syntax, None, None, message);
    PolicyError { report }
}

pub(crate) fn parse_toml(text: &str) -> Result<(PolicyDocument, SourceMap), PolicyError> {
    if text.len() > MAX_POLICY_FILE_LEN {
        return Err(refused(format!(
            "the roles file is larger than {MAX_POLICY_FILE_LEN} bytes"
        )));
    }
    let mut map = SourceMap {
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        text: text.to_owned(),
        ..SourceMap::default()
    };
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
    // An empty (or comments-only) file is far more often a truncated deploy than a wish for
    // the built-in roles alone, which `builtins = "amaters"` says explicitly.
    if spanned.builtins.is_none()
        && spanned.actions.is_none()
        && spanned.default_role.is_none()
        && spanned.default_mode.is_none()
        && spanned.superuser_attribute.is_none()
        && spanned.roles.is_empty()
    {
        return Err(refused(
            "the roles file is empty: it names no role and no setting (write `builtins = \"amaters\"` to use the built-in roles alone)".into(),
        ));
    }
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
        builtins: spanned.builtins.unwrap_or_default(),
        actions: spanned.actions.map(Spanned::into_inner),
        default_role: spanned.default_role.map(Spanned::into_inner),
        default_mode: spanned.default_mode.map(Spanned::into_inner),
        superuser_attribute: spanned.superuser_attribute,
        roles,
    };
    Ok((doc, map))
}
