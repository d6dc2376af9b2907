//! Property tests: the compiled engine agrees with a deliberately simple reference
//! interpreter on random policies and requests, the data filter agrees with the engine, and
//! the loader and parsers never panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::collections::BTreeSet;

use portcullis_core::{
    AccessRequest, AuthMethod, DecisionReason, PolicyEngine, Principal, PrincipalKind,
};
use portcullis_rbac::{
    Builtins, Policy, PolicyDocument, RbacEngine, ResourcePattern, RoleDef, RuleDef,
};
use proptest::prelude::*;
use time::OffsetDateTime;

// --- The reference interpreter ---------------------------------------------------------

fn level(action: &str) -> u8 {
    match action {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

/// Segment-wise matching, written independently of the engine.
fn reference_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" || pattern == "**" {
        return true;
    }
    let p: Vec<&str> = pattern.split(':').collect();
    let r: Vec<&str> = resource.split(':').collect();
    match p.last() {
        Some(&"**") => r.len() > p.len() - 1 && p[..p.len() - 1] == r[..p.len() - 1],
        Some(&"*") => {
            r.len() == p.len() && p[..p.len() - 1] == r[..p.len() - 1] && !r[r.len() - 1].is_empty()
        }
        _ => p == r,
    }
}

fn closure(doc: &PolicyDocument, role: &str, out: &mut BTreeSet<String>) {
    if !out.insert(role.to_owned()) {
        return;
    }
    if let Some(def) = doc.roles.iter().find(|r| r.name == role) {
        for parent in &def.inherits {
            closure(doc, parent, out);
        }
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Allow,
    Deny,
    ExplicitDeny,
}

fn reference(doc: &PolicyDocument, roles: &[String], action: &str, resource: &str) -> Verdict {
    let mut held = BTreeSet::new();
    for role in roles {
        if doc.roles.iter().any(|r| &r.name == role) {
            closure(doc, role, &mut held);
        }
    }
    let rules = |deny: bool| {
        doc.roles
            .iter()
            .filter(|r| held.contains(&r.name))
            .flat_map(move |r| {
                if deny {
                    r.deny.iter()
                } else {
                    r.permissions.iter()
                }
            })
            .collect::<Vec<_>>()
    };
    let wanted = level(action);
    // A deny of level L forbids exactly the actions that L includes.
    if rules(true).iter().any(|rule| {
        reference_matches(&rule.resource, resource)
            && rule.actions.iter().any(|a| level(a) >= wanted)
    }) {
        return Verdict::ExplicitDeny;
    }
    if rules(false).iter().any(|rule| {
        reference_matches(&rule.resource, resource)
            && rule.actions.iter().any(|a| level(a) >= wanted)
    }) {
        return Verdict::Allow;
    }
    Verdict::Deny
}

// --- Generators ------------------------------------------------------------------------

/// Short and long segments, so that names fall in every length class of the compiled
/// engine's name tables (up to 7 bytes, 8 to 16, and longer).
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("objects"),
        Just("a-rather-long-segment")
    ]
    .prop_map(String::from)
}

/// Role `i`'s name: short for even `i`, longer than 16 bytes for odd `i`.
fn role_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("r{i}")
    } else {
        format!("role-with-a-rather-long-name-{i}")
    }
}

fn pattern() -> impl Strategy<Value = String> {
    (proptest::collection::vec(segment(), 1..4), 0..4u8).prop_map(|(segs, kind)| {
        let base = segs.join(":");
        match kind {
            0 => base,
            1 => format!("{base}:*"),
            2 => format!("{base}:**"),
            _ => "*".to_owned(),
        }
    })
}

fn actions() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![Just("read"), Just("write"), Just("admin")].prop_map(String::from),
        1..3,
    )
}

fn rule() -> impl Strategy<Value = RuleDef> {
    (pattern(), actions()).prop_map(|(resource, actions)| RuleDef {
        resource,
        actions,
        when: None,
    })
}

/// Up to 6 roles; role `i` may inherit only from roles with a lower index (a DAG).
fn policy() -> impl Strategy<Value = PolicyDocument> {
    proptest::collection::vec(
        (
            proptest::collection::vec(rule(), 0..5),
            proptest::collection::vec(rule(), 0..2),
            proptest::collection::vec(0usize..6, 0..3),
        ),
        1..7,
    )
    .prop_map(|roles| {
        let roles = roles
            .into_iter()
            .enumerate()
            .map(|(i, (permissions, deny, parents))| {
                let mut inherits: Vec<String> = parents
                    .into_iter()
                    .filter(|p| *p < i)
                    .map(role_name)
                    .collect();
                inherits.sort();
                inherits.dedup();
                RoleDef {
                    permissions,
                    deny,
                    inherits,
                    ..RoleDef::new(role_name(i))
                }
            })
            .collect();
        PolicyDocument {
            builtins: Builtins::None,
            roles,
            ..PolicyDocument::default()
        }
    })
}

