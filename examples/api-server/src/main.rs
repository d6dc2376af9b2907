//! The Aethera API served by axum with Portcullis. SQLite file by default (`aethera.db`),
//! PostgreSQL when `DATABASE_URL` says so.
//!
//! ```text
//! cargo run -p api-server -- --dev      # 127.0.0.1:8000, throwaway JWT secret
//! ```
//!
//! Public: `/`, `/docs`, `/openapi.json`, `/metrics`,
//! `POST /auth/{register,login,refresh,oauth/login}`.
//! Everything else needs `Authorization: Bearer <access_token>`; see `/openapi.json` for what
//! each route requires.

mod oauth;
mod routes;
mod settings;

use std::net::SocketAddr;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut dev = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--dev" => dev = true,
            "--help" | "-h" => {
                println!(
                    "usage: api-server [--dev]\n\nEnvironment: DATABASE_URL (default \
                     sqlite://aethera.db), JWT_SECRET_KEY, JWT_ALGORITHM, \
                     ACCESS_TOKEN_EXPIRE_MINUTES, REFRESH_TOKEN_EXPIRE_DAYS, \
                     ENABLE_AUTHENTICATION, ENABLE_AUDIT_LOGGING, HOST, PORT, CORS_ORIGINS, \
                     ADMIN_USERNAME, ADMIN_EMAIL, ADMIN_PASSWORD, OAUTH_GOOGLE_CLIENT_ID, \
                     OAUTH_MICROSOFT_CLIENT_ID, OAUTH_MICROSOFT_TENANT_ID, OAUTH_OKTA_DOMAIN, \
                     OAUTH_OKTA_CLIENT_ID, OAUTH_OKTA_CLIENT_SECRET, \
                     OAUTH_OKTA_AUTHORIZATION_SERVER, OAUTH_OKTA_AUDIENCE, OAUTH_OIDC_ISSUER, \
                     OAUTH_OIDC_CLIENT_ID, OAUTH_OIDC_CLIENT_SECRET"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("api-server: unknown argument {other:?} (try --help)");
                return ExitCode::FAILURE;
            }
        }
    }
    match run(dev).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("api-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(dev: bool) -> Result<(), String> {
    let settings = settings::Settings::from_lookup(|name| std::env::var(name).ok(), dev)?;
    if settings.dev {
        eprintln!("api-server: development mode (--dev): not for production");
    }
    if settings.generated_secret {
        eprintln!(
            "api-server: --dev without JWT_SECRET_KEY: a random secret for this run (tokens \
             stop working at restart)"
        );
    }
    let app = routes::App::start(&settings).await?;
    let router = app.router(&settings)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", settings.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "api-server listening on http://{local} ({})",
        app.engine_name()
    );
    println!(
        "  curl -X POST http://{local}/auth/register -H 'Content-Type: application/json' \\\n    \
         -d '{{\"username\":\"johndoe\",\"email\":\"john@example.com\",\"password\":\"securepassword123\",\"full_name\":\"John Doe\"}}'"
    );
    println!("  docs: http://{local}/docs");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    app.shutdown().await;
    Ok(())
}
