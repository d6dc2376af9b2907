//! The audit trail in the `audit_logs` table: [`SqlAudit`] is a sink that writes batches in
//! one multi-row `INSERT` and an [`AuditQuery`] with the Aethera filters, offset and keyset
//! pagination; [`SqlAuditWriter`] puts it behind `portcullis_audit::BufferedSink`'s queue.

use std::borrow::BorrowMut;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use portcullis_core::{AuditError, AuditEvent, AuditFilter, AuditQuery, AuditSink};

use crate::db::{Store, StoreError, Ts, on_pool};

/// The columns of one event, as inserted.
pub(crate) struct EventRow {
    id: String,
    timestamp: Ts,
    event_type: &'static str,
    result: &'static str,
    tenant_id: Option<String>,
    user_id: Option<String>,
    username: Option<String>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    request_method: Option<String>,
    request_path: Option<String>,
    response_status: Option<i32>,
    event: String,
}

impl EventRow {
    pub(crate) fn new(event: &AuditEvent) -> Result<Self, serde_json::Error> {
        let principal = event.principal.as_ref();
        Ok(Self {
            id: event.id.as_str().to_owned(),
            timestamp: Ts::new(event.timestamp),
            event_type: event.event_type.as_str(),
            result: event.result.as_str(),
            tenant_id: principal.and_then(|p| p.tenant.clone()),
            user_id: principal.map(|p| p.id.clone()),
            username: principal.and_then(|p| p.name.clone()),
            action: event.action.clone(),
            resource_type: event.resource_type.clone(),
            resource_id: event.resource_id.clone(),
            ip_address: event.source_ip.map(|ip| ip.to_string()),
            user_agent: event.user_agent.clone(),
            request_method: event.request_method.clone(),
            request_path: event.request_path.clone(),
            response_status: event.response_status.map(i32::from),
            event: event.to_json_line()?,
        })
    }
}

const INSERT: &str = "INSERT INTO audit_logs (id, \"timestamp\", event_type, result, tenant_id, \
                      user_id, username, action, resource_type, resource_id, ip_address, \
                      user_agent, request_method, request_path, response_status, event) VALUES ";
const PARAMS_PER_ROW: usize = 16;
/// Rows per statement (320 parameters). Binding costs SQLite more per parameter the longer
/// the statement, so short statements in one transaction are faster there, and PostgreSQL is
/// as fast with them as with long ones (see the `store` bench).
const ROWS_PER_INSERT: usize = 20;

/// The `INSERT` of `rows` events. Ids are unique: writing a batch again after a failure whose
/// commit did happen adds nothing (`ON CONFLICT DO NOTHING`).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(INSERT.len() + rows * 90 + 32);
    sql.push_str(INSERT);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for param in 0..PARAMS_PER_ROW {
            if param > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(row * PARAMS_PER_ROW + param + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

/// Inserts `rows` through `$executor` (a pool or a transaction of either engine).
macro_rules! insert_events {
    ($executor:expr, $rows:expr) => {{
        let mut inserted: u64 = 0;
        for chunk in $rows.chunks($crate::audit::rows_per_insert()) {
            let sql = $crate::audit::insert_sql_for(chunk.len());
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = $crate::audit::BindEvent::bind_event(query, row);
            }
            inserted += query.execute(&mut *$executor).await?.rows_affected();
        }
        inserted
    }};
}
pub(crate) use insert_events;

pub(crate) fn rows_per_insert() -> usize {
    ROWS_PER_INSERT
}

pub(crate) fn insert_sql_for(rows: usize) -> String {
    insert_sql(rows)
}

/// Binding an event's columns to either engine's query.
pub(crate) trait BindEvent<'q>: Sized {
    fn bind_event(self, row: &'q EventRow) -> Self;
}

macro_rules! bind_event {
    ($db:ty, $args:ty) => {
        impl<'q> BindEvent<'q> for sqlx::query::Query<'q, $db, $args> {
            fn bind_event(self, row: &'q EventRow) -> Self {
                self.bind(&row.id)
                    .bind(row.timestamp)
                    .bind(row.event_type)
                    .bind(row.result)
                    .bind(&row.tenant_id)
                    .bind(&row.user_id)
                    .bind(&row.username)
                    .bind(&row.action)
                    .bind(&row.resource_type)
                    .bind(&row.resource_id)
                    .bind(&row.ip_address)
                    .bind(&row.user_agent)
                    .bind(&row.request_method)
                    .bind(&row.request_path)
                    .bind(row.response_status)
                    .bind(&row.event)
            }
        }
    };
}
#[cfg(feature = "postgres")]
bind_event!(sqlx::Postgres, sqlx::postgres::PgArguments);
#[cfg(feature = "sqlite")]
bind_event!(sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>);

/// Where the next page of a keyset-paginated query starts: opaque to clients (send back what
/// [`AuditPage::next`] gave).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor(i64);

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cursor that is not one [`AuditPage::next`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid audit cursor")]
pub struct InvalidCursor;

impl FromStr for AuditCursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<i64>() {
            Ok(seq) if seq >= 0 => Ok(Self(seq)),
            _ => Err(InvalidCursor),
        }
    }
}

/// One page of a keyset-paginated query.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events, oldest first.
    pub events: Vec<AuditEvent>,
    /// Where the next page starts, when there may be one.
    pub next: Option<AuditCursor>,
}

