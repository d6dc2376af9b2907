//! One configuration for the whole stack (feature `config`): the AmateRS-style server file
//! plus the Aethera environment variables, validated with located errors, built into the
//! layers a router needs.
//!
//! ```no_run
//! # use axum_dep as axum;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//!
//! let stack = portcullis::Config::from_file("portcullis.toml")?.build().await?;
//! let app: Router = Router::new()
//!     .route("/collections/{name}", get(|| async { "ok" }))
//!     .layer(stack.layer());
//! # let _ = app; Ok(()) }
//! ```
//!
//! # The file
//!
//! ```toml
//! audit_log_path = "audit.jsonl"          # or [authz] audit_log_path, as AmateRS has it
//! audit_acknowledge = "written"           # a response waits for its event: "queued" (default),
//!                                         # "written" (survives kill -9), "synced" (power loss)
//!
//! [server]                                # where the example servers listen
//! host = "127.0.0.1"
//! port = 8080
//!
//! [network]                               # AmateRS: TLS, and client certificates
//! tls_enabled = true
//! tls_cert = "server.crt"
//! tls_key = "server.key"
//! require_client_cert = false
//!
//! [auth]
//! realm = "api"                           # the realm of every WWW-Authenticate challenge
//! public_paths = ["/health"]              # exact paths that need no credentials
//! public_prefixes = ["/docs"]             # and prefixes (at a segment boundary)
//!
//! [auth.jwt]                              # AmateRS: HS256 with a secret, or RS/ES/EdDSA
//! secret = "..."                          # with public_key_path
//! algorithm = "HS256"
//! issuer = "my-service"
//! audience = "my-clients"
//!
//! [auth.oidc]                             # tokens of an OpenID provider, by discovery
//! issuer = "https://accounts.example.com"
//! audience = "my-client-id"
//!
//! [auth.api_key]                          # AmateRS: api_keys.json with key_hash
//! keys_file = "api_keys.json"
//!
//! [auth.mtls]                             # AmateRS: client certificates (needs [network])
//! ca_certs_dir = "trusted_cas"
//!
//! [authz]                                 # AmateRS: the roles file and the default role
//! roles_file = "roles.toml"
//! default_role = "reader"
//!
//! [[authz.routes]]                        # which permission a request needs
//! route = "GET /collections/{name}"
//! action = "read"
//! resource = "collection:{name}"
//! ```
//!
//! Relative paths are relative to the file's directory. Every section but `[authz]` is
//! optional; at least one authenticator must be enabled.
//!
//! # The environment
//!
//! The Aethera variables override the file (the environment wins, so that a secret need
//! never be written in the file): `JWT_SECRET_KEY` (`[auth.jwt] secret`; creates the section
//! when absent), `JWT_ALGORITHM` (`algorithm`), `ACCESS_TOKEN_EXPIRE_MINUTES`
//! (`expiration_secs`), `REFRESH_TOKEN_EXPIRE_DAYS` (kept for the identity service),
//! `ENABLE_AUTHENTICATION` (`false` makes authentication optional, which needs
//! [`Config::insecure_development`]: a request without credentials then reaches the
//! authorization layer anonymously and is refused there), `ENABLE_AUDIT_LOGGING` (`false`
//! sends the audit events to `tracing` instead of the file), and `PORTCULLIS_API_KEY_PEPPER`
//! (the pepper of Portcullis-format API keys).

mod build;
mod locate;

use portcullis_audit::Acknowledge;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_apikey::AmatersApiKeyConfig;
use portcullis_core::SecretString;
use portcullis_jwt::{AmatersJwtConfig, is_placeholder_secret};
use portcullis_mtls::{AmatersMtlsConfig, AmatersNetworkConfig};
use serde::Deserialize;

pub use build::Stack;
/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_FILE_LEN: u64 = 1024 * 1024;

pub use portcullis_core::Location;

fn yes() -> bool {
    true
}

fn default_host() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    8080
}

/// `[server]`: where a server built from this file listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// The address (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// The port (default 8080).
    #[serde(default = "default_port")]
    pub port: u16,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
        }
    }
}

/// `[auth.oidc]`: RFC 9068 access tokens of an OpenID provider, found by discovery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcSection {
    /// The issuer (`https://...`).
    pub issuer: String,
    /// The audience the tokens must name (your API or client id).
    pub audience: String,
}

