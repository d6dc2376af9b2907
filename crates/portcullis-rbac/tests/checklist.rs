//! Every pitfall of `SECURITY-CHECKLIST.md` §5d ("RBAC policy engine: deny-by-default
//! pitfalls"), one named test each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;
use common::principal;

use portcullis_core::{AccessRequest, Decision, DecisionReason, PolicyEngine};
use portcullis_rbac::{Policy, RbacEngine};

fn decide(engine: &RbacEngine, roles: &[&str], action: &str, resource: &str) -> Decision {
    engine.evaluate(&AccessRequest::new(&principal(roles), action, resource))
}

fn engine(toml: &str) -> RbacEngine {
    RbacEngine::from_toml(toml).unwrap_or_else(|e| panic!("{e}"))
}

const POLICY: &str = r#"
builtins = "none"

[[roles]]
name = "reader"
permissions = [{ resource = "collection:*", actions = ["read"] }]

[[roles]]
name = "editor"
permissions = [{ resource = "collection:a", actions = ["write"] }]
inherits = ["reader"]

[[roles]]
name = "admin"
permissions = [{ resource = "*", actions = ["admin"] }]
deny = [{ resource = "collection:vault", actions = ["read"] }]
"#;

fn is_invalid(d: &Decision) -> bool {
    matches!(d.reason(), DecisionReason::InvalidRequest(_))
}

// --- Default deny ----------------------------------------------------------------------

#[test]
fn default_deny_empty_policy_denies_everything() {
    let e = RbacEngine::new(Policy::deny_all()).unwrap();
    for (roles, action, resource) in [
        (&["admin"][..], "admin", "*"),
        (&["reader"][..], "read", "collection:a"),
        (&[][..], "read", "server"),
    ] {
        let d = decide(&e, roles, action, resource);
        assert_eq!(
            d.reason(),
            &DecisionReason::NoMatch,
            "{roles:?} {action} {resource}"
        );
    }
}

#[test]
fn default_deny_no_matching_rule() {
    let e = engine(POLICY);
    assert_eq!(
        decide(&e, &["reader"], "read", "server").reason(),
        &DecisionReason::NoMatch
    );
    assert_eq!(
        decide(&e, &["reader"], "write", "collection:a").reason(),
        &DecisionReason::NoMatch
    );
}

#[test]
fn default_deny_unknown_role_action_and_resource_type() {
    let e = engine(POLICY);
    assert!(decide(&e, &["superhero"], "read", "collection:a").is_denied());
    assert!(is_invalid(&decide(&e, &["admin"], "fly", "collection:a")));
    assert!(is_invalid(&decide(&e, &["admin"], "*", "collection:a")));
    assert!(is_invalid(&decide(&e, &["admin"], "READ", "collection:a")));
    assert!(decide(&e, &["reader"], "read", "bucket:a").is_denied());
}

#[test]
fn default_deny_subject_without_roles() {
    let e = engine(POLICY);
    assert_eq!(
        decide(&e, &[], "read", "collection:a").reason(),
        &DecisionReason::NoMatch
    );
    // With a default role configured, a roleless principal gets exactly that role.
    let with_default = engine(&format!("default_role = \"reader\"\n{POLICY}"));
    assert!(decide(&with_default, &[], "read", "collection:a").is_allowed());
    assert!(decide(&with_default, &[], "write", "collection:a").is_denied());
    // A principal that holds only unknown roles does not get the default role.
    assert!(decide(&with_default, &["ghost"], "read", "collection:a").is_denied());
}

#[test]
fn default_deny_load_error_never_allows() {
    // A policy that does not load yields no engine at all; a failed reload keeps the old one.
    assert!(
        RbacEngine::from_toml(
            "[[roles]]\nname = \"x\"\npermissions = [{ resource = \"*\", actions = [\"nope\"] }]"
        )
        .is_err()
    );
    let e = engine(POLICY);
    assert!(decide(&e, &["reader"], "write", "collection:b").is_denied());
    let err = e.reload_toml(
        "builtins = \"none\"\n[[roles]]\nname = \"reader\"\npermissions = [{ resource = \"*\", actions = [\"admin\"] }]\ninherits = [\"missing\"]",
    );
    assert!(err.is_err());
    assert!(decide(&e, &["reader"], "write", "collection:b").is_denied());
    assert!(decide(&e, &["reader"], "read", "collection:b").is_allowed());
}

