//! Second factors on [`Identity`]: TOTP authenticators (enrolled with an `otpauth://` URI,
//! the secret sealed at rest, confirmed by a first code, each code accepted once, across
//! instances) and recovery codes (generated once, shown once, stored hashed, each usable
//! once). Attempts are throttled like logins and audited.

use portcullis_core::{AuditEventType, AuditPrincipal, AuditResult, Principal, SecretString};
use ring::rand::SecureRandom as _;

use std::fmt;
use std::time::Duration;

use portcullis_sqlx::Location;

use crate::identity::{Client, Identity, IdentityError, TokenPair, named};
use crate::throttle::Locked;
use crate::totp::{Totp, TotpAlgorithm, base32};

/// What enrolment shows the user once: the URI for an authenticator app (as a QR code) and
/// the secret in base32 for typing in. `Debug` leaves both out.
#[non_exhaustive]
pub struct TotpEnrolment {
    /// `otpauth://totp/…`.
    pub uri: SecretString,
    /// The secret, base32.
    pub secret: SecretString,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrolment { .. }")
    }
}

fn location(user_id: &str) -> Location<'_> {
    Location::new("totp_factors", "secret", user_id)
}

fn algorithm_named(name: &str) -> Option<TotpAlgorithm> {
    [
        TotpAlgorithm::Sha1,
        TotpAlgorithm::Sha256,
        TotpAlgorithm::Sha512,
    ]
    .into_iter()
    .find(|a| a.name() == name)
}

/// How many codes a set has.
pub const RECOVERY_CODES: usize = 10;

/// Formats 10 random bytes (80 bits) as `XXXX-XXXX-XXXX-XXXX` in base32.
fn format_code(bytes: &[u8; 10]) -> SecretString {
    let text = base32(bytes);
    let groups: Vec<&str> = (0..4).filter_map(|i| text.get(i * 4..i * 4 + 4)).collect();
    SecretString::new(groups.join("-"))
}

impl Identity {
    /// Checks the throttle of a second factor: `Ok(true)` when the user's attempts are
    /// locked out (the attempt still runs its course and fails), an error when the address
    /// is.
    fn factor_throttle(&self, key: &str, client: &Client) -> Result<bool, IdentityError> {
        match self.inner.throttle.check(key, client.ip) {
            Ok(()) => Ok(false),
            Err(Locked::Ip { until }) => {
                let retry_after = (until - self.inner.store.clock().now())
                    .try_into()
                    .unwrap_or(Duration::from_secs(1));
                Err(IdentityError::Throttled { retry_after })
            }
            Err(Locked::Account { .. }) => Ok(true),
        }
    }

    /// Starts a TOTP enrolment for the caller (SHA-1, 6 digits, 30 s: what every
    /// authenticator app reads): a new secret, sealed at rest, unconfirmed until
    /// [`verify_totp`](Self::verify_totp) accepts a first code. `issuer` labels it in the app.
    ///
    /// # Errors
    /// [`IdentityError::Conflict`] when the caller has a confirmed authenticator;
    /// [`IdentityError::Unavailable`] without an [`encryptor`](Self::encryptor).
    pub async fn enrol_totp(
        &self,
        principal: &Principal,
        issuer: &str,
        client: &Client,
    ) -> Result<TotpEnrolment, IdentityError> {
        let Some(encryptor) = &self.inner.encryptor else {
            return Err(IdentityError::Unavailable(
                "no encryption key for second-factor secrets (DB_ENCRYPTION_KEY)".into(),
            ));
        };
        let totp = Totp::generate(TotpAlgorithm::Sha1, 6)
            .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
        let sealed = encryptor
            .encrypt(totp.secret(), location(principal.id()))
            .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
        let outcome = self
            .inner
            .store
            .totp_factors()
            .enrol(principal.id(), &sealed, TotpAlgorithm::Sha1.name(), 6)
            .await;
        let account = principal
            .email()
            .or(principal.name())
            .unwrap_or(principal.id());
        let result = if outcome.is_ok() {
            AuditResult::Success
        } else {
            AuditResult::Failure
        };
        let event = self
            .event(AuditEventType::Admin, result, "TOTP_ENROL")
            .with_principal(principal);
        self.audit(event, client).await;
        outcome?;
        Ok(TotpEnrolment {
            uri: SecretString::new(totp.uri(issuer, account)),
            secret: SecretString::new(base32(totp.secret())),
        })
    }

