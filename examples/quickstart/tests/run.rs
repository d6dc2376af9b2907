//! Starts the quickstart server on 127.0.0.1 as the README does and drives it over real HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed assertion is the point"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

struct Server {
    child: Child,
    address: String,
    audit_log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.audit_log);
    }
}

fn start(name: &str) -> Server {
    let audit_log =
        std::env::temp_dir().join(format!("quickstart-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&audit_log);
    let audit_arg = audit_log.as_os_str().to_owned();
    let (child, address) = common::spawn([
        "--dev".as_ref(),
        "--port".as_ref(),
        "0".as_ref(),
        "--audit-log".as_ref(),
        audit_arg.as_os_str(),
    ]);
    Server {
        child,
        address,
        audit_log,
    }
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: quickstart-test\r\n",
        server.address
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn refuses_the_placeholder_secret_without_dev() {
    let output = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("placeholder"), "{stderr}");
}

#[test]
fn serves_the_amaters_routes_with_api_keys_and_jwts() {
    let server = start("routes");
    // Public.
    assert_eq!(http(&server, "GET", "/health", &[]).0, 200);
    // No credentials: 401 with a challenge per scheme.
    let (status, head, body) = http(&server, "GET", "/collections/datasets", &[]);
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer realm="), "{head}");
    assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
    // Malformed header.
    assert_eq!(
        http(
            &server,
            "GET",
            "/collections/datasets",
            &[("Authorization", "Bearer")]
        )
        .0,
        401
    );
    // API keys: reader reads, cannot write; admin deletes.
    assert_eq!(
        http(
            &server,
            "GET",
            "/collections/datasets",
            &[("X-API-Key", "demo-reader-key")]
        )
        .0,
        200
    );
    let (status, _, body) = http(
        &server,
        "PUT",
        "/collections/datasets",
        &[("X-API-Key", "demo-reader-key")],
    );
    assert_eq!(
        (status, body.as_str()),
        (403, r#"{"detail":"Permission required"}"#)
    );
    assert_eq!(
        http(
            &server,
            "DELETE",
            "/collections/datasets",
            &[("X-API-Key", "demo-admin-key")]
        )
        .0,
        200
    );
    assert_eq!(
        http(
            &server,
            "GET",
            "/collections/datasets",
            &[("X-API-Key", "not-a-key")]
        )
        .0,
        401
    );
    // A JWT minted by the token subcommand.
    let token = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["--dev", "token", "alice", "user"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(
        &server,
        "PUT",
        "/collections/notes",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""by":"alice""#), "{body}");
    assert_eq!(
        http(
            &server,
            "DELETE",
            "/collections/notes",
            &[("Authorization", bearer.as_str())]
        )
        .0,
        403
    );
    // The audit trail, through the API: admins only.
    assert_eq!(
        http(
            &server,
            "GET",
            "/audit/logs",
            &[("X-API-Key", "demo-reader-key")]
        )
        .0,
        403
    );
    let (status, _, body) = http(
        &server,
        "GET",
        "/audit/logs?limit=500",
        &[("X-API-Key", "demo-admin-key")],
    );
    assert_eq!(status, 200, "{body}");
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(events.len() >= 8, "{} events", events.len());
    assert!(
        events
            .iter()
            .any(|e| e["result"] == "denied" && e["request_path"] == "/collections/datasets")
    );
    assert!(events.iter().any(|e| e["user_agent"] == "quickstart-test"));
    let filtered: Vec<serde_json::Value> = serde_json::from_str(
        &http(
            &server,
            "GET",
            "/audit/logs?user_id=alice",
            &[("X-API-Key", "demo-admin-key")],
        )
        .2,
    )
    .unwrap();
    assert!(
        !filtered.is_empty() && filtered.iter().all(|e| e["principal"]["id"] == "alice"),
        "{filtered:?}"
    );
}

/// Outside testing: headers larger than hyper's limit got a bare `431` with no audit event.
/// The server's HTTP limits sit above Portcullis's (100 fields, 64 KiB), so a request between
/// the two gets Portcullis's `401 invalid_request`, audited; only one past hyper's limits
/// (200 fields, 512 KiB) still gets the bare 431, before any layer runs.
#[test]
fn oversized_headers_get_an_audited_401_before_hypers_431() {
    let server = start("headers");
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-Filler-{i}"), "v".to_owned()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (status, head, _) = http(&server, "GET", "/collections/datasets", &many);
    assert_eq!(status, 401);
    assert!(head.contains(r#"error="invalid_request""#), "{head}");
    let big = "x".repeat(70 * 1024);
    let (status, head, _) = http(
        &server,
        "GET",
        "/collections/datasets",
        &[("X-Filler", big.as_str())],
    );
    assert_eq!(status, 401);
    assert!(head.contains(r#"error="invalid_request""#), "{head}");
    // Past hyper's own limits: the bare 431 (documented), which no layer sees.
    let too_many: Vec<(String, String)> = (0..300)
        .map(|i| (format!("X-Filler-{i}"), "v".to_owned()))
        .collect();
    let too_many: Vec<(&str, &str)> = too_many
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        http(&server, "GET", "/collections/datasets", &too_many).0,
        431
    );
    // The two refusals are in the audit trail with their reason.
    let (_, _, body) = http(
        &server,
        "GET",
        "/audit/logs?limit=500",
        &[("X-API-Key", "demo-admin-key")],
    );
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["result"] == "failure"
                && e["reason"].as_str().is_some_and(|r| {
                    r.contains("header fields") || r.contains("headers are larger")
                })
        })
        .collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
}

/// Reads `/metrics` with prometheus_client's own parser, as Prometheus would scrape it.
const PARSE_WITH_PROMETHEUS_CLIENT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(json.load(sys.stdin)["text"]):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        out[f"{sample.name}{{{labels}}}"] = sample.value
print(json.dumps(out))
"#;

#[test]
fn metrics_count_what_the_layers_did() {
    let server = start("metrics");
    assert_eq!(http(&server, "GET", "/health", &[]).0, 200);
    assert_eq!(http(&server, "GET", "/collections/datasets", &[]).0, 401);
    let reader = [("X-API-Key", "demo-reader-key")];
    assert_eq!(
        http(&server, "GET", "/collections/datasets", &reader).0,
        200
    );
    assert_eq!(
        http(&server, "PUT", "/collections/datasets", &reader).0,
        403
    );
    let (status, head, text) = http(&server, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    // The four requests before, and this one (counted when authenticated, before its
    // handler ran; its own audit event is written after the response is made).
    let expected = [
        (
            "portcullis_authentications_total{outcome=authenticated}",
            2.0,
        ),
        ("portcullis_authentications_total{outcome=anonymous}", 2.0),
        ("portcullis_authentications_total{outcome=refused}", 1.0),
        ("portcullis_authentications_total{outcome=unavailable}", 0.0),
        ("portcullis_decisions_total{effect=allow}", 1.0),
        ("portcullis_decisions_total{effect=deny}", 1.0),
        ("portcullis_decision_errors_total{}", 0.0),
        ("portcullis_audit_events_total{result=recorded}", 4.0),
        ("portcullis_audit_events_total{result=refused}", 0.0),
        ("portcullis_jwks_fetches_total{result=ok}", 0.0),
    ];
    for (sample, value) in expected {
        // As written: `name{label="value"} 2`, or `name 0` without labels.
        let (name, labels) = sample.trim_end_matches('}').split_once('{').unwrap();
        let line = match labels.split_once('=') {
            Some((label, v)) => format!("{name}{{{label}=\"{v}\"}} {value}"),
            None => format!("{name} {value}"),
        };
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
    }
    if !portcullis_testkit::peer::present(
        "python3 with prometheus_client (scripts/services.sh installs it)",
        portcullis_testkit::peer::runs("python3", &["-c", "import prometheus_client"]),
    ) {
        return;
    }
    let parsed = portcullis_testkit::python::run(
        PARSE_WITH_PROMETHEUS_CLIENT,
        &serde_json::json!({ "text": text }),
    );
    for (sample, value) in expected {
        assert_eq!(parsed[sample].as_f64(), Some(value), "{sample}: {parsed}");
    }
    assert!(
        parsed["portcullis_audit_queue_depth{}"].as_f64().is_some(),
        "{parsed}"
    );
}
