//! Golden tests for the built-in role sets, as the seed documents describe them (AmateRS
//! "Built-in Roles" and "Custom Roles"; Aethera "Default Roles" and "Default Permissions").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;
use common::principal;

use portcullis_core::{AccessRequest, AuthMethod, PolicyEngine, Principal, PrincipalKind};
use portcullis_rbac::{AETHERA_PERMISSIONS, Policy, RbacEngine};
use time::OffsetDateTime;

fn allowed(engine: &RbacEngine, role: &str, action: &str, resource: &str) -> bool {
    engine
        .evaluate(&AccessRequest::new(&principal(&[role]), action, resource))
        .is_allowed()
}

/// The AmateRS table: role × (action, resource) → allowed.
#[test]
fn amaters_builtin_roles() {
    let engine = RbacEngine::new(Policy::amaters()).unwrap();
    let table: &[(&str, &str, &str, [bool; 3])] = &[
        // action, resource, description, [admin, user, reader]
        (
            "read",
            "collection:orders",
            "read a collection",
            [true, true, true],
        ),
        (
            "write",
            "collection:orders",
            "write to a collection",
            [true, true, false],
        ),
        (
            "admin",
            "collection:orders",
            "create or drop a collection",
            [true, false, false],
        ),
        (
            "admin",
            "server",
            "server administration",
            [true, false, false],
        ),
        ("read", "server", "read server state", [true, false, false]),
        ("admin", "user:bob", "user management", [true, false, false]),
    ];
    for (action, resource, what, expected) in table {
        for (role, want) in ["admin", "user", "reader"].iter().zip(expected) {
            assert_eq!(
                allowed(&engine, role, action, resource),
                *want,
                "{role} / {what} ({action} on {resource})"
            );
        }
    }
}

/// The AmateRS custom role example, loaded from its documentation verbatim.
#[test]
fn amaters_custom_role_example() {
    let engine = RbacEngine::from_toml(
        r#"
[[roles]]
name = "data_scientist"
description = "Data scientist with specific collection access"
permissions = [
{ resource = "collection:datasets", actions = ["read", "write"] },
{ resource = "collection:models", actions = ["read"] }
]
inherits = ["reader"]
"#,
    )
    .unwrap();
    let ds = |action, resource| allowed(&engine, "data_scientist", action, resource);
    assert!(ds("read", "collection:datasets"));
    assert!(ds("write", "collection:datasets"));
    assert!(!ds("admin", "collection:datasets"));
    assert!(ds("read", "collection:models"));
    assert!(!ds("write", "collection:models"));
    // Inherited from `reader`.
    assert!(ds("read", "collection:anything"));
    assert!(!ds("write", "collection:anything"));
    assert!(!ds("read", "server"));
    // `read` next to `write` is redundant: a warning, not an error.
    let warnings: Vec<String> = engine
        .policy()
        .report()
        .warnings()
        .map(ToString::to_string)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`read` is already included")),
        "{warnings:?}"
    );
    // And `collection:models read` is already granted by the inherited `collection:* read`.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("collection:models read")),
        "{warnings:?}"
    );
}

/// AmateRS `[authz]`: `default_role = "user"`, `default_mode = "deny-by-default"`.
#[test]
fn amaters_authz_settings() {
    let engine =
        RbacEngine::from_toml("default_role = \"user\"\ndefault_mode = \"deny-by-default\"\n")
            .unwrap();
    let nobody = principal(&[]);
    let d = engine.evaluate(&AccessRequest::new(&nobody, "write", "collection:x"));
    assert!(d.is_allowed(), "{d}");
    assert!(engine.has_role(&nobody, "user"));
    assert!(
        engine
            .evaluate(&AccessRequest::new(&nobody, "admin", "server"))
            .is_denied()
    );
}

/// Aethera: admin has all 15 permissions; analyst creates projects, runs analyses and views
/// results; viewer reads projects and reports.
#[test]
fn aethera_builtin_roles() {
    let engine = RbacEngine::new(Policy::aethera()).unwrap();
    assert_eq!(AETHERA_PERMISSIONS.len(), 15);
    let admin = principal(&["admin"]);
    for permission in AETHERA_PERMISSIONS {
        assert!(
            engine.has_permission(&admin, permission),
            "admin {permission}"
        );
    }
    let analyst = principal(&["analyst"]);
    let viewer = principal(&["viewer"]);
    let expected_analyst = [
        "projects:create",
        "projects:read",
        "runs:create",
        "runs:read",
        "reports:read",
    ];
    let expected_viewer = ["projects:read", "reports:read"];
    for permission in AETHERA_PERMISSIONS {
        assert_eq!(
            engine.has_permission(&analyst, permission),
            expected_analyst.contains(&permission),
            "analyst {permission}"
        );
        assert_eq!(
            engine.has_permission(&viewer, permission),
            expected_viewer.contains(&permission),
            "viewer {permission}"
        );
    }
    // require_permission explains itself.
    let decision = engine.require_permission(&viewer, "projects:delete");
    assert_eq!(
        decision.to_string(),
        "denied: no rule matched (deny by default)"
    );
    let decision = engine.require_permission(&viewer, "projects:read");
    assert!(decision.to_string().contains("role `viewer`"), "{decision}");
    // Unknown permissions are denials, not errors.
    assert!(!engine.has_permission(&admin, "projects:fly"));
    // Aethera's get_user_permissions for the analyst.
    assert_eq!(
        engine.permissions_on(&analyst, "projects"),
        expected_analyst
    );
}

/// Aethera: "Superusers have all permissions automatically".
#[test]
fn aethera_superuser_attribute() {
    let engine =
        RbacEngine::from_toml("builtins = \"aethera\"\nsuperuser_attribute = \"is_superuser\"\n")
            .unwrap();
    let root = Principal::builder(
        "root",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::UNIX_EPOCH,
    )
    .attribute("is_superuser", true)
    .build()
    .unwrap();
    assert!(engine.has_permission(&root, "users:manage"));
    let not_quite = Principal::builder(
        "x",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::UNIX_EPOCH,
    )
    .attribute("is_superuser", "true")
    .build()
    .unwrap();
    assert!(!engine.has_permission(&not_quite, "users:manage"));
    // Without the setting, the attribute means nothing.
    let plain = RbacEngine::new(Policy::aethera()).unwrap();
    assert!(!plain.has_permission(&root, "users:manage"));
}

/// A custom vocabulary with implication, as an application would declare it.
#[test]
fn custom_vocabulary_with_manage() {
    let engine = RbacEngine::from_toml(
        r#"
builtins = "none"
[actions]
names = ["create", "read", "update", "delete", "manage"]
implies = { manage = ["create", "read", "update", "delete"] }

[[roles]]
name = "owner"
permissions = [{ resource = "project:*", actions = ["manage"] }]
[[roles]]
name = "guest"
permissions = [{ resource = "project:demo", actions = ["read"] }]
"#,
    )
    .unwrap();
    for action in ["create", "read", "update", "delete", "manage"] {
        assert!(allowed(&engine, "owner", action, "project:42"), "{action}");
    }
    assert!(allowed(&engine, "guest", "read", "project:demo"));
    assert!(!allowed(&engine, "guest", "update", "project:demo"));
    assert!(!engine.knows_action("write"));
}
