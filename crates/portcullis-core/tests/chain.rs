//! The authenticator chain: order, fall-through, and the distinct failure outcomes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use portcullis_core::{
    AuthError, AuthErrorKind, AuthMethod, AuthOutcome, Authenticator, AuthenticatorChain,
    ChainOutcome, Challenge, Credential, Credentials, Principal, PrincipalKind, SecretString,
    async_trait,
};
use time::OffsetDateTime;

/// Accepts one API key, compared in constant time; counts its calls.
#[derive(Debug)]
struct OneKey {
    key: SecretString,
    owner: &'static str,
    calls: AtomicUsize,
}

impl OneKey {
    fn new(key: &str, owner: &'static str) -> Arc<Self> {
        Arc::new(Self {
            key: SecretString::new(key),
            owner,
            calls: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Authenticator for OneKey {
    fn name(&self) -> &str {
        "one-key"
    }

    fn challenge(&self) -> Option<Challenge> {
        Challenge::new("ApiKey", "test").ok()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some((key, _)) = credentials.api_key() else {
            return AuthOutcome::NotApplicable;
        };
        if !self.key.constant_time_eq(key.expose()) {
            return AuthOutcome::Rejected(AuthError::invalid_credentials("unknown api key"));
        }
        match Principal::builder(
            self.owner,
            PrincipalKind::ApiKey,
            AuthMethod::ApiKey,
            OffsetDateTime::UNIX_EPOCH,
        )
        .build()
        {
            Ok(p) => AuthOutcome::Authenticated(p),
            Err(e) => {
                AuthOutcome::Rejected(AuthError::invalid_credentials("bad owner").with_source(e))
            }
        }
    }
}

/// Handles bearer tokens and always reports its dependency as down.
#[derive(Debug)]
struct JwksDown;

#[async_trait]
impl Authenticator for JwksDown {
    fn name(&self) -> &str {
        "jwt"
    }

    fn challenge(&self) -> Option<Challenge> {
        Challenge::bearer("test").ok()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        if credentials.bearer().is_none() {
            return AuthOutcome::NotApplicable;
        }
        AuthOutcome::Rejected(AuthError::dependency_unavailable("jwks endpoint"))
    }
}

fn api_key(key: &str) -> Credentials {
    Credentials::from_list(vec![Credential::ApiKey {
        key: SecretString::new(key),
        source: portcullis_core::ApiKeySource::AuthorizationScheme,
    }])
}

fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("cannot start a runtime: {e}"),
    }
}

#[test]
fn first_recognising_authenticator_decides() {
    let first = OneKey::new("key-a", "alice");
    let second = OneKey::new("key-b", "bob");
    let chain = AuthenticatorChain::new(vec![first.clone(), second.clone()]);

    match block_on(chain.authenticate(&api_key("key-a"))) {
        ChainOutcome::Authenticated {
            principal,
            authenticator,
        } => {
            assert_eq!(principal.id(), "alice");
            assert_eq!(authenticator, "one-key");
        }
        other => panic!("{other:?}"),
    }

    // A key the first authenticator rejects never falls through to the second.
    match block_on(chain.authenticate(&api_key("key-b"))) {
        ChainOutcome::Rejected(error) => {
            assert_eq!(error.authenticator(), Some("one-key"));
            assert!(matches!(error.kind(), AuthErrorKind::InvalidCredentials(_)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(second.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn no_credentials_and_unrecognised_credentials_differ() {
    let chain = AuthenticatorChain::new(vec![OneKey::new("k", "alice")]);
    let none = block_on(chain.authenticate(&Credentials::none()));
    assert!(matches!(none, ChainOutcome::NoCredentials));
    let err = none.into_result().unwrap_err();
    assert!(matches!(err.kind(), AuthErrorKind::MissingCredentials));

    let bearer = Credentials::from_list(vec![Credential::Bearer(SecretString::new("t"))]);
    let unrecognised = block_on(chain.authenticate(&bearer));
    assert!(matches!(unrecognised, ChainOutcome::Unrecognized));
    let err = unrecognised.into_result().unwrap_err();
    assert!(matches!(err.kind(), AuthErrorKind::UnsupportedCredentials));
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_dependency_outage_is_503_not_401() {
    let chain = AuthenticatorChain::new(vec![Arc::new(JwksDown), OneKey::new("k", "alice")]);
    let bearer = Credentials::from_list(vec![Credential::Bearer(SecretString::new("t"))]);
    let err = block_on(chain.authenticate(&bearer))
        .into_result()
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.authenticator(), Some("jwt"));
}

#[test]
fn challenges_are_collected_in_order_without_duplicates() {
    let chain = AuthenticatorChain::new(vec![
        Arc::new(JwksDown),
        OneKey::new("a", "alice"),
        OneKey::new("b", "bob"),
    ]);
    let schemes: Vec<_> = chain
        .challenges()
        .iter()
        .map(|c| c.scheme().to_owned())
        .collect();
    assert_eq!(schemes, ["Bearer", "ApiKey"]);
}
