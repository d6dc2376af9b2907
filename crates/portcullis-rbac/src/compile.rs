//! The compiled, immutable snapshot of a policy and the decision procedure.
//!
//! Inheritance is flattened: every role's table holds its own rules and those of all its
//! ancestors. Rules are indexed by what they match — an exact name, the children of a base
//! (`a:*`), the descendants of a base (`a:**`), everything (`*`) — in hash tables shared by all
//! roles and keyed by (role, name). A decision hashes the requested name and its parent once,
//! then probes the tables once per role the principal holds: its cost depends on the number
//! of roles the principal holds and the depth of the name, not on the number of rules or roles
//! in the policy. Nothing is allocated and nothing is locked; an allow costs one reference
//! count increment (the explanation points into the snapshot).

use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use portcullis_core::{AccessRequest, Decision, Grant, GrantSource, Principal, RequestContext};
use time::OffsetDateTime;

use crate::action::{ActionSet, ActionVocabulary};
use crate::condition::{Condition, Truth};
use crate::pattern::{PatternKind, check_resource};
use crate::validate::{Policy, ancestors};

/// Roles resolved inline before falling back to resolving twice.
const INLINE_ROLES: usize = 16;

/// One (role, name) of one table: the first matching rule inline, any others in
/// `Snapshot::extra`. 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    role: u32,
    key_start: u32,
    key_len: u16,
    extra_len: u16,
    extra_start: u32,
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
    /// The keys of `exact`, whatever the role.
    exact_keys: KeyFilter,
    /// The keys of `children`, whatever the role.
    children_keys: KeyFilter,
}

/// Which keys some role has in a table, as a two-bit-per-key filter over the key's hash.
///
/// A question whose resource (or parent) no role mentions in a table skips that table's
/// probes for every held role: one or two bit tests instead of a hash probe per role. About
/// 8 bits per key, so a key no role has passes the filter about one time in twenty; a key
/// some role has always passes (the filter only ever answers "maybe" or "no").
#[derive(Debug, Default)]
struct KeyFilter {
    words: Box<[u64]>,
}

impl KeyFilter {
    fn with_keys(keys: usize) -> Self {
        let bits = keys.saturating_mul(8).next_power_of_two().max(64);
        Self {
            words: vec![0; bits / 64].into_boxed_slice(),
        }
    }

    #[inline]
    fn positions(&self, hash: u64) -> [u64; 2] {
        // The word count is a power of two, so a mask picks the bit.
        let mask = (self.words.len() as u64 * 64).wrapping_sub(1);
        [hash & mask, (hash >> 32) & mask]
    }

    fn add(&mut self, hash: u64) {
        for bit in self.positions(hash) {
            if let Some(word) = self.words.get_mut((bit / 64) as usize) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    /// Whether some key with this hash may be in the table (an empty filter says no).
    #[inline]
    fn may_contain(&self, hash: u64) -> bool {
        !self.words.is_empty()
            && self.positions(hash).iter().all(|bit| {
                self.words
                    .get((bit / 64) as usize)
                    .is_some_and(|word| word & (1 << (bit % 64)) != 0)
            })
    }
}

#[derive(Debug)]
struct CompiledRole {
    name: Arc<str>,
    allow_everything: Box<[Hit]>,
    deny_everything: Box<[Hit]>,
    has_deny: bool,
    has_allow_descendants: bool,
    has_deny_descendants: bool,
    superuser: bool,
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
    hasher: RandomState,
    role_names: HashTable<u32>,
    roles: Vec<CompiledRole>,
    allow: Tables,
    deny: Tables,
    keys: String,
    extra: Vec<Hit>,
    rules: Vec<RuleInfo>,
    texts: String,
    conditions: Vec<Condition>,
    paths: Vec<Arc<[Arc<str>]>>,
    default_role: Option<u32>,
    superuser_attribute: Option<String>,
}

/// A policy too large to index with 32-bit offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the policy is too large to compile (more than 4 GiB of names or 2^32 rules)")]
pub struct TooLarge;

fn u32_of(n: usize) -> Result<u32, TooLarge> {
    u32::try_from(n).map_err(|_| TooLarge)
}

#[inline]
fn mix(hash: u64, role: u32) -> u64 {
    let folded = (hash
        ^ u64::from(role)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15))
    .wrapping_mul(0xD6E8_FEB8_6659_FD93);
    folded ^ (folded >> 32)
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

struct Builder<'p> {
    hasher: RandomState,
    keys: String,
    key_index: FastMap<&'p str, (u32, u32)>,
    /// Extra hits per entry while building, keyed by (table id, entry slot in `pending`).
    pending: Vec<Vec<Hit>>,
}

impl<'p> Builder<'p> {
    fn key(&mut self, key: &'p str) -> Result<(u32, u32), TooLarge> {
        if let Some(k) = self.key_index.get(key) {
            return Ok(*k);
        }
        let k = (u32_of(self.keys.len())?, u32_of(key.len())?);
        self.keys.push_str(key);
        self.key_index.insert(key, k);
        Ok(k)
    }

