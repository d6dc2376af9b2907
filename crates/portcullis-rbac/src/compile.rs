//! The compiled, immutable snapshot of a policy and the decision procedure.
//!
//! Inheritance is flattened: every role's table holds its own rules and those of all its
//! ancestors. Rules are indexed by what they match — an exact name, the children of a base
//! (`a:*`), the descendants of a base (`a:**`), everything (`*`) — in hash tables shared by
//! all roles and keyed by (role, name), hashed from the name's seeded hash. Every name a rule
//! mentions is numbered once; an entry keeps the number and is confirmed by comparing the
//! name (two words for a name of up to 16 bytes, see `names`). A decision hashes the requested
//! name and its parent once each, reads from a small filter which tables each may appear in,
//! then probes, per role the principal holds, only those tables: its cost depends on the
//! number of roles the principal holds and the depth of the name, not on the number of rules
//! or roles in the policy. Nothing is allocated and nothing is locked; an allow costs one
//! reference count increment (the explanation points into the snapshot), and the answer
//! leaves the snapshot as a small `Verdict` from which the engine builds the explained
//! `Decision`.

use std::sync::Arc;

use hashbrown::HashTable;
use portcullis_core::{AccessRequest, Decision, Grant, GrantSource, Principal, RequestContext};
use time::OffsetDateTime;

use crate::action::{ActionSet, ActionVocabulary};
use crate::condition::{Condition, Truth};
use crate::names::{BitsFilter, NOT_FOUND, NameHasher, NameList, NameTable, ShortList, Sought};
use crate::pattern::{PatternKind, ResourceError, check_resource_and_split};
use crate::policy::{AncestorWalker, Policy};

/// Roles resolved inline before falling back to resolving twice.
const INLINE_ROLES: usize = 8;

/// One (role, name) of one table: the first matching rule inline, any others in
/// `Snapshot::extra`. 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    role: u32,
    /// The name's number (see `Builder::key`).
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
    rule: u32,
    /// The inheritance path index, with [`CONDITIONAL`] set when the rule has a condition,
    /// so that unconditioned rules are decided without touching the rule table.
    path: u32,
}

const CONDITIONAL: u32 = 1 << 31;

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

impl Hit {
    #[inline]
    fn path(&self) -> u32 {
        self.path & !CONDITIONAL
    }

    #[inline]
    fn conditional(&self) -> bool {
        self.path & CONDITIONAL != 0
    }
}

#[derive(Debug, Default)]
struct Tables {
    exact: HashTable<Entry>,
    children: HashTable<Entry>,
    descendants: HashTable<Entry>,
}

/// Which tables an interned name appears in, as bits (allow tables, then deny tables).
type TableBits = u8;
const ALLOW_EXACT: TableBits = 1;
const ALLOW_CHILDREN: TableBits = 1 << 1;
const ALLOW_DESCENDANTS: TableBits = 1 << 2;
const DENY_EXACT: TableBits = 1 << 3;
const DENY_CHILDREN: TableBits = 1 << 4;
const DENY_DESCENDANTS: TableBits = 1 << 5;

/// The bits of the three tables of one mode.
#[derive(Debug, Clone, Copy)]
struct ModeBits {
    exact: TableBits,
    children: TableBits,
    descendants: TableBits,
}

const ALLOW_BITS: ModeBits = ModeBits {
    exact: ALLOW_EXACT,
    children: ALLOW_CHILDREN,
    descendants: ALLOW_DESCENDANTS,
};
const DENY_BITS: ModeBits = ModeBits {
    exact: DENY_EXACT,
    children: DENY_CHILDREN,
    descendants: DENY_DESCENDANTS,
};

/// A name of the question: its hash and words, and the tables it may appear in (from the
/// snapshot's filter: every table it does appear in, and maybe others).
#[derive(Debug, Clone, Copy)]
struct Name<'q> {
    sought: Sought<'q>,
    tables: TableBits,
}

#[derive(Debug)]
struct CompiledRole {
    name: Arc<str>,
    allow_everything: Box<[Hit]>,
    deny_everything: Box<[Hit]>,
    flags: RoleFlags,
}

