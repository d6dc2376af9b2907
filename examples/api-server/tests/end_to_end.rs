//! The API server as a user runs it: the binary started on 127.0.0.1 (on a SQLite file, and
//! on a fresh PostgreSQL database when `DATABASE_URL` names a server; required under CI),
//! driven over real HTTP with curl, as in the README: register, login, create a project
//! (refused to a viewer, allowed once an admin grants `analyst`), refresh, reuse of a spent
//! refresh token revoking the family, logout, and the audit log showing each step; then the
//! seed's troubleshooting cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

#[path = "../../../crates/portcullis-sqlx/tests/common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const SECRET: &str = "an-end-to-end-secret-of-more-than-32-bytes";

struct Server {
    base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(database_url: &str, extra: &[(&str, &str)]) -> Server {
    let dir = portcullis_testkit::peer::temp_dir("api-server");
    let mut command = Command::new(env!("CARGO_BIN_EXE_api-server"));
    command
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET_KEY", SECRET)
        .env("PORT", "0")
        .env("ADMIN_USERNAME", "admin")
        .env("ADMIN_PASSWORD", "the-admin-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("api-server listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { base, child }
}

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

/// One curl request: `method path` with an optional bearer token and JSON body.
fn curl(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut command = Command::new("curl");
    command.args(["-s", "-i", "-X", method, &format!("{}{path}", server.base)]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
    }
    let output = command.output().expect("curl is installed");
    let text = String::from_utf8(output.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    }
}

fn token(reply: &Reply, key: &str) -> String {
    reply.body[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {}", reply.body))
        .to_owned()
}

fn login(server: &Server, username: &str, password: &str) -> Reply {
    curl(
        server,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "username": username, "password": password })),
    )
}

fn session(server: &Server, engine: &str) {
    // Register and log in, as the README's curl session does.
    let registered = curl(
        server,
        "POST",
        "/auth/register",
        None,
        Some(json!({ "username": "johndoe", "email": "john@example.com",
                     "password": "securepassword123", "full_name": "John Doe" })),
    );
    assert_eq!(registered.status, 201, "{engine}: {}", registered.body);
    let john_id = registered.body["id"].as_str().unwrap().to_owned();
    let tokens = login(server, "johndoe", "securepassword123");
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "bearer");
    assert_eq!(tokens.body["expires_in"], 1800);
    let access = token(&tokens, "access_token");
    assert!(tokens.headers.contains("x-content-type-options: nosniff"));
    assert!(tokens.headers.contains("content-security-policy:"));

    // A viewer reads projects, and may not create one.
    assert_eq!(
        curl(server, "GET", "/api/projects", Some(&access), None).status,
        200
    );
    let refused = curl(
        server,
        "POST",
        "/api/projects",
        Some(&access),
        Some(json!({ "name": "Dam study" })),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["detail"], "Permission required");

    // The admin grants `analyst`; after a refresh the new token carries it.
    let admin = token(
        &login(server, "admin", "the-admin-password"),
        "access_token",
    );
    let granted = curl(
        server,
        "POST",
        &format!("/api/users/{john_id}/roles"),
        Some(&admin),
        Some(json!({ "role": "analyst" })),
    );
    assert_eq!(granted.status, 200, "{}", granted.body);
    let refreshed = curl(
        server,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({ "refresh_token": token(&tokens, "refresh_token") })),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let analyst = token(&refreshed, "access_token");
    let created = curl(
        server,
        "POST",
        "/api/projects",
        Some(&analyst),
        Some(json!({ "name": "Dam study" })),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let project = created.body["id"].as_u64().unwrap();
    assert_eq!(
        curl(
            server,
            "GET",
            &format!("/api/projects/{project}"),
            Some(&analyst),
            None
        )
        .body["name"],
        "Dam study"
    );
    assert_eq!(
        curl(
            server,
            "DELETE",
            &format!("/api/projects/{project}"),
            Some(&analyst),
            None
        )
        .status,
        403
    );

    // The spent refresh token again: refused, and the whole family with it.
    let replay = curl(
        server,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({ "refresh_token": token(&tokens, "refresh_token") })),
    );
    assert_eq!(replay.status, 401);
    let after_replay = curl(
        server,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({ "refresh_token": token(&refreshed, "refresh_token") })),
    );
    assert_eq!(after_replay.status, 401, "the family is revoked");

    // Logout revokes the new login's refresh token and its access token.
    let again = login(server, "johndoe", "securepassword123");
    let again_access = token(&again, "access_token");
    let out = curl(
        server,
        "POST",
        "/auth/logout",
        Some(&again_access),
        Some(json!({ "refresh_token": token(&again, "refresh_token") })),
    );
    assert_eq!(out.status, 200, "{}", out.body);
    let revoked = curl(server, "GET", "/api/projects", Some(&again_access), None);
    assert_eq!(revoked.status, 401, "troubleshooting: a revoked token");
    assert_eq!(revoked.body["detail"], "Not authenticated");
    assert_eq!(
        curl(
            server,
            "POST",
            "/auth/refresh",
            None,
            Some(json!({ "refresh_token": token(&again, "refresh_token") }))
        )
        .status,
        401
    );

    // The audit log shows each step; a viewer-turned-analyst may not read it.
    assert_eq!(
        curl(server, "GET", "/audit/logs", Some(&analyst), None).status,
        403
    );
    let logs = curl(
        server,
        "GET",
        &format!("/audit/logs?user_id={john_id}&limit=1000"),
        Some(&admin),
        None,
    );
    assert_eq!(logs.status, 200, "{}", logs.body);
    let actions: Vec<&str> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for step in [
        "REGISTER",
        "LOGIN",
        "projects:create",
        "REFRESH",
        "REFRESH_TOKEN_REUSE",
        "LOGOUT",
    ] {
        assert!(actions.contains(&step), "{engine}: {step} in {actions:?}");
    }
    let requests = curl(server, "GET", "/audit/logs?limit=1000", Some(&admin), None);
    let paths: Vec<&str> = requests
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["request_path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/api/projects"),
        "every request is audited: {paths:?}"
    );
    let granted_by_admin = requests
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "assign_role" && e["resource_id"] == john_id.as_str());
    assert!(granted_by_admin, "the admin's grant is audited");
    let denied = requests
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["request_path"] == "/api/projects" && e["response_status"] == 403);
    assert!(denied, "the 403 is in the audit log");
    let everything = requests.body.to_string();
    assert!(!everything.contains("securepassword123"));
    assert!(!everything.contains(&token(&again, "refresh_token")));

    // Deleting a user needs the admin role.
    assert_eq!(
        curl(
            server,
            "DELETE",
            &format!("/api/users/{john_id}"),
            Some(&analyst),
            None
        )
        .status,
        403
    );
    assert_eq!(
        curl(
            server,
            "DELETE",
            &format!("/api/users/{john_id}"),
            Some(&admin),
            None
        )
        .status,
        204
    );
    assert_eq!(login(server, "johndoe", "securepassword123").status, 401);
}

