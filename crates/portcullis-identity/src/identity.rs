//! [`Identity`]: register, login, refresh, logout and logout-everywhere on a
//! [`portcullis_sqlx::Store`], issuing access tokens with a [`TokenIssuer`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use portcullis_core::{
    AuditEvent, AuditEventType, AuditPrincipal, AuditResult, AuditSink, AuthMethod, Principal,
    SecretString,
};
use portcullis_jwt::{IssuedToken, TokenIssuer, TokenRequest};
use portcullis_sqlx::{
    Encryptor, NewUser, RbacStore, RevocationCache, Rotation, Store, StoreError, User,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;
use time::OffsetDateTime;

use crate::password::{PasswordError, Passwords, Verified};
use crate::throttle::{Locked, Throttle, ThrottleConfig};

/// What [`Identity`] is configured with beyond its parts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// How long a refresh token lives (default 7 days, Aethera's `REFRESH_TOKEN_EXPIRE_DAYS`).
    /// Each refresh issues a new one with a new lifetime; the family ends when no token of it
    /// is used for this long.
    pub refresh_ttl: Duration,
    /// Roles given to a newly registered account (default `viewer`, the Aethera read-only
    /// role). Empty gives none: the policy's default role then applies.
    pub default_roles: Vec<String>,
    /// Failed-login throttling.
    pub throttle: ThrottleConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(7 * 86_400),
            default_roles: vec!["viewer".into()],
            throttle: ThrottleConfig::default(),
        }
    }
}

impl IdentityConfig {
    /// Sets the refresh-token lifetime.
    #[must_use]
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Sets the roles of new accounts.
    #[must_use]
    pub fn default_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.default_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the throttle.
    #[must_use]
    pub fn throttle(mut self, throttle: ThrottleConfig) -> Self {
        self.throttle = throttle;
        self
    }
}

/// A new account, as `POST /auth/register` sends it.
#[derive(Clone)]
#[non_exhaustive]
pub struct Registration {
    /// 3 to 64 characters: letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// An email address (required, unique in any case).
    pub email: String,
    /// The password, checked against the [`PasswordPolicy`](crate::PasswordPolicy).
    pub password: SecretString,
    /// A name for people (at most 200 characters).
    pub full_name: Option<String>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("full_name", &self.full_name)
            .finish()
    }
}

impl Registration {
    /// A registration.
    #[must_use]
    pub fn new(
        username: impl Into<String>,
        email: impl Into<String>,
        password: SecretString,
    ) -> Self {
        Self {
            username: username.into(),
            email: email.into(),
            password,
            full_name: None,
        }
    }

    /// Sets the full name.
    #[must_use]
    pub fn full_name(mut self, name: impl Into<String>) -> Self {
        self.full_name = Some(name.into());
        self
    }
}

/// Who is asking, for the throttle and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Client {
    /// The client address (after trusted proxies).
    pub ip: Option<IpAddr>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
}

impl Client {
    /// A client at `ip`.
    #[must_use]
    pub fn new(ip: Option<IpAddr>, user_agent: Option<String>) -> Self {
        Self { ip, user_agent }
    }
}

/// The tokens of a login or a refresh. `Debug` shows neither token.
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (a JWT from the [`TokenIssuer`]).
    pub access_token: SecretString,
    /// The opaque refresh token (256 random bits, base64url); only its hash is stored.
    pub refresh_token: SecretString,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The account.
    pub user_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl TokenPair {
    /// The Aethera response body: `access_token`, `refresh_token`, `token_type: "bearer"`,
    /// `expires_in`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "access_token": self.access_token.expose(),
            "refresh_token": self.refresh_token.expose(),
            "token_type": "bearer",
            "expires_in": self.expires_in,
        })
    }
}

