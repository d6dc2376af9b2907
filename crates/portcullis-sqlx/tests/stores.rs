//! Every store on every engine: SQLite in memory and in a file, and a real PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_apikey::{
    ApiKeyAuthenticator, KeyHash, KeyPrefix, KeyRecord, KeyStore, Pepper, Verifier, issue_key,
};
use portcullis_core::{
    ApiKeySource, AuditEvent, AuditEventType, AuditFilter, AuditQuery, AuditResult, AuditSink,
    AuthOutcome, Authenticator, Credential, Credentials, IdSource, Principal, PrincipalKind,
    RandomIds, SecretString,
};
use portcullis_rbac::{Builtins, PolicyDocument};
use portcullis_sqlx::{
    AuditCursor, Effect, NewRole, NewUser, RbacStore, Rotation, StoreError, WatchOptions,
};
use time::OffsetDateTime;

fn aethera() -> PolicyDocument {
    PolicyDocument {
        builtins: Builtins::Aethera,
        superuser_attribute: Some("is_superuser".into()),
        ..PolicyDocument::default()
    }
}

#[tokio::test]
async fn migrations_apply_once_and_again_without_change() {
    for db in common::all("migrate").await {
        db.store.migrate().await.unwrap();
        assert_eq!(db.store.audit().count().await.unwrap(), 0, "{}", db.name);
        db.finish().await;
    }
}

#[tokio::test]
async fn instances_starting_at_once_migrate_once_and_a_foreign_history_is_refused() {
    for db in common::shared("migrate_race").await {
        let fresh = db.second_instance().await;
        // A database nobody migrated yet (drop what the harness applied), then three at once.
        for table in [
            "portcullis_migrations",
            "external_identities",
            "recovery_codes",
            "totp_factors",
            "login_challenges",
            "audit_logs",
            "token_revocations",
            "sessions",
            "refresh_tokens",
            "api_keys",
            "policy_version",
            "user_roles",
            "role_inherits",
            "role_permissions",
            "permissions",
            "roles",
            "users",
            "tenants",
        ] {
            let sql = format!("DROP TABLE {table}");
            on_engine(&fresh, &sql).await;
        }
        if db.name == "postgres" {
            on_engine(&fresh, "DROP FUNCTION portcullis_isolate_tenants(regclass)").await;
        }
        let (a, b, c) = (
            db.second_instance().await,
            db.second_instance().await,
            db.second_instance().await,
        );
        let (ra, rb, rc) = tokio::join!(a.migrate(), b.migrate(), c.migrate());
        ra.unwrap();
        rb.unwrap();
        rc.unwrap();
        assert_eq!(a.audit().count().await.unwrap(), 0, "{}", db.name);
        on_engine(
            &fresh,
            "UPDATE portcullis_migrations SET checksum = 'edited'",
        )
        .await;
        assert!(
            matches!(fresh.migrate().await, Err(StoreError::MigrationMismatch(_))),
            "{}",
            db.name
        );
        for store in [fresh, a, b, c] {
            store.close().await;
        }
        db.finish().await;
    }
}

