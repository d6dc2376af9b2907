//! Small sinks: memory (tests and examples), tracing (any subscriber can ship events) and
//! fan-out.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use portcullis_core::{AuditError, AuditEvent, AuditSink};

use crate::redact::Redactor;

/// Keeps events in memory (redacted, like every sink of this crate).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
    redactor: Redactor,
}

impl MemorySink {
    /// An empty sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events recorded so far.
    #[must_use]
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes every event.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn record(&self, mut event: AuditEvent) -> Result<(), AuditError> {
        self.redactor.redact(&mut event);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Emits each event as a `tracing` event on target `portcullis::audit`, with the schema's
/// fields as structured fields, so any subscriber can ship them.
#[derive(Debug, Default)]
pub struct TracingSink {
    redactor: Redactor,
}

impl TracingSink {
    /// A tracing sink.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditSink for TracingSink {
    async fn record(&self, mut event: AuditEvent) -> Result<(), AuditError> {
        self.redactor.redact(&mut event);
        let principal = event.principal.as_ref().map(|p| p.id.as_str());
        let metadata = serde_json::to_string(&event.metadata)?;
        tracing::info!(
            target: "portcullis::audit",
            id = %event.id,
            timestamp = %event.timestamp,
            event_type = event.event_type.as_str(),
            result = event.result.as_str(),
            principal = principal,
            auth_method = event.auth_method.map(|m| m.as_str()),
            source_ip = event.source_ip.map(|ip| ip.to_string()),
            action = event.action.as_deref(),
            resource_type = event.resource_type.as_deref(),
            resource_id = event.resource_id.as_deref(),
            reason = event.reason.as_deref(),
            request_method = event.request_method.as_deref(),
            request_path = event.request_path.as_deref(),
            response_status = event.response_status,
            latency_us = event.latency_us,
            metadata = %metadata,
            "audit"
        );
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Sends every event to several sinks. Every sink is tried; the first error is returned.
#[derive(Debug, Clone, Default)]
pub struct FanoutSink {
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl FanoutSink {
    /// A fan-out to `sinks`.
    #[must_use]
    pub fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        Self { sinks }
    }
}

#[async_trait]
impl AuditSink for FanoutSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.record(event.clone()).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.flush().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
