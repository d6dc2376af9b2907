//! RBAC policy evaluation: Portcullis against casbin and cedar-policy, on the three workloads
//! described in `benches/README.md` (`{small,medium,large}.json` from `PORTCULLIS_BENCH_DIR`).
//!
//! Every engine is first checked to return the labelled decision for every query; only then
//! is anything timed. One iteration is one decision, so the figures read as time per
//! decision. Benchmark ids: `rbac/<workload>/<engine>/<allow|deny>` with engines
//! `portcullis`, `casbin`, `cedar` (one policy per rule, the idiomatic encoding) and
//! `cedar-sliced` (policies indexed by principal-scope and resource-scope entity, the
//! request authorized against its slice, as in the Cedar paper's own benchmark), plus
//! `rbac/large/portcullis/compile`.
//!
//! Portcullis runs with explanations (every allow carries its role, path and rule) and with
//! deny-rule support exercised: every root role gets one deny rule (on a resource no query
//! asks for), so every decision runs the deny pass as well as the allow pass.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark harness: failing loudly on bad data is the point"
)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use casbin::prelude::*;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid, PolicySet, Request,
};
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::{AccessRequest, AuthMethod, PolicyEngine, Principal, PrincipalKind};
use portcullis_rbac::{Builtins, Policy, PolicyDocument, RbacEngine, RoleDef, RuleDef};
use serde::Deserialize;
use time::OffsetDateTime;

#[derive(Deserialize)]
struct Workload {
    name: String,
    roles: Vec<String>,
    role_parent: Vec<Option<usize>>,
    users: Vec<String>,
    user_roles: Vec<Vec<usize>>,
    rules: Vec<RuleJson>,
    allow_queries: Vec<Query>,
    deny_queries: Vec<Query>,
}

#[derive(Deserialize)]
struct RuleJson {
    role: String,
    pattern: String,
    action: String,
}

#[derive(Deserialize, Clone)]
struct Query {
    user: String,
    resource: String,
    action: String,
}

fn workload_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench"),
        PathBuf::from,
    );
    dir.join(format!("{name}.json"))
}

fn load(name: &str) -> Option<Workload> {
    let path = workload_path(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap()),
        Err(e) => {
            eprintln!(
                "skipping workload `{name}`: cannot read {} ({e}); set PORTCULLIS_BENCH_DIR",
                path.display()
            );
            None
        }
    }
}

// --- Portcullis ------------------------------------------------------------------------

struct PortcullisBench {
    engine: RbacEngine,
    principals: HashMap<String, Principal>,
}

fn portcullis_document(w: &Workload) -> PolicyDocument {
    let mut rules: BTreeMap<&str, Vec<RuleDef>> = BTreeMap::new();
    for r in &w.rules {
        rules
            .entry(r.role.as_str())
            .or_default()
            .push(RuleDef::new(r.pattern.clone(), &[r.action.as_str()]));
    }
    let roles = w
        .roles
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut role = RoleDef::new(name.clone());
            role.permissions = rules.remove(name.as_str()).unwrap_or_default();
            match w.role_parent[i] {
                Some(parent) => role.inherits.push(w.roles[parent].clone()),
                // Deny support on: each root (hence every role) carries a deny rule.
                None => role.deny.push(RuleDef::new("zz:deny-probe", &["read"])),
            }
            role
        })
        .collect();
    PolicyDocument {
        builtins: Builtins::None,
        roles,
        ..PolicyDocument::default()
    }
}

fn portcullis(w: &Workload) -> PortcullisBench {
    let engine = RbacEngine::new(Policy::from_document(&portcullis_document(w)).unwrap()).unwrap();
    let principals = w
        .users
        .iter()
        .zip(&w.user_roles)
        .map(|(user, roles)| {
            let p = Principal::builder(
                user.clone(),
                PrincipalKind::User,
                AuthMethod::Jwt,
                OffsetDateTime::UNIX_EPOCH,
            )
            .roles(roles.iter().map(|r| w.roles[*r].clone()))
            .build()
            .unwrap();
            (user.clone(), p)
        })
        .collect();
    PortcullisBench { engine, principals }
}

