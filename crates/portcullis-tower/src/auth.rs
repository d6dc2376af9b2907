//! [`AuthLayer`]: credentials → authenticator chain → `Principal` in the request extensions.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::{
    AuthContext, AuthError, AuthErrorKind, AuthenticationOutcome, AuthenticatorChain, ChainOutcome,
    Challenge, ChallengeError, CredentialExtractor, JsonRejection, Measurement, Metrics, Rejection,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;

use crate::record::AuthRecord;
use crate::rejection::convert;

/// Whether a request without credentials may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Credentials are required (401 without them). The default.
    #[default]
    Required,
    /// A principal is attached when valid credentials are present; requests without
    /// credentials pass anonymously. Invalid or malformed credentials are still refused.
    Optional,
}

/// Paths that pass without credentials, matched exactly or by prefix (the query string is
/// not part of the path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicPaths {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl PublicPaths {
    /// No public path.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// The Aethera public endpoints: `/`, `/docs`, `/openapi.json`, `/auth/login`,
    /// `/auth/register`, `/auth/oauth/login`, `/auth/refresh`, `/metrics`.
    #[must_use]
    pub fn aethera() -> Self {
        Self::none().exact([
            "/",
            "/docs",
            "/openapi.json",
            "/auth/login",
            "/auth/register",
            "/auth/oauth/login",
            "/auth/refresh",
            "/metrics",
        ])
    }

    /// Adds exact paths.
    #[must_use]
    pub fn exact<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.exact.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Adds prefixes. A prefix matches at a segment boundary: `/docs` matches `/docs` and
    /// `/docs/x`, not `/docsecret`.
    #[must_use]
    pub fn prefixes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, prefixes: I) -> Self {
        self.prefixes.extend(
            prefixes
                .into_iter()
                .map(|p| p.into().trim_end_matches('/').to_owned()),
        );
        self
    }

    /// Whether `path` is public.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        self.exact.iter().any(|p| p == path)
            || self.prefixes.iter().any(|prefix| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
    }
}

struct AuthConfig {
    chain: AuthenticatorChain,
    /// The authenticators' names, shared by every request's `AuthContext`.
    names: Vec<Arc<str>>,
    extractor: CredentialExtractor,
    mode: AuthMode,
    public: PublicPaths,
    rejection: Arc<dyn Rejection>,
    challenges: Arc<[Challenge]>,
    metrics: Option<Arc<dyn Metrics>>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("authenticators", &self.chain.authenticators().len())
            .field("mode", &self.mode)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Authenticates every request with an [`AuthenticatorChain`].
///
/// * Valid credentials: the [`Principal`](portcullis_core::Principal) and an [`AuthContext`]
///   go into the request extensions.
/// * Missing, invalid or malformed credentials: 401 `Not authenticated` with the RFC 6750
///   `WWW-Authenticate` challenge of each configured scheme (429 when throttled).
/// * An authenticator's dependency down (JWKS endpoint, database): 503, never 403, never an
///   allow.
/// * Public paths pass; a valid credential on them still yields a principal.
///
/// Every challenge of a server is sent in one realm: the one set with [`AuthLayer::realm`],
/// or by default the realm of the chain's first challenge.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    config: Arc<AuthConfig>,
}