/// Why an identity operation was refused. The `Display` text of each variant is what a client
/// may be shown; the precise reason goes to the audit event and the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Unknown user, wrong password, locked or disabled account: one answer for all (401).
    #[error("Incorrect username or password")]
    InvalidCredentials,
    /// Too many failures from this client address (429 with `Retry-After`).
    #[error("Too many login attempts")]
    Throttled {
        /// Until the address may try again.
        retry_after: Duration,
    },
    /// The request is malformed or a new password breaks the policy (422); the text says how.
    #[error("{0}")]
    Invalid(String),
    /// The username or email is taken (409).
    #[error("Username or email already registered")]
    Conflict,
    /// A refresh token that is unknown, expired, revoked, spent, or not the caller's (401).
    #[error("Invalid refresh token")]
    InvalidRefreshToken,
    /// The password was right and the account has a second factor: answer the challenge
    /// with [`Identity::complete_login`] within 5 minutes (401 with the challenge).
    #[error("Second factor required")]
    SecondFactorRequired {
        /// The one-use challenge to send back with the code.
        challenge: SecretString,
    },
    /// An OAuth login's token is invalid, expired, not issued to this application or not a
    /// user's, or names a disabled account (401; the precise reason is audited).
    #[error("OAuth authentication failed")]
    ExternalLoginFailed,
    /// The store or the password pool cannot answer now (503).
    #[error("Service temporarily unavailable")]
    Unavailable(String),
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => Self::Conflict,
            StoreError::Invalid(text) => Self::Invalid(text),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Accounts and their tokens.
#[derive(Clone)]
pub struct Identity {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) rbac: Arc<RbacStore>,
    issuer: TokenIssuer,
    passwords: Passwords,
    pub(crate) throttle: Throttle,
    audit: Arc<dyn AuditSink>,
    revocations: Option<Arc<RevocationCache>>,
    pub(crate) encryptor: Option<Arc<Encryptor>>,
    pub(crate) config: IdentityConfig,
    pub(crate) random: SystemRandom,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("store", &self.inner.store)
            .field("issuer", &self.inner.issuer)
            .field("passwords", &self.inner.passwords)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// How long a login may wait for its second factor.
pub(crate) const SECOND_FACTOR_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The largest username, email and full name accepted.
const MAX_USERNAME: usize = 64;
const MAX_EMAIL: usize = 254;
const MAX_FULL_NAME: usize = 200;

pub(crate) fn validate_username(username: &str) -> Result<(), IdentityError> {
    let ok = (3..=MAX_USERNAME).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Invalid(
            "username must be 3 to 64 characters: letters, digits, '.', '_' or '-'".into(),
        ))
    }
}

fn validate_email(email: &str) -> Result<(), IdentityError> {
    let invalid = || IdentityError::Invalid("email must be a valid address".into());
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let domain_ok = !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err(invalid());
    }
    Ok(())
}

impl Identity {
    /// Accounts in `store`, roles from `rbac` (put in each access token), tokens signed by
    /// `issuer` (its access lifetime is the `expires_in` of the responses), passwords hashed
    /// by `passwords`, every attempt recorded in `audit`.
    #[must_use]
    pub fn new(
        store: Store,
        rbac: Arc<RbacStore>,
        issuer: TokenIssuer,
        passwords: Passwords,
        audit: Arc<dyn AuditSink>,
        config: IdentityConfig,
    ) -> Self {
        let throttle = Throttle::new(config.throttle, Arc::clone(store.clock()));
        Self {
            inner: Arc::new(Inner {
                store,
                rbac,
                issuer,
                passwords,
                throttle,
                audit,
                revocations: None,
                encryptor: None,
                config,
                random: SystemRandom::new(),
            }),
        }
    }

    /// Also revokes the caller's access token on [`logout`](Self::logout) (its `jti`, in the
    /// list the JWT authenticator checks), so it stops working before it expires.
    #[must_use]
    pub fn revocations(self, revocations: Arc<RevocationCache>) -> Self {
        self.rebuilt(|inner| inner.revocations = Some(revocations))
    }

    /// Seals second-factor secrets (TOTP) at rest with `encryptor`; without one, enrolment
    /// is refused.
    #[must_use]
    pub fn encryptor(self, encryptor: Arc<Encryptor>) -> Self {
        self.rebuilt(|inner| inner.encryptor = Some(encryptor))
    }

    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = (*self.inner).clone();
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The password hasher.
    #[must_use]
    pub fn passwords(&self) -> &Passwords {
        &self.inner.passwords
    }

    /// The issuer of access tokens.
    #[must_use]
    pub fn issuer(&self) -> &TokenIssuer {
        &self.inner.issuer
    }

    pub(crate) fn event(
        &self,
        kind: AuditEventType,
        result: AuditResult,
        action: &str,
    ) -> AuditEvent {
        let store = &self.inner.store;
        AuditEvent::new(store.ids().event_id(), kind, result, store.clock().now())
            .with_action(action)
    }

