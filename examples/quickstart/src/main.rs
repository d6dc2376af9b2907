//! Quick start: authenticate one HTTP request with an API key, ask the RBAC policy, and print
//! the decision and the audit event that records it.
//!
//! ```text
//! cargo run -p quickstart -- [API_KEY] [ACTION] [RESOURCE]
//! cargo run -p quickstart -- demo-scientist-key write collection:datasets
//! cargo run -p quickstart -- demo-scientist-key read collection:payroll
//! ```
//!
//! The keys (AmateRS `api_keys.json`) and roles (AmateRS `roles.toml`) are the files next to
//! this program. The example server of the tower/axum issue grows out of this.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use portcullis::apikey::{ApiKeyAuthenticator, FileOptions, JsonFileStore, KeyPrefix, Pepper};
use portcullis::rbac::RbacEngine;
use portcullis::{
    AccessRequest, AuditEvent, AuditEventType, AuditResult, AuthError, AuthenticatorChain, Clock,
    CredentialExtractor, PolicyEngine, SystemClock,
};
use ring::rand::{SecureRandom, SystemRandom};

fn here(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// The pepper for Portcullis-format keys, from `PORTCULLIS_API_KEY_PEPPER` (at least 32
/// bytes). The demo keys are AmateRS keys, which do not use it, so without the variable a
/// random pepper is drawn for this run.
fn pepper() -> Result<Pepper, String> {
    match std::env::var("PORTCULLIS_API_KEY_PEPPER") {
        Ok(value) => Pepper::new(value.as_bytes()).map_err(|e| e.to_string()),
        Err(_) => {
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| "the system random number generator failed".to_owned())?;
            Pepper::new(&bytes).map_err(|e| e.to_string())
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| "demo-reader-key".to_owned());
    let action = args.next().unwrap_or_else(|| "read".to_owned());
    let resource = args
        .next()
        .unwrap_or_else(|| "collection:datasets".to_owned());

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let policy = RbacEngine::from_file(here("roles.toml"))
        .map_err(|e| e.to_string())?
        .with_clock(clock.clone());
    let keys = JsonFileStore::open(here("api_keys.json"), FileOptions::default())
        .map_err(|e| e.to_string())?;
    let prefix = KeyPrefix::new("pc_live_").map_err(|e| e.to_string())?;
    let api_keys = ApiKeyAuthenticator::builder(Arc::new(keys), pepper()?)
        .prefix(prefix)
        .accept_amaters_keys(true)
        .clock(clock.clone())
        .realm("quickstart")
        .build();
    let chain = AuthenticatorChain::new(vec![Arc::new(api_keys)]);

    let request = http::Request::get(format!("/{}", resource.replace(':', "/")))
        .header("X-API-Key", key)
        .header("User-Agent", "quickstart")
        .body(())
        .map_err(|e| e.to_string())?;
    let (parts, ()) = request.into_parts();

    let (status, event) = match CredentialExtractor::new().extract(&parts) {
        Err(e) => {
            let error = AuthError::from(e);
            (error.status(), auth_failure(&error, clock.as_ref()))
        }
        Ok(credentials) => match chain.authenticate(&credentials).await.into_result() {
            Err(error) => {
                if error.needs_challenge() {
                    for challenge in chain.challenges() {
                        println!("WWW-Authenticate: {}", challenge.render(Some(&error)));
                    }
                }
                (error.status(), auth_failure(&error, clock.as_ref()))
            }
            Ok(principal) => {
                let decision = policy.evaluate(&AccessRequest::new(&principal, &action, &resource));
                println!("decision: {decision}");
                let (status, result) = if decision.is_allowed() {
                    (http::StatusCode::OK, AuditResult::Allowed)
                } else {
                    (http::StatusCode::FORBIDDEN, AuditResult::Denied)
                };
                let mut event = AuditEvent::new(AuditEventType::Authorization, result, clock.now())
                    .with_principal(&principal)
                    .with_action(action.as_str())
                    .with_resource(&resource)
                    .with_decision(&decision);
                if let Some(id) = principal.attribute("api_key_id") {
                    event = event.with_metadata("api_key_id", id.clone());
                }
                (status, event)
            }
        },
    };
    let event = event.with_http(
        parts.method.as_str(),
        parts.uri.path(),
        Some(status.as_u16()),
    );
    println!("status: {status}");
    let line = event.to_json_line().map_err(|e| e.to_string())?;
    println!("audit: {line}");
    Ok(())
}

fn auth_failure(error: &AuthError, clock: &dyn Clock) -> AuditEvent {
    let result = if error.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        AuditResult::Error
    } else {
        AuditResult::Failure
    };
    AuditEvent::new(AuditEventType::Authentication, result, clock.now())
        .with_reason(error.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
