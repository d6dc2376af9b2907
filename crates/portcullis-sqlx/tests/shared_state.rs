//! State shared by instances, and what happens when the database is not there: token
//! revocations across instances, tenant isolation by row-level security, and a database that
//! goes away mid-run and comes back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portcullis_apikey::{ApiKeyAuthenticator, KeyHash, KeyRecord, Verifier};
use portcullis_core::{
    ApiKeySource, AuditEvent, AuditEventType, AuditResult, AuditSink, AuthOutcome, Authenticator,
    Credential, Credentials, IdSource, Principal, PrincipalKind, RandomIds, SecretString,
};
use portcullis_jwt::{
    Algorithm, IssuerConfig, JwtAuthenticator, JwtError, RevocationList, SigningKey, TokenIssuer,
    TokenRequest,
};
use portcullis_sqlx::{RevocationCache, RevocationOptions, Store, StoreError, StoreOptions};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt_pair() -> (TokenIssuer, portcullis_jwt::JwtAuthenticatorBuilder) {
    let issuer = TokenIssuer::new(
        "https://auth.example",
        SigningKey::hmac(Some("k"), Algorithm::HS256, &[9u8; 32]).unwrap(),
    )
    .audiences(["api"]);
    let verifier = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("https://auth.example", issuer.clone()).audiences(["api"]));
    (issuer, verifier)
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_every_instance_within_a_second() {
    for db in common::shared("revoke").await {
        let other_store = db.second_instance().await;
        let here = RevocationCache::start(&db.store, RevocationOptions::default())
            .await
            .unwrap();
        let there = RevocationCache::start(&other_store, RevocationOptions::default())
            .await
            .unwrap();
        let (issuer, verifier) = jwt_pair();
        let verifier = verifier.revocations(there.clone()).build().unwrap();
        let token = issuer.issue(&TokenRequest::access("alice")).unwrap();
        assert!(verifier.verify(token.token.expose()).await.is_ok());

        let revoked = Instant::now();
        here.revoke(&token.jti, token.expires_at, "logout", "alice")
            .await
            .unwrap();
        assert_eq!(
            here.is_revoked(&token.jti),
            Ok(true),
            "at once on this instance"
        );
        while verifier.verify(token.token.expose()).await.is_ok() {
            assert!(revoked.elapsed() < Duration::from_secs(1), "{}", db.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(
            verifier.verify(token.token.expose()).await,
            Err(JwtError::Revoked)
        ));
        println!(
            "{}: refused by the other instance after {:?}",
            db.name,
            revoked.elapsed()
        );
        let fresh = issuer.issue(&TokenRequest::access("alice")).unwrap();
        assert!(verifier.verify(fresh.token.expose()).await.is_ok());
        // Only tokens that have not expired are remembered.
        assert_eq!(there.len(), 1);
        assert_eq!(here.purge_expired().await.unwrap(), 0);
        other_store.close().await;
        db.finish().await;
    }
}

#[tokio::test]
async fn with_a_revocation_list_a_token_without_a_usable_jti_is_refused() {
    let db = common::sqlite_memory().await;
    let cache = RevocationCache::start(&db.store, RevocationOptions::default())
        .await
        .unwrap();
    let (_issuer, verifier) = jwt_pair();
    let verifier = verifier.revocations(cache).build().unwrap();
    // Tokens signed with the same key, whose `jti` is absent, empty, not a string, or huge.
    let signed = |jti: Option<serde_json::Value>| {
        let header = b64(br#"{"alg":"HS256","kid":"k","typ":"at+jwt"}"#);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = serde_json::json!({
            "iss": "https://auth.example", "sub": "alice", "aud": "api", "client_id": "c",
            "iat": now, "exp": now + 300,
        });
        if let Some(jti) = jti {
            claims["jti"] = jti;
        }
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[9u8; 32]);
        let tag = ring::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    };
    assert!(matches!(
        verifier.verify(&signed(None)).await,
        Err(JwtError::MissingClaim("jti"))
    ));
    for bad in [
        serde_json::json!(""),
        serde_json::json!(7),
        serde_json::json!(["a"]),
    ] {
        assert!(matches!(
            verifier.verify(&signed(Some(bad))).await,
            Err(JwtError::InvalidClaim("jti"))
        ));
    }
    // A long jti that nobody revoked is only a lookup; the size cap of the token bounds it.
    let long = serde_json::json!("j".repeat(4_000));
    assert!(verifier.verify(&signed(Some(long))).await.is_ok());
    let huge = serde_json::json!("j".repeat(20_000));
    assert!(matches!(
        verifier.verify(&signed(Some(huge))).await,
        Err(JwtError::TooLarge)
    ));
}

