//! OAuth logins against a real OpenID Provider (panva's `oidc-provider`, started by the
//! testkit on 127.0.0.1) on SQLite and PostgreSQL: its ID tokens and opaque access tokens log
//! in and link to one local account; another application's ID tokens, opaque tokens and JWT
//! access tokens (token substitution), a client's own machine token, an ID token sent as an
//! access token, an Okta domain not on the list and a Microsoft access token are refused,
//! with no request to a URL the client chose; a verified email of a local account is not
//! taken over but can be linked by its owner.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

#[path = "../../portcullis-sqlx/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Uri;
use portcullis_audit::MemorySink;
use portcullis_core::{AuditResult, SecretString, async_trait};
use portcullis_identity::{
    AccessTokenCheck, Client, IdentityConfig, IdentityError, OAuthLogin, OAuthProvider,
    OAuthProviders, OktaSettings, ProviderKind, Registration,
};
use portcullis_jwt::presets::{self, ProviderOptions};
use portcullis_jwt::{
    FetchError, FetchedDocument, FormPost, HttpFetcher, HyperFetcher, JwtAuthenticator,
};
use portcullis_testkit::oidc::OpenIdProvider;
use support::{passwords, principal, secret, setup};

/// Counts the requests made, so a test can show that a refused login fetched nothing.
#[derive(Debug)]
struct Counting {
    inner: HyperFetcher,
    requests: AtomicUsize,
}

#[async_trait]
impl HttpFetcher for Counting {
    async fn get(&self, url: &Uri, max_bytes: usize) -> Result<FetchedDocument, FetchError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.get(url, max_bytes).await
    }

    async fn post_form(
        &self,
        url: &Uri,
        form: &FormPost,
        max_bytes: usize,
    ) -> Result<FetchedDocument, FetchError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.post_form(url, form, max_bytes).await
    }
}

