//! Remote JWKS with a cache, and OIDC discovery.
//!
//! * Reads never wait on a lock: a request whose `kid` is in the current key set is served
//!   from an atomically swapped snapshot.
//! * An unknown `kid` triggers one refetch for all the requests that wait for it (single
//!   flight). Such refetches draw on a small budget ([`JwksOptions::unknown_kid_burst`]
//!   refetches at once, then one more per [`JwksOptions::unknown_kid_refill`]), and a `kid`
//!   still missing after a refetch is not looked for again until the next refill: a genuine
//!   rotation is picked up at once even just after a stray unknown `kid`, and the worst case
//!   under a flood of made-up `kid`s is `unknown_kid_burst` fetches, then one per
//!   `unknown_kid_refill` (defaults: 3, then one every 10 s, so 363 an hour at most). Tokens
//!   of another issuer or with an algorithm the issuer does not use never reach this point.
//!   A failed fetch is retried at most once per [`JwksOptions::min_refetch_interval`].
//! * The set is fresh for the response's `Cache-Control: max-age` (clamped); after that the
//!   next request starts a background refresh and is served from the current set.
//! * When the endpoint fails, the last good set keeps serving until
//!   [`JwksOptions::stale_if_error`] after its freshness ended; then requests get
//!   [`JwtError::KeysUnavailable`] (503). Failures are never stored as a key set.
//! * Only `https` URLs are fetched, except for loopback addresses (tests, sidecars).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::algorithm::Algorithm;
use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use http::Uri;
use portcullis_core::{Clock, Measurement, Metrics, SecretString, SystemClock};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{FetchError, JwtError};
use crate::json::StrictObject;
use crate::keys::{JwkPolicy, KeySet, VerificationKey};

/// A fetched document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedDocument {
    /// The response body (at most the requested number of bytes).
    pub body: Vec<u8>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
}

impl FetchedDocument {
    /// A response body and its `Cache-Control` header (for [`HttpFetcher`] implementations).
    #[must_use]
    pub fn new(body: Vec<u8>, cache_control: Option<String>) -> Self {
        Self {
            body,
            cache_control,
        }
    }
}

/// Fetches a document over HTTP(S). Implement it to use your own HTTP client; the default,
/// [`HyperFetcher`](crate::HyperFetcher), uses hyper and rustls with ring.
///
/// An implementation returns [`FetchError::Status`] for any status but 200 and
/// [`FetchError::TooLarge`] when the body exceeds `max_bytes`. Timeouts are applied by the
/// caller.
#[async_trait]
pub trait HttpFetcher: fmt::Debug + Send + Sync {
    /// `GET url`.
    async fn get(&self, url: &Uri, max_bytes: usize) -> Result<FetchedDocument, FetchError>;

    /// `POST url` with an `application/x-www-form-urlencoded` body (token introspection,
    /// Google's tokeninfo), with HTTP Basic client authentication when the form carries it.
    async fn post_form(
        &self,
        url: &Uri,
        form: &FormPost,
        max_bytes: usize,
    ) -> Result<FetchedDocument, FetchError>;
}

/// The body of a form `POST` and its client credentials. `Debug` leaves the values out.
#[derive(Clone, Default)]
pub struct FormPost {
    fields: Vec<(String, SecretString)>,
    basic: Option<(String, SecretString)>,
}

impl fmt::Debug for FormPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("FormPost")
            .field("fields", &names)
            .field("basic", &self.basic.as_ref().map(|(id, _)| id))
            .finish()
    }
}

impl FormPost {
    /// An empty form.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field (its value is treated as a secret: tokens are sent this way).
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.fields.push((name.into(), value));
        self
    }

    /// Authenticates the request as the client `client_id` with HTTP Basic (RFC 6749
    /// §2.3.1: both parts form-encoded, then base64).
    #[must_use]
    pub fn basic_auth(mut self, client_id: impl Into<String>, secret: SecretString) -> Self {
        self.basic = Some((client_id.into(), secret));
        self
    }

    /// The `application/x-www-form-urlencoded` body.
    #[must_use]
    pub fn body(&self) -> String {
        let mut body = String::new();
        for (name, value) in &self.fields {
            if !body.is_empty() {
                body.push('&');
            }
            form_encode(name, &mut body);
            body.push('=');
            form_encode(value.expose(), &mut body);
        }
        body
    }

    /// The `Authorization` header value, when the form has client credentials.
    #[must_use]
    pub fn authorization(&self) -> Option<SecretString> {
        use base64::Engine as _;
        let (id, secret) = self.basic.as_ref()?;
        let mut pair = String::new();
        form_encode(id, &mut pair);
        pair.push(':');
        form_encode(secret.expose(), &mut pair);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
        Some(SecretString::new(format!("Basic {encoded}")))
    }
}

