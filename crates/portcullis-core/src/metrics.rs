//! [`Metrics`]: the hook through which the layers, the audit queue and the JWKS cache count
//! what happens, so that an application exports the counts with whichever metrics library it
//! uses. [`Counters`] is a ready implementation whose [`Counters::snapshot`] an exporter reads
//! (and which renders itself in the Prometheus text format).

use std::fmt::{self, Debug, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::{Decision, DecisionReason, Effect};

/// How the authentication of one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthenticationOutcome {
    /// Credentials were accepted.
    Authenticated,
    /// No credentials, and none were needed (a public path, or optional mode).
    Anonymous,
    /// Refused: 401 (or 429 for a throttled credential).
    Refused,
    /// A dependency was down: 503.
    Unavailable,
}

impl AuthenticationOutcome {
    /// `authenticated`, `anonymous`, `refused` or `unavailable`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Anonymous => "anonymous",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
        }
    }
}

/// One thing that happened, as [`Metrics::record`] is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Measurement<'a> {
    /// The authentication layer finished with a request.
    Authentication {
        /// How it ended.
        outcome: AuthenticationOutcome,
        /// The authenticator that accepted or refused the credentials, when one did.
        authenticator: Option<&'a str>,
    },
    /// The authorization layer or a guard decided (its effect, its reason).
    Decision(&'a Decision),
    /// The audit layer recorded an event, or the sink refused it (the request then got 503).
    AuditEvent {
        /// Whether the sink took it.
        recorded: bool,
    },
    /// Events waiting in an audit queue, after one was queued or a batch was written.
    AuditQueueDepth(usize),
    /// A JWKS or OpenID discovery document was fetched.
    JwksFetch {
        /// Whether the fetch gave a usable document.
        ok: bool,
    },
}

/// Receives [`Measurement`]s. Called on the request path: keep it to a few atomic operations.
/// Never given a secret (no credential, token or key reaches it).
pub trait Metrics: Debug + Send + Sync {
    /// Counts one measurement.
    fn record(&self, measurement: Measurement<'_>);
}

/// Atomic counters for every [`Measurement`]: pass one `Arc<Counters>` to the layers, read it
/// with [`Counters::snapshot`], or serve [`Counters::prometheus`] at `/metrics`.
///
/// ```
/// use portcullis_core::{AuthenticationOutcome, Counters, Decision, Measurement, Metrics};
///
/// let counters = Counters::default();
/// counters.record(Measurement::Authentication {
///     outcome: AuthenticationOutcome::Refused,
///     authenticator: Some("jwt"),
/// });
/// counters.record(Measurement::Decision(&Decision::no_match()));
/// let snapshot = counters.snapshot();
/// assert_eq!((snapshot.refused, snapshot.denied), (1, 1));
/// assert!(counters.prometheus().contains("portcullis_authentications_total{outcome=\"refused\"} 1"));
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    authenticated: AtomicU64,
    anonymous: AtomicU64,
    refused: AtomicU64,
    unavailable: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    decision_errors: AtomicU64,
    audit_recorded: AtomicU64,
    audit_refused: AtomicU64,
    audit_queue_depth: AtomicU64,
    audit_queue_peak: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_fetch_failures: AtomicU64,
}

/// The values of [`Counters`] at one moment (totals since start, and the queue depth last
/// reported).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Requests whose credentials were accepted.
    pub authenticated: u64,
    /// Requests that passed without credentials.
    pub anonymous: u64,
    /// Requests refused by the authentication layer.
    pub refused: u64,
    /// Requests answered 503 by the authentication layer.
    pub unavailable: u64,
    /// Decisions that allowed.
    pub allowed: u64,
    /// Decisions that denied (errors included).
    pub denied: u64,
    /// Denials because the engine failed or the request was invalid.
    pub decision_errors: u64,
    /// Audit events the sink took.
    pub audit_recorded: u64,
    /// Audit events the sink refused.
    pub audit_refused: u64,
    /// Events waiting in the audit queue, as last reported.
    pub audit_queue_depth: u64,
    /// The most events ever reported waiting in the audit queue.
    pub audit_queue_peak: u64,
    /// JWKS and discovery fetches that succeeded.
    pub jwks_fetches: u64,
    /// JWKS and discovery fetches that failed.
    pub jwks_fetch_failures: u64,
}

