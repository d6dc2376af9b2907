//! The benchmark workloads of `shared/bench/` (`small`, `medium`, `large`: roles in a forest,
//! users holding them, rules, and queries), found next to the repository or at
//! `PORTCULLIS_BENCH_DIR`, as Portcullis policies and principals.

use std::collections::HashMap;
use std::path::PathBuf;

use portcullis_core::{AuthMethod, Principal, PrincipalKind};
use portcullis_rbac::{Builtins, PolicyDocument, RoleDef, RuleDef};
use serde_json::Value;
use time::OffsetDateTime;

/// One workload.
#[derive(Debug)]
pub struct Workload {
    /// The JSON as published.
    pub json: Value,
}

/// The workload `name`, or `None` after saying why (benchmarks run without it).
///
/// # Panics
///
/// When the file is there but is not JSON.
pub fn load(name: &str) -> Option<Workload> {
    let dir = std::env::var_os("PORTCULLIS_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench"),
        PathBuf::from,
    );
    let path = dir.join(format!("{name}.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(Workload {
            json: serde_json::from_str(&text).unwrap(),
        }),
        Err(e) => {
            eprintln!(
                "skipping workload `{name}`: cannot read {} ({e}); set PORTCULLIS_BENCH_DIR",
                path.display()
            );
            None
        }
    }
}

impl Workload {
    fn roles(&self) -> Vec<&str> {
        self.json["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect()
    }

    /// The policy: each role with its rules and its parent, on the AmateRS levels.
    pub fn document(&self) -> PolicyDocument {
        let names = self.roles();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut roles: Vec<RoleDef> = names.iter().map(|n| RoleDef::new(*n)).collect();
        for rule in self.json["rules"].as_array().unwrap() {
            roles[index[rule["role"].as_str().unwrap()]]
                .permissions
                .push(RuleDef::new(
                    rule["pattern"].as_str().unwrap(),
                    &[rule["action"].as_str().unwrap()],
                ));
        }
        for (i, parent) in self.json["role_parent"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            if let Some(parent) = parent.as_u64() {
                roles[i].inherits.push(names[parent as usize].to_owned());
            }
        }
        PolicyDocument {
            builtins: Builtins::None,
            roles,
            ..PolicyDocument::default()
        }
    }

    /// The names of the roles user `user` (`"user123"`) holds.
    pub fn roles_of(&self, user: &str) -> Vec<String> {
        let names = self.roles();
        let at: usize = user.trim_start_matches("user").parse().unwrap();
        self.json["user_roles"][at]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| names[r.as_u64().unwrap() as usize].to_owned())
            .collect()
    }

    /// User `user` as a JWT principal with its roles.
    pub fn principal(&self, user: &str) -> Principal {
        Principal::builder(
            user,
            PrincipalKind::User,
            AuthMethod::Jwt,
            OffsetDateTime::now_utc(),
        )
        .roles(self.roles_of(user))
        .build()
        .unwrap()
    }

    /// The `n`th query that should be allowed: (user, action, resource).
    pub fn allowed(&self, n: usize) -> (&str, &str, &str) {
        let q = &self.json["allow_queries"][n];
        (
            q["user"].as_str().unwrap(),
            q["action"].as_str().unwrap(),
            q["resource"].as_str().unwrap(),
        )
    }
}
