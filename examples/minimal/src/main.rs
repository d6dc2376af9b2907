//! The smallest protected axum service: `portcullis.toml` names the authenticators (API keys
//! here), the roles and the audit log; `portcullis::Config` builds the whole stack from it.
//!
//! ```text
//! cargo run -p minimal
//! curl -H 'X-API-Key: demo-viewer-key' http://127.0.0.1:8081/projects/42        # 200
//! curl -X POST -H 'X-API-Key: demo-viewer-key' http://127.0.0.1:8081/projects    # 403
//! curl -X POST -H 'X-API-Key: demo-analyst-key' http://127.0.0.1:8081/projects   # 200
//! ```

use axum::Router;
use axum::routing::{get, post};
use portcullis::axum::require_permission;
use portcullis::{Config, Principal};

async fn read_project(principal: Principal) -> String {
    format!("project, for {}\n", principal.id())
}

async fn create_project(principal: Principal) -> String {
    format!("project created by {}\n", principal.id())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/portcullis.toml").into());
    let stack = Config::from_file(file)?.build().await?;
    let app = Router::new()
        // Guards on single routes: the Aethera permissions, decided by the roles file.
        .route("/projects/{id}", get(read_project))
        .route_layer(require_permission(stack.policy_engine(), "projects:read"))
        .merge(
            Router::new()
                .route("/projects", post(create_project))
                .route_layer(require_permission(stack.policy_engine(), "projects:create")),
        )
        .route("/", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(stack.listen_addr()?).await?;
    println!("minimal listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    stack.serve(listener, app, shutdown).await?;
    Ok(())
}
