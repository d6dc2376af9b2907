//! Parsing and authenticating never panic, whatever is presented.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::sync::Arc;

use portcullis_apikey::*;
use portcullis_core::{ApiKeySource, Authenticator, Credential, Credentials, SecretString};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parse_key_does_not_panic(key in "\\PC{0,120}", prefix_part in "[a-z_]{0,12}") {
        let prefixes = [KeyPrefix::new("pc_live_").unwrap(), KeyPrefix::new("pc_test_").unwrap()];
        let _ = parse_key(&key, &prefixes);
        let _ = parse_key(&format!("pc_live_{prefix_part}{key}"), &prefixes);
    }

    #[test]
    fn authenticate_does_not_panic(key in "\\PC{0,120}|pc_live_[A-Za-z0-9_]{0,70}") {
        let store = Arc::new(MemoryStore::default());
        let auth = ApiKeyAuthenticator::builder(store, Pepper::new(&[1u8; 32]).unwrap())
            .prefix(KeyPrefix::new("pc_live_").unwrap())
            .accept_amaters_keys(true)
            .build();
        let credentials = Credentials::from_list(vec![Credential::ApiKey {
            key: SecretString::new(key),
            source: ApiKeySource::AuthorizationScheme,
        }]);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = runtime.block_on(auth.authenticate(&credentials));
    }

    #[test]
    fn key_files_do_not_panic(text in "\\PC{0,200}") {
        let _ = parse_key_file(&text, FileOptions::default());
        let _ = KeyHash::from_base64(&text);
    }
}