/// Appends `text` to `out` in `application/x-www-form-urlencoded` form (the WHATWG URL
/// standard: `*-._` and alphanumerics as they are, space as `+`, every other byte as `%XX`).
fn form_encode(text: &str, out: &mut String) {
    use fmt::Write as _;
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}

/// Refuses URLs that are not `https`, except `http` to a loopback address.
pub(crate) fn check_url(url: &Uri) -> Result<(), FetchError> {
    let host = url
        .host()
        .ok_or_else(|| FetchError::RefusedUrl("no host".into()))?;
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(FetchError::RefusedUrl(
                    "http is only allowed to loopback addresses".into(),
                ))
            }
        }
        _ => Err(FetchError::RefusedUrl("scheme must be https".into())),
    }
}

/// Parses a URL and applies [`check_url`].
pub(crate) fn parse_url(url: &str) -> Result<Uri, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| FetchError::RefusedUrl("not a URL".into()))?;
    check_url(&uri)?;
    Ok(uri)
}

/// Cache and fetch settings of a [`RemoteJwks`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksOptions {
    /// Minimum time between two fetches after a failed fetch (default 30 s).
    pub min_refetch_interval: Duration,
    /// Refetches that unknown `kid`s may cause at once (default 3).
    pub unknown_kid_burst: u32,
    /// After the burst, one more unknown-`kid` refetch per this (default 10 s).
    pub unknown_kid_refill: Duration,
    /// Freshness when the response has no usable `max-age` (default 5 min).
    pub default_max_age: Duration,
    /// `max-age` is clamped to at least this (default 1 min)...
    pub min_max_age: Duration,
    /// ...and at most this (default 24 h).
    pub max_max_age: Duration,
    /// How long past its freshness the last good set keeps serving while the endpoint fails
    /// (default 1 h). After that, requests get 503.
    pub stale_if_error: Duration,
    /// Time allowed for one fetch (default 5 s).
    pub timeout: Duration,
    /// Largest document accepted (default 256 KiB).
    pub max_bytes: usize,
    /// How JWKs without `alg` are bound.
    pub jwk_policy: JwkPolicy,
}

/// Setters, one per field; each returns the changed value.
impl JwksOptions {
    /// Sets [`min_refetch_interval`](Self::min_refetch_interval).
    #[must_use]
    pub fn min_refetch_interval(mut self, min_refetch_interval: Duration) -> Self {
        self.min_refetch_interval = min_refetch_interval;
        self
    }

    /// Sets [`unknown_kid_burst`](Self::unknown_kid_burst).
    #[must_use]
    pub fn unknown_kid_burst(mut self, unknown_kid_burst: u32) -> Self {
        self.unknown_kid_burst = unknown_kid_burst;
        self
    }

    /// Sets [`unknown_kid_refill`](Self::unknown_kid_refill).
    #[must_use]
    pub fn unknown_kid_refill(mut self, unknown_kid_refill: Duration) -> Self {
        self.unknown_kid_refill = unknown_kid_refill;
        self
    }

    /// Sets [`default_max_age`](Self::default_max_age).
    #[must_use]
    pub fn default_max_age(mut self, default_max_age: Duration) -> Self {
        self.default_max_age = default_max_age;
        self
    }

    /// Sets [`min_max_age`](Self::min_max_age).
    #[must_use]
    pub fn min_max_age(mut self, min_max_age: Duration) -> Self {
        self.min_max_age = min_max_age;
        self
    }