impl AuthLayer {
    /// A layer in [`AuthMode::Required`] with the default extractor and no public path.
    #[must_use]
    pub fn new(chain: AuthenticatorChain) -> Self {
        let challenges = chain.challenges();
        let realm = challenges.first().map(|c| c.realm().to_owned());
        let challenges = match realm {
            Some(realm) => in_one_realm(&challenges, &realm).unwrap_or(challenges),
            None => challenges,
        }
        .into();
        let names = chain
            .authenticators()
            .iter()
            .map(|a| Arc::from(a.name()))
            .collect();
        Self {
            config: Arc::new(AuthConfig {
                names,
                chain,
                extractor: CredentialExtractor::default(),
                mode: AuthMode::Required,
                public: PublicPaths::none(),
                rejection: Arc::new(JsonRejection),
                challenges,
                metrics: None,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut AuthConfig)) -> Self {
        let mut config = Arc::try_unwrap(self.config).unwrap_or_else(|shared| AuthConfig {
            chain: shared.chain.clone(),
            names: shared.names.clone(),
            extractor: shared.extractor.clone(),
            mode: shared.mode,
            public: shared.public.clone(),
            rejection: Arc::clone(&shared.rejection),
            challenges: Arc::clone(&shared.challenges),
            metrics: shared.metrics.clone(),
        });
        f(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// The credential extractor (API-key header name, session cookie, limits).
    #[must_use]
    pub fn extractor(self, extractor: CredentialExtractor) -> Self {
        self.map(|c| c.extractor = extractor)
    }

    /// Required (default) or optional authentication.
    #[must_use]
    pub fn mode(self, mode: AuthMode) -> Self {
        self.map(|c| c.mode = mode)
    }

    /// Paths that pass without credentials.
    #[must_use]
    pub fn public_paths(self, public: PublicPaths) -> Self {
        self.map(|c| c.public = public)
    }

    /// How rejections look (default [`JsonRejection`]), for this layer and every part of the
    /// stack behind it: the authorization layer, the guards and the `Principal` extractors
    /// read it from the request's [`AuthContext`].
    #[must_use]
    pub fn rejection(self, rejection: impl Rejection) -> Self {
        self.map(|c| c.rejection = Arc::new(rejection))
    }

    /// Counts every request's outcome ([`Measurement::Authentication`]).
    #[must_use]
    pub fn metrics(self, metrics: Arc<dyn Metrics>) -> Self {
        self.map(|c| c.metrics = Some(metrics))
    }

    /// The realm of every `WWW-Authenticate` challenge this layer sends (default: the realm of
    /// the chain's first challenge), whatever the authenticators' own realms.
    ///
    /// # Errors
    /// When the realm contains a quote, a backslash or a character outside visible ASCII.
    pub fn realm(self, realm: &str) -> Result<Self, ChallengeError> {
        let challenges = in_one_realm(&self.config.chain.challenges(), realm)?;
        Ok(self.map(|c| c.challenges = challenges.into()))
    }
}

/// The challenges with `realm`, without duplicates.
fn in_one_realm(challenges: &[Challenge], realm: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let mut out: Vec<Challenge> = Vec::with_capacity(challenges.len());
    for challenge in challenges {
        let challenge = challenge.in_realm(realm.to_owned().into())?;
        if !out.contains(&challenge) {
            out.push(challenge);
        }
    }
    Ok(out)
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    config: Arc<AuthConfig>,
}

type BoxOutcome = Pin<Box<dyn Future<Output = ChainOutcome> + Send>>;

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Authenticating { outcome: BoxOutcome },
        Calling { #[pin] future: F },
        Ready { response: Option<Response<B>> },
    }
}

pin_project! {
    /// The response future of [`AuthService`].
    pub struct AuthFuture<S, ReqB, ResB>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        #[pin]
        state: State<S::Future, ResB>,
        request: Option<Request<ReqB>>,
        inner: Option<S>,
        config: Arc<AuthConfig>,
        public: bool,
        // Whether the request carried a bearer token (for the RFC 6750 challenge).
        bearer_sent: bool,
        record: Option<AuthRecord>,
        // `portcullis.auth`: entered while the authenticators run.
        span: tracing::Span,
        started: Instant,
    }
}

impl<S, ReqB, ResB> fmt::Debug for AuthFuture<S, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFuture").finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AuthService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = AuthFuture<S, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The service that was polled ready handles this request; a fresh clone stays here.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let public = config.public.matches(request.uri().path());
        let span = tracing::info_span!(
            target: "portcullis.auth",
            "portcullis.auth",
            method = %request.method(),
            path = request.uri().path(),
            public,
            outcome = Empty,
            authenticator = Empty,
            principal = Empty,
            reason = Empty,
            latency_us = Empty,
        );
        let mut bearer_sent = false;
        let state = match config
            .extractor
            .extract_from(request.headers(), request.extensions())
        {
            Ok(credentials) => {
                bearer_sent = credentials.bearer().is_some();
                let chain_config = Arc::clone(&config);
                State::Authenticating {
                    outcome: Box::pin(async move {
                        chain_config.chain.authenticate(&credentials).await
                    }),
                }
            }
            Err(error) => {
                let error = AuthError::new(AuthErrorKind::MalformedCredentials(error));
                State::Authenticating {
                    outcome: Box::pin(std::future::ready(ChainOutcome::Rejected(error))),
                }
            }
        };
        AuthFuture {
            state,
            request: Some(request),
            inner: Some(inner),
            config,
            public,
            bearer_sent,
            record: None,
            span,
            started: Instant::now(),
        }
    }
}