impl Metrics for Counters {
    fn record(&self, measurement: Measurement<'_>) {
        let counter = match measurement {
            Measurement::Authentication { outcome, .. } => match outcome {
                AuthenticationOutcome::Authenticated => &self.authenticated,
                AuthenticationOutcome::Anonymous => &self.anonymous,
                AuthenticationOutcome::Refused => &self.refused,
                AuthenticationOutcome::Unavailable => &self.unavailable,
            },
            Measurement::Decision(decision) => {
                if matches!(
                    decision.reason(),
                    DecisionReason::InvalidRequest(_) | DecisionReason::EvaluationError(_)
                ) {
                    self.decision_errors.fetch_add(1, Ordering::Relaxed);
                }
                match decision.effect() {
                    Effect::Allow => &self.allowed,
                    Effect::Deny => &self.denied,
                }
            }
            Measurement::AuditEvent { recorded: true } => &self.audit_recorded,
            Measurement::AuditEvent { recorded: false } => &self.audit_refused,
            Measurement::AuditQueueDepth(depth) => {
                let depth = u64::try_from(depth).unwrap_or(u64::MAX);
                self.audit_queue_depth.store(depth, Ordering::Relaxed);
                self.audit_queue_peak.fetch_max(depth, Ordering::Relaxed);
                return;
            }
            Measurement::JwksFetch { ok: true } => &self.jwks_fetches,
            Measurement::JwksFetch { ok: false } => &self.jwks_fetch_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// The current values.
    #[must_use]
    pub fn snapshot(&self) -> CounterSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CounterSnapshot {
            authenticated: read(&self.authenticated),
            anonymous: read(&self.anonymous),
            refused: read(&self.refused),
            unavailable: read(&self.unavailable),
            allowed: read(&self.allowed),
            denied: read(&self.denied),
            decision_errors: read(&self.decision_errors),
            audit_recorded: read(&self.audit_recorded),
            audit_refused: read(&self.audit_refused),
            audit_queue_depth: read(&self.audit_queue_depth),
            audit_queue_peak: read(&self.audit_queue_peak),
            jwks_fetches: read(&self.jwks_fetches),
            jwks_fetch_failures: read(&self.jwks_fetch_failures),
        }
    }

    /// The current values in the Prometheus text exposition format (version 0.0.4).
    #[must_use]
    pub fn prometheus(&self) -> String {
        self.snapshot().to_string()
    }
}

impl fmt::Display for CounterSnapshot {
    /// The Prometheus text exposition format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "portcullis_authentications_total",
            "counter",
            "Requests by authentication outcome.",
            &[
                ("{outcome=\"authenticated\"}", self.authenticated),
                ("{outcome=\"anonymous\"}", self.anonymous),
                ("{outcome=\"refused\"}", self.refused),
                ("{outcome=\"unavailable\"}", self.unavailable),
            ],
        );
        family(
            "portcullis_decisions_total",
            "counter",
            "Authorization decisions by effect.",
            &[
                ("{effect=\"allow\"}", self.allowed),
                ("{effect=\"deny\"}", self.denied),
            ],
        );
        family(
            "portcullis_decision_errors_total",
            "counter",
            "Denials because the policy could not be evaluated or the request was invalid.",
            &[("", self.decision_errors)],
        );
        family(
            "portcullis_audit_events_total",
            "counter",
            "Audit events by whether the sink took them.",
            &[
                ("{result=\"recorded\"}", self.audit_recorded),
                ("{result=\"refused\"}", self.audit_refused),
            ],
        );
        family(
            "portcullis_audit_queue_depth",
            "gauge",
            "Audit events waiting to be written.",
            &[("", self.audit_queue_depth)],
        );
        family(
            "portcullis_audit_queue_depth_peak",
            "gauge",
            "The most audit events ever waiting to be written.",
            &[("", self.audit_queue_peak)],
        );
        family(
            "portcullis_jwks_fetches_total",
            "counter",
            "JWKS and OpenID discovery fetches by result.",
            &[
                ("{result=\"ok\"}", self.jwks_fetches),
                ("{result=\"failed\"}", self.jwks_fetch_failures),
            ],
        );
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_measurement_moves_its_counter() {
        let counters = Counters::default();
        let error = Decision::error("policy not loaded");
        let all = [
            Measurement::Authentication {
                outcome: AuthenticationOutcome::Authenticated,
                authenticator: Some("jwt"),
            },
            Measurement::Authentication {
                outcome: AuthenticationOutcome::Anonymous,
                authenticator: None,
            },
            Measurement::Authentication {
                outcome: AuthenticationOutcome::Refused,
                authenticator: None,
            },
            Measurement::Authentication {
                outcome: AuthenticationOutcome::Unavailable,
                authenticator: Some("jwt"),
            },
            Measurement::Decision(&Decision::superuser()),
            Measurement::Decision(&error),
            Measurement::AuditEvent { recorded: true },
            Measurement::AuditEvent { recorded: false },
            Measurement::AuditQueueDepth(7),
            Measurement::JwksFetch { ok: true },
            Measurement::JwksFetch { ok: false },
        ];
        for measurement in all {
            counters.record(measurement);
        }
        let s = counters.snapshot();
        assert_eq!(
            [
                s.authenticated,
                s.anonymous,
                s.refused,
                s.unavailable,
                s.allowed,
                s.denied,
                s.decision_errors,
                s.audit_recorded,
                s.audit_refused,
                s.audit_queue_depth,
                s.jwks_fetches,
                s.jwks_fetch_failures,
            ],
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 7, 1, 1]
        );
        counters.record(Measurement::AuditQueueDepth(2));
        assert_eq!(
            counters.snapshot().audit_queue_depth,
            2,
            "a gauge, not a sum"
        );
    }

    #[test]
    fn the_exposition_format_is_well_formed() {
        let text = Counters::default().prometheus();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                assert!(
                    rest.starts_with("HELP portcullis_") || rest.starts_with("TYPE portcullis_")
                );
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("portcullis_"), "{line}");
            assert_eq!(value, "0", "{line}");
            assert_eq!(
                name.matches('{').count(),
                name.matches('}').count(),
                "{line}"
            );
        }
        assert_eq!(text.matches("# TYPE").count(), 7);
    }

    #[test]
    fn the_queue_peak_is_the_highest_depth_reported() {
        let counters = Counters::default();
        for depth in [3, 40, 7] {
            counters.record(Measurement::AuditQueueDepth(depth));
        }
        let snapshot = counters.snapshot();
        assert_eq!(
            (snapshot.audit_queue_depth, snapshot.audit_queue_peak),
            (7, 40)
        );
        assert!(
            counters
                .prometheus()
                .contains("portcullis_audit_queue_depth_peak 40")
        );
    }
}