#[test]
fn default_deny_unsupported_mode_is_a_load_error() {
    let err = RbacEngine::from_toml(&format!("default_mode = \"allow-by-default\"\n{POLICY}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("deny-by-default"), "{err}");
}

#[test]
fn explicit_deny_overrides_any_allow() {
    let e = engine(POLICY);
    let d = decide(&e, &["admin"], "read", "collection:vault");
    assert!(matches!(d.reason(), DecisionReason::ExplicitDeny(g) if g.role() == "admin"));
    // Even when the allow comes from another role the principal holds.
    let d = decide(&e, &["reader", "admin"], "read", "collection:vault");
    assert!(matches!(d.reason(), DecisionReason::ExplicitDeny(_)));
    // The deny is for `read` only (and what implies it? no: a deny names the actions it
    // forbids, closed under implication: denying `read` does not deny `write`).
    assert!(decide(&e, &["admin"], "write", "collection:vault").is_allowed());
}

#[test]
fn explicit_deny_overrides_superuser() {
    let e = engine(
        r#"
builtins = "none"
[[roles]]
name = "root"
superuser = true
[[roles]]
name = "jailed"
deny = [{ resource = "*", actions = ["admin"] }]
"#,
    );
    assert_eq!(
        decide(&e, &["root"], "admin", "server").reason(),
        &DecisionReason::Superuser
    );
    assert!(matches!(
        decide(&e, &["root", "jailed"], "read", "server").reason(),
        DecisionReason::ExplicitDeny(_)
    ));
}

// --- Wildcards -------------------------------------------------------------------------

#[test]
fn wildcard_does_not_match_empty_segment_bare_collection_or_deeper_names() {
    let e = engine(POLICY);
    assert!(decide(&e, &["reader"], "read", "collection:x").is_allowed());
    assert!(is_invalid(&decide(&e, &["reader"], "read", "collection:")));
    assert!(decide(&e, &["reader"], "read", "collection").is_denied());
    assert!(decide(&e, &["reader"], "read", "collection:a:b").is_denied());
    assert!(decide(&e, &["reader"], "read", "collectionx:a").is_denied());
    // `**` does cross separators.
    let deep = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"collection:**\", actions = [\"read\"] }]",
    );
    assert!(decide(&deep, &["r"], "read", "collection:a:b:c").is_allowed());
    assert!(decide(&deep, &["r"], "read", "collection").is_denied());
}

#[test]
fn wildcard_partial_segment_is_rejected_at_load() {
    for pattern in ["admin*", "collection:a*", "*:x", "collection:*:x"] {
        let toml = format!(
            "[[roles]]\nname = \"r\"\npermissions = [{{ resource = \"{pattern}\", actions = [\"read\"] }}]"
        );
        assert!(RbacEngine::from_toml(&toml).is_err(), "{pattern}");
    }
}

#[test]
fn wildcard_in_requested_resource_is_data() {
    let e = engine(POLICY);
    // An exact grant on `collection:a` does not grant a resource literally named `collection:*`.
    assert!(decide(&e, &["editor"], "write", "collection:*").is_denied());
    // `collection:*` as data is just one child of `collection`.
    let d = decide(&e, &["reader"], "read", "collection:*");
    assert!(d.is_allowed());
    let only_exact = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"server\", actions = [\"read\"] }]",
    );
    assert!(decide(&only_exact, &["r"], "read", "*").is_denied());
}

#[test]
fn wildcard_action_does_not_grant_unregistered_actions() {
    let e = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"*\", actions = [\"*\"] }]",
    );
    assert!(decide(&e, &["r"], "admin", "server").is_allowed());
    assert!(is_invalid(&decide(&e, &["r"], "delete", "server")));
}

// --- Path traversal --------------------------------------------------------------------

#[test]
fn path_traversal_in_resource_names_is_rejected() {
    let e = engine(POLICY);
    for resource in [
        "collection:../x",
        "collection:a/../b",
        "collection:./a",
        "collection:%2e%2e%2f",
        "collection:%252e%252e",
        "collection:..\\",
        "collection:a\\..\\vault",
        "collection:a%00",
        "collection:a.",
        "collection:a ",
        "collection:..",
    ] {
        let d = decide(&e, &["admin"], "read", resource);
        assert!(is_invalid(&d), "{resource}: {d}");
    }
    // A grant on `collection:a` never authorizes `collection:a/../b`.
    assert!(decide(&e, &["editor"], "write", "collection:a/../b").is_denied());
}

// --- Separator injection ---------------------------------------------------------------

#[test]
fn separator_injection_cannot_escape_a_namespace() {
    let e = engine(POLICY);
    // Exact grant on collection:a: an id with `:` is another, deeper resource.
    assert!(decide(&e, &["editor"], "write", "collection:a:admin").is_denied());
    assert!(decide(&e, &["editor"], "write", "collection:a").is_allowed());
}

#[test]
fn separator_in_role_names_is_rejected() {
    for name in ["a:b", "a b", "a*", "", "ad\u{0}min", "admın"] {
        let toml = format!("[[roles]]\nname = \"{}\"", name.escape_default());
        assert!(RbacEngine::from_toml(&toml).is_err(), "{name:?}");
    }
    // Principals claiming such roles match nothing.
    let e = engine(POLICY);
    assert!(decide(&e, &["reader:admin"], "read", "collection:a").is_denied());
}

// --- Case folding ----------------------------------------------------------------------