    /// Sets [`max_max_age`](Self::max_max_age).
    #[must_use]
    pub fn max_max_age(mut self, max_max_age: Duration) -> Self {
        self.max_max_age = max_max_age;
        self
    }

    /// Sets [`stale_if_error`](Self::stale_if_error).
    #[must_use]
    pub fn stale_if_error(mut self, stale_if_error: Duration) -> Self {
        self.stale_if_error = stale_if_error;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`jwk_policy`](Self::jwk_policy).
    #[must_use]
    pub fn jwk_policy(mut self, jwk_policy: JwkPolicy) -> Self {
        self.jwk_policy = jwk_policy;
        self
    }
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            min_refetch_interval: Duration::from_secs(30),
            unknown_kid_burst: 3,
            unknown_kid_refill: Duration::from_secs(10),
            default_max_age: Duration::from_secs(300),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(86_400),
            stale_if_error: Duration::from_secs(3_600),
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            jwk_policy: JwkPolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
enum Location {
    Jwks(Uri),
    Discovery { issuer: String },
}

#[derive(Debug)]
struct Loaded {
    keys: KeySet,
    generation: u64,
    fresh_until: OffsetDateTime,
    stale_until: OffsetDateTime,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// When the last fetch failed (failed fetches are retried at most once per interval).
    last_failure: Option<OffsetDateTime>,
    /// The budget of refetches for unknown `kid`s.
    kid_budget: KidBudget,
    /// `kid`s still missing after a refetch, with when: not looked for again until the next
    /// refill of the budget (at most [`MISSING_KIDS`] remembered).
    missing_kids: std::collections::VecDeque<(Option<String>, OffsetDateTime)>,
    jwks_uri: Option<Uri>,
    last_error: Option<FetchError>,
}

/// How many missing `kid`s are remembered.
const MISSING_KIDS: usize = 64;

/// Refetches for unknown `kid`s: a token bucket of `unknown_kid_burst`, refilled by one every
/// `unknown_kid_refill`.
#[derive(Debug, Default)]
struct KidBudget {
    /// Refetches spent since `since` (the budget is full when `None`).
    spent: u32,
    since: Option<OffsetDateTime>,
}

impl KidBudget {
    /// Takes one refetch from the budget if there is one left at `now`.
    fn take(&mut self, now: OffsetDateTime, options: &JwksOptions) -> bool {
        if let Some(since) = self.since {
            let refill = options.unknown_kid_refill.max(Duration::from_millis(1));
            let elapsed = (now - since).max(time::Duration::ZERO);
            let whole = elapsed.whole_milliseconds()
                / i128::try_from(refill.as_millis()).unwrap_or(i128::MAX);
            let refilled = u32::try_from(whole).unwrap_or(u32::MAX);
            if refilled >= self.spent {
                self.spent = 0;
                self.since = None;
            } else if refilled > 0 {
                self.spent -= refilled;
                self.since = Some(since + refill * refilled);
            }
        }
        if self.spent >= options.unknown_kid_burst {
            return false;
        }
        self.spent += 1;
        self.since.get_or_insert(now);
        true
    }
}

struct Inner {
    location: Location,
    fetcher: Arc<dyn HttpFetcher>,
    options: JwksOptions,
    clock: Arc<dyn Clock>,
    current: ArcSwapOption<Loaded>,
    /// The signing algorithms the discovery document lists
    /// (`id_token_signing_alg_values_supported`), once it was fetched.
    discovered_algorithms: ArcSwapOption<Vec<Algorithm>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    fetches: AtomicU64,
    metrics: Option<Arc<dyn Metrics>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("location", &self.location)
            .field("options", &self.options)
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A JWKS fetched from a URL (or found by OIDC discovery) and cached. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    inner: Arc<Inner>,
}

/// What a [`RemoteJwks`] holds now (for health checks and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksStatus {
    /// Number of keys in the current set (0 before the first successful fetch).
    pub keys: usize,
    /// Fetch attempts so far (discovery documents included).
    pub fetches: u64,
    /// When the current set stops being fresh.
    pub fresh_until: Option<OffsetDateTime>,
    /// When the current set stops being served.
    pub stale_until: Option<OffsetDateTime>,
    /// The last fetch error, cleared by a successful fetch.
    pub last_error: Option<FetchError>,
}

