//! Injected time.
//!
//! Everything in Portcullis that compares against "now" (token expiry, certificate validity,
//! policy time windows, audit timestamps) asks a [`Clock`] instead of reading the system time
//! itself, so that expiry and time windows can be tested exactly.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// A source of the current time.
///
/// Implementations must be cheap: authenticators and policy engines call [`Clock::now`] on
/// every request.
///
/// ```
/// use portcullis_core::{Clock, SystemClock};
///
/// let now = SystemClock.now();
/// assert!(now.unix_timestamp() > 1_700_000_000);
/// ```
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

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
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
