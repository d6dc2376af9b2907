//! A real OpenID Provider for the tests: panva's `oidc-provider` (a certified implementation)
//! on 127.0.0.1, from `testkit/oidc-provider/provider.mjs` (installed with `npm ci` on first
//! use; `scripts/services.sh` installs it under CI). One provider per test binary, started on
//! first use and stopped when the binary exits (its standard input closes).
//!
//! [`OpenIdProvider::tokens`] is the JSON line the provider printed: `issuer`, our client's
//! `client_id` and `client_secret`, RFC 9068 `access_tokens` per algorithm, the `id_token`,
//! `opaque_access_token` and `nonce` of an authorization code flow, and under `other` the same
//! for another application's client (`other-app`), for the token-substitution tests.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::peer;

/// The running provider.
#[derive(Debug)]
pub struct OpenIdProvider {
    tokens: Value,
    // Killed when the test binary exits: its standard input closes and it stops.
    _child: Mutex<Child>,
}

impl OpenIdProvider {
    /// The provider of this test binary, started on first use; `None` (after saying why) when
    /// Node.js or the npm registry is missing outside CI.
    ///
    /// # Panics
    /// Under CI when the provider cannot start.
    pub fn shared() -> Option<&'static Self> {
        static PROVIDER: OnceLock<Option<OpenIdProvider>> = OnceLock::new();
        PROVIDER.get_or_init(start).as_ref()
    }

    /// What the provider printed (see the module documentation).
    #[must_use]
    pub fn tokens(&self) -> &Value {
        &self.tokens
    }

    /// The string at `path` (`/`-separated keys) of [`tokens`](Self::tokens).
    ///
    /// # Panics
    /// When there is no string there.
    #[must_use]
    pub fn get(&self, path: &str) -> &str {
        path.split('/')
            .fold(&self.tokens, |value, key| &value[key])
            .as_str()
            .unwrap_or_else(|| panic!("the provider printed no `{path}`"))
    }

    /// Its issuer URL (`http://127.0.0.1:{port}`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.get("issuer")
    }
}

fn unavailable(reason: &str) -> Option<OpenIdProvider> {
    peer::present(&format!("the oidc-provider peer ({reason})"), false);
    None
}

fn start() -> Option<OpenIdProvider> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
    if !peer::runs("node", &["--version"]) {
        return unavailable("node is not installed");
    }
    if !dir.join("node_modules/oidc-provider").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status();
        if !installed.is_ok_and(|s| s.success()) {
            return unavailable("npm ci of oidc-provider failed (no npm registry?)");
        }
    }
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with('{'))
        .expect("the provider printed its tokens");
    Some(OpenIdProvider {
        tokens: serde_json::from_str(&line).unwrap(),
        _child: Mutex::new(child),
    })
}
