//! The compiled, immutable snapshot of a policy: what it holds (this file), how it is built
//! (`build`), how it decides (`decide`) and what a decision comes to (`verdict`).
//!
//! Inheritance is flattened: every role's tables hold its own rules and those of all its
//! ancestors. Rules are indexed by what they match (an exact name, the children of a base
//! `a:*`, the descendants of a base `a:**`) in hash tables shared by all roles and keyed by
//! (role, name); `*` rules sit with their role. Every name a rule mentions is numbered once,
//! and an entry keeps the number and is confirmed by comparing the name. A small filter tells
//! which tables a name may appear in. A decision hashes the requested name and its parent
//! once each, then probes, per role the principal holds, only those tables: its cost depends
//! on the number of roles the principal holds and the depth of the name, not on the number of
//! rules or roles in the policy. Nothing is allocated and nothing is locked; the answer is a
//! `Verdict` that points into the snapshot, from which the engine builds the explained
//! [`Decision`](portcullis_core::Decision).

mod build;
mod decide;
mod verdict;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use hashbrown::HashTable;

use crate::action::{ActionSet, ActionVocabulary};
use crate::condition::Condition;
use crate::names::{BitsFilter, NameHasher, NameList, NameTable, ShortList};
use crate::policy::Policy;

/// One (role, name) of one table: the first matching rule, and any others in
/// `Snapshot::extra`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    role: u32,
    /// The name's number in `Snapshot::key_names`.
    key: u32,
    extra_start: u32,
    extra_len: u32,
    first: Hit,
}

/// A rule reached by a role: which rule, through which inheritance path, granting (or
/// denying) which actions. Within an entry, hits are in the role's order: own rules first,
/// then nearer ancestors.
#[derive(Debug, Clone, Copy)]
struct Hit {
    actions: u64,
    /// The rule's number in `Snapshot::rules`.
    rule: u32,
    /// The inheritance path's number in `Snapshot::paths`.
    path: u32,
}

/// One step of an inheritance path: the path is `prefix`'s roles, then `role`. Path number 0
/// is the empty path (a rule of a role the principal holds itself), so every role's
/// ancestors cost one node each instead of a copy of the whole path.
#[derive(Debug, Clone, Copy)]
struct PathNode {
    role: u32,
    prefix: u32,
}

/// The empty inheritance path.
const EMPTY_PATH: u32 = 0;

// What the loader's size estimate counts (see `validate::check_compiled_size`), in bytes,
// rounded up: a role (its record and name-table slot), a rule (its record and interned name),
// an inheritance path node, and a rule repeated in a descendant's index (an entry in a hash
// table that may be up to half empty).
pub(crate) const ROLE_BYTES: usize = 128;
pub(crate) const RULE_BYTES: usize = 64;
pub(crate) const PATH_BYTES: usize = size_of::<PathNode>();
pub(crate) const INHERITED_RULE_BYTES: usize = 80;

/// The three keyed tables of one mode (allow or deny).
#[derive(Debug, Default)]
struct Tables {
    exact: HashTable<Entry>,
    children: HashTable<Entry>,
    descendants: HashTable<Entry>,
}

/// Which tables an interned name appears in, as a set of bits (allow tables, then deny
/// tables).
type TableBits = u8;
const ALLOW_EXACT: TableBits = 1;
const ALLOW_CHILDREN: TableBits = 1 << 1;
const ALLOW_DESCENDANTS: TableBits = 1 << 2;
const DENY_EXACT: TableBits = 1 << 3;
const DENY_CHILDREN: TableBits = 1 << 4;
const DENY_DESCENDANTS: TableBits = 1 << 5;

/// What a role (with its ancestors) has, as a set of bits, so that a decision can skip what a
/// role cannot match without reading the role.
type RoleFlags = u32;
const HAS_ALLOW: RoleFlags = 1;
const HAS_DENY: RoleFlags = 1 << 1;
const SUPERUSER: RoleFlags = 1 << 2;
const ALLOW_DESCENDANT_RULES: RoleFlags = 1 << 3;
const DENY_DESCENDANT_RULES: RoleFlags = 1 << 4;
const ALLOW_EVERYTHING_RULES: RoleFlags = 1 << 5;
const DENY_EVERYTHING_RULES: RoleFlags = 1 << 6;