/// What a role (with its ancestors) has, as bits, so that a decision can skip what a role
/// cannot match without reading the role. 32 bits wide, so that [`HeldRole`] has no padding
/// and an array of them is zeroed in a few wide stores.
type RoleFlags = u32;
const HAS_DENY: RoleFlags = 1;
const SUPERUSER: RoleFlags = 1 << 1;
const ALLOW_DESCENDANT_RULES: RoleFlags = 1 << 2;
const DENY_DESCENDANT_RULES: RoleFlags = 1 << 3;
const ALLOW_EVERYTHING_RULES: RoleFlags = 1 << 4;
const DENY_EVERYTHING_RULES: RoleFlags = 1 << 5;

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
    /// Index into `conditions`, or `u32::MAX`.
    condition: u32,
}

const NO_CONDITION: u32 = u32::MAX;

/// An immutable compiled policy.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) policy: Arc<Policy>,
    /// Role names to role numbers, with the roles' flags.
    role_names: NameTable,
    roles: Vec<CompiledRole>,
    allow: Tables,
    deny: Tables,
    /// The interned names, by number (entries are verified against them).
    key_names: NameList,
    /// Which tables the interned names appear in, by hash.
    key_filter: BitsFilter,
    hasher: NameHasher,
    /// Action names, in the vocabulary's order (their bit numbers).
    action_names: ShortList,
    extra: Vec<Hit>,
    rules: Vec<RuleInfo>,
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
#[inline]
fn mix(name_hash: u64, role: u32) -> u64 {
    let folded = (name_hash ^ u64::from(role)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    folded ^ (folded >> 29)
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

struct Builder<'p> {
    hasher: NameHasher,
    /// The interned names in number order, each with its hash and the tables it appears in
    /// (a name no rule mentions is not interned).
    keys: Vec<(&'p str, u64, TableBits)>,
    key_index: FastMap<&'p str, u32>,
    /// Extra hits per entry while building, keyed by (table id, entry slot in `pending`).
    pending: Vec<Vec<Hit>>,
}

impl<'p> Builder<'p> {
    /// The number of `key`, interned on first sight, marked as appearing in `table`.
    fn key(&mut self, key: &'p str, table: TableBits) -> Result<u32, TooLarge> {
        if let Some(id) = self.key_index.get(key) {
            if let Some((_, _, tables)) = self.keys.get_mut(*id as usize) {
                *tables |= table;
            }
            return Ok(*id);
        }
        let id = u32_of(self.keys.len())?;
        self.keys
            .push((key, self.hasher.hash(key.as_bytes()), table));
        self.key_index.insert(key, id);
        Ok(id)
    }

    /// Adds `hit` for (`role`, `key`): a new entry, or a further hit of an existing one
    /// (kept in `pending` until `finish`).
    fn insert(
        &mut self,
        table: &mut HashTable<Entry>,
        key: u32,
        role: u32,
        hit: Hit,
    ) -> Result<(), TooLarge> {
        let name_hash = |key: u32| self.keys.get(key as usize).map_or(0, |k| k.1);
        let hash = mix(name_hash(key), role);
        if let Some(existing) = table.find_mut(hash, |e| e.role == role && e.key == key) {
            // `extra_start` indexes `pending` while building.
            if existing.extra_len == 0 {
                existing.extra_start = u32_of(self.pending.len())?;
                self.pending.push(Vec::new());
            }
            existing.extra_len = existing.extra_len.checked_add(1).ok_or(TooLarge)?;
            if let Some(list) = self.pending.get_mut(existing.extra_start as usize) {
                list.push(hit);
            }
            return Ok(());
        }
        let entry = Entry {
            role,
            key,
            extra_start: 0,
            extra_len: 0,
            first: hit,
        };
        table.insert_unique(hash, entry, |e| mix(name_hash(e.key), e.role));
        Ok(())
    }

    /// Moves the extra hits into one array and points the entries at it.
    fn finish(&mut self, tables: [&mut Tables; 2]) -> Result<Vec<Hit>, TooLarge> {
        let mut extra = Vec::new();
        for t in tables {
            for table in [&mut t.exact, &mut t.children, &mut t.descendants] {
                for e in table.iter_mut() {
                    if e.extra_len > 0 {
                        let list = self
                            .pending
                            .get(e.extra_start as usize)
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        e.extra_start = u32_of(extra.len())?;
                        extra.extend_from_slice(list);
                    }
                }
            }
        }
        extra.shrink_to_fit();
        Ok(extra)
    }
}

impl Snapshot {
    pub(crate) fn compile(policy: Arc<Policy>) -> Result<Self, TooLarge> {
        let policy_ref: &Policy = &policy;
        let hasher = NameHasher::new();
        let mut builder = Builder {
            hasher,
            keys: Vec::new(),
            key_index: FastMap::default(),
            pending: Vec::new(),
        };

        // Rules, numbered role by role: allow rules then deny rules.
        let mut rules = Vec::new();
        let mut texts = String::new();
        let mut conditions = Vec::new();
        let mut first_rule = Vec::with_capacity(policy.roles.len());
        // The interned name of every rule (unused for `*`), once per rule rather than once per
        // role that inherits it.
        let mut rule_keys = Vec::new();
        for (r, role) in policy_ref.roles.iter().enumerate() {
            first_rule.push(u32_of(rules.len())?);
            let rules_of = role
                .allow
                .iter()
                .map(|r| (r, false))
                .chain(role.deny.iter().map(|r| (r, true)));
            for (rule, is_deny) in rules_of {
                let bits = match (rule.pattern.kind(), is_deny) {
                    (PatternKind::Everything, _) => 0,
                    (PatternKind::Exact, false) => ALLOW_EXACT,
                    (PatternKind::Children, false) => ALLOW_CHILDREN,
                    (PatternKind::Descendants, false) => ALLOW_DESCENDANTS,
                    (PatternKind::Exact, true) => DENY_EXACT,
                    (PatternKind::Children, true) => DENY_CHILDREN,
                    (PatternKind::Descendants, true) => DENY_DESCENDANTS,
                };
                rule_keys.push(if bits == 0 {
                    0
                } else {
                    builder.key(rule.pattern.base(), bits)?
                });
                let condition = match &rule.condition {
                    Some(c) => {
                        conditions.push(c.clone());
                        u32_of(conditions.len() - 1)?
                    }
                    None => NO_CONDITION,
                };
                rules.push(RuleInfo {
                    role: u32_of(r)?,
                    text_start: u32_of(texts.len())?,
                    text_len: u32_of(rule.text.len())?,
                    condition,
                });
                texts.push_str(&rule.text);
            }
        }

        let names: Vec<Arc<str>> = policy
            .roles
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        let mut paths = vec![PathNode {
            role: 0,
            prefix: EMPTY_PATH,
        }];

        // Flatten inheritance: size every table first (one walk of each role's ancestors),
        // then fill them (a second walk).
        let mut walker = AncestorWalker::new(policy_ref.roles.len());
        let mut counts = [[0usize; 3]; 2];
        for r in 0..policy_ref.roles.len() {
            walker.walk(&policy_ref.roles, r, |_, a| {
                for (rules, slot) in [(&a.allow, 0usize), (&a.deny, 1usize)] {
                    for rule in rules {
                        let kind = match rule.pattern.kind() {
                            PatternKind::Everything => continue,
                            PatternKind::Exact => 0,
                            PatternKind::Children => 1,
                            PatternKind::Descendants => 2,
                        };
                        if let Some(c) = counts.get_mut(slot).and_then(|c| c.get_mut(kind)) {
                            *c += 1;
                        }
                    }
                }
                true
            });
        }
        let sized = |c: [usize; 3]| Tables {
            exact: HashTable::with_capacity(c[0]),
            children: HashTable::with_capacity(c[1]),
            descendants: HashTable::with_capacity(c[2]),
        };
        let [allow_counts, deny_counts] = counts;
        let mut allow = sized(allow_counts);
        let mut deny = sized(deny_counts);
        builder
            .key_index
            .reserve(allow_counts.iter().sum::<usize>() / 2);
        let mut roles = Vec::with_capacity(policy_ref.roles.len());
        // The path node of each entry of the current walk.
        let mut node_of: Vec<u32> = Vec::new();
        for (holder, role) in policy_ref.roles.iter().enumerate() {
            let holder32 = u32_of(holder)?;
            let mut allow_everything = Vec::new();
            let mut deny_everything = Vec::new();
            let mut flags = if role.superuser { SUPERUSER } else { 0 };
            let chain = walker.walk(&policy_ref.roles, holder, |_, _| true);
            node_of.clear();
            for step in chain {
                // The path to this ancestor: the path to the role it was reached through,
                // then that role.
                let path_id = match step.via {
                    None => EMPTY_PATH,
                    Some(via) => {
                        let id = u32_of(paths.len())?;
                        paths.push(PathNode {
                            role: chain.get(via).map_or(Ok(0), |child| u32_of(child.role))?,
                            prefix: node_of.get(via).copied().unwrap_or(EMPTY_PATH),
                        });
                        id
                    }
                };
                node_of.push(path_id);
                let ancestor = step.role;
                let Some(a) = policy_ref.roles.get(ancestor) else {
                    continue;
                };
                if a.superuser {
                    flags |= SUPERUSER;
                }
                let base = first_rule.get(ancestor).copied().unwrap_or_default();
                let rules_of = a
                    .allow
                    .iter()
                    .map(|r| (r, false))
                    .chain(a.deny.iter().map(|r| (r, true)));
                for (j, (rule, is_deny)) in rules_of.enumerate() {
                    if path_id & CONDITIONAL != 0 {
                        return Err(TooLarge);
                    }
                    let conditional = if rule.condition.is_some() {
                        CONDITIONAL
                    } else {
                        0
                    };
                    let rule_index = base + u32_of(j)?;
                    let key = rule_keys
                        .get(rule_index as usize)
                        .copied()
                        .unwrap_or_default();
                    let hit = Hit {
                        rule: rule_index,
                        path: path_id | conditional,
                        actions: rule.actions.bits(),
                    };
                    let tables = if is_deny { &mut deny } else { &mut allow };
                    if is_deny {
                        flags |= HAS_DENY;
                    }
                    match rule.pattern.kind() {
                        PatternKind::Everything => {
                            if is_deny {
                                flags |= DENY_EVERYTHING_RULES;
                                deny_everything.push(hit);
                            } else {
                                flags |= ALLOW_EVERYTHING_RULES;
                                allow_everything.push(hit);
                            }
                        }
                        PatternKind::Exact => {
                            builder.insert(&mut tables.exact, key, holder32, hit)?;
                        }
                        PatternKind::Children => {
                            builder.insert(&mut tables.children, key, holder32, hit)?;
                        }
                        PatternKind::Descendants => {
                            flags |= if is_deny {
                                DENY_DESCENDANT_RULES
                            } else {
                                ALLOW_DESCENDANT_RULES
                            };
                            builder.insert(&mut tables.descendants, key, holder32, hit)?;
                        }
                    }
                }
            }
            roles.push(CompiledRole {
                name: names.get(holder).cloned().unwrap_or_else(|| Arc::from("")),
                allow_everything: allow_everything.into(),
                deny_everything: deny_everything.into(),
                flags,
            });
        }

        let extra = builder.finish([&mut allow, &mut deny])?;
        let Builder {
            keys,
            key_index,
            pending,
            ..
        } = builder;
        drop((key_index, pending));
        let too_large = |_| TooLarge;
        let mut key_names = NameList::with_capacity(keys.len());
        for (name, _, _) in &keys {
            key_names.push(name).map_err(too_large)?;
        }
        key_names.shrink_to_fit();
        let key_filter = BitsFilter::build(keys.iter().map(|(_, hash, tables)| (*hash, *tables)));
        drop(keys);
        let action_names = ShortList::new(policy.vocabulary.names().iter().map(String::as_str));
        let role_names = NameTable::build(hasher, roles.iter().map(|r| (&*r.name, r.flags)))
            .map_err(too_large)?;

        let default_role = match policy.default_role {
            Some(i) => Some(HeldRole {
                index: u32_of(i)?,
                flags: roles.get(i).map_or(0, |r| r.flags),
            }),
            None => None,
        };
        let superuser_attribute = policy.superuser_attribute.clone();
        // Built by pushing: give back what doubling left over.
        rules.shrink_to_fit();
        texts.shrink_to_fit();
        conditions.shrink_to_fit();
        paths.shrink_to_fit();
        let snapshot = Self {
            policy,
            role_names,
            roles,
            allow,
            deny,
            key_names,
            key_filter,
            hasher,
            action_names,
            extra,
            rules,
            texts,
            conditions,
            paths,
            default_role,
            superuser_attribute,
        };
        if snapshot.heap_size() > snapshot.policy.limits.compiled_bytes() {
            return Err(TooLarge);
        }
        Ok(snapshot)
    }

    pub(crate) fn vocabulary(&self) -> &ActionVocabulary {
        &self.policy.vocabulary
    }

    /// The role named `name`, if the policy has it.
    #[inline]
    fn held_role(&self, name: &str) -> Option<HeldRole> {
        let found = self.role_names.get_packed(name.as_bytes());
        if found == NOT_FOUND {
            return None;
        }
        let (index, flags) = (found as u32, (found >> 32) as u32);
        Some(HeldRole { index, flags })
    }

    /// `name` with its hash, and the tables it may appear in.
    #[inline]
    fn name<'q>(&self, name: &'q str) -> Name<'q> {
        let sought = self.hasher.sought(name.as_bytes());
        Name {
            sought,
            tables: self.key_filter.get(sought.hash),
        }
    }

    #[inline]
    fn role(&self, index: u32) -> Option<&CompiledRole> {
        self.roles.get(index as usize)
    }

    /// Whether a matching rule applies in this mode: its actions include the wanted one, and
    /// its condition (if any) is known to hold (allow) or not known to fail (deny).
    #[inline]
    fn applies<const DENY: bool>(&self, hit: &Hit, ask: Ask<'_>) -> bool {
        if hit.actions & ask.wanted == 0 {
            return false;
        }
        if !hit.conditional() {
            return true;
        }
        let Some(info) = self.rules.get(hit.rule as usize) else {
            return false;
        };
        let truth = match self.conditions.get(info.condition as usize) {
            Some(c) => c.evaluate(ask.env.principal, ask.env.context, ask.env.now),
            None => Truth::Unknown,
        };
        if DENY {
            truth != Truth::False
        } else {
            truth == Truth::True
        }
    }

    /// The first applicable hit of `role` in `table` for `name`. Inlined: the table probe,
    /// and the entry's first hit when it is unconditioned; conditions and further hits out of
    /// line.
    #[inline(always)]
    fn probe<'s, const DENY: bool>(
        &'s self,
        table: &'s HashTable<Entry>,
        name: &Sought<'_>,
        role: u32,
        ask: Ask<'_>,
    ) -> Option<&'s Hit> {
        let entry = table.find(mix(name.hash, role), |e| {
            e.role == role && self.key_names.is(e.key, name)
        })?;
        let first = &entry.first;
        if !first.conditional() {
            if first.actions & ask.wanted != 0 {
                return Some(first);
            }
            if entry.extra_len == 0 {
                return None;
            }
        }
        self.applicable_in::<DENY>(entry, ask)
    }

    /// The first applicable hit of an entry (see [`Snapshot::probe`]).
    #[inline(never)]
    fn applicable_in<'s, const DENY: bool>(
        &'s self,
        entry: &'s Entry,
        ask: Ask<'_>,
    ) -> Option<&'s Hit> {
        if self.applies::<DENY>(&entry.first, ask) {
            return Some(&entry.first);
        }
        if entry.extra_len == 0 {
            return None;
        }
        let start = entry.extra_start as usize;
        self.extra
            .get(start..start + entry.extra_len as usize)
            .unwrap_or_default()
            .iter()
            .find(|hit| self.applies::<DENY>(hit, ask))
    }

    /// The most specific applicable rule of `role` for the question, among the deny rules
    /// (`DENY`) or the allow rules: an exact rule, then `parent:*`, then `ancestor:**` from
    /// the nearest ancestor, then `*`. Only the tables the filter says the names may appear
    /// in are probed.
    #[inline(always)]
    fn find<const DENY: bool>(&self, role: HeldRole, q: &Question<'_>) -> Option<&Hit> {
        let (tables, bits, descendants, everything) = if DENY {
            (
                &self.deny,
                DENY_BITS,
                DENY_DESCENDANT_RULES,
                DENY_EVERYTHING_RULES,
            )
        } else {
            (
                &self.allow,
                ALLOW_BITS,
                ALLOW_DESCENDANT_RULES,
                ALLOW_EVERYTHING_RULES,
            )
        };
        if q.resource.tables & bits.exact != 0
            && let Some(hit) =
                self.probe::<DENY>(&tables.exact, &q.resource.sought, role.index, q.ask)
        {
            return Some(hit);
        }
        if q.parent.tables & bits.children != 0
            && let Some(hit) =
                self.probe::<DENY>(&tables.children, &q.parent.sought, role.index, q.ask)
        {
            return Some(hit);
        }
        if role.flags & descendants != 0
            && let Some(hit) =
                self.find_descendants::<DENY>(tables, bits, role.index, q.name, q.ask)
        {
            return Some(hit);
        }
        if role.flags & everything == 0 {
            return None;
        }
        let role = self.role(role.index)?;
        let hits = if DENY {
            &role.deny_everything
        } else {
            &role.allow_everything
        };
        hits.iter().find(|hit| self.applies::<DENY>(hit, q.ask))
    }

    /// The nearest `ancestor:**` rule of `role` for the question's name.
    #[cold]
    fn find_descendants<'s, const DENY: bool>(
        &'s self,
        tables: &'s Tables,
        bits: ModeBits,
        role_index: u32,
        requested: &str,
        ask: Ask<'_>,
    ) -> Option<&'s Hit> {
        // The parent of the requested name, then its ancestors, nearest first.
        let mut rest = requested;
        while let Some((ancestor, _)) = rsplit_colon(rest) {
            let name = self.name(ancestor);
            if name.tables & bits.descendants != 0
                && let Some(hit) =
                    self.probe::<DENY>(&tables.descendants, &name.sought, role_index, ask)
            {
                return Some(hit);
            }
            rest = ancestor;
        }
        None
    }

    /// Decides `request`; see [`Verdict::into_decision`] for the explained [`Decision`].
    #[inline(always)]
    pub(crate) fn verdict(
        &self,
        request: &AccessRequest<'_>,
        now: &dyn Fn() -> OffsetDateTime,
    ) -> Verdict {
        if request.principal().roles().len() > INLINE_ROLES {
            return self.verdict_for_many_roles(request, now);
        }
        self.verdict_with::<false>(request, now)
    }

    /// [`Snapshot::verdict`] for a principal with more than `INLINE_ROLES` roles: each pass
    /// resolves the names again (nothing is allocated).
    #[cold]
    #[inline(never)]
    fn verdict_for_many_roles(
        &self,
        request: &AccessRequest<'_>,
        now: &dyn Fn() -> OffsetDateTime,
    ) -> Verdict {
        self.verdict_with::<true>(request, now)
    }

    /// The decision, with the held roles resolved into a slice (`MANY` false: one role
    /// without a loop, up to `INLINE_ROLES` in an array) or resolved again by name for each
    /// pass (`MANY`).
    #[inline(always)]
    fn verdict_with<const MANY: bool>(
        &self,
        request: &AccessRequest<'_>,
        now: &dyn Fn() -> OffsetDateTime,
    ) -> Verdict {
        // The held roles (or the default role when the principal holds none), resolved first:
        // the lookups' chain of loads (principal, role names, table) then runs alongside the
        // checks of the action and the name below, which do not depend on it.
        let principal = request.principal();
        let names = principal.roles();
        // One role (the common case) is decided without a loop.
        let mut single = None;
        let mut inline;
        let (held, any): (&[HeldRole], RoleFlags) = match names {
            _ if MANY => (&[], 0),
            [] => {
                single = self.default_role;
                (&[], 0)
            }
            [name] => {
                single = self.held_role(name);
                (&[], 0)
            }
            _ => {
                inline = [HeldRole::default(); INLINE_ROLES];
                let mut count = 0;
                let mut any = 0;
                for name in names {
                    if let Some(role) = self.held_role(name)
                        && let Some(slot) = inline.get_mut(count)
                    {
                        *slot = role;
                        any |= role.flags;
                        count += 1;
                    }
                }
                (inline.get(..count).unwrap_or_default(), any)
            }
        };

        let Some(wanted) = self
            .action_names
            .position(request.action().as_bytes())
            .map(ActionSet::bit)
        else {
            return Verdict::UnknownAction;
        };
        let resource = request.resource();
        let parent = match check_resource_and_split(resource) {
            Ok(split) => split.and_then(|at| resource.get(..at)),
            Err(e) => return Verdict::InvalidResource(e),
        };
        let env = Env {
            principal,
            context: request.context(),
            now,
        };
        let q = Question {
            ask: Ask {
                wanted: wanted.bits(),
                env: &env,
            },
            name: resource,
            resource: self.name(resource),
            parent: match parent {
                Some(parent) => self.name(parent),
                None => Name {
                    sought: self.hasher.sought(b""),
                    tables: 0,
                },
            },
        };

        if MANY {
            // Resolved again by name for each pass (nothing is allocated).
            let held = names.iter().filter_map(|name| self.held_role(name));
            let any = held.clone().fold(0, |any, role| any | role.flags);
            return self.decide(held, any, &q);
        }
        if let Some(role) = single {
            return self.decide(std::iter::once(role), role.flags, &q);
        }
        self.decide(held.iter().copied(), any, &q)
    }

    /// The decision for the held roles (`any`: the union of their flags): an explicit deny
    /// from any of them, else the superuser, else the first allow in the principal's order.
    #[inline(always)]
    fn decide(
        &self,
        held: impl Iterator<Item = HeldRole> + Clone,
        any: RoleFlags,
        q: &Question<'_>,
    ) -> Verdict {
        // Whether the names may appear in a deny table; a role's `*` and `a:**` deny rules are
        // looked at whatever the names. Most questions skip the pass on these bits alone.
        let keyed = (q.resource.tables & DENY_EXACT) | (q.parent.tables & DENY_CHILDREN);
        if any & HAS_DENY != 0
            && (keyed != 0 || any & (DENY_DESCENDANT_RULES | DENY_EVERYTHING_RULES) != 0)
        {
            for role in held.clone() {
                if role.flags & HAS_DENY != 0
                    && (keyed != 0
                        || role.flags & (DENY_DESCENDANT_RULES | DENY_EVERYTHING_RULES) != 0)
                    && let Some(hit) = self.find::<true>(role, q)
                {
                    return Verdict::ExplicitDeny(Found::of(hit));
                }
            }
        }

        if any & SUPERUSER != 0 || self.superuser_by_attribute(q.ask.env.principal) {
            return Verdict::Superuser;
        }

        let keyed = (q.resource.tables & ALLOW_EXACT) | (q.parent.tables & ALLOW_CHILDREN);
        if keyed == 0 && any & (ALLOW_DESCENDANT_RULES | ALLOW_EVERYTHING_RULES) == 0 {
            return Verdict::NoMatch;
        }
        for role in held {
            if (keyed != 0 || role.flags & (ALLOW_DESCENDANT_RULES | ALLOW_EVERYTHING_RULES) != 0)
                && let Some(hit) = self.find::<false>(role, q)
            {
                return Verdict::Allow(Found::of(hit));
            }
        }
        Verdict::NoMatch
    }

    fn superuser_by_attribute(&self, principal: &Principal) -> bool {
        self.superuser_attribute
            .as_deref()
            .is_some_and(|name| principal.attribute(name) == Some(&serde_json::Value::Bool(true)))
    }

    /// Heap size in bytes of the compiled indexes (for the compile benchmark): every
    /// allocation the snapshot owns, not counting the source policy it keeps for
    /// explanations and reloads.
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

    pub(crate) fn action_set(&self, action: &str) -> Option<ActionSet> {
        self.vocabulary().requested(action)
    }
}

