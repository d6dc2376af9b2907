//! The policy as data: serde structs for the roles file, for policies built in code and for
//! policies stored in a database.

use serde::{Deserialize, Serialize};

use crate::action::ActionsDef;
use crate::condition::ConditionDef;

/// Which built-in roles a policy starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Builtins {
    /// AmateRS: `admin` (`*` admin), `user` (`collection:*` write), `reader`
    /// (`collection:*` read), with the `read` < `write` < `admin` levels. The default, so that
    /// an AmateRS `roles.toml` whose roles inherit `reader` loads as it is.
    #[default]
    Amaters,
    /// Aethera: `admin` (all 15 permissions), `analyst`, `viewer`, with the permission names
    /// (`projects:create` … `audit:read`) as actions.
    Aethera,
    /// No built-in role.
    None,
}

/// One rule: a resource pattern and the actions it grants (or, in `deny`, forbids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// `*`, `collection:*`, `collection:**`, `collection:name`, `server`.
    pub resource: String,
    /// Action names of the vocabulary, or `*` for every declared action.
    pub actions: Vec<String>,
    /// Optional conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ConditionDef>,
}

impl RuleDef {
    /// A rule without conditions.
    #[must_use]
    pub fn new(resource: impl Into<String>, actions: &[&str]) -> Self {
        Self {
            resource: resource.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            when: None,
        }
    }
}

/// One role, in the AmateRS `[[roles]]` form plus `deny` rules and the `superuser` flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// `[A-Za-z0-9_.-]+`, at most 128 bytes; case-sensitive.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What the role allows.
    #[serde(default)]
    pub permissions: Vec<RuleDef>,
    /// What the role forbids; an explicit deny overrides every allow of every role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<RuleDef>,
    /// Roles whose rules this one also has (several allowed; no cycles).
    #[serde(default)]
    pub inherits: Vec<String>,
    /// Holders of this role may do everything (explicit denies still apply).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superuser: bool,
}

impl RoleDef {
    /// A role with a name and nothing else.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            permissions: Vec::new(),
            deny: Vec::new(),
            inherits: Vec::new(),
            superuser: false,
        }
    }

    /// Adds an allow rule.
    #[must_use]
    pub fn allow(mut self, resource: &str, actions: &[&str]) -> Self {
        self.permissions.push(RuleDef::new(resource, actions));
        self
    }

    /// Adds a deny rule.
    #[must_use]
    pub fn deny(mut self, resource: &str, actions: &[&str]) -> Self {
        self.deny.push(RuleDef::new(resource, actions));
        self
    }

    /// Adds a parent role.
    #[must_use]
    pub fn inherit(mut self, parent: &str) -> Self {
        self.inherits.push(parent.to_owned());
        self
    }
}

/// A whole policy: the AmateRS `roles.toml` plus the `[authz]` settings that shape it.
///
/// ```toml
/// default_role = "user"                # AmateRS [authz] default_role
/// default_mode = "deny-by-default"     # the only mode there is
///
/// [[roles]]
/// name = "data_scientist"
/// description = "Data scientist with specific collection access"
/// permissions = [
///   { resource = "collection:datasets", actions = ["read", "write"] },
///   { resource = "collection:models", actions = ["read"] },
/// ]
/// inherits = ["reader"]
/// deny = [{ resource = "collection:secrets", actions = ["read"] }]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The built-in roles to start from (default AmateRS).
    #[serde(default)]
    pub builtins: Builtins,
    /// The action vocabulary; when absent, the one of the built-ins (the AmateRS levels for
    /// `amaters` and `none`, the Aethera permissions for `aethera`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionsDef>,
    /// Role given to principals that hold no role (AmateRS `default_role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<String>,
    /// AmateRS `default_mode`; only `"deny-by-default"` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_mode: Option<String>,
    /// A principal attribute that, when exactly `true`, makes the principal a superuser
    /// (Aethera's `is_superuser`). Off unless set: only enable it for attributes your
    /// authenticators take from a trusted source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser_attribute: Option<String>,
    /// The roles.
    #[serde(default)]
    pub roles: Vec<RoleDef>,
}

/// The Aethera permission names, in the order of its documentation.
pub const AETHERA_PERMISSIONS: [&str; 15] = [
    "projects:create",
    "projects:read",
    "projects:update",
    "projects:delete",
    "runs:create",
    "runs:read",
    "runs:update",
    "runs:delete",
    "reports:read",
    "reports:export",
    "models:read",
    "models:manage",
    "users:read",
    "users:manage",
    "audit:read",
];

impl Builtins {
    /// The built-in roles.
    #[must_use]
    pub fn roles(self) -> Vec<RoleDef> {
        match self {
            Self::Amaters => vec![
                RoleDef {
                    description: "Full access to all resources: all operations on all \
                                  collections, server administration, user management"
                        .into(),
                    ..RoleDef::new("admin").allow("*", &["admin"])
                },
                RoleDef {
                    description: "Read/write to all collections; cannot create or drop \
                                  collections or perform admin operations"
                        .into(),
                    ..RoleDef::new("user").allow("collection:*", &["write"])
                },
                RoleDef {
                    description: "Read from all collections".into(),
                    ..RoleDef::new("reader").allow("collection:*", &["read"])
                },
            ],
            Self::Aethera => vec![
                RoleDef {
                    description: "Full system access (all permissions)".into(),
                    ..RoleDef::new("admin").allow("*", &AETHERA_PERMISSIONS)
                },
                RoleDef {
                    description: "Can create projects, run analyses, view results".into(),
                    ..RoleDef::new("analyst").allow(
                        "*",
                        &[
                            "projects:create",
                            "projects:read",
                            "runs:create",
                            "runs:read",
                            "reports:read",
                        ],
                    )
                },
                RoleDef {
                    description: "Read-only access to projects and reports".into(),
                    ..RoleDef::new("viewer").allow("*", &["projects:read", "reports:read"])
                },
            ],
            Self::None => Vec::new(),
        }
    }

    /// The default vocabulary of these built-ins.
    #[must_use]
    pub fn default_actions(self) -> ActionsDef {
        match self {
            Self::Aethera => ActionsDef {
                names: AETHERA_PERMISSIONS.map(String::from).to_vec(),
                implies: Default::default(),
            },
            Self::Amaters | Self::None => ActionsDef::amaters_levels(),
        }
    }
}
