//! How a [`Snapshot`] decides: an explicit deny from any held role wins, then the superuser,
//! then the first allow in the principal's order of roles; nothing else is an allow.

use hashbrown::HashTable;
use portcullis_core::{AccessRequest, Principal, RequestContext};
use time::OffsetDateTime;

use super::verdict::{Found, Verdict};
use super::{
    ALLOW_CHILDREN, ALLOW_DESCENDANT_RULES, ALLOW_DESCENDANTS, ALLOW_EVERYTHING_RULES, ALLOW_EXACT,
    CompiledRole, DENY_CHILDREN, DENY_DESCENDANT_RULES, DENY_DESCENDANTS, DENY_EVERYTHING_RULES,
    DENY_EXACT, Entry, HAS_ALLOW, HAS_DENY, HeldRole, Hit, RoleFlags, SUPERUSER, Snapshot,
    TableBits, Tables, mix,
};
use crate::action::ActionSet;
use crate::condition::Truth;
use crate::names::Sought;
use crate::pattern::check_resource_and_split;

/// The held roles resolved once, in an array; a principal with more roles than that has the
/// rest resolved again on each pass (nothing is allocated).
const RESOLVED_ROLES: usize = 8;

/// Which rules a pass looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Allow,
    Deny,
}

impl Mode {
    fn tables(self, snapshot: &Snapshot) -> &Tables {
        match self {
            Self::Allow => &snapshot.allow,
            Self::Deny => &snapshot.deny,
        }
    }

    /// The bits of this mode's exact, children and descendants tables.
    fn table_bits(self) -> [TableBits; 3] {
        match self {
            Self::Allow => [ALLOW_EXACT, ALLOW_CHILDREN, ALLOW_DESCENDANTS],
            Self::Deny => [DENY_EXACT, DENY_CHILDREN, DENY_DESCENDANTS],
        }
    }

    /// A role that has rules of this mode at all.
    fn has_rules(self) -> RoleFlags {
        match self {
            Self::Allow => HAS_ALLOW,
            Self::Deny => HAS_DENY,
        }
    }

    /// A role that has `a:**` rules of this mode.
    fn descendant_rules(self) -> RoleFlags {
        match self {
            Self::Allow => ALLOW_DESCENDANT_RULES,
            Self::Deny => DENY_DESCENDANT_RULES,
        }
    }

    /// A role that has `*` rules of this mode.
    fn everything_rules(self) -> RoleFlags {
        match self {
            Self::Allow => ALLOW_EVERYTHING_RULES,
            Self::Deny => DENY_EVERYTHING_RULES,
        }
    }

    fn everything(self, role: &CompiledRole) -> &[Hit] {
        match self {
            Self::Allow => &role.allow_everything,
            Self::Deny => &role.deny_everything,
        }
    }

    /// Whether a rule whose condition has `truth` applies: an allow needs the condition to
    /// hold; a deny applies unless it is known not to (an unknown condition denies).
    fn condition_applies(self, truth: Truth) -> bool {
        match self {
            Self::Allow => truth == Truth::True,
            Self::Deny => truth != Truth::False,
        }
    }

    /// Whether roles with `flags` may have a rule of this mode for the question: a rule keyed
    /// by one of its names (`keyed`), or an `a:**` or `*` rule, which are looked at whatever
    /// the names.
    fn may_match(self, flags: RoleFlags, keyed: bool) -> bool {
        flags & self.has_rules() != 0
            && (keyed || flags & (self.descendant_rules() | self.everything_rules()) != 0)
    }
}

/// A name of the question: its hash and words, and the tables it may appear in (from the
/// snapshot's filter: every table it does appear in, and maybe others).
#[derive(Debug, Clone, Copy)]
struct Name<'q> {
    sought: Sought<'q>,
    tables: TableBits,
}

/// What conditions are evaluated against.
struct Env<'q> {
    principal: &'q Principal,
    context: Option<&'q RequestContext>,
    now: &'q dyn Fn() -> OffsetDateTime,
}

