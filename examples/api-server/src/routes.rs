//! The routes, the stack around them, and the documents that describe them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, Path, Request, State};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use portcullis::audit::{Acknowledge, BufferConfig, BufferedSink};
use portcullis::axum::{
    AuditLogAccess, audit_logs_router, connect_info_peer, require_permission, require_role,
};
use portcullis::identity::{
    Argon2Params, Client, Identity, IdentityConfig, IdentityError, OAuthLogin, OAuthProviders,
    PasswordPolicy, Passwords, Registration, require_fresh,
};
use portcullis::jwt::{IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, VerificationKey};
use portcullis::rbac::{Builtins, PolicyDocument};
use portcullis::sqlx::{
    Encryptor, NewUser, RbacStore, RevocationCache, RevocationOptions, SqlAuditWriter, Store,
    StoreError, WatchHandle, WatchOptions,
};
use portcullis::tower::{AuditLayer, AuthLayer, PublicPaths};
use portcullis::{
    AuditSink, AuthenticatorChain, Counters, Metrics, PolicyEngine, Principal, SecretString,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::settings::Settings;

/// The `iss` and `aud` of the access tokens this server issues and accepts.
const ISSUER: &str = "aethera";
const AUDIENCE: &str = "aethera-api";
/// Deleting an account, or linking a provider account to one, needs a login at most this old.
const FRESH_FOR_DELETION: Duration = Duration::from_secs(15 * 60);

/// One project (the application's own data, kept in memory: this example is about the auth).
#[derive(Clone, serde::Serialize)]
struct Project {
    id: u64,
    name: String,
    description: Option<String>,
    owner_id: String,
}

#[derive(Clone)]
struct AppState {
    identity: Identity,
    oauth: Arc<OAuthProviders>,
    rbac: Arc<RbacStore>,
    store: Store,
    projects: Arc<tokio::sync::RwLock<BTreeMap<u64, Project>>>,
    next_project: Arc<AtomicU64>,
    counters: Arc<Counters>,
    requests: Arc<RequestCounts>,
}

#[derive(Default)]
struct RequestCounts {
    by_class: [AtomicU64; 5],
}

/// The running parts: dropped (and flushed) at shutdown.
pub(crate) struct App {
    state: AppState,
    audit: Arc<BufferedSink>,
    verifier: JwtAuthenticator,
    _watch: WatchHandle,
}

impl App {
    /// Connects, migrates, seeds the Aethera roles, bootstraps the admin.
    pub(crate) async fn start(settings: &Settings) -> Result<Self, String> {
        let store = Store::connect(&settings.database_url)
            .await
            .map_err(|e| format!("database {}: {e}", redact_url(&settings.database_url)))?;
        store.migrate().await.map_err(|e| format!("migrate: {e}"))?;
        let template = PolicyDocument {
            builtins: Builtins::Aethera,
            // Aethera: "Superusers have all permissions automatically".
            superuser_attribute: Some("is_superuser".into()),
            ..PolicyDocument::default()
        };
        let rbac = Arc::new(
            RbacStore::open(&store, template)
                .await
                .map_err(|e| format!("roles: {e}"))?,
        );
        let watch = rbac.watch(WatchOptions::default());
        let audit = Arc::new(
            BufferedSink::new(
                SqlAuditWriter::new(&store),
                // Each request's event is in the table before its response leaves.
                BufferConfig::default().acknowledge(Acknowledge::Written),
            )
            .map_err(|e| format!("audit: {e}"))?,
        );
        let revocations = RevocationCache::start(&store, RevocationOptions::default())
            .await
            .map_err(|e| format!("revocations: {e}"))?;
        let secret = settings.jwt.secret.expose().as_bytes();
        let key =
            SigningKey::hmac(None, settings.jwt.algorithm, secret).map_err(|e| e.to_string())?;
        let issuer = TokenIssuer::new(ISSUER, key)
            .audiences([AUDIENCE])
            .access_ttl(settings.jwt.access_ttl);
        let counters = Arc::new(Counters::default());
        let verifier = JwtAuthenticator::builder()
            .issuer(
                IssuerConfig::new(
                    ISSUER,
                    VerificationKey::hmac(settings.jwt.algorithm, secret)
                        .map_err(|e| e.to_string())?,
                )
                .audiences([AUDIENCE]),
            )
            .revocations(revocations.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let passwords = Passwords::new(Argon2Params::OWASP, PasswordPolicy::default())
            .map_err(|e| e.to_string())?;
        let audit_sink: Arc<dyn AuditSink> = audit.clone();
        let identity = Identity::new(
            store.clone(),
            rbac.clone(),
            issuer,
            passwords,
            audit_sink,
            IdentityConfig::default().refresh_ttl(settings.jwt.refresh_ttl),
        )
        .revocations(revocations);
        let identity = match &settings.encryption_key {
            Some(key) => identity.encryptor(Arc::new(
                Encryptor::from_env_value(key.expose())
                    .map_err(|e| format!("DB_ENCRYPTION_KEY: {e}"))?,
            )),
            None => identity,
        };
        let oauth = crate::oauth::providers(&settings.oauth).await?;
        let state = AppState {
            identity,
            oauth: Arc::new(oauth),
            rbac,
            store,
            projects: Arc::default(),
            next_project: Arc::new(AtomicU64::new(1)),
            counters,
            requests: Arc::default(),
        };
        let app = Self {
            state,
            audit,
            verifier,
            _watch: watch,
        };
        app.bootstrap_admin(settings).await?;
        Ok(app)
    }

    pub(crate) fn engine_name(&self) -> &'static str {
        if self.state.store.engine() == portcullis::sqlx::Engine::Postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    async fn bootstrap_admin(&self, settings: &Settings) -> Result<(), String> {
        let Some(admin) = &settings.admin else {
            return Ok(());
        };
        let users = self.state.store.users();
        if users
            .find_by_username(&admin.username)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(());
        }
        let hash = self
            .state
            .identity
            .passwords()
            .hash(&admin.password)
            .await
            .map_err(|e| format!("ADMIN_PASSWORD: {e}"))?;
        let user = users
            .create(
                NewUser::new(admin.username.as_str())
                    .email(admin.email.as_str())
                    .password_hash(hash)
                    .superuser(true),
            )
            .await
            .map_err(|e| format!("bootstrap admin: {e}"))?;
        self.state
            .rbac
            .assign_role(&user.id, "admin", "bootstrap")
            .await
            .map_err(|e| format!("bootstrap admin: {e}"))?;
        println!("api-server: created the administrator `{}`", admin.username);
        Ok(())
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(error) = self.audit.flush().await {
            eprintln!("api-server: audit flush at shutdown: {error}");
        }
        self.state.store.close().await;
    }

    /// The whole application: routes, guards, authentication, audit, headers, CORS.
    pub(crate) fn router(&self, settings: &Settings) -> Result<Router, String> {
        let state = self.state.clone();
        let engine: Arc<dyn PolicyEngine> = state.rbac.engine();
        let metrics: Arc<dyn Metrics> = state.counters.clone();
        let permission =
            |name: &str| require_permission(engine.clone(), name).metrics(metrics.clone());
        let api = Router::new()
            .route(
                "/api/projects",
                get(list_projects.layer(permission("projects:read")))
                    .post(create_project.layer(permission("projects:create"))),
            )
            .route(
                "/api/projects/{id}",
                get(get_project.layer(permission("projects:read")))
                    .put(update_project.layer(permission("projects:update")))
                    .delete(delete_project.layer(permission("projects:delete"))),
            )
            .route(
                "/api/users",
                get(list_users.layer(permission("users:read"))),
            )
            .route(
                "/api/users/{id}",
                delete(delete_user.layer(require_role(engine.clone(), "admin"))),
            )
            .route(
                "/api/users/{id}/permissions",
                get(user_permissions.layer(permission("users:read"))),
            )
            .route(
                "/api/users/{id}/roles",
                post(assign_role.layer(permission("users:manage"))),
            )
            .route(
                "/api/users/{id}/roles/{role}",
                delete(revoke_role.layer(permission("users:manage"))),
            )
            .route(
                "/api/roles/{role}/permissions",
                post(grant_permission.layer(permission("users:manage"))),
            )
            .route(
                "/api/roles/{role}/permissions/{permission}",
                delete(revoke_permission.layer(permission("users:manage"))),
            )
            .route("/auth/register", post(register))
            .route("/auth/login", post(login))
            .route("/auth/refresh", post(refresh))
            .route("/auth/logout", post(logout))
            .route("/auth/logout/all", post(logout_all))
            .route("/auth/login/second-factor", post(second_factor))
            .route("/auth/totp/enrol", post(totp_enrol))
            .route("/auth/totp/confirm", post(totp_confirm))
            .route("/auth/recovery-codes", post(recovery_codes))
            .route("/auth/oauth/login", post(oauth_login))
            .route("/auth/oauth/link", post(oauth_link))
            .route("/auth/me", get(me))
            .route("/", get(health))
            .route("/docs", get(docs))
            .route("/openapi.json", get(|| async { Json(openapi()) }))
            .route("/metrics", get(prometheus))
            .with_state(state.clone())
            .merge(audit_logs_router(
                Arc::new(state.store.audit()),
                engine,
                AuditLogAccess::aethera(),
            ));

        let chain = AuthenticatorChain::new(vec![Arc::new(self.verifier.clone())]);
        let auth = AuthLayer::new(chain)
            .public_paths(PublicPaths::aethera().exact(["/auth/login/second-factor"]))
            .metrics(metrics.clone());
        let mut app = api.layer(auth);
        if settings.audit_requests {
            let sink: Arc<dyn AuditSink> = self.audit.clone();
            app = app.layer(
                AuditLayer::new(sink)
                    .peer_addr(connect_info_peer)
                    .metrics(metrics),
            );
        }
        let app = app
            .layer(middleware::from_fn_with_state(state, count_requests))
            .layer(cors(&settings.cors_origins)?);
        Ok(security_headers(app))
    }
}

fn security_headers(app: Router) -> Router {
    let headers = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    headers.into_iter().fold(app, |app, (name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

fn cors(origins: &[String]) -> Result<CorsLayer, String> {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        // Bearer tokens, no cookies: any origin may call, none gets credentials.
        return Ok(layer.allow_origin(AllowOrigin::any()));
    }
    let list = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .ok()
                .filter(|_| o.starts_with("https://") || o.starts_with("http://"))
                .ok_or_else(|| format!("CORS_ORIGINS: {o:?} is not an origin"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(layer.allow_origin(AllowOrigin::list(list)))
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
    if let Some(counter) = state.requests.by_class.get(class) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    response
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

fn with_header(mut response: Response, name: header::HeaderName, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The JSON of a successful identity operation, or its error's answer.
fn answer<T>(outcome: Result<T, IdentityError>, body: impl FnOnce(T) -> Value) -> Response {
    match outcome {
        Ok(value) => Json(body(value)).into_response(),
        Err(error) => identity_error(&error),
    }
}

fn identity_error(error: &IdentityError) -> Response {
    let text = error.to_string();
    match error {
        IdentityError::InvalidCredentials
        | IdentityError::InvalidRefreshToken
        | IdentityError::ExternalLoginFailed => with_header(
            detail(StatusCode::UNAUTHORIZED, &text),
            header::WWW_AUTHENTICATE,
            "Bearer",
        ),
        IdentityError::Throttled { retry_after } => with_header(
            detail(StatusCode::TOO_MANY_REQUESTS, &text),
            header::RETRY_AFTER,
            &retry_after.as_secs().max(1).to_string(),
        ),
        IdentityError::SecondFactorRequired { challenge } => with_header(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "detail": text, "mfa_token": challenge.expose() })),
            )
                .into_response(),
            header::WWW_AUTHENTICATE,
            "Bearer",
        ),
        IdentityError::Invalid(_) => detail(StatusCode::UNPROCESSABLE_ENTITY, &text),
        IdentityError::Conflict => detail(StatusCode::CONFLICT, &text),
        _ => {
            tracing::error!(%error, "identity unavailable");
            with_header(
                detail(StatusCode::SERVICE_UNAVAILABLE, &text),
                header::RETRY_AFTER,
                "1",
            )
        }
    }
}

fn store_error(error: &StoreError) -> Response {
    match error {
        StoreError::NotFound(what) => detail(StatusCode::NOT_FOUND, &format!("Not found: {what}")),
        StoreError::Invalid(why) => detail(StatusCode::UNPROCESSABLE_ENTITY, why),
        StoreError::Conflict(what) => detail(StatusCode::CONFLICT, what),
        other => {
            tracing::error!(error = %other, "store unavailable");
            with_header(
                detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service temporarily unavailable",
                ),
                header::RETRY_AFTER,
                "1",
            )
        }
    }
}

fn client(peer: std::net::SocketAddr, headers: &HeaderMap) -> Client {
    Client::new(
        Some(peer.ip()),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    )
}

/// A JSON body; a malformed one is answered 422 `{"detail": …}`, like every other error here.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(body)) => Ok(Self(body)),
            Err(rejection) => Err(detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Invalid request body: {}", rejection.body_text()),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    email: String,
    password: String,
    full_name: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<RegisterBody>,
) -> Response {
    let mut registration =
        Registration::new(body.username, body.email, SecretString::new(body.password));
    registration.full_name = body.full_name;
    match state
        .identity
        .register(registration, &client(peer, &headers))
        .await
    {
        Ok(user) => (
            StatusCode::CREATED,
            Json(json!({
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "full_name": user.full_name,
                "is_active": user.is_active,
            })),
        )
            .into_response(),
        Err(error) => identity_error(&error),
    }
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<LoginBody>,
) -> Response {
    let password = SecretString::new(body.password);
    let outcome = state
        .identity
        .login(&body.username, &password, &client(peer, &headers))
        .await;
    answer(outcome, |tokens| tokens.to_json())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<RefreshBody>,
) -> Response {
    match state
        .identity
        .refresh(
            &SecretString::new(body.refresh_token),
            &client(peer, &headers),
        )
        .await
    {
        Ok(tokens) => Json(tokens.to_json()).into_response(),
        Err(error) => identity_error(&error),
    }
}

async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<RefreshBody>,
) -> Response {
    match state
        .identity
        .logout(
            &principal,
            &SecretString::new(body.refresh_token),
            &client(peer, &headers),
        )
        .await
    {
        Ok(()) => Json(json!({ "detail": "Logged out" })).into_response(),
        Err(error) => identity_error(&error),
    }
}

async fn logout_all(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match state
        .identity
        .logout_everywhere(&principal, &client(peer, &headers))
        .await
    {
        Ok(revoked) => {
            Json(json!({ "detail": "Logged out everywhere", "revoked": revoked })).into_response()
        }
        Err(error) => identity_error(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondFactorBody {
    mfa_token: String,
    code: String,
}

/// The second step of a login whose password was right: a TOTP or recovery code.
async fn second_factor(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<SecondFactorBody>,
) -> Response {
    let (challenge, code) = (
        SecretString::new(body.mfa_token),
        SecretString::new(body.code),
    );
    let outcome = state
        .identity
        .complete_login(&challenge, &code, &client(peer, &headers))
        .await;
    answer(outcome, |tokens| tokens.to_json())
}

/// Starts a TOTP enrolment (fresh login): the `otpauth://` URI and the secret, shown once.
async fn totp_enrol(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(stale) = stale(&principal) {
        return stale;
    }
    match state
        .identity
        .enrol_totp(&principal, "Aethera", &client(peer, &headers))
        .await
    {
        Ok(enrolment) => Json(json!({
            "otpauth_uri": enrolment.uri.expose(),
            "secret": enrolment.secret.expose(),
        }))
        .into_response(),
        Err(error) => identity_error(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

/// Confirms the enrolment with a first code; from then on login asks for a code.
async fn totp_confirm(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<CodeBody>,
) -> Response {
    let outcome = state
        .identity
        .verify_totp(principal.id(), &body.code, &client(peer, &headers))
        .await;
    answer(outcome, |()| json!({ "detail": "Authenticator confirmed" }))
}

/// A new set of recovery codes (fresh login), shown once; the old set stops working.
async fn recovery_codes(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(stale) = stale(&principal) {
        return stale;
    }
    match state
        .identity
        .new_recovery_codes(&principal, &client(peer, &headers))
        .await
    {
        Ok(codes) => {
            let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
            Json(json!({ "recovery_codes": codes })).into_response()
        }
        Err(error) => identity_error(&error),
    }
}

/// The Aethera body of `POST /auth/oauth/login`, with `id_token` as the alternative (or
/// companion) of `access_token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OAuthBody {
    provider: String,
    access_token: Option<String>,
    id_token: Option<String>,
    okta_domain: Option<String>,
}

impl From<OAuthBody> for OAuthLogin {
    fn from(body: OAuthBody) -> Self {
        let mut login = OAuthLogin::new(body.provider);
        login.access_token = body.access_token.map(SecretString::new);
        login.id_token = body.id_token.map(SecretString::new);
        login.okta_domain = body.okta_domain;
        login
    }
}

async fn oauth_login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<OAuthBody>,
) -> Response {
    let login = OAuthLogin::from(body);
    let outcome = state
        .identity
        .oauth_login(&state.oauth, &login, &client(peer, &headers))
        .await;
    answer(outcome, |tokens| tokens.to_json())
}

/// Links a provider account to the caller's (a fresh login is required: from then on that
/// provider account opens this one).
async fn oauth_link(
    State(state): State<AppState>,
    principal: Principal,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Body(body): Body<OAuthBody>,
) -> Response {
    if let Some(stale) = stale(&principal) {
        return stale;
    }
    let login = OAuthLogin::from(body);
    match state
        .identity
        .link_external(&principal, &state.oauth, &login, &client(peer, &headers))
        .await
    {
        Ok(link) => Json(json!({
            "provider": link.provider,
            "issuer": link.issuer,
            "subject": link.subject,
            "user_id": link.user_id,
        }))
        .into_response(),
        Err(error) => identity_error(&error),
    }
}

async fn me(State(state): State<AppState>, principal: Principal) -> Response {
    let permissions = match state.rbac.get_user_permissions(principal.id()).await {
        Ok(permissions) => permissions,
        Err(error) => return store_error(&error),
    };
    Json(json!({
        "id": principal.id(),
        "username": principal.attribute("preferred_username"),
        "roles": principal.roles(),
        "permissions": permissions,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectBody {
    name: String,
    description: Option<String>,
}

fn check_project(body: &ProjectBody) -> Result<(), &'static str> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err("name must be 1 to 200 characters");
    }
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 10_000)
    {
        return Err("description must be at most 10000 characters");
    }
    Ok(())
}

async fn list_projects(State(state): State<AppState>) -> Json<Vec<Project>> {
    Json(state.projects.read().await.values().cloned().collect())
}

async fn create_project(
    State(state): State<AppState>,
    principal: Principal,
    Body(body): Body<ProjectBody>,
) -> Response {
    if let Err(why) = check_project(&body) {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, why);
    }
    let id = state.next_project.fetch_add(1, Ordering::Relaxed);
    let project = Project {
        id,
        name: body.name.trim().to_owned(),
        description: body.description,
        owner_id: principal.id().to_owned(),
    };
    state.projects.write().await.insert(id, project.clone());
    (StatusCode::CREATED, Json(project)).into_response()
}

async fn get_project(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    match state.projects.read().await.get(&id) {
        Some(project) => Json(project.clone()).into_response(),
        None => detail(StatusCode::NOT_FOUND, "Project not found"),
    }
}

async fn update_project(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Body(body): Body<ProjectBody>,
) -> Response {
    if let Err(why) = check_project(&body) {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, why);
    }
    let mut projects = state.projects.write().await;
    match projects.get_mut(&id) {
        Some(project) => {
            project.name = body.name.trim().to_owned();
            project.description = body.description;
            Json(project.clone()).into_response()
        }
        None => detail(StatusCode::NOT_FOUND, "Project not found"),
    }
}

async fn delete_project(State(state): State<AppState>, Path(id): Path<u64>) -> Response {
    match state.projects.write().await.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => detail(StatusCode::NOT_FOUND, "Project not found"),
    }
}

async fn list_users(State(state): State<AppState>) -> Response {
    match state.store.users().list(0, 1000).await {
        Ok(users) => Json(
            users
                .into_iter()
                .map(|u| {
                    json!({
                        "id": u.id, "username": u.username, "email": u.email,
                        "full_name": u.full_name, "is_active": u.is_active,
                        "is_superuser": u.is_superuser,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => store_error(&error),
    }
}

/// RFC 9470's answer when `principal` logged in longer than [`FRESH_FOR_DELETION`] ago.
fn stale(principal: &Principal) -> Option<Response> {
    require_fresh(
        principal,
        FRESH_FOR_DELETION,
        time::OffsetDateTime::now_utc(),
    )
    .err()?;
    Some(with_header(
        detail(StatusCode::UNAUTHORIZED, "Fresh authentication required"),
        header::WWW_AUTHENTICATE,
        &format!(
            "Bearer error=\"insufficient_user_authentication\", max_age={}",
            FRESH_FOR_DELETION.as_secs()
        ),
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    // A sensitive operation: the admin must have logged in recently.
    if let Some(stale) = stale(&principal) {
        return stale;
    }
    if id == principal.id() {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "An administrator cannot delete their own account",
        );
    }
    let store = &state.store;
    // End the account's logins before the row goes (its refresh tokens go with it).
    if let Err(error) = store.refresh_tokens().revoke_user(&id).await {
        return store_error(&error);
    }
    match store.users().delete(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => detail(StatusCode::NOT_FOUND, "User not found"),
        Err(error) => store_error(&error),
    }
}

async fn user_permissions(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let roles = state.rbac.user_roles(&id).await;
    let permissions = state.rbac.get_user_permissions(&id).await;
    match (roles, permissions) {
        (Ok(roles), Ok(permissions)) => {
            Json(json!({ "user_id": id, "roles": roles, "permissions": permissions }))
                .into_response()
        }
        (Err(error), _) | (_, Err(error)) => store_error(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn assign_role(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<RoleBody>,
) -> Response {
    match state
        .rbac
        .assign_role(&id, &body.role, principal.id())
        .await
    {
        Ok(()) => Json(json!({ "user_id": id, "role": body.role })).into_response(),
        Err(error) => store_error(&error),
    }
}

async fn revoke_role(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, role)): Path<(String, String)>,
) -> Response {
    match state.rbac.revoke_role(&id, &role, principal.id()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => store_error(&error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    permission: String,
}

async fn grant_permission(
    State(state): State<AppState>,
    principal: Principal,
    Path(role): Path<String>,
    Body(body): Body<PermissionBody>,
) -> Response {
    match state
        .rbac
        .grant_permission(&role, &body.permission, principal.id())
        .await
    {
        Ok(()) => Json(json!({ "role": role, "permission": body.permission })).into_response(),
        Err(error) => store_error(&error),
    }
}

async fn revoke_permission(
    State(state): State<AppState>,
    principal: Principal,
    Path((role, permission)): Path<(String, String)>,
) -> Response {
    match state
        .rbac
        .revoke_permission(&role, &permission, principal.id())
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => store_error(&error),
    }
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let database = if state.store.engine() == portcullis::sqlx::Engine::Postgres {
        "postgres"
    } else {
        "sqlite"
    };
    Json(json!({ "status": "ok", "database": database }))
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let mut text = state.counters.prometheus();
    text.push_str("# HELP http_requests_total HTTP responses by status class.\n");
    text.push_str("# TYPE http_requests_total counter\n");
    for (index, counter) in state.requests.by_class.iter().enumerate() {
        text.push_str(&format!(
            "http_requests_total{{class=\"{}xx\"}} {}\n",
            index + 1,
            counter.load(Ordering::Relaxed)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Every route: method, path, summary, and what it requires (`None`: public;
/// `Some("authenticated")`; a permission; `role:admin`).
pub(crate) const ROUTES: &[(&str, &str, &str, Option<&str>)] = &[
    ("get", "/", "Health check", None),
    ("get", "/docs", "API documentation", None),
    ("get", "/openapi.json", "This OpenAPI document", None),
    ("get", "/metrics", "Prometheus metrics", None),
    ("post", "/auth/register", "Register an account", None),
    (
        "post",
        "/auth/login",
        "Log in: access and refresh tokens",
        None,
    ),
    ("post", "/auth/refresh", "Rotate a refresh token", None),
    (
        "post",
        "/auth/login/second-factor",
        "Second login step: a TOTP or recovery code with the mfa_token",
        None,
    ),
    (
        "post",
        "/auth/totp/enrol",
        "Start a TOTP enrolment (fresh login of 15 minutes)",
        Some("authenticated"),
    ),
    (
        "post",
        "/auth/totp/confirm",
        "Confirm the TOTP authenticator with a first code",
        Some("authenticated"),
    ),
    (
        "post",
        "/auth/recovery-codes",
        "New recovery codes, shown once (fresh login of 15 minutes)",
        Some("authenticated"),
    ),
    (
        "post",
        "/auth/oauth/login",
        "Log in with a Google, Microsoft, Okta or OpenID provider token",
        None,
    ),
    (
        "post",
        "/auth/oauth/link",
        "Link a provider account to the caller (fresh login of 15 minutes)",
        Some("authenticated"),
    ),
    (
        "post",
        "/auth/logout",
        "Revoke a refresh token's login",
        Some("authenticated"),
    ),
    (
        "post",
        "/auth/logout/all",
        "Revoke every login of the caller",
        Some("authenticated"),
    ),
    (
        "get",
        "/auth/me",
        "The caller, its roles and permissions",
        Some("authenticated"),
    ),
    (
        "get",
        "/api/projects",
        "List projects",
        Some("projects:read"),
    ),
    (
        "post",
        "/api/projects",
        "Create a project",
        Some("projects:create"),
    ),
    (
        "get",
        "/api/projects/{id}",
        "Read a project",
        Some("projects:read"),
    ),
    (
        "put",
        "/api/projects/{id}",
        "Update a project",
        Some("projects:update"),
    ),
    (
        "delete",
        "/api/projects/{id}",
        "Delete a project",
        Some("projects:delete"),
    ),
    ("get", "/api/users", "List users", Some("users:read")),
    (
        "delete",
        "/api/users/{id}",
        "Delete a user (fresh login of 15 minutes)",
        Some("role:admin"),
    ),
    (
        "get",
        "/api/users/{id}/permissions",
        "A user's roles and permissions",
        Some("users:read"),
    ),
    (
        "post",
        "/api/users/{id}/roles",
        "Assign a role",
        Some("users:manage"),
    ),
    (
        "delete",
        "/api/users/{id}/roles/{role}",
        "Remove a role",
        Some("users:manage"),
    ),
    (
        "post",
        "/api/roles/{role}/permissions",
        "Grant a permission to a role",
        Some("users:manage"),
    ),
    (
        "delete",
        "/api/roles/{role}/permissions/{permission}",
        "Revoke a permission",
        Some("users:manage"),
    ),
    (
        "get",
        "/audit/logs",
        "Query the audit log",
        Some("audit:read"),
    ),
];

fn request_body(method: &str, path: &str) -> Option<Value> {
    let schema = |required: &[&str], props: &[&str]| {
        let properties: serde_json::Map<String, Value> = props
            .iter()
            .map(|p| ((*p).to_owned(), json!({ "type": "string" })))
            .collect();
        json!({ "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": required, "properties": properties } } } })
    };
    match (method, path) {
        ("post", "/auth/register") => Some(schema(
            &["username", "email", "password"],
            &["username", "email", "password", "full_name"],
        )),
        ("post", "/auth/login") => {
            Some(schema(&["username", "password"], &["username", "password"]))
        }
        ("post", "/auth/login/second-factor") => {
            Some(schema(&["mfa_token", "code"], &["mfa_token", "code"]))
        }
        ("post", "/auth/totp/confirm") => Some(schema(&["code"], &["code"])),
        ("post", "/auth/oauth/login" | "/auth/oauth/link") => Some(schema(
            &["provider"],
            &["provider", "access_token", "id_token", "okta_domain"],
        )),
        ("post", "/auth/refresh" | "/auth/logout") => {
            Some(schema(&["refresh_token"], &["refresh_token"]))
        }
        ("post" | "put", "/api/projects" | "/api/projects/{id}") => {
            Some(schema(&["name"], &["name", "description"]))
        }
        ("post", "/api/users/{id}/roles") => Some(schema(&["role"], &["role"])),
        ("post", "/api/roles/{role}/permissions") => Some(schema(&["permission"], &["permission"])),
        _ => None,
    }
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub(crate) fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, requires) in ROUTES {
        let mut operation = serde_json::Map::new();
        operation.insert("summary".into(), Value::from(*summary));
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), json!({ "description": "OK" }));
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::from(parameters));
        }
        if let Some(requires) = requires {
            operation.insert("security".into(), json!([{ "bearer": [] }]));
            operation.insert("x-portcullis-requires".into(), Value::from(*requires));
            responses.insert("401".into(), json!({ "description": "Not authenticated" }));
            responses.insert(
                "403".into(),
                json!({ "description": "Permission required" }),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        if let Some(body) = request_body(method, path) {
            operation.insert("requestBody".into(), body);
        }
        let entry = paths
            .entry((*path).to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert((*method).to_owned(), Value::Object(operation));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Aethera API (Portcullis example)", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } } },
        "paths": paths,
    })
}

async fn docs() -> Html<String> {
    let mut rows = String::new();
    for (method, path, summary, requires) in ROUTES {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{path}</code></td><td>{summary}</td><td>{}</td></tr>\n",
            method.to_uppercase(),
            requires.unwrap_or("public")
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Aethera API</title></head>\
         <body><h1>Aethera API</h1><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. \
         Send <code>Authorization: Bearer &lt;access_token&gt;</code> from <code>POST /auth/login</code>.</p>\
         <table><tr><th>Method</th><th>Path</th><th>What</th><th>Requires</th></tr>\n{rows}</table></body></html>"
    ))
}