/// The `audit_logs` table as a sink and a query. Each `record`/`record_batch` commits before
/// it returns; for requests that must not wait on the database, put a [`SqlAuditWriter`]
/// behind a `portcullis_audit::BufferedSink`.
#[derive(Debug, Clone)]
pub struct SqlAudit {
    store: Store,
}

impl Store {
    /// The audit trail in this database.
    #[must_use]
    pub fn audit(&self) -> SqlAudit {
        SqlAudit {
            store: self.clone(),
        }
    }
}

fn backend(error: StoreError) -> AuditError {
    AuditError::Backend {
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}

/// The most events one query returns.
pub const MAX_PAGE: usize = 1000;

impl SqlAudit {
    /// Writes `events` in one transaction (multi-row inserts), returning how many were new.
    ///
    /// # Errors
    /// When an event cannot be serialized or the database fails; nothing is written then.
    pub async fn insert(
        &self,
        events: &[impl std::borrow::Borrow<AuditEvent>],
    ) -> Result<u64, StoreError> {
        let rows = events
            .iter()
            .map(|e| EventRow::new(e.borrow()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let inserted = on_pool!(self.store, pool => {
            let mut tx = pool.begin().await?;
            let inserted = insert_events!(tx, rows);
            tx.commit().await?;
            inserted
        });
        Ok(inserted)
    }

    /// Events matching `filter` after `after` (from the start when `None`), oldest first, at
    /// most `limit` (capped at [`MAX_PAGE`]). Unlike an offset, a cursor costs the same on the
    /// millionth page as on the first.
    ///
    /// # Errors
    /// When the database fails or a stored event does not parse.
    pub async fn page(
        &self,
        filter: &AuditFilter,
        after: Option<AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.min(MAX_PAGE);
        let rows = self.select(filter, after, 0, limit).await?;
        let next = if rows.len() == limit && limit > 0 {
            rows.last().map(|(seq, _)| AuditCursor(*seq))
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.into_iter().map(|(_, event)| event).collect(),
            next,
        })
    }

    async fn select(
        &self,
        filter: &AuditFilter,
        after: Option<AuditCursor>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        let equalities = [
            ("user_id", filter.principal_id_value()),
            ("event_type", filter.event_type_value().map(|t| t.as_str())),
            ("result", filter.result_value().map(|r| r.as_str())),
            ("action", filter.action_value()),
            ("resource_type", filter.resource_type_value()),
            ("resource_id", filter.resource_id_value()),
        ];
        for (column, value) in equalities {
            if let Some(value) = value {
                texts.push(value);
                conditions.push(format!("{column} = ${}", texts.len()));
            }
        }
        let (from, to) = filter.time_range();
        let mut n = texts.len();
        let mut times = Vec::new();
        if let Some(from) = from {
            n += 1;
            times.push(Ts::new(from));
            conditions.push(format!("\"timestamp\" >= ${n}"));
        }
        if let Some(to) = to {
            n += 1;
            times.push(Ts::new(to));
            conditions.push(format!("\"timestamp\" < ${n}"));
        }
        if let Some(after) = after {
            conditions.push(format!("seq > {}", after.0));
        }
        let mut sql = String::from("SELECT seq, event FROM audit_logs");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        // Both values are numbers formatted here, never text from a request.
        sql.push_str(&format!(" ORDER BY seq LIMIT {limit} OFFSET {offset}"));
        let rows: Vec<(i64, String)> = on_pool!(self.store, pool => {
            let mut query = sqlx::query_as(&sql);
            for text in &texts {
                query = query.bind(*text);
            }
            for time in &times {
                query = query.bind(*time);
            }
            query.fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(seq, line)| {
                serde_json::from_str(&line)
                    .map(|event| (seq, event))
                    .map_err(|e| StoreError::Invalid(format!("audit event {seq}: {e}")))
            })
            .collect()
    }

    /// How many events the table holds.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self.store, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs").fetch_one(pool).await?
        });
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl AuditSink for SqlAudit {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.insert(&[event]).await.map(drop).map_err(backend)
    }

    async fn record_batch(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.insert(&events).await.map(drop).map_err(backend)
    }

    /// Nothing to do: every accepted event is committed.
    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[async_trait]
impl AuditQuery for SqlAudit {
    async fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let rows = self
            .select(filter, None, offset, limit.min(MAX_PAGE))
            .await
            .map_err(backend)?;
        Ok(rows.into_iter().map(|(_, event)| event).collect())
    }
}

/// The `audit_logs` table as the writer of a `portcullis_audit::BufferedSink`: requests only
/// queue their events, and the sink's writer thread inserts them in batches, retrying while the
/// database is away (with the sink's overflow policy deciding what a full queue does).
///
/// ```no_run
/// # async fn run(store: portcullis_sqlx::Store) -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_audit::{BufferConfig, BufferedSink};
/// use portcullis_sqlx::SqlAuditWriter;
///
/// let sink = BufferedSink::new(SqlAuditWriter::new(&store), BufferConfig::default())?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SqlAuditWriter {
    audit: SqlAudit,
    runtime: tokio::runtime::Handle,
}

impl SqlAuditWriter {
    /// A writer for `store`'s table, running its queries on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn new(store: &Store) -> Self {
        Self {
            audit: store.audit(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl portcullis_audit::BatchWriter for SqlAuditWriter {
    fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        let events: Vec<&AuditEvent> = events.iter().map(|e| e.borrow()).collect();
        self.runtime
            .block_on(self.audit.insert(&events))
            .map(drop)
            .map_err(backend)
    }

    /// Nothing to do: each batch is committed.
    fn sync(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
}
