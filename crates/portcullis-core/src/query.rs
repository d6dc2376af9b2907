//! Reading an audit trail back: [`AuditFilter`] and the [`AuditQuery`] trait that the JSON
//! Lines reader, database stores and the `GET /audit/logs` router share.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink};

/// Which events to return: every field that is set must match.
///
/// ```
/// use portcullis_core::{AuditFilter, AuditResult};
///
/// let filter = AuditFilter::new().principal_id("alice").result(AuditResult::Denied);
/// assert_eq!(filter.principal_id_value(), Some("alice"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AuditFilter {
    principal_id: Option<String>,
    event_type: Option<AuditEventType>,
    result: Option<AuditResult>,
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// A filter that matches every event.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Events of this principal (`principal.id`, Aethera `user_id`).
    #[must_use]
    pub fn principal_id(mut self, id: impl Into<String>) -> Self {
        self.principal_id = Some(id.into());
        self
    }

    /// Events of this type.
    #[must_use]
    pub fn event_type(mut self, event_type: AuditEventType) -> Self {
        self.event_type = Some(event_type);
        self
    }

    /// Events with this result.
    #[must_use]
    pub fn result(mut self, result: AuditResult) -> Self {
        self.result = Some(result);
        self
    }

    /// Events of this action (Aethera `action`).
    #[must_use]
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Events on resources of this type.
    #[must_use]
    pub fn resource_type(mut self, resource_type: impl Into<String>) -> Self {
        self.resource_type = Some(resource_type.into());
        self
    }

    /// Events on this resource id.
    #[must_use]
    pub fn resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }

    /// Events at or after this time.
    #[must_use]
    pub fn from(mut self, from: OffsetDateTime) -> Self {
        self.from = Some(from);
        self
    }

    /// Events before this time.
    #[must_use]
    pub fn to(mut self, to: OffsetDateTime) -> Self {
        self.to = Some(to);
        self
    }

    /// The principal id asked for, if any.
    #[must_use]
    pub fn principal_id_value(&self) -> Option<&str> {
        self.principal_id.as_deref()
    }

    /// The event type asked for, if any.
    #[must_use]
    pub fn event_type_value(&self) -> Option<AuditEventType> {
        self.event_type
    }

    /// The result asked for, if any.
    #[must_use]
    pub fn result_value(&self) -> Option<AuditResult> {
        self.result
    }

    /// The action asked for, if any.
    #[must_use]
    pub fn action_value(&self) -> Option<&str> {
        self.action.as_deref()
    }

    /// The resource type asked for, if any.
    #[must_use]
    pub fn resource_type_value(&self) -> Option<&str> {
        self.resource_type.as_deref()
    }

    /// The resource id asked for, if any.
    #[must_use]
    pub fn resource_id_value(&self) -> Option<&str> {
        self.resource_id.as_deref()
    }

    /// The time range asked for: at or after the first, before the second.
    #[must_use]
    pub fn time_range(&self) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        (self.from, self.to)
    }

    /// Whether `event` matches.
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        eq(
            &self.principal_id,
            event.principal.as_ref().map(|p| p.id.as_str()),
        ) && self.event_type.is_none_or(|t| t == event.event_type)
            && self.result.is_none_or(|r| r == event.result)
            && eq(&self.action, event.action.as_deref())
            && eq(&self.resource_type, event.resource_type.as_deref())
            && eq(&self.resource_id, event.resource_id.as_deref())
            && self.from.is_none_or(|from| event.timestamp >= from)
            && self.to.is_none_or(|to| event.timestamp < to)
    }
}

/// Paged queries over a stored audit trail: what `GET /audit/logs` serves. The JSON Lines
/// reader (`portcullis_audit::AuditReader`) implements it; database stores implement it too.
#[async_trait]
pub trait AuditQuery: fmt::Debug + Send + Sync {
    /// Events matching `filter`, oldest first, skipping `offset` and returning at most
    /// `limit`.
    async fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError>;
}

#[async_trait]
impl<Q: AuditQuery + ?Sized> AuditQuery for Arc<Q> {
    async fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        (**self).query(filter, offset, limit).await
    }
}

/// An [`AuditQuery`] that flushes a sink before each query, so that a query sees every event
/// recorded before it (a buffered sink may otherwise still hold the newest ones). Each query
/// then waits for one write; meant for an operator endpoint such as `GET /audit/logs`, not
/// for hot paths.
#[derive(Debug)]
pub struct FlushingQuery<Q> {
    sink: Arc<dyn AuditSink>,
    inner: Q,
}

impl<Q: AuditQuery> FlushingQuery<Q> {
    /// Queries `inner` after flushing `sink`.
    pub fn new(sink: Arc<dyn AuditSink>, inner: Q) -> Self {
        Self { sink, inner }
    }
}

#[async_trait]
impl<Q: AuditQuery> AuditQuery for FlushingQuery<Q> {
    async fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        self.sink.flush().await?;
        self.inner.query(filter, offset, limit).await
    }
}
