//! The [`Authenticator`] trait and the [`AuthenticatorChain`] that tries several in order.

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::credentials::Credentials;
use crate::error::{AuthError, Challenge};
use crate::principal::Principal;

/// What one authenticator says about a request's credentials.
#[derive(Debug)]
#[must_use]
pub enum AuthOutcome {
    /// None of the credentials is of a kind this authenticator handles; the next one may.
    NotApplicable,
    /// The credentials are valid: this is the caller.
    Authenticated(Principal),
    /// The credentials are of this authenticator's kind and are not valid (or could not be
    /// checked because a dependency is down). The chain stops here: an invalid credential
    /// never falls through to another authenticator.
    Rejected(AuthError),
}

/// Checks credentials and says who the caller is.
///
/// Implementations are object-safe and held as `Arc<dyn Authenticator>`.
///
/// ```
/// use async_trait::async_trait;
/// use portcullis_core::{
///     AuthError, AuthMethod, AuthOutcome, Authenticator, Challenge, Clock, Credentials,
///     Principal, PrincipalKind, SecretString, SystemClock,
/// };
///
/// /// Accepts one static bearer token (for a health-check robot, say).
/// #[derive(Debug)]
/// struct StaticToken {
///     token: SecretString,
/// }
///
/// #[async_trait]
/// impl Authenticator for StaticToken {
///     fn name(&self) -> &str {
///         "static-token"
///     }
///
///     fn challenge(&self) -> Option<Challenge> {
///         Challenge::bearer("robots").ok()
///     }
///
///     async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
///         let Some(token) = credentials.bearer() else {
///             return AuthOutcome::NotApplicable;
///         };
///         if !self.token.constant_time_eq(token.expose()) {
///             return AuthOutcome::Rejected(AuthError::invalid_credentials("wrong token"));
///         }
///         match Principal::builder("robot", PrincipalKind::Service, AuthMethod::Jwt, SystemClock.now())
///             .build()
///         {
///             Ok(principal) => AuthOutcome::Authenticated(principal),
///             Err(e) => AuthOutcome::Rejected(AuthError::invalid_credentials("bad principal").with_source(e)),
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticator: Debug + Send + Sync {
    /// A short, stable name for audit events and metrics (`"jwt"`, `"api_key"`, `"mtls"`).
    fn name(&self) -> &str;

    /// The `WWW-Authenticate` challenge this authenticator advertises on a 401, if any.
    fn challenge(&self) -> Option<Challenge>;

    /// Checks the credentials.
    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome;
}

#[async_trait]
impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn challenge(&self) -> Option<Challenge> {
        (**self).challenge()
    }

    async fn authenticate(&self, credentials: &Credentials) -> AuthOutcome {
        (**self).authenticate(credentials).await
    }
}

/// What an [`AuthenticatorChain`] concluded.
#[derive(Debug)]
#[must_use]
pub enum ChainOutcome {
    /// An authenticator accepted the credentials.
    Authenticated {
        /// The caller.
        principal: Principal,
        /// The name of the authenticator that accepted them.
        authenticator: Cow<'static, str>,
    },
    /// The request carried no credentials at all.
    NoCredentials,
    /// Credentials were present but no authenticator handles their kind.
    Unrecognized,
    /// An authenticator rejected the credentials (the error names it).
    Rejected(AuthError),
}

impl ChainOutcome {
    /// The principal, or the error to answer with (`NoCredentials` becomes
    /// [`AuthErrorKind::MissingCredentials`](crate::AuthErrorKind::MissingCredentials),
    /// `Unrecognized` becomes
    /// [`AuthErrorKind::UnsupportedCredentials`](crate::AuthErrorKind::UnsupportedCredentials)).
    ///
    /// # Errors
    /// Whenever the outcome is not `Authenticated`.
    pub fn into_result(self) -> Result<Principal, AuthError> {
        match self {
            Self::Authenticated { principal, .. } => Ok(principal),
            Self::NoCredentials => Err(AuthError::missing_credentials()),
            Self::Unrecognized => Err(AuthError::unsupported_credentials()),
            Self::Rejected(error) => Err(error),
        }
    }
}

/// Several authenticators tried in order; the first that recognises the credentials decides.
///
/// The order is the precedence when a request carries several credentials (for example mTLS
/// and a bearer token): put the one you trust most first.
///
/// ```
/// # use portcullis_core::{AuthenticatorChain, ChainOutcome, Credentials};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let chain = AuthenticatorChain::new(vec![]);
/// assert!(matches!(chain.authenticate(&Credentials::none()).await, ChainOutcome::NoCredentials));
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct AuthenticatorChain {
    authenticators: Arc<[Arc<dyn Authenticator>]>,
}

impl AuthenticatorChain {
    /// A chain of the given authenticators, tried in this order.
    #[must_use]
    pub fn new(authenticators: Vec<Arc<dyn Authenticator>>) -> Self {
        Self {
            authenticators: authenticators.into(),
        }
    }

    /// The authenticators, in order.
    #[must_use]
    pub fn authenticators(&self) -> &[Arc<dyn Authenticator>] {
        &self.authenticators
    }

    /// The challenges of every authenticator that advertises one, in order, without
    /// duplicates.
    #[must_use]
    pub fn challenges(&self) -> Vec<Challenge> {
        let mut challenges: Vec<Challenge> = Vec::new();
        for challenge in self.authenticators.iter().filter_map(|a| a.challenge()) {
            if !challenges.contains(&challenge) {
                challenges.push(challenge);
            }
        }
        challenges
    }

    /// Runs the chain.
    pub async fn authenticate(&self, credentials: &Credentials) -> ChainOutcome {
        if credentials.is_empty() {
            return ChainOutcome::NoCredentials;
        }
        for authenticator in self.authenticators.iter() {
            match authenticator.authenticate(credentials).await {
                AuthOutcome::NotApplicable => {}
                AuthOutcome::Authenticated(principal) => {
                    return ChainOutcome::Authenticated {
                        principal,
                        authenticator: Cow::Owned(authenticator.name().to_owned()),
                    };
                }
                AuthOutcome::Rejected(error) => {
                    let error = if error.authenticator().is_some() {
                        error
                    } else {
                        error.with_authenticator(authenticator.name().to_owned())
                    };
                    return ChainOutcome::Rejected(error);
                }
            }
        }
        ChainOutcome::Unrecognized
    }
}