/// The providers of the tests: the real provider as a generic OpenID provider (ID tokens,
/// introspection with our client secret) and as an Okta domain (JWT access tokens for its
/// RS256 resource server), another Okta domain, and Microsoft.
async fn providers(op: &OpenIdProvider, fetcher: Arc<Counting>) -> (OAuthProviders, String) {
    let options = ProviderOptions::new(fetcher);
    let client_id = op.get("client_id");
    let generic = OAuthProvider::discover(
        op.issuer(),
        client_id,
        Some(SecretString::new(op.get("client_secret"))),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(generic.kind(), ProviderKind::OpenId);
    let domain = op.issuer().trim_start_matches("http://").to_owned();
    let resource = op.get("access_tokens/RS256/audience");
    let okta_like = OAuthProvider::new(
        ProviderKind::Okta,
        Some(presets::discovered(op.issuer(), &[client_id], &options).unwrap()),
        AccessTokenCheck::Jwt {
            verifier: JwtAuthenticator::builder()
                .issuer(presets::discovered(op.issuer(), &[resource], &options).unwrap())
                .build()
                .unwrap(),
            client_id: client_id.to_owned(),
        },
        &options,
    )
    .unwrap()
    .domain(domain.as_str());
    let providers = OAuthProviders::new()
        .with(generic)
        .with(okta_like)
        .with(
            OAuthProvider::okta(
                OktaSettings::new("dev-000000.okta.com", "0oa-ours"),
                &options,
            )
            .unwrap(),
        )
        .with(OAuthProvider::microsoft("portcullis-ms", None, &options).unwrap());
    (providers, domain)
}

fn last_reason(audit: &MemorySink) -> String {
    let events = audit.events();
    let event = events.last().unwrap();
    assert_eq!(event.action.as_deref(), Some("OAUTH_LOGIN"));
    assert_eq!(event.result, AuditResult::Failure);
    event.reason.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_log_in_and_substituted_tokens_do_not() {
    let Some(op) = OpenIdProvider::shared() else {
        return;
    };
    let fetcher = Arc::new(Counting {
        inner: HyperFetcher::new().unwrap(),
        requests: AtomicUsize::new(0),
    });
    let (providers, domain) = providers(op, Arc::clone(&fetcher)).await;
    let client = Client::new(Some([198, 51, 100, 7].into()), None);
    for db in common::all("identity_oauth").await {
        let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
        let login = |provider: &str| OAuthLogin::new(provider);

        // Our ID token: a new local account, with the provider's verified email and the
        // default role, and local tokens.
        let by_id = s
            .identity
            .oauth_login(
                &providers,
                &login("oidc").id_token(secret(op.get("id_token"))),
                &client,
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", db.name));
        let user = db
            .store
            .users()
            .find_by_id(&by_id.user_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.username, "alice", "{}", db.name);
        assert_eq!(user.email.as_deref(), Some("alice@example.test"));
        assert_eq!(
            user.password_hash, None,
            "no password: it logs in through the provider"
        );
        assert_eq!(s.rbac.user_roles(&user.id).await.unwrap(), ["viewer"]);
        let local = principal(&s.verifier, &by_id.access_token).await;
        assert_eq!(local.id(), user.id);
        assert_eq!(
            local.roles(),
            ["viewer"],
            "roles are local, never the provider's"
        );
        let links = db
            .store
            .linked_identities()
            .of_user(&user.id)
            .await
            .unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].issuer.as_str(), links[0].subject.as_str()),
            (op.issuer(), "alice")
        );
        let event = s.audit.events().last().cloned().unwrap();
        assert_eq!(event.action.as_deref(), Some("OAUTH_LOGIN"));
        assert_eq!(event.result, AuditResult::Success);
        assert_eq!(event.metadata["provider"], "oidc");

        // Our opaque access token, introspected with our client credentials: the same
        // account. Both tokens together: the same account again.
        let opaque = secret(op.get("opaque_access_token"));
        let by_access = s
            .identity
            .oauth_login(
                &providers,
                &login("oidc").access_token(opaque.clone()),
                &client,
            )
            .await
            .unwrap();
        assert_eq!(by_access.user_id, user.id);
        let both = login("oidc")
            .access_token(opaque)
            .id_token(secret(op.get("id_token")));
        let by_both = s
            .identity
            .oauth_login(&providers, &both, &client)
            .await
            .unwrap();
        assert_eq!(by_both.user_id, user.id);

        // Token substitution: tokens the provider issued to another application.
        let refused: [(OAuthLogin, &str); 6] = [
            (
                login("oidc").id_token(secret(op.get("other/id_token"))),
                "id_token: audience",
            ),
            (
                login("oidc").access_token(secret(op.get("other/opaque_access_token"))),
                "issued to another application (client_id)",
            ),
            (
                login("okta")
                    .okta_domain(domain.as_str())
                    .access_token(secret(op.get("other/jwt_access_token"))),
                "issued to another application (cid)",
            ),
            // Our client's own machine token (client credentials) names no user.
            (
                login("okta")
                    .okta_domain(domain.as_str())
                    .access_token(secret(op.get("access_tokens/RS256/token"))),
                "a client's token, not a user's",
            ),
            // An ID token is not an access token.
            (
                login("oidc").access_token(secret(op.get("id_token"))),
                "not active",
            ),
            (
                login("okta")
                    .okta_domain(domain.as_str())
                    .access_token(secret(op.get("id_token"))),
                "access_token: ",
            ),
        ];
        for (attempt, why) in refused {
            let outcome = s.identity.oauth_login(&providers, &attempt, &client).await;
            assert!(
                matches!(outcome, Err(IdentityError::ExternalLoginFailed)),
                "{attempt:?}: {outcome:?}"
            );
            let reason = last_reason(&s.audit);
            assert!(reason.contains(why), "{attempt:?}: {reason}");
        }

        // Requests that name no configured provider or domain fetch nothing at all.
        let before = fetcher.requests.load(Ordering::SeqCst);
        let token = secret(op.get("id_token"));
        for (attempt, text) in [
            (
                login("okta")
                    .okta_domain("evil.example.com")
                    .id_token(token.clone()),
                "okta_domain is not one this server accepts",
            ),
            (
                login("okta").id_token(token.clone()),
                "okta_domain is required",
            ),
            (
                login("microsoft").access_token(secret("EwBwA8l6BAAU-graph-token")),
                "this provider requires an id_token",
            ),
            (
                login("facebook").id_token(token.clone()),
                "provider must be one of",
            ),
            (
                login("google").id_token(token.clone()),
                "provider 'google' is not configured",
            ),
            (login("oidc"), "access_token or id_token is required"),
            (
                login("oidc")
                    .access_token(secret(""))
                    .id_token(secret("  ")),
                "access_token or id_token is required",
            ),
        ] {
            match s.identity.oauth_login(&providers, &attempt, &client).await {
                Err(IdentityError::Invalid(message)) => {
                    assert!(message.contains(text), "{attempt:?}: {message}");
                }
                other => panic!("{attempt:?}: {other:?}"),
            }
        }
        let huge = secret(&"a".repeat(64 * 1024));
        for attempt in [
            login("oidc").access_token(huge.clone()),
            login("oidc").id_token(huge.clone()),
            // A truncated JWT and one in Latin-1 bytes read as text.
            login("oidc").id_token(secret(&op.get("id_token")[..40])),
            login("oidc").id_token(secret("eyJhbGciOiJQUzI1NiJ9.\u{e9}\u{e8}.x")),
        ] {
            let outcome = s.identity.oauth_login(&providers, &attempt, &client).await;
            assert!(
                matches!(outcome, Err(IdentityError::ExternalLoginFailed)),
                "{attempt:?}: {outcome:?}"
            );
        }
        assert_eq!(fetcher.requests.load(Ordering::SeqCst), before);

        // A disabled account cannot log in through its provider either.
        db.store.users().set_active(&user.id, false).await.unwrap();
        let outcome = s
            .identity
            .oauth_login(&providers, &login("oidc").id_token(token), &client)
            .await;
        assert!(matches!(outcome, Err(IdentityError::ExternalLoginFailed)));
        assert_eq!(last_reason(&s.audit), "account disabled");
        db.finish().await;
    }
}