fn troubleshooting(server: &Server) {
    // Missing header.
    let missing = curl(server, "GET", "/api/projects", None, None);
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["detail"], "Not authenticated");
    assert!(
        missing.headers.contains("www-authenticate: bearer"),
        "{}",
        missing.headers
    );
    // Expired token (signed with the server's secret, expired an hour ago).
    let expired = hs256(&json!({ "iss": "aethera", "aud": "aethera-api", "sub": "x",
        "iat": now() - 7200, "exp": now() - 3600, "jti": "expired-1", "client_id": "x" }));
    let reply = curl(server, "GET", "/api/projects", Some(&expired), None);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["detail"], "Not authenticated");
    assert!(
        reply.headers.contains("error=\"invalid_token\""),
        "{}",
        reply.headers
    );
    // Wrong password and unknown user: one answer.
    let wrong = login(server, "admin", "not-the-password");
    let unknown = login(server, "nobody-at-all", "not-the-password");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    // Public endpoints, exactly those of the seed.
    for path in ["/", "/docs", "/openapi.json", "/metrics"] {
        assert_eq!(curl(server, "GET", path, None, None).status, 200, "{path}");
    }
    let metrics = curl(server, "GET", "/metrics", None, None);
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.contains("http_requests_total{class=\"4xx\"}"),
        "{text}"
    );
    assert!(text.contains("portcullis_"), "{text}");
}

fn hs256(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"alg":"HS256","typ":"at+jwt"}"#);
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Every route the OpenAPI document lists is served (not 404 or 405).
fn openapi_describes_the_real_routes(server: &Server) {
    let doc = curl(server, "GET", "/openapi.json", None, None).body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15);
    for (path, methods) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{role}", "viewer")
            .replace("{permission}", "projects:read");
        for method in methods.as_object().unwrap().keys() {
            let status = curl(server, &method.to_uppercase(), &concrete, None, None).status;
            assert!(status != 404 && status != 405, "{method} {path}: {status}");
        }
    }
}

