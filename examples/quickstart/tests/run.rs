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
    let event = audit_line(&out);
    assert_eq!(event["event_type"], "authorization");
    assert_eq!(event["result"], "allowed");
    assert_eq!(event["principal"]["id"], "alice");
}

#[test]
fn insufficient_level_is_403_with_reason() {
    let out = run(&["demo-reader-token", "write", "collection:datasets"]);
    assert!(out.contains("status: 403 Forbidden"), "{out}");
    assert_eq!(audit_line(&out)["result"], "denied");
}

#[test]
fn wrong_token_is_401_with_challenge_and_no_secret_in_the_log() {
    let out = run(&["not-a-real-token-xyz"]);
    assert!(out.contains("status: 401 Unauthorized"), "{out}");
    assert!(out.contains(r#"WWW-Authenticate: Bearer realm="quickstart", error="invalid_token""#));
    assert!(!out.contains("not-a-real-token-xyz"), "{out}");
    assert_eq!(audit_line(&out)["result"], "failure");
}
