//! OAuth logins on [`Identity`]: a verified external account is linked to a local one (created
//! on its first login) and exchanged for local tokens.

use portcullis_core::{AuditEventType, AuditPrincipal, AuditResult, AuthMethod, Principal};
use portcullis_sqlx::{LinkedIdentity, NewUser, StoreError, User};
use ring::rand::SecureRandom as _;

use crate::identity::{Client, Identity, IdentityError, TokenPair, named, validate_username};
use crate::oauth::{ExternalIdentity, OAuthError, OAuthLogin, OAuthProviders};

/// How many usernames are tried for a new account before giving up.
const USERNAME_ATTEMPTS: usize = 5;

fn from_oauth(error: &OAuthError) -> IdentityError {
    match error {
        OAuthError::Rejected(_) => IdentityError::ExternalLoginFailed,
        OAuthError::Unavailable(why) => IdentityError::Unavailable(why.clone()),
        other => IdentityError::Invalid(other.to_string()),
    }
}

/// A username from what the provider says, keeping the characters usernames allow.
fn username_base(identity: &ExternalIdentity) -> String {
    let candidates = [
        identity.preferred_username.as_deref(),
        identity
            .email
            .as_deref()
            .and_then(|email| email.split('@').next()),
        identity.name.as_deref(),
    ];
    for candidate in candidates.into_iter().flatten() {
        let cleaned: String = candidate
            .chars()
            .map(|c| if c == ' ' { '.' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(48)
            .collect();
        if validate_username(&cleaned).is_ok() {
            return cleaned;
        }
    }
    identity.provider.name().to_owned()
}

impl Identity {
    fn random_suffix(&self) -> Result<String, IdentityError> {
        let mut bytes = [0u8; 3];
        self.inner
            .random
            .fill(&mut bytes)
            .map_err(|_| IdentityError::Unavailable("the system random generator failed".into()))?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Logs in with an account at an OpenID provider (`POST /auth/oauth/login`): verifies the
    /// request's token with the provider it names ([`OAuthProviders::verify`]), finds the
    /// local account linked to that external account or creates one (with the default
    /// roles; the email only when the provider verified it), and starts a session. Roles are
    /// never taken from the provider. Every attempt is audited with its precise reason.
    ///
    /// A new external account whose verified email already belongs to a local account is
    /// refused ([`IdentityError::Conflict`]) rather than linked: the owner links it after
    /// logging in ([`link_external`](Self::link_external)), so an address reused at a
    /// provider does not open someone else's account.
    ///
    /// # Errors
    /// [`IdentityError::Invalid`] (unknown provider or domain, no token),
    /// [`IdentityError::ExternalLoginFailed`], [`IdentityError::Conflict`],
    /// [`IdentityError::Unavailable`].
    pub async fn oauth_login(
        &self,
        providers: &OAuthProviders,
        login: &OAuthLogin,
        client: &Client,
    ) -> Result<TokenPair, IdentityError> {
        let outcome = self.oauth_login_inner(providers, login).await;
        let kind = AuditEventType::Authentication;
        let event = match &outcome {
            Ok((user, identity, _)) => self
                .event(kind, AuditResult::Success, "OAUTH_LOGIN")
                .with_audit_principal(named(user))
                .with_metadata("issuer", identity.issuer.as_str())
                .with_metadata("subject", identity.subject.as_str()),
            Err((error, detail)) => self
                .event(kind, AuditResult::Failure, "OAUTH_LOGIN")
                .with_audit_principal(AuditPrincipal::with_id("anonymous"))
                .with_reason(detail.clone().unwrap_or_else(|| error.to_string())),
        };
        let event = event
            .with_auth_method(AuthMethod::Oidc)
            .with_metadata("provider", login.provider.as_str());
        self.audit(event, client).await;
        outcome
            .map(|(_, _, tokens)| tokens)
            .map_err(|(error, _)| error)
    }

    async fn oauth_login_inner(
        &self,
        providers: &OAuthProviders,
        login: &OAuthLogin,
    ) -> Result<(User, ExternalIdentity, TokenPair), (IdentityError, Option<String>)> {
        let store = &self.inner.store;
        let now = store.clock().now();
        let identity = providers
            .verify(login, now)
            .await
            .map_err(|e| (from_oauth(&e), Some(e.reason())))?;
        let plain = |e: IdentityError| (e, None);
        let user = match self.linked_user(&identity).await.map_err(plain)? {
            Some(user) => user,
            None => self.first_login(&identity).await?,
        };
        if !user.is_active {
            return Err((
                IdentityError::ExternalLoginFailed,
                Some("account disabled".into()),
            ));
        }
        let tokens = self.start_session(&user).await.map_err(plain)?;
        Ok((user, identity, tokens))
    }

    /// The local account linked to `identity`, recording the login.
    async fn linked_user(
        &self,
        identity: &ExternalIdentity,
    ) -> Result<Option<User>, IdentityError> {
        let store = &self.inner.store;
        let links = store.linked_identities();
        let Some(link) = links.find(&identity.issuer, &identity.subject).await? else {
            return Ok(None);
        };
        links.touch(&identity.issuer, &identity.subject).await?;
        // The link goes with its account (ON DELETE CASCADE): a link without one is a broken
        // database, refused rather than used to make a new account.
        match store.users().find_by_id(&link.user_id).await? {
            Some(user) => Ok(Some(user)),
            None => Err(IdentityError::Unavailable(format!(
                "external identity linked to missing user `{}`",
                link.user_id
            ))),
        }
    }

    /// Whether a local account has the (verified) email of `identity`.
    async fn email_taken(&self, identity: &ExternalIdentity) -> Result<bool, StoreError> {
        let Some(email) = &identity.email else {
            return Ok(false);
        };
        let found = self.inner.store.users().find_by_email(email).await?;
        Ok(found.is_some())
    }

    /// Creates the local account of an external account's first login and links them.
    async fn first_login(
        &self,
        identity: &ExternalIdentity,
    ) -> Result<User, (IdentityError, Option<String>)> {
        let store = &self.inner.store;
        let plain = |e: StoreError| (IdentityError::from(e), None);
        if self.email_taken(identity).await.map_err(plain)? {
            return Err((
                IdentityError::Conflict,
                Some(format!(
                    "a local account has the email of this {} account; its owner must link it",
                    identity.provider
                )),
            ));
        }
        let base = username_base(identity);
        let mut created = None;
        for attempt in 0..USERNAME_ATTEMPTS {
            let username = if attempt == 0 {
                base.clone()
            } else {
                let suffix = self.random_suffix().map_err(|e| (e, None))?;
                format!("{base}-{suffix}")
            };
            let mut new = NewUser::new(username);
            if let Some(email) = &identity.email {
                new = new.email(email.as_str());
            }
            if let Some(name) = &identity.name {
                new = new.full_name(name.chars().take(200).collect::<String>());
            }
            match store.users().create(new).await {
                Ok(user) => {
                    created = Some(user);
                    break;
                }
                // The username is taken (or the email was registered meanwhile: then the
                // next attempt's check below finds it).
                Err(StoreError::Conflict(_)) => {
                    if self.email_taken(identity).await.map_err(plain)? {
                        return Err((
                            IdentityError::Conflict,
                            Some("email taken meanwhile".into()),
                        ));
                    }
                }
                Err(other) => return Err(plain(other)),
            }
        }
        let Some(user) = created else {
            return Err((
                IdentityError::Unavailable("no free username for the new account".into()),
                None,
            ));
        };
        let linked = store
            .linked_identities()
            .link(
                &identity.issuer,
                &identity.subject,
                &user.id,
                identity.provider.name(),
                identity.email.as_deref(),
            )
            .await;
        match linked {
            Ok(()) => {}
            // Two first logins of one external account raced: the other one linked first.
            Err(StoreError::Conflict(_)) => {
                store.users().delete(&user.id).await.map_err(plain)?;
                return match self.linked_user(identity).await {
                    Ok(Some(user)) => Ok(user),
                    Ok(None) => Err((
                        IdentityError::Unavailable("a concurrent link vanished".into()),
                        None,
                    )),
                    Err(e) => Err((e, None)),
                };
            }
            Err(other) => {
                // Not linked, so not reachable: remove it rather than leave an orphan.
                if let Err(error) = store.users().delete(&user.id).await {
                    tracing::error!(user = user.id, %error, "an unlinked new account was not removed");
                }
                return Err(plain(other));
            }
        }
        for role in &self.inner.config.default_roles {
            self.inner
                .rbac
                .assign_role(&user.id, role, "oauth registration")
                .await
                .map_err(plain)?;
        }
        Ok(user)
    }

    /// Links an external account to the caller's account (`principal`, already logged in),
    /// so that it logs in there from now on. Linking one that is already the caller's
    /// changes nothing.
    ///
    /// # Errors
    /// [`IdentityError::Conflict`] when the external account is linked to another account;
    /// the errors of [`OAuthProviders::verify`] as [`oauth_login`](Self::oauth_login) maps
    /// them.
    pub async fn link_external(
        &self,
        principal: &Principal,
        providers: &OAuthProviders,
        login: &OAuthLogin,
        client: &Client,
    ) -> Result<LinkedIdentity, IdentityError> {
        let outcome = self.link_inner(principal, providers, login).await;
        let event = match &outcome {
            Ok(link) => self
                .event(AuditEventType::Admin, AuditResult::Success, "OAUTH_LINK")
                .with_metadata("issuer", link.issuer.as_str())
                .with_metadata("subject", link.subject.as_str()),
            Err((error, detail)) => self
                .event(AuditEventType::Admin, AuditResult::Failure, "OAUTH_LINK")
                .with_reason(detail.clone().unwrap_or_else(|| error.to_string())),
        };
        let event = event
            .with_principal(principal)
            .with_metadata("provider", login.provider.as_str());
        self.audit(event, client).await;
        outcome.map_err(|(error, _)| error)
    }

    async fn link_inner(
        &self,
        principal: &Principal,
        providers: &OAuthProviders,
        login: &OAuthLogin,
    ) -> Result<LinkedIdentity, (IdentityError, Option<String>)> {
        let store = &self.inner.store;
        let plain = |e: StoreError| (IdentityError::from(e), None);
        let identity = providers
            .verify(login, store.clock().now())
            .await
            .map_err(|e| (from_oauth(&e), Some(e.reason())))?;
        let links = store.linked_identities();
        let existing = links
            .find(&identity.issuer, &identity.subject)
            .await
            .map_err(plain)?;
        match existing {
            Some(link) if link.user_id == principal.id() => return Ok(link),
            Some(_) => {
                return Err((
                    IdentityError::Conflict,
                    Some("the external account is linked to another account".into()),
                ));
            }
            None => {}
        }
        links
            .link(
                &identity.issuer,
                &identity.subject,
                principal.id(),
                identity.provider.name(),
                identity.email.as_deref(),
            )
            .await
            .map_err(plain)?;
        links
            .find(&identity.issuer, &identity.subject)
            .await
            .map_err(plain)?
            .ok_or_else(|| {
                (
                    IdentityError::Unavailable("the new link vanished".into()),
                    None,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ProviderKind;

    fn identity(
        preferred: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
    ) -> ExternalIdentity {
        ExternalIdentity {
            provider: ProviderKind::Google,
            issuer: "https://accounts.google.com".into(),
            subject: "1".into(),
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
            preferred_username: preferred.map(str::to_owned),
        }
    }

    #[test]
    fn usernames_come_from_what_the_provider_says() {
        assert_eq!(username_base(&identity(Some("alice"), None, None)), "alice");
        assert_eq!(
            username_base(&identity(None, Some("jane.doe+x@example.com"), None)),
            "jane.doex"
        );
        assert_eq!(
            username_base(&identity(None, None, Some("Zoë Ünal"))),
            "Zo.nal"
        );
        assert_eq!(
            username_base(&identity(Some("ab"), None, Some("李"))),
            "google"
        );
    }
}