/// Splits at the last `:` (names are short: a backwards byte scan beats `memrchr`).
#[inline]
fn rsplit_colon(name: &str) -> Option<(&str, &str)> {
    let at = name.bytes().rposition(|b| b == b':')?;
    Some((name.get(..at)?, name.get(at + 1..)?))
}

/// What conditions are evaluated against.
struct Env<'q> {
    principal: &'q Principal,
    context: Option<&'q RequestContext>,
    now: &'q dyn Fn() -> OffsetDateTime,
}

/// What a matching rule is asked: whether it grants the wanted action (a bit), under the
/// conditions' environment. Two words, passed by value, so that the out-of-line paths
/// (conditions, further hits) do not need the whole question in memory.
#[derive(Clone, Copy)]
struct Ask<'q> {
    wanted: u64,
    env: &'q Env<'q>,
}

/// Everything one decision needs, computed once.
struct Question<'q> {
    ask: Ask<'q>,
    /// The requested name.
    name: &'q str,
    /// The requested name.
    resource: Name<'q>,
    /// Its parent (the name up to its last `:`; in no table when it has none).
    parent: Name<'q>,
}

/// What a decision came to: the kind, and for a grant the matching rule and inheritance path
/// (numbers into the snapshot, so that the explained [`Decision`] can be built without
/// allocating). Small enough to be returned in registers.
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
    rule: u32,
    path: u32,
}

