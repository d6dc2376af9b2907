//! The audit trail: [`AuditEvent`] (one JSON object per line) and the [`AuditSink`] trait.
//!
//! The schema contains the AmateRS audit fields and event types exactly (`id`, `timestamp`,
//! `event_type`, `result`, `principal {id, name, role}`, `auth_method`, `source_ip`), so the
//! `jq` queries of its documentation work on Portcullis files, plus the fields Aethera records
//! for every request (action, resource type and id, user agent, method, path, status,
//! metadata) and the decision reason.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::policy::Decision;
use crate::principal::{AuthMethod, Principal, PrincipalKind};

/// The id of an audit event: a UUID v4 in its hyphenated lowercase form.
///
/// Parsing accepts any non-empty string without control characters, so logs written by other
/// tools (the AmateRS example uses the placeholder `"uuid-v4"`) can still be read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A UUID v4 from 16 random bytes (the version and variant bits are set here).
    #[must_use]
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut text = String::with_capacity(36);
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text.push('-');
            }
            text.push(hex_digit(byte >> 4));
            text.push(hex_digit(byte & 0x0f));
        }
        Self(text)
    }

    /// Wraps an existing id.
    ///
    /// # Errors
    /// When `id` is empty, longer than 128 bytes, or contains a control character.
    pub fn parse(id: impl Into<String>) -> Result<Self, InvalidEventId> {
        let id = id.into();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(InvalidEventId);
        }
        Ok(Self(id))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble & 0x0f), 16).unwrap_or('0')
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The error for an unacceptable [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id must be 1 to 128 bytes without control characters")]
pub struct InvalidEventId;

/// The AmateRS event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEventType {
    /// Login attempts and credential checks (success or failure).
    Authentication,
    /// Permission checks (allowed or denied).
    Authorization,
    /// Administrative operations (role changes, key creation, ...).
    Admin,
    /// Security-related incidents (forged headers, dropped audit events, replayed tokens).
    SecurityViolation,
    /// Configuration changes (policy reloads, key rotation).
    ConfigChange,
}

impl AuditEventType {
    /// The name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Admin => "admin",
            Self::SecurityViolation => "security_violation",
            Self::ConfigChange => "config_change",
        }
    }
}

/// The outcome recorded in an event. Authentication uses `success` / `failure`,
/// authorization `allowed` / `denied` (the AmateRS `jq` example filters on
/// `.result == "denied"`), and `error` marks a failure of the system itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditResult {
    /// The operation succeeded.
    Success,
    /// The operation failed (bad credentials, refused operation).
    Failure,
    /// Authorization allowed the request.
    Allowed,
    /// Authorization denied the request.
    Denied,
    /// The system could not decide (a dependency was down).
    Error,
}

impl AuditResult {
    /// The name used in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

/// The principal as recorded in an event: the AmateRS `{id, name, role}` object, with all
/// roles, the kind and the tenant when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditPrincipal {
    /// Subject id (Aethera's `user_id`).
    pub id: String,
    /// Display name (Aethera's `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The first role (AmateRS records one role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Every role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// What kind of principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PrincipalKind>,
    /// Tenant or organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl AuditPrincipal {
    /// A principal known only by its id (for example the claimed user of a failed login).
    #[must_use]
    pub fn with_id(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            role: None,
            roles: Vec::new(),
            kind: None,
            tenant: None,
        }
    }
}

impl From<&Principal> for AuditPrincipal {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.id().to_owned(),
            name: p.name().map(str::to_owned),
            role: p.roles().first().cloned(),
            roles: p.roles().to_vec(),
            kind: Some(p.kind()),
            tenant: p.tenant().map(str::to_owned),
        }
    }
}