    pub(crate) async fn audit(&self, event: AuditEvent, client: &Client) {
        let mut event = event;
        if let Some(ip) = client.ip {
            event = event.with_source_ip(ip);
        }
        if let Some(agent) = &client.user_agent {
            event = event.with_user_agent(agent.as_str());
        }
        if let Err(error) = self.inner.audit.record(event).await {
            tracing::error!(%error, "an identity audit event was not recorded");
        }
    }

    /// Creates an account with a hashed password and the configured default roles.
    ///
    /// # Errors
    /// [`IdentityError::Invalid`] for a bad username, email, name or password;
    /// [`IdentityError::Conflict`] when the username or email is taken;
    /// [`IdentityError::Unavailable`].
    pub async fn register(
        &self,
        registration: Registration,
        client: &Client,
    ) -> Result<User, IdentityError> {
        let outcome = self.register_inner(&registration).await;
        let event = match &outcome {
            Ok(user) => self
                .event(AuditEventType::Admin, AuditResult::Success, "REGISTER")
                .with_audit_principal(AuditPrincipal::with_id(user.id.as_str()))
                .with_resource_parts("user", Some(user.id.clone())),
            Err(error) => self
                .event(AuditEventType::Admin, AuditResult::Failure, "REGISTER")
                .with_audit_principal(AuditPrincipal::with_id(registration.username.as_str()))
                .with_reason(reason(error)),
        };
        self.audit(event, client).await;
        outcome
    }

    async fn register_inner(&self, registration: &Registration) -> Result<User, IdentityError> {
        validate_username(&registration.username)?;
        validate_email(&registration.email)?;
        if let Some(name) = &registration.full_name
            && (name.chars().count() > MAX_FULL_NAME || name.chars().any(char::is_control))
        {
            return Err(IdentityError::Invalid(
                "full_name must be at most 200 characters, without control characters".into(),
            ));
        }
        let hash = match self.inner.passwords.hash(&registration.password).await {
            Ok(hash) => hash,
            Err(PasswordError::Policy(text)) => return Err(IdentityError::Invalid(text)),
            Err(other) => return Err(IdentityError::Unavailable(other.to_string())),
        };
        let users = self.inner.store.users();
        // The unique indexes decide; these reads only spare a hash-then-fail round trip in
        // the common case and cannot let a duplicate in.
        if users.find_by_email(&registration.email).await?.is_some() {
            return Err(IdentityError::Conflict);
        }
        let mut new = NewUser::new(registration.username.as_str())
            .email(registration.email.as_str())
            .password_hash(hash);
        if let Some(name) = &registration.full_name {
            new = new.full_name(name.as_str());
        }
        let user = users.create(new).await?;
        for role in &self.inner.config.default_roles {
            self.inner
                .rbac
                .assign_role(&user.id, role, "registration")
                .await?;
        }
        Ok(user)
    }

