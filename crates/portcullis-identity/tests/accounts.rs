//! Accounts end to end on SQLite (memory and file) and PostgreSQL: register, login, refresh
//! rotation and reuse detection, logout and logout everywhere, throttling, no user
//! enumeration, rehash, refused stored hashes, the password policy, and refreshes across two
//! instances of one database.
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
use std::time::{Duration, Instant};

use portcullis_core::{AuditEventType, AuditResult, AuthMethod, ManualClock, PolicyEngine as _};
use portcullis_identity::{Client, IdentityConfig, IdentityError, Registration, require_fresh};
use portcullis_sqlx::NewUser;

use support::{passwords, principal, secret, setup};

fn john() -> Registration {
    Registration::new("johndoe", "john@example.com", secret("securepassword123"))
        .full_name("John Doe")
}

#[tokio::test]
async fn register_login_refresh_reuse_and_logout() {
    for db in common::all("identity_flow").await {
        let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
        let client = Client::new(Some([203, 0, 113, 9].into()), Some("curl/8".into()));
        let user = s.identity.register(john(), &client).await.unwrap();
        assert!(
            user.password_hash
                .as_deref()
                .unwrap()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert!(matches!(
            s.identity.register(john(), &client).await,
            Err(IdentityError::Conflict)
        ));
        let mut other_case = john();
        other_case.username = "johnny".into();
        other_case.email = "JOHN@example.com".into();
        assert!(matches!(
            s.identity.register(other_case, &client).await,
            Err(IdentityError::Conflict)
        ));

        let tokens = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        assert_eq!(tokens.expires_in, 1800, "30 minutes by default");
        assert_eq!(tokens.to_json()["token_type"], "bearer");
        assert!(!format!("{tokens:?}").contains(tokens.refresh_token.expose()));
        let me = principal(&s.verifier, &tokens.access_token).await;
        assert_eq!(me.id(), user.id);
        assert_eq!(
            me.roles(),
            ["viewer"],
            "registration gives the default role"
        );
        let engine = s.rbac.engine();
        assert!(
            engine
                .evaluate(&portcullis_core::AccessRequest::new(
                    &me,
                    "projects:read",
                    "projects"
                ))
                .is_allowed()
        );
        assert!(
            !engine
                .evaluate(&portcullis_core::AccessRequest::new(
                    &me,
                    "projects:create",
                    "projects"
                ))
                .is_allowed()
        );
        // By email, in any case, too.
        s.identity
            .login("John@Example.com", &secret("securepassword123"), &client)
            .await
            .unwrap();

        // A new role shows in the next access token, after a refresh.
        s.rbac
            .assign_role(&user.id, "analyst", "admin")
            .await
            .unwrap();
        let next = s
            .identity
            .refresh(&tokens.refresh_token, &client)
            .await
            .unwrap();
        assert_ne!(next.refresh_token.expose(), tokens.refresh_token.expose());
        let refreshed = principal(&s.verifier, &next.access_token).await;
        assert_eq!(refreshed.roles().len(), 2);
        assert_eq!(
            refreshed.attribute("auth_time"),
            me.attribute("auth_time"),
            "a refresh keeps the time of the login"
        );
        assert!(
            require_fresh(
                &refreshed,
                Duration::from_secs(600),
                time::OffsetDateTime::now_utc()
            )
            .is_ok()
        );

        // The spent token again: the family is revoked, the newest token with it.
        assert!(matches!(
            s.identity.refresh(&tokens.refresh_token, &client).await,
            Err(IdentityError::InvalidRefreshToken)
        ));
        assert!(matches!(
            s.identity.refresh(&next.refresh_token, &client).await,
            Err(IdentityError::InvalidRefreshToken)
        ));
        let events = s.audit.events();
        let violation = events
            .iter()
            .find(|e| e.event_type == AuditEventType::SecurityViolation)
            .expect("reuse is a security violation");
        assert_eq!(violation.principal.as_ref().unwrap().id, user.id);
        assert_eq!(violation.source_ip, client.ip);

        // Logout revokes the family of the token; another user's token is refused.
        let again = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        let me = principal(&s.verifier, &again.access_token).await;
        let mut jane = Registration::new("jane", "jane@example.com", secret("another-password"));
        jane.full_name = None;
        s.identity.register(jane, &client).await.unwrap();
        let janes = s
            .identity
            .login("jane", &secret("another-password"), &client)
            .await
            .unwrap();
        assert!(matches!(
            s.identity.logout(&me, &janes.refresh_token, &client).await,
            Err(IdentityError::InvalidRefreshToken)
        ));
        s.identity
            .refresh(&janes.refresh_token, &client)
            .await
            .expect("jane's login survives");
        s.identity
            .logout(&me, &again.refresh_token, &client)
            .await
            .unwrap();
        assert!(matches!(
            s.identity.refresh(&again.refresh_token, &client).await,
            Err(IdentityError::InvalidRefreshToken)
        ));

        // Logout everywhere ends every login of the user.
        let a = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        let b = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        // Three live logins: a, b, and the one by email above.
        assert_eq!(s.identity.logout_everywhere(&me, &client).await.unwrap(), 3);
        for pair in [a, b] {
            assert!(
                s.identity
                    .refresh(&pair.refresh_token, &client)
                    .await
                    .is_err()
            );
        }

        // Every step is in the audit trail.
        let actions: Vec<String> = s
            .audit
            .events()
            .iter()
            .filter_map(|e| e.action.clone())
            .collect();
        for action in [
            "REGISTER",
            "LOGIN",
            "REFRESH",
            "REFRESH_TOKEN_REUSE",
            "LOGOUT",
            "LOGOUT_ALL",
        ] {
            assert!(
                actions.iter().any(|a| a == action),
                "{action} in {actions:?}"
            );
        }
        assert!(
            s.audit.events().iter().all(|e| {
                let line = e.to_json_line().unwrap();
                !line.contains("securepassword123") && !line.contains(again.refresh_token.expose())
            }),
            "no password or token in the audit trail"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn unknown_wrong_disabled_and_locked_answer_alike_and_take_as_long() {
    let db = common::sqlite_memory().await;
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let store = db.store.clone().with_clock(clock.clone());
    let s = setup(&store, passwords(), IdentityConfig::default()).await;
    let client = Client::default();
    s.identity.register(john(), &client).await.unwrap();
    let mut disabled = Registration::new(
        "mallory",
        "mallory@example.com",
        secret("mallorys-password"),
    );
    disabled.full_name = None;
    let mallory = s.identity.register(disabled, &client).await.unwrap();
    store.users().set_active(&mallory.id, false).await.unwrap();

    let attempt = |login: &'static str, password: &'static str| {
        let identity = s.identity.clone();
        async move {
            let started = Instant::now();
            let outcome = identity
                .login(login, &secret(password), &Client::default())
                .await;
            (outcome, started.elapsed())
        }
    };
    let mut locked =
        Registration::new("locked", "locked@example.com", secret("the-right-password"));
    locked.full_name = None;
    s.identity.register(locked, &client).await.unwrap();
    for _ in 0..5 {
        assert!(attempt("locked", "wrong-password").await.0.is_err());
    }
    // Interleaved rounds, each case's fastest taken: whatever else the machine (or this test
    // binary) runs only adds time, so the minimum is the case's own cost.
    let cases = [
        ("nobody", "whatever-password"),
        ("johndoe", "wrong-password"),
        ("mallory", "mallorys-password"),
        // Locked out: even the right password is refused, after a (dummy) verification.
        ("locked", "the-right-password"),
    ];
    let mut samples = vec![Vec::new(); cases.len()];
    for _round in 0..6 {
        for (case, (login, password)) in cases.iter().enumerate() {
            let (outcome, took) = attempt(login, password).await;
            let error = outcome.unwrap_err();
            assert!(
                matches!(error, IdentityError::InvalidCredentials),
                "{login}: {error:?}"
            );
            assert_eq!(error.to_string(), "Incorrect username or password");
            samples[case].push(took);
        }
    }
    let times: Vec<Duration> = samples
        .into_iter()
        .map(|s| s.into_iter().min().unwrap())
        .collect();
    let slowest = times.iter().max().unwrap().as_secs_f64();
    let fastest = times.iter().min().unwrap().as_secs_f64();
    assert!(
        fastest > slowest / 3.0,
        "every refusal runs one argon2id verification: {times:?}"
    );
    let reasons: Vec<String> = s
        .audit
        .events()
        .iter()
        .filter(|e| e.action.as_deref() == Some("LOGIN"))
        .filter_map(|e| e.reason.clone())
        .collect();
    for reason in [
        "unknown user",
        "wrong password",
        "account disabled",
        "account locked out after repeated failures",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "the audit trail says `{reason}`: {reasons:?}"
        );
    }

    // The lockout ends on time, and the owner gets in.
    clock.advance(time::Duration::seconds(15 * 60 + 1));
    s.identity
        .login("locked", &secret("the-right-password"), &client)
        .await
        .expect("the lockout is over");
    db.finish().await;
}

#[tokio::test]
async fn a_client_address_is_throttled_with_429_semantics() {
    let db = common::sqlite_memory().await;
    let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
    let client = Client::new(Some([198, 51, 100, 4].into()), None);
    for n in 0..20 {
        let _ = s
            .identity
            .login(&format!("guess{n}"), &secret("password1"), &client)
            .await;
    }
    let started = Instant::now();
    let Err(IdentityError::Throttled { retry_after }) = s
        .identity
        .login("johndoe", &secret("password1"), &client)
        .await
    else {
        panic!("the 21st failure from one address is throttled");
    };
    assert!(
        started.elapsed() < Duration::from_millis(20),
        "no hash is spent on a throttled address"
    );
    assert!(
        retry_after > Duration::from_secs(14 * 60) && retry_after <= Duration::from_secs(15 * 60)
    );
    let other = Client::new(Some([198, 51, 100, 5].into()), None);
    assert!(matches!(
        s.identity
            .login("johndoe", &secret("password1"), &other)
            .await,
        Err(IdentityError::InvalidCredentials)
    ));
    db.finish().await;
}

#[tokio::test]
async fn weak_stored_hashes_are_upgraded_and_absurd_ones_refused() {
    let db = common::sqlite_memory().await;
    let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
    let users = db.store.users();
    // The PHC reference vector at m=256, t=2: valid, below the policy.
    let weak = users
        .create(NewUser::new("legacy").password_hash(
            "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        ))
        .await
        .unwrap();
    s.identity
        .login("legacy", &secret("password"), &Client::default())
        .await
        .unwrap();
    let upgraded = users.find_by_id(&weak.id).await.unwrap().unwrap();
    assert!(
        upgraded
            .password_hash
            .as_deref()
            .unwrap()
            .contains("$m=19456,t=2,p=1$"),
        "rehashed at the policy: {:?}",
        upgraded.password_hash
    );
    s.identity
        .login("legacy", &secret("password"), &Client::default())
        .await
        .unwrap();

    for (name, phc) in [
        (
            "huge",
            "$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ),
        (
            "slow",
            "$argon2id$v=19$m=65536,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ),
        (
            "bcrypt",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ),
        ("garbage", "\u{0}not-a-hash"),
    ] {
        users
            .create(NewUser::new(name).password_hash(phc))
            .await
            .unwrap();
        let started = Instant::now();
        assert!(matches!(
            s.identity
                .login(name, &secret("password"), &Client::default())
                .await,
            Err(IdentityError::InvalidCredentials)
        ));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: refused, not computed"
        );
    }
    let refused = s
        .audit
        .events()
        .iter()
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("stored password hash refused"))
        })
        .count();
    assert_eq!(refused, 4);
    db.finish().await;
}

#[tokio::test]
async fn the_password_policy_and_normalisation() {
    let db = common::sqlite_memory().await;
    let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
    let client = Client::default();
    for (password, why) in [
        ("short", "at least 8 characters"),
        ("       ", "at least 8 characters"),
        ("          ", "only spaces"),
    ] {
        let error = s
            .identity
            .register(
                Registration::new("someone", "someone@example.com", secret(password)),
                &client,
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains(why), "{password:?}: {error}");
    }
    let long = "p".repeat(1025);
    let error = s
        .identity
        .register(
            Registration::new("someone", "someone@example.com", secret(&long)),
            &client,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at most 1024 bytes"), "{error}");
    // 1024 bytes is allowed, and not truncated: one byte less does not log in.
    let exact = "q".repeat(1024);
    s.identity
        .register(
            Registration::new("longpass", "long@example.com", secret(&exact)),
            &client,
        )
        .await
        .unwrap();
    s.identity
        .login("longpass", &secret(&exact), &client)
        .await
        .unwrap();
    assert!(
        s.identity
            .login("longpass", &secret(&exact[..1023]), &client)
            .await
            .is_err()
    );
    assert!(
        s.identity
            .login("longpass", &secret(&format!("{exact}q")), &client)
            .await
            .is_err()
    );

    // Full-width letters are the same password after NFKC; a different accent is not.
    s.identity
        .register(
            Registration::new(
                "unicode",
                "unicode@example.com",
                secret("ｐａｓｓｗｏｒｄ１２３"),
            ),
            &client,
        )
        .await
        .unwrap();
    s.identity
        .login("unicode", &secret("password123"), &client)
        .await
        .unwrap();
    s.identity
        .register(
            Registration::new("accent", "accent@example.com", secret("caf\u{e9}-au-lait")),
            &client,
        )
        .await
        .unwrap();
    s.identity
        .login("accent", &secret("cafe\u{301}-au-lait"), &client)
        .await
        .expect("NFC and NFD forms are one password");
    assert!(
        s.identity
            .login("accent", &secret("cafe-au-lait"), &client)
            .await
            .is_err()
    );

    for (username, email) in [
        ("a b", "x@example.com"),
        ("ok_name", "not-an-email"),
        ("../etc", "y@example.com"),
    ] {
        assert!(matches!(
            s.identity
                .register(
                    Registration::new(username, email, secret("good-password")),
                    &client
                )
                .await,
            Err(IdentityError::Invalid(_))
        ));
    }
    db.finish().await;
}

#[tokio::test]
async fn a_burst_beyond_the_queue_is_refused_not_queued_forever() {
    let db = common::sqlite_memory().await;
    let bounded = passwords().concurrency(1, 2);
    let s = setup(&db.store, bounded, IdentityConfig::default()).await;
    let mut tasks = Vec::new();
    for n in 0..12 {
        let identity = s.identity.clone();
        tasks.push(tokio::spawn(async move {
            identity
                .login(
                    &format!("burst{n}"),
                    &secret("password1"),
                    &Client::default(),
                )
                .await
        }));
    }
    let mut busy = 0;
    for task in tasks {
        match task.await.unwrap() {
            Err(IdentityError::Unavailable(_)) => busy += 1,
            Err(IdentityError::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        busy >= 1,
        "one hashing at a time and two waiting: the rest are told to retry"
    );
    assert!(busy <= 9);
    db.finish().await;
}

#[tokio::test]
async fn refreshes_work_across_instances_and_reuse_is_caught_on_either() {
    for db in common::shared("identity_instances").await {
        let a = setup(&db.store, passwords(), IdentityConfig::default()).await;
        let other = db.second_instance().await;
        let b = setup(&other, passwords(), IdentityConfig::default()).await;
        let client = Client::default();
        a.identity.register(john(), &client).await.unwrap();
        let first = a
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        let second = b
            .identity
            .refresh(&first.refresh_token, &client)
            .await
            .unwrap();
        assert!(matches!(
            a.identity.refresh(&first.refresh_token, &client).await,
            Err(IdentityError::InvalidRefreshToken)
        ));
        assert!(
            b.identity
                .refresh(&second.refresh_token, &client)
                .await
                .is_err(),
            "{}",
            db.name
        );
        other.close().await;
        db.finish().await;
    }
}

#[tokio::test]
async fn a_disabled_or_deleted_account_cannot_refresh() {
    let db = common::sqlite_memory().await;
    let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
    let client = Client::default();
    let user = s.identity.register(john(), &client).await.unwrap();
    let tokens = s
        .identity
        .login("johndoe", &secret("securepassword123"), &client)
        .await
        .unwrap();
    db.store.users().set_active(&user.id, false).await.unwrap();
    assert!(matches!(
        s.identity.refresh(&tokens.refresh_token, &client).await,
        Err(IdentityError::InvalidRefreshToken)
    ));
    let last = s.audit.events().last().cloned().unwrap();
    assert_eq!(last.result, AuditResult::Failure);
    assert_eq!(last.auth_method, None);
    let _ = AuthMethod::Password;
    db.finish().await;
}

/// Recovery codes: ten shown once, stored hashed, each spent by its first use (in any case
/// and without separators too), a new set replacing the old, failures throttled and audited.
#[tokio::test]
async fn recovery_codes_are_shown_once_and_spent_once() {
    for db in common::all("identity_recovery").await {
        let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
        let client = Client::new(Some([192, 0, 2, 44].into()), None);
        s.identity.register(john(), &client).await.unwrap();
        let tokens = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        let me = principal(&s.verifier, &tokens.access_token).await;
        let codes = s.identity.new_recovery_codes(&me, &client).await.unwrap();
        assert_eq!(codes.len(), portcullis_identity::RECOVERY_CODES);
        let texts: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
        let mut unique = texts.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), texts.len(), "{}", db.name);
        assert!(
            texts
                .iter()
                .all(|c| c.len() == 19 && c.matches('-').count() == 3)
        );

        let first = codes[0].clone();
        assert_eq!(
            s.identity
                .use_recovery_code(me.id(), &first, &client)
                .await
                .unwrap(),
            9
        );
        assert!(
            matches!(
                s.identity.use_recovery_code(me.id(), &first, &client).await,
                Err(IdentityError::InvalidCredentials)
            ),
            "a spent code is refused"
        );
        let relaxed = secret(&codes[1].expose().replace('-', "").to_lowercase());
        assert_eq!(
            s.identity
                .use_recovery_code(me.id(), &relaxed, &client)
                .await
                .unwrap(),
            8
        );
        // Someone else's account does not take the code.
        assert!(
            s.identity
                .use_recovery_code("another-user", &codes[2], &client)
                .await
                .is_err()
        );

        // A new set replaces the old one.
        let again = s.identity.new_recovery_codes(&me, &client).await.unwrap();
        assert!(
            s.identity
                .use_recovery_code(me.id(), &codes[3], &client)
                .await
                .is_err()
        );
        assert_eq!(
            s.identity
                .use_recovery_code(me.id(), &again[0], &client)
                .await
                .unwrap(),
            9
        );

        // Guessing locks the account's codes: then even a right code is refused.
        for _ in 0..5 {
            let _ = s
                .identity
                .use_recovery_code(me.id(), &secret("AAAA-AAAA-AAAA-AAAA"), &client)
                .await;
        }
        assert!(
            s.identity
                .use_recovery_code(me.id(), &again[1], &client)
                .await
                .is_err()
        );
        let events = s.audit.events();
        assert!(
            events
                .iter()
                .any(|e| e.action.as_deref() == Some("RECOVERY_CODES_GENERATED"))
        );
        assert!(
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some("wrong or spent recovery code"))
        );
        assert!(events.iter().any(|e| {
            e.reason.as_deref() == Some("recovery codes locked out after repeated failures")
        }));
        db.finish().await;
    }
}

/// TOTP: enrolment seals the secret (bound to its user), the first code confirms, each code
/// is accepted once, a confirmed authenticator is not replaced, and a sealed secret moved to
/// another account's row does not open there.
#[tokio::test]
async fn totp_enrolment_confirmation_and_replay() {
    use portcullis_identity::{Totp, TotpAlgorithm};
    use portcullis_sqlx::{Encryptor, Location};

    for db in common::all("identity_totp").await {
        let s = setup(&db.store, passwords(), IdentityConfig::default()).await;
        let client = Client::new(None, None);
        let john_user = s.identity.register(john(), &client).await.unwrap();
        let tokens = s
            .identity
            .login("johndoe", &secret("securepassword123"), &client)
            .await
            .unwrap();
        let me = principal(&s.verifier, &tokens.access_token).await;
        assert!(
            matches!(
                s.identity.enrol_totp(&me, "Aethera", &client).await,
                Err(IdentityError::Unavailable(_))
            ),
            "no encryptor, no enrolment"
        );

        let encryptor =
            Arc::new(Encryptor::new([("k1", zeroize::Zeroizing::new(vec![5u8; 32]))]).unwrap());
        let identity = s.identity.clone().encryptor(Arc::clone(&encryptor));
        let enrolment = identity.enrol_totp(&me, "Aethera", &client).await.unwrap();
        assert!(
            enrolment
                .uri
                .expose()
                .starts_with("otpauth://totp/Aethera:john%40example.com?secret=")
        );
        let stored = db
            .store
            .totp_factors()
            .find(&john_user.id)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.sealed_secret.starts_with("pc1.k1."), "{}", db.name);
        assert!(!stored.sealed_secret.contains(enrolment.secret.expose()));
        assert_eq!(stored.confirmed_at, None);
        let secret_bytes = encryptor
            .decrypt(
                &stored.sealed_secret,
                Location::new("totp_factors", "secret", &john_user.id),
            )
            .unwrap();
        let totp = Totp::new(secret_bytes.to_vec(), TotpAlgorithm::Sha1, 6).unwrap();
        let now = || u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();

        let wrong = if totp.code_at(now()) == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert!(matches!(
            identity.verify_totp(&john_user.id, wrong, &client).await,
            Err(IdentityError::InvalidCredentials)
        ));
        let code = totp.code_at(now());
        identity
            .verify_totp(&john_user.id, &code, &client)
            .await
            .unwrap();
        let confirmed = db
            .store
            .totp_factors()
            .find(&john_user.id)
            .await
            .unwrap()
            .unwrap();
        assert!(confirmed.confirmed_at.is_some());
        assert!(
            matches!(
                identity.verify_totp(&john_user.id, &code, &client).await,
                Err(IdentityError::InvalidCredentials)
            ),
            "a code is accepted once"
        );
        assert!(
            matches!(
                identity.enrol_totp(&me, "Aethera", &client).await,
                Err(IdentityError::Conflict)
            ),
            "a confirmed authenticator is not replaced by enrolling again"
        );

        // Login now takes two steps; a wrong code spends the challenge.
        let password = secret("securepassword123");
        let challenge = |outcome: Result<_, IdentityError>| match outcome {
            Err(IdentityError::SecondFactorRequired { challenge }) => challenge,
            other => panic!("a second factor must be asked for: {other:?}"),
        };
        let first = challenge(identity.login("johndoe", &password, &client).await);
        assert!(matches!(
            identity
                .complete_login(&first, &secret(wrong), &client)
                .await,
            Err(IdentityError::InvalidCredentials)
        ));
        let next = totp.code_at(now() + 30);
        assert!(
            identity
                .complete_login(&first, &secret(&next), &client)
                .await
                .is_err(),
            "a challenge is answered once"
        );
        let second = challenge(identity.login("johndoe", &password, &client).await);
        let tokens = identity
            .complete_login(&second, &secret(&next), &client)
            .await
            .unwrap();
        let me_now = principal(&s.verifier, &tokens.access_token).await;
        assert_eq!(
            me_now.attribute("amr"),
            Some(&serde_json::json!(["pwd", "otp"]))
        );
        // A recovery code instead of the authenticator.
        let codes = identity.new_recovery_codes(&me_now, &client).await.unwrap();
        let third = challenge(identity.login("johndoe", &password, &client).await);
        let tokens = identity
            .complete_login(&third, &codes[0], &client)
            .await
            .unwrap();
        let me_now = principal(&s.verifier, &tokens.access_token).await;
        assert_eq!(
            me_now.attribute("amr"),
            Some(&serde_json::json!(["pwd", "recovery"]))
        );

        // John's sealed secret copied into Jane's row does not open there.
        let mut jane = john();
        jane.username = "jane".into();
        jane.email = "jane@example.com".into();
        let jane = identity.register(jane, &client).await.unwrap();
        db.store
            .totp_factors()
            .enrol(&jane.id, &stored.sealed_secret, "SHA1", 6)
            .await
            .unwrap();
        assert!(matches!(
            identity
                .verify_totp(&jane.id, &totp.code_at(now() + 30), &client)
                .await,
            Err(IdentityError::Unavailable(_))
        ));
        let reasons: Vec<String> = s
            .audit
            .events()
            .iter()
            .filter_map(|e| e.reason.clone())
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r == "wrong, reused or stale TOTP code"),
            "{reasons:?}"
        );
        db.finish().await;
    }
}
