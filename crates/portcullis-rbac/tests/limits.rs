//! The loader's limits: no roles file makes it allocate without bound (outside testing found
//! a 70 KB chain of 600 roles compiling to ~590 MB, and 1,600 roles aborting the process).
//!
//! The memory bars are measured in a child process (this test binary run again for one test),
//! whose peak resident size is read from `/proc/self/status`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::fmt::Write as _;

use portcullis_core::{AccessRequest, AuthMethod, PolicyEngine, Principal, PrincipalKind};
use portcullis_rbac::{IssueKind, Limits, Policy, PolicyError, RbacEngine};
use time::OffsetDateTime;

/// A chain: `r0` grants `read` on `c:0`; `r{i}` inherits `r{i-1}` and grants `c:{i}`.
fn chain(roles: usize) -> String {
    let mut text = String::from("builtins = \"none\"\n");
    for i in 0..roles {
        let _ = writeln!(text, "[[roles]]\nname = \"r{i}\"");
        let _ = writeln!(
            text,
            "permissions = [{{ resource = \"c:{i}\", actions = [\"read\"] }}]"
        );
        if i > 0 {
            let _ = writeln!(text, "inherits = [\"r{}\"]", i - 1);
        }
    }
    text
}

/// A funnel: `bases` roles with one rule each, one hub inheriting all of them, and `tops`
/// roles inheriting the hub (three levels, but every top holds every base's rule).
fn funnel(bases: usize, tops: usize) -> String {
    let mut text = String::from("builtins = \"none\"\n");
    for i in 0..bases {
        let _ = writeln!(
            text,
            "[[roles]]\nname = \"b{i}\"\npermissions = [{{ resource = \"c:{i}\", actions = [\"read\"] }}]"
        );
    }
    let inherits: Vec<String> = (0..bases).map(|i| format!("\"b{i}\"")).collect();
    let _ = writeln!(
        text,
        "[[roles]]\nname = \"hub\"\ninherits = [{}]",
        inherits.join(", ")
    );
    for i in 0..tops {
        let _ = writeln!(text, "[[roles]]\nname = \"t{i}\"\ninherits = [\"hub\"]");
    }
    text
}

fn limit_errors(error: &PolicyError) -> Vec<String> {
    error
        .report
        .errors()
        .filter(|i| i.kind == IssueKind::LimitExceeded)
        .map(ToString::to_string)
        .collect()
}

fn principal(role: &str) -> Principal {
    Principal::builder(
        "p",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::UNIX_EPOCH,
    )
    .role(role)
    .build()
    .unwrap()
}

/// Runs test `name` of this binary in a child process and returns the child's peak resident
/// size in KiB, as it printed it.
fn child_peak_kib(name: &str) -> u64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PORTCULLIS_LIMITS_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {name} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("peak_kib=").map(|(_, peak)| peak))
        .unwrap_or_else(|| panic!("child {name} printed no peak: {stdout}"))
        .trim()
        .parse()
        .unwrap()
}

fn is_child() -> bool {
    std::env::var_os("PORTCULLIS_LIMITS_CHILD").is_some()
}

fn print_peak() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .to_owned();
    println!("peak_kib={peak}");
}

const BOUND_KIB: u64 = 64 * 1024;

#[test]
fn child_chain_of_10000_default_limits() {
    if !is_child() {
        return;
    }
    let error = RbacEngine::from_toml(&chain(10_000)).unwrap_err();
    assert!(error.to_string().contains("inheritance chain"), "{error}");
    print_peak();
}

#[test]
fn child_chain_of_10000_without_a_depth_limit() {
    if !is_child() {
        return;
    }
    let limits = Limits::default().max_inheritance_depth(usize::MAX);
    let error = Policy::from_toml_with_limits(&chain(10_000), &limits).unwrap_err();
    assert!(error.to_string().contains("max_compiled_bytes"), "{error}");
    print_peak();
}