    /// Checks a TOTP code of the user: the first accepted code confirms an enrolment; each
    /// code (each 30-second step) is accepted once, even across instances.
    ///
    /// # Errors
    /// [`IdentityError::InvalidCredentials`] for a wrong, reused or stale code or no
    /// authenticator; [`IdentityError::Throttled`]; [`IdentityError::Unavailable`] (no
    /// encryptor, or a secret that does not open: logged and audited).
    pub async fn verify_totp(
        &self,
        user_id: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), IdentityError> {
        let key = format!("totp:{user_id}");
        let locked = self.factor_throttle(&key, client)?;
        let outcome = if locked {
            Err("second factor locked out after repeated failures".to_owned())
        } else {
            match self.check_totp(user_id, code).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    let event = self
                        .event(AuditEventType::Authentication, AuditResult::Failure, "TOTP")
                        .with_audit_principal(AuditPrincipal::with_id(user_id))
                        .with_reason(match &error {
                            IdentityError::Unavailable(why) => why.clone(),
                            other => other.to_string(),
                        });
                    self.audit(event, client).await;
                    return Err(error);
                }
            }
        };
        let result = if outcome.is_ok() {
            AuditResult::Success
        } else {
            AuditResult::Failure
        };
        let mut event = self
            .event(AuditEventType::Authentication, result, "TOTP")
            .with_audit_principal(AuditPrincipal::with_id(user_id));
        match outcome {
            Ok(()) => {
                self.inner.throttle.success(&key);
                self.audit(event, client).await;
                Ok(())
            }
            Err(why) => {
                self.inner.throttle.failure(&key, client.ip);
                event = event.with_reason(why);
                self.audit(event, client).await;
                Err(IdentityError::InvalidCredentials)
            }
        }
    }

    /// `Ok(Err(reason))` for a refused code.
    async fn check_totp(
        &self,
        user_id: &str,
        code: &str,
    ) -> Result<Result<(), String>, IdentityError> {
        let factors = self.inner.store.totp_factors();
        let Some(factor) = factors.find(user_id).await? else {
            return Ok(Err("no authenticator enrolled".into()));
        };
        let Some(encryptor) = &self.inner.encryptor else {
            return Err(IdentityError::Unavailable(
                "no encryption key for second-factor secrets".into(),
            ));
        };
        let secret = encryptor
            .decrypt(&factor.sealed_secret, location(user_id))
            .map_err(|e| {
                tracing::error!(user = user_id, %e, "a stored TOTP secret does not open");
                IdentityError::Unavailable(format!("stored TOTP secret: {e}"))
            })?;
        let algorithm = algorithm_named(&factor.algorithm).ok_or_else(|| {
            IdentityError::Unavailable(format!("stored TOTP algorithm `{}`", factor.algorithm))
        })?;
        let digits = u32::try_from(factor.digits).unwrap_or(0);
        let totp = Totp::new(secret.to_vec(), algorithm, digits)
            .map_err(|e| IdentityError::Unavailable(format!("stored TOTP factor: {e}")))?;
        let now = u64::try_from(self.inner.store.clock().now().unix_timestamp()).unwrap_or(0);
        let last = factor.last_step.and_then(|s| u64::try_from(s).ok());
        let Some(step) = totp.verify(code, now, last) else {
            return Ok(Err("wrong, reused or stale TOTP code".into()));
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if !factors.accept_step(user_id, step).await? {
            return Ok(Err("TOTP code already used".into()));
        }
        Ok(Ok(()))
    }

    /// The second step of a login that answered [`IdentityError::SecondFactorRequired`]: the
    /// challenge and a TOTP code (digits) or a recovery code. The challenge is spent by this
    /// call, right or wrong, so a wrong code means logging in again. The access token's
    /// `amr` is `["pwd", "otp"]` (or `"recovery"` in place of `otp`).
    ///
    /// # Errors
    /// [`IdentityError::InvalidCredentials`] for an unknown, expired or spent challenge, a
    /// wrong code or a disabled account; [`IdentityError::Throttled`];
    /// [`IdentityError::Unavailable`].
    pub async fn complete_login(
        &self,
        challenge: &SecretString,
        code: &SecretString,
        client: &Client,
    ) -> Result<TokenPair, IdentityError> {
        let store = &self.inner.store;
        let refused = |why: &str| {
            self.event(
                AuditEventType::Authentication,
                AuditResult::Failure,
                "LOGIN_SECOND_FACTOR",
            )
            .with_audit_principal(AuditPrincipal::with_id("anonymous"))
            .with_reason(why)
        };
        let Some(user_id) = store.login_challenges().take(challenge).await? else {
            self.audit(refused("unknown, expired or spent login challenge"), client)
                .await;
            return Err(IdentityError::InvalidCredentials);
        };
        let code = code.expose().trim();
        let method = if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
            self.verify_totp(&user_id, code, client).await?;
            "otp"
        } else {
            self.use_recovery_code(&user_id, &SecretString::new(code), client)
                .await?;
            "recovery"
        };
        let user = match store.users().find_by_id(&user_id).await? {
            Some(user) if user.is_active => user,
            _ => {
                self.audit(refused("account disabled or deleted"), client)
                    .await;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        let tokens = self.start_session_amr(&user, &["pwd", method]).await?;
        let event = self
            .event(
                AuditEventType::Authentication,
                AuditResult::Success,
                "LOGIN",
            )
            .with_audit_principal(named(&user))
            .with_metadata("second_factor", method);
        self.audit(event, client).await;
        Ok(tokens)
    }

    /// A new set of [`RECOVERY_CODES`] recovery codes for the caller, replacing any earlier
    /// set. Show them once: only their hashes are kept.
    ///
    /// # Errors
    /// [`IdentityError::Unavailable`].
    pub async fn new_recovery_codes(
        &self,
        principal: &Principal,
        client: &Client,
    ) -> Result<Vec<SecretString>, IdentityError> {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let mut bytes = zeroize::Zeroizing::new([0u8; 10]);
            self.inner.random.fill(bytes.as_mut()).map_err(|_| {
                IdentityError::Unavailable("the system random generator failed".into())
            })?;
            codes.push(format_code(&bytes));
        }
        self.inner
            .store
            .recovery_codes()
            .replace(principal.id(), &codes)
            .await?;
        let event = self
            .event(
                AuditEventType::Admin,
                AuditResult::Success,
                "RECOVERY_CODES_GENERATED",
            )
            .with_principal(principal)
            .with_metadata("count", RECOVERY_CODES);
        self.audit(event, client).await;
        Ok(codes)
    }

    /// Spends one of the user's recovery codes (the second step of a login when the
    /// authenticator is lost). Returns how many are left. Separators and case do not matter.
    ///
    /// # Errors
    /// [`IdentityError::InvalidCredentials`] for a wrong or spent code;
    /// [`IdentityError::Throttled`] after repeated failures from the client address (the
    /// account's own failures lock it as a login's do); [`IdentityError::Unavailable`].
    pub async fn use_recovery_code(
        &self,
        user_id: &str,
        code: &SecretString,
        client: &Client,
    ) -> Result<u64, IdentityError> {
        let key = format!("recovery:{user_id}");
        let throttle = &self.inner.throttle;
        let locked = self.factor_throttle(&key, client)?;
        let codes = self.inner.store.recovery_codes();
        let spent = !locked && codes.consume(user_id, code).await?;
        let result = if spent {
            AuditResult::Success
        } else {
            AuditResult::Failure
        };
        let mut event = self
            .event(AuditEventType::Authentication, result, "RECOVERY_CODE")
            .with_audit_principal(AuditPrincipal::with_id(user_id));
        if !spent {
            throttle.failure(&key, client.ip);
            let why = if locked {
                "recovery codes locked out after repeated failures"
            } else {
                "wrong or spent recovery code"
            };
            event = event.with_reason(why);
            self.audit(event, client).await;
            return Err(IdentityError::InvalidCredentials);
        }
        throttle.success(&key);
        let left = codes.remaining(user_id).await?;
        self.audit(event.with_metadata("remaining", left), client)
            .await;
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_four_groups_of_base32() {
        let code = format_code(&[0xff; 10]);
        assert_eq!(code.expose(), "7777-7777-7777-7777");
        let code = format_code(&[0; 10]);
        assert_eq!(code.expose(), "AAAA-AAAA-AAAA-AAAA");
    }
}
