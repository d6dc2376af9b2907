//! [`Stack`]: a [`Config`] built into the layers, the policy engine, the audit trail and
//! (with `[network]`) the TLS configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_apikey::Pepper;
use portcullis_audit::{
    Acknowledge, BufferConfig, BufferedSink, Durability, FileSinkConfig, JsonlFile, Overflow,
    TracingSink,
};
use portcullis_axum::{AuditLogAccess, audit_logs_router, connect_info_peer};
use portcullis_core::{
    AuditSink, Authenticator, AuthenticatorChain, CertificateDer, Counters, CredentialExtractor,
    FlushingQuery, PolicyEngine,
};
use portcullis_jwt::{HyperFetcher, TokenIssuer, presets};
use portcullis_mtls::MtlsAuthenticator;
use portcullis_mtls::server::{ClientAuth, TlsServerConfig, server_config};
use portcullis_rbac::{Policy, RbacEngine};
use portcullis_tower::{
    AuditLayer, AuditService, AuthLayer, AuthMode, AuthService, AuthzLayer, AuthzService,
    PublicPaths, RouteTable, Unmapped,
};
use tower_layer::Layer;

use super::{Config, ConfigError, Problem};

/// A [`Config`] built: the tower layers in their order (audit outermost, then
/// authentication, then authorization), the policy engine, the audit trail, the token issuer
/// and the TLS configuration. Cheap to clone; wrap a router in it with `Router::layer`.
#[derive(Clone)]
pub struct Stack {
    audit: AuditLayer,
    auth: AuthLayer,
    authz: AuthzLayer,
    engine: Arc<RbacEngine>,
    sink: Arc<dyn AuditSink>,
    file_sink: Option<Arc<BufferedSink>>,
    audit_path: Option<PathBuf>,
    issuer: Option<TokenIssuer>,
    tls: Option<Arc<TlsServerConfig>>,
    listen: String,
    metrics: Arc<Counters>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("auth", &self.auth)
            .field("engine", &self.engine)
            .field("audit_path", &self.audit_path)
            .field("tls", &self.tls.is_some())
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for Stack {
    type Service = AuditService<AuthService<AuthzService<S>>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.audit.layer(self.auth.layer(self.authz.layer(inner)))
    }
}

impl Stack {
    /// The layers, for `Router::layer` (the stack itself is the layer; this is a clone).
    #[must_use]
    pub fn layer(&self) -> Self {
        self.clone()
    }

    /// The policy engine (for `require_permission` guards and `has_permission`).
    #[must_use]
    pub fn engine(&self) -> Arc<RbacEngine> {
        Arc::clone(&self.engine)
    }

    /// The policy engine as a trait object.
    #[must_use]
    pub fn policy_engine(&self) -> Arc<dyn PolicyEngine> {
        self.engine.clone()
    }

    /// The audit trail (the buffered JSON Lines file, or `tracing`).
    #[must_use]
    pub fn audit_sink(&self) -> Arc<dyn AuditSink> {
        Arc::clone(&self.sink)
    }

    /// `GET /audit/logs` over the audit file, requiring `access`; `None` when events go to
    /// `tracing` only.
    #[must_use]
    pub fn audit_logs_router<St: Clone + Send + Sync + 'static>(
        &self,
        access: AuditLogAccess,
    ) -> Option<axum_dep::Router<St>> {
        let path = self.audit_path.as_ref()?;
        let query = FlushingQuery::new(
            Arc::clone(&self.sink),
            portcullis_audit::AuditReader::new(path),
        );
        Some(audit_logs_router(
            Arc::new(query),
            self.policy_engine(),
            access,
        ))
    }

    /// The counters every layer, the audit queue and the JWKS cache report to (serve
    /// [`Counters::prometheus`] at `/metrics`, or read [`Counters::snapshot`]).
    #[must_use]
    pub fn metrics(&self) -> Arc<Counters> {
        Arc::clone(&self.metrics)
    }

    /// The token issuer of `[auth.jwt]` (a secret or `private_key_path`), if any.
    #[must_use]
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The TLS configuration of `[network]`, if TLS is on.
    #[must_use]
    pub fn tls(&self) -> Option<Arc<TlsServerConfig>> {
        self.tls.clone()
    }

    /// `[server] host:port`.
    ///
    /// # Errors
    /// When it is not a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| ConfigError {
            file: None,
            problems: vec![Problem {
                key: "server.host".into(),
                origin: super::Origin::Default,
                message: format!("`{}` is not an address: {e}", self.listen),
                hint: None,
            }],
        })
    }

    /// Writes out every audit event still queued and closes the file (call before exiting).
    ///
    /// # Errors
    /// When the last events cannot be written.
    pub async fn shutdown(&self) -> Result<(), portcullis_core::AuditError> {
        match &self.file_sink {
            Some(sink) => sink.shutdown().await,
            None => Ok(()),
        }
    }
}

