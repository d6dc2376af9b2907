//! The connection: [`Store::connect`] picks the engine from the URL, [`Store::migrate`] runs the
//! embedded migrations, and [`StoreError`] says what failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{Clock, IdSource, RandomIds, SystemClock};

use time::OffsetDateTime;

/// The pool of one engine. Code that runs the same SQL on both matches on it with
/// [`on_pool!`](crate::db::on_pool): each arm is compiled for its engine's concrete types.
#[derive(Clone)]
pub(crate) enum Pool {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Runs `$body` with `$pool` bound to the engine's pool (`&PgPool` or `&SqlitePool`).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            #[cfg(feature = "postgres")]
            $crate::db::Pool::Postgres($pool) => $body,
            #[cfg(feature = "sqlite")]
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Which database a [`Store`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A store failure. Authentication answers 503 for [`Unavailable`](Self::Unavailable), never
/// 401 and never an allow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached (connection refused or lost, pool exhausted, TLS).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row with the same key exists (username, email, role name, key id).
    #[error("already exists: {0}")]
    Conflict(String),
    /// What the change names does not exist (user, role, permission).
    #[error("not found: {0}")]
    NotFound(String),
    /// The change or the stored data is invalid (for roles: the policy it would produce does
    /// not validate; nothing was changed).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The URL names no engine this build has.
    #[error("unsupported database URL `{0}` (this build has: {SUPPORTED})")]
    UnsupportedUrl(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A migration applied to the database differs from this build's.
    #[error("migration history mismatch: {0}")]
    MigrationMismatch(String),
}

/// The URL schemes this build connects to.
const SUPPORTED: &str = if cfg!(all(feature = "postgres", feature = "sqlite")) {
    "postgres://, sqlite:"
} else if cfg!(feature = "postgres") {
    "postgres://"
} else {
    "sqlite:"
};

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if is_connection_loss(db.code().as_deref()) => {
                Self::Unavailable(db.message().to_owned())
            }
            _ => Self::Database(error),
        }
    }
}

/// PostgreSQL SQLSTATEs of a server going away: class 08 (connection exception) and 57P01–03
/// (admin shutdown, crash shutdown, cannot connect now).
fn is_connection_loss(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03"))
}