/// One audit event, written as one JSON object per line.
///
/// ```
/// use portcullis_core::{AuditEvent, AuditEventType, AuditResult, Decision, IdSource, SequentialIds};
/// use time::macros::datetime;
///
/// let ids = SequentialIds::default();
/// let event = AuditEvent::new(
///     ids.event_id(),
///     AuditEventType::Authorization,
///     AuditResult::Denied,
///     datetime!(2026-01-17 12:00 UTC),
/// )
/// .with_action("write")
/// .with_resource("collection:models")
/// .with_decision(&Decision::no_match());
///
/// let line = event.to_json_line()?;
/// assert!(line.contains(r#""event_type":"authorization""#));
/// assert!(line.contains(r#""resource_type":"collection","resource_id":"models""#));
/// assert!(!line.contains('\n'));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// Unique id (UUID v4).
    pub id: EventId,
    /// When it happened, RFC 3339 in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The kind of event.
    pub event_type: AuditEventType,
    /// The outcome.
    pub result: AuditResult,
    /// Who, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<AuditPrincipal>,
    /// How they authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// What was attempted: a policy action (`read`) or an application action (`LOGIN`,
    /// `CREATE_PROJECT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The kind of resource (`collection`, `project`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The resource within its type (`datasets`, `42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Why: the decision's explanation or the precise authentication failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_method: Option<String>,
    /// The HTTP path, without the query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
    /// The HTTP status sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    /// The client's `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Time spent handling the request, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Anything else (never secrets: record key ids, token `jti`s and certificate
    /// fingerprints instead).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Tamper evidence: the hash of the previous event of the same trail (hex SHA-256), set by
    /// a chaining sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// Tamper evidence: the hash of this event (hex SHA-256 of its canonical serialization
    /// without this field), set by a chaining sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditEvent {
    /// A new event with the id `id` (from an [`IdSource`](crate::IdSource)) at `timestamp`
    /// (from a [`Clock`](crate::Clock)).
    #[must_use]
    pub fn new(
        id: EventId,
        event_type: AuditEventType,
        result: AuditResult,
        timestamp: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            timestamp: timestamp.to_offset(time::UtcOffset::UTC),
            event_type,
            result,
            principal: None,
            auth_method: None,
            source_ip: None,
            action: None,
            resource_type: None,
            resource_id: None,
            reason: None,
            request_method: None,
            request_path: None,
            response_status: None,
            user_agent: None,
            latency_us: None,
            metadata: Map::new(),
            prev_hash: None,
            hash: None,
        }
    }

    /// Sets the id (for replays and golden tests).
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// Records the principal and how it authenticated.
    #[must_use]
    pub fn with_principal(mut self, principal: &Principal) -> Self {
        self.principal = Some(AuditPrincipal::from(principal));
        self.auth_method = Some(principal.auth_method());
        self
    }

    /// Records a principal known only by id or partially.
    #[must_use]
    pub fn with_audit_principal(mut self, principal: AuditPrincipal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// Records the authentication method.
    #[must_use]
    pub fn with_auth_method(mut self, method: AuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// Records the client's address.
    #[must_use]
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Records the action.
    #[must_use]
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Records a resource name, split at its first `:` into type and id
    /// (`collection:datasets` → `collection`, `datasets`; `server` → type `server`).
    #[must_use]
    pub fn with_resource(mut self, resource: &str) -> Self {
        match resource.split_once(':') {
            Some((kind, id)) => {
                self.resource_type = Some(kind.to_owned());
                self.resource_id = Some(id.to_owned());
            }
            None => {
                self.resource_type = Some(resource.to_owned());
                self.resource_id = None;
            }
        }
        self
    }

    /// Records the resource type and id separately.
    #[must_use]
    pub fn with_resource_parts(
        mut self,
        resource_type: impl Into<String>,
        resource_id: Option<String>,
    ) -> Self {
        self.resource_type = Some(resource_type.into());
        self.resource_id = resource_id;
        self
    }

    /// Records a policy decision's explanation (the result is not changed).
    #[must_use]
    pub fn with_decision(mut self, decision: &Decision) -> Self {
        self.reason = Some(decision.to_string());
        self.metadata.insert(
            "decision".to_owned(),
            Value::String(decision.reason_code().to_owned()),
        );
        self
    }

    /// Records a free-form reason (for example an [`AuthError`](crate::AuthError)'s
    /// `Display`).
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Records the HTTP exchange.
    #[must_use]
    pub fn with_http(
        mut self,
        method: impl Into<String>,
        path: impl Into<String>,
        status: Option<u16>,
    ) -> Self {
        self.request_method = Some(method.into());
        self.request_path = Some(path.into());
        self.response_status = status;
        self
    }

    /// Records the client's `User-Agent`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Records the handling time.
    #[must_use]
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency_us = Some(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The event as one line of JSON, without the trailing newline. Control characters in
    /// any field are escaped by JSON, so a value can never start a second line.
    ///
    /// # Errors
    /// Only if a metadata value cannot be serialized.
    pub fn to_json_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Why an audit sink could not accept or write events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The sink refuses new events (a full queue with a fail-closed policy). The request that
    /// produced the event must be refused.
    #[error("audit sink refused the event: {0}")]
    Refused(String),
    /// The sink has been shut down.
    #[error("audit sink is closed")]
    Closed,
    /// Writing failed.
    #[error("audit write failed: {0}")]
    Io(#[from] std::io::Error),
    /// An event could not be serialized.
    #[error("audit event could not be serialized: {0}")]
    Serialization(#[from] serde_json::Error),
    /// Any other backend failure.
    #[error("audit backend failed: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

/// Where audit events go: a file, a database, a log pipeline.
///
/// `record` returns once the sink has accepted the event (for a buffered sink, once it is
/// queued); `flush` returns once everything accepted before it is durably written.
#[async_trait]
pub trait AuditSink: fmt::Debug + Send + Sync {
    /// Accepts one event.
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Accepts several events at once. Sinks that write in batches override this.
    async fn record_batch(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        for event in events {
            self.record(event).await?;
        }
        Ok(())
    }

    /// Waits until every accepted event is written.
    async fn flush(&self) -> Result<(), AuditError>;
}

#[async_trait]
impl<S: AuditSink + ?Sized> AuditSink for std::sync::Arc<S> {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        (**self).record(event).await
    }

    async fn record_batch(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        (**self).record_batch(events).await
    }

    async fn flush(&self) -> Result<(), AuditError> {
        (**self).flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdSource, SequentialIds};

    #[test]
    fn event_id_parsing() {
        assert!(EventId::parse("uuid-v4").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a\nb").is_err());
        assert!(EventId::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn resource_split() {
        let e = AuditEvent::new(
            SequentialIds::default().event_id(),
            AuditEventType::Authorization,
            AuditResult::Allowed,
            OffsetDateTime::UNIX_EPOCH,
        );
        let e1 = e.clone().with_resource("collection:a:b");
        assert_eq!(e1.resource_type.as_deref(), Some("collection"));
        assert_eq!(e1.resource_id.as_deref(), Some("a:b"));
        let e2 = e.with_resource("server");
        assert_eq!(e2.resource_type.as_deref(), Some("server"));
        assert_eq!(e2.resource_id, None);
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        let e = AuditEvent::new(
            SequentialIds::default().event_id(),
            AuditEventType::Authorization,
            AuditResult::Denied,
            OffsetDateTime::UNIX_EPOCH,
        )
        .with_resource("collection:x\n{\"event_type\":\"admin\"}\r\u{2028}")
        .with_user_agent("evil\u{0}\u{1b}[31m");
        let line = e.to_json_line().unwrap();
        assert!(!line.contains('\n'));
        assert!(!line.contains('\r'));
        assert!(!line.contains('\u{0}'));
        assert!(!line.contains('\u{1b}'));
        let back: AuditEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
    }
}