    /// Adds `hit` for (`role`, `key`): a new entry, or a further hit of an existing one
    /// (kept in `pending` until `finish`).
    fn insert(
        &mut self,
        table: &mut HashTable<Entry>,
        key: &'p str,
        role: u32,
        hit: Hit,
    ) -> Result<(), TooLarge> {
        let (start, len) = self.key(key)?;
        let key_len = u16::try_from(len).map_err(|_| TooLarge)?;
        let hash = mix(self.hasher.hash_one(key), role);
        let keys = &self.keys;
        let hasher = &self.hasher;
        if let Some(existing) = table.find_mut(hash, |e| e.role == role && key_str(keys, e) == key)
        {
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
            key_start: start,
            key_len,
            extra_len: 0,
            extra_start: 0,
            first: hit,
        };
        table.insert_unique(hash, entry, |e| {
            let k = key_str(keys, e);
            mix(hasher.hash_one(k), e.role)
        });
        Ok(())
    }

    /// Moves the extra hits into one array and points the entries at it.
    fn finish(&mut self, tables: [&mut Tables; 2]) -> Result<Vec<Hit>, TooLarge> {
        let mut extra = Vec::new();
        for t in tables {
            for (table, filter) in [
                (&t.exact, &mut t.exact_keys),
                (&t.children, &mut t.children_keys),
            ] {
                *filter = KeyFilter::with_keys(table.len());
                for e in table {
                    filter.add(self.hasher.hash_one(key_str(&self.keys, e)));
                }
            }
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
        Ok(extra)
    }
}

#[inline]
fn key_str<'k>(keys: &'k str, e: &Entry) -> &'k str {
    let start = e.key_start as usize;
    keys.get(start..start + e.key_len as usize)
        .unwrap_or_default()
}