#[test]
fn the_aethera_session_on_sqlite() {
    if !portcullis_testkit::peer::present(
        "curl",
        portcullis_testkit::peer::runs("curl", &["--version"]),
    ) {
        return;
    }
    let dir = portcullis_testkit::peer::temp_dir("api-server-sqlite");
    let server = start(
        &format!("sqlite://{}", dir.join("aethera.db").display()),
        &[],
    );
    session(&server, "sqlite");
    troubleshooting(&server);
    openapi_describes_the_real_routes(&server);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aethera_session_on_postgres() {
    if !portcullis_testkit::peer::present(
        "curl",
        portcullis_testkit::peer::runs("curl", &["--version"]),
    ) {
        return;
    }
    let Some(db) = common::postgres("api_server").await else {
        return;
    };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let server = start(&url, &[]);
        session(&server, "postgres");
    })
    .await
    .unwrap();
    db.finish().await;
}

#[test]
fn the_placeholder_secret_stops_the_server_outside_development() {
    let output = Command::new(env!("CARGO_BIN_EXE_api-server"))
        .env_clear()
        .env("JWT_SECRET_KEY", "your-secret-key-here")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("placeholder"),
        "{output:?}"
    );
}

/// `POST /auth/oauth/login` with the seed's body, against a real OpenID Provider (panva's
/// `oidc-provider`, started by the testkit) configured as the `oidc` provider: its ID token
/// and its opaque access token (introspected with our client secret) log in as one local
/// viewer; another application's ID token and access token are 401; an Okta domain not on the
/// list and a Microsoft access token are 422; the audit log has each attempt.
#[test]
fn oauth_login_with_a_real_provider() {
    if !portcullis_testkit::peer::present(
        "curl",
        portcullis_testkit::peer::runs("curl", &["--version"]),
    ) {
        return;
    }
    let Some(op) = portcullis_testkit::oidc::OpenIdProvider::shared() else {
        return;
    };
    let dir = portcullis_testkit::peer::temp_dir("api-server-oauth");
    let server = start(
        &format!("sqlite://{}", dir.join("aethera.db").display()),
        &[
            ("OAUTH_OIDC_ISSUER", op.issuer()),
            ("OAUTH_OIDC_CLIENT_ID", op.get("client_id")),
            ("OAUTH_OIDC_CLIENT_SECRET", op.get("client_secret")),
            (
                "OAUTH_GOOGLE_CLIENT_ID",
                "1234-web.apps.googleusercontent.com",
            ),
            (
                "OAUTH_MICROSOFT_CLIENT_ID",
                "00000000-0000-0000-0000-00000000abcd",
            ),
            ("OAUTH_OKTA_DOMAIN", "dev-123456.okta.com"),
            ("OAUTH_OKTA_CLIENT_ID", "0oa-ours"),
        ],
    );
    let oauth = |body: Value| curl(&server, "POST", "/auth/oauth/login", None, Some(body));

    let by_id = oauth(json!({ "provider": "oidc", "id_token": op.get("id_token") }));
    assert_eq!(by_id.status, 200, "{}", by_id.body);
    assert_eq!(by_id.body["token_type"], "bearer");
    assert_eq!(by_id.body["expires_in"], 1800);
    assert!(by_id.body["refresh_token"].is_string());
    let me = curl(
        &server,
        "GET",
        "/auth/me",
        Some(&token(&by_id, "access_token")),
        None,
    );
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["username"], "alice", "{}", me.body);
    assert_eq!(me.body["roles"], json!(["viewer"]));
    let alice = me.body["id"].as_str().unwrap().to_owned();

    let by_access = oauth(json!({
        "provider": "oidc",
        "access_token": op.get("opaque_access_token"),
    }));
    assert_eq!(by_access.status, 200, "{}", by_access.body);
    let again = curl(
        &server,
        "GET",
        "/auth/me",
        Some(&token(&by_access, "access_token")),
        None,
    );
    assert_eq!(again.body["id"], alice.as_str(), "one local account");

    // Another application's tokens: the token-substitution attack.
    for body in [
        json!({ "provider": "oidc", "id_token": op.get("other/id_token") }),
        json!({ "provider": "oidc", "access_token": op.get("other/opaque_access_token") }),
    ] {
        let refused = oauth(body.clone());
        assert_eq!(refused.status, 401, "{body}: {}", refused.body);
        assert_eq!(refused.body["detail"], "OAuth authentication failed");
        assert!(refused.headers.contains("www-authenticate: bearer"));
    }
    for (body, text) in [
        (
            json!({ "provider": "okta", "access_token": "x", "okta_domain": "evil.example.com" }),
            "okta_domain is not one this server accepts",
        ),
        (
            json!({ "provider": "microsoft", "access_token": "EwBwA8l6BAAU" }),
            "this provider requires an id_token",
        ),
        (
            json!({ "provider": "github", "access_token": "x" }),
            "provider must be one of",
        ),
    ] {
        let refused = oauth(body.clone());
        assert_eq!(refused.status, 422, "{body}: {}", refused.body);
        assert!(
            refused.body["detail"].as_str().unwrap().contains(text),
            "{}",
            refused.body
        );
    }

    let admin = token(
        &login(&server, "admin", "the-admin-password"),
        "access_token",
    );
    let logs = curl(&server, "GET", "/audit/logs?limit=1000", Some(&admin), None);
    let attempts: Vec<(&str, &str)> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "OAUTH_LOGIN")
        .map(|e| {
            (
                e["result"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    assert_eq!(attempts.iter().filter(|(r, _)| *r == "success").count(), 2);
    assert!(
        attempts
            .iter()
            .any(|(_, why)| why.contains("issued to another application")),
        "the precise reason is in the audit trail: {attempts:?}"
    );
}

fn base32_decode(text: &str) -> Vec<u8> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// TOTP over HTTP: enrol (the otpauth URI), confirm, then login answers 401 with an
/// `mfa_token` until the second step gets a code; a code is accepted once; a recovery code
/// works in its place once.
#[test]
fn totp_login_over_http() {
    use portcullis::identity::{Totp, TotpAlgorithm};
    if !portcullis_testkit::peer::present(
        "curl",
        portcullis_testkit::peer::runs("curl", &["--version"]),
    ) {
        return;
    }
    let dir = portcullis_testkit::peer::temp_dir("api-server-totp");
    let server = start(
        &format!("sqlite://{}", dir.join("aethera.db").display()),
        &[(
            "DB_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )],
    );
    let post = |path: &str, token: Option<&str>, body: Option<Value>| {
        curl(&server, "POST", path, token, body)
    };
    let registered = post(
        "/auth/register",
        None,
        Some(
            json!({ "username": "totpuser", "email": "totp@example.com", "password": "securepassword123" }),
        ),
    );
    assert_eq!(registered.status, 201, "{}", registered.body);
    let access = token(
        &login(&server, "totpuser", "securepassword123"),
        "access_token",
    );
    let enrolment = post("/auth/totp/enrol", Some(&access), None);
    assert_eq!(enrolment.status, 200, "{}", enrolment.body);
    assert!(
        enrolment.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Aethera:totp%40example.com?secret=")
    );
    let totp = Totp::new(
        base32_decode(enrolment.body["secret"].as_str().unwrap()),
        TotpAlgorithm::Sha1,
        6,
    )
    .unwrap();
    let now = || u64::try_from(now()).unwrap();
    let confirmed = post(
        "/auth/totp/confirm",
        Some(&access),
        Some(json!({ "code": totp.code_at(now()) })),
    );
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes = post("/auth/recovery-codes", Some(&access), None);
    assert_eq!(codes.status, 200, "{}", codes.body);
    let recovery = codes.body["recovery_codes"][0].as_str().unwrap().to_owned();

    // The password alone is not enough any more.
    let first = login(&server, "totpuser", "securepassword123");
    assert_eq!(first.status, 401, "{}", first.body);
    assert_eq!(first.body["detail"], "Second factor required");
    assert!(first.body.get("access_token").is_none());
    let mfa = token(&first, "mfa_token");
    let next = totp.code_at(now() + 30);
    let done = post(
        "/auth/login/second-factor",
        None,
        Some(json!({ "mfa_token": mfa, "code": next })),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body["access_token"].is_string());
    // The same code again, on a new challenge: refused.
    let again = token(
        &login(&server, "totpuser", "securepassword123"),
        "mfa_token",
    );
    let replay = post(
        "/auth/login/second-factor",
        None,
        Some(json!({ "mfa_token": again, "code": next })),
    );
    assert_eq!(replay.status, 401, "{}", replay.body);
    // A recovery code, once.
    for expected in [200, 401] {
        let challenge = token(
            &login(&server, "totpuser", "securepassword123"),
            "mfa_token",
        );
        let answer = post(
            "/auth/login/second-factor",
            None,
            Some(json!({ "mfa_token": challenge, "code": recovery })),
        );
        assert_eq!(answer.status, expected, "{}", answer.body);
    }
}
