//! Quick start: authenticate one HTTP request, ask the policy, and print the decision and the
//! audit event that records it.
//!
//! ```text
//! cargo run -p quickstart -- [TOKEN] [ACTION] [RESOURCE]
//! cargo run -p quickstart -- demo-reader-token write collection:datasets
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use portcullis::{
    AccessRequest, AuditEvent, AuditEventType, AuditResult, AuthError, AuthMethod, AuthOutcome,
    Authenticator, AuthenticatorChain, Challenge, Clock, CredentialExtractor, Credentials,
    Decision, Grant, PolicyEngine, Principal, PrincipalKind, SecretString, SystemClock,
    async_trait,
};

/// Bearer tokens issued out of band, each bound to one principal. Every entry is compared in
/// constant time, so the time taken does not reveal which token was close.
#[derive(Debug)]
struct TokenTable {
    entries: Vec<(SecretString, &'static str, &'static str)>,
    clock: Arc<dyn Clock>,
}

#[async_trait]
impl Authenticator for TokenTable {
    fn name(&self) -> &str {
        "token-table"
    }

    fn challenge(&self) -> Option<Challenge> {
        Challenge::bearer("quickstart").ok()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        let Some(token) = credentials.bearer() else {
            return AuthOutcome::NotApplicable;
        };
        let mut found = None;
        for (secret, subject, role) in &self.entries {
            if secret.constant_time_eq(token.expose()) {
                found = Some((*subject, *role));
            }
        }
        let Some((subject, role)) = found else {
            return AuthOutcome::Rejected(AuthError::invalid_credentials("unknown token"));
        };
        match Principal::builder(
            subject,
            PrincipalKind::User,
            AuthMethod::Session,
            self.clock.now(),
        )
        .role(role)
        .build()
        {
            Ok(principal) => AuthOutcome::Authenticated(principal),
            Err(e) => AuthOutcome::Rejected(
                AuthError::invalid_credentials("invalid principal").with_source(e),
            ),
        }
    }
}

/// The AmateRS levels: `read` < `write` < `admin`, one level per role, on every resource.
#[derive(Debug)]
struct Levels {
    grants: Vec<(Grant, u8)>,
}

fn level(action: &str) -> Option<u8> {
    match action {
        "read" => Some(1),
        "write" => Some(2),
        "admin" => Some(3),
        _ => None,
    }
}

impl PolicyEngine for Levels {
    fn evaluate(&self, request: &AccessRequest<'_>) -> Decision {
        let Some(wanted) = level(request.action()) else {
            return Decision::invalid_request("unknown action");
        };
        self.grants
            .iter()
            .find(|(grant, granted)| {
                request.principal().has_role(grant.role()) && *granted >= wanted
            })
            .map_or_else(Decision::no_match, |(grant, _)| {
                Decision::allow(grant.clone())
            })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let token = args
        .next()
        .unwrap_or_else(|| "demo-reader-token".to_owned());
    let action = args.next().unwrap_or_else(|| "read".to_owned());
    let resource = args
        .next()
        .unwrap_or_else(|| "collection:datasets".to_owned());

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let chain = AuthenticatorChain::new(vec![Arc::new(TokenTable {
        entries: vec![
            (SecretString::new("demo-reader-token"), "alice", "reader"),
            (SecretString::new("demo-admin-token"), "root", "admin"),
        ],
        clock: clock.clone(),
    })]);
    let grant = |role: &str, rule: &str| {
        Grant::new(Arc::from(role), Arc::from(Vec::new()), Arc::from(rule))
    };
    let policy = Levels {
        grants: vec![
            (grant("reader", "* read"), 1),
            (grant("user", "* write"), 2),
            (grant("admin", "* admin"), 3),
        ],
    };

    let request = match http::Request::get(format!("/{}", resource.replace(':', "/")))
        .header("Authorization", format!("Bearer {token}"))
        .header("User-Agent", "quickstart")
        .body(())
    {
        Ok(request) => request,
        Err(e) => {
            eprintln!("cannot build the request: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (parts, ()) = request.into_parts();

    let (status, event) = match CredentialExtractor::new().extract(&parts) {
        Err(e) => {
            let error = AuthError::from(e);
            (error.status(), auth_failure(&error, clock.as_ref()))
        }
        Ok(credentials) => match chain.authenticate(&credentials).await.into_result() {
            Err(error) => {
                for challenge in chain.challenges() {
                    println!("WWW-Authenticate: {}", challenge.render(Some(&error)));
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
                let event = AuditEvent::new(AuditEventType::Authorization, result, clock.now())
                    .with_principal(&principal)
                    .with_action(action.as_str())
                    .with_resource(&resource)
                    .with_decision(&decision);
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
    match event.to_json_line() {
        Ok(line) => println!("audit: {line}"),
        Err(e) => {
            eprintln!("cannot serialize the audit event: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn auth_failure(error: &AuthError, clock: &dyn Clock) -> AuditEvent {
    AuditEvent::new(
        AuditEventType::Authentication,
        AuditResult::Failure,
        clock.now(),
    )
    .with_reason(error.to_string())
}
