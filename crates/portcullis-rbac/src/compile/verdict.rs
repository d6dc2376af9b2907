//! [`Verdict`]: what a decision came to, pointing into the snapshot, and the explained
//! [`Decision`] built from it.

use std::sync::Arc;

use portcullis_core::{Decision, Grant, GrantSource};

use super::{EMPTY_PATH, Hit, Snapshot};
use crate::pattern::ResourceError;

/// What a decision came to: the kind, and for a grant the matching rule and inheritance path
/// (numbers into the snapshot, so that the explained [`Decision`] is built without
/// allocating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Verdict {
    /// An allow rule matched.
    Allow(Found),
    /// An explicit deny rule matched.
    ExplicitDeny(Found),
    /// The principal is a superuser.
    Superuser,
    /// Nothing matched: denied by default. Also what a verdict is when nothing set it.
    #[default]
    NoMatch,
    /// The action is not in the vocabulary.
    UnknownAction,
    /// The requested resource name is not acceptable.
    InvalidResource(ResourceError),
}

/// The rule that decided, and the inheritance path through which the principal holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(super) rule: u32,
    pub(super) path: u32,
}

impl Found {
    pub(super) fn of(hit: &Hit) -> Self {
        Self {
            rule: hit.rule,
            path: hit.path,
        }
    }

    /// The grant, explained by the snapshot that found it.
    fn grant(self, source: Arc<Snapshot>) -> Grant {
        let source: Arc<dyn GrantSource> = source;
        Grant::from_source(source, self.rule, self.path)
    }
}

impl Verdict {
    /// Whether [`Verdict::into_decision`] needs the snapshot (to explain a grant).
    pub(crate) fn needs_source(self) -> bool {
        matches!(self, Self::Allow(_) | Self::ExplicitDeny(_))
    }

    /// The explained decision; `source` is the snapshot that decided. A grant without its
    /// snapshot cannot be explained and denies with an evaluation error.
    pub(crate) fn into_decision(self, source: Option<Arc<Snapshot>>) -> Decision {
        match (self, source) {
            (Self::NoMatch, _) => Decision::no_match(),
            (Self::Allow(found), Some(source)) => Decision::allow(found.grant(source)),
            (Self::ExplicitDeny(found), Some(source)) => {
                Decision::explicit_deny(found.grant(source))
            }
            (Self::Superuser, _) => Decision::superuser(),
            (Self::UnknownAction, _) => Decision::invalid_request("unknown action"),
            (Self::InvalidResource(error), _) => Decision::invalid_request(error.as_str()),
            (Self::Allow(_) | Self::ExplicitDeny(_), None) => {
                Decision::error("no snapshot to explain the decision")
            }
        }
    }
}

impl GrantSource for Snapshot {
    fn grant_role(&self, rule: u32) -> &str {
        self.rules
            .get(rule as usize)
            .and_then(|info| self.roles.get(info.role as usize))
            .map_or("", |r| &r.name)
    }

    fn grant_rule(&self, rule: u32) -> &str {
        self.rules
            .get(rule as usize)
            .and_then(|info| {
                let start = info.text_start as usize;
                self.texts.get(start..start + info.text_len as usize)
            })
            .unwrap_or_default()
    }

    fn grant_via(&self, path: u32) -> Vec<&str> {
        // The nodes run from the last role of the path back to its first.
        let mut via = Vec::new();
        let mut at = path;
        while at != EMPTY_PATH {
            let Some(node) = self.paths.get(at as usize) else {
                break;
            };
            // A prefix is always an earlier node, so the walk ends.
            if node.prefix >= at {
                break;
            }
            via.push(self.roles.get(node.role as usize).map_or("", |r| &*r.name));
            at = node.prefix;
        }
        via.reverse();
        via
    }
}
