//! Fresh authentication: a sensitive operation (changing a password, deleting an account,
//! granting a role) may demand that the caller logged in recently, not only that the token
//! is valid (the Rhesis document's "fresh authentication for sensitive operations").

use std::time::Duration;

use portcullis_core::Principal;
use serde_json::Value;
use time::OffsetDateTime;

/// Why [`require_fresh`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotFresh {
    /// The login is older than allowed: log in again (answer 401 with
    /// `error="insufficient_user_authentication"` and `max_age`, RFC 9470).
    #[error("authentication is {age:?} old, more than {max_age:?}")]
    TooOld {
        /// How old the login is.
        age: Duration,
        /// The largest age allowed.
        max_age: Duration,
    },
    /// The credential says nothing about when the user logged in (no `auth_time` or `iat`,
    /// or not a number, or in the future): never fresh.
    #[error("the time of authentication is unknown")]
    Unknown,
}

/// When the principal's user logged in: the token's `auth_time` (OpenID Connect; the tokens
/// [`crate::Identity`] issues carry it, and keep the login's time across refreshes), else its
/// `iat` (a token without `auth_time` was issued at the login, at best).
#[must_use]
pub fn authenticated_at(principal: &Principal) -> Option<OffsetDateTime> {
    let seconds = |key: &str| match principal.attribute(key) {
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let at = seconds("auth_time").or_else(|| seconds("iat"))?;
    OffsetDateTime::from_unix_timestamp(at).ok()
}

/// Refuses unless the principal logged in at most `max_age` before `now`.
///
/// # Errors
/// [`NotFresh`].
pub fn require_fresh(
    principal: &Principal,
    max_age: Duration,
    now: OffsetDateTime,
) -> Result<(), NotFresh> {
    let at = authenticated_at(principal).ok_or(NotFresh::Unknown)?;
    if at > now + time::Duration::seconds(60) {
        return Err(NotFresh::Unknown);
    }
    let age: Duration = (now - at).try_into().unwrap_or(Duration::ZERO);
    if age > max_age {
        return Err(NotFresh::TooOld { age, max_age });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::{AuthMethod, PrincipalKind};

    fn principal(claims: &[(&str, Value)]) -> Principal {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut builder = Principal::builder("u1", PrincipalKind::User, AuthMethod::Jwt, now);
        for (key, value) in claims {
            builder = builder.attribute(*key, value.clone());
        }
        builder.build().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn auth_time_wins_over_iat_and_missing_or_odd_times_are_never_fresh() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let five_min = Duration::from_secs(300);
        let refreshed = principal(&[
            ("auth_time", Value::from(1_700_000_000 - 3600)),
            ("iat", Value::from(1_700_000_000 - 10)),
        ]);
        assert!(matches!(
            require_fresh(&refreshed, five_min, now),
            Err(NotFresh::TooOld { .. })
        ));
        let fresh = principal(&[("iat", Value::from(1_700_000_000 - 10))]);
        assert_eq!(require_fresh(&fresh, five_min, now), Ok(()));
        for odd in [
            principal(&[]),
            principal(&[("auth_time", Value::from("1700000000"))]),
            principal(&[("auth_time", Value::from(1_700_000_000 + 3600))]),
        ] {
            assert!(require_fresh(&odd, five_min, now).is_err());
        }
    }
}
