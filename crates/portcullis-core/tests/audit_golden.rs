//! Golden tests of the audit schema: the AmateRS example parses, and what Portcullis writes
//! does not change without notice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::net::{IpAddr, Ipv4Addr};

use portcullis_core::{
    AuditEvent, AuditEventType, AuditResult, AuthMethod, Decision, EventId, IdSource, Principal,
    PrincipalKind, SequentialIds,
};
use serde_json::Value;
use time::macros::datetime;

const AMATERS_EXAMPLE: &str = include_str!("golden/amaters_audit_event.json");
const DENIED_GOLDEN: &str = include_str!("golden/authorization_denied.jsonl");

#[test]
fn amaters_example_parses() {
    let event: AuditEvent = serde_json::from_str(AMATERS_EXAMPLE).unwrap();
    assert_eq!(event.id.as_str(), "uuid-v4");
    assert_eq!(event.timestamp, datetime!(2026-01-17 12:00 UTC));
    assert_eq!(event.event_type, AuditEventType::Authentication);
    assert_eq!(event.result, AuditResult::Success);
    let principal = event.principal.as_ref().unwrap();
    assert_eq!(principal.id, "user123");
    assert_eq!(principal.name.as_deref(), Some("John Doe"));
    assert_eq!(principal.role.as_deref(), Some("admin"));
    assert_eq!(event.auth_method, Some(AuthMethod::Jwt));
    assert_eq!(
        event.source_ip,
        Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)))
    );

    // Writing it back keeps every AmateRS field with the same value.
    let original: Value = serde_json::from_str(AMATERS_EXAMPLE).unwrap();
    let written: Value = serde_json::to_value(&event).unwrap();
    for field in [
        "id",
        "timestamp",
        "event_type",
        "result",
        "auth_method",
        "source_ip",
    ] {
        assert_eq!(written[field], original[field], "{field}");
    }
    for field in ["id", "name", "role"] {
        assert_eq!(
            written["principal"][field], original["principal"][field],
            "principal.{field}"
        );
    }
}

fn denied_event() -> AuditEvent {
    let principal = Principal::builder(
        "user123",
        PrincipalKind::User,
        AuthMethod::Jwt,
        datetime!(2026-01-17 11:59 UTC),
    )
    .name("John Doe")
    .role("reader")
    .build()
    .unwrap();
    AuditEvent::new(
        SequentialIds::default().event_id(),
        AuditEventType::Authorization,
        AuditResult::Denied,
        datetime!(2026-01-17 12:00 UTC),
    )
    .with_id(EventId::parse("0b9c54b8-33e4-4b0a-9d7e-3f1b6c1f2a10").unwrap())
    .with_principal(&principal)
    .with_source_ip(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)))
    .with_action("write")
    .with_resource("collection:models")
    .with_decision(&Decision::no_match())
    .with_http("PUT", "/collections/models", Some(403))
    .with_user_agent("curl/8.5.0")
    .with_latency(std::time::Duration::from_micros(412))
}

#[test]
fn written_schema_matches_golden_file() {
    let line = denied_event().to_json_line().unwrap();
    assert_eq!(line, DENIED_GOLDEN.trim_end(), "the audit schema changed");
    let back: AuditEvent = serde_json::from_str(&line).unwrap();
    assert_eq!(back, denied_event());
}

/// The three `jq` queries of the AmateRS document, evaluated on our JSON.
#[test]
fn amaters_jq_filters_select_our_events() {
    let value: Value = serde_json::from_str(DENIED_GOLDEN).unwrap();
    // jq 'select(.event_type == "authorization" and .result == "denied")'
    assert_eq!(value["event_type"], "authorization");
    assert_eq!(value["result"], "denied");
    // jq 'select(.principal.id == "user123")'
    assert_eq!(value["principal"]["id"], "user123");
    // jq 'select(.event_type == "authentication")' selects the AmateRS example.
    let amaters: Value = serde_json::from_str(AMATERS_EXAMPLE).unwrap();
    assert_eq!(amaters["event_type"], "authentication");
}

#[test]
fn unknown_event_types_and_results_are_rejected() {
    let bad = AMATERS_EXAMPLE.replace("\"authentication\"", "\"login\"");
    assert!(serde_json::from_str::<AuditEvent>(&bad).is_err());
    let bad = AMATERS_EXAMPLE.replace("\"success\"", "\"ok\"");
    assert!(serde_json::from_str::<AuditEvent>(&bad).is_err());
    let bad = AMATERS_EXAMPLE.replace("2026-01-17T12:00:00Z", "yesterday");
    assert!(serde_json::from_str::<AuditEvent>(&bad).is_err());
}