impl Snapshot {
    pub(crate) fn compile(policy: Arc<Policy>) -> Result<Self, TooLarge> {
        let policy_ref: &Policy = &policy;
        let mut builder = Builder {
            hasher: RandomState::default(),
            keys: String::new(),
            key_index: FastMap::default(),
            pending: Vec::new(),
        };

        // Rules, numbered role by role: allow rules then deny rules.
        let mut rules = Vec::new();
        let mut texts = String::new();
        let mut conditions = Vec::new();
        let mut first_rule = Vec::with_capacity(policy.roles.len());
        for (r, role) in policy.roles.iter().enumerate() {
            first_rule.push(u32_of(rules.len())?);
            for rule in role.allow.iter().chain(role.deny.iter()) {
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
        let mut paths: Vec<Arc<[Arc<str>]>> = vec![Arc::from(Vec::new())];
        let mut path_index: FastMap<Vec<usize>, u32> = FastMap::default();
        path_index.insert(Vec::new(), 0);

        // Flatten inheritance once, and size every table before filling it.
        let chains: Vec<Vec<(usize, Vec<usize>)>> = (0..policy_ref.roles.len())
            .map(|r| ancestors(&policy_ref.roles, r))
            .collect();
        let mut counts = [[0usize; 3]; 2];
        for chain in &chains {
            for (ancestor, _) in chain {
                let Some(a) = policy_ref.roles.get(*ancestor) else {
                    continue;
                };
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
            }
        }
        let sized = |c: [usize; 3]| Tables {
            exact: HashTable::with_capacity(c[0]),
            children: HashTable::with_capacity(c[1]),
            descendants: HashTable::with_capacity(c[2]),
            exact_keys: KeyFilter::default(),
            children_keys: KeyFilter::default(),
        };
        let [allow_counts, deny_counts] = counts;
        let mut allow = sized(allow_counts);
        let mut deny = sized(deny_counts);
        builder
            .key_index
            .reserve(allow_counts.iter().sum::<usize>() / 2);
        let mut roles = Vec::with_capacity(policy_ref.roles.len());
        for (holder, (role, chain)) in policy_ref.roles.iter().zip(chains).enumerate() {
            let holder32 = u32_of(holder)?;
            let mut allow_everything = Vec::new();
            let mut deny_everything = Vec::new();
            let mut has_deny = false;
            let mut has_allow_descendants = false;
            let mut has_deny_descendants = false;
            let mut superuser = role.superuser;
            for (ancestor, path) in chain {
                let Some(a) = policy_ref.roles.get(ancestor) else {
                    continue;
                };
                superuser |= a.superuser;
                let path_id = match path_index.get(&path) {
                    Some(id) => *id,
                    None => {
                        let id = u32_of(paths.len())?;
                        paths.push(path.iter().filter_map(|i| names.get(*i).cloned()).collect());
                        path_index.insert(path.clone(), id);
                        id
                    }
                };
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
                    let hit = Hit {
                        rule: base + u32_of(j)?,
                        path: path_id | conditional,
                        actions: rule.actions.bits(),
                    };
                    let tables = if is_deny { &mut deny } else { &mut allow };
                    has_deny |= is_deny;
                    match rule.pattern.kind() {
                        PatternKind::Everything => {
                            if is_deny {
                                deny_everything.push(hit);
                            } else {
                                allow_everything.push(hit);
                            }
                        }
                        PatternKind::Exact => {
                            builder.insert(
                                &mut tables.exact,
                                rule.pattern.base(),
                                holder32,
                                hit,
                            )?;
                        }
                        PatternKind::Children => {
                            builder.insert(
                                &mut tables.children,
                                rule.pattern.base(),
                                holder32,
                                hit,
                            )?;
                        }
                        PatternKind::Descendants => {
                            if is_deny {
                                has_deny_descendants = true;
                            } else {
                                has_allow_descendants = true;
                            }
                            builder.insert(
                                &mut tables.descendants,
                                rule.pattern.base(),
                                holder32,
                                hit,
                            )?;
                        }
                    }
                }
            }
            roles.push(CompiledRole {
                name: names.get(holder).cloned().unwrap_or_else(|| Arc::from("")),
                allow_everything: allow_everything.into(),
                deny_everything: deny_everything.into(),
                has_deny,
                has_allow_descendants,
                has_deny_descendants,
                superuser,
            });
        }

        let extra = builder.finish([&mut allow, &mut deny])?;
        let Builder {
            keys,
            hasher,
            key_index,
            pending,
        } = builder;
        drop((key_index, pending));
        let mut role_names = HashTable::with_capacity(roles.len());
        for (i, role) in roles.iter().enumerate() {
            let i = u32_of(i)?;
            role_names.insert_unique(hasher.hash_one(&*role.name), i, |j: &u32| {
                roles
                    .get(*j as usize)
                    .map_or(0, |r| hasher.hash_one(&*r.name))
            });
        }

        let default_role = policy.default_role.map(u32_of).transpose()?;
        let superuser_attribute = policy.superuser_attribute.clone();
        Ok(Self {
            policy,
            hasher,
            role_names,
            roles,
            allow,
            deny,
            keys,
            extra,
            rules,
            texts,
            conditions,
            paths,
            default_role,
            superuser_attribute,
        })
    }

    pub(crate) fn vocabulary(&self) -> &ActionVocabulary {
        &self.policy.vocabulary
    }

    #[inline]
    fn role_index(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.role_names
            .find(hash, |i| {
                self.roles
                    .get(*i as usize)
                    .is_some_and(|r| &*r.name == name)
            })
            .copied()
    }

    #[inline]
    fn role(&self, index: u32) -> Option<&CompiledRole> {
        self.roles.get(index as usize)
    }

    /// Whether a matching rule applies in this mode: its actions include the wanted one, and
    /// its condition (if any) is known to hold (allow) or not known to fail (deny).
    #[inline]
    fn applies(&self, hit: &Hit, q: &Question<'_>) -> bool {
        if hit.actions & q.wanted == 0 {
            return false;
        }
        if !hit.conditional() {
            return true;
        }
        let Some(info) = self.rules.get(hit.rule as usize) else {
            return false;
        };
        let truth = match self.conditions.get(info.condition as usize) {
            Some(c) => c.evaluate(q.principal, q.context, q.now),
            None => Truth::Unknown,
        };
        match q.mode {
            Mode::Allow => truth == Truth::True,
            Mode::Deny => truth != Truth::False,
        }
    }

    /// The first applicable hit of `role` in `table` for `key`.
    #[inline]
    fn probe(
        &self,
        table: &HashTable<Entry>,
        key_hash: u64,
        key: &str,
        role: u32,
        q: &Question<'_>,
    ) -> Option<Hit> {
        if table.is_empty() {
            return None;
        }
        let entry = table.find(mix(key_hash, role), |e| {
            e.role == role && key_str(&self.keys, e) == key
        })?;
        if self.applies(&entry.first, q) {
            return Some(entry.first);
        }
        if entry.extra_len == 0 {
            return None;
        }
        let start = entry.extra_start as usize;
        self.extra
            .get(start..start + usize::from(entry.extra_len))
            .unwrap_or_default()
            .iter()
            .find(|hit| self.applies(hit, q))
            .copied()
    }

    /// The most specific applicable rule of `role` for the question: an exact rule, then
    /// `parent:*`, then `ancestor:**` from the nearest ancestor, then `*`.
    #[inline]
    fn find(&self, role_index: u32, role: &CompiledRole, q: &Question<'_>) -> Option<Hit> {
        let (tables, everything, with_descendants) = match q.mode {
            Mode::Allow => (
                &self.allow,
                &role.allow_everything,
                role.has_allow_descendants,
            ),
            Mode::Deny => (&self.deny, &role.deny_everything, role.has_deny_descendants),
        };
        let (exact_possible, children_possible) = match q.mode {
            Mode::Allow => q.possible.allow,
            Mode::Deny => q.possible.deny,
        };
        if exact_possible
            && let Some(hit) =
                self.probe(&tables.exact, q.hashes.resource, q.resource, role_index, q)
        {
            return Some(hit);
        }
        if let Some((parent, parent_hash)) = q.hashes.parent {
            if children_possible
                && let Some(hit) = self.probe(&tables.children, parent_hash, parent, role_index, q)
            {
                return Some(hit);
            }
            if with_descendants && !tables.descendants.is_empty() {
                if let Some(hit) =
                    self.probe(&tables.descendants, parent_hash, parent, role_index, q)
                {
                    return Some(hit);
                }
                let mut rest = parent;
                while let Some((ancestor, _)) = rsplit_colon(rest) {
                    let h = self.hasher.hash_one(ancestor);
                    if let Some(hit) = self.probe(&tables.descendants, h, ancestor, role_index, q) {
                        return Some(hit);
                    }
                    rest = ancestor;
                }
            }
        }
        everything.iter().find(|hit| self.applies(hit, q)).copied()
    }

    fn grant(self: &Arc<Self>, hit: Hit) -> Grant {
        let source: Arc<dyn GrantSource> = self.clone();
        Grant::from_source(source, hit.rule, hit.path())
    }

    /// The principal's known roles (or the default role when it holds none), in its order.
    #[inline]
    fn held<'a>(&'a self, principal: &'a Principal, inline: &'a [u32], overflow: bool) -> Held<'a> {
        if overflow {
            Held::Names {
                names: principal.roles().iter(),
                snapshot: self,
            }
        } else {
            Held::Inline(inline.iter())
        }
    }

    pub(crate) fn evaluate(
        self: &Arc<Self>,
        request: &AccessRequest<'_>,
        now: &dyn Fn() -> OffsetDateTime,
    ) -> Decision {
        let Some(wanted) = self.vocabulary().requested(request.action()) else {
            return Decision::invalid_request("unknown action");
        };
        let resource = request.resource();
        if let Err(e) = check_resource(resource) {
            return Decision::invalid_request(resource_error_text(e));
        }
        let principal = request.principal();

        // Resolve the held roles once (inline for up to INLINE_ROLES of them).
        let mut inline = [0u32; INLINE_ROLES];
        let mut count = 0usize;
        let mut overflow = false;
        let mut any_deny = false;
        let mut superuser = false;
        let mut note = |r: u32, role: &CompiledRole| {
            any_deny |= role.has_deny;
            superuser |= role.superuser;
            match inline.get_mut(count) {
                Some(slot) => {
                    *slot = r;
                    count += 1;
                }
                None => overflow = true,
            }
        };
        let names = principal.roles();
        if names.is_empty() {
            if let Some(r) = self.default_role
                && let Some(role) = self.role(r)
            {
                note(r, role);
            }
        } else {
            for name in names {
                if let Some(r) = self.role_index(name)
                    && let Some(role) = self.role(r)
                {
                    note(r, role);
                }
            }
        }
        let held = inline.get(..count).unwrap_or_default();

        let hashes = Hashes::new(&self.hasher, resource);
        let possible = Possible {
            allow: self.allow.possible(&hashes),
            deny: if any_deny {
                self.deny.possible(&hashes)
            } else {
                (false, false)
            },
        };
        let mut q = Question {
            mode: Mode::Deny,
            wanted: wanted.bits(),
            resource,
            hashes,
            possible,
            principal,
            context: request.context(),
            now,
        };

        if any_deny {
            for r in self.held(principal, held, overflow) {
                let Some(role) = self.role(r) else { continue };
                if role.has_deny
                    && let Some(hit) = self.find(r, role, &q)
                {
                    return Decision::explicit_deny(self.grant(hit));
                }
            }
        }

        if superuser || self.superuser_by_attribute(principal) {
            return Decision::superuser();
        }

        q.mode = Mode::Allow;
        for r in self.held(principal, held, overflow) {
            let Some(role) = self.role(r) else { continue };
            if let Some(hit) = self.find(r, role, &q) {
                return Decision::allow(self.grant(hit));
            }
        }
        Decision::no_match()
    }

    fn superuser_by_attribute(&self, principal: &Principal) -> bool {
        self.superuser_attribute
            .as_deref()
            .is_some_and(|name| principal.attribute(name) == Some(&serde_json::Value::Bool(true)))
    }

    /// Approximate heap size in bytes of the indexes (for the compile benchmark).
    pub(crate) fn heap_size(&self) -> usize {
        let entry = size_of::<Entry>() + 1;
        let extra = self.extra.capacity() * size_of::<Hit>();
        let tables = [&self.allow, &self.deny]
            .iter()
            .map(|t| {
                (t.exact.capacity() + t.children.capacity() + t.descendants.capacity()) * entry
                    + (t.exact_keys.words.len() + t.children_keys.words.len()) * 8
            })
            .sum::<usize>();
        tables
            + extra
            + self.keys.capacity()
            + self.texts.capacity()
            + self.rules.capacity() * size_of::<RuleInfo>()
            + self.roles.capacity() * size_of::<CompiledRole>()
            + self.role_names.capacity() * 5
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Allow,
    Deny,
}