impl Config {
    /// Builds the stack: every problem of [`Config::problems`] first, then the
    /// authenticators (JWT, OIDC, API keys, client certificates, tried in that order), the
    /// policy, the audit trail and the layers.
    ///
    /// # Errors
    /// Every problem found, with the key it is about.
    pub async fn build(&self) -> Result<Stack, ConfigError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(self.error(problems));
        }
        let fail = |key: &str, message: String| self.error(vec![self.problem(key, message, None)]);
        let base = self.base_dir();
        let metrics = Arc::new(Counters::default());
        let placeholders = if self.is_insecure_development() {
            portcullis_jwt::PlaceholderSecrets::InsecureAccept
        } else {
            portcullis_jwt::PlaceholderSecrets::Refuse
        };

        let mut authenticators: Vec<Arc<dyn Authenticator>> = Vec::new();
        let mut issuer = None;
        if let Some(jwt) = self.auth.jwt.as_ref().filter(|j| j.enabled) {
            let verifier = jwt
                .authenticator(base, placeholders)
                .map_err(|e| fail("auth.jwt", e.to_string()))?;
            issuer = jwt
                .token_issuer(base, placeholders)
                .map_err(|e| fail("auth.jwt", e.to_string()))?;
            authenticators.push(Arc::new(verifier));
        }
        if let Some(oidc) = &self.auth.oidc {
            let fetcher = HyperFetcher::new().map_err(|e| fail("auth.oidc", e.to_string()))?;
            let issuer_config = presets::discovered(
                &oidc.issuer,
                &[oidc.audience.as_str()],
                &presets::ProviderOptions::new(Arc::new(fetcher)).metrics(metrics.clone()),
            )
            .map_err(|e| fail("auth.oidc", e.to_string()))?;
            let verifier = portcullis_jwt::JwtAuthenticator::builder()
                .issuer(issuer_config)
                .build()
                .map_err(|e| fail("auth.oidc", e.to_string()))?;
            authenticators.push(Arc::new(verifier));
        }
        let mut extractor = CredentialExtractor::new();
        if let Some(keys) = self.auth.api_key.as_ref().filter(|k| k.enabled) {
            let pepper = match &self.api_key_pepper {
                Some(pepper) => Some(Pepper::new(pepper.expose().as_bytes()).map_err(|e| {
                    fail("auth.api_key", format!("PORTCULLIS_API_KEY_PEPPER: {e}"))
                })?),
                None => None,
            };
            let authenticator = keys
                .authenticator(base, pepper)
                .map_err(|e| fail("auth.api_key", e.to_string()))?;
            authenticators.push(Arc::new(authenticator));
            extractor = extractor
                .api_key_header(&keys.header_name)
                .map_err(|e| fail("auth.api_key.header_name", e.to_string()))?;
        }
        let tls = self.tls(base, &mut authenticators)?;

        let policy = match &self.authz.roles_file {
            Some(path) => {
                let limit = portcullis_rbac::MAX_POLICY_FILE_LEN as u64;
                let text = portcullis_core::read_bounded_text(&self.resolve(path), limit)
                    .map_err(|e| fail("authz.roles_file", e.to_string()))?;
                Policy::from_toml(&text).map_err(|e| fail("authz.roles_file", e.to_string()))?
            }
            None => Policy::amaters(),
        };
        let policy = match &self.authz.default_role {
            Some(role) => policy
                .with_default_role(role)
                .map_err(|e| fail("authz.default_role", e.to_string()))?,
            None => policy,
        };
        let engine =
            Arc::new(RbacEngine::new(policy).map_err(|e| fail("authz.roles_file", e.to_string()))?);

        let (sink, file_sink, audit_path): (Arc<dyn AuditSink>, _, _) = match (
            &self.audit_log_path,
            self.audit_logging_enabled,
        ) {
            (Some(path), true) => {
                let path = self.resolve(path);
                // Queued: the writer fsyncs every batch on its own time. Written: the response
                // waits for the write only, and the file is synced within a second. Synced: the
                // response waits for the batch's fdatasync, done once by the sink.
                let file_durability = match self.audit_acknowledge {
                    Acknowledge::Queued => Durability::EveryBatch,
                    _ => Durability::Interval(Duration::from_secs(1)),
                };
                let file = JsonlFile::open(FileSinkConfig::new(&path).durability(file_durability))
                    .map_err(|e| fail("audit_log_path", e.to_string()))?;
                let buffered = Arc::new(
                    BufferedSink::new(
                        file,
                        BufferConfig::default()
                            .overflow(Overflow::Block)
                            .acknowledge(self.audit_acknowledge)
                            .metrics(metrics.clone()),
                    )
                    .map_err(|e| fail("audit_log_path", e.to_string()))?,
                );
                (buffered.clone(), Some(buffered), Some(path))
            }
            _ => {
                tracing::warn!(
                    target: "portcullis.config",
                    "audit events go to tracing only (ENABLE_AUDIT_LOGGING=false or no audit_log_path)"
                );
                (Arc::new(TracingSink::new()), None, None)
            }
        };

        let public = PublicPaths::none()
            .exact(self.auth.public_paths.iter().cloned())
            .prefixes(self.auth.public_prefixes.iter().cloned());
        let mut auth = AuthLayer::new(AuthenticatorChain::new(authenticators))
            .extractor(extractor)
            .public_paths(public)
            .metrics(metrics.clone());
        if let Some(realm) = &self.auth.realm {
            auth = auth
                .realm(realm)
                .map_err(|e| fail("auth.realm", e.to_string()))?;
        }
        if !self.authentication_enabled {
            tracing::warn!(
                target: "portcullis.config",
                "ENABLE_AUTHENTICATION=false: requests without credentials go on anonymously (development)"
            );
            auth = auth.mode(AuthMode::Optional);
        }
        let mut routes = RouteTable::new();
        for (i, route) in self.authz.routes.iter().enumerate() {
            routes = routes
                .route(&route.route, &route.action, &route.resource)
                .map_err(|e| fail(&format!("authz.routes.{i}"), e.to_string()))?;
        }
        let authz = if self.authz.routes.is_empty() {
            // No route table: handlers authorize with guards; the layer decides nothing.
            AuthzLayer::with_unmapped(engine.clone(), routes, Unmapped::InsecurePass)
        } else {
            AuthzLayer::new(engine.clone(), routes)
        }
        .metrics(metrics.clone());
        let audit = AuditLayer::new(Arc::clone(&sink))
            .peer_addr(connect_info_peer)
            .metrics(metrics.clone());
        Ok(Stack {
            audit,
            auth,
            authz,
            engine,
            sink,
            file_sink,
            audit_path,
            issuer,
            tls,
            listen: format!("{}:{}", self.server.host, self.server.port),
            metrics,
        })
    }

    /// With `[network] tls_enabled`: the TLS configuration, and (with `[auth.mtls]`) the
    /// client-certificate authenticator, added last to the chain; both share one trust store.
    fn tls(
        &self,
        base: &Path,
        authenticators: &mut Vec<Arc<dyn Authenticator>>,
    ) -> Result<Option<Arc<TlsServerConfig>>, ConfigError> {
        let fail = |key: &str, message: String| self.error(vec![self.problem(key, message, None)]);
        let Some(network) = self.network.as_ref().filter(|n| n.tls_enabled) else {
            return Ok(None);
        };
        use portcullis_mtls::rustls_pki_types::pem::PemObject as _;
        let read = |key: &str, path: &Path| {
            portcullis_core::read_bounded(&self.resolve(path), portcullis_mtls::MAX_TRUST_FILE_LEN)
                .map_err(|e| fail(key, e.to_string()))
        };
        let chain = CertificateDer::pem_slice_iter(&read("network.tls_cert", &network.tls_cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail("network.tls_cert", format!("{e:?}")))?;
        let key = portcullis_mtls::rustls_pki_types::PrivateKeyDer::from_pem_slice(&read(
            "network.tls_key",
            &network.tls_key,
        )?)
        .map_err(|e| fail("network.tls_key", format!("{e:?}")))?;
        let client_auth = if network.require_client_cert {
            ClientAuth::Required
        } else {
            ClientAuth::Optional
        };
        let Some(mtls) = self.auth.mtls.as_ref().filter(|m| m.enabled) else {
            return Err(fail(
                "auth.mtls",
                "TLS here is for client certificates: enable [auth.mtls] too".into(),
            ));
        };
        let store = Arc::new(
            mtls.trust_store(base, Some(network))
                .map_err(|e| fail("auth.mtls", e.to_string()))?,
        );
        // Anchors and CRLs re-read when their files change (a failed reload keeps them).
        portcullis_mtls::server::watch(
            Arc::clone(&store),
            mtls.anchor_paths(base, Some(network)),
            mtls.crl_file(base),
            Duration::from_secs(5),
        );
        let authenticator = MtlsAuthenticator::new(store, mtls.policy());
        let tls = server_config(chain, key, &authenticator, client_auth)
            .map_err(|e| fail("network", e.to_string()))?;
        authenticators.push(Arc::new(authenticator));
        Ok(Some(Arc::new(tls)))
    }
}