impl Found {
    #[inline]
    fn of(hit: &Hit) -> Self {
        Self {
            rule: hit.rule,
            path: hit.path(),
        }
    }
}

impl Verdict {
    /// Whether [`Verdict::into_decision`] needs the snapshot (to explain a grant).
    #[inline]
    pub(crate) fn needs_source(self) -> bool {
        matches!(self, Self::Allow(_) | Self::ExplicitDeny(_))
    }

    /// The explained decision; `source` is the snapshot that decided. A grant without its
    /// snapshot cannot be explained and denies with an evaluation error.
    #[inline]
    pub(crate) fn into_decision(self, source: Option<Arc<Snapshot>>) -> Decision {
        let grant = |source: Arc<Snapshot>, found: Found| {
            let source: Arc<dyn GrantSource> = source;
            Grant::from_source(source, found.rule, found.path)
        };
        match (self, source) {
            (Self::NoMatch, _) => Decision::no_match(),
            (Self::Allow(found), Some(source)) => Decision::allow(grant(source, found)),
            (Self::ExplicitDeny(found), Some(source)) => {
                Decision::explicit_deny(grant(source, found))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Arc<Snapshot> {
        let policy = Policy::from_toml(
            "[[roles]]\nname = \"r\"\npermissions = [{ resource = \"a:b\", actions = [\"read\"] }]\n",
        )
        .unwrap();
        Arc::new(Snapshot::compile(Arc::new(policy)).unwrap())
    }

    /// Outside testing found the former one-word encoding falling back to the bits of an
    /// allow on an impossible input. A verdict nobody set is a no-match, and a grant that
    /// cannot be explained denies.
    #[test]
    fn impossible_verdicts_deny() {
        assert_eq!(Verdict::default(), Verdict::NoMatch);
        assert!(Verdict::default().into_decision(None).is_denied());
        let found = Found { rule: 0, path: 0 };
        for verdict in [Verdict::Allow(found), Verdict::ExplicitDeny(found)] {
            assert!(verdict.needs_source());
            let decision = verdict.into_decision(None);
            assert!(decision.is_denied());
            assert_eq!(decision.reason_code(), "evaluation_error");
        }
        assert!(
            Verdict::Allow(found)
                .into_decision(Some(snapshot()))
                .is_allowed()
        );
        assert!(
            Verdict::ExplicitDeny(found)
                .into_decision(Some(snapshot()))
                .is_denied()
        );
        for verdict in [
            Verdict::NoMatch,
            Verdict::UnknownAction,
            Verdict::InvalidResource(ResourceError::PercentEncoded),
        ] {
            assert!(!verdict.needs_source());
            assert!(verdict.into_decision(Some(snapshot())).is_denied());
        }
        assert!(Verdict::Superuser.into_decision(None).is_allowed());
    }
}
