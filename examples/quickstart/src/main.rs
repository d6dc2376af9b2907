//! The Portcullis quick start: an axum server with AmateRS-like routes, protected by JWT and
//! API-key authentication, RBAC and an audit trail, configured by one TOML file.
//!
//! ```text
//! cargo run -p quickstart -- --dev                       # serve on 127.0.0.1:8080
//! cargo run -p quickstart -- --dev token alice admin     # print a demo JWT
//! ```
//!
//! Routes: `GET /health` (public), `GET|PUT|DELETE /collections/{name}` (read, write, admin
//! on `collection:{name}`), `GET /audit/logs` (admin).

mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::routing::get;
use axum::{Json, Router};
use portcullis::FlushingQuery;
use portcullis::apikey::{ApiKeyAuthenticator, FileOptions, JsonFileStore, KeyPrefix, Pepper};
use portcullis::audit::{
    AuditReader, BufferConfig, BufferedSink, FileSinkConfig, JsonlFile, Overflow,
};
use portcullis::jwt::{AmatersJwtConfig, IssuerConfig, JwtAuthenticator, TokenRequest, presets};
use portcullis::rbac::RbacEngine;
use portcullis::{Authenticator, AuthenticatorChain, CredentialExtractor, PolicyEngine, Principal};
use portcullis_axum::{AuditLogAccess, audit_logs_router, connect_info_peer};
use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, PublicPaths, RouteTable, Unmapped};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    server: ServerConfig,
    /// AmateRS `[network]`: TLS (off in the sample, so nothing has to be created first).
    #[serde(default)]
    network: Option<portcullis::mtls::AmatersNetworkConfig>,
    auth: AuthConfig,
    authz: AuthzConfig,
    audit_log_path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerConfig {
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
        }
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}