/// `[auth]`: the authenticators and what needs none.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthSection {
    /// The realm of every `WWW-Authenticate` challenge (default: the first authenticator's,
    /// `api`).
    #[serde(default)]
    pub realm: Option<String>,
    /// Exact paths that pass without credentials.
    #[serde(default)]
    pub public_paths: Vec<String>,
    /// Path prefixes that pass without credentials (matched at a segment boundary).
    #[serde(default)]
    pub public_prefixes: Vec<String>,
    /// AmateRS `[auth.jwt]`.
    #[serde(default)]
    pub jwt: Option<AmatersJwtConfig>,
    /// `[auth.oidc]`.
    #[serde(default)]
    pub oidc: Option<OidcSection>,
    /// AmateRS `[auth.api_key]`.
    #[serde(default)]
    pub api_key: Option<AmatersApiKeyConfig>,
    /// AmateRS `[auth.mtls]`.
    #[serde(default)]
    pub mtls: Option<AmatersMtlsConfig>,
}

/// One `[[authz.routes]]` entry: `"METHOD /path/{param}"` (`*` for any method) needs
/// `action` on `resource` (with `{param}` filled in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteSection {
    /// `GET /collections/{name}`.
    pub route: String,
    /// `read`.
    pub action: String,
    /// `collection:{name}`.
    pub resource: String,
}

/// AmateRS `[authz]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthzSection {
    /// Must be `true` when present (AmateRS `enabled`; authorization cannot be turned off).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The roles file; without one, the AmateRS built-in roles (admin, user, reader).
    #[serde(default)]
    pub roles_file: Option<PathBuf>,
    /// The role of a principal that holds none (overrides the roles file's).
    #[serde(default)]
    pub default_role: Option<String>,
    /// Must be `deny-by-default` when present.
    #[serde(default)]
    pub default_mode: Option<String>,
    /// AmateRS `collection_permissions` (accepted; collection patterns are always on).
    #[serde(default)]
    pub collection_permissions: Option<bool>,
    /// AmateRS `audit_enabled` (`false`: audit events go to `tracing` only).
    #[serde(default)]
    pub audit_enabled: Option<bool>,
    /// AmateRS `audit_log_path` (the top-level `audit_log_path` also works).
    #[serde(default)]
    pub audit_log_path: Option<PathBuf>,
    /// Route permissions, checked by the authorization layer. A request that matches no
    /// route is refused (403); without any route, route handlers authorize with guards
    /// (`require_permission`) and the layer only authenticates and audits.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