/// Everything one decision needs, computed once.
struct Question<'q> {
    mode: Mode,
    wanted: u64,
    resource: &'q str,
    hashes: Hashes<'q>,
    possible: Possible,
    principal: &'q Principal,
    context: Option<&'q RequestContext>,
    now: &'q dyn Fn() -> OffsetDateTime,
}

/// The roles a principal holds, resolved inline or (past `INLINE_ROLES`) by name again.
enum Held<'a> {
    Inline(std::slice::Iter<'a, u32>),
    Names {
        names: std::slice::Iter<'a, String>,
        snapshot: &'a Snapshot,
    },
}

impl Iterator for Held<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            Self::Inline(iter) => iter.next().copied(),
            Self::Names { names, snapshot } => names.find_map(|n| snapshot.role_index(n)),
        }
    }
}

/// Per mode, whether some role may have the resource in the exact table and its parent in
/// the children table (from the [`KeyFilter`]s).
#[derive(Debug, Clone, Copy)]
struct Possible {
    allow: (bool, bool),
    deny: (bool, bool),
}

impl Tables {
    #[inline]
    fn possible(&self, hashes: &Hashes<'_>) -> (bool, bool) {
        (
            self.exact_keys.may_contain(hashes.resource),
            hashes
                .parent
                .is_some_and(|(_, h)| self.children_keys.may_contain(h)),
        )
    }
}

