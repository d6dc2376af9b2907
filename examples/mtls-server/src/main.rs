//! An AmateRS-style server that authenticates by client certificate, authorizes with RBAC
//! and writes audit JSON Lines, configured by one TOML file (see README.md).
//!
//! ```text
//! cargo run -p mtls-server -- --config examples/mtls-server/mtls-server.toml
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::routing::get;
use axum::{Json, Router};
use portcullis::audit::{BufferConfig, BufferedSink, FileSinkConfig, JsonlFile};
use portcullis::rbac::RbacEngine;
use portcullis::tower::{AuditLayer, AuthLayer, AuthzLayer, PublicPaths, RouteTable};
use portcullis::{AuthenticatorChain, PolicyEngine, Principal};
use portcullis_mtls::server::{ClientAuth, ServeOptions, serve_with, server_config, watch};
use portcullis_mtls::{AmatersMtlsConfig, AmatersNetworkConfig, MtlsAuthenticator};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    audit_log_path: PathBuf,
    #[serde(default)]
    server: ServerConfig,
    network: AmatersNetworkConfig,
    auth: AuthConfig,
    authz: AuthzConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerConfig {
    host: String,
    port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8443,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    mtls: AmatersMtlsConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthzConfig {
    roles_file: PathBuf,
}

async fn collection(
    UrlPath(name): UrlPath<String>,
    principal: Principal,
) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({ "collection": name, "by": principal.id(), "roles": principal.roles() }),
    )
}

async fn run() -> Result<(), String> {
    let mut config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mtls-server.toml");
    let mut port = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config_path = args.next().ok_or("--config needs a path")?.into(),
            "--port" => {
                port = Some(
                    args.next()
                        .ok_or("--port needs a number")?
                        .parse::<u16>()
                        .map_err(|e| e.to_string())?,
                )
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: mtls-server [--config FILE] [--port N]"
                ));
            }
        }
    }
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let base = config_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !config.network.tls_enabled || !config.auth.mtls.enabled {
        return Err("this example needs [network] tls_enabled and [auth.mtls] enabled".into());
    }

    // One trust store for the handshake and the authenticator: a swap reaches both.
    let mtls = &config.auth.mtls;
    let store = Arc::new(
        mtls.trust_store(&base, Some(&config.network))
            .map_err(|e| e.to_string())?,
    );
    let authenticator = MtlsAuthenticator::new(Arc::clone(&store), mtls.policy());
    let _watcher = watch(
        Arc::clone(&store),
        mtls.anchor_paths(&base, Some(&config.network)),
        mtls.crl_file(&base),
        Duration::from_secs(5),
    );

    let read_pem = |path: &Path| {
        std::fs::read(base.join(path)).map_err(|e| format!("{}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_slice_iter(&read_pem(&config.network.tls_cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert: {e:?}"))?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&config.network.tls_key)?)
        .map_err(|e| format!("tls_key: {e:?}"))?;
    let client_auth = if config.network.require_client_cert {
        ClientAuth::Required
    } else {
        ClientAuth::Optional
    };
    let tls = server_config(chain, key, &authenticator, client_auth).map_err(|e| e.to_string())?;

    let engine: Arc<dyn PolicyEngine> = Arc::new(
        RbacEngine::from_file(base.join(&config.authz.roles_file)).map_err(|e| e.to_string())?,
    );
    let file = JsonlFile::open(FileSinkConfig::new(base.join(&config.audit_log_path)))
        .map_err(|e| e.to_string())?;
    let sink =
        Arc::new(BufferedSink::new(file, BufferConfig::default()).map_err(|e| e.to_string())?);
    let routes = RouteTable::new()
        .route("GET /collections/{name}", "read", "collection:{name}")
        .and_then(|r| r.route("PUT /collections/{name}", "write", "collection:{name}"))
        .and_then(|r| r.route("DELETE /collections/{name}", "admin", "collection:{name}"))
        .map_err(|e| e.to_string())?;
    let app = Router::new()
        .route(
            "/collections/{name}",
            get(collection).put(collection).delete(collection),
        )
        .layer(AuthzLayer::new(engine, routes))
        .route("/health", get(|| async { "ok" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(AuditLayer::new(sink.clone()))
                .layer(
                    AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(authenticator)]))
                        .public_paths(PublicPaths::none().exact(["/health"])),
                ),
        );

    let address = format!(
        "{}:{}",
        config.server.host,
        port.unwrap_or(config.server.port)
    );
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("bind {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("mtls-server listening on https://{local}");
    println!(
        "  curl --cacert certs/ca.crt --cert certs/client.crt --key certs/client.key https://localhost:{}/collections/datasets",
        local.port()
    );
    tokio::select! {
        // Refused handshakes (expired, untrusted, revoked certificates, none at all) go to the
        // same audit trail; hyper's header limits sit above Portcullis's, so that an oversized
        // request gets an audited 401 rather than a bare 431.
        served = serve_with(listener, Arc::new(tls), app, ServeOptions::new().audit(sink.clone())) => served.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.shutdown()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mtls-server: {message}");
            ExitCode::FAILURE
        }
    }
}
