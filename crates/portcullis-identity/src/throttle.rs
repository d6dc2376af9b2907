//! Failed-login throttling per account and per client address, with a lockout of fixed length
//! that failures during the lockout do not extend.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::Clock;
use time::OffsetDateTime;

/// How many failures lock a key out, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleLimits {
    /// Failures within [`window`](Self::window) that start a lockout.
    pub max_failures: u32,
    /// The window failures are counted in, from the first.
    pub window: Duration,
    /// How long a lockout lasts. Attempts during it are refused and counted nowhere: an
    /// attacker cannot make it longer, and the owner can log in once it ends.
    pub lockout: Duration,
}

impl ThrottleLimits {
    /// `max_failures` in `window` lock out for `lockout`.
    #[must_use]
    pub const fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            max_failures,
            window,
            lockout,
        }
    }
}

/// The throttle of [`crate::Identity`]: per account (5 failures in 15 minutes lock it for 15
/// minutes, by default) and per client IP address (20 in 15 minutes lock the address for 15
/// minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Per account (keyed by the login name as typed, lowercased, so that unknown names are
    /// throttled like known ones).
    pub account: ThrottleLimits,
    /// Per client address.
    pub ip: ThrottleLimits,
    /// At most this many keys are tracked (default 100 000); past that, the key whose last
    /// failure is oldest is forgotten (and a warning logged).
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let quarter = Duration::from_secs(15 * 60);
        Self {
            account: ThrottleLimits::new(5, quarter, quarter),
            ip: ThrottleLimits::new(20, quarter, quarter),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: OffsetDateTime,
    last_failure: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

/// Counts failures per key (`account:alice`, `ip:192.0.2.1`) in this process.
///
/// Each instance counts its own: behind a load balancer of `n` instances an attacker gets up
/// to `n` times the limit. Shared counting belongs to the rate-limiting layer.
#[derive(Clone)]
pub struct Throttle {
    config: ThrottleConfig,
    clock: Arc<dyn Clock>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Which key refused an attempt, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// The account is locked out: answer as for a wrong password (no enumeration).
    Account {
        /// When the lockout ends.
        until: OffsetDateTime,
    },
    /// The client address is: answer 429 with `Retry-After`.
    Ip {
        /// When the lockout ends.
        until: OffsetDateTime,
    },
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl Throttle {
    /// A throttle reading time from `clock`.
    #[must_use]
    pub fn new(config: ThrottleConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves counts that are still counts.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an attempt for `account` from `ip` may go ahead. The address is checked first.
    ///
    /// # Errors
    /// [`Locked`] with the key that refused.
    pub fn check(&self, account: &str, ip: Option<std::net::IpAddr>) -> Result<(), Locked> {
        let now = self.clock.now();
        let entries = self.lock();
        if let Some(ip) = ip
            && let Some(until) = locked(entries.get(&ip_key(ip)), now)
        {
            return Err(Locked::Ip { until });
        }
        if let Some(until) = locked(entries.get(&account_key(account)), now) {
            return Err(Locked::Account { until });
        }
        Ok(())
    }

    /// Records a failed attempt for `account` from `ip`.
    pub fn failure(&self, account: &str, ip: Option<std::net::IpAddr>) {
        let now = self.clock.now();
        let mut entries = self.lock();
        self.count(&mut entries, account_key(account), self.config.account, now);
        if let Some(ip) = ip {
            self.count(&mut entries, ip_key(ip), self.config.ip, now);
        }
    }

    /// Records a successful login: the account's failures are forgotten (the address's are
    /// not, or an attacker could clear them by logging in to an account of their own).
    pub fn success(&self, account: &str) {
        self.lock().remove(&account_key(account));
    }

    fn count(
        &self,
        entries: &mut HashMap<String, Entry>,
        key: String,
        limits: ThrottleLimits,
        now: OffsetDateTime,
    ) {
        if !entries.contains_key(&key) && entries.len() >= self.config.capacity {
            evict(entries, now);
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            window_start: now,
            last_failure: now,
            locked_until: None,
        });
        match entry.locked_until {
            // During a lockout nothing counts: it ends when it was set to.
            Some(until) if until > now => return,
            Some(_) => {
                *entry = Entry {
                    failures: 0,
                    window_start: now,
                    last_failure: now,
                    locked_until: None,
                };
            }
            None => {}
        }
        if now - entry.window_start > to_time(limits.window) {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= limits.max_failures {
            entry.locked_until = Some(now + to_time(limits.lockout));
        }
    }
}

fn locked(entry: Option<&Entry>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    entry
        .and_then(|e| e.locked_until)
        .filter(|until| *until > now)
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.trim().to_lowercase())
}

fn ip_key(ip: std::net::IpAddr) -> String {
    format!("ip:{ip}")
}

/// Forgets expired entries, or else the one whose last failure is oldest.
fn evict(entries: &mut HashMap<String, Entry>, now: OffsetDateTime) {
    let before = entries.len();
    entries.retain(|_, e| e.locked_until.is_some_and(|until| until > now));
    if entries.len() < before {
        return;
    }
    if let Some(oldest) = entries
        .iter()
        .min_by_key(|(_, e)| e.last_failure)
        .map(|(k, _)| k.clone())
    {
        tracing::warn!(
            key = oldest,
            "login throttle full: forgetting the oldest locked key"
        );
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::ManualClock;

    fn throttle(capacity: usize) -> (Throttle, Arc<ManualClock>) {
        let clock = Arc::new(
            ManualClock::at_unix(1_700_000_000)
                .unwrap_or_else(|| ManualClock::new(OffsetDateTime::UNIX_EPOCH)),
        );
        let config = ThrottleConfig {
            capacity,
            ..ThrottleConfig::default()
        };
        (Throttle::new(config, clock.clone()), clock)
    }

    #[test]
    fn a_lockout_ends_when_it_was_set_to_however_many_attempts_follow() {
        let (throttle, clock) = throttle(100);
        for _ in 0..5 {
            assert_eq!(throttle.check("Alice", None), Ok(()));
            throttle.failure("alice", None);
        }
        let Err(Locked::Account { until }) = throttle.check("ALICE", None) else {
            panic!("five failures lock the account, whatever the case of the name");
        };
        for _ in 0..800 {
            clock.advance(time::Duration::seconds(1));
            throttle.failure("alice", None);
        }
        assert!(
            throttle.check("alice", None).is_err(),
            "still in the lockout"
        );
        clock.set(until);
        assert_eq!(
            throttle.check("alice", None),
            Ok(()),
            "the lockout was not extended"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (throttle, clock) = throttle(100);
        for _ in 0..4 {
            throttle.failure("bob", None);
        }
        clock.advance(time::Duration::minutes(16));
        throttle.failure("bob", None);
        assert_eq!(throttle.check("bob", None), Ok(()));
    }

    #[test]
    fn an_address_is_locked_across_accounts_and_success_does_not_clear_it() {
        let (throttle, _clock) = throttle(100);
        let ip = Some(std::net::IpAddr::from([192, 0, 2, 7]));
        for n in 0..20 {
            throttle.failure(&format!("user{n}"), ip);
            throttle.success("mine");
        }
        assert!(matches!(
            throttle.check("anyone", ip),
            Err(Locked::Ip { .. })
        ));
        assert_eq!(throttle.check("anyone", None), Ok(()));
    }

    #[test]
    fn a_full_table_forgets_unlocked_keys_first() {
        let (throttle, _clock) = throttle(10);
        for _ in 0..5 {
            throttle.failure("victim", None);
        }
        for n in 0..100 {
            throttle.failure(&format!("noise{n}"), None);
        }
        assert!(
            throttle.check("victim", None).is_err(),
            "locked keys are kept"
        );
        assert!(throttle.lock().len() <= 10);
    }
}
