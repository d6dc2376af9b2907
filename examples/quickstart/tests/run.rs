//! Runs the quickstart binary as the README does and checks what it prints.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::process::Command;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn audit_line(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("audit: "))
        .unwrap();
    serde_json::from_str(line).unwrap()
}

#[test]
fn default_run_allows_and_audits() {
    let out = run(&[]);
    assert!(out.contains("status: 200 OK"), "{out}");
    assert!(
        out.contains("decision: allowed by role `reader`, rule `collection:* read`"),
        "{out}"
    );
    let event = audit_line(&out);
    assert_eq!(event["event_type"], "authorization");
    assert_eq!(event["result"], "allowed");
    assert_eq!(event["principal"]["id"], "alice");
    assert_eq!(event["auth_method"], "APIKey");
    assert_eq!(event["metadata"]["api_key_id"], "key-001");
}

#[test]
fn reader_cannot_write_and_the_reason_is_audited() {
    let out = run(&["demo-reader-key", "write", "collection:datasets"]);
    assert!(out.contains("status: 403 Forbidden"), "{out}");
    let event = audit_line(&out);
    assert_eq!(event["result"], "denied");
    assert_eq!(event["reason"], "denied: no rule matched (deny by default)");
}

#[test]
fn custom_role_inheritance_and_explicit_deny() {
    let out = run(&["demo-scientist-key", "write", "collection:datasets"]);
    assert!(out.contains("status: 200 OK"), "{out}");
    let out = run(&["demo-scientist-key", "read", "collection:other"]);
    assert!(out.contains("inherited via `data_scientist`"), "{out}");
    let out = run(&["demo-scientist-key", "read", "collection:payroll"]);
    assert!(out.contains("status: 403 Forbidden"), "{out}");
    assert!(out.contains("denied by explicit deny"), "{out}");
}

#[test]
fn wrong_key_is_401_with_challenge_and_no_secret_in_the_log() {
    let out = run(&["not-a-real-key-xyz"]);
    assert!(out.contains("status: 401 Unauthorized"), "{out}");
    assert!(
        out.contains(r#"WWW-Authenticate: ApiKey realm="quickstart""#),
        "{out}"
    );
    assert!(!out.contains("not-a-real-key-xyz"), "{out}");
    assert_eq!(audit_line(&out)["result"], "failure");
}

#[test]
fn invalid_resource_is_denied_with_a_reason() {
    let out = run(&["demo-admin-key", "read", "collection:../etc"]);
    assert!(out.contains("status: 403 Forbidden"), "{out}");
    assert!(out.contains("`.` or `..` path component"), "{out}");
}