impl PortcullisBench {
    /// A query with its principal resolved, as an application has it after authentication.
    fn prepare(&self, q: &Query) -> (Principal, Query) {
        (self.principals[&q.user].clone(), q.clone())
    }

    fn decide_prepared(&self, (principal, q): &(Principal, Query)) -> bool {
        self.engine
            .evaluate(&AccessRequest::new(principal, &q.action, &q.resource))
            .is_allowed()
    }

    fn decide(&self, q: &Query) -> bool {
        self.decide_prepared(&self.prepare(q))
    }
}

// --- casbin ----------------------------------------------------------------------------

const CASBIN_MODEL: &str = "
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && g2(p.act, r.act)
";

fn casbin(w: &Workload, runtime: &tokio::runtime::Runtime) -> Enforcer {
    runtime.block_on(async {
        let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
        let mut e = Enforcer::new(model, MemoryAdapter::default())
            .await
            .unwrap();
        let p: Vec<Vec<String>> = w
            .rules
            .iter()
            .map(|r| vec![r.role.clone(), r.pattern.clone(), r.action.clone()])
            .collect();
        e.add_policies(p).await.unwrap();
        let mut g: Vec<Vec<String>> = Vec::new();
        for (user, roles) in w.users.iter().zip(&w.user_roles) {
            for r in roles {
                g.push(vec![user.clone(), w.roles[*r].clone()]);
            }
        }
        for (i, parent) in w.role_parent.iter().enumerate() {
            if let Some(parent) = parent {
                g.push(vec![w.roles[i].clone(), w.roles[*parent].clone()]);
            }
        }
        e.add_grouping_policies(g).await.unwrap();
        e.add_named_grouping_policies(
            "g2",
            vec![
                vec!["admin".to_owned(), "write".to_owned()],
                vec!["write".to_owned(), "read".to_owned()],
            ],
        )
        .await
        .unwrap();
        e
    })
}

// --- cedar -----------------------------------------------------------------------------

fn cedar_rule(r: &RuleJson) -> String {
    let resource = if r.pattern == "*" {
        "resource".to_owned()
    } else if let Some(collection) = r.pattern.strip_suffix(":*") {
        format!("resource in Collection::\"{collection}\"")
    } else {
        format!("resource == Resource::\"{}\"", r.pattern)
    };
    format!(
        "permit(principal in Role::\"{}\", action in Action::\"{}\", {resource});",
        r.role, r.action
    )
}

fn uid(kind: &str, id: &str) -> serde_json::Value {
    serde_json::json!({ "type": kind, "id": id })
}

fn cedar_entities(w: &Workload) -> Entities {
    let mut list = Vec::new();
    for (user, roles) in w.users.iter().zip(&w.user_roles) {
        let parents: Vec<_> = roles.iter().map(|r| uid("Role", &w.roles[*r])).collect();
        list.push(serde_json::json!({ "uid": uid("User", user), "attrs": {}, "parents": parents }));
    }
    for (i, role) in w.roles.iter().enumerate() {
        let parents: Vec<_> = w.role_parent[i]
            .iter()
            .map(|p| uid("Role", &w.roles[*p]))
            .collect();
        list.push(serde_json::json!({ "uid": uid("Role", role), "attrs": {}, "parents": parents }));
    }
    list.push(serde_json::json!({ "uid": uid("Action", "admin"), "attrs": {}, "parents": [] }));
    list.push(serde_json::json!({ "uid": uid("Action", "write"), "attrs": {}, "parents": [uid("Action", "admin")] }));
    list.push(serde_json::json!({ "uid": uid("Action", "read"), "attrs": {}, "parents": [uid("Action", "write")] }));
    let mut resources: BTreeSet<&str> = BTreeSet::new();
    for r in &w.rules {
        if !r.pattern.ends_with('*') {
            resources.insert(&r.pattern);
        }
    }
    for q in w.allow_queries.iter().chain(&w.deny_queries) {
        resources.insert(&q.resource);
    }
    let mut collections: BTreeSet<&str> = BTreeSet::new();
    for resource in resources {
        let collection = resource.split_once(':').map_or(resource, |(c, _)| c);
        collections.insert(collection);
        list.push(serde_json::json!({
            "uid": uid("Resource", resource), "attrs": {}, "parents": [uid("Collection", collection)]
        }));
    }
    for c in collections {
        list.push(serde_json::json!({ "uid": uid("Collection", c), "attrs": {}, "parents": [] }));
    }
    Entities::from_json_value(serde_json::Value::Array(list), None).unwrap()
}