/// A local account with the provider's verified email is not taken over by a first OAuth
/// login; its owner links the provider account, which then logs in there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_email_is_linked_by_its_owner_only() {
    let Some(op) = OpenIdProvider::shared() else {
        return;
    };
    let fetcher = Arc::new(Counting {
        inner: HyperFetcher::new().unwrap(),
        requests: AtomicUsize::new(0),
    });
    let (providers, _) = providers(op, fetcher).await;
    let client = Client::new(None, None);
    let db = common::sqlite_memory().await;
    let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
    let owner = s
        .identity
        .register(
            Registration::new(
                "alice-local",
                "Alice@Example.test",
                secret("securepassword123"),
            ),
            &client,
        )
        .await
        .unwrap();
    let with_id_token = OAuthLogin::new("oidc").id_token(secret(op.get("id_token")));
    let outcome = s
        .identity
        .oauth_login(&providers, &with_id_token, &client)
        .await;
    assert!(
        matches!(outcome, Err(IdentityError::Conflict)),
        "{outcome:?}"
    );
    assert!(last_reason(&s.audit).contains("its owner must link it"));
    assert_eq!(
        db.store.users().list(0, 10).await.unwrap().len(),
        1,
        "no second account"
    );

    let tokens = s
        .identity
        .login("alice-local", &secret("securepassword123"), &client)
        .await
        .unwrap();
    let me = principal(&s.verifier, &tokens.access_token).await;
    let link = s
        .identity
        .link_external(&me, &providers, &with_id_token, &client)
        .await
        .unwrap();
    assert_eq!(link.user_id, owner.id);
    // Linking again is a no-op; the provider account now logs in as the owner.
    s.identity
        .link_external(&me, &providers, &with_id_token, &client)
        .await
        .unwrap();
    let by_provider = s
        .identity
        .oauth_login(&providers, &with_id_token, &client)
        .await
        .unwrap();
    assert_eq!(by_provider.user_id, owner.id);
    db.finish().await;
}