struct Hashes<'r> {
    resource: u64,
    parent: Option<(&'r str, u64)>,
}

impl<'r> Hashes<'r> {
    #[inline]
    fn new(hasher: &RandomState, resource: &'r str) -> Self {
        Self {
            resource: hasher.hash_one(resource),
            parent: rsplit_colon(resource).map(|(parent, _)| (parent, hasher.hash_one(parent))),
        }
    }
}

fn resource_error_text(e: crate::pattern::ResourceError) -> &'static str {
    use crate::pattern::ResourceError as E;
    match e {
        E::Empty => "the resource name is empty",
        E::TooLong => "the resource name is too long",
        E::TooManySegments => "the resource name has too many segments",
        E::EmptySegment => "the resource name has an empty segment",
        E::ControlCharacter => "the resource name contains a control or invisible character",
        E::DotSegment => "the resource name contains a `.` or `..` path component",
        E::PercentEncoded => "the resource name contains a percent-encoded byte",
        E::Untrimmed => {
            "a segment of the resource name has surrounding white space or a trailing `.`"
        }
        E::NotNfc => "the resource name is not in Unicode normalization form C",
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

    fn grant_via(&self, path: u32) -> &[Arc<str>] {
        self.paths.get(path as usize).map_or(&[], |p| &p[..])
    }
}

#[cfg(test)]
mod tests {
    use super::KeyFilter;
    use std::hash::BuildHasher as _;

    #[test]
    fn a_key_filter_never_forgets_a_key_and_rejects_most_others() {
        let hasher = foldhash::fast::RandomState::default();
        let mut filter = KeyFilter::with_keys(1_000);
        for i in 0..1_000 {
            filter.add(hasher.hash_one(format!("collection:{i}")));
        }
        for i in 0..1_000 {
            assert!(filter.may_contain(hasher.hash_one(format!("collection:{i}"))));
        }
        let passed = (1_000..11_000)
            .filter(|i| filter.may_contain(hasher.hash_one(format!("collection:{i}"))))
            .count();
        // About 5 % expected at 8 bits a key; far fewer than half in any case.
        assert!(passed < 2_000, "{passed} of 10000 absent keys passed");
        assert!(!KeyFilter::default().may_contain(0));
    }
}