fn entity(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("{kind}::\"{id}\"")).unwrap()
}

fn cedar_request(q: &Query) -> Request {
    Request::new(
        entity("User", &q.user),
        entity("Action", &q.action),
        entity("Resource", &q.resource),
        Context::empty(),
        None,
    )
    .unwrap()
}

struct CedarBench {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
}

fn cedar(w: &Workload, entities: Entities) -> CedarBench {
    let text: String = w
        .rules
        .iter()
        .map(cedar_rule)
        .collect::<Vec<_>>()
        .join("\n");
    CedarBench {
        authorizer: Authorizer::new(),
        policies: text.parse().unwrap(),
        entities,
    }
}

impl CedarBench {
    fn decide(&self, request: &Request) -> bool {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
            .decision()
            == CedarDecision::Allow
    }
}

/// The resource scope of a rule: everything, a collection, or one resource.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope {
    Any,
    Collection(String),
    Resource(String),
}

struct CedarSliced {
    authorizer: Authorizer,
    entities: Entities,
    /// (role, resource scope) → the policies with that principal and resource scope.
    index: HashMap<(String, Scope), Vec<cedar_policy::Policy>>,
    /// user → the roles it holds, directly or by inheritance.
    closure: HashMap<String, Vec<String>>,
}

fn cedar_sliced(w: &Workload, entities: Entities) -> CedarSliced {
    let mut index: HashMap<(String, Scope), Vec<cedar_policy::Policy>> = HashMap::new();
    for (i, r) in w.rules.iter().enumerate() {
        let policy = cedar_policy::Policy::parse(
            Some(cedar_policy::PolicyId::new(format!("p{i}"))),
            cedar_rule(r),
        )
        .unwrap();
        let scope = if r.pattern == "*" {
            Scope::Any
        } else if let Some(c) = r.pattern.strip_suffix(":*") {
            Scope::Collection(c.to_owned())
        } else {
            Scope::Resource(r.pattern.clone())
        };
        index
            .entry((r.role.clone(), scope))
            .or_default()
            .push(policy);
    }
    let closure = w
        .users
        .iter()
        .zip(&w.user_roles)
        .map(|(user, roles)| {
            let mut held = Vec::new();
            for r in roles {
                let mut cur = Some(*r);
                while let Some(c) = cur {
                    if !held.contains(&w.roles[c]) {
                        held.push(w.roles[c].clone());
                    }
                    cur = w.role_parent[c];
                }
            }
            (user.clone(), held)
        })
        .collect();
    CedarSliced {
        authorizer: Authorizer::new(),
        entities,
        index,
        closure,
    }
}

impl CedarSliced {
    fn decide(&self, q: &Query, request: &Request) -> bool {
        let collection = q
            .resource
            .split_once(':')
            .map_or(q.resource.as_str(), |(c, _)| c);
        let scopes = [
            Scope::Any,
            Scope::Collection(collection.to_owned()),
            Scope::Resource(q.resource.clone()),
        ];
        let mut slice = Vec::new();
        for role in &self.closure[&q.user] {
            for scope in &scopes {
                if let Some(policies) = self.index.get(&(role.clone(), scope.clone())) {
                    slice.extend(policies.iter().cloned());
                }
            }
        }
        let set = PolicySet::from_policies(slice).unwrap();
        self.authorizer
            .is_authorized(request, &set, &self.entities)
            .decision()
            == CedarDecision::Allow
    }
}