#[tokio::test]
async fn a_revocation_list_that_cannot_be_refreshed_answers_503_not_ok() {
    let db = common::sqlite_file("stale").await;
    let options = RevocationOptions::default()
        .refresh(Duration::from_millis(50))
        .max_staleness(Duration::from_millis(300));
    let cache = RevocationCache::start(&db.store, options).await.unwrap();
    let (issuer, verifier) = jwt_pair();
    let verifier = verifier.revocations(cache.clone()).build().unwrap();
    let token = issuer.issue(&TokenRequest::access("alice")).unwrap();
    assert!(verifier.verify(token.token.expose()).await.is_ok());
    db.store.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let credentials = Credentials::from_list(vec![Credential::Bearer(SecretString::new(
        token.token.expose(),
    ))]);
    common::assert_unavailable(
        verifier.authenticate(&credentials).await,
        "a stale revocation list must not let a token through",
    );
}

#[tokio::test]
async fn row_level_security_keeps_tenants_apart_even_for_raw_sql() {
    let Some(db) = common::postgres("rls").await else {
        return;
    };
    let pool = db.store.postgres().unwrap().clone();
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        !superuser && !bypass,
        "the application role must be subject to RLS"
    );
    sqlx::query("CREATE TABLE projects (id SERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT portcullis_isolate_tenants('projects')")
        .execute(&pool)
        .await
        .unwrap();

    let member = |tenant: Option<&str>| {
        let mut b = Principal::builder(
            "u",
            PrincipalKind::User,
            portcullis_core::AuthMethod::Jwt,
            OffsetDateTime::now_utc(),
        );
        if let Some(t) = tenant {
            b = b.tenant(t);
        }
        b.build().unwrap()
    };
    let (a, b) = (member(Some("tenant-a")), member(Some("tenant-b")));

    let mut tx = db.store.tenant_transaction(&a).await.unwrap();
    sqlx::query("INSERT INTO projects (tenant_id, name) VALUES ('tenant-a', 'alpha')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let forged =
        sqlx::query("INSERT INTO projects (tenant_id, name) VALUES ('tenant-b', 'planted')")
            .execute(&mut *tx)
            .await;
    assert!(
        forged.is_err(),
        "a row for another tenant cannot be written"
    );
    drop(tx);
    let mut tx = db.store.tenant_transaction(&a).await.unwrap();
    sqlx::query("INSERT INTO projects (tenant_id, name) VALUES ('tenant-a', 'alpha')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.tenant_transaction(&b).await.unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT name FROM projects")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert!(seen.is_empty(), "tenant B reads none of A's rows: {seen:?}");
    let updated = sqlx::query("UPDATE projects SET name = 'owned'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM projects")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    tx.commit().await.unwrap();

    let mut tx = db.store.tenant_transaction(&a).await.unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT name FROM projects")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, ["alpha"]);
    tx.commit().await.unwrap();

    // Outside a tenant transaction, on pooled connections that served tenants before: nothing.
    for _ in 0..20 {
        let setting: Option<String> =
            sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(
            setting.unwrap_or_default().is_empty(),
            "a tenant leaked into the pool"
        );
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "without a tenant no row is visible");
    }
    assert!(matches!(
        db.store.tenant_transaction(&member(None)).await,
        Err(StoreError::Invalid(_))
    ));
    db.finish().await;
}