/// Everything one decision needs, computed once.
struct Question<'q> {
    /// The wanted action, as its bit.
    wanted: u64,
    env: Env<'q>,
    /// The requested name.
    name: &'q str,
    resource: Name<'q>,
    /// The name up to its last `:`, when it has one.
    parent: Option<Name<'q>>,
}

impl Question<'_> {
    /// Whether one of the names may appear in a keyed table of `mode` (an exact rule for the
    /// name, a children rule for its parent).
    fn keyed(&self, mode: Mode) -> bool {
        let [exact, children, _] = mode.table_bits();
        self.resource.tables & exact != 0
            || self
                .parent
                .is_some_and(|parent| parent.tables & children != 0)
    }
}

/// The roles the principal holds (or the default role when it holds none), and the union of
/// their flags.
struct HeldRoles<'q> {
    resolved: [HeldRole; RESOLVED_ROLES],
    count: usize,
    /// The role names past the first `RESOLVED_ROLES`.
    rest: &'q [String],
    any: RoleFlags,
}

impl<'q> HeldRoles<'q> {
    fn resolve(snapshot: &Snapshot, names: &'q [String]) -> Self {
        let mut held = Self {
            resolved: [HeldRole::default(); RESOLVED_ROLES],
            count: 0,
            rest: names.get(RESOLVED_ROLES..).unwrap_or_default(),
            any: 0,
        };
        if names.is_empty() {
            if let (Some(role), Some(slot)) = (snapshot.default_role, held.resolved.first_mut()) {
                *slot = role;
                held.count = 1;
                held.any = role.flags;
            }
            return held;
        }
        let first = names.get(..RESOLVED_ROLES).unwrap_or(names);
        for role in first.iter().filter_map(|name| snapshot.held_role(name)) {
            if let Some(slot) = held.resolved.get_mut(held.count) {
                *slot = role;
                held.count += 1;
            }
            held.any |= role.flags;
        }
        for role in held.rest.iter().filter_map(|name| snapshot.held_role(name)) {
            held.any |= role.flags;
        }
        held
    }

    /// The held roles, in the principal's order.
    fn iter<'s>(&'s self, snapshot: &'s Snapshot) -> impl Iterator<Item = HeldRole> + 's {
        self.resolved
            .get(..self.count)
            .unwrap_or_default()
            .iter()
            .copied()
            .chain(self.rest.iter().filter_map(|name| snapshot.held_role(name)))
    }
}

impl Snapshot {
    /// Decides `request`; [`Verdict::into_decision`] explains it.
    pub(crate) fn verdict(
        &self,
        request: &AccessRequest<'_>,
        now: &dyn Fn() -> OffsetDateTime,
    ) -> Verdict {
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
        let principal = request.principal();
        let held = HeldRoles::resolve(self, principal.roles());
        let q = Question {
            wanted: wanted.bits(),
            env: Env {
                principal,
                context: request.context(),
                now,
            },
            name: resource,
            resource: self.name(resource),
            parent: parent.map(|parent| self.name(parent)),
        };
        if let Some(hit) = self.first_match(Mode::Deny, &held, &q) {
            return Verdict::ExplicitDeny(Found::of(hit));
        }
        if held.any & SUPERUSER != 0 || self.superuser_by_attribute(principal) {
            return Verdict::Superuser;
        }
        match self.first_match(Mode::Allow, &held, &q) {
            Some(hit) => Verdict::Allow(Found::of(hit)),
            None => Verdict::NoMatch,
        }
    }

