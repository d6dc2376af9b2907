//! Action vocabularies with implication: the AmateRS levels `read` < `write` < `admin` by
//! default, or an application's own actions (`manage` ⇒ `create, read, update, delete`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest number of actions in one vocabulary (they are compiled to a 64-bit set).
pub const MAX_ACTIONS: usize = 64;

/// A set of actions, as bits of a [`ActionVocabulary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u64);

impl ActionSet {
    /// No action.
    pub const EMPTY: Self = Self(0);

    /// Whether `self` contains every action of `other`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the two sets share an action.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The union.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) const fn bit(index: usize) -> Self {
        Self(1u64 << index)
    }

    pub(crate) const fn bits(self) -> u64 {
        self.0
    }
}

/// How a vocabulary is written in a roles file or built in code: the action names and, for
/// each action, the actions it implies.
///
/// ```toml
/// [actions]
/// names = ["create", "read", "update", "delete", "manage"]
/// implies = { manage = ["create", "read", "update", "delete"] }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsDef {
    /// Every action name, in order.
    pub names: Vec<String>,
    /// For each action, the actions it includes (transitively closed at compile time).
    #[serde(default)]
    pub implies: BTreeMap<String, Vec<String>>,
}

impl ActionsDef {
    /// The AmateRS levels: `read` < `write` < `admin`.
    #[must_use]
    pub fn amaters_levels() -> Self {
        Self {
            names: vec!["read".into(), "write".into(), "admin".into()],
            implies: BTreeMap::from([
                ("write".into(), vec!["read".into()]),
                ("admin".into(), vec!["write".into()]),
            ]),
        }
    }
}

/// A compiled vocabulary: names to bits, and each action's closure under implication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionVocabulary {
    names: Vec<String>,
    /// `closure[i]`: the actions granted by granting action `i` (itself included).
    closure: Vec<ActionSet>,
}

/// Problems in an [`ActionsDef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionsError {
    /// No action is declared.
    #[error("the action vocabulary is empty")]
    Empty,
    /// More than [`MAX_ACTIONS`] actions.
    #[error("{0} actions declared, at most {MAX_ACTIONS} are supported")]
    TooMany(usize),
    /// A name is not `[a-z0-9_:.-]+` (ASCII, at most 64 bytes).
    #[error(
        "`{0}` is not a valid action name (ASCII letters, digits, `_`, `-`, `.`, `:`; at most 64 bytes)"
    )]
    InvalidName(String),
    /// The same name twice.
    #[error("action `{0}` is declared twice")]
    Duplicate(String),
    /// An implication names an undeclared action.
    #[error("`{0}` in `implies` is not a declared action")]
    Unknown(String),
}

pub(crate) fn valid_action_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "*"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