// --- The run ---------------------------------------------------------------------------

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn check<F: FnMut(&Query) -> bool>(engine: &str, w: &Workload, mut decide: F) {
    for q in &w.allow_queries {
        assert!(
            decide(q),
            "{engine} on {}: expected allow for {} {} {}",
            w.name,
            q.user,
            q.action,
            q.resource
        );
    }
    for q in &w.deny_queries {
        assert!(
            !decide(q),
            "{engine} on {}: expected deny for {} {} {}",
            w.name,
            q.user,
            q.action,
            q.resource
        );
    }
}

fn bench_workload(c: &mut Criterion, name: &str) {
    let Some(w) = load(name) else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let start = Instant::now();
    let p = portcullis(&w);
    eprintln!(
        "rbac/{name}: portcullis built in {:?} ({} KiB of indexes)",
        start.elapsed(),
        p.engine.compiled_size() / 1024
    );
    let start = Instant::now();
    let cas = casbin(&w, &runtime);
    eprintln!("rbac/{name}: casbin built in {:?}", start.elapsed());
    let start = Instant::now();
    let entities = cedar_entities(&w);
    let ced = cedar(&w, entities.clone());
    eprintln!("rbac/{name}: cedar built in {:?}", start.elapsed());
    let start = Instant::now();
    let sliced = cedar_sliced(&w, entities);
    eprintln!("rbac/{name}: cedar-sliced built in {:?}", start.elapsed());

    // Same decisions from every engine before anything is timed.
    check("portcullis", &w, |q| p.decide(q));
    check("casbin", &w, |q| {
        cas.enforce((&q.user, &q.resource, &q.action)).unwrap()
    });
    check("cedar", &w, |q| ced.decide(&cedar_request(q)));
    check("cedar-sliced", &w, |q| sliced.decide(q, &cedar_request(q)));
    eprintln!("rbac/{name}: all four engines agree on every labelled query");

    let slow = name != "small";
    let mut group = c.benchmark_group(format!("rbac/{name}"));
    for (label, queries) in [("allow", &w.allow_queries), ("deny", &w.deny_queries)] {
        let requests: Vec<Request> = queries.iter().map(cedar_request).collect();
        let n = queries.len();

        let prepared: Vec<(Principal, Query)> = queries.iter().map(|q| p.prepare(q)).collect();
        let mut i = 0usize;
        group.bench_function(format!("portcullis/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(p.decide_prepared(black_box(&prepared[i])))
            });
        });
        if slow {
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(3));
        }
        group.bench_function(format!("casbin/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                let q = &queries[i];
                black_box(cas.enforce((&q.user, &q.resource, &q.action)).unwrap())
            });
        });
        group.bench_function(format!("cedar/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(ced.decide(black_box(&requests[i])))
            });
        });
        if slow {
            group
                .sample_size(100)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3));
        }
        group.bench_function(format!("cedar-sliced/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(sliced.decide(&queries[i], &requests[i]))
            });
        });
    }

    if name == "large" {
        let doc = portcullis_document(&w);
        let before = rss_bytes();
        let start = Instant::now();
        let engine = RbacEngine::new(Policy::from_document(&doc).unwrap()).unwrap();
        let took = start.elapsed();
        let after = rss_bytes();
        eprintln!(
            "rbac/large: portcullis compiled in {took:?}; indexes {} KiB; resident growth {} KiB",
            engine.compiled_size() / 1024,
            after
                .zip(before)
                .map_or(0, |(a, b)| a.saturating_sub(b) / 1024),
        );
        drop(engine);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        group.bench_function("portcullis/compile", |b| {
            b.iter(|| black_box(RbacEngine::new(Policy::from_document(&doc).unwrap()).unwrap()));
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    for name in ["small", "medium", "large"] {
        bench_workload(c, name);
    }
}

criterion_group!(rbac, benches);
criterion_main!(rbac);
