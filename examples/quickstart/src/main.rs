//! The Portcullis quick start: an axum server with AmateRS-like routes, protected by JWT and
//! API-key authentication, RBAC and an audit trail, configured by one TOML file
//! (`quickstart.toml`, read by `portcullis::Config`).
//!
//! ```text
//! cargo run -p quickstart -- --dev                       # serve on 127.0.0.1:8080
//! cargo run -p quickstart -- --dev token alice admin     # print a demo JWT
//! ```
//!
//! Routes: `GET /health` and `GET /metrics` (public), `GET|PUT|DELETE /collections/{name}` (read, write, admin
//! on `collection:{name}`, from `[[authz.routes]]`), `GET /audit/logs` (admin on `audit`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::extract::Path as UrlPath;
use axum::routing::get;
use axum::{Json, Router};
use portcullis::axum::AuditLogAccess;
use portcullis::jwt::TokenRequest;
use portcullis::{Config, Principal};

struct Options {
    config: PathBuf,
    dev: bool,
    port: Option<u16>,
    audit_log: Option<PathBuf>,
    token: Option<(String, String)>,
    without_layers: bool,
}

const USAGE: &str = "usage: quickstart [--dev] [--config FILE] [--port N] [--audit-log FILE] \
                     [--without-layers] [token SUBJECT [ROLE]]";

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
                options.audit_log = Some(args.next().ok_or("--audit-log needs a path")?.into());
            }
            "token" => {
                let subject = args.next().ok_or("token needs a subject")?;
                let role = args.next().unwrap_or_else(|| "reader".into());
                options.token = Some((subject, role));
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
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
    let mut config = Config::from_file(&options.config).map_err(|e| e.to_string())?;
    if options.dev {
        config = config.insecure_development();
    }
    if let Some(port) = options.port {
        config.server.port = port;
    }
    if let Some(path) = options.audit_log {
        config.audit_log_path = Some(path);
    }
    let stack = config.build().await.map_err(|e| {
        let hint = if e.problems.iter().any(|p| p.key == "auth.jwt.secret") {
            "\n(the sample's secret is a placeholder: set JWT_SECRET_KEY, or pass --dev)"
        } else {
            ""
        };
        format!("{e}{hint}")
    })?;

    if let Some((subject, role)) = &options.token {
        let issuer = stack
            .token_issuer()
            .ok_or("token needs [auth.jwt] with a secret or private key")?;
        let token = issuer
            .issue(&TokenRequest::access(subject.as_str()).roles([role.as_str()]))
            .map_err(|e| e.to_string())?;
        println!("{}", token.token.expose());
        return Ok(());
    }

    // `GET /metrics` (public, as in Aethera): the stack's counters, in the Prometheus format.
    let metrics = stack.metrics();
    let mut app = Router::new()
        .route(
            "/collections/{name}",
            get(collection).put(collection).delete(collection),
        )
        .route("/health", get(health))
        .route("/metrics", get(move || async move { metrics.prometheus() }));
    // `GET /audit/logs`: admin on `audit`, the events up to this request.
    if let Some(audit_logs) = stack.audit_logs_router(AuditLogAccess::amaters()) {
        app = app.merge(audit_logs);
    }
    let listener = tokio::net::TcpListener::bind(stack.listen_addr().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if options.without_layers {
        if !options.dev {
            return Err("--without-layers is a benchmarking aid and needs --dev".into());
        }
        eprintln!("quickstart: WARNING: serving without authentication (--without-layers)");
        println!("quickstart listening on http://{local}");
        let bare = Router::new()
            .route(
                "/collections/{name}",
                get(|UrlPath(name): UrlPath<String>| async move {
                    Json(serde_json::json!({ "collection": name, "by": "nobody" }))
                }),
            )
            .route("/health", get(health));
        return portcullis::serve::serve_http(listener, bare, shutdown)
            .await
            .map_err(|e| e.to_string());
    }
    let scheme = if stack.tls().is_some() {
        "https"
    } else {
        "http"
    };
    println!("quickstart listening on {scheme}://{local}");
    println!("  curl -H 'X-API-Key: demo-reader-key' {scheme}://{local}/collections/datasets");
    println!(
        "  curl -X PUT -H 'X-API-Key: demo-reader-key' {scheme}://{local}/collections/datasets   # 403"
    );
    println!("  curl -H 'X-API-Key: demo-admin-key' {scheme}://{local}/audit/logs");
    println!("  curl {scheme}://{local}/metrics");
    if stack.token_issuer().is_some() {
        println!("  TOKEN=$(cargo run -q -p quickstart -- --dev token alice admin)");
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" -X DELETE {scheme}://{local}/collections/datasets"
        );
    }
    stack
        .serve(listener, app, shutdown)
        .await
        .map_err(|e| e.to_string())
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
