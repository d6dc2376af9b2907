#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod action;
mod compile;
mod condition;
mod engine;
mod filter;
mod limits;
mod model;
mod names;
mod pattern;
mod validate;

pub use action::{ActionSet, ActionVocabulary, ActionsDef, ActionsError, MAX_ACTIONS};
pub use compile::TooLarge;
pub use condition::{ConditionDef, ConditionError};
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
pub use validate::{
    IssueKind, MAX_POLICY_FILE_LEN, MAX_ROLE_NAME_LEN, Policy, PolicyError, Severity,
    ValidationIssue, ValidationReport,
};
