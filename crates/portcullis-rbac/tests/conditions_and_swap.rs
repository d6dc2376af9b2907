//! Conditions through the engine, and atomic policy swaps under concurrent evaluation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;
use common::principal_in as principal;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use portcullis_core::{
    AccessRequest, Clock, DecisionReason, ManualClock, PolicyEngine, RequestContext,
};
use portcullis_rbac::{Policy, RbacEngine, SqlPlaceholders};
use time::macros::datetime;

const CONDITIONED: &str = r#"
builtins = "none"
[[roles]]
name = "member"
permissions = [
  { resource = "doc:*", actions = ["write"], when = { same_tenant = true } },
  { resource = "report:*", actions = ["read"], when = { days = ["mon", "tue", "wed", "thu", "fri"], hours = [8, 18] } },
  { resource = "admin:*", actions = ["admin"], when = { source_ips = ["10.0.0.0/8"] } },
]
deny = [{ resource = "doc:secret", actions = ["read"], when = { source_ips = ["192.168.0.0/16"] } }]
"#;

#[test]
fn tenant_condition_isolates_tenants() {
    let engine = RbacEngine::from_toml(CONDITIONED).unwrap();
    let acme = principal(&["member"], Some("acme"));
    let ctx = |tenant: &str| RequestContext::new().with_resource_tenant(tenant);
    let same = ctx("acme");
    let other = ctx("globex");
    assert!(
        engine
            .evaluate(&AccessRequest::new(&acme, "write", "doc:1").with_context(&same))
            .is_allowed()
    );
    assert!(
        engine
            .evaluate(&AccessRequest::new(&acme, "write", "doc:1").with_context(&other))
            .is_denied()
    );
    // Without a resource tenant the condition cannot hold: denied.
    assert!(
        engine
            .evaluate(&AccessRequest::new(&acme, "write", "doc:1"))
            .is_denied()
    );
    // A principal without a tenant never passes it.
    let loner = principal(&["member"], None);
    assert!(
        engine
            .evaluate(&AccessRequest::new(&loner, "write", "doc:1").with_context(&same))
            .is_denied()
    );
}

#[test]
fn time_window_uses_request_time_or_the_engine_clock() {
    // 2026-01-16 is a Friday, 2026-01-17 a Saturday.
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-16 09:30 UTC)));
    let engine = RbacEngine::from_toml(CONDITIONED)
        .unwrap()
        .with_clock(clock.clone());
    let m = principal(&["member"], None);
    let read = |ctx: Option<&RequestContext>| {
        let request = AccessRequest::new(&m, "read", "report:q1");
        match ctx {
            Some(c) => engine.evaluate(&request.with_context(c)),
            None => engine.evaluate(&request),
        }
    };
    assert!(read(None).is_allowed());
    clock.set(datetime!(2026-01-16 18:00 UTC));
    assert!(read(None).is_denied());
    clock.set(datetime!(2026-01-17 10:00 UTC));
    assert!(read(None).is_denied());
    let weekday = RequestContext::new().with_time(datetime!(2026-01-14 12:00 UTC));
    assert!(read(Some(&weekday)).is_allowed());
}

/// A clock that evaluates policies itself: on another engine, and on the engine asking.
#[derive(Debug)]
struct EvaluatingClock {
    other: RbacEngine,
    same: std::sync::OnceLock<std::sync::Weak<RbacEngine>>,
    calls: AtomicUsize,
}

impl Clock for EvaluatingClock {
    fn now(&self) -> time::OffsetDateTime {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let p = principal(&["member"], None);
        assert!(
            self.other
                .evaluate(&AccessRequest::new(&p, "read", "x:1"))
                .is_allowed()
        );
        if let Some(engine) = self.same.get().and_then(std::sync::Weak::upgrade) {
            assert!(
                engine
                    .evaluate(&AccessRequest::new(&p, "write", "report:q1"))
                    .is_denied()
            );
        }
        datetime!(2026-01-16 09:30 UTC)
    }
}