impl<S, ReqB, ResB> Future for AuthFuture<S, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating { outcome } => {
                    let entered = this.span.enter();
                    let outcome = ready!(outcome.as_mut().poll(cx));
                    let config = &**this.config;
                    let anonymous_ok = *this.public || config.mode == AuthMode::Optional;
                    let context = |authenticator: Option<&str>| {
                        AuthContext::new(
                            authenticator.map(|name| {
                                config
                                    .names
                                    .iter()
                                    .find(|n| &***n == name)
                                    .cloned()
                                    .unwrap_or_else(|| Arc::from(name))
                            }),
                            Arc::clone(&config.challenges),
                            *this.public,
                            Arc::clone(&config.rejection),
                        )
                    };
                    let (Some(mut request), Some(mut inner)) =
                        (this.request.take(), this.inner.take())
                    else {
                        this.state.set(State::Ready {
                            response: Some(convert(config.rejection.unavailable())),
                        });
                        continue;
                    };
                    // Refused credentials on a public path, kept for the span.
                    let mut ignored = None;
                    let refusal = match outcome {
                        ChainOutcome::Authenticated {
                            principal,
                            authenticator,
                        } => {
                            request
                                .extensions_mut()
                                .insert(context(Some(&authenticator)));
                            request.extensions_mut().insert(principal.clone());
                            *this.record = Some(AuthRecord::Authenticated {
                                principal,
                                authenticator: authenticator.into_owned(),
                            });
                            None
                        }
                        ChainOutcome::NoCredentials if anonymous_ok => None,
                        ChainOutcome::NoCredentials => Some(AuthError::missing_credentials()),
                        // On a public path, credentials that fail are ignored: the request
                        // goes on anonymously (the audit event keeps the reason).
                        ChainOutcome::Unrecognized if *this.public => None,
                        ChainOutcome::Rejected(error) if *this.public => {
                            ignored = Some(error);
                            None
                        }
                        ChainOutcome::Unrecognized => Some(AuthError::unsupported_credentials()),
                        ChainOutcome::Rejected(error) => Some(error),
                    };
                    observe(
                        this.span,
                        config.metrics.as_deref(),
                        this.record.as_ref(),
                        ignored.as_ref().or(refusal.as_ref()),
                        refusal.is_some(),
                        this.started.elapsed(),
                    );
                    drop(entered);
                    match refusal {
                        Some(error) => {
                            let error = error.with_bearer_token_sent(*this.bearer_sent);
                            let mut response = convert(
                                config.rejection.unauthenticated(&error, &config.challenges),
                            );
                            response.extensions_mut().insert(AuthRecord::Rejected {
                                reason: error.to_string(),
                                authenticator: error.authenticator().map(str::to_owned),
                                details: error.details().to_vec(),
                            });
                            this.state.set(State::Ready {
                                response: Some(response),
                            });
                        }
                        None => {
                            if this.record.is_none() {
                                request.extensions_mut().insert(context(None));
                                *this.record = Some(AuthRecord::Anonymous);
                            }
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(record) = this.record.take() {
                        response.extensions_mut().insert(record);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Ready { response } => {
                    let response = response
                        .take()
                        .unwrap_or_else(|| convert(this.config.rejection.unavailable()));
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

/// Records how authentication ended on the request's span and in the metrics.
fn observe(
    span: &tracing::Span,
    metrics: Option<&dyn Metrics>,
    record: Option<&AuthRecord>,
    error: Option<&AuthError>,
    refused: bool,
    latency: std::time::Duration,
) {
    let authenticator = match record {
        Some(AuthRecord::Authenticated {
            principal,
            authenticator,
        }) => {
            span.record("principal", principal.id());
            Some(authenticator.as_str())
        }
        _ => error.and_then(AuthError::authenticator),
    };
    let outcome = match (record, error) {
        (Some(AuthRecord::Authenticated { .. }), _) => AuthenticationOutcome::Authenticated,
        (_, Some(error)) if refused && error.status().is_server_error() => {
            AuthenticationOutcome::Unavailable
        }
        _ if refused => AuthenticationOutcome::Refused,
        _ => AuthenticationOutcome::Anonymous,
    };
    span.record("outcome", outcome.as_str());
    if let Some(name) = authenticator {
        span.record("authenticator", name);
    }
    if let Some(error) = error {
        // The precise reason, as the audit event has it: never the credential itself.
        span.record("reason", tracing::field::display(error));
    }
    span.record(
        "latency_us",
        u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    );
    if let Some(metrics) = metrics {
        metrics.record(Measurement::Authentication {
            outcome,
            authenticator,
        });
    }
}