impl RemoteJwks {
    /// A JWKS at a URL (`https`, or `http` to loopback).
    pub fn new(
        jwks_uri: &str,
        fetcher: Arc<dyn HttpFetcher>,
        options: JwksOptions,
    ) -> Result<Self, FetchError> {
        let uri = parse_url(jwks_uri)?;
        Ok(Self::with_location(Location::Jwks(uri), fetcher, options))
    }

    /// The check [`RemoteJwks::discover`] makes of an issuer before anything is fetched: a
    /// URL with a host, `https`, or `http` to a loopback address.
    pub fn check_issuer(issuer: &str) -> Result<(), FetchError> {
        parse_url(issuer).map(drop)
    }

    /// The JWKS of an OpenID provider, found at `{issuer}/.well-known/openid-configuration`
    /// on first use. The discovery document's `issuer` must equal `issuer` exactly.
    pub fn discover(
        issuer: &str,
        fetcher: Arc<dyn HttpFetcher>,
        options: JwksOptions,
    ) -> Result<Self, FetchError> {
        parse_url(issuer)?;
        Ok(Self::with_location(
            Location::Discovery {
                issuer: issuer.to_owned(),
            },
            fetcher,
            options,
        ))
    }

    fn with_location(
        location: Location,
        fetcher: Arc<dyn HttpFetcher>,
        options: JwksOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                location,
                fetcher,
                options,
                clock: Arc::new(SystemClock),
                current: ArcSwapOption::empty(),
                discovered_algorithms: ArcSwapOption::empty(),
                refresh: tokio::sync::Mutex::new(RefreshState::default()),
                fetches: AtomicU64::new(0),
                metrics: None,
            }),
        }
    }

    /// Uses another clock for freshness (tests). Call before sharing the value (on a shared
    /// value it changes nothing, and says so in the log).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => {
                tracing::error!(
                    target: "portcullis.jwt",
                    "RemoteJwks::with_clock on a shared value: the clock is not changed"
                );
                Self { inner }
            }
        }
    }

    /// Counts every fetch ([`Measurement::JwksFetch`]). Call before sharing the value (on a
    /// shared value it changes nothing, and says so in the log).
    #[must_use]
    pub fn with_metrics(self, metrics: Arc<dyn Metrics>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.metrics = Some(metrics);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => {
                tracing::error!(
                    target: "portcullis.jwt",
                    "RemoteJwks::with_metrics on a shared value: fetches are not counted"
                );
                Self { inner }
            }
        }
    }

    /// The current state.
    pub async fn status(&self) -> JwksStatus {
        let current = self.inner.current.load_full();
        let state = self.inner.refresh.lock().await;
        JwksStatus {
            keys: current.as_ref().map_or(0, |c| c.keys.len()),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            fresh_until: current.as_ref().map(|c| c.fresh_until),
            stale_until: current.as_ref().map(|c| c.stale_until),
            last_error: state.last_error.clone(),
        }
    }

    /// The signing algorithms of the OpenID provider, from its discovery document
    /// (`id_token_signing_alg_values_supported`, names Portcullis does not support left out),
    /// once it was fetched; `None` for a plain JWKS URL or before the first fetch.
    #[must_use]
    pub fn discovered_algorithms(&self) -> Option<Arc<Vec<Algorithm>>> {
        self.inner.discovered_algorithms.load_full()
    }

    /// Fetches now (ignoring the refetch interval), e.g. at start-up to fail fast.
    pub async fn refresh_now(&self) -> Result<usize, FetchError> {
        let mut state = self.inner.refresh.lock().await;
        let now = self.inner.clock.now();
        let loaded = self.inner.fetch(&mut state, now).await?;
        Ok(loaded.keys.len())
    }

    /// The key from the cached set when it is there and may be served (no waiting); `None`
    /// when [`RemoteJwks::resolve`] must run (nothing cached, unknown `kid`, past the stale
    /// bound).
    pub fn resolve_cached(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<VerificationKey>, JwtError>> {
        let now = self.inner.clock.now();
        let current = self.inner.current.load();
        let current = current.as_ref().filter(|c| now < c.stale_until)?;
        match current.keys.find(kid, alg) {
            Ok(key) => {
                if now >= current.fresh_until {
                    self.spawn_background_refresh();
                }
                Some(Ok(Arc::clone(key)))
            }
            Err(JwtError::UnknownKey) => None,
            Err(other) => Some(Err(other)),
        }
    }

    /// The key for a token's `kid` and `alg`, fetching when needed.
    pub async fn resolve(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, JwtError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let snapshot = inner.current.load_full();
        if let Some(current) = &snapshot
            && now < current.stale_until
        {
            match current.keys.find(kid, alg) {
                Ok(key) => {
                    if now >= current.fresh_until {
                        self.spawn_background_refresh();
                    }
                    return Ok(Arc::clone(key));
                }
                Err(JwtError::UnknownKey) => {}
                Err(other) => return Err(other),
            }
        }
        let seen = snapshot.as_ref().map(|s| s.generation);

        // Single flight: one waiter fetches, the others find its result.
        let mut state = inner.refresh.lock().await;
        let now = inner.clock.now();
        let latest = inner.current.load_full();
        let usable = latest.as_ref().filter(|l| now < l.stale_until);
        if latest.as_ref().map(|l| l.generation) != seen
            && let Some(latest) = usable
        {
            return latest.keys.find(kid, alg).cloned();
        }
        let interval = inner.options.min_refetch_interval;
        let recent = |at: Option<OffsetDateTime>| at.is_some_and(|at| now - at < interval);
        if usable.is_some() {
            // The set is good but lacks this kid: maybe a rotation, maybe a made-up kid.
            let refill = inner.options.unknown_kid_refill;
            state.missing_kids.retain(|(_, at)| now - *at < refill);
            if state.missing_kids.iter().any(|(k, _)| k.as_deref() == kid) {
                return Err(JwtError::UnknownKey);
            }
            if !state.kid_budget.take(now, &inner.options) {
                return Err(JwtError::UnknownKey);
            }
        } else if recent(state.last_failure) {
            return Err(JwtError::KeysUnavailable(unavailable(&state)));
        }
        match inner.fetch(&mut state, now).await {
            Ok(loaded) => {
                let found = loaded.keys.find(kid, alg).cloned();
                if matches!(found, Err(JwtError::UnknownKey)) {
                    if state.missing_kids.len() >= MISSING_KIDS {
                        state.missing_kids.pop_front();
                    }
                    state.missing_kids.push_back((kid.map(str::to_owned), now));
                }
                found
            }
            Err(error) => Err(JwtError::KeysUnavailable(format!(
                "JWKS fetch failed: {error}"
            ))),
        }
    }

    fn spawn_background_refresh(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            let Ok(mut state) = inner.refresh.try_lock() else {
                return; // somebody is already fetching
            };
            let now = inner.clock.now();
            let still_stale = inner
                .current
                .load()
                .as_ref()
                .is_none_or(|c| now >= c.fresh_until);
            let too_soon = state
                .last_failure
                .is_some_and(|last| now - last < inner.options.min_refetch_interval);
            if still_stale && !too_soon {
                // The result is stored (or recorded as last_error) by fetch itself.
                let _ = inner.fetch(&mut state, now).await;
            }
        });
    }
}