    /// The first rule of `mode` that applies, from the held roles in order.
    fn first_match<'s>(
        &'s self,
        mode: Mode,
        held: &'s HeldRoles<'_>,
        q: &Question<'_>,
    ) -> Option<&'s Hit> {
        let keyed = q.keyed(mode);
        if !mode.may_match(held.any, keyed) {
            return None;
        }
        held.iter(self)
            .filter(|role| mode.may_match(role.flags, keyed))
            .find_map(|role| self.find(mode, role.index, q))
    }

    /// The most specific applicable rule of `mode` that role `role` has for the question:
    /// an exact rule, then `parent:*`, then `ancestor:**` from the nearest ancestor, then `*`.
    /// Only the tables the filter says the names may appear in are probed.
    fn find<'s>(&'s self, mode: Mode, role: u32, q: &Question<'_>) -> Option<&'s Hit> {
        let tables = mode.tables(self);
        let [exact, children, _] = mode.table_bits();
        if q.resource.tables & exact != 0
            && let Some(hit) = self.probe(mode, &tables.exact, &q.resource.sought, role, q)
        {
            return Some(hit);
        }
        if let Some(parent) = &q.parent
            && parent.tables & children != 0
            && let Some(hit) = self.probe(mode, &tables.children, &parent.sought, role, q)
        {
            return Some(hit);
        }
        let compiled = self.roles.get(role as usize)?;
        if compiled.flags & mode.descendant_rules() != 0
            && let Some(hit) = self.find_descendants(mode, role, q)
        {
            return Some(hit);
        }
        mode.everything(compiled)
            .iter()
            .find(|hit| self.applies(mode, hit, q))
    }

    /// The nearest `ancestor:**` rule of `mode` that `role` has for the question's name.
    fn find_descendants<'s>(&'s self, mode: Mode, role: u32, q: &Question<'_>) -> Option<&'s Hit> {
        let [_, _, descendants] = mode.table_bits();
        let table = &mode.tables(self).descendants;
        // The parent of the requested name, then its ancestors, nearest first.
        let mut rest = q.name;
        while let Some(at) = rest.rfind(':') {
            let ancestor = rest.get(..at)?;
            let name = self.name(ancestor);
            if name.tables & descendants != 0
                && let Some(hit) = self.probe(mode, table, &name.sought, role, q)
            {
                return Some(hit);
            }
            rest = ancestor;
        }
        None
    }

    /// The first applicable hit of `role`'s entry for `name` in `table`.
    fn probe<'s>(
        &'s self,
        mode: Mode,
        table: &'s HashTable<Entry>,
        name: &Sought<'_>,
        role: u32,
        q: &Question<'_>,
    ) -> Option<&'s Hit> {
        let entry = table.find(mix(name.hash, role), |e| {
            e.role == role && self.key_names.is(e.key, name)
        })?;
        if self.applies(mode, &entry.first, q) {
            return Some(&entry.first);
        }
        let start = entry.extra_start as usize;
        self.extra
            .get(start..start + entry.extra_len as usize)?
            .iter()
            .find(|hit| self.applies(mode, hit, q))
    }

    /// Whether a matching rule applies: its actions include the wanted one, and its
    /// condition, if it has one, allows it in this mode. A condition that cannot be found
    /// counts as unknown (it denies, and never allows).
    fn applies(&self, mode: Mode, hit: &Hit, q: &Question<'_>) -> bool {
        if hit.actions & q.wanted == 0 {
            return false;
        }
        if hit.rule < self.first_conditional {
            return true;
        }
        let truth = self
            .rules
            .get(hit.rule as usize)
            .and_then(|info| info.condition)
            .and_then(|c| self.conditions.get(c as usize))
            .map_or(Truth::Unknown, |c| {
                c.evaluate(q.env.principal, q.env.context, q.env.now)
            });
        mode.condition_applies(truth)
    }

    /// The role named `name`, if the policy has it.
    fn held_role(&self, name: &str) -> Option<HeldRole> {
        self.role_names
            .get(name.as_bytes())
            .map(|(index, flags)| HeldRole { index, flags })
    }

    /// `name` with its hash, and the tables it may appear in.
    fn name<'q>(&self, name: &'q str) -> Name<'q> {
        let sought = self.hasher.sought(name.as_bytes());
        Name {
            sought,
            tables: self.key_filter.get(sought.hash),
        }
    }

    fn superuser_by_attribute(&self, principal: &Principal) -> bool {
        self.superuser_attribute
            .as_deref()
            .is_some_and(|name| principal.attribute(name) == Some(&serde_json::Value::Bool(true)))
    }
}