impl ActionVocabulary {
    /// Compiles a vocabulary.
    ///
    /// # Errors
    /// When it is empty, too large, has invalid or duplicate names, or implies an undeclared
    /// action. Implication cycles are allowed (the actions become equivalent).
    pub fn new(def: &ActionsDef) -> Result<Self, ActionsError> {
        if def.names.is_empty() {
            return Err(ActionsError::Empty);
        }
        if def.names.len() > MAX_ACTIONS {
            return Err(ActionsError::TooMany(def.names.len()));
        }
        let mut names: Vec<String> = Vec::with_capacity(def.names.len());
        for name in &def.names {
            if !valid_action_name(name) {
                return Err(ActionsError::InvalidName(name.clone()));
            }
            if names.contains(name) {
                return Err(ActionsError::Duplicate(name.clone()));
            }
            names.push(name.clone());
        }
        let index = |name: &str| names.iter().position(|n| n == name);
        let mut direct = vec![ActionSet::EMPTY; names.len()];
        for (from, implied) in &def.implies {
            let i = index(from).ok_or_else(|| ActionsError::Unknown(from.clone()))?;
            for to in implied {
                let j = index(to).ok_or_else(|| ActionsError::Unknown(to.clone()))?;
                if let Some(slot) = direct.get_mut(i) {
                    *slot = slot.union(ActionSet::bit(j));
                }
            }
        }
        // Transitive closure by iteration to a fixed point (at most 64 rounds).
        let mut closure: Vec<ActionSet> = (0..names.len())
            .map(|i| ActionSet::bit(i).union(direct.get(i).copied().unwrap_or_default()))
            .collect();
        loop {
            let mut changed = false;
            for i in 0..closure.len() {
                let current = closure.get(i).copied().unwrap_or_default();
                let mut next = current;
                for (j, d) in closure.iter().enumerate() {
                    if current.contains(ActionSet::bit(j)) {
                        next = next.union(*d);
                    }
                }
                if next != current {
                    if let Some(slot) = closure.get_mut(i) {
                        *slot = next;
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(Self { names, closure })
    }

    /// The AmateRS levels.
    #[must_use]
    pub fn amaters_levels() -> Self {
        // The built-in definition is valid by construction; fall back to read-only rather
        // than panic should that ever change.
        Self::new(&ActionsDef::amaters_levels()).unwrap_or_else(|_| Self {
            names: vec!["read".into()],
            closure: vec![ActionSet::bit(0)],
        })
    }

    /// The bit of one action (not its closure), for matching a requested action.
    #[must_use]
    pub fn requested(&self, action: &str) -> Option<ActionSet> {
        self.names
            .iter()
            .position(|n| crate::names::same_bytes(n.as_bytes(), action.as_bytes()))
            .map(ActionSet::bit)
    }

    /// The actions granted by granting `action`: itself and everything it implies.
    #[must_use]
    pub fn granted(&self, action: &str) -> Option<ActionSet> {
        let i = self.names.iter().position(|n| n == action)?;
        self.closure.get(i).copied()
    }

    /// Every declared action.
    #[must_use]
    pub fn all(&self) -> ActionSet {
        self.closure
            .iter()
            .fold(ActionSet::EMPTY, |acc, s| acc.union(*s))
    }

    /// The declared names, in order.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The names of the actions in `set`, in declaration order.
    #[must_use]
    pub fn names_of(&self, set: ActionSet) -> Vec<&str> {
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| set.contains(ActionSet::bit(*i)))
            .map(|(_, n)| n.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amaters_levels_are_ordered() {
        let v = ActionVocabulary::amaters_levels();
        let read = v.requested("read").unwrap();
        let write = v.requested("write").unwrap();
        let admin = v.requested("admin").unwrap();
        assert!(
            v.granted("admin")
                .unwrap()
                .contains(read.union(write).union(admin))
        );
        assert!(v.granted("write").unwrap().contains(read));
        assert!(!v.granted("write").unwrap().contains(admin));
        assert!(!v.granted("read").unwrap().contains(write));
        assert!(v.requested("Read").is_none());
    }

    #[test]
    fn custom_vocabulary_with_transitive_implication() {
        let def = ActionsDef {
            names: ["create", "read", "update", "delete", "manage", "own"]
                .map(String::from)
                .to_vec(),
            implies: BTreeMap::from([
                (
                    "manage".into(),
                    ["create", "read", "update", "delete"]
                        .map(String::from)
                        .to_vec(),
                ),
                ("own".into(), vec!["manage".into()]),
            ]),
        };
        let v = ActionVocabulary::new(&def).unwrap();
        assert!(
            v.granted("own")
                .unwrap()
                .contains(v.requested("delete").unwrap())
        );
        assert_eq!(v.names_of(v.granted("manage").unwrap()).len(), 5);
    }

    #[test]
    fn vocabulary_errors() {
        let bad = |names: &[&str]| ActionsDef {
            names: names.iter().map(|s| s.to_string()).collect(),
            implies: BTreeMap::new(),
        };
        assert_eq!(ActionVocabulary::new(&bad(&[])), Err(ActionsError::Empty));
        assert!(matches!(
            ActionVocabulary::new(&bad(&["a", "a"])),
            Err(ActionsError::Duplicate(_))
        ));
        assert!(matches!(
            ActionVocabulary::new(&bad(&["*"])),
            Err(ActionsError::InvalidName(_))
        ));
        assert!(matches!(
            ActionVocabulary::new(&bad(&["réad"])),
            Err(ActionsError::InvalidName(_))
        ));
        let names: Vec<String> = (0..65).map(|i| format!("a{i}")).collect();
        assert!(matches!(
            ActionVocabulary::new(&ActionsDef {
                names,
                implies: BTreeMap::new()
            }),
            Err(ActionsError::TooMany(65))
        ));
        let mut def = bad(&["a"]);
        def.implies.insert("a".into(), vec!["b".into()]);
        assert_eq!(
            ActionVocabulary::new(&def),
            Err(ActionsError::Unknown("b".into()))
        );
    }
}