fn unavailable(state: &RefreshState) -> String {
    match &state.last_error {
        Some(e) => format!("JWKS unavailable: {e}"),
        None => "JWKS unavailable".into(),
    }
}

impl Inner {
    async fn get(&self, url: &Uri) -> Result<FetchedDocument, FetchError> {
        check_url(url)?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(
            self.options.timeout,
            self.fetcher.get(url, self.options.max_bytes),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn fetch(
        &self,
        state: &mut RefreshState,
        now: OffsetDateTime,
    ) -> Result<Arc<Loaded>, FetchError> {
        let result = self.fetch_inner(state, now).await;
        if let Some(metrics) = &self.metrics {
            metrics.record(Measurement::JwksFetch { ok: result.is_ok() });
        }
        match &result {
            Ok(_) => {
                state.last_error = None;
                state.last_failure = None;
            }
            Err(e) => {
                state.last_error = Some(e.clone());
                state.last_failure = Some(now);
            }
        }
        result
    }

    async fn fetch_inner(
        &self,
        state: &mut RefreshState,
        now: OffsetDateTime,
    ) -> Result<Arc<Loaded>, FetchError> {
        let uri = match &self.location {
            Location::Jwks(uri) => uri.clone(),
            Location::Discovery { issuer } => match &state.jwks_uri {
                Some(uri) => uri.clone(),
                None => {
                    let uri = self.discover(issuer).await?;
                    state.jwks_uri = Some(uri.clone());
                    uri
                }
            },
        };
        let document = self.get(&uri).await?;
        let keys = KeySet::from_jwks_json(&document.body, &self.options.jwk_policy)
            .map_err(|e| FetchError::InvalidDocument(e.to_string()))?;
        if keys.is_empty() {
            return Err(FetchError::InvalidDocument(
                "no usable signature key".into(),
            ));
        }
        let max_age = document
            .cache_control
            .as_deref()
            .and_then(parse_max_age)
            .unwrap_or(self.options.default_max_age)
            .clamp(self.options.min_max_age, self.options.max_max_age);
        let generation = self.current.load().as_ref().map_or(0, |c| c.generation) + 1;
        let loaded = Arc::new(Loaded {
            keys,
            generation,
            fresh_until: now + max_age,
            stale_until: now + max_age + self.options.stale_if_error,
        });
        self.current.store(Some(Arc::clone(&loaded)));
        Ok(loaded)
    }

    async fn discover(&self, issuer: &str) -> Result<Uri, FetchError> {
        let url = parse_url(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))?;
        let document = self.get(&url).await?;
        let config = StrictObject::parse(&document.body)
            .map_err(|e| FetchError::InvalidDocument(format!("discovery document: {e}")))?;
        // OpenID Connect Discovery 1.0 §4.3: the issuer must be identical.
        match config.get("issuer") {
            Some(Value::String(found)) if found == issuer => {}
            _ => return Err(FetchError::InvalidDocument("issuer does not match".into())),
        }
        let uri = match config.get("jwks_uri") {
            Some(Value::String(uri)) => parse_url(uri)?,
            _ => return Err(FetchError::InvalidDocument("no jwks_uri".into())),
        };
        match config.get("id_token_signing_alg_values_supported") {
            Some(Value::Array(names)) => {
                // `none` and algorithms Portcullis does not support are left out.
                let algorithms: Vec<Algorithm> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|name| name.parse::<Algorithm>().ok())
                    .collect();
                self.discovered_algorithms.store(Some(Arc::new(algorithms)));
            }
            Some(_) => {
                return Err(FetchError::InvalidDocument(
                    "id_token_signing_alg_values_supported is not an array".into(),
                ));
            }
            None => {}
        }
        Ok(uri)
    }
}