#[test]
fn case_is_significant_for_roles_actions_and_resources() {
    let e = engine(POLICY);
    assert!(decide(&e, &["Admin"], "read", "collection:a").is_denied());
    assert!(decide(&e, &["ADMIN"], "read", "collection:a").is_denied());
    assert!(is_invalid(&decide(&e, &["reader"], "Read", "collection:a")));
    assert!(decide(&e, &["editor"], "write", "Collection:a").is_denied());
    assert!(decide(&e, &["editor"], "write", "collection:A").is_denied());
}

#[test]
fn unicode_specials_do_not_collapse_onto_ascii() {
    let e = engine(POLICY);
    // Dotless ı, dotted İ, long s, Kelvin sign, sharp s, fi ligature.
    for role in ["admın", "İnfo", "ſuper", "\u{212A}ey", "ßs", "\u{FB01}le"] {
        assert!(
            decide(&e, &[role], "read", "collection:a").is_denied(),
            "{role}"
        );
    }
    for resource in ["collection:\u{212A}", "collection:ſ"] {
        // Canonical (NFC) data: allowed by `collection:*` only as themselves, never equal to
        // `k` or `s`.
        assert!(
            decide(&e, &["editor"], "write", resource).is_denied(),
            "{resource}"
        );
    }
    assert!(decide(&e, &["editor"], "write", "collection:\u{0251}").is_denied());
}

// --- Unicode normalization -------------------------------------------------------------

#[test]
fn nfc_and_nfd_forms_are_not_both_accepted() {
    let e = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"collection:caf\u{e9}\", actions = [\"read\"] }]",
    );
    assert!(decide(&e, &["r"], "read", "collection:caf\u{e9}").is_allowed());
    assert!(is_invalid(&decide(
        &e,
        &["r"],
        "read",
        "collection:cafe\u{301}"
    )));
    // A pattern in NFD is a load error.
    assert!(RbacEngine::from_toml(
        "[[roles]]\nname = \"r\"\npermissions = [{ resource = \"collection:cafe\u{301}\", actions = [\"read\"] }]"
    )
    .is_err());
}

#[test]
fn compatibility_characters_never_turn_into_traversal() {
    // Fullwidth solidus and ellipsis stay what they are (no NFKC is applied).
    let e = engine(POLICY);
    let d = decide(&e, &["editor"], "write", "collection:a\u{FF0F}\u{2026}");
    assert_eq!(d.reason(), &DecisionReason::NoMatch);
    let d = decide(&e, &["reader"], "read", "collection:\u{2026}\u{FF0F}x");
    assert!(d.is_allowed(), "{d}");
}

// --- Matcher anchoring -----------------------------------------------------------------

#[test]
fn anchoring_newline_and_trailing_slash_do_not_bypass() {
    let e = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\ndeny = [{ resource = \"collection:vault\", actions = [\"read\"] }]\npermissions = [{ resource = \"collection:*\", actions = [\"read\"] }]",
    );
    assert!(decide(&e, &["r"], "read", "collection:vault").is_denied());
    assert!(is_invalid(&decide(
        &e,
        &["r"],
        "read",
        "collection:vault\n"
    )));
    assert!(is_invalid(&decide(
        &e,
        &["r"],
        "read",
        "collection:vault\r"
    )));
    // `vault/` is another name: allowed by `collection:*`, not the denied `vault`; it can only
    // reach data if the application maps both names to one object, which it must not.
    let d = decide(&e, &["r"], "read", "collection:vault/");
    assert!(matches!(d.reason(), DecisionReason::Allowed(_)), "{d}");
    let exact = engine(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"collection:a\", actions = [\"read\"] }]",
    );
    assert!(decide(&exact, &["r"], "read", "collection:a/").is_denied());
    assert!(is_invalid(&decide(
        &exact,
        &["r"],
        "read",
        "collection:a\n"
    )));
}

// --- Hierarchy and caching -------------------------------------------------------------

#[test]
fn inheritance_cycles_are_load_errors() {
    let err = RbacEngine::from_toml(
        r#"
[[roles]]
name = "a"
inherits = ["b"]
[[roles]]
name = "b"
inherits = ["c"]
[[roles]]
name = "c"
inherits = ["a"]
[[roles]]
name = "self"
inherits = ["self"]
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("inheritance cycle: a -> b -> c -> a"), "{err}");
    assert!(err.contains("inheritance cycle: self -> self"), "{err}");
}

#[test]
fn revoking_a_role_takes_effect_on_the_next_request() {
    let e = engine(POLICY);
    assert!(decide(&e, &["editor"], "write", "collection:a").is_allowed());
    e.reload_toml(&POLICY.replace(
        "permissions = [{ resource = \"collection:a\", actions = [\"write\"] }]",
        "permissions = []",
    ))
    .unwrap();
    assert!(decide(&e, &["editor"], "write", "collection:a").is_denied());
    // Inherited grants still apply.
    assert!(decide(&e, &["editor"], "read", "collection:a").is_allowed());
}