impl Default for AuthzSection {
    fn default() -> Self {
        Self {
            enabled: true,
            roles_file: None,
            default_role: None,
            default_mode: None,
            collection_permissions: None,
            audit_enabled: None,
            audit_log_path: None,
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    network: Option<AmatersNetworkConfig>,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    authz: AuthzSection,
    #[serde(default)]
    audit_log_path: Option<PathBuf>,
    #[serde(default)]
    audit_acknowledge: Acknowledge,
}

/// Where a value came from, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The configuration file, at this place (when known).
    File(Option<Location>),
    /// This environment variable.
    Environment(&'static str),
    /// A default.
    Default,
}

/// One problem of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The key, as a dotted path (`auth.jwt.secret`).
    pub key: String,
    /// Where the value came from.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something to say.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(Some(location)) => write!(f, "{location}: ")?,
            Origin::Environment(name) => write!(f, "${name}: ")?,
            Origin::File(None) | Origin::Default => {}
        }
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A configuration that cannot be used: every problem found, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<PathBuf>,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or_else(String::new, |p| format!("{}: ", p.display()));
        match self.problems.as_slice() {
            [one] => write!(f, "{file}{one}"),
            problems => {
                write!(f, "{file}{} problems", problems.len())?;
                for problem in problems {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// The configuration of a service: what [`Config::build`] turns into layers, what
/// `portcullis validate-config` checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// AmateRS `[network]`.
    pub network: Option<AmatersNetworkConfig>,
    /// `[auth]`.
    pub auth: AuthSection,
    /// AmateRS `[authz]`.
    pub authz: AuthzSection,
    /// The audit log (top-level `audit_log_path`, or `[authz] audit_log_path`).
    pub audit_log_path: Option<PathBuf>,
    /// `audit_acknowledge`: when a response may leave, relative to its audit event
    /// (`"queued"`, the default; `"written"`, surviving a killed process; `"synced"`,
    /// surviving a power loss).
    pub audit_acknowledge: Acknowledge,
    /// `ENABLE_AUTHENTICATION`: `false` makes authentication optional (development only).
    pub authentication_enabled: bool,
    /// `ENABLE_AUDIT_LOGGING` / `[authz] audit_enabled`: `false` sends events to `tracing`.
    pub audit_logging_enabled: bool,
    /// `REFRESH_TOKEN_EXPIRE_DAYS`, for the identity service (default 7 days).
    pub refresh_token_ttl: Duration,
    /// `PORTCULLIS_API_KEY_PEPPER`.
    pub api_key_pepper: Option<SecretString>,
    base_dir: PathBuf,
    source: Option<Source>,
    overrides: Vec<(String, &'static str)>,
    insecure_development: bool,
}

#[derive(Debug, Clone)]
struct Source {
    path: Option<PathBuf>,
    text: String,
}

/// The environment variables a configuration reads.
pub const ENVIRONMENT: [&str; 7] = [
    "JWT_SECRET_KEY",
    "JWT_ALGORITHM",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "REFRESH_TOKEN_EXPIRE_DAYS",
    "ENABLE_AUTHENTICATION",
    "ENABLE_AUDIT_LOGGING",
    "PORTCULLIS_API_KEY_PEPPER",
];

impl Config {
    /// Reads a file (at most [`MAX_CONFIG_FILE_LEN`] bytes of UTF-8) and applies the process
    /// environment.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a variable is invalid.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = portcullis_core::read_bounded_text(path, MAX_CONFIG_FILE_LEN).map_err(|e| {
            ConfigError {
                file: Some(path.to_path_buf()),
                problems: vec![Problem {
                    key: String::new(),
                    origin: Origin::File(None),
                    message: format!("cannot read the file: {e}"),
                    hint: None,
                }],
            }
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut config = Self::from_toml(&text, base)?;
        if let Some(source) = &mut config.source {
            source.path = Some(path.to_path_buf());
        }
        config.with_env(|name| std::env::var(name).ok())
    }

    /// Parses a file's text; relative paths are relative to `base_dir`. The environment is
    /// not read (see [`Config::with_env`]).
    ///
    /// # Errors
    /// When the text is not valid TOML of this shape.
    pub fn from_toml(text: &str, base_dir: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            problems: vec![Problem {
                key: String::new(),
                origin: Origin::File(e.span().and_then(|s| locate::offset(text, s.start))),
                message: e.message().to_owned(),
                hint: None,
            }],
        })?;
        Ok(Self {
            server: file.server,
            network: file.network,
            auth: file.auth,
            audit_log_path: file
                .audit_log_path
                .or_else(|| file.authz.audit_log_path.clone()),
            audit_logging_enabled: file.authz.audit_enabled.unwrap_or(true),
            audit_acknowledge: file.audit_acknowledge,
            authz: file.authz,
            authentication_enabled: true,
            refresh_token_ttl: Duration::from_secs(7 * 86_400),
            api_key_pepper: None,
            base_dir: base_dir.into(),
            source: Some(Source {
                path: None,
                text: text.to_owned(),
            }),
            overrides: Vec::new(),
            insecure_development: false,
        })
    }

    /// Applies the environment variables of [`ENVIRONMENT`] through `lookup` (they win over
    /// the file).
    ///
    /// # Errors
    /// When a variable has an invalid value.
    pub fn with_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut invalid = |name: &'static str, message: String| {
            problems.push(Problem {
                key: name.to_ascii_lowercase(),
                origin: Origin::Environment(name),
                message,
                hint: None,
            });
        };
        let number = |value: &str| {
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or(format!("`{value}` is not a positive integer"))
        };
        let flag = |value: &str| match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        };
        if let Some(secret) = lookup("JWT_SECRET_KEY") {
            self.jwt_section().secret = Some(SecretString::new(secret));
            self.overrides
                .push(("auth.jwt.secret".into(), "JWT_SECRET_KEY"));
        }
        if let Some(algorithm) = lookup("JWT_ALGORITHM") {
            self.jwt_section().algorithm = algorithm.trim().to_owned();
            self.overrides
                .push(("auth.jwt.algorithm".into(), "JWT_ALGORITHM"));
        }
        if let Some(minutes) = lookup("ACCESS_TOKEN_EXPIRE_MINUTES") {
            match number(&minutes) {
                Ok(minutes) => {
                    self.jwt_section().expiration_secs = minutes.saturating_mul(60);
                    self.overrides.push((
                        "auth.jwt.expiration_secs".into(),
                        "ACCESS_TOKEN_EXPIRE_MINUTES",
                    ));
                }
                Err(message) => invalid("ACCESS_TOKEN_EXPIRE_MINUTES", message),
            }
        }
        if let Some(days) = lookup("REFRESH_TOKEN_EXPIRE_DAYS") {
            match number(&days) {
                Ok(days) => {
                    self.refresh_token_ttl = Duration::from_secs(days.saturating_mul(86_400))
                }
                Err(message) => invalid("REFRESH_TOKEN_EXPIRE_DAYS", message),
            }
        }
        for (name, slot) in [
            ("ENABLE_AUTHENTICATION", &mut self.authentication_enabled),
            ("ENABLE_AUDIT_LOGGING", &mut self.audit_logging_enabled),
        ] {
            if let Some(value) = lookup(name) {
                match flag(&value) {
                    Some(on) => *slot = on,
                    None => invalid(name, format!("`{value}` is not true or false")),
                }
            }
        }
        if let Some(pepper) = lookup("PORTCULLIS_API_KEY_PEPPER") {
            self.api_key_pepper = Some(SecretString::new(pepper));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError {
                file: None,
                problems,
            })
        }
    }

    fn jwt_section(&mut self) -> &mut AmatersJwtConfig {
        // `[auth.jwt]` created from the environment alone: HS256 with the secret.
        self.auth.jwt.get_or_insert_with(AmatersJwtConfig::default)
    }

    /// Accepts what only development may use: the placeholder secrets of sample files, and
    /// `ENABLE_AUTHENTICATION=false`. The example servers' `--dev`.
    #[must_use]
    pub fn insecure_development(mut self) -> Self {
        self.insecure_development = true;
        self
    }

    /// Whether [`Config::insecure_development`] was called.
    #[must_use]
    pub fn is_insecure_development(&self) -> bool {
        self.insecure_development
    }

    /// The directory relative paths are resolved against.
    #[must_use]
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// `path` relative to the configuration's directory.
    #[must_use]
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Where the value of `key` (`auth.jwt.secret`) came from.
    #[must_use]
    pub fn origin(&self, key: &str) -> Origin {
        if let Some((_, name)) = self.overrides.iter().find(|(k, _)| k == key) {
            return Origin::Environment(name);
        }
        match &self.source {
            Some(source) => match locate::key(&source.text, key) {
                Some(location) => Origin::File(Some(location)),
                None => Origin::Default,
            },
            None => Origin::Default,
        }
    }

    fn problem(&self, key: &str, message: impl Into<String>, hint: Option<&str>) -> Problem {
        Problem {
            key: key.to_owned(),
            origin: self.origin(key),
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    fn error(&self, problems: Vec<Problem>) -> ConfigError {
        ConfigError {
            file: self.source.as_ref().and_then(|s| s.path.clone()),
            problems,
        }
    }

    /// Every problem that can be found without building anything: missing sections, weak or
    /// placeholder secrets, files that do not exist, an invalid roles file, unsupported
    /// modes. [`Config::build`] runs this first.
    #[must_use]
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let jwt = self.auth.jwt.as_ref().filter(|j| j.enabled);
        let api_key = self.auth.api_key.as_ref().filter(|k| k.enabled);
        let mtls = self.auth.mtls.as_ref().filter(|m| m.enabled);
        let tls = self.network.as_ref().filter(|n| n.tls_enabled);
        if jwt.is_none() && api_key.is_none() && mtls.is_none() && self.auth.oidc.is_none() {
            problems.push(self.problem(
                "auth",
                "no authenticator is enabled",
                Some("add [auth.jwt], [auth.oidc], [auth.api_key] or [auth.mtls]"),
            ));
        }
        if let Some(jwt) = jwt {
            match (&jwt.secret, &jwt.public_key_path) {
                (Some(secret), _) => {
                    if is_placeholder_secret(secret.expose()) && !self.insecure_development {
                        problems.push(self.problem(
                            "auth.jwt.secret",
                            "the secret is a placeholder from a sample",
                            Some("set JWT_SECRET_KEY to at least 32 random bytes"),
                        ));
                    } else if secret.len() < 32 {
                        problems.push(self.problem(
                            "auth.jwt.secret",
                            format!(
                                "the secret is {} bytes; HS256 needs at least 32",
                                secret.len()
                            ),
                            Some("use `openssl rand -base64 48`"),
                        ));
                    }
                }
                (None, Some(path)) => {
                    self.check_file(&mut problems, "auth.jwt.public_key_path", path)
                }
                (None, None) => problems.push(self.problem(
                    "auth.jwt",
                    "needs `secret` or `public_key_path`",
                    Some("or set JWT_SECRET_KEY"),
                )),
            }
            if let Some(path) = &jwt.private_key_path {
                self.check_file(&mut problems, "auth.jwt.private_key_path", path);
            }
        }
        if let Some(oidc) = &self.auth.oidc
            && let Err(e) = portcullis_jwt::RemoteJwks::check_issuer(&oidc.issuer)
        {
            problems.push(self.problem("auth.oidc.issuer", e.to_string(), None));
        }
        if let Some(keys) = api_key {
            self.check_file(&mut problems, "auth.api_key.keys_file", &keys.keys_file);
        }
        match (mtls, tls) {
            (Some(mtls), _) => {
                let dir = self.resolve(&mtls.ca_certs_dir);
                if std::fs::metadata(&dir).is_err() {
                    problems.push(self.problem(
                        "auth.mtls.ca_certs_dir",
                        format!("cannot read `{}`", dir.display()),
                        None,
                    ));
                }
                if let Some(crl) = &mtls.crl_path {
                    self.check_file(&mut problems, "auth.mtls.crl_path", crl);
                }
                if tls.is_none() {
                    problems.push(self.problem(
                        "auth.mtls",
                        "client certificates need TLS",
                        Some("set [network] tls_enabled = true with tls_cert and tls_key"),
                    ));
                }
            }
            (None, Some(_)) => {}
            (None, None) => {}
        }
        if let Some(network) = tls {
            self.check_file(&mut problems, "network.tls_cert", &network.tls_cert);
            self.check_file(&mut problems, "network.tls_key", &network.tls_key);
        }
        if !self.authz.enabled {
            problems.push(self.problem(
                "authz.enabled",
                "authorization cannot be turned off",
                Some("remove the key; deny-by-default is the only mode"),
            ));
        }
        if let Some(mode) = &self.authz.default_mode
            && mode != "deny-by-default"
        {
            problems.push(self.problem(
                "authz.default_mode",
                format!("`{mode}` is not supported"),
                Some("the only mode is `deny-by-default`"),
            ));
        }
        if let Some(roles) = &self.authz.roles_file {
            self.check_file(&mut problems, "authz.roles_file", roles);
        }
        if !self.authentication_enabled && !self.insecure_development {
            problems.push(Problem {
                key: "enable_authentication".into(),
                origin: Origin::Environment("ENABLE_AUTHENTICATION"),
                message: "authentication cannot be disabled outside development".into(),
                hint: Some("unset ENABLE_AUTHENTICATION (development: --dev)".into()),
            });
        }
        if self.audit_logging_enabled && self.audit_log_path.is_none() {
            problems.push(self.problem(
                "audit_log_path",
                "no audit log is configured",
                Some("set audit_log_path (or ENABLE_AUDIT_LOGGING=false to log to tracing)"),
            ));
        }
        problems
    }

    fn check_file(&self, problems: &mut Vec<Problem>, key: &str, path: &Path) {
        let full = self.resolve(path);
        if let Err(e) = std::fs::metadata(&full) {
            problems.push(self.problem(
                key,
                format!("cannot read `{}`: {e}", full.display()),
                None,
            ));
        }
    }

    /// The configuration as TOML, with secrets redacted and each overridden value marked
    /// with the variable it came from (what `validate-config --show` prints).
    #[must_use]
    pub fn show(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let from = |key: &str| match self.origin(key) {
            Origin::Environment(name) => format!("  # from ${name}"),
            _ => String::new(),
        };
        if let Some(path) = &self.audit_log_path {
            line(format!("audit_log_path = {:?}", path.display().to_string()));
            line(format!(
                "audit_acknowledge = {:?}",
                self.audit_acknowledge.as_str()
            ));
        }
        line(String::new());
        line("[server]".into());
        line(format!("host = {:?}", self.server.host));
        line(format!("port = {}", self.server.port));
        if let Some(network) = &self.network {
            line(String::new());
            line("[network]".into());
            line(format!("tls_enabled = {}", network.tls_enabled));
            line(format!(
                "tls_cert = {:?}",
                network.tls_cert.display().to_string()
            ));
            line(format!(
                "tls_key = {:?}",
                network.tls_key.display().to_string()
            ));
            line(format!(
                "require_client_cert = {}",
                network.require_client_cert
            ));
        }
        if let Some(jwt) = &self.auth.jwt {
            line(String::new());
            line("[auth.jwt]".into());
            line(format!("enabled = {}", jwt.enabled));
            if jwt.secret.is_some() {
                line(format!(
                    "secret = \"[redacted]\"{}",
                    from("auth.jwt.secret")
                ));
            }
            if let Some(path) = &jwt.public_key_path {
                line(format!(
                    "public_key_path = {:?}",
                    path.display().to_string()
                ));
            }
            line(format!(
                "algorithm = {:?}{}",
                jwt.algorithm,
                from("auth.jwt.algorithm")
            ));
            line(format!(
                "expiration_secs = {}{}",
                jwt.expiration_secs,
                from("auth.jwt.expiration_secs")
            ));
            if let Some(issuer) = &jwt.issuer {
                line(format!("issuer = {issuer:?}"));
            }
            if let Some(audience) = &jwt.audience {
                line(format!("audience = {audience:?}"));
            }
        }
        if let Some(oidc) = &self.auth.oidc {
            line(String::new());
            line("[auth.oidc]".into());
            line(format!("issuer = {:?}", oidc.issuer));
            line(format!("audience = {:?}", oidc.audience));
        }
        if let Some(keys) = &self.auth.api_key {
            line(String::new());
            line("[auth.api_key]".into());
            line(format!("enabled = {}", keys.enabled));
            line(format!(
                "keys_file = {:?}",
                keys.keys_file.display().to_string()
            ));
            line(format!("header_name = {:?}", keys.header_name));
            line(format!("hash_keys = {}", keys.hash_keys));
            if self.api_key_pepper.is_some() {
                line("# pepper = \"[redacted]\"  # from $PORTCULLIS_API_KEY_PEPPER".into());
            }
        }
        if let Some(mtls) = &self.auth.mtls {
            line(String::new());
            line("[auth.mtls]".into());
            line(format!("enabled = {}", mtls.enabled));
            line(format!(
                "ca_certs_dir = {:?}",
                mtls.ca_certs_dir.display().to_string()
            ));
            if let Some(crl) = &mtls.crl_path {
                line(format!("crl_path = {:?}", crl.display().to_string()));
            }
            line(format!("verify_cn = {}", mtls.verify_cn));
            line(format!(
                "allowed_organizations = {:?}",
                mtls.allowed_organizations
            ));
        }
        line(String::new());
        line("[authz]".into());
        if let Some(roles) = &self.authz.roles_file {
            line(format!("roles_file = {:?}", roles.display().to_string()));
        }
        if let Some(role) = &self.authz.default_role {
            line(format!("default_role = {role:?}"));
        }
        line("default_mode = \"deny-by-default\"".into());
        line(format!("audit_enabled = {}", self.audit_logging_enabled));
        for route in &self.authz.routes {
            line(String::new());
            line("[[authz.routes]]".into());
            line(format!("route = {:?}", route.route));
            line(format!("action = {:?}", route.action));
            line(format!("resource = {:?}", route.resource));
        }
        out
    }
}

#[cfg(test)]
mod tests;