    /// Logs in with a username (or an email address) and a password.
    ///
    /// Unknown users, wrong passwords, locked accounts and disabled accounts all answer
    /// [`IdentityError::InvalidCredentials`] after one argon2id verification (a dummy one for
    /// unknown users and locked accounts), so neither the answer nor its time tells them
    /// apart. A stored hash below the policy is replaced on success.
    ///
    /// # Errors
    /// [`IdentityError::InvalidCredentials`], [`IdentityError::Throttled`] (the client address
    /// is locked out), [`IdentityError::Unavailable`].
    pub async fn login(
        &self,
        login: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<TokenPair, IdentityError> {
        let outcome = self.login_inner(login, password, client).await;
        let event = match &outcome {
            Ok((user, _)) => self
                .event(
                    AuditEventType::Authentication,
                    AuditResult::Success,
                    "LOGIN",
                )
                .with_audit_principal(named(user))
                .with_auth_method(AuthMethod::Password),
            Err((error, detail)) => self
                .event(
                    AuditEventType::Authentication,
                    AuditResult::Failure,
                    "LOGIN",
                )
                .with_audit_principal(AuditPrincipal::with_id(truncate(login, MAX_EMAIL)))
                .with_auth_method(AuthMethod::Password)
                .with_reason(detail.clone().unwrap_or_else(|| reason(error))),
        };
        self.audit(event, client).await;
        outcome
            .map(|(_, tokens)| tokens)
            .map_err(|(error, _)| error)
    }

    async fn login_inner(
        &self,
        login: &str,
        password: &SecretString,
        client: &Client,
    ) -> Result<(User, TokenPair), (IdentityError, Option<String>)> {
        let inner = &*self.inner;
        let login = login.trim();
        let account_locked = match inner.throttle.check(login, client.ip) {
            Ok(()) => false,
            Err(Locked::Ip { until }) => {
                let retry_after = (until - inner.store.clock().now())
                    .try_into()
                    .unwrap_or(Duration::from_secs(1));
                return Err((
                    IdentityError::Throttled { retry_after },
                    Some("client address locked out after repeated failures".into()),
                ));
            }
            Err(Locked::Account { .. }) => true,
        };
        let unavailable = |e: StoreError| (IdentityError::Unavailable(e.to_string()), None);
        let user = if login.len() > MAX_EMAIL {
            None
        } else if login.contains('@') {
            inner
                .store
                .users()
                .find_by_email(login)
                .await
                .map_err(unavailable)?
        } else {
            inner
                .store
                .users()
                .find_by_username(login)
                .await
                .map_err(unavailable)?
        };
        let stored = if account_locked {
            None
        } else {
            user.as_ref().and_then(|u| u.password_hash.as_deref())
        };
        let verified = match inner.passwords.verify(password, stored).await {
            Ok(verified) => verified,
            Err(PasswordError::StoredHash(why)) => {
                tracing::error!(user = login, why, "a stored password hash was refused");
                inner.throttle.failure(login, client.ip);
                return Err((
                    IdentityError::InvalidCredentials,
                    Some(format!("stored password hash refused: {why}")),
                ));
            }
            Err(other) => return Err((IdentityError::Unavailable(other.to_string()), None)),
        };
        let failure = |detail: &str| {
            inner.throttle.failure(login, client.ip);
            Err((IdentityError::InvalidCredentials, Some(detail.to_owned())))
        };
        let rehash = match (verified, &user) {
            _ if account_locked => return failure("account locked out after repeated failures"),
            (_, None) => return failure("unknown user"),
            (Verified::Invalid, Some(_)) => return failure("wrong password"),
            (Verified::Valid { .. }, Some(u)) if !u.is_active => {
                return failure("account disabled");
            }
            (Verified::Valid { rehash }, Some(_)) => rehash,
        };
        let Some(user) = user else {
            return failure("unknown user");
        };
        inner.throttle.success(login);
        if rehash {
            self.rehash(&user, password).await;
        }
        let factor = inner
            .store
            .totp_factors()
            .find(&user.id)
            .await
            .map_err(unavailable)?;
        if factor.is_some_and(|f| f.confirmed_at.is_some()) {
            let challenge = self.refresh_token().map_err(|e| (e, None))?;
            let expires = inner.store.clock().now() + to_time(SECOND_FACTOR_WINDOW);
            inner
                .store
                .login_challenges()
                .create(&challenge, &user.id, expires)
                .await
                .map_err(unavailable)?;
            return Err((
                IdentityError::SecondFactorRequired { challenge },
                Some("password accepted; second factor required".into()),
            ));
        }
        let tokens = self
            .start_session_amr(&user, &["pwd"])
            .await
            .map_err(|e| (e, None))?;
        Ok((user, tokens))
    }

    async fn rehash(&self, user: &User, password: &SecretString) {
        // Best effort: the login succeeds with the old hash if the new one cannot be stored.
        match self.inner.passwords.hash_unchecked(password).await {
            Ok(hash) => {
                if let Err(error) = self
                    .inner
                    .store
                    .users()
                    .set_password_hash(&user.id, &hash)
                    .await
                {
                    tracing::warn!(user = user.id, %error, "rehash not stored");
                }
            }
            Err(error) => tracing::warn!(user = user.id, %error, "rehash failed"),
        }
    }

    /// Issues the tokens of a new login of `user` (a new refresh family), as after a password
    /// or OAuth login. For sign-ins the caller verified itself.
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`].
    pub async fn start_session(&self, user: &User) -> Result<TokenPair, IdentityError> {
        self.start_session_amr(user, &[]).await
    }

    /// [`start_session`](Self::start_session) whose access token names how the user
    /// authenticated (`amr`, RFC 8176: `pwd`, `otp`, …) when `amr` is not empty.
    pub(crate) async fn start_session_amr(
        &self,
        user: &User,
        amr: &[&str],
    ) -> Result<TokenPair, IdentityError> {
        let inner = &*self.inner;
        let now = inner.store.clock().now();
        let refresh = self.refresh_token()?;
        inner
            .store
            .refresh_tokens()
            .start_family(&user.id, &refresh, now + to_time(inner.config.refresh_ttl))
            .await?;
        let access = self.access_token(user, now, amr).await?;
        Ok(self.pair(user, access, refresh, now))
    }

    fn pair(
        &self,
        user: &User,
        access: IssuedToken,
        refresh: SecretString,
        now: OffsetDateTime,
    ) -> TokenPair {
        let expires_in = u64::try_from((access.expires_at - now).whole_seconds()).unwrap_or(0);
        TokenPair {
            access_token: access.token,
            refresh_token: refresh,
            expires_in,
            user_id: user.id.clone(),
        }
    }

    pub(crate) fn refresh_token(&self) -> Result<SecretString, IdentityError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        self.inner
            .random
            .fill(bytes.as_mut())
            .map_err(|_| IdentityError::Unavailable("the system random generator failed".into()))?;
        Ok(SecretString::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
        ))
    }

    /// An access token for `user`, authenticated at `auth_time`: its roles from the store,
    /// `auth_time`, `preferred_username`, `email`, and `is_superuser` when set.
    async fn access_token(
        &self,
        user: &User,
        auth_time: OffsetDateTime,
        amr: &[&str],
    ) -> Result<IssuedToken, IdentityError> {
        let roles = self.inner.rbac.user_roles(&user.id).await?;
        let mut request = TokenRequest::access(user.id.as_str()).roles(roles);
        request.name = user.full_name.clone();
        request.email = user.email.clone();
        request.tenant = user.tenant.clone();
        request
            .extra
            .insert("auth_time".into(), Value::from(auth_time.unix_timestamp()));
        request.extra.insert(
            "preferred_username".into(),
            Value::from(user.username.as_str()),
        );
        if !amr.is_empty() {
            request
                .extra
                .insert("amr".into(), Value::from(amr.to_vec()));
        }
        if user.is_superuser {
            request
                .extra
                .insert("is_superuser".into(), Value::Bool(true));
        }
        self.inner
            .issuer
            .issue(&request)
            .map_err(|e| IdentityError::Unavailable(e.to_string()))
    }

    /// Exchanges a refresh token for new tokens. The presented token is spent; presenting it
    /// again revokes its whole family and records a `security_violation`.
    ///
    /// # Errors
    /// [`IdentityError::InvalidRefreshToken`], [`IdentityError::Unavailable`].
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        client: &Client,
    ) -> Result<TokenPair, IdentityError> {
        let inner = &*self.inner;
        let now = inner.store.clock().now();
        let next = self.refresh_token()?;
        let rotation = inner
            .store
            .refresh_tokens()
            .rotate(
                refresh_token,
                &next,
                now + to_time(inner.config.refresh_ttl),
            )
            .await?;
        let grant = match rotation {
            Rotation::Rotated(grant) => grant,
            Rotation::ReuseDetected(grant) => {
                let event = self
                    .event(
                        AuditEventType::SecurityViolation,
                        AuditResult::Failure,
                        "REFRESH_TOKEN_REUSE",
                    )
                    .with_audit_principal(AuditPrincipal::with_id(grant.user_id.as_str()))
                    .with_reason("a spent refresh token was presented again: family revoked")
                    .with_metadata("family_id", grant.family_id.as_str());
                self.audit(event, client).await;
                return Err(IdentityError::InvalidRefreshToken);
            }
            _ => {
                let event = self
                    .event(
                        AuditEventType::Authentication,
                        AuditResult::Failure,
                        "REFRESH",
                    )
                    .with_reason("unknown, expired or revoked refresh token");
                self.audit(event, client).await;
                return Err(IdentityError::InvalidRefreshToken);
            }
        };
        let user = inner.store.users().find_by_id(&grant.user_id).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            inner
                .store
                .refresh_tokens()
                .revoke_family(&grant.family_id)
                .await?;
            let event = self
                .event(
                    AuditEventType::Authentication,
                    AuditResult::Failure,
                    "REFRESH",
                )
                .with_audit_principal(AuditPrincipal::with_id(grant.user_id.as_str()))
                .with_reason("account disabled or deleted: family revoked");
            self.audit(event, client).await;
            return Err(IdentityError::InvalidRefreshToken);
        };
        // A family from before the store kept the login time is never fresh.
        let auth_time = grant.authenticated_at.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let access = self.access_token(&user, auth_time, &[]).await?;
        let event = self
            .event(
                AuditEventType::Authentication,
                AuditResult::Success,
                "REFRESH",
            )
            .with_audit_principal(AuditPrincipal::with_id(user.id.as_str()))
            .with_metadata("family_id", grant.family_id.as_str());
        self.audit(event, client).await;
        Ok(self.pair(&user, access, next, now))
    }

    /// Logout: revokes the refresh token's family (the login it belongs to), and, with
    /// [`revocations`](Self::revocations), the caller's access token. A refresh token of
    /// another user is refused and revokes nothing.
    ///
    /// # Errors
    /// [`IdentityError::InvalidRefreshToken`], [`IdentityError::Unavailable`].
    pub async fn logout(
        &self,
        principal: &Principal,
        refresh_token: &SecretString,
        client: &Client,
    ) -> Result<(), IdentityError> {
        let tokens = self.inner.store.refresh_tokens();
        let grant = tokens.grant_of(refresh_token).await?;
        let Some(grant) = grant.filter(|g| g.user_id == principal.id()) else {
            let event = self
                .event(
                    AuditEventType::Authentication,
                    AuditResult::Failure,
                    "LOGOUT",
                )
                .with_principal(principal)
                .with_reason("refresh token unknown or not the caller's");
            self.audit(event, client).await;
            return Err(IdentityError::InvalidRefreshToken);
        };
        tokens.revoke_family(&grant.family_id).await?;
        self.revoke_access_token(principal, "logout").await?;
        let event = self
            .event(
                AuditEventType::Authentication,
                AuditResult::Success,
                "LOGOUT",
            )
            .with_principal(principal)
            .with_metadata("family_id", grant.family_id.as_str());
        self.audit(event, client).await;
        Ok(())
    }

    /// Logout everywhere: revokes every refresh family and ends every session of the caller
    /// (and, with [`revocations`](Self::revocations), the caller's access token). Returns how
    /// many refresh tokens were live.
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`].
    pub async fn logout_everywhere(
        &self,
        principal: &Principal,
        client: &Client,
    ) -> Result<u64, IdentityError> {
        let store = &self.inner.store;
        let revoked = store.refresh_tokens().revoke_user(principal.id()).await?;
        store.sessions().delete_user(principal.id()).await?;
        self.revoke_access_token(principal, "logout everywhere")
            .await?;
        let event = self
            .event(
                AuditEventType::Authentication,
                AuditResult::Success,
                "LOGOUT_ALL",
            )
            .with_principal(principal)
            .with_metadata("revoked_refresh_tokens", revoked);
        self.audit(event, client).await;
        Ok(revoked)
    }

