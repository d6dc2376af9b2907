//! Building a [`Snapshot`] from a validated policy: number the rules and the names they
//! mention, flatten inheritance into the tables, and check the compiled size.

use std::sync::Arc;

use hashbrown::HashTable;

use super::{
    ALLOW_CHILDREN, ALLOW_DESCENDANT_RULES, ALLOW_DESCENDANTS, ALLOW_EVERYTHING_RULES, ALLOW_EXACT,
    CompiledRole, DENY_CHILDREN, DENY_DESCENDANT_RULES, DENY_DESCENDANTS, DENY_EVERYTHING_RULES,
    DENY_EXACT, EMPTY_PATH, Entry, HAS_ALLOW, HAS_DENY, HeldRole, Hit, PathNode, RoleFlags,
    RuleInfo, SUPERUSER, Snapshot, TableBits, Tables, TooLarge, mix, u32_of,
};
use crate::names::{BitsFilter, NameHasher, NameList, NameTable, ShortList};
use crate::pattern::PatternKind;
use crate::policy::{AncestorWalker, Policy, Rule};

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The interned names and the entries' further hits, while building.
struct Builder<'p> {
    hasher: NameHasher,
    /// The interned names in number order, each with its hash and the tables it appears in
    /// (a name no rule mentions is not interned).
    keys: Vec<(&'p str, u64, TableBits)>,
    key_index: FastMap<&'p str, u32>,
    /// The further hits of the entries that have some; an entry's `extra_start` indexes this
    /// list until `finish`.
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

    /// Adds `hit` for (`role`, `key`): a new entry, or a further hit of an existing one.
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

    /// Moves the further hits into one array and points the entries at it.
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

/// The table bits of a rule's pattern (none for `*`, which no table holds).
fn table_bits(kind: PatternKind, is_deny: bool) -> TableBits {
    match (kind, is_deny) {
        (PatternKind::Everything, _) => 0,
        (PatternKind::Exact, false) => ALLOW_EXACT,
        (PatternKind::Children, false) => ALLOW_CHILDREN,
        (PatternKind::Descendants, false) => ALLOW_DESCENDANTS,
        (PatternKind::Exact, true) => DENY_EXACT,
        (PatternKind::Children, true) => DENY_CHILDREN,
        (PatternKind::Descendants, true) => DENY_DESCENDANTS,
    }
}

/// A role's rules, allow rules then deny rules, with whether each denies.
fn rules_of(role: &crate::policy::Role) -> impl Iterator<Item = (&Rule, bool)> {
    role.allow
        .iter()
        .map(|r| (r, false))
        .chain(role.deny.iter().map(|r| (r, true)))
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

        // Rules are visited role by role (allow rules, then deny rules); a rule's position in
        // that order is `first_rule[role] + j`. They are numbered unconditioned rules first,
        // so that a decision tells a conditioned rule by its number alone.
        let mut first_rule = Vec::with_capacity(policy.roles.len());
        let mut visited = Vec::new();
        for (r, role) in policy_ref.roles.iter().enumerate() {
            first_rule.push(visited.len());
            visited.extend(rules_of(role).map(|(rule, is_deny)| (r, rule, is_deny)));
        }
        let unconditioned = visited
            .iter()
            .filter(|(_, rule, _)| rule.condition.is_none())
            .count();
        let first_conditional = u32_of(unconditioned)?;
        let mut number_of = Vec::with_capacity(visited.len());
        let (mut next_plain, mut next_conditional) = (0, unconditioned);
        for (_, rule, _) in &visited {
            let next = if rule.condition.is_none() {
                &mut next_plain
            } else {
                &mut next_conditional
            };
            number_of.push(u32_of(*next)?);
            *next += 1;
        }
        // The interned name of every rule (unused for `*`), once per rule rather than once per
        // role that inherits it; and the rules' records, in number order.
        let mut rule_keys = Vec::with_capacity(visited.len());
        let mut records = vec![None; visited.len()];
        let mut texts = String::new();
        let mut conditions = Vec::new();
        for (position, (r, rule, is_deny)) in visited.iter().enumerate() {
            let bits = table_bits(rule.pattern.kind(), *is_deny);
            rule_keys.push(if bits == 0 {
                0
            } else {
                builder.key(rule.pattern.base(), bits)?
            });
            let condition = match &rule.condition {
                Some(c) => {
                    conditions.push(c.clone());
                    Some(u32_of(conditions.len() - 1)?)
                }
                None => None,
            };
            let number = number_of.get(position).copied().ok_or(TooLarge)?;
            if let Some(slot) = records.get_mut(number as usize) {
                *slot = Some(RuleInfo {
                    role: u32_of(*r)?,
                    text_start: u32_of(texts.len())?,
                    text_len: u32_of(rule.text.len())?,
                    condition,
                });
            }
            texts.push_str(&rule.text);
        }
        // Every number was given to exactly one rule.
        let rules: Vec<RuleInfo> = records.into_iter().collect::<Option<_>>().ok_or(TooLarge)?;
        drop(visited);

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
                for (rule, is_deny) in rules_of(a) {
                    let kind = match rule.pattern.kind() {
                        PatternKind::Everything => continue,
                        PatternKind::Exact => 0,
                        PatternKind::Children => 1,
                        PatternKind::Descendants => 2,
                    };
                    if let Some(c) = counts
                        .get_mut(usize::from(is_deny))
                        .and_then(|c| c.get_mut(kind))
                    {
                        *c += 1;
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
        // The path node of each step of the current walk.
        let mut node_of: Vec<u32> = Vec::new();
        for (holder, role) in policy_ref.roles.iter().enumerate() {
            let holder32 = u32_of(holder)?;
            let mut allow_everything = Vec::new();
            let mut deny_everything = Vec::new();
            let mut flags: RoleFlags = if role.superuser { SUPERUSER } else { 0 };
            let chain = walker.walk(&policy_ref.roles, holder, |_, _| true);
            node_of.clear();
            for step in chain {
                // The path to this ancestor: the path to the role it was reached through,
                // then that role.
                let path = match step.via {
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
                node_of.push(path);
                let ancestor = step.role;
                let Some(a) = policy_ref.roles.get(ancestor) else {
                    continue;
                };
                if a.superuser {
                    flags |= SUPERUSER;
                }
                let base = first_rule.get(ancestor).copied().unwrap_or_default();
                for (j, (rule, is_deny)) in rules_of(a).enumerate() {
                    let position = base + j;
                    let hit = Hit {
                        rule: number_of.get(position).copied().ok_or(TooLarge)?,
                        path,
                        actions: rule.actions.bits(),
                    };
                    let key = rule_keys.get(position).copied().unwrap_or_default();
                    let tables = if is_deny { &mut deny } else { &mut allow };
                    flags |= if is_deny { HAS_DENY } else { HAS_ALLOW };
                    match rule.pattern.kind() {
                        PatternKind::Everything if is_deny => {
                            flags |= DENY_EVERYTHING_RULES;
                            deny_everything.push(hit);
                        }
                        PatternKind::Everything => {
                            flags |= ALLOW_EVERYTHING_RULES;
                            allow_everything.push(hit);
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
        let Builder { keys, .. } = builder;
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
            first_conditional,
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
}