#[test]
fn child_funnel() {
    if !is_child() {
        return;
    }
    let error = Policy::from_toml(&funnel(1_000, 5_000)).unwrap_err();
    assert!(error.to_string().contains("max_compiled_bytes"), "{error}");
    print_peak();
}

/// The acceptance bar: a chain of 10,000 roles, each inheriting the previous one, is refused
/// with a located error in bounded memory, by the depth limit and, with no depth limit, by
/// the compiled-size estimate (before anything is built).
#[test]
fn a_chain_of_10000_roles_is_refused_in_bounded_memory() {
    if is_child() {
        return;
    }
    let error = Policy::from_toml(&chain(10_000)).unwrap_err();
    let errors = limit_errors(&error);
    assert_eq!(errors.len(), 1, "{error}");
    // Reported where the chain crosses the limit: role `r32` (the 33rd), with its place.
    let issue = error.report.errors().next().unwrap();
    assert_eq!(issue.role.as_deref(), Some("r32"));
    let location = issue.location.unwrap();
    let text = chain(10_000);
    let line = text.lines().position(|l| l == "name = \"r32\"").unwrap() + 1;
    assert_eq!(location.line, line);
    assert!(
        errors[0].contains("33 roles long; the limit is 32"),
        "{}",
        errors[0]
    );

    for child in [
        "child_chain_of_10000_default_limits",
        "child_chain_of_10000_without_a_depth_limit",
        "child_funnel",
    ] {
        let peak = child_peak_kib(child);
        assert!(
            peak <= BOUND_KIB,
            "{child}: peak resident size {peak} KiB is over {BOUND_KIB} KiB"
        );
    }
}

/// The 600-role chain of the finding compiles to a size linear in the policy once the depth
/// limit allows it (inheritance paths are shared, one node per role and ancestor), and its
/// explanations are still whole.
#[test]
fn a_long_chain_compiles_linearly_and_explains_itself() {
    if is_child() {
        return;
    }
    let limits = Limits::default().max_inheritance_depth(600);
    let engine =
        RbacEngine::new(Policy::from_toml_with_limits(&chain(600), &limits).unwrap()).unwrap();
    // 600 roles, 180,300 (role, ancestor) pairs: a few MiB, was ~590 MB.
    let size = engine.compiled_size();
    assert!(size < 32 * 1024 * 1024, "compiled size {size}");
    let decision = engine.evaluate(&AccessRequest::new(&principal("r599"), "read", "c:0"));
    assert!(decision.is_allowed(), "{decision}");
    let portcullis_core::DecisionReason::Allowed(grant) = decision.reason() else {
        panic!("{decision}");
    };
    assert_eq!(grant.role(), "r0");
    let via = grant.via();
    assert_eq!(via.len(), 599);
    assert_eq!(via.first().copied(), Some("r599"));
    assert_eq!(via.last().copied(), Some("r1"));
    assert!(via.windows(2).all(|w| {
        let a: usize = w[0][1..].parse().unwrap();
        let b: usize = w[1][1..].parse().unwrap();
        a == b + 1
    }));
    // A role's own rule has an empty path.
    let own = engine.evaluate(&AccessRequest::new(&principal("r599"), "read", "c:599"));
    let portcullis_core::DecisionReason::Allowed(grant) = own.reason() else {
        panic!("{own}");
    };
    assert!(grant.via().is_empty());
    assert!(
        engine
            .evaluate(&AccessRequest::new(&principal("r10"), "read", "c:11"))
            .is_denied()
    );
}

#[test]
fn role_and_rule_counts_are_limited() {
    if is_child() {
        return;
    }
    let text = chain(20);
    let error = Policy::from_toml_with_limits(&text, &Limits::default().max_roles(10)).unwrap_err();
    let issue = error.report.errors().next().unwrap();
    assert_eq!(issue.kind, IssueKind::LimitExceeded);
    assert_eq!(issue.role.as_deref(), Some("r10"));
    assert!(issue.location.is_some());

    let error = Policy::from_toml_with_limits(&text, &Limits::default().max_rules(5)).unwrap_err();
    let issue = error.report.errors().next().unwrap();
    assert_eq!(issue.kind, IssueKind::LimitExceeded);
    assert_eq!(issue.role.as_deref(), Some("r5"));

    let error =
        Policy::from_toml_with_limits(&funnel(10, 10), &Limits::default().max_compiled_bytes(4096))
            .unwrap_err();
    assert_eq!(limit_errors(&error).len(), 1, "{error}");

    assert!(Policy::from_toml_with_limits(&text, &Limits::default().max_roles(20)).is_ok());
}