    async fn revoke_access_token(
        &self,
        principal: &Principal,
        why: &str,
    ) -> Result<(), IdentityError> {
        let Some(revocations) = &self.inner.revocations else {
            return Ok(());
        };
        let Some(Value::String(jti)) = principal.attribute("jti") else {
            return Ok(());
        };
        let expires = principal
            .expires_at()
            .unwrap_or_else(|| self.inner.store.clock().now() + time::Duration::DAY);
        revocations
            .revoke(jti, expires, why, principal.id())
            .await
            .map_err(IdentityError::from)
    }
}

impl Passwords {
    /// Hashes a password already accepted once (a rehash at login): the policy of the day is
    /// not applied, or a password set under an older policy could not be upgraded.
    pub(crate) async fn hash_unchecked(
        &self,
        password: &SecretString,
    ) -> Result<String, PasswordError> {
        self.hash_with_policy(password, false).await
    }
}

pub(crate) fn named(user: &User) -> AuditPrincipal {
    let mut principal = AuditPrincipal::with_id(user.id.as_str());
    principal.name = Some(user.username.clone());
    principal
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn reason(error: &IdentityError) -> String {
    match error {
        IdentityError::Invalid(text) | IdentityError::Unavailable(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails_are_validated() {
        for good in ["johndoe", "a.b-c_d", "abc"] {
            assert!(validate_username(good).is_ok(), "{good}");
        }
        for bad in ["ab", "john doe", "jöhn", "a/b", "", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        for good in ["john@example.com", "a+b@sub.example.org"] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
        for bad in [
            "john",
            "@example.com",
            "john@",
            "john@localhost",
            "john@.example.com",
            "john@example..com",
            "jo hn@example.com",
            "a@b@example.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