impl StoreError {
    /// Whether the database could not be reached (the caller should answer 503 and retry
    /// later).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Settings of [`Store::connect_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most connections in the pool (default 10; a SQLite memory database always has one).
    pub max_connections: u32,
    /// How long to wait for a free connection before the operation fails as unavailable
    /// (default 5 s).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// Sets [`max_connections`](Self::max_connections).
    #[must_use]
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A database holding the Portcullis tables: PostgreSQL in production (shared by every
/// instance of a service), SQLite embedded. Cheap to clone (the pool is shared).
///
/// ```no_run
/// # async fn run() -> Result<(), portcullis_sqlx::StoreError> {
/// let store = portcullis_sqlx::Store::connect("sqlite://portcullis.db").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The URL to open a `LISTEN` connection with.
    #[cfg(feature = "postgres")]
    url_for_listen: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdSource>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects with the default [`StoreOptions`]: `sqlite://file.db` (created when missing),
    /// `sqlite::memory:`, or `postgres://user:password@host/db`.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for another scheme (or one this build lacks the feature
    /// of), [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects with `options`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await?;
            return Ok(Self {
                pool: Pool::Postgres(pool),
                url_for_listen: url.to_owned(),
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds),
            });
        }
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            use std::str::FromStr as _;
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let mut connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(options.acquire_timeout);
            if !memory {
                connect = connect
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full);
            }
            // Each connection to `:memory:` is a database of its own: one connection, kept.
            let max = if memory { 1 } else { options.max_connections };
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(u32::from(memory))
                .idle_timeout(if memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            return Ok(Self {
                pool: Pool::Sqlite(pool),
                #[cfg(feature = "postgres")]
                url_for_listen: String::new(),
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds),
            });
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::UnsupportedUrl(format!("{scheme}:")))
    }

    /// Uses `clock` for the times the store records (default [`SystemClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `ids` for the ids the store makes: users, audit events (default [`RandomIds`]).
    #[must_use]
    pub fn with_ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// The clock the store records times with (for services built on the store, so one
    /// clock drives both).
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The id source the store makes ids with.
    #[must_use]
    pub fn ids(&self) -> &Arc<dyn IdSource> {
        &self.ids
    }

    pub(crate) fn now(&self) -> Ts {
        Ts::new(self.clock.now())
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Engine::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// The PostgreSQL pool, for an application's own queries (and
    /// [`TenantTransaction`](crate::TenantTransaction)).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[must_use]
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, for an application's own queries.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    #[must_use]
    pub fn sqlite(&self) -> Option<&sqlx::SqlitePool> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool),
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => None,
        }
    }

    /// The URL to open a `LISTEN` connection with (PostgreSQL only).
    #[cfg(feature = "postgres")]
    pub(crate) fn listen_url(&self) -> &str {
        &self.url_for_listen
    }

    /// Creates or updates the Portcullis tables: every embedded migration not yet applied, in
    /// order, in one transaction, under a lock (several instances starting at once apply each
    /// migration once). The history is kept in `portcullis_migrations`, apart from any
    /// migration history of the application's own.
    ///
    /// # Errors
    /// When a migration fails (nothing of it stays), or a migration applied earlier differs
    /// from the embedded one of its version (the database was migrated by another build).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrations = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.description, m.sql(self.engine())));
        let now = self.now();
        let create = "CREATE TABLE IF NOT EXISTS portcullis_migrations (version BIGINT PRIMARY \
                      KEY, description TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT \
                      NOT NULL)";
        on_pool!(self, pool => {
            let mut tx = match self.engine() {
                // SQLite: take the write lock at once, so two instances never both read the
                // history before either writes it.
                Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
                Engine::Postgres => pool.begin().await?,
            };
            if self.engine() == Engine::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(7075886766117520229)")
                    .execute(&mut *tx)
                    .await?;
            }
            // Under the lock: PostgreSQL's IF NOT EXISTS is not safe against a concurrent
            // CREATE.
            sqlx::query(create)
            .execute(&mut *tx)
            .await?;
            let applied: Vec<(i64, String)> =
                sqlx::query_as("SELECT version, checksum FROM portcullis_migrations")
                    .fetch_all(&mut *tx)
                    .await?;
            for (version, description, sql) in migrations {
                let checksum = sha256_hex(sql);
                match applied.iter().find(|(v, _)| *v == version) {
                    Some((_, stored)) if *stored == checksum => continue,
                    Some(_) => {
                        return Err(StoreError::MigrationMismatch(format!(
                            "migration {version} ({description}) applied to this database \
                             differs from this build's"
                        )));
                    }
                    None => {}
                }
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO portcullis_migrations (version, description, checksum, \
                     applied_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(version)
                .bind(description)
                .bind(&checksum)
                .bind(now.0.unix_timestamp().to_string())
                .execute(&mut *tx)
                .await?;
                tracing::info!(version, description, "migration applied");
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Closes every connection; later operations fail as unavailable.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

/// One migration: the same version and meaning on both engines, in each engine's SQL.
struct EmbeddedMigration {
    version: i64,
    description: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

impl EmbeddedMigration {
    fn sql(&self, engine: Engine) -> &'static str {
        match engine {
            Engine::Postgres => self.postgres,
            Engine::Sqlite => self.sqlite,
        }
    }
}

/// The migrations, in order: one history for both engines.
const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "schema",
        postgres: include_str!("../migrations/postgres/0001_schema.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_schema.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "refresh auth time",
        postgres: include_str!("../migrations/postgres/0002_refresh_auth_time.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_refresh_auth_time.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "external identities",
        postgres: include_str!("../migrations/postgres/0003_external_identities.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_external_identities.sql"),
    },
    EmbeddedMigration {
        version: 4,
        description: "second factors",
        postgres: include_str!("../migrations/postgres/0004_second_factors.sql"),
        sqlite: include_str!("../migrations/sqlite/0004_second_factors.sql"),
    },
    EmbeddedMigration {
        version: 5,
        description: "login challenges",
        postgres: include_str!("../migrations/postgres/0005_login_challenges.sql"),
        sqlite: include_str!("../migrations/sqlite/0005_login_challenges.sql"),
    },
];

fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Times as both engines store them: PostgreSQL `TIMESTAMPTZ`, SQLite fixed-width RFC 3339 text
/// in UTC with microseconds (`2026-01-17T12:00:00.000000Z`), so that text order is time order.
/// Both keep microseconds; finer parts are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ts(pub(crate) OffsetDateTime);

impl Ts {
    pub(crate) fn new(at: OffsetDateTime) -> Self {
        let utc = at.to_offset(time::UtcOffset::UTC);
        let micros = utc.microsecond();
        Self(utc.replace_nanosecond(micros * 1000).unwrap_or(utc))
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_ts {
    use super::Ts;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
    use sqlx::{Decode, Encode, Type};
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;

    impl Type<Sqlite> for Ts {
        fn type_info() -> SqliteTypeInfo {
            <String as Type<Sqlite>>::type_info()
        }
    }

    impl<'q> Encode<'q, Sqlite> for Ts {
        fn encode_by_ref(
            &self,
            buf: &mut Vec<SqliteArgumentValue<'q>>,
        ) -> Result<IsNull, BoxDynError> {
            let format = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            );
            Encode::<Sqlite>::encode(self.0.format(&format)?, buf)
        }
    }

    impl<'r> Decode<'r, Sqlite> for Ts {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            let text = <&str as Decode<Sqlite>>::decode(value)?;
            Ok(Ts(time::OffsetDateTime::parse(text, &Rfc3339)?))
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres_ts {
    use super::Ts;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
    use sqlx::{Decode, Encode, Type};
    use time::OffsetDateTime;

    impl Type<Postgres> for Ts {
        fn type_info() -> PgTypeInfo {
            <OffsetDateTime as Type<Postgres>>::type_info()
        }
    }

    impl Encode<'_, Postgres> for Ts {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            Encode::<Postgres>::encode_by_ref(&self.0, buf)
        }
    }

    impl<'r> Decode<'r, Postgres> for Ts {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            Ok(Ts(<OffsetDateTime as Decode<Postgres>>::decode(value)?))
        }
    }
}

/// Reading columns the same way from both engines' rows.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>;
    fn time(&self, column: &str) -> Result<OffsetDateTime, sqlx::Error> {
        self.opt_time(column)?
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: "NULL in a NOT NULL time column".into(),
            })
    }
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
                Ok(sqlx::Row::try_get::<Option<Ts>, _>(self, column)?.map(|t| t.0))
            }
        }
    };
}
#[cfg(feature = "postgres")]
columns_for!(sqlx::postgres::PgRow);
#[cfg(feature = "sqlite")]
columns_for!(sqlx::sqlite::SqliteRow);
