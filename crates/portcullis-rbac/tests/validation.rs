//! Validation reports every problem, with its place in the file, as errors and warnings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use portcullis_core::Location;
use portcullis_rbac::{IssueKind, Policy, PolicyDocument, RoleDef, RuleDef, Severity};

fn issues(toml: &str) -> Vec<(Severity, IssueKind, Option<Location>)> {
    let report = match Policy::from_toml(toml) {
        Ok(p) => p.report().clone(),
        Err(e) => e.report,
    };
    report
        .issues()
        .iter()
        .map(|i| (i.severity, i.kind, i.location))
        .collect()
}

fn at(line: usize, column: usize) -> Option<Location> {
    Some(Location { line, column })
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let toml = r#"[[roles]]
name = "a"
permissions = [{ resource = "collection:x*", actions = ["read", "jump"] }]
inherits = ["ghost"]

[[roles]]
name = "a"

[[roles]]
name = "b:c"

[[roles]]
name = "d"
permissions = [{ resource = "server", actions = [] }]
deny = [{ resource = "*", actions = ["read"], when = { hours = [3, 3] } }]
"#;
    let found = issues(toml);
    use IssueKind as K;
    use Severity::Error as E;
    assert_eq!(
        found,
        vec![
            (E, K::InvalidPattern, at(3, 29)),
            (E, K::UnknownAction, at(3, 65)),
            (E, K::UnknownRole, at(4, 13)),
            (E, K::DuplicateRole, at(7, 8)),
            (E, K::InvalidRoleName, at(10, 8)),
            (E, K::NoActions, at(14, 29)),
            (E, K::InvalidCondition, at(15, 54)),
        ],
        "{found:#?}"
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let found = issues("[[roles]]\nname = \"a\"\npermissions = [{ resource = }]\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, IssueKind::Syntax);
    assert_eq!(found[0].2.map(|l| l.line), Some(3));

    let unknown_key = issues("[[roles]]\nname = \"a\"\npermisions = []\n");
    assert_eq!(unknown_key[0].1, IssueKind::Syntax);
    assert_eq!(unknown_key[0].2.map(|l| l.line), Some(3));
}

#[test]
fn cycles_and_unknown_default_role() {
    let found = issues(
        "default_role = \"nobody\"\n[[roles]]\nname = \"x\"\ninherits = [\"y\"]\n[[roles]]\nname = \"y\"\ninherits = [\"x\"]\n",
    );
    let kinds: Vec<IssueKind> = found.iter().map(|f| f.1).collect();
    assert!(kinds.contains(&IssueKind::InheritanceCycle), "{found:?}");
    assert!(kinds.contains(&IssueKind::UnknownRole), "{found:?}");
    assert_eq!(
        found
            .iter()
            .find(|f| f.1 == IssueKind::UnknownRole)
            .unwrap()
            .2,
        at(1, 16)
    );
}

#[test]
fn warnings_do_not_prevent_loading() {
    let toml = r#"builtins = "none"
[[roles]]
name = "w"
permissions = [
  { resource = "c:*", actions = ["write"] },
  { resource = "c:x", actions = ["read"] },
  { resource = "c:*", actions = ["write"] },
  { resource = "d:**", actions = ["admin"] },
  { resource = "d:e:f", actions = ["write"] },
  { resource = "d:*", actions = ["read", "admin"] },
]
[[roles]]
name = "empty"
[[roles]]
name = "admin"
"#;
    let policy = Policy::from_toml(toml).unwrap();
    let warnings: Vec<(IssueKind, Option<Location>)> = policy
        .report()
        .warnings()
        .map(|w| (w.kind, w.location))
        .collect();
    use IssueKind as K;
    assert_eq!(
        warnings,
        vec![
            (K::RedundantRule, at(6, 16)),
            (K::RedundantRule, at(7, 16)),
            (K::RedundantRule, at(9, 16)),
            (K::RedundantRule, at(10, 16)),
            (K::RedundantAction, at(10, 34)),
            (K::EmptyRole, at(13, 8)),
            (K::EmptyRole, at(15, 8)),
        ],
        "{}",
        policy.report()
    );
}

#[test]
fn replacing_a_builtin_is_a_warning() {
    let toml = "[[roles]]\nname = \"reader\"\npermissions = [{ resource = \"docs:*\", actions = [\"read\"] }]\n";
    let found = issues(toml);
    assert_eq!(
        found,
        vec![(Severity::Warning, IssueKind::ReplacesBuiltin, at(2, 8))]
    );
}

#[test]
fn documents_built_in_code_are_validated_too() {
    let doc = PolicyDocument {
        roles: vec![
            RoleDef::new("ok").allow("collection:*", &["read"]),
            RoleDef::new("bad")
                .allow("a:*:b", &["read"])
                .inherit("nope"),
            RoleDef {
                permissions: vec![RuleDef::new("x", &["fly"])],
                ..RoleDef::new("bad2")
            },
        ],
        ..PolicyDocument::default()
    };
    let err = Policy::from_document(&doc).unwrap_err();
    let kinds: Vec<IssueKind> = err.report.errors().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [
            IssueKind::UnknownRole,
            IssueKind::InvalidPattern,
            IssueKind::UnknownAction
        ]
    );
    assert!(err.report.issues().iter().all(|i| i.location.is_none()));
    // JSON round trip of a valid document (policies stored in a database).
    let good = PolicyDocument {
        roles: vec![
            RoleDef::new("ok")
                .allow("collection:*", &["read"])
                .deny("collection:x", &["read"]),
        ],
        ..PolicyDocument::default()
    };
    let json = serde_json::to_string(&good).unwrap();
    let back: PolicyDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(back, good);
    assert!(Policy::from_document(&back).is_ok());
}

#[test]
fn invalid_action_vocabularies_are_reported() {
    let found = issues("builtins = \"none\"\n[actions]\nnames = [\"read\", \"read\"]\n");
    assert_eq!(found[0].1, IssueKind::InvalidActions);
    assert_eq!(found[0].2.map(|l| l.line), Some(2));
}