/// A reload is checked against the limits the engine's policy was loaded with.
#[test]
fn a_reload_keeps_the_limits() {
    if is_child() {
        return;
    }
    let limits = Limits::default().max_inheritance_depth(5);
    let engine =
        RbacEngine::new(Policy::from_toml_with_limits(&chain(5), &limits).unwrap()).unwrap();
    let error = engine.reload_toml(&chain(6)).unwrap_err();
    assert!(error.to_string().contains("inheritance chain"), "{error}");
    assert!(engine.reload_toml(&chain(4)).is_ok());
    assert_eq!(engine.policy().limits(), &limits);
}

/// Many cycles through one role are reported, but only a bounded number of them.
#[test]
fn cycles_are_reported_boundedly() {
    if is_child() {
        return;
    }
    // r0 <- r1 <- ... <- r2999, and r0 inherits every one of them.
    let mut text = chain(3_000);
    let inherits: Vec<String> = (1..3_000).map(|i| format!("\"r{i}\"")).collect();
    text = text.replacen(
        "name = \"r0\"\n",
        &format!("name = \"r0\"\ninherits = [{}]\n", inherits.join(", ")),
        1,
    );
    let error = Policy::from_toml(&text).unwrap_err();
    let cycles = error
        .report
        .errors()
        .filter(|i| i.kind == IssueKind::InheritanceCycle)
        .count();
    assert!((1..=16).contains(&cycles), "{cycles} cycles reported");
}

/// A roles file that is too large, not UTF-8 (Latin-1), empty or comments only: each is an
/// error that leaves the policy in force (the large one is never read past its bound). An
/// empty file is refused rather than taken for the built-in roles alone.
#[test]
fn roles_files_too_large_wrongly_encoded_or_empty() {
    use portcullis_core::{AccessRequest, AuthMethod, PolicyEngine, Principal, PrincipalKind};
    use portcullis_rbac::{MAX_POLICY_FILE_LEN, Policy, RbacEngine, RbacError};

    let dir = std::env::temp_dir().join(format!("portcullis-rbac-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = RbacEngine::new(Policy::amaters()).unwrap();
    let admin = Principal::builder(
        "a",
        PrincipalKind::User,
        AuthMethod::ApiKey,
        OffsetDateTime::UNIX_EPOCH,
    )
    .role("admin")
    .build()
    .unwrap();
    let allowed = |engine: &RbacEngine| {
        engine
            .evaluate(&AccessRequest::new(&admin, "read", "collection:x"))
            .is_allowed()
    };
    assert!(allowed(&engine));

    let huge = dir.join("huge.toml");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(MAX_POLICY_FILE_LEN as u64 + 1).unwrap();
    let error = engine.reload_file(&huge).unwrap_err();
    assert!(matches!(error, RbacError::Read { .. }), "{error}");
    assert!(error.to_string().contains("larger than"), "{error}");
    assert!(allowed(&engine), "the policy in force stays");

    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"[[roles]]\nname = \"caf\xe9\"\n").unwrap();
    let error = engine.reload_file(&latin1).unwrap_err();
    assert!(error.to_string().contains("not UTF-8"), "{error}");
    assert!(allowed(&engine));

    for (name, text) in [("empty.toml", ""), ("comments.toml", "# roles\n\n   \n")] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let error = engine.reload_file(&path).unwrap_err();
        assert!(
            error.to_string().contains("the roles file is empty"),
            "{error}"
        );
        assert!(allowed(&engine), "the policy in force stays");
    }
    assert!(Policy::from_toml("builtins = \"amaters\"").is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
