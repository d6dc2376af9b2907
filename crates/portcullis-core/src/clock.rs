//! Injected time and event ids.
//!
//! Everything in Portcullis that compares against "now" (token expiry, certificate validity,
//! policy time windows, audit timestamps) asks a [`Clock`] instead of reading the system time
//! itself, so that expiry and time windows can be tested exactly; audit event ids come from
//! an [`IdSource`] the same way.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::audit::EventId;

/// A source of the current time.
///
/// Implementations must be cheap: authenticators and policy engines call [`Clock::now`] on
/// every request.
///
/// [`SystemClock`](crate::SystemClock) (feature `os`) reads the operating system's clock;
/// [`ManualClock`] moves only when told to.
pub trait Clock: Debug + Send + Sync {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

/// A clock that only moves when told to: for tests of expiry, not-before and time windows.
///
/// ```
/// use portcullis_core::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-17 12:00 UTC));
/// clock.advance(Duration::minutes(30));
/// assert_eq!(clock.now(), datetime!(2026-01-17 12:30 UTC));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock stopped at `now` (converted to UTC).
    #[must_use]
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(now.to_offset(time::UtcOffset::UTC)),
        }
    }

    /// A clock stopped at the given Unix time in seconds.
    ///
    /// Returns `None` when `seconds` is outside the range `time` can represent.
    #[must_use]
    pub fn at_unix(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Self::new)
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) =
            now.to_offset(time::UtcOffset::UTC);
    }

    /// Moves the clock forward (or backward, with a negative duration). Saturates at the ends
    /// of the representable range instead of overflowing.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = now.saturating_add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A source of audit event ids.
///
/// [`RandomIds`](crate::RandomIds) (feature `os`) makes UUID v4s from the system CSPRNG;
/// [`SequentialIds`] counts, for tests that compare whole events.
pub trait IdSource: Debug + Send + Sync {
    /// A new id, never handed out before by this source.
    fn event_id(&self) -> EventId;
}

impl<I: IdSource + ?Sized> IdSource for Arc<I> {
    fn event_id(&self) -> EventId {
        (**self).event_id()
    }
}

impl<I: IdSource + ?Sized> IdSource for &I {
    fn event_id(&self) -> EventId {
        (**self).event_id()
    }
}

/// Ids `00000000-0000-4000-8000-000000000001`, `…002`, … in order (well-formed UUID v4s,
/// predictable on purpose): for tests.
///
/// ```
/// use portcullis_core::{IdSource, SequentialIds};
///
/// let ids = SequentialIds::default();
/// assert_eq!(ids.event_id().as_str(), "00000000-0000-4000-8000-000000000001");
/// assert_eq!(ids.event_id().as_str(), "00000000-0000-4000-8000-000000000002");
/// ```
#[derive(Debug, Default)]
pub struct SequentialIds {
    last: AtomicU64,
}

impl IdSource for SequentialIds {
    fn event_id(&self) -> EventId {
        let n = self.last.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let mut bytes = [0u8; 16];
        let (_, low) = bytes.split_at_mut(8);
        low.copy_from_slice(&n.to_be_bytes());
        EventId::from_random_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn manual_clock_converts_to_utc_and_saturates() {
        let clock = ManualClock::new(datetime!(2026-01-17 14:00 +02:00));
        assert_eq!(clock.now(), datetime!(2026-01-17 12:00 UTC));
        assert_eq!(clock.now().offset(), time::UtcOffset::UTC);
        clock.advance(Duration::MAX);
        let _ = clock.now();
    }

    #[test]
    fn arc_clock_delegates() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(datetime!(2026-01-01 0:00 UTC)));
        assert_eq!(clock.now(), datetime!(2026-01-01 0:00 UTC));
        assert!(ManualClock::at_unix(i64::MAX).is_none());
    }
}