fn default_port() -> u16 {
    8080
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    jwt: Option<AmatersJwtConfig>,
    oidc: Option<OidcConfig>,
    api_key: Option<ApiKeyConfig>,
    /// AmateRS `[auth.mtls]`: client certificates (needs `[network]` TLS).
    mtls: Option<portcullis::mtls::AmatersMtlsConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcConfig {
    issuer: String,
    audience: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeyConfig {
    #[serde(default = "yes")]
    enabled: bool,
    keys_file: PathBuf,
    #[serde(default = "default_header")]
    header_name: String,
    #[serde(default = "yes")]
    hash_keys: bool,
}

fn yes() -> bool {
    true
}

fn default_header() -> String {
    "X-API-Key".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthzConfig {
    roles_file: PathBuf,
}

struct Options {
    config: PathBuf,
    dev: bool,
    port: Option<u16>,
    audit_log: Option<PathBuf>,
    token: Option<(String, String)>,
    without_layers: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        config: Path::new(env!("CARGO_MANIFEST_DIR")).join("quickstart.toml"),
        dev: false,
        port: None,
        audit_log: None,
        token: None,
        without_layers: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dev" => options.dev = true,
            // For scripts/wrk-quickstart.sh only: the same routes with no Portcullis layer.
            "--without-layers" => options.without_layers = true,
            "--config" => options.config = args.next().ok_or("--config needs a path")?.into(),
            "--port" => {
                let port = args.next().ok_or("--port needs a number")?;
                options.port = Some(port.parse().map_err(|_| format!("bad port {port:?}"))?);
            }
            "--audit-log" => {
                options.audit_log = Some(args.next().ok_or("--audit-log needs a path")?.into())
            }
            "token" => {
                let subject = args.next().ok_or("token needs a subject")?;
                let role = args.next().unwrap_or_else(|| "reader".into());
                options.token = Some((subject, role));
            }
            "--help" | "-h" => {
                return Err("usage: quickstart [--dev] [--config FILE] [--port N] [--audit-log FILE] [--without-layers] [token SUBJECT [ROLE]]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn pepper() -> Result<Pepper, String> {
    let bytes = match std::env::var("PORTCULLIS_API_KEY_PEPPER") {
        Ok(value) => value.into_bytes(),
        Err(_) => {
            let mut bytes = vec![0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| "the system random generator failed")?;
            bytes
        }
    };
    Pepper::new(&bytes).map_err(|e| e.to_string())
}

async fn collection(
    UrlPath(name): UrlPath<String>,
    principal: Principal,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "collection": name, "by": principal.id() }))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn run(options: Options) -> Result<(), String> {
    let text = std::fs::read_to_string(&options.config)
        .map_err(|e| format!("cannot read {}: {e}", options.config.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", options.config.display()))?;
    let base = options
        .config
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();

    let mut authenticators: Vec<Arc<dyn Authenticator>> = Vec::new();
    let jwt_config = config.auth.jwt.as_ref().filter(|j| j.enabled);
    if let Some(jwt) = jwt_config {
        let verifier = jwt.authenticator(&base, options.dev).map_err(|e| match e {
            portcullis::jwt::ConfigError::PlaceholderSecret => {
                "[auth.jwt] secret is a placeholder: set a real secret (32+ random bytes) or pass --dev".to_owned()
            }
            other => format!("[auth.jwt]: {other}"),
        })?;
        if let Some((subject, role)) = &options.token {
            let issuer = jwt
                .token_issuer(&base, options.dev)
                .map_err(|e| e.to_string())?
                .ok_or("no signing key")?;
            let token = issuer
                .issue(&TokenRequest::access(subject.as_str()).roles([role.as_str()]))
                .map_err(|e| e.to_string())?;
            println!("{}", token.token.expose());
            return Ok(());
        }
        authenticators.push(Arc::new(verifier));
    }
    if let Some(oidc) = &config.auth.oidc {
        let fetcher = Arc::new(portcullis::jwt::HyperFetcher::new().map_err(|e| e.to_string())?);
        let issuer = presets::discovered(
            &oidc.issuer,
            &[oidc.audience.as_str()],
            &presets::ProviderOptions::new(fetcher),
        )
        .map_err(|e| e.to_string())?;
        let verifier: IssuerConfig = issuer;
        authenticators.push(Arc::new(
            JwtAuthenticator::builder()
                .issuer(verifier)
                .build()
                .map_err(|e| e.to_string())?,
        ));
    }
    let mut extractor = CredentialExtractor::new();
    if let Some(keys) = config.auth.api_key.as_ref().filter(|k| k.enabled) {
        let store = JsonFileStore::open(
            base.join(&keys.keys_file),
            FileOptions {
                hash_keys: keys.hash_keys,
            },
        )
        .map_err(|e| format!("[auth.api_key]: {e}"))?;
        let api_keys = ApiKeyAuthenticator::builder(Arc::new(store), pepper()?)
            .prefix(KeyPrefix::new("pc_live_").map_err(|e| e.to_string())?)
            .accept_amaters_keys(true)
            .realm("quickstart")
            .build();
        authenticators.push(Arc::new(api_keys));
        extractor = extractor
            .api_key_header(&keys.header_name)
            .map_err(|e| e.to_string())?;
    }
    if options.token.is_some() {
        return Err("token needs [auth.jwt] with a secret or private key".into());
    }
    let tls = tls_config(&config, &base, &mut authenticators)?;
    if authenticators.is_empty() {
        return Err("no authenticator is enabled in [auth]".into());
    }

    let engine: Arc<dyn PolicyEngine> = Arc::new(
        RbacEngine::from_file(base.join(&config.authz.roles_file))
            .map_err(|e| format!("[authz]: {e}"))?,
    );
    let audit_path = options
        .audit_log
        .clone()
        .unwrap_or_else(|| base.join(&config.audit_log_path));
    let file =
        JsonlFile::open(FileSinkConfig::new(&audit_path)).map_err(|e| format!("audit log: {e}"))?;
    let sink = Arc::new(
        BufferedSink::new(
            file,
            BufferConfig {
                overflow: Overflow::Block,
                ..BufferConfig::default()
            },
        )
        .map_err(|e| e.to_string())?,
    );

    let routes = RouteTable::new()
        .route("GET /collections/{name}", "read", "collection:{name}")
        .and_then(|r| r.route("PUT /collections/{name}", "write", "collection:{name}"))
        .and_then(|r| r.route("DELETE /collections/{name}", "admin", "collection:{name}"))
        .map_err(|e| e.to_string())?;
    let mut app = Router::new()
        .route(
            "/collections/{name}",
            get(collection).put(collection).delete(collection),
        )
        // /audit/logs checks its own permission (admin on `audit`), and flushes the buffered
        // sink first so that it shows every request made before it.
        .merge(audit_logs_router(
            Arc::new(FlushingQuery::new(
                sink.clone(),
                AuditReader::new(&audit_path),
            )),
            Arc::clone(&engine),
            AuditLogAccess::amaters(),
        ))
        .layer(AuthzLayer::with_unmapped(
            Arc::clone(&engine),
            routes,
            Unmapped::Allow,
        ))
        .route("/health", get(health))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink.clone()).peer_addr(connect_info_peer))
                .layer(
                    AuthLayer::new(AuthenticatorChain::new(authenticators))
                        .extractor(extractor)
                        .public_paths(PublicPaths::none().exact(["/health"])),
                ),
        );

    if options.without_layers {
        if !options.dev {
            return Err("--without-layers is a benchmarking aid and needs --dev".into());
        }
        eprintln!("quickstart: WARNING: serving without authentication (--without-layers)");
        app = Router::new()
            .route(
                "/collections/{name}",
                get(|UrlPath(name): UrlPath<String>| async move {
                    Json(serde_json::json!({ "collection": name, "by": "nobody" }))
                }),
            )
            .route("/health", get(health));
    }
    let port = options.port.unwrap_or(config.server.port);
    let address: SocketAddr = format!("{}:{port}", config.server.host)
        .parse()
        .map_err(|e| format!("[server] host: {e}"))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("bind {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(tls) = tls {
        println!("quickstart listening on https://{local} (TLS, client certificates accepted)");
        println!(
            "  curl --cacert ca.crt --cert client.crt --key client.key https://localhost:{}/collections/datasets",
            local.port()
        );
        // Refused handshakes go to the audit trail; hyper's header limits sit above
        // Portcullis's (see `serve`).
        let options = portcullis::mtls::server::ServeOptions::new().audit(sink.clone());
        tokio::select! {
            served = portcullis::mtls::server::serve_with(listener, Arc::new(tls), app, options) => served.map_err(|e| e.to_string())?,
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), sink.shutdown()).await;
        return Ok(());
    }
    println!("quickstart listening on http://{local}");
    println!("  curl -H 'X-API-Key: demo-reader-key' http://{local}/collections/datasets");
    println!(
        "  curl -X PUT -H 'X-API-Key: demo-reader-key' http://{local}/collections/datasets   # 403"
    );
    println!("  curl -H 'X-API-Key: demo-admin-key' http://{local}/audit/logs");
    if jwt_config.is_some() {
        println!("  TOKEN=$(cargo run -q -p quickstart -- --dev token alice admin)");
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" -X DELETE http://{local}/collections/datasets"
        );
    }
    println!("  audit log: {}", audit_path.display());
    let served = serve::serve_http(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.shutdown()).await;
    served.map_err(|e| e.to_string())
}