/// Each thread keeps the snapshot it used last; a decision made while another one is in
/// progress on the same thread (here, from the clock a time window asks) still decides on
/// the right policy, for the same engine and for another.
#[test]
fn a_clock_that_evaluates_policies_is_answered_correctly() {
    let other = RbacEngine::from_toml(
        r#"
builtins = "none"
[[roles]]
name = "member"
permissions = [{ resource = "x:*", actions = ["read"] }]
"#,
    )
    .unwrap();
    let clock = Arc::new(EvaluatingClock {
        other,
        same: std::sync::OnceLock::new(),
        calls: AtomicUsize::new(0),
    });
    let engine = Arc::new(
        RbacEngine::from_toml(CONDITIONED)
            .unwrap()
            .with_clock(clock.clone()),
    );
    clock.same.set(Arc::downgrade(&engine)).unwrap();
    let m = principal(&["member"], None);
    for _ in 0..3 {
        assert!(
            engine
                .evaluate(&AccessRequest::new(&m, "read", "report:q1"))
                .is_allowed()
        );
        assert!(
            clock
                .other
                .evaluate(&AccessRequest::new(&m, "read", "report:q1"))
                .is_denied()
        );
    }
    assert_eq!(clock.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn source_ip_conditions_allow_only_known_networks_and_deny_when_unknown() {
    let engine = RbacEngine::from_toml(CONDITIONED).unwrap();
    let m = principal(&["member"], Some("acme"));
    let from = |ip: &str| {
        RequestContext::new()
            .with_source_ip(ip.parse().unwrap())
            .with_resource_tenant("acme")
    };
    let inside = from("10.1.2.3");
    let outside = from("203.0.113.9");
    assert!(
        engine
            .evaluate(&AccessRequest::new(&m, "admin", "admin:x").with_context(&inside))
            .is_allowed()
    );
    assert!(
        engine
            .evaluate(&AccessRequest::new(&m, "admin", "admin:x").with_context(&outside))
            .is_denied()
    );
    assert!(
        engine
            .evaluate(&AccessRequest::new(&m, "admin", "admin:x"))
            .is_denied()
    );

    // The conditioned deny applies from its network, and also when the address is unknown.
    let lan = from("192.168.1.1");
    let d = engine.evaluate(&AccessRequest::new(&m, "read", "doc:secret").with_context(&lan));
    assert!(matches!(d.reason(), DecisionReason::ExplicitDeny(_)), "{d}");
    let unknown = RequestContext::new().with_resource_tenant("acme");
    let d = engine.evaluate(&AccessRequest::new(&m, "read", "doc:secret").with_context(&unknown));
    assert!(matches!(d.reason(), DecisionReason::ExplicitDeny(_)), "{d}");
    let d = engine.evaluate(&AccessRequest::new(&m, "read", "doc:secret").with_context(&inside));
    assert!(d.is_allowed(), "{d}");
}

#[test]
fn data_filter_respects_conditions_and_denies() {
    let engine = RbacEngine::from_toml(CONDITIONED).unwrap();
    let m = principal(&["member"], Some("acme"));
    let ctx = RequestContext::new()
        .with_resource_tenant("acme")
        .with_source_ip("10.0.0.1".parse().unwrap());
    let filter = engine.permitted(&m, "read", "doc", Some(&ctx));
    assert!(filter.contains("anything"));
    let (sql, params) = filter.to_sql("id", SqlPlaceholders::Numbered);
    assert_eq!(sql, "(id <> '' AND id NOT LIKE '%:%')");
    assert!(params.is_empty());
    // Without the tenant in context, the conditioned allow is left out: nothing.
    let nothing = engine.permitted(&m, "read", "doc", None);
    assert!(nothing.is_nothing());
    assert_eq!(nothing.to_sql("id", SqlPlaceholders::Question).0, "FALSE");
    // An unverifiable deny is kept.
    let lan = RequestContext::new().with_resource_tenant("acme");
    let filter = engine.permitted(&m, "read", "doc", Some(&lan));
    assert!(!filter.contains("secret"));
    let (sql, params) = filter.to_sql("id", SqlPlaceholders::Question);
    assert_eq!(
        sql,
        "((id <> '' AND id NOT LIKE '%:%') AND NOT (id IN (?)))"
    );
    assert_eq!(params, ["secret"]);
}

#[test]
fn like_metacharacters_are_escaped_in_sql() {
    let engine = RbacEngine::from_toml(
        "builtins = \"none\"\n[[roles]]\nname = \"r\"\npermissions = [{ resource = \"t:50%_off:*\", actions = [\"read\"] }, { resource = \"t:a_b:**\", actions = [\"read\"] }]",
    )
    .unwrap();
    let p = principal(&["r"], None);
    let (sql, params) = engine
        .permitted(&p, "read", "t", None)
        .to_sql("id", SqlPlaceholders::Numbered);
    assert_eq!(
        sql,
        "((id LIKE $1 ESCAPE '\\' AND id NOT LIKE $2 ESCAPE '\\') OR id LIKE $3 ESCAPE '\\')"
    );
    assert_eq!(params, ["50\\%\\_off:%", "50\\%\\_off:%:%", "a\\_b:_%"]);
}

/// Readers evaluate continuously while a writer swaps between two policies. Every decision
/// must be one that one of the two policies gives as a whole: never a mix, never a panic.
#[test]
fn hot_swap_is_atomic_under_concurrency() {
    let policy_a = r#"
builtins = "none"
[[roles]]
name = "r"
permissions = [{ resource = "x:a", actions = ["read"] }, { resource = "x:b", actions = ["read"] }]
"#;
    let policy_b = r#"
builtins = "none"
[[roles]]
name = "r"
deny = [{ resource = "x:a", actions = ["read"] }]
permissions = [{ resource = "x:c", actions = ["read"] }]
"#;
    let engine = Arc::new(RbacEngine::from_toml(policy_a).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let decisions = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let engine = engine.clone();
            let stop = stop.clone();
            let decisions = decisions.clone();
            std::thread::spawn(move || {
                let p = principal(&["r"], None);
                while !stop.load(Ordering::Relaxed) {
                    // Under A: a, b allowed, c denied. Under B: a explicitly denied, b denied, c allowed.
                    let a = engine.evaluate(&AccessRequest::new(&p, "read", "x:a"));
                    let b = engine.evaluate(&AccessRequest::new(&p, "read", "x:b"));
                    let c = engine.evaluate(&AccessRequest::new(&p, "read", "x:c"));
                    for d in [&a, &b, &c] {
                        assert!(matches!(
                            d.reason(),
                            DecisionReason::Allowed(_)
                                | DecisionReason::NoMatch
                                | DecisionReason::ExplicitDeny(_)
                        ));
                    }
                    // A single decision never mixes: an explicit deny only exists in B, and
                    // its explanation names B's rule.
                    if let DecisionReason::ExplicitDeny(g) = a.reason() {
                        assert_eq!(g.rule(), "x:a read");
                    }
                    decisions.fetch_add(3, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let a = Policy::from_toml(policy_a).unwrap();
    let b = Policy::from_toml(policy_b).unwrap();
    // Swap until the readers have made enough decisions to have seen many swaps (bounded in
    // time, so a starved machine ends the test rather than hanging it).
    let started = std::time::Instant::now();
    let mut swaps = 0u64;
    while (swaps < 400 || decisions.load(Ordering::Relaxed) < 30_000)
        && started.elapsed() < std::time::Duration::from_secs(20)
    {
        engine
            .swap(if swaps.is_multiple_of(2) {
                b.clone()
            } else {
                a.clone()
            })
            .unwrap();
        swaps += 1;
        if swaps.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
    engine.swap(a.clone()).unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(decisions.load(Ordering::Relaxed) > 0);
    // The last swap installed A.
    let p = principal(&["r"], None);
    assert!(
        engine
            .evaluate(&AccessRequest::new(&p, "read", "x:b"))
            .is_allowed()
    );
}
