//! What the identity tests share: an [`Identity`] on a store with the Aethera roles, an
//! in-memory audit sink, and a verifier of the access tokens it issues.

use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::MemorySink;
use portcullis_core::{
    AuthOutcome, Authenticator, Credential, Credentials, Principal, SecretString,
};
use portcullis_identity::{Argon2Params, Identity, IdentityConfig, PasswordPolicy, Passwords};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, SigningKey, TokenIssuer, VerificationKey,
};
use portcullis_rbac::{Builtins, PolicyDocument};
use portcullis_sqlx::{RbacStore, Store};

const SECRET: &[u8] = b"an-identity-test-secret-of-32-bytes!!";

pub(crate) struct Setup {
    pub(crate) identity: Identity,
    pub(crate) audit: Arc<MemorySink>,
    pub(crate) verifier: JwtAuthenticator,
    pub(crate) rbac: Arc<RbacStore>,
}

fn issuer() -> TokenIssuer {
    let key = SigningKey::hmac(None, Algorithm::HS256, SECRET).unwrap();
    TokenIssuer::new("https://identity.test", key)
        .audiences(["api"])
        .access_ttl(Duration::from_secs(30 * 60))
}

pub(crate) async fn setup(store: &Store, passwords: Passwords, config: IdentityConfig) -> Setup {
    let template = PolicyDocument {
        builtins: Builtins::Aethera,
        ..PolicyDocument::default()
    };
    let rbac = Arc::new(RbacStore::open(store, template).await.unwrap());
    let audit = Arc::new(MemorySink::new());
    let identity = Identity::new(
        store.clone(),
        rbac.clone(),
        issuer(),
        passwords,
        audit.clone(),
        config,
    );
    let verifier = JwtAuthenticator::builder()
        .issuer(
            IssuerConfig::new(
                "https://identity.test",
                VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap(),
            )
            .audiences(["api"]),
        )
        .build()
        .unwrap();
    Setup {
        identity,
        audit,
        verifier,
        rbac,
    }
}

pub(crate) fn passwords() -> Passwords {
    Passwords::new(Argon2Params::OWASP, PasswordPolicy::default()).unwrap()
}

pub(crate) fn secret(text: &str) -> SecretString {
    SecretString::new(text)
}

pub(crate) async fn principal(verifier: &JwtAuthenticator, token: &SecretString) -> Principal {
    let credential = Credentials::from_list(vec![Credential::Bearer(token.clone())]);
    match verifier.authenticate(&credential).await {
        AuthOutcome::Authenticated(principal) => principal,
        other => panic!("the issued access token does not verify: {other:?}"),
    }
}