/// With `[network] tls_enabled`: the TLS configuration, and (with `[auth.mtls]`) the
/// client-certificate authenticator added to the chain, after JWT and API keys.
fn tls_config(
    config: &Config,
    base: &Path,
    authenticators: &mut Vec<Arc<dyn Authenticator>>,
) -> Result<Option<portcullis::mtls::server::TlsServerConfig>, String> {
    let Some(network) = config.network.as_ref().filter(|n| n.tls_enabled) else {
        if config.auth.mtls.as_ref().is_some_and(|m| m.enabled) {
            return Err("[auth.mtls] needs [network] tls_enabled = true".into());
        }
        return Ok(None);
    };
    let Some(mtls) = config.auth.mtls.as_ref().filter(|m| m.enabled) else {
        return Err(
            "this example serves TLS for client certificates: enable [auth.mtls] too".into(),
        );
    };
    let authenticator = mtls
        .authenticator(base)
        .map_err(|e| format!("[auth.mtls]: {e}"))?;
    let read = |path: &Path| {
        std::fs::read(base.join(path)).map_err(|e| format!("{}: {e}", path.display()))
    };
    use portcullis::mtls::rustls_pki_types::pem::PemObject as _;
    let chain = portcullis::CertificateDer::pem_slice_iter(&read(&network.tls_cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert: {e:?}"))?;
    let key =
        portcullis::mtls::rustls_pki_types::PrivateKeyDer::from_pem_slice(&read(&network.tls_key)?)
            .map_err(|e| format!("tls_key: {e:?}"))?;
    let client_auth = if network.require_client_cert {
        portcullis::mtls::server::ClientAuth::Required
    } else {
        portcullis::mtls::server::ClientAuth::Optional
    };
    let tls = portcullis::mtls::server::server_config(chain, key, &authenticator, client_auth)
        .map_err(|e| e.to_string())?;
    authenticators.push(Arc::new(authenticator));
    Ok(Some(tls))
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(options) => run(options).await,
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("quickstart: {message}");
            ExitCode::FAILURE
        }
    }
}
