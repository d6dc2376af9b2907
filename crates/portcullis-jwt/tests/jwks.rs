//! A JWKS server on 127.0.0.1 inside the tests, fetched with the default hyper client:
//! rotation, unknown-kid single flight, outage with bounded staleness, slow and invalid
//! responses, OIDC discovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::{AuthErrorKind, Clock, ManualClock};
use portcullis_jwt::{
    Algorithm, HyperFetcher, IssuerConfig, JwksOptions, JwtAuthenticator, JwtError, RemoteJwks,
    SigningKey, TokenIssuer, TokenRequest, presets,
};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
enum Mode {
    Serve,
    Status(u16),
    Garbage,
}

#[derive(Debug)]
struct State {
    jwks: String,
    discovery: String,
    mode: Mode,
    delay: Duration,
    cache_control: String,
}

#[derive(Debug, Clone)]
struct Server {
    base: String,
    state: Arc<Mutex<State>>,
    jwks_hits: Arc<AtomicUsize>,
    discovery_hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = Self {
            base: base.clone(),
            state: Arc::new(Mutex::new(State {
                jwks: r#"{"keys":[]}"#.into(),
                discovery: String::new(),
                mode: Mode::Serve,
                delay: Duration::ZERO,
                cache_control: "public, max-age=60".into(),
            })),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            discovery_hits: Arc::new(AtomicUsize::new(0)),
        };
        let handle = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body, cache, delay) = {
                        let state = handle.state.lock().unwrap();
                        let (status, body) = if path.ends_with("/.well-known/openid-configuration")
                        {
                            handle.discovery_hits.fetch_add(1, Ordering::SeqCst);
                            (200, state.discovery.clone())
                        } else {
                            handle.jwks_hits.fetch_add(1, Ordering::SeqCst);
                            match &state.mode {
                                Mode::Serve => (200, state.jwks.clone()),
                                Mode::Status(code) => (*code, "error".into()),
                                Mode::Garbage => (200, "{\"keys\": [ not json".into()),
                            }
                        };
                        (status, body, state.cache_control.clone(), state.delay)
                    };
                    tokio::time::sleep(delay).await;
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nCache-Control: {cache}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("{}/keys", self.base)
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

const ISS: &str = "https://idp.example";

struct Fixture {
    server: Server,
    clock: Arc<ManualClock>,
    issuer: TokenIssuer,
    remote: RemoteJwks,
    verifier: JwtAuthenticator,
}

async fn fixture(options: JwksOptions) -> Fixture {
    let server = Server::start().await;
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    ));
    let issuer = TokenIssuer::new(ISS, SigningKey::generate("k1", Algorithm::ES256).unwrap())
        .audiences(["api"])
        .access_ttl(Duration::from_secs(86_400 * 2))
        .clock(clock.clone());
    server.set(|s| s.jwks = issuer.jwks().to_string());
    let remote = RemoteJwks::new(
        &server.url(),
        Arc::new(HyperFetcher::new().unwrap()),
        options,
    )
    .unwrap()
    .with_clock(clock.clone());
    let verifier = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new(ISS, remote.clone()).audiences(["api"]))
        .clock(clock.clone())
        .build()
        .unwrap();
    Fixture {
        server,
        clock,
        issuer,
        remote,
        verifier,
    }
}

impl Fixture {
    fn token(&self) -> String {
        self.issuer
            .issue(&TokenRequest::access("alice"))
            .unwrap()
            .token
            .expose()
            .to_owned()
    }

