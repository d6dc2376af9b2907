//! What the layers tell operators: a `portcullis.audit` span per request with the
//! `portcullis.auth` and `portcullis.authz` spans inside it, their fields (outcome,
//! authenticator, principal, decision, reason, latency), never a credential; and the same
//! outcomes counted through the `Metrics` hook.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis_apikey::{ApiKeyAuthenticator, KeyPrefix, MemoryStore, Pepper, issue_key};
use portcullis_audit::MemorySink;
use portcullis_core::{AuthenticatorChain, Counters, PolicyEngine, Principal};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, PublicPaths, RouteTable};
use tower::ServiceExt as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span as the subscriber saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: &'static str,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

/// A subscriber that keeps every span with its fields and its parent.
#[derive(Debug, Default)]
struct Spans {
    next: AtomicU64,
    spans: Mutex<BTreeMap<u64, Seen>>,
    stack: Mutex<Vec<u64>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = span.parent().map(Id::into_u64).or_else(|| {
            span.is_contextual()
                .then(|| self.stack.lock().unwrap().last().copied())
                .flatten()
        });
        let mut seen = Seen {
            name: span.metadata().name(),
            parent,
            fields: BTreeMap::new(),
        };
        span.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id, seen);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, span: &Id) {
        self.stack.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut stack = self.stack.lock().unwrap();
        if let Some(at) = stack.iter().rposition(|id| *id == span.into_u64()) {
            stack.remove(at);
        }
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<(u64, Seen)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, seen)| seen.name == name)
            .map(|(id, seen)| (*id, seen.clone()))
            .collect()
    }
}

const PEPPER: &[u8] = b"a-pepper-for-the-observability-tests-012";

fn router(counters: Arc<Counters>) -> (Router, String) {
    let prefix = KeyPrefix::new("pc_test_").unwrap();
    let pepper = Pepper::new(PEPPER).unwrap();
    let (reader, mut record) = issue_key(&prefix, &pepper, "svc-reader").unwrap();
    record.roles = vec!["reader".into()];
    let keys = ApiKeyAuthenticator::builder(
        Arc::new(MemoryStore::new(vec![record]).unwrap()),
        Pepper::new(PEPPER).unwrap(),
    )
    .prefix(prefix)
    .build();
    let engine: Arc<dyn PolicyEngine> = Arc::new(RbacEngine::new(Policy::amaters()).unwrap());
    let routes = RouteTable::new()
        .route("GET /collections/{name}", "read", "collection:{name}")
        .unwrap()
        .route("PUT /collections/{name}", "write", "collection:{name}")
        .unwrap();
    let router = Router::new()
        .route(
            "/collections/{name}",
            get(|p: Principal| async move { p.id().to_owned() })
                .put(|p: Principal| async move { p.id().to_owned() }),
        )
        .layer(AuthzLayer::new(engine, routes).metrics(counters.clone()))
        .route("/health", get(|| async { "ok" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(Arc::new(MemorySink::new())).metrics(counters.clone()))
                .layer(
                    AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(keys)]))
                        .public_paths(PublicPaths::none().exact(["/health"]))
                        .metrics(counters),
                ),
        );
    (router, reader.key.expose().to_owned())
}

fn send(router: &Router, method: &str, path: &str, key: Option<&str>) -> StatusCode {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(router.clone().oneshot(request.body(Body::empty()).unwrap()))
        .unwrap()
        .status()
}

#[test]
fn every_layer_has_a_span_inside_the_audit_span_and_never_a_secret() {
    let spans = Arc::new(Spans::default());
    let counters = Arc::new(Counters::default());
    let (router, key) = router(counters.clone());
    let forged = format!("{}X", &key[..key.len() - 1]);
    tracing::subscriber::with_default(spans.clone(), || {
        assert_eq!(
            send(&router, "GET", "/collections/a", Some(&key)),
            StatusCode::OK
        );
        assert_eq!(
            send(&router, "PUT", "/collections/a", Some(&key)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            send(&router, "GET", "/collections/a", Some(&forged)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(send(&router, "GET", "/health", None), StatusCode::OK);
    });

    let audits = spans.named("portcullis.audit");
    let auths = spans.named("portcullis.auth");
    let authzs = spans.named("portcullis.authz");
    assert_eq!((audits.len(), auths.len()), (4, 4));
    // The refused request never reaches authorization; /health is routed outside it.
    assert_eq!(authzs.len(), 2);
    let audit_ids: Vec<u64> = audits.iter().map(|(id, _)| *id).collect();
    for (_, auth) in &auths {
        assert!(audit_ids.contains(&auth.parent.unwrap()), "{auth:?}");
    }
    let fields = |seen: &Seen, name: &str| seen.fields.get(name).cloned().unwrap_or_default();

    // Allowed, denied, refused, anonymous: in request order.
    assert_eq!(fields(&auths[0].1, "outcome"), "authenticated");
    assert_eq!(fields(&auths[0].1, "principal"), "svc-reader");
    assert_eq!(fields(&auths[0].1, "authenticator"), "api_key");
    assert!(fields(&auths[0].1, "latency_us").parse::<u64>().is_ok());
    assert_eq!(fields(&authzs[0].1, "decision"), "allowed");
    assert_eq!(fields(&authzs[0].1, "action"), "read");
    assert_eq!(fields(&authzs[0].1, "resource"), "collection:a");
    assert_eq!(fields(&authzs[1].1, "decision"), "no_match");
    assert_eq!(fields(&auths[2].1, "outcome"), "refused");
    assert!(
        !fields(&auths[2].1, "reason").is_empty(),
        "{:?}",
        auths[2].1
    );
    assert_eq!(fields(&auths[3].1, "outcome"), "anonymous");
    assert_eq!(fields(&audits[1].1, "status"), "403");
    assert_eq!(fields(&audits[1].1, "result"), "denied");
    assert_eq!(fields(&audits[1].1, "recorded"), "true");

    // No span field holds a key, real or forged, or its secret part.
    let secret = key.rsplit('_').next().unwrap();
    for (_, seen) in spans.spans.lock().unwrap().iter() {
        for value in seen.fields.values() {
            assert!(!value.contains(secret), "{seen:?}");
            assert!(!value.contains(&forged), "{seen:?}");
        }
    }

    let counted = counters.snapshot();
    assert_eq!(
        (counted.authenticated, counted.refused, counted.anonymous),
        (2, 1, 1)
    );
    assert_eq!((counted.allowed, counted.denied), (1, 1));
    assert_eq!(counted.audit_recorded, 4);
}