async fn on_engine(store: &portcullis_sqlx::Store, sql: &str) {
    if let Some(pool) = store.postgres() {
        sqlx::query(sql).execute(pool).await.unwrap();
    } else if let Some(pool) = store.sqlite() {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

#[tokio::test]
async fn users_are_unique_by_username_and_by_email_in_any_case() {
    for db in common::all("users").await {
        let users = db.store.users();
        let alice = users
            .create(
                NewUser::new("alice")
                    .email("Alice@Example.com")
                    .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            )
            .await
            .unwrap();
        assert!(
            !format!("{alice:?}").contains("argon2id"),
            "Debug redacts the hash"
        );
        let found = users
            .find_by_email("alice@example.COM")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, alice, "{}", db.name);
        assert_eq!(
            users.find_by_username("alice").await.unwrap().unwrap().id,
            alice.id
        );
        assert!(users.find_by_username("Alice").await.unwrap().is_none());
        assert!(matches!(
            users.create(NewUser::new("alice")).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            users
                .create(NewUser::new("alice2").email("ALICE@example.com"))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            users.create(NewUser::new(" ")).await,
            Err(StoreError::Invalid(_))
        ));
        users
            .set_password_hash(&alice.id, "$argon2id$new")
            .await
            .unwrap();
        users.set_active(&alice.id, false).await.unwrap();
        users.set_superuser(&alice.id, true).await.unwrap();
        let changed = users.find_by_id(&alice.id).await.unwrap().unwrap();
        assert_eq!(changed.password_hash.as_deref(), Some("$argon2id$new"));
        assert!(!changed.is_active && changed.is_superuser);
        assert!(changed.updated_at >= alice.updated_at);
        assert!(matches!(
            users.set_active("nobody", true).await,
            Err(StoreError::NotFound(_))
        ));
        db.finish().await;
    }
}

#[tokio::test]
async fn rbac_service_is_aetheras_with_audited_validated_changes() {
    for db in common::all("rbac").await {
        let store = &db.store;
        let rbac = RbacStore::open(store, aethera()).await.unwrap();
        let user = store.users().create(NewUser::new("ana")).await.unwrap();
        assert!(
            !rbac
                .has_permission(&user.id, "projects:create")
                .await
                .unwrap()
        );
        rbac.assign_role(&user.id, "analyst", "admin-1")
            .await
            .unwrap();
        assert_eq!(rbac.user_roles(&user.id).await.unwrap(), ["analyst"]);
        assert!(
            rbac.has_permission(&user.id, "projects:create")
                .await
                .unwrap()
        );
        assert!(
            !rbac
                .has_permission(&user.id, "projects:delete")
                .await
                .unwrap()
        );
        let version = rbac.version();
        rbac.grant_permission("analyst", "projects:delete", "admin-1")
            .await
            .unwrap();
        assert_eq!(rbac.version(), version + 1, "{}", db.name);
        assert!(
            rbac.has_permission(&user.id, "projects:delete")
                .await
                .unwrap()
        );
        assert_eq!(
            rbac.get_user_permissions(&user.id).await.unwrap(),
            [
                "projects:create",
                "projects:read",
                "projects:delete",
                "runs:create",
                "runs:read",
                "reports:read"
            ]
        );
        rbac.revoke_permission("analyst", "projects:delete", "admin-1")
            .await
            .unwrap();
        assert!(
            !rbac
                .has_permission(&user.id, "projects:delete")
                .await
                .unwrap()
        );

        // Inheritance and explicit deny, as in a roles file.
        rbac.create_role(
            NewRole::new("lead")
                .description("analyst who may export")
                .inherits("analyst"),
            "admin-1",
        )
        .await
        .unwrap();
        rbac.grant_permission("lead", "reports:export", "admin-1")
            .await
            .unwrap();
        rbac.grant("lead", "*", "runs:create", Effect::Deny, "admin-1")
            .await
            .unwrap();
        rbac.assign_role(&user.id, "lead", "admin-1").await.unwrap();
        assert!(
            rbac.has_permission(&user.id, "reports:export")
                .await
                .unwrap()
        );
        assert!(
            !rbac.has_permission(&user.id, "runs:create").await.unwrap(),
            "deny wins"
        );
        rbac.revoke_role(&user.id, "lead", "admin-1").await.unwrap();
        assert!(rbac.has_permission(&user.id, "runs:create").await.unwrap());

        // Changes that would make the policy invalid change nothing.
        let before = rbac.version();
        assert!(matches!(
            rbac.grant_permission("analyst", "projects:explode", "admin-1")
                .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            rbac.create_role(NewRole::new("orphan").inherits("ghost"), "admin-1")
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(
            matches!(
                rbac.add_parent("analyst", "lead", "admin-1").await,
                Err(StoreError::Invalid(_))
            ),
            "a cycle is refused"
        );
        assert!(matches!(
            rbac.create_role(NewRole::new("bad name!"), "admin-1").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            rbac.grant("lead", "col*lection", "runs:read", Effect::Allow, "admin-1")
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            rbac.create_role(NewRole::new("analyst"), "admin-1").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            matches!(
                rbac.delete_role("analyst", "admin-1").await,
                Err(StoreError::Invalid(_))
            ),
            "lead inherits analyst"
        );
        assert!(matches!(
            rbac.assign_role("nobody", "analyst", "admin-1").await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(rbac.version(), before, "{}", db.name);
        assert!(
            RbacStore::open(store, aethera())
                .await
                .unwrap()
                .engine()
                .policy()
                .role_names()
                .any(|r| r == "lead")
        );

        // Superusers, and disabled users.
        let root = store
            .users()
            .create(NewUser::new("root").superuser(true))
            .await
            .unwrap();
        assert!(rbac.has_permission(&root.id, "users:manage").await.unwrap());
        store.users().set_active(&user.id, false).await.unwrap();
        assert!(
            !rbac
                .has_permission(&user.id, "projects:read")
                .await
                .unwrap()
        );
        assert!(
            rbac.get_user_permissions(&user.id)
                .await
                .unwrap()
                .is_empty()
        );

        // Every change is an admin event, written with the change.
        let admin_events = store
            .audit()
            .query(
                &AuditFilter::new().event_type(AuditEventType::Admin),
                0,
                100,
            )
            .await
            .unwrap();
        let actions: Vec<_> = admin_events
            .iter()
            .filter_map(|e| e.action.as_deref())
            .collect();
        assert_eq!(
            actions,
            [
                "assign_role",
                "grant_permission",
                "revoke_permission",
                "create_role",
                "grant_permission",
                "grant_permission",
                "assign_role",
                "revoke_role"
            ],
            "{}",
            db.name
        );
        assert!(
            admin_events
                .iter()
                .all(|e| e.principal.as_ref().unwrap().id == "admin-1")
        );
        assert_eq!(
            admin_events[1].reason.as_deref(),
            Some("allow `* projects:delete` to role `analyst`")
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_grant_through_one_instance_is_enforced_by_another_within_a_second() {
    for db in common::shared("propagate").await {
        let one = RbacStore::open(&db.store, aethera()).await.unwrap();
        let other_store = db.second_instance().await;
        let other = RbacStore::open(&other_store, aethera()).await.unwrap();
        let _watch = other.watch(WatchOptions::default());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let viewer = common::jwt_user("v", "viewer");
        let engine = other.engine();
        assert!(!engine.has_permission(&viewer, "runs:read"));
        let granted = Instant::now();
        one.grant_permission("viewer", "runs:read", "admin-1")
            .await
            .unwrap();
        while !engine.has_permission(&viewer, "runs:read") {
            assert!(
                granted.elapsed() < Duration::from_secs(1),
                "{}: not enforced by the other instance within 1 s",
                db.name
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "{}: enforced by the other instance after {:?}",
            db.name,
            granted.elapsed()
        );
        one.revoke_permission("viewer", "runs:read", "admin-1")
            .await
            .unwrap();
        let revoked = Instant::now();
        while engine.has_permission(&viewer, "runs:read") {
            assert!(revoked.elapsed() < Duration::from_secs(1), "{}", db.name);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        other_store.close().await;
        db.finish().await;
    }
}

#[tokio::test]
async fn instances_opening_empty_role_tables_at_once_seed_them_once() {
    for db in common::shared("seed_race").await {
        let (a, b, c) = (
            db.second_instance().await,
            db.second_instance().await,
            db.second_instance().await,
        );
        let (ra, rb, rc) = tokio::join!(
            RbacStore::open(&a, aethera()),
            RbacStore::open(&b, aethera()),
            RbacStore::open(&c, aethera()),
        );
        let roles: Vec<Vec<String>> = [ra.unwrap(), rb.unwrap(), rc.unwrap()]
            .iter()
            .map(|r| {
                r.engine()
                    .policy()
                    .role_names()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        assert_eq!(roles[0], ["admin", "analyst", "viewer"], "{}", db.name);
        assert!(roles.iter().all(|r| *r == roles[0]));
        for store in [a, b, c] {
            store.close().await;
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn tenant_roles_are_seen_by_their_tenant_only() {
    for db in common::all("tenant_roles").await {
        RbacStore::open(&db.store, aethera()).await.unwrap();
        db.store.create_tenant("acme", "Acme").await.unwrap();
        db.store.create_tenant("globex", "Globex").await.unwrap();
        let acme = RbacStore::open_for_tenant(&db.store, aethera(), "acme")
            .await
            .unwrap();
        let globex = RbacStore::open_for_tenant(&db.store, aethera(), "globex")
            .await
            .unwrap();
        acme.create_role(NewRole::new("auditor"), "acme-admin")
            .await
            .unwrap();
        acme.grant_permission("auditor", "audit:read", "acme-admin")
            .await
            .unwrap();
        assert!(acme.engine().policy().role_names().any(|r| r == "auditor"));
        globex.refresh().await.unwrap();
        assert!(
            !globex
                .engine()
                .policy()
                .role_names()
                .any(|r| r == "auditor")
        );
        // The tenant's roles cannot change global ones.
        assert!(matches!(
            acme.grant_permission("viewer", "audit:read", "acme-admin")
                .await,
            Err(StoreError::Invalid(_))
        ));
        globex
            .create_role(NewRole::new("auditor"), "globex-admin")
            .await
            .unwrap();
        db.finish().await;
    }
}

#[tokio::test]
async fn api_keys_are_found_by_id_and_by_amaters_hash_and_batch_their_usage() {
    for db in common::all("apikeys").await {
        let keys = db.store.api_keys();
        let pepper = Pepper::new(&[7u8; 32]).unwrap();
        let prefix = KeyPrefix::new("pk_").unwrap();
        let (generated, mut record) = issue_key(&prefix, &pepper, "svc-1").unwrap();
        record.roles = vec!["reader".into()];
        record.scopes = vec!["read".into()];
        record.tenant = Some("acme".into());
        keys.insert(&record).await.unwrap();
        assert!(matches!(
            keys.insert(&record).await,
            Err(StoreError::Conflict(_))
        ));
        let amaters = KeyRecord::new(
            "legacy",
            "svc-2",
            Verifier::Sha256(KeyHash::sha256("my-secret-api-key")),
        );
        keys.insert(&amaters).await.unwrap();

        let found = keys.find_by_id(&record.id).await.unwrap().unwrap();
        assert_eq!(found.roles, ["reader"]);
        assert_eq!(found.tenant.as_deref(), Some("acme"));
        assert!(found.created_at.is_some());
        let by_hash = keys
            .find_by_hash(&KeyHash::sha256("my-secret-api-key"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_hash.id, "legacy");
        assert!(
            keys.find_by_hash(&KeyHash::sha256("other"))
                .await
                .unwrap()
                .is_none()
        );

        let store: Arc<dyn KeyStore> = Arc::new(keys.clone());
        let auth = ApiKeyAuthenticator::builder(store.clone(), Pepper::new(&[7u8; 32]).unwrap())
            .prefix(prefix.clone())
            .accept_amaters_keys(true)
            .build();
        let outcome = auth.authenticate(&api_key(generated.key.expose())).await;
        let AuthOutcome::Authenticated(principal) = outcome else {
            panic!("{}: {outcome:?}", db.name)
        };
        assert_eq!(principal.id(), "svc-1");
        assert!(matches!(
            auth.authenticate(&api_key("my-secret-api-key")).await,
            AuthOutcome::Authenticated(_)
        ));

        let t1 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let t0 = t1 - time::Duration::hours(1);
        store
            .record_usage(&[(record.id.clone(), t1), ("legacy".into(), t0)])
            .await
            .unwrap();
        store
            .record_usage(&[(record.id.clone(), t0)])
            .await
            .unwrap();
        let used = keys.find_by_id(&record.id).await.unwrap().unwrap();
        assert_eq!(
            used.last_used_at,
            Some(t1),
            "{}: time only moves forward",
            db.name
        );

        assert!(
            keys.revoke(&record.id, OffsetDateTime::now_utc())
                .await
                .unwrap()
        );
        assert!(
            !keys
                .revoke("nope", OffsetDateTime::now_utc())
                .await
                .unwrap()
        );
        assert!(matches!(
            auth.authenticate(&api_key(generated.key.expose())).await,
            AuthOutcome::Rejected(_)
        ));
        assert_eq!(keys.of_user("svc-1").await.unwrap().len(), 1);
        db.finish().await;
    }
}

fn api_key(key: &str) -> Credentials {
    Credentials::from_list(vec![Credential::ApiKey {
        key: SecretString::new(key),
        source: ApiKeySource::AuthorizationScheme,
    }])
}

fn event(n: usize) -> AuditEvent {
    let principal = Principal::builder(
        format!("user-{}", n % 7),
        PrincipalKind::User,
        portcullis_core::AuthMethod::Jwt,
        OffsetDateTime::now_utc(),
    )
    .name(format!("name-{}", n % 7))
    .tenant("acme")
    .build()
    .unwrap();
    AuditEvent::new(
        RandomIds.event_id(),
        if n.is_multiple_of(2) {
            AuditEventType::Authorization
        } else {
            AuditEventType::Authentication
        },
        if n.is_multiple_of(3) {
            AuditResult::Denied
        } else {
            AuditResult::Success
        },
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + n as i64).unwrap(),
    )
    .with_principal(&principal)
    .with_action(if n.is_multiple_of(5) { "LOGIN" } else { "read" })
    .with_resource(&format!("project:{}", n % 11))
    .with_http("GET", "/projects", Some(200))
    .with_metadata("n", n)
}

#[tokio::test]
async fn a_thousand_concurrent_audit_writes_are_all_there_once() {
    for db in common::all("audit_concurrent").await {
        let audit = db.store.audit();
        let mut tasks = Vec::new();
        for task in 0..10 {
            let audit = audit.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..100 {
                    let event = event(task * 100 + i);
                    ids.push(event.id.as_str().to_owned());
                    if i.is_multiple_of(2) {
                        audit.record(event).await.unwrap();
                    } else {
                        audit.record_batch(vec![event]).await.unwrap();
                    }
                }
                ids
            }));
        }
        let mut written = HashSet::new();
        for task in tasks {
            written.extend(task.await.unwrap());
        }
        assert_eq!(written.len(), 1000);
        assert_eq!(audit.count().await.unwrap(), 1000, "{}", db.name);
        let mut read = HashSet::new();
        let mut cursor: Option<AuditCursor> = None;
        loop {
            let page = audit.page(&AuditFilter::new(), cursor, 300).await.unwrap();
            for e in &page.events {
                assert!(read.insert(e.id.as_str().to_owned()), "duplicate {}", e.id);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(read, written, "{}", db.name);
        // Writing the same events again (a retry after a lost commit) adds nothing.
        let again: Vec<_> = (0..5).map(event).collect();
        audit.insert(&again).await.unwrap();
        assert_eq!(audit.insert(&again).await.unwrap(), 0);
        db.finish().await;
    }
}

#[tokio::test]
async fn audit_queries_filter_as_aethera_and_page_by_offset_and_cursor() {
    for db in common::all("audit_query").await {
        let audit = db.store.audit();
        let events: Vec<_> = (0..200).map(event).collect();
        audit.record_batch(events.clone()).await.unwrap();
        let matches = |filter: &AuditFilter| events.iter().filter(|e| filter.matches(e)).count();
        let filters = [
            AuditFilter::new().principal_id("user-3"),
            AuditFilter::new().action("LOGIN"),
            AuditFilter::new().resource_type("project").resource_id("4"),
            AuditFilter::new()
                .event_type(AuditEventType::Authentication)
                .result(AuditResult::Denied),
            AuditFilter::new()
                .from(OffsetDateTime::from_unix_timestamp(1_800_000_050).unwrap())
                .to(OffsetDateTime::from_unix_timestamp(1_800_000_100).unwrap()),
            AuditFilter::new()
                .principal_id("user-1")
                .action("read")
                .result(AuditResult::Success),
        ];
        for filter in &filters {
            let got = audit.query(filter, 0, 1000).await.unwrap();
            assert_eq!(got.len(), matches(filter), "{}: {filter:?}", db.name);
            assert!(got.iter().all(|e| filter.matches(e)));
        }
        let first = audit.query(&AuditFilter::new(), 0, 10).await.unwrap();
        let second = audit.query(&AuditFilter::new(), 10, 10).await.unwrap();
        assert_eq!(first, events[..10]);
        assert_eq!(
            second,
            events[10..20],
            "events come back exactly as written"
        );
        let page = audit
            .page(&AuditFilter::new().action("LOGIN"), None, 15)
            .await
            .unwrap();
        let rest = audit
            .page(&AuditFilter::new().action("LOGIN"), page.next, 1000)
            .await
            .unwrap();
        assert_eq!(page.events.len() + rest.events.len(), 40);
        assert!(rest.next.is_none());
        assert!("-1".parse::<AuditCursor>().is_err() && "x".parse::<AuditCursor>().is_err());
        // A hostile filter value is a bound parameter, never SQL.
        let hostile = AuditFilter::new().action("x' OR '1'='1");
        assert!(audit.query(&hostile, 0, 10).await.unwrap().is_empty());
        db.finish().await;
    }
}

#[tokio::test]
async fn buffered_sink_writes_through_the_database_writer() {
    for db in common::all("audit_buffered").await {
        let sink = portcullis_audit::BufferedSink::new(
            portcullis_sqlx::SqlAuditWriter::new(&db.store),
            portcullis_audit::BufferConfig::default(),
        )
        .unwrap();
        for n in 0..500 {
            sink.record(event(n)).await.unwrap();
        }
        sink.flush().await.unwrap();
        assert_eq!(db.store.audit().count().await.unwrap(), 500, "{}", db.name);
        sink.shutdown().await.unwrap();
        db.finish().await;
    }
}

#[tokio::test]
async fn a_principal_whose_store_is_down_is_unavailable_not_unauthenticated() {
    let db = common::sqlite_file("down").await;
    let keys = db.store.api_keys();
    let auth = ApiKeyAuthenticator::amaters(Arc::new(keys)).build();
    db.store.close().await;
    common::assert_unavailable(
        auth.authenticate(&api_key("my-secret-api-key")).await,
        "a closed store must not authenticate",
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_family() {
    for db in common::all("refresh").await {
        let user = db.store.users().create(NewUser::new("rita")).await.unwrap();
        let tokens = db.store.refresh_tokens();
        let week = OffsetDateTime::now_utc() + time::Duration::days(7);
        let secret = |s: &str| SecretString::new(s);
        let family = tokens
            .start_family(&user.id, &secret("t0"), week)
            .await
            .unwrap();
        assert!(matches!(
            tokens.start_family("nobody", &secret("x"), week).await,
            Err(StoreError::NotFound(_))
        ));
        let Rotation::Rotated(grant) = tokens
            .rotate(&secret("t0"), &secret("t1"), week)
            .await
            .unwrap()
        else {
            panic!("{}: a live token rotates", db.name)
        };
        assert_eq!(
            (grant.user_id.as_str(), grant.family_id.as_str()),
            (user.id.as_str(), family.as_str())
        );
        assert!(matches!(
            tokens
                .rotate(&secret("t1"), &secret("t2"), week)
                .await
                .unwrap(),
            Rotation::Rotated(_)
        ));
        // The stolen t0 comes back: the family dies, t2 with it.
        assert!(matches!(
            tokens.rotate(&secret("t0"), &secret("evil"), week).await.unwrap(),
            Rotation::ReuseDetected(g) if g.family_id == family
        ));
        assert_eq!(
            tokens
                .rotate(&secret("t2"), &secret("t3"), week)
                .await
                .unwrap(),
            Rotation::Refused
        );
        assert_eq!(
            tokens
                .rotate(&secret("never"), &secret("t4"), week)
                .await
                .unwrap(),
            Rotation::Refused
        );
        // Expired tokens are refused; logout everywhere revokes every family.
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        tokens
            .start_family(&user.id, &secret("old"), past)
            .await
            .unwrap();
        assert_eq!(
            tokens
                .rotate(&secret("old"), &secret("n"), week)
                .await
                .unwrap(),
            Rotation::Refused
        );
        let other = tokens
            .start_family(&user.id, &secret("laptop"), week)
            .await
            .unwrap();
        tokens
            .start_family(&user.id, &secret("phone"), week)
            .await
            .unwrap();
        assert_eq!(tokens.revoke_family(&other).await.unwrap(), 1);
        assert_eq!(
            tokens.revoke_user(&user.id).await.unwrap(),
            2,
            "phone, and the expired one"
        );
        assert_eq!(
            tokens
                .rotate(&secret("phone"), &secret("n"), week)
                .await
                .unwrap(),
            Rotation::Refused
        );
        assert!(
            tokens
                .purge_expired(OffsetDateTime::now_utc())
                .await
                .unwrap()
                >= 1
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn two_instances_rotating_one_token_at_once_rotate_it_once() {
    for db in common::shared("refresh_race").await {
        let user = db.store.users().create(NewUser::new("race")).await.unwrap();
        let week = OffsetDateTime::now_utc() + time::Duration::days(7);
        db.store
            .refresh_tokens()
            .start_family(&user.id, &SecretString::new("t0"), week)
            .await
            .unwrap();
        let other = db.second_instance().await;
        let (t0, a, b) = (
            SecretString::new("t0"),
            SecretString::new("a"),
            SecretString::new("b"),
        );
        let (one, two) = (db.store.refresh_tokens(), other.refresh_tokens());
        let (a, b) = tokio::join!(one.rotate(&t0, &a, week), two.rotate(&t0, &b, week));
        let outcomes = [a.unwrap(), b.unwrap()];
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, Rotation::Rotated(_)))
            .count();
        assert_eq!(rotated, 1, "{}: {outcomes:?}", db.name);
        other.close().await;
        db.finish().await;
    }
}

#[tokio::test]
async fn sessions_are_found_by_id_until_they_expire_or_end() {
    for db in common::all("sessions").await {
        let user = db.store.users().create(NewUser::new("sam")).await.unwrap();
        let sessions = db.store.sessions();
        let id = SecretString::new("session-id-from-a-csprng");
        let hour = OffsetDateTime::now_utc() + time::Duration::hours(1);
        sessions
            .create(&id, &user.id, r#"{"csrf":"x"}"#, hour)
            .await
            .unwrap();
        assert!(matches!(
            sessions.create(&id, &user.id, "{}", hour).await,
            Err(StoreError::Conflict(_))
        ));
        let session = sessions.get(&id).await.unwrap().unwrap();
        assert_eq!(session.user_id, user.id);
        assert!(!format!("{session:?}").contains("csrf"));
        assert!(
            sessions
                .get(&SecretString::new("guess"))
                .await
                .unwrap()
                .is_none()
        );
        let gone = SecretString::new("expired");
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        sessions.create(&gone, &user.id, "{}", past).await.unwrap();
        assert!(sessions.get(&gone).await.unwrap().is_none(), "{}", db.name);
        assert_eq!(sessions.purge_expired().await.unwrap(), 1);
        assert!(sessions.delete(&id).await.unwrap());
        assert!(sessions.get(&id).await.unwrap().is_none());
        sessions.create(&id, &user.id, "{}", hour).await.unwrap();
        assert_eq!(sessions.delete_user(&user.id).await.unwrap(), 1);
        db.finish().await;
    }
}

/// Runs `sql` on whichever engine `store` is.
async fn execute(store: &portcullis_sqlx::Store, sql: &str) {
    on_engine(store, sql).await;
}

#[tokio::test]
async fn rows_that_do_not_decode_are_errors_never_skipped_or_allowed() {
    for db in common::all("bad_rows").await {
        let store = &db.store;
        // An API key row whose roles are not a JSON list, and one whose hash is not base64 of
        // 32 bytes: a lookup fails (503), it never authenticates nor reads as "no key".
        store
            .api_keys()
            .insert(&KeyRecord::new(
                "garbled",
                "svc",
                Verifier::Sha256(KeyHash::sha256("garbled-key")),
            ))
            .await
            .unwrap();
        execute(
            store,
            "UPDATE api_keys SET roles = 'admin' WHERE id = 'garbled'",
        )
        .await;
        let auth = ApiKeyAuthenticator::amaters(Arc::new(store.api_keys())).build();
        common::assert_unavailable(
            auth.authenticate(&api_key("garbled-key")).await,
            "a row with invalid roles",
        );
        execute(
            store,
            "UPDATE api_keys SET roles = '[]', key_hash = 'bm90LTMyLWJ5dGVz' WHERE id = 'garbled'",
        )
        .await;
        assert!(matches!(
            store.api_keys().find_by_id("garbled").await,
            Err(portcullis_apikey::StoreError::Invalid(_))
        ));

        // An audit row whose event is truncated JSON: the query fails rather than return a
        // page that silently lacks it.
        store.audit().record(event(1)).await.unwrap();
        execute(store, "UPDATE audit_logs SET event = '{\"id\":\"trunc'").await;
        assert!(
            store
                .audit()
                .query(&AuditFilter::new(), 0, 10)
                .await
                .is_err(),
            "{}",
            db.name
        );
        assert!(matches!(
            store.audit().page(&AuditFilter::new(), None, 10).await,
            Err(StoreError::Invalid(_))
        ));

        // A user row with a time that is not a time: an error, not a user.
        let user = store.users().create(NewUser::new("tina")).await.unwrap();
        if db.name != "postgres" {
            execute(store, "UPDATE users SET created_at = 'yesterday'").await;
            assert!(store.users().find_by_id(&user.id).await.is_err());
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn role_tables_over_the_limits_are_refused_on_open_and_on_change() {
    for db in common::all("limits").await {
        // The Aethera built-ins are three rules (one per role, on `*`).
        let small = portcullis_rbac::Limits::default().max_rules(2);
        let opened = RbacStore::open_with(&db.store, aethera(), None, small).await;
        assert!(
            matches!(opened, Err(StoreError::Invalid(_))),
            "{}: three rules exceed a limit of two",
            db.name
        );
        let limits = portcullis_rbac::Limits::default().max_rules(4);
        let rbac = RbacStore::open_with(&db.store, aethera(), None, limits)
            .await
            .unwrap();
        let before = rbac.version();
        rbac.grant("viewer", "projects", "runs:read", Effect::Allow, "admin-1")
            .await
            .unwrap();
        let over = rbac
            .grant("viewer", "reports", "runs:read", Effect::Allow, "admin-1")
            .await;
        assert!(
            matches!(over, Err(StoreError::Invalid(_))),
            "{}: {over:?}",
            db.name
        );
        assert_eq!(
            rbac.version(),
            before + 1,
            "the refused grant changed nothing"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn urls_that_name_no_database_are_refused() {
    for url in [
        "",
        "sqlite",
        "postgres:",
        "://x",
        "SQLITE://x.db",
        "\u{0}",
        "mysql://x/y",
        "file.db",
        "http://x",
    ] {
        assert!(
            matches!(
                portcullis_sqlx::Store::connect(url).await,
                Err(StoreError::UnsupportedUrl(_))
            ),
            "{url:?}"
        );
    }
}
