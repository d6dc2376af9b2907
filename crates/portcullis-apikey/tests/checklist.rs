//! Every item of `SECURITY-CHECKLIST.md` §5a ("API keys (hashed at rest)") as a test, plus
//! the AmateRS `api_keys.json` compatibility.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::collections::HashSet;
use std::sync::Arc;

use http::StatusCode;
use portcullis_apikey::*;
use portcullis_core::{
    ApiKeySource, AuthErrorKind, AuthOutcome, Authenticator, Credential, CredentialExtractor,
    Credentials, ManualClock, Principal, SecretString,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const PEPPER: &[u8] = b"test pepper: 32 bytes or more, from a secret store";
const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn pepper() -> Pepper {
    Pepper::new(PEPPER).unwrap()
}

fn live() -> KeyPrefix {
    KeyPrefix::new("pc_live_").unwrap()
}

fn test_prefix() -> KeyPrefix {
    KeyPrefix::new("pc_test_").unwrap()
}

struct Setup {
    store: Arc<MemoryStore>,
    auth: ApiKeyAuthenticator,
    clock: Arc<ManualClock>,
}

fn setup(records: Vec<KeyRecord>, prefix: KeyPrefix) -> Setup {
    let store = Arc::new(MemoryStore::new(records).unwrap());
    let clock = Arc::new(ManualClock::new(NOW));
    let auth = ApiKeyAuthenticator::builder(store.clone(), pepper())
        .prefix(prefix)
        .clock(clock.clone())
        .build();
    Setup { store, auth, clock }
}

fn key_credentials(key: &str) -> Credentials {
    Credentials::from_list(vec![Credential::ApiKey {
        key: SecretString::new(key),
        source: ApiKeySource::AuthorizationScheme,
    }])
}

fn run(auth: &ApiKeyAuthenticator, key: &str) -> AuthOutcome {
    block_on(auth.authenticate(&key_credentials(key)))
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn principal(outcome: AuthOutcome) -> Principal {
    match outcome {
        AuthOutcome::Authenticated(p) => p,
        other => panic!("expected a principal, got {other:?}"),
    }
}

fn rejected(outcome: AuthOutcome) -> portcullis_core::AuthError {
    match outcome {
        AuthOutcome::Rejected(e) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn issue(owner: &str) -> (GeneratedKey, KeyRecord) {
    issue_key(&live(), &pepper(), owner).unwrap()
}

// --- Generation ------------------------------------------------------------------------

#[test]
fn generation_keys_are_unique_and_carry_256_bit_secrets() {
    let mut seen = HashSet::new();
    let prefix = live();
    for _ in 0..100_000 {
        let key = generate_key(&prefix).unwrap();
        assert!(seen.insert(key.key.expose().to_owned()));
    }
    // 43 base62 characters hold log2(62^43) ≈ 256.03 bits, encoding 32 random bytes.
    assert_eq!(SECRET_BYTES * 8, 256);
    assert!((SECRET_LEN as f64) * 62f64.log2() >= 256.0);
    let one = generate_key(&prefix).unwrap();
    let parsed = parse_key(one.key.expose(), &[prefix]).unwrap();
    assert_eq!(parsed.secret.len(), SECRET_LEN);
}

// --- Format and prefix -----------------------------------------------------------------

#[test]
fn format_bad_checksum_is_rejected_before_any_lookup() {
    let (key, record) = issue("bot");
    let s = setup(vec![record], live());
    let mut bad = key.key.expose().to_owned();
    let last = bad.pop().unwrap();
    bad.push(if last == 'a' { 'b' } else { 'a' });
    let e = rejected(run(&s.auth, &bad));
    assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.store.lookups(), 0);
    assert_eq!(s.auth.stats().lookups(), 0);
    assert_eq!(s.auth.stats().rejected_offline(), 1);
}

#[test]
fn format_live_key_rejected_by_test_verifier_and_vice_versa() {
    let (live_key, live_record) = issue("bot");
    let (test_key, test_record) = issue_key(&test_prefix(), &pepper(), "bot").unwrap();
    let test_deployment = setup(
        vec![live_record.clone(), test_record.clone()],
        test_prefix(),
    );
    let live_deployment = setup(vec![live_record, test_record], live());
    assert!(matches!(
        run(&test_deployment.auth, live_key.key.expose()),
        AuthOutcome::Rejected(_)
    ));
    assert!(matches!(
        run(&live_deployment.auth, test_key.key.expose()),
        AuthOutcome::Rejected(_)
    ));
    assert_eq!(
        test_deployment.store.lookups() + live_deployment.store.lookups(),
        0
    );
    principal(run(&test_deployment.auth, test_key.key.expose()));
    principal(run(&live_deployment.auth, live_key.key.expose()));
}

#[test]
fn format_unknown_prefix_is_rejected() {
    let s = setup(vec![], live());
    let e = rejected(run(&s.auth, "gh_live_AAAAAAAAAAAA_xyz"));
    assert!(e.to_string().contains("no accepted prefix"), "{e}");
    assert_eq!(s.store.lookups(), 0);
}

// --- Lookup by id ----------------------------------------------------------------------

#[test]
fn lookup_is_by_id_and_never_loads_all_keys() {
    let mut records: Vec<KeyRecord> = (0..1000).map(|i| issue(&format!("owner{i}")).1).collect();
    let (key, record) = issue("target");
    records.push(record);
    let s = setup(records, live());
    principal(run(&s.auth, key.key.expose()));
    assert_eq!(s.store.lookups(), 1, "one lookup by id, no scan");
}

// --- Hash at rest ----------------------------------------------------------------------

#[test]
fn hash_at_rest_a_dump_never_contains_the_plaintext_secret() {
    let (key, record) = issue("bot");
    let s = setup(vec![record], live());
    let parsed = parse_key(key.key.expose(), &[live()]).unwrap();
    let records: Vec<KeyRecord> = s.store.records().iter().map(|r| (**r).clone()).collect();
    let dump = serde_json::to_string(&records).unwrap();
    assert!(!dump.contains(key.key.expose()));
    assert!(!dump.contains(parsed.secret.expose()));
    assert!(dump.contains(key.id.as_str()));
}

#[test]
fn hash_at_rest_changing_the_pepper_invalidates_all_keys() {
    let (key, record) = issue("bot");
    let store = Arc::new(MemoryStore::new(vec![record]).unwrap());
    let other = Pepper::new(b"another pepper, also 32 bytes long or more").unwrap();
    let auth = ApiKeyAuthenticator::builder(store, other)
        .prefix(live())
        .build();
    let e = rejected(block_on(
        auth.authenticate(&key_credentials(key.key.expose())),
    ));
    assert!(e.to_string().contains("wrong api key secret"), "{e}");
    assert!(Pepper::new(&[0u8; 31]).is_err());
}

// --- Timing-safe compare ---------------------------------------------------------------

#[test]
fn timing_unknown_id_does_the_same_work_as_a_wrong_secret() {
    let (key, record) = issue("bot");
    let s = setup(vec![record], live());
    // A well-formed key with an unknown id.
    let (stranger, _) = issue("stranger");
    rejected(run(&s.auth, stranger.key.expose()));
    let after_unknown = (s.auth.stats().lookups(), s.auth.stats().comparisons());
    // The right id with a wrong secret: forge a well-formed key for the same id.
    let parsed = parse_key(key.key.expose(), &[live()]).unwrap();
    let forged = forge(&parsed.id, "0".repeat(SECRET_LEN).as_str());
    rejected(run(&s.auth, &forged));
    let after_wrong = (s.auth.stats().lookups(), s.auth.stats().comparisons());
    assert_eq!(after_unknown, (1, 1));
    assert_eq!(after_wrong, (2, 2));
}

/// A well-formed key (valid checksum) for `id` with the given secret.
fn forge(id: &KeyId, secret: &str) -> String {
    // The checksum is public (CRC-32 in base62): anyone can make a well-formed key.
    let body = format!("pc_live_{}_{secret}", id.as_str());
    let crc = crc32(body.as_bytes()).to_be_bytes();
    format!("{body}{}", base62_6(&crc))
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn base62_6(bytes: &[u8; 4]) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u32::from_be_bytes(*bytes);
    let mut out = vec![b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = A[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).unwrap()
}

// --- Same error everywhere -------------------------------------------------------------

#[test]
fn same_client_error_for_unknown_wrong_revoked_and_expired() {
    let (good, good_record) = issue("good");
    let (revoked, mut revoked_record) = issue("revoked");
    revoked_record.revoked_at = Some(NOW - Duration::hours(1));
    let (expired, mut expired_record) = issue("expired");
    expired_record.expires_at = Some(NOW - Duration::seconds(1));
    let (unknown, _) = issue("unknown");
    let s = setup(vec![good_record, revoked_record, expired_record], live());
    let good_id = parse_key(good.key.expose(), &[live()]).unwrap().id;
    let wrong = forge(&good_id, &"1".repeat(SECRET_LEN));

    let errors: Vec<_> = [
        unknown.key.expose(),
        wrong.as_str(),
        revoked.key.expose(),
        expired.key.expose(),
    ]
    .iter()
    .map(|k| rejected(run(&s.auth, k)))
    .collect();
    for e in &errors {
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.client_message(), "Not authenticated");
        assert_eq!(e.bearer_error(), errors[0].bearer_error());
    }
    // The audit reasons differ.
    let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(reasons[0].contains("unknown api key id"));
    assert!(reasons[1].contains("wrong api key secret"));
    assert!(matches!(errors[2].kind(), AuthErrorKind::Revoked));
    assert!(matches!(errors[3].kind(), AuthErrorKind::Expired));
}

// --- Rotation --------------------------------------------------------------------------

#[test]
fn rotation_two_active_keys_revocation_expiry_and_identity() {
    let (old, mut old_record) = issue("svc");
    old_record.scopes = vec!["read".into()];
    old_record.roles = vec!["reader".into()];
    let (new, mut new_record) = issue("svc");
    new_record.scopes = vec!["read".into()];
    new_record.roles = vec!["reader".into()];
    new_record.expires_at = Some(NOW + Duration::days(90));
    let s = setup(vec![old_record, new_record], live());

    let a = principal(run(&s.auth, old.key.expose()));
    let b = principal(run(&s.auth, new.key.expose()));
    assert_eq!(
        (a.id(), a.scopes(), a.roles()),
        (b.id(), b.scopes(), b.roles())
    );

    // Revoking the old key takes effect immediately.
    assert!(s.store.revoke(old.id.as_str(), NOW).unwrap());
    assert!(matches!(
        rejected(run(&s.auth, old.key.expose())).kind(),
        AuthErrorKind::Revoked
    ));
    principal(run(&s.auth, new.key.expose()));

    // expires_at is enforced ("on or after").
    s.clock.set(NOW + Duration::days(90));
    assert!(matches!(
        rejected(run(&s.auth, new.key.expose())).kind(),
        AuthErrorKind::Expired
    ));
}

#[test]
fn rotation_last_used_at_is_recorded_in_batches() {
    let (key, record) = issue("svc");
    let s = setup(vec![record], live());
    principal(run(&s.auth, key.key.expose()));
    // Not written on the request path...
    assert_eq!(s.store.records()[0].last_used_at, None);
    s.clock.advance(Duration::minutes(5));
    principal(run(&s.auth, key.key.expose()));
    // ...but on flush, once per key, with the latest time.
    assert_eq!(block_on(s.auth.flush_usage()).unwrap(), 1);
    assert_eq!(
        s.store.records()[0].last_used_at,
        Some(NOW + Duration::minutes(5))
    );
    assert_eq!(block_on(s.auth.flush_usage()).unwrap(), 0);
}

// --- Scope and tenant binding ----------------------------------------------------------

#[test]
fn scope_and_tenant_reach_the_principal() {
    let (key, mut record) = issue("svc");
    record.tenant = Some("acme".into());
    record.scopes = vec!["read".into()];
    let s = setup(vec![record], live());
    let p = principal(run(&s.auth, key.key.expose()));
    assert_eq!(p.tenant(), Some("acme"));
    assert!(p.has_scope("read"));
    assert!(!p.has_scope("write"));
    assert_eq!(p.auth_method(), portcullis_core::AuthMethod::ApiKey);
    assert_eq!(p.kind(), portcullis_core::PrincipalKind::ApiKey);
    // The policy engine enforces tenant and scope; the RBAC crate's tenant condition test
    // covers "a key for tenant A cannot access tenant B".
}

// --- Input hygiene ---------------------------------------------------------------------

#[test]
fn hygiene_malformed_keys_are_rejected_without_lookup() {
    let (key, record) = issue("svc");
    let s = setup(vec![record], live());
    let k = key.key.expose();
    let upper = k.to_uppercase();
    let cases = [
        String::new(),
        format!("{k} "),
        format!("{k}\n"),
        format!(" {k}"),
        format!("{k}\0"),
        k.replacen('c', "\u{441}", 1), // Cyrillic es in the prefix: a Unicode confusable
        upper,                         // case-changed
        "x".repeat(10_000),
        format!("{k}{k}"),
    ];
    assert!(
        cases[5].contains('\u{441}'),
        "the confusable case must differ from the key"
    );
    for case in &cases {
        let outcome = run(&s.auth, case);
        assert!(matches!(outcome, AuthOutcome::Rejected(_)), "{case:?}");
    }
    assert_eq!(s.store.lookups(), 0, "no malformed key reached the store");
}

// --- Transport and logging -------------------------------------------------------------

/// Sends a request to `uri` with `headers` through the credential extractor and `auth`.
fn through_http(auth: &ApiKeyAuthenticator, uri: &str, headers: &[(&str, String)]) -> AuthOutcome {
    let mut builder = http::Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let credentials = CredentialExtractor::new()
        .extract(&builder.body(()).unwrap().into_parts().0)
        .unwrap();
    block_on(auth.authenticate(&credentials))
}

#[test]
fn transport_key_in_the_url_is_ignored() {
    let (key, record) = issue("svc");
    let s = setup(vec![record], live());
    let uri = format!("/collections/a?api_key={}", key.key.expose());
    assert!(matches!(
        through_http(&s.auth, &uri, &[]),
        AuthOutcome::NotApplicable
    ));
}

#[test]
fn transport_bearer_with_our_prefix_and_header_name_are_recognised() {
    let (key, record) = issue("svc");
    let s = setup(vec![record], live());
    for header in [
        ("x-api-key", key.key.expose().to_owned()),
        ("authorization", format!("ApiKey {}", key.key.expose())),
        ("authorization", format!("Bearer {}", key.key.expose())),
    ] {
        principal(through_http(&s.auth, "/", &[header]));
    }
    // A JWT bearer is not ours.
    let jwt = ("authorization", "Bearer eyJ.eyJ.sig".to_owned());
    assert!(matches!(
        through_http(&s.auth, "/", &[jwt]),
        AuthOutcome::NotApplicable
    ));
}

#[test]
fn logging_errors_and_debug_output_never_contain_the_secret() {
    let (key, record) = issue("svc");
    let s = setup(vec![record], live());
    let parsed = parse_key(key.key.expose(), &[live()]).unwrap();
    let secret = parsed.secret.expose().to_owned();
    let wrong = forge(&parsed.id, &"2".repeat(SECRET_LEN));
    let mut printed = String::new();
    for k in [key.key.expose(), wrong.as_str()] {
        printed.push_str(&format!("{:?}", run(&s.auth, k)));
    }
    printed.push_str(&format!(
        "{key:?} {parsed:?} {:?} {:?}",
        s.auth,
        s.store.records()
    ));
    assert!(!printed.contains(&secret), "{printed}");
    assert!(!printed.contains(key.key.expose()));
    // The id, which is public, may appear.
    assert!(printed.contains(key.id.as_str()));
}

// --- Throttling ------------------------------------------------------------------------

#[test]
fn throttling_after_the_threshold_gives_429_and_resets_after_the_window() {
    let (key, record) = issue("svc");
    let store = Arc::new(MemoryStore::new(vec![record]).unwrap());
    let clock = Arc::new(ManualClock::new(NOW));
    let auth = ApiKeyAuthenticator::builder(store, pepper())
        .prefix(live())
        .clock(clock.clone())
        .failure_limit(3, Duration::minutes(1))
        .build();
    let id = parse_key(key.key.expose(), &[live()]).unwrap().id;
    let wrong = forge(&id, &"3".repeat(SECRET_LEN));
    for _ in 0..3 {
        assert_eq!(
            rejected(run(&auth, &wrong)).status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right key is refused while the id is throttled.
    assert_eq!(
        rejected(run(&auth, key.key.expose())).status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(Duration::minutes(1));
    principal(run(&auth, key.key.expose()));
}

// --- AmateRS api_keys.json -------------------------------------------------------------

#[test]
fn amaters_key_file_works_as_is() {
    let dir = std::env::temp_dir().join(format!("portcullis-apikey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api_keys.json");
    let file = format!(
        r#"[
{{
"id": "key-001",
"name": "Service Account Key",
"key_hash": "{}",
"user_id": "service-account-1",
"roles": ["admin"],
"attributes": {{
"description": "Key for automated deployments"
}}
}}
]"#,
        amaters_key_hash("amaters-demo-key-1")
    );
    std::fs::write(&path, file).unwrap();
    let store = Arc::new(JsonFileStore::open(&path, FileOptions::default()).unwrap());
    let auth = ApiKeyAuthenticator::builder(store.clone(), pepper())
        .prefix(live())
        .accept_amaters_keys(true)
        .build();
    let p = principal(run(&auth, "amaters-demo-key-1"));
    assert_eq!(p.id(), "service-account-1");
    assert_eq!(p.roles(), ["admin"]);
    assert_eq!(p.attribute("api_key_id").unwrap(), "key-001");
    assert_eq!(
        p.attribute("description").unwrap(),
        "Key for automated deployments"
    );
    assert!(matches!(
        run(&auth, "amaters-demo-key-2"),
        AuthOutcome::Rejected(_)
    ));

    // Reload without a restart: the key is replaced.
    std::fs::write(
        &path,
        format!(
            r#"[{{"id": "key-002", "key_hash": "{}", "user_id": "svc-2", "roles": []}}]"#,
            amaters_key_hash("amaters-demo-key-2")
        ),
    )
    .unwrap();
    assert_eq!(store.reload().unwrap(), 1);
    assert!(matches!(
        run(&auth, "amaters-demo-key-1"),
        AuthOutcome::Rejected(_)
    ));
    assert_eq!(principal(run(&auth, "amaters-demo-key-2")).id(), "svc-2");

    // A broken file leaves the keys in force.
    std::fs::write(&path, "[{ not json").unwrap();
    assert!(store.reload().is_err());
    assert_eq!(principal(run(&auth, "amaters-demo-key-2")).id(), "svc-2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn amaters_hash_keys_semantics_and_expiry_in_attributes() {
    let plaintext = r#"[{"id": "k", "key": "plain-key", "user_id": "u"}]"#;
    assert!(parse_key_file(plaintext, FileOptions::default()).is_err());
    let records = parse_key_file(plaintext, FileOptions::default().hash_keys(false)).unwrap();
    assert_eq!(
        records[0].verifier,
        Verifier::Sha256(KeyHash::sha256("plain-key"))
    );
    assert!(
        !serde_json::to_string(&records)
            .unwrap()
            .contains("plain-key")
    );

    let with_expiry = format!(
        r#"[{{"id": "k", "key_hash": "{}", "user_id": "u", "attributes": {{"expires_at": "2026-01-01T00:00:00Z"}}}}]"#,
        amaters_key_hash("k1")
    );
    let records = parse_key_file(&with_expiry, FileOptions::default()).unwrap();
    assert_eq!(records[0].expires_at, Some(datetime!(2026-01-01 0:00 UTC)));
    let bad = r#"[{"id": "k", "key_hash": "not base64!", "user_id": "u"}]"#;
    assert!(parse_key_file(bad, FileOptions::default()).is_err());
    let duplicate = format!(
        r#"[{{"id": "a", "key_hash": "{h}", "user_id": "u"}}, {{"id": "b", "key_hash": "{h}", "user_id": "u"}}]"#,
        h = amaters_key_hash("same")
    );
    assert!(MemoryStore::new(parse_key_file(&duplicate, FileOptions::default()).unwrap()).is_err());
}

/// The AmateRS document's hash recipe, run with the real `openssl` (third-party check).
#[test]
fn amaters_key_hash_matches_openssl() {
    if !portcullis_testkit::peer::program("openssl", &["version"]) {
        return;
    }
    let key = "amaters-interop-key";
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s '{key}' | openssl dgst -sha256 -binary | base64"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = String::from_utf8(out.stdout).unwrap();
    assert_eq!(amaters_key_hash(key), expected.trim());
}

/// A pepper is only needed for Portcullis-format keys: AmateRS keys (SHA-256 of the whole
/// key) work without one, and a Portcullis key presented to such an authenticator is refused.
#[test]
fn amaters_keys_need_no_pepper() {
    let dir =
        std::env::temp_dir().join(format!("portcullis-apikey-nopepper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("api_keys.json"),
        format!(
            r#"[{{"id": "key-001", "key_hash": "{}", "user_id": "svc", "roles": ["reader"]}}]"#,
            amaters_key_hash("plain-amaters-key")
        ),
    )
    .unwrap();
    let config: AmatersApiKeyConfig = toml::from_str("keys_file = \"api_keys.json\"\n").unwrap();
    let auth = config.authenticator(&dir, None).unwrap();
    assert_eq!(principal(run(&auth, "plain-amaters-key")).id(), "svc");
    // Prefixes without a pepper: a configuration error, not silently refused keys.
    let with_prefix: AmatersApiKeyConfig =
        toml::from_str("keys_file = \"api_keys.json\"\nprefixes = [\"pc_live_\"]\n").unwrap();
    assert!(with_prefix.authenticator(&dir, None).is_err());
    assert!(with_prefix.authenticator(&dir, Some(pepper())).is_ok());
    // A Portcullis key shown to the pepper-less builder with its prefix is refused.
    let store = Arc::new(MemoryStore::new(Vec::new()).unwrap());
    let no_pepper = ApiKeyAuthenticator::amaters(store).prefix(live()).build();
    let (key, _) = issue_key(&live(), &pepper(), "svc").unwrap();
    assert!(matches!(
        run(&no_pepper, key.key.expose()),
        AuthOutcome::Rejected(_)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
