#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod compile;
mod condition;
mod diagnostics;
mod engine;
mod filter;
mod limits;
mod lints;
mod model;
mod names;
mod pattern;
mod policy;
mod source;
mod validate;

pub use action::{ActionSet, ActionVocabulary, ActionsDef, ActionsError, MAX_ACTIONS};
pub use compile::TooLarge;
pub use condition::{ConditionDef, ConditionError};
pub use diagnostics::{IssueKind, PolicyError, Severity, ValidationIssue, ValidationReport};
pub use engine::{RbacEngine, RbacError};
pub use filter::{Permitted, Scope, SqlPlaceholders};
pub use limits::{
    DEFAULT_MAX_COMPILED_BYTES, DEFAULT_MAX_INHERITANCE_DEPTH, DEFAULT_MAX_ROLES,
    DEFAULT_MAX_RULES, Limits,
};
pub use model::{AETHERA_PERMISSIONS, Builtins, PolicyDocument, RoleDef, RuleDef};
pub use pattern::{
    MAX_RESOURCE_LEN, MAX_SEGMENTS, PatternError, PatternKind, ResourceError, ResourcePattern,
    check_resource,
};
pub use policy::{MAX_ROLE_NAME_LEN, Policy};
pub use source::MAX_POLICY_FILE_LEN;