#[derive(Debug)]
struct CompiledRole {
    name: Arc<str>,
    allow_everything: Box<[Hit]>,
    deny_everything: Box<[Hit]>,
    flags: RoleFlags,
}

/// A role the principal holds: its number and flags.
#[derive(Debug, Clone, Copy, Default)]
struct HeldRole {
    index: u32,
    flags: RoleFlags,
}

#[derive(Debug, Clone, Copy)]
struct RuleInfo {
    role: u32,
    text_start: u32,
    text_len: u32,
    /// The rule's condition, by number in `Snapshot::conditions`.
    condition: Option<u32>,
}

/// An immutable compiled policy.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) policy: Arc<Policy>,
    /// Role names to role numbers, with the roles' flags.
    role_names: NameTable,
    roles: Vec<CompiledRole>,
    allow: Tables,
    deny: Tables,
    /// The interned names, by number (entries are confirmed against them).
    key_names: NameList,
    /// Which tables the interned names may appear in, by hash.
    key_filter: BitsFilter,
    hasher: NameHasher,
    /// Action names, in the vocabulary's order (their bit numbers).
    action_names: ShortList,
    extra: Vec<Hit>,
    /// The rules, unconditioned first: rule `n` has a condition if and only if
    /// `n >= first_conditional`.
    rules: Vec<RuleInfo>,
    first_conditional: u32,
    texts: String,
    conditions: Vec<Condition>,
    paths: Vec<PathNode>,
    default_role: Option<HeldRole>,
    superuser_attribute: Option<String>,
}

/// A policy too large to compile: more than its
/// [`Limits::max_compiled_bytes`](crate::Limits::max_compiled_bytes), or past the 32-bit
/// numbers of the indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the policy is too large to compile (over its compiled-size limit or 2^31 entries)")]
pub struct TooLarge;

fn u32_of(n: usize) -> Result<u32, TooLarge> {
    u32::try_from(n).map_err(|_| TooLarge)
}

/// The hash of a (name, role) pair, from the name's hash.
fn mix(name_hash: u64, role: u32) -> u64 {
    let folded = (name_hash ^ u64::from(role)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    folded ^ (folded >> 29)
}

impl Snapshot {
    pub(crate) fn vocabulary(&self) -> &ActionVocabulary {
        &self.policy.vocabulary
    }

    pub(crate) fn action_set(&self, action: &str) -> Option<ActionSet> {
        self.vocabulary().requested(action)
    }

    /// Heap size in bytes of the compiled indexes: every allocation the snapshot owns, not
    /// counting the source policy it keeps for explanations and reloads.
    pub(crate) fn heap_size(&self) -> usize {
        let extra = self.extra.capacity() * size_of::<Hit>();
        let tables = [&self.allow, &self.deny]
            .iter()
            .map(|t| {
                t.exact.allocation_size()
                    + t.children.allocation_size()
                    + t.descendants.allocation_size()
            })
            .sum::<usize>();
        let roles = self
            .roles
            .iter()
            .map(|r| {
                r.name.len()
                    + (r.allow_everything.len() + r.deny_everything.len()) * size_of::<Hit>()
            })
            .sum::<usize>();
        let paths = self.paths.capacity() * size_of::<PathNode>();
        tables
            + extra
            + roles
            + paths
            + self.conditions.capacity() * size_of::<Condition>()
            + self.key_names.heap_size()
            + self.key_filter.heap_size()
            + self.action_names.heap_size()
            + self.texts.capacity()
            + self.rules.capacity() * size_of::<RuleInfo>()
            + self.roles.capacity() * size_of::<CompiledRole>()
            + self.role_names.heap_size()
    }
}
