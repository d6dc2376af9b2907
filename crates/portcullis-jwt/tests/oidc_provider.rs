//! Tokens from a real OpenID Provider: panva's `oidc-provider` (a certified implementation)
//! runs on 127.0.0.1 (`testkit/oidc-provider/provider.mjs`, started by the testkit), publishes its keys the way providers do (the RSA key without `alg`) and issues RFC
//! 9068 access tokens in RS256, PS256, ES256 and EdDSA, and an ID token from the authorization
//! code flow. Skipped with a printed reason when Node.js or the npm registry is missing, except
//! under CI (`CI=true`), where it must run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::sync::Arc;

use portcullis_jwt::{
    Algorithm, HyperFetcher, IssuerConfig, JwtAuthenticator, JwtError, TokenProfile, presets,
};
use portcullis_testkit::oidc::OpenIdProvider;
use serde_json::Value;

type Peer = OpenIdProvider;

fn peer() -> Option<&'static Peer> {
    OpenIdProvider::shared()
}

fn options() -> presets::ProviderOptions {
    presets::ProviderOptions::new(Arc::new(HyperFetcher::new().unwrap()))
}

fn issuer(peer: &Peer) -> &str {
    peer.issuer()
}

fn verifier(config: IssuerConfig) -> JwtAuthenticator {
    JwtAuthenticator::builder().issuer(config).build().unwrap()
}

/// Outside testing: PS256 tokens from a real provider never verified, because an RSA JWK
/// without `alg` was bound to RS256. Every algorithm the provider signs with now verifies,
/// found by discovery, with the default profile for an OpenID provider (RFC 9068).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_in_every_algorithm_verify() {
    let Some(peer) = peer() else { return };
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let case = &peer.tokens()["access_tokens"][alg];
        let audience = case["audience"].as_str().unwrap();
        let verifier =
            verifier(presets::discovered(issuer(peer), &[audience], &options()).unwrap());
        let principal = verifier
            .verify(case["token"].as_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(principal.id(), "portcullis-rp", "{alg}");
        assert_eq!(principal.scopes(), ["api:read"], "{alg}");
    }
}

/// The algorithms come from the discovery document, and a configured list narrows them: one
/// RSA algorithm binds the provider's alg-less RSA key to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allowed_algorithms_bind_keys_published_without_alg() {
    let Some(peer) = peer() else { return };
    let case = &peer.tokens()["access_tokens"]["PS256"];
    let audience = case["audience"].as_str().unwrap();
    let strict = verifier(
        presets::discovered(issuer(peer), &[audience], &options())
            .unwrap()
            .algorithms([Algorithm::RS256, Algorithm::ES256]),
    );
    assert_eq!(
        strict
            .verify(case["token"].as_str().unwrap())
            .await
            .unwrap_err(),
        JwtError::AlgorithmNotAllowed
    );
    let rs = &peer.tokens()["access_tokens"]["RS256"];
    let strict = verifier(
        presets::discovered(
            issuer(peer),
            &[rs["audience"].as_str().unwrap()],
            &options(),
        )
        .unwrap()
        .algorithms([Algorithm::RS256]),
    );
    assert!(strict.verify(rs["token"].as_str().unwrap()).await.is_ok());
}

/// Outside testing: the OIDC preset accepted an ID token whose `aud` equals the configured
/// audience as a bearer token. An access-token resource server now refuses ID tokens, an
/// ID-token endpoint refuses access tokens, and the permissive profile (what the preset did
/// before) would have taken both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_not_an_access_token() {
    let Some(peer) = peer() else { return };
    let client_id = peer.tokens()["client_id"].as_str().unwrap();
    let id_token = peer.tokens()["id_token"].as_str().unwrap();
    let access = &peer.tokens()["access_tokens"]["PS256"];
    let access_token = access["token"].as_str().unwrap();
    let audiences = [client_id, access["audience"].as_str().unwrap()];

    // A resource server configured with the client id as an audience still refuses the ID
    // token: it is typed JWT, not at+jwt.
    let resource_server =
        verifier(presets::discovered(issuer(peer), &audiences, &options()).unwrap());
    assert_eq!(
        resource_server.verify(id_token).await.unwrap_err(),
        JwtError::WrongType
    );
    assert!(resource_server.verify(access_token).await.is_ok());

    // The seeds' `/auth/oauth/login` takes ID tokens.
    let login = verifier(
        presets::discovered(issuer(peer), &audiences, &options())
            .unwrap()
            .profile(TokenProfile::IdToken),
    );
    let principal = login.verify(id_token).await.unwrap();
    assert_eq!(principal.id(), "alice");
    assert_eq!(
        principal.attribute("nonce").and_then(Value::as_str),
        peer.tokens()["nonce"].as_str()
    );
    assert_eq!(
        login.verify(access_token).await.unwrap_err(),
        JwtError::WrongType
    );

    // The permissive profile cannot tell them apart; it is for issuers you run yourself.
    let permissive = verifier(
        presets::discovered(issuer(peer), &audiences, &options())
            .unwrap()
            .profile(TokenProfile::Jwt),
    );
    assert!(permissive.verify(id_token).await.is_ok());
    assert!(permissive.verify(access_token).await.is_ok());
}
