//! Property tests: credential extraction never panics and never leaks what it was given.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use http::{HeaderValue, Request};
use portcullis_core::{
    Credential, CredentialError, CredentialExtractor, Credentials, SecretString,
};
use proptest::prelude::*;

fn run(
    headers: &[(&'static str, Vec<u8>)],
    extractor: &CredentialExtractor,
) -> Option<Result<Credentials, CredentialError>> {
    let mut builder = Request::builder().uri("/x?api_key=leak");
    for (name, value) in headers {
        // Values `http` itself refuses can never reach the extractor.
        let value = HeaderValue::from_bytes(value).ok()?;
        builder = builder.header(*name, value);
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some(extractor.extract(&parts))
}

fn header_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("authorization"),
        Just("x-api-key"),
        Just("cookie"),
        Just("x-other"),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Arbitrary bytes.
        proptest::collection::vec(any::<u8>(), 0..300),
        // Scheme-shaped values.
        (
            prop_oneof![
                Just("Bearer"),
                Just("basic"),
                Just("ApiKey"),
                Just("Digest"),
                Just("")
            ],
            "[ -~]{0,80}"
        )
            .prop_map(|(s, rest)| format!("{s} {rest}").into_bytes()),
        // Cookie-shaped values.
        "([a-z]{1,4}=[ -~]{0,10}; ){0,5}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn does_not_panic(headers in proptest::collection::vec((header_name(), header_value()), 0..6)) {
        let plain = CredentialExtractor::new();
        let with_cookie = CredentialExtractor::new().session_cookie("sid").unwrap()
            .max_credential_len(64).unwrap();
        let _ = run(&headers, &plain);
        let _ = run(&headers, &with_cookie);
    }

    #[test]
    fn errors_do_not_echo_input(secret in "[A-Za-z0-9]{24}") {
        let planted = format!("Bearer {secret}\"");
        if let Some(Err(error)) = run(&[("authorization", planted.into_bytes())], &CredentialExtractor::new()) {
            let printed = format!("{error} {error:?}");
            prop_assert!(!printed.contains(&secret));
        }
    }

    #[test]
    fn valid_bearer_tokens_round_trip(token in "[A-Za-z0-9._~+/-]{1,200}={0,2}") {
        let value = format!("Bearer {token}");
        let credentials = run(&[("authorization", value.into_bytes())], &CredentialExtractor::new())
            .unwrap()
            .unwrap();
        prop_assert_eq!(credentials.bearer().unwrap().expose(), token.as_str());
        // Debug output of the credentials never contains the token (unless the token happens
        // to be a substring of the redacted rendering itself).
        let printed = format!("{credentials:?}");
        let redacted = format!("{:?}", Credentials::from_list(vec![Credential::Bearer(SecretString::new("x"))]));
        prop_assert!(!printed.contains(&token) || redacted.contains(&token));
    }

    #[test]
    fn basic_round_trips(user in "[a-zA-Z0-9@.]{1,20}", password in "[ -~]{0,40}") {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let credentials = run(&[("authorization", format!("Basic {encoded}").into_bytes())], &CredentialExtractor::new())
            .unwrap()
            .unwrap();
        let (u, p) = credentials.basic().unwrap();
        prop_assert_eq!(u, user.as_str());
        prop_assert_eq!(p.expose(), password.as_str());
    }
}
