//! The databases every store test runs against: SQLite in memory, a SQLite file, and a fresh
//! PostgreSQL database on the server `DATABASE_URL` names (started by `scripts/services.sh`;
//! skipped with a printed reason outside CI when absent, required under `CI=true`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers shared by the test files: a failed setup is the point"
)]

use std::sync::atomic::{AtomicU32, Ordering};

use portcullis_sqlx::{Engine, Store};
use portcullis_testkit::peer;

/// Panics unless `outcome` is a refusal because a dependency is unavailable (503).
pub fn assert_unavailable(outcome: portcullis_core::AuthOutcome, context: &str) {
    let portcullis_core::AuthOutcome::Rejected(error) = outcome else {
        panic!("{context}: {outcome:?}")
    };
    assert!(
        matches!(
            error.kind(),
            portcullis_core::AuthErrorKind::DependencyUnavailable(_)
        ),
        "{context}: {error:?}"
    );
}

/// A principal `id` holding `role`, as a JWT would carry it.
pub fn jwt_user(id: &str, role: &str) -> portcullis_core::Principal {
    portcullis_core::Principal::builder(
        id,
        portcullis_core::PrincipalKind::User,
        portcullis_core::AuthMethod::Jwt,
        time::OffsetDateTime::now_utc(),
    )
    .role(role)
    .build()
    .unwrap()
}

/// One database for one test.
pub struct TestDb {
    pub name: &'static str,
    pub url: String,
    pub store: Store,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A second, independent pool on the same database (another "instance").
    pub async fn second_instance(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }

    /// Drops the PostgreSQL database (SQLite files live in the temporary directory).
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, database)) = self.postgres {
            let admin = Store::connect(&admin).await.unwrap();
            let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
            sqlx::query(&sql)
                .execute(admin.postgres().unwrap())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(test: &str) -> String {
    format!(
        "pc_{}_{}_{}",
        test,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn sqlite_memory() -> TestDb {
    let url = "sqlite::memory:".to_owned();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    TestDb {
        name: "sqlite-memory",
        url,
        store,
        postgres: None,
    }
}

pub async fn sqlite_file(test: &str) -> TestDb {
    let dir = peer::temp_dir(&unique(test));
    let url = format!("sqlite://{}", dir.join("portcullis.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    TestDb {
        name: "sqlite-file",
        url,
        store,
        postgres: None,
    }
}

/// A new database on the PostgreSQL server of `DATABASE_URL`.
pub async fn postgres(test: &str) -> Option<TestDb> {
    let admin = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => {
            peer::present("PostgreSQL (DATABASE_URL, from scripts/services.sh)", false);
            return None;
        }
    };
    let admin_store = match Store::connect(&admin).await {
        Ok(store) => store,
        Err(error) => {
            assert!(
                !peer::under_ci(),
                "PostgreSQL is required under CI: {error}"
            );
            println!("skipping: PostgreSQL at DATABASE_URL is not reachable: {error}");
            return None;
        }
    };
    let database = unique(test);
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(admin_store.postgres().unwrap())
        .await
        .unwrap();
    admin_store.close().await;
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{database}");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.engine(), Engine::Postgres);
    store.migrate().await.unwrap();
    Some(TestDb {
        name: "postgres",
        url,
        store,
        postgres: Some((admin, database)),
    })
}

/// SQLite in memory, a SQLite file and PostgreSQL (when present).
pub async fn all(test: &str) -> Vec<TestDb> {
    let mut dbs = vec![sqlite_memory().await, sqlite_file(test).await];
    dbs.extend(postgres(test).await);
    dbs
}

/// Databases that several pools can share: a SQLite file and PostgreSQL.
pub async fn shared(test: &str) -> Vec<TestDb> {
    let mut dbs = vec![sqlite_file(test).await];
    dbs.extend(postgres(test).await);
    dbs
}
