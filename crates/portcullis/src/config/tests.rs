use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn the_environment_wins_and_is_reported_as_the_origin() {
    let text = "audit_log_path = \"a.jsonl\"\n[auth.jwt]\nsecret = \"from-the-file-0123456789abcdef0123456789\"\nalgorithm = \"HS256\"\n";
    let config = Config::from_toml(text, ".")
        .unwrap()
        .with_env(env(&[
            ("JWT_SECRET_KEY", "from-the-environment-0123456789abcdef"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "30"),
            ("REFRESH_TOKEN_EXPIRE_DAYS", "14"),
        ]))
        .unwrap();
    let jwt = config.auth.jwt.as_ref().unwrap();
    assert_eq!(
        jwt.secret.as_ref().unwrap().expose(),
        "from-the-environment-0123456789abcdef"
    );
    assert_eq!(jwt.expiration_secs, 1800);
    assert_eq!(config.refresh_token_ttl, Duration::from_secs(14 * 86_400));
    assert_eq!(
        config.origin("auth.jwt.secret"),
        Origin::Environment("JWT_SECRET_KEY")
    );
    assert_eq!(
        config.origin("auth.jwt.algorithm"),
        Origin::File(Some(Location::new(4, 1)))
    );
    let shown = config.show();
    assert!(
        shown.contains("secret = \"[redacted]\"  # from $JWT_SECRET_KEY"),
        "{shown}"
    );
    assert!(!shown.contains("from-the-environment"), "{shown}");
}

#[test]
fn a_secret_from_the_environment_alone_makes_the_jwt_section() {
    let config = Config::from_toml("audit_log_path = \"a.jsonl\"\n", ".")
        .unwrap()
        .with_env(env(&[("JWT_SECRET_KEY", "x".repeat(40).as_str())]))
        .unwrap();
    let jwt = config.auth.jwt.as_ref().unwrap();
    assert!(jwt.enabled);
    assert_eq!(jwt.algorithm, "HS256");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
}

#[test]
fn invalid_variables_are_errors_with_their_name() {
    let error = Config::from_toml("", ".")
        .unwrap()
        .with_env(env(&[
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
            ("ENABLE_AUDIT_LOGGING", "maybe"),
        ]))
        .unwrap_err();
    assert_eq!(error.problems.len(), 2);
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.origin == Origin::Environment("ACCESS_TOKEN_EXPIRE_MINUTES"))
    );
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = "\
audit_log_path = \"audit.jsonl\"

[auth.jwt]
secret = \"your-secret-key-change-me-0123456789abcdef\"

[auth.api_key]
keys_file = \"missing-keys.json\"

[authz]
roles_file = \"missing-roles.toml\"
default_mode = \"allow-all\"
";
    let config = Config::from_toml(text, "/nonexistent").unwrap();
    let problems = config.problems();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "auth.jwt.secret",
            "auth.api_key.keys_file",
            "authz.default_mode",
            "authz.roles_file"
        ],
        "{problems:#?}"
    );
    assert_eq!(problems[0].origin, Origin::File(Some(Location::new(4, 1))));
    assert!(problems[0].hint.is_some());
    // In development the placeholder secret is accepted.
    let dev = config.clone().insecure_development();
    assert!(!dev.problems().iter().any(|p| p.key == "auth.jwt.secret"));
}

#[test]
fn authentication_cannot_be_switched_off_outside_development() {
    let text = "audit_log_path = \"a.jsonl\"\n[auth.jwt]\nsecret = \"0123456789abcdef0123456789abcdef01\"\n";
    let config = Config::from_toml(text, ".")
        .unwrap()
        .with_env(env(&[("ENABLE_AUTHENTICATION", "false")]))
        .unwrap();
    assert!(
        config
            .problems()
            .iter()
            .any(|p| p.origin == Origin::Environment("ENABLE_AUTHENTICATION"))
    );
    assert!(config.insecure_development().problems().is_empty());
}

#[test]
fn syntax_errors_have_a_place() {
    let error = Config::from_toml("[auth.jwt]\nsecret = \n", ".").unwrap_err();
    assert!(matches!(
        error.problems[0].origin,
        Origin::File(Some(Location { line: 2, .. }))
    ));
    let unknown = Config::from_toml("[auth]\nunknown_key = 1\n", ".").unwrap_err();
    assert!(unknown.to_string().contains("unknown_key"), "{unknown}");
}

/// A configuration file that is too large or not UTF-8 (Latin-1) is an error naming the file;
/// the large one is never read past its bound.
#[test]
fn files_too_large_or_wrongly_encoded_are_errors() {
    let dir = std::env::temp_dir().join(format!("portcullis-config-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(MAX_CONFIG_FILE_LEN + 1)
        .unwrap();
    let error = Config::from_file(&huge).unwrap_err().to_string();
    assert!(error.contains("larger than"), "{error}");
    let latin1 = dir.join("latin1.toml");
    std::fs::write(&latin1, b"[auth]\nrealm = \"caf\xe9\"\n").unwrap();
    let error = Config::from_file(&latin1).unwrap_err().to_string();
    assert!(error.contains("not UTF-8"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn audit_acknowledge_takes_three_words_and_refuses_the_rest_with_a_place() {
    for (word, expected) in [
        ("queued", Acknowledge::Queued),
        ("written", Acknowledge::Written),
        ("synced", Acknowledge::Synced),
    ] {
        let text = format!("audit_log_path = \"a.jsonl\"\naudit_acknowledge = \"{word}\"\n");
        let config = Config::from_toml(&text, ".").unwrap();
        assert_eq!(config.audit_acknowledge, expected);
        assert!(
            config
                .show()
                .contains(&format!("audit_acknowledge = \"{word}\""))
        );
    }
    assert_eq!(
        Config::from_toml("audit_log_path = \"a.jsonl\"\n", ".")
            .unwrap()
            .audit_acknowledge,
        Acknowledge::Queued,
        "queued unless asked"
    );
    for bad in [
        "\"\"",
        "\"Written\"",
        "\"fsync\"",
        "true",
        "1",
        "[\"written\"]",
    ] {
        let text = format!("audit_log_path = \"a.jsonl\"\naudit_acknowledge = {bad}\n");
        let error = Config::from_toml(&text, ".").unwrap_err();
        assert!(
            matches!(
                error.problems[0].origin,
                Origin::File(Some(Location { line: 2, .. }))
            ),
            "{bad}: {error}"
        );
    }
}