/// `max-age` from a `Cache-Control` value; `no-cache`/`no-store` count as 0.
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback() {
        assert!(parse_url("https://login.example.com/keys").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/keys").is_ok());
        assert!(parse_url("http://[::1]:8080/keys").is_ok());
        assert!(parse_url("http://localhost/keys").is_ok());
        assert!(parse_url("http://example.com/keys").is_err());
        assert!(parse_url("http://10.0.0.1/keys").is_err());
        assert!(parse_url("ftp://127.0.0.1/keys").is_err());
        assert!(parse_url("file:///etc/passwd").is_err());
    }

    /// RFC 6749 Appendix B (the form encoding of `" %&+£€"`) and §2.3.1 (the Basic
    /// credentials of client `s6BhdRkqt3`).
    #[test]
    fn form_posts_encode_as_rfc_6749_says() {
        let form = FormPost::new()
            .field("value", SecretString::new(" %&+£€"))
            .basic_auth("s6BhdRkqt3", SecretString::new("7Fjfp0ZBr1KtDRbnfVdmIw"));
        assert_eq!(form.body(), "value=+%25%26%2B%C2%A3%E2%82%AC");
        assert_eq!(
            form.authorization().unwrap().expose(),
            "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3"
        );
        assert!(!format!("{form:?}").contains("7Fjfp0"));
        assert!(FormPost::new().authorization().is_none());
    }

    #[test]
    fn cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