fn resource() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("d"),
            Just("objects"),
            Just("a-rather-long-segment")
        ]
        .prop_map(String::from),
        1..5,
    )
    .prop_map(|s| s.join(":"))
}

/// Mostly up to two roles; sometimes many, unknown ones among them, past the number the
/// engine resolves inline (8).
fn held_roles() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        4 => proptest::collection::vec((0usize..8).prop_map(role_name), 0..3),
        1 => proptest::collection::vec((0usize..16).prop_map(role_name), 3..14),
    ]
}

fn principal(roles: &[String]) -> Principal {
    Principal::builder(
        "p",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::UNIX_EPOCH,
    )
    .roles(roles.iter().cloned())
    .build()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn compiled_engine_agrees_with_reference(
        doc in policy(),
        requests in proptest::collection::vec(
            (held_roles(), prop_oneof![Just("read"), Just("write"), Just("admin")], resource()),
            1..20,
        ),
    ) {
        let engine = RbacEngine::new(Policy::from_document(&doc).unwrap()).unwrap();
        for (roles, action, resource) in requests {
            let p = principal(&roles);
            let decision = engine.evaluate(&AccessRequest::new(&p, action, &resource));
            let expected = reference(&doc, &roles, action, &resource);
            let got = match decision.reason() {
                DecisionReason::Allowed(_) => Verdict::Allow,
                DecisionReason::ExplicitDeny(_) => Verdict::ExplicitDeny,
                DecisionReason::NoMatch => Verdict::Deny,
                other => panic!("unexpected {other:?}"),
            };
            prop_assert_eq!(&got, &expected, "{:?} {} {} -> {}", roles, action, resource, decision);

            // The explanation names a role the principal holds directly or by inheritance,
            // and a rule of that role that matches.
            if let DecisionReason::Allowed(grant) | DecisionReason::ExplicitDeny(grant) = decision.reason() {
                let mut held = BTreeSet::new();
                for role in &roles {
                    if doc.roles.iter().any(|r| &r.name == role) {
                        closure(&doc, role, &mut held);
                    }
                }
                prop_assert!(held.contains(grant.role()), "{}", grant);
                let pattern = grant.rule().split(' ').next().unwrap();
                prop_assert!(reference_matches(pattern, &resource), "{}", grant);
                if let Some(first) = grant.via().first() {
                    prop_assert!(roles.iter().any(|r| **r == **first), "{}", grant);
                }
            }
        }
    }

    #[test]
    fn data_filter_agrees_with_engine(
        doc in policy(),
        roles in held_roles(),
        action in prop_oneof![Just("read"), Just("write"), Just("admin")],
        ids in proptest::collection::vec(resource(), 1..20),
    ) {
        let engine = RbacEngine::new(Policy::from_document(&doc).unwrap()).unwrap();
        let p = principal(&roles);
        let filter = engine.permitted(&p, action, "a", None);
        for id in ids {
            let allowed = engine.evaluate(&AccessRequest::new(&p, action, &format!("a:{id}"))).is_allowed();
            prop_assert_eq!(filter.contains(&id), allowed, "a:{} {:?}", id, filter);
        }
    }

    #[test]
    fn loader_does_not_panic(text in "\\PC{0,400}") {
        let _ = Policy::from_toml(&text);
    }

    #[test]
    fn loader_does_not_panic_on_toml_shaped_input(
        name in "[a-z\\-:*. ]{0,12}",
        resource in "[a-z:*%./\\\\ ]{0,16}",
        action in "[a-z*]{0,6}",
        inherits in "[a-z]{0,4}",
    ) {
        let text = format!(
            "[[roles]]\nname = \"{name}\"\npermissions = [{{ resource = \"{resource}\", actions = [\"{action}\"] }}]\ninherits = [\"{inherits}\"]\n"
        );
        let _ = Policy::from_toml(&text);
    }

    #[test]
    fn pattern_parser_does_not_panic(text in "\\PC{0,64}") {
        if let Ok(p) = ResourcePattern::parse(&text) {
            let _ = p.matches(&text);
        }
        let _ = portcullis_rbac::check_resource(&text);
    }
}