/// A TCP relay in front of PostgreSQL that can be cut and restored: the database "goes away".
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, list) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Self {
            port,
            up,
            connections,
        }
    }

    /// A relay to `db`'s server and a store connected through it.
    async fn in_front_of(db: &common::TestDb, acquire_timeout: Duration) -> (Self, Store) {
        let (scheme_user, rest) = db.url.split_once('@').unwrap();
        let (host_port, database) = rest.split_once('/').unwrap();
        let relay = Self::start(host_port.to_owned()).await;
        let url = format!("{scheme_user}@127.0.0.1:{}/{database}", relay.port);
        let options = StoreOptions::default().acquire_timeout(acquire_timeout);
        let store = Store::connect_with(&url, options).await.unwrap();
        (relay, store)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_that_goes_away_gives_503_writes_nothing_half_and_recovers() {
    let Some(db) = common::postgres("outage").await else {
        return;
    };
    let (relay, store) = Relay::in_front_of(&db, Duration::from_secs(1)).await;
    store
        .api_keys()
        .insert(&KeyRecord::new(
            "legacy",
            "svc",
            Verifier::Sha256(KeyHash::sha256("my-secret-api-key")),
        ))
        .await
        .unwrap();
    let auth = ApiKeyAuthenticator::amaters(Arc::new(store.api_keys())).build();
    let key = Credentials::from_list(vec![Credential::ApiKey {
        key: SecretString::new("my-secret-api-key"),
        source: ApiKeySource::AuthorizationScheme,
    }]);
    assert!(matches!(
        auth.authenticate(&key).await,
        AuthOutcome::Authenticated(_)
    ));

    relay.cut();
    common::assert_unavailable(
        auth.authenticate(&key).await,
        "no database, no authentication",
    );
    let events: Vec<_> = (0..50)
        .map(|_| {
            AuditEvent::new(
                RandomIds.event_id(),
                AuditEventType::Admin,
                AuditResult::Success,
                OffsetDateTime::now_utc(),
            )
        })
        .collect();
    assert!(store.audit().record_batch(events.clone()).await.is_err());

    relay.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if matches!(auth.authenticate(&key).await, AuthOutcome::Authenticated(_)) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store recovers when the database returns");
    // The failed batch left nothing behind; written again, it is all there once.
    assert_eq!(db.store.audit().count().await.unwrap(), 0);
    store.audit().record_batch(events).await.unwrap();
    assert_eq!(db.store.audit().count().await.unwrap(), 50);
    store.close().await;
    db.finish().await;
}

#[tokio::test]
async fn an_engine_that_cannot_check_its_policy_denies_until_the_database_returns() {
    let Some(db) = common::postgres("stale_policy").await else {
        return;
    };
    let (relay, store) = Relay::in_front_of(&db, Duration::from_millis(300)).await;
    let template = portcullis_rbac::PolicyDocument {
        builtins: portcullis_rbac::Builtins::Aethera,
        ..Default::default()
    };
    let rbac = portcullis_sqlx::RbacStore::open(&store, template)
        .await
        .unwrap();
    let _watch = rbac.watch(
        portcullis_sqlx::WatchOptions::default()
            .poll(Duration::from_millis(100))
            .max_staleness(Duration::from_millis(500)),
    );
    let viewer = common::jwt_user("v", "viewer");
    let engine = rbac.engine();
    assert!(engine.has_permission(&viewer, "projects:read"));

    relay.cut();
    let cut = Instant::now();
    while engine.has_permission(&viewer, "projects:read") {
        assert!(
            cut.elapsed() < Duration::from_secs(10),
            "a stale policy kept granting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "denying everything {:?} after the database went away",
        cut.elapsed()
    );

    relay.restore();
    let restored = Instant::now();
    while !engine.has_permission(&viewer, "projects:read") {
        assert!(
            restored.elapsed() < Duration::from_secs(10),
            "the policy did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    db.finish().await;
}