    fn advance(&self, secs: u64) {
        let clock: &ManualClock = &self.clock;
        clock.advance(time::Duration::seconds(i64::try_from(secs).unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_fetched_once_and_served_from_the_cache() {
    let f = fixture(JwksOptions::default()).await;
    for _ in 0..20 {
        assert_eq!(f.verifier.verify(&f.token()).await.unwrap().id(), "alice");
    }
    assert_eq!(f.server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_picked_up_through_an_unknown_kid() {
    let f = fixture(JwksOptions::default()).await;
    let old = f.token();
    assert!(f.verifier.verify(&old).await.is_ok());
    f.issuer
        .rotate(
            SigningKey::generate("k2", Algorithm::ES256).unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    f.server.set(|s| s.jwks = f.issuer.jwks().to_string());
    let new = f.token();
    assert!(f.verifier.verify(&new).await.is_ok());
    assert!(
        f.verifier.verify(&old).await.is_ok(),
        "the previous key is still published"
    );
    assert_eq!(f.server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_with_a_new_kid_cause_one_fetch() {
    let f = fixture(JwksOptions::default()).await;
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    f.issuer
        .rotate(
            SigningKey::generate("k2", Algorithm::ES256).unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    f.server.set(|s| {
        s.jwks = f.issuer.jwks().to_string();
        s.delay = Duration::from_millis(100);
    });
    let token = f.token();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let verifier = f.verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(
        f.server.hits(),
        2,
        "one initial fetch and one for the new kid"
    );
}

fn forged(f: &Fixture, kid: &str) -> String {
    TokenIssuer::new(ISS, SigningKey::generate(kid, Algorithm::ES256).unwrap())
        .audiences(["api"])
        .clock(f.clock.clone())
        .issue(&TokenRequest::access("mallory"))
        .unwrap()
        .token
        .expose()
        .to_owned()
}

/// The worst case of a flood of made-up kids: `unknown_kid_burst` fetches (3), then one per
/// `unknown_kid_refill` (10 s); a kid still missing after a refetch is not looked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_kids_cost_a_bounded_number_of_fetches() {
    let f = fixture(JwksOptions::default()).await;
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    for i in 0..50 {
        assert_eq!(
            f.verifier
                .verify(&forged(&f, &format!("made-up-{i}")))
                .await
                .unwrap_err(),
            JwtError::UnknownKey
        );
    }
    assert_eq!(f.server.hits(), 1 + 3, "the initial fetch, then the burst");
    // The same made-up kid again, after its refill: remembered as missing, not fetched.
    f.advance(5);
    assert!(f.verifier.verify(&forged(&f, "made-up-49")).await.is_err());
    assert_eq!(f.server.hits(), 4);
    f.advance(6);
    for i in 0..10 {
        assert!(
            f.verifier
                .verify(&forged(&f, &format!("again-{i}")))
                .await
                .is_err()
        );
    }
    assert_eq!(f.server.hits(), 5, "one refill after 10 s");
    f.advance(3_600);
    for i in 0..10 {
        assert!(
            f.verifier
                .verify(&forged(&f, &format!("later-{i}")))
                .await
                .is_err()
        );
    }
    assert_eq!(f.server.hits(), 8, "a full burst again after a quiet hour");
}

/// Outside testing: one stray unknown kid (or an HS256 token sent to an RS256 verifier) made
/// the real next key fail for 30 s. A genuine rotation is now accepted at once after a stray
/// kid, and tokens that cannot be for this issuer spend nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_just_after_a_stray_kid_is_accepted_at_once() {
    let f = fixture(JwksOptions::default()).await;
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    assert_eq!(f.server.hits(), 1);
    // An HS256 token to a JWKS-backed verifier: refused before any fetch.
    let hs = TokenIssuer::new(
        ISS,
        SigningKey::hmac(Some("k9"), Algorithm::HS256, &[3; 32]).unwrap(),
    )
    .audiences(["api"])
    .clock(f.clock.clone())
    .issue(&TokenRequest::access("mallory"))
    .unwrap();
    assert_eq!(
        f.verifier.verify(hs.token.expose()).await.unwrap_err(),
        JwtError::AlgorithmNotAllowed
    );
    // A token of another issuer: refused before any fetch.
    let other = TokenIssuer::new(
        "https://other.example",
        SigningKey::generate("k1", Algorithm::ES256).unwrap(),
    )
    .audiences(["api"])
    .clock(f.clock.clone())
    .issue(&TokenRequest::access("mallory"))
    .unwrap();
    assert!(f.verifier.verify(other.token.expose()).await.is_err());
    assert_eq!(f.server.hits(), 1);
    // A stray unknown kid spends one refetch...
    assert!(f.verifier.verify(&forged(&f, "stray")).await.is_err());
    assert_eq!(f.server.hits(), 2);
    // ...and the provider rotates one second later: the new key is accepted at once.
    f.advance(1);
    f.issuer
        .rotate(
            SigningKey::generate("k2", Algorithm::ES256).unwrap(),
            Duration::from_secs(3600),
        )
        .unwrap();
    f.server.set(|s| s.jwks = f.issuer.jwks().to_string());
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    assert_eq!(f.server.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_serves_stale_keys_until_the_bound_then_503() {
    let f = fixture(JwksOptions::default()).await;
    let token = f.token();
    assert!(f.verifier.verify(&token).await.is_ok());
    f.server.set(|s| s.mode = Mode::Status(500));
    // Past max-age (60 s): the cached set keeps serving while a background refresh fails.
    f.advance(61);
    assert!(f.verifier.verify(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.server.hits(), 2, "a background refresh was attempted");
    assert_eq!(
        f.remote.status().await.last_error,
        Some(portcullis_jwt::FetchError::Status(500))
    );
    // Still inside stale-if-error (1 h).
    f.advance(3_000);
    assert!(f.verifier.verify(&token).await.is_ok());
    // Past the bound: 503, never an allow and never a 401.
    f.advance(700);
    let error = f.verifier.verify(&token).await.unwrap_err();
    assert!(matches!(error, JwtError::KeysUnavailable(_)), "{error:?}");
    let auth_error = error.into_auth_error();
    assert!(matches!(
        auth_error.kind(),
        AuthErrorKind::DependencyUnavailable(_)
    ));
    assert_eq!(auth_error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    // Errors are not cached: once the endpoint is back (and the interval passed), it works.
    f.server.set(|s| s.mode = Mode::Serve);
    f.advance(31);
    assert!(f.verifier.verify(&token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_times_out_as_unavailable() {
    let options = JwksOptions::default().timeout(Duration::from_millis(200));
    let f = fixture(options).await;
    f.server.set(|s| s.delay = Duration::from_secs(3));
    let started = std::time::Instant::now();
    let error = f.verifier.verify(&f.token()).await.unwrap_err();
    assert!(matches!(error, JwtError::KeysUnavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        f.remote.status().await.last_error,
        Some(portcullis_jwt::FetchError::Timeout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_never_replaces_good_keys() {
    let f = fixture(JwksOptions::default()).await;
    f.server.set(|s| s.mode = Mode::Garbage);
    assert!(matches!(
        f.verifier.verify(&f.token()).await.unwrap_err(),
        JwtError::KeysUnavailable(_)
    ));
    f.server.set(|s| s.mode = Mode::Serve);
    f.advance(31);
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    f.server.set(|s| s.mode = Mode::Garbage);
    f.advance(61);
    assert!(f.verifier.verify(&f.token()).await.is_ok());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = f.remote.status().await;
    assert_eq!(status.keys, 1);
    assert!(matches!(
        status.last_error,
        Some(portcullis_jwt::FetchError::InvalidDocument(_))
    ));
    assert!(f.verifier.verify(&f.token()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_an_unknown_issuer_causes_no_fetch() {
    let f = fixture(JwksOptions::default()).await;
    let other = TokenIssuer::new(
        "https://evil.example",
        SigningKey::generate("k1", Algorithm::ES256).unwrap(),
    )
    .audiences(["api"])
    .clock(f.clock.clone());
    let token = other.issue(&TokenRequest::access("mallory")).unwrap();
    assert_eq!(
        f.verifier.verify(token.token.expose()).await.unwrap_err(),
        JwtError::UnknownIssuer
    );
    assert_eq!(f.server.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_discovery_finds_the_jwks_and_checks_the_issuer() {
    let server = Server::start().await;
    let issuer_url = server.base.clone();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let issuer = TokenIssuer::new(
        issuer_url.clone(),
        SigningKey::generate("d1", Algorithm::EdDSA).unwrap(),
    )
    .audiences(["client-1"])
    .clock(clock.clone());
    server.set(|s| {
        s.jwks = issuer.jwks().to_string();
        s.discovery = serde_json::json!({
            "issuer": issuer_url,
            "jwks_uri": server.url(),
            "id_token_signing_alg_values_supported": ["EdDSA", "none", "XX999"],
        })
        .to_string();
    });
    let options = presets::ProviderOptions::new(Arc::new(HyperFetcher::new().unwrap()));
    let verifier = JwtAuthenticator::builder()
        .issuer(presets::discovered(&issuer_url, &["client-1"], &options).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut request = TokenRequest::access("bob");
    request.client_id = Some("client-1".into());
    let token = issuer.issue(&request).unwrap();
    let principal = verifier.verify(token.token.expose()).await.unwrap();
    assert_eq!(principal.auth_method(), portcullis_core::AuthMethod::Oidc);
    assert_eq!(server.discovery_hits.load(Ordering::SeqCst), 1);
    assert_eq!(server.hits(), 1);
    // The discovered algorithms (unknown names and `none` left out) bound what is accepted,
    // before any key lookup: an ES256 token costs no fetch.
    let es = TokenIssuer::new(
        issuer_url.clone(),
        SigningKey::generate("e1", Algorithm::ES256).unwrap(),
    )
    .audiences(["client-1"])
    .clock(clock.clone())
    .issue(&request)
    .unwrap();
    assert_eq!(
        verifier.verify(es.token.expose()).await.unwrap_err(),
        JwtError::AlgorithmNotAllowed
    );
    assert_eq!(server.hits(), 1);
    // An RFC 9068 access token needs client_id.
    let no_client = issuer.issue(&TokenRequest::access("bob")).unwrap();
    assert_eq!(
        verifier.verify(no_client.token.expose()).await.unwrap_err(),
        JwtError::MissingClaim("client_id")
    );

    // A discovery document naming another issuer is refused.
    let other = Server::start().await;
    other.set(|s| {
        s.discovery =
            serde_json::json!({"issuer": "https://elsewhere.example", "jwks_uri": other.url()})
                .to_string()
    });
    let remote = RemoteJwks::discover(
        &other.base,
        Arc::new(HyperFetcher::new().unwrap()),
        JwksOptions::default(),
    )
    .unwrap();
    assert!(remote.refresh_now().await.is_err());
    assert_eq!(other.hits(), 0);
}

#[test]
fn presets_know_their_providers() {
    let options = presets::ProviderOptions::new(Arc::new(HyperFetcher::new().unwrap()));
    let google = presets::google(&["123.apps.googleusercontent.com"], &options).unwrap();
    assert!(
        matches!(google.matcher(), portcullis_jwt::IssuerMatcher::Exact(v) if v.contains(&"https://accounts.google.com".to_owned()))
    );
    let entra = presets::microsoft("contoso-tenant-id", &["api://orders"], &options).unwrap();
    assert!(
        matches!(entra.matcher(), portcullis_jwt::IssuerMatcher::Exact(v) if v == &["https://login.microsoftonline.com/contoso-tenant-id/v2.0".to_owned()])
    );
    let multi = presets::microsoft_multi_tenant(&["api://orders"], &[], &options).unwrap();
    assert!(
        matches!(multi.matcher(), portcullis_jwt::IssuerMatcher::Template { tenant_claim, .. } if tenant_claim == "tid")
    );
    let okta = presets::okta(
        "dev-1.okta.com",
        Some("default"),
        &["api://default"],
        &options,
    )
    .unwrap();
    assert!(
        matches!(okta.matcher(), portcullis_jwt::IssuerMatcher::Exact(v) if v == &["https://dev-1.okta.com/oauth2/default".to_owned()])
    );
    let auth0 = presets::auth0(
        "tenant.eu.auth0.com",
        &["https://api"],
        "https://example.com/roles",
        &options,
    )
    .unwrap();
    assert!(
        matches!(auth0.matcher(), portcullis_jwt::IssuerMatcher::Exact(v) if v == &["https://tenant.eu.auth0.com/".to_owned()])
    );
    assert!(
        presets::google(&[], &options).is_err(),
        "an audience is required"
    );
    assert!(
        RemoteJwks::new(
            "http://idp.example/keys",
            Arc::new(HyperFetcher::new().unwrap()),
            JwksOptions::default()
        )
        .is_err()
    );
}
