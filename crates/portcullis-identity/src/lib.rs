#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod external;
mod factors;
mod fresh;
mod identity;
mod oauth;
mod password;
mod throttle;
mod totp;

pub use factors::{RECOVERY_CODES, TotpEnrolment};
pub use fresh::{NotFresh, authenticated_at, require_fresh};
pub use identity::{Client, Identity, IdentityConfig, IdentityError, Registration, TokenPair};
pub use oauth::{
    AccessTokenCheck, ExternalIdentity, GOOGLE_TOKENINFO, OAuthError, OAuthLogin, OAuthProvider,
    OAuthProviders, OktaSettings, ProviderKind,
};
pub use password::{
    Argon2Params, OWASP_MINIMUMS, PasswordError, PasswordPolicy, Passwords, StoredHashLimits,
    Verified,
};
pub use throttle::{Locked, Throttle, ThrottleConfig, ThrottleLimits};
pub use totp::{Totp, TotpAlgorithm, TotpError, base32};
