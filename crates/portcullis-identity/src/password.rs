//! Passwords: argon2id PHC strings, hashed and verified on the blocking pool under a
//! concurrency bound, with a policy for new passwords and limits on what a stored hash may ask.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use portcullis_core::SecretString;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

/// The argon2id cost of new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Argon2Params {
    /// Memory, in KiB (`m`).
    pub memory_kib: u32,
    /// Passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

/// The OWASP Password Storage Cheat Sheet's argon2id minimums: any one of these pairs of
/// memory (KiB) and passes, with one lane, is enough.
pub const OWASP_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

impl Argon2Params {
    /// m=19456 KiB, t=2, p=1: the OWASP recommendation, and the default.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Parameters of your own; [`Passwords::new`] refuses them below every OWASP minimum.
    #[must_use]
    pub const fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        Self {
            memory_kib,
            iterations,
            parallelism,
        }
    }

    /// Whether these parameters meet one of the [`OWASP_MINIMUMS`].
    #[must_use]
    pub fn meets_owasp(&self) -> bool {
        self.parallelism >= 1
            && OWASP_MINIMUMS
                .iter()
                .any(|&(m, t)| self.memory_kib >= m && self.iterations >= t)
    }

    /// Whether stored parameters cost less than these (the hash should be redone).
    fn is_weaker(&self, stored: &Params) -> bool {
        stored.m_cost() < self.memory_kib
            || stored.t_cost() < self.iterations
            || stored.p_cost() < self.parallelism
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// What a new password must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// At least this many characters (Unicode scalar values, after NFKC normalisation).
    /// Default 8, as in the Aethera document.
    pub min_chars: usize,
    /// At most this many bytes of UTF-8 as typed (default 1024). Longer passwords are refused,
    /// never truncated.
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_bytes: 1024,
        }
    }
}

impl PasswordPolicy {
    /// Sets the minimum length in characters.
    #[must_use]
    pub fn min_chars(mut self, chars: usize) -> Self {
        self.min_chars = chars;
        self
    }
}

/// What a stored hash may ask of the machine: a hash past these is refused before anything
/// is allocated (a row written by an attacker must not make a login allocate gigabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredHashLimits {
    /// Memory, in KiB (default 262 144: 256 MiB).
    pub max_memory_kib: u32,
    /// Passes (default 16).
    pub max_iterations: u32,
    /// Lanes (default 16).
    pub max_parallelism: u32,
}

impl Default for StoredHashLimits {
    fn default() -> Self {
        Self {
            max_memory_kib: 262_144,
            max_iterations: 16,
            max_parallelism: 16,
        }
    }
}

/// Why a password operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    /// A new password breaks the policy; the text says how (for the user).
    #[error("{0}")]
    Policy(String),
    /// The configured parameters are below the OWASP minimums or invalid.
    #[error("argon2 parameters: {0}")]
    Parameters(String),
    /// A stored hash is not an argon2id PHC string this verifier accepts, or asks for more
    /// than [`StoredHashLimits`]. The account cannot log in until its password is reset.
    #[error("stored password hash refused: {0}")]
    StoredHash(String),
    /// Too many hashes are waiting: answer 503 and let the client retry.
    #[error("too many password checks in progress")]
    Busy,
    /// The system random generator or the hash itself failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verified {
    /// The password matches; `rehash` when the stored parameters are below the policy (hash
    /// the password again and store the new string).
    Valid {
        /// Whether to store a new hash.
        rehash: bool,
    },
    /// It does not (or there was no hash to check).
    Invalid,
}

/// Hashes and verifies passwords.
///
/// Each hash runs on tokio's blocking pool, at most [`concurrency`](Self::concurrency) at a
/// time (default: the number of CPUs), and at most `max_waiting` more wait for a turn; past
/// that, [`PasswordError::Busy`]. A login burst therefore uses at most that many cores and
/// never the async worker threads, so other routes stay responsive.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Argon2Params,
    policy: PasswordPolicy,
    limits: StoredHashLimits,
    permits: Semaphore,
    concurrency: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// The hash verified for unknown users, so that they take as long as known ones.
    dummy: String,
    random: SystemRandom,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.inner.params)
            .field("policy", &self.inner.policy)
            .field("limits", &self.inner.limits)
            .field("concurrency", &self.inner.concurrency)
            .field("max_waiting", &self.inner.max_waiting)
            .finish_non_exhaustive()
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

impl Passwords {
    /// Hashing with `params`, new passwords checked against `policy`.
    ///
    /// # Errors
    /// [`PasswordError::Parameters`] for parameters below every OWASP minimum or that argon2
    /// refuses; [`PasswordError::Failed`] when the dummy hash cannot be made.
    pub fn new(params: Argon2Params, policy: PasswordPolicy) -> Result<Self, PasswordError> {
        Self::with_limits(params, policy, StoredHashLimits::default())
    }

    /// [`new`](Self::new) with limits on stored hashes.
    ///
    /// # Errors
    /// As [`new`](Self::new), and when `params` exceed `limits` (the hashes made could not be
    /// verified).
    pub fn with_limits(
        params: Argon2Params,
        policy: PasswordPolicy,
        limits: StoredHashLimits,
    ) -> Result<Self, PasswordError> {
        if !params.meets_owasp() {
            return Err(PasswordError::Parameters(format!(
                "m={} KiB, t={}, p={} is below every OWASP minimum (for example m=19456, t=2, \
                 p=1)",
                params.memory_kib, params.iterations, params.parallelism
            )));
        }
        if params.memory_kib > limits.max_memory_kib
            || params.iterations > limits.max_iterations
            || params.parallelism > limits.max_parallelism
        {
            return Err(PasswordError::Parameters(
                "the parameters exceed the stored-hash limits, so no hash made with them \
                 could be verified"
                    .into(),
            ));
        }
        if policy.min_chars == 0 || policy.max_bytes < policy.min_chars {
            return Err(PasswordError::Parameters(
                "the password policy needs 0 < min_chars <= max_bytes".into(),
            ));
        }
        let concurrency = std::thread::available_parallelism().map_or(1, usize::from);
        let random = SystemRandom::new();
        let argon = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| PasswordError::Parameters(e.to_string()))?;
        let mut dummy_password = Zeroizing::new([0u8; 32]);
        random
            .fill(dummy_password.as_mut())
            .map_err(|_| PasswordError::Failed("the system random generator failed".into()))?;
        let dummy = hash_blocking(&argon, &random, dummy_password.as_ref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                policy,
                limits,
                permits: Semaphore::new(concurrency),
                concurrency,
                waiting: AtomicUsize::new(0),
                max_waiting: concurrency.saturating_mul(32),
                dummy,
                random,
            }),
        })
    }

    /// Runs at most `permits` hashes at a time, with at most `max_waiting` more queued.
    ///
    /// # Panics
    /// Never; `permits` of 0 is taken as 1.
    #[must_use]
    pub fn concurrency(self, permits: usize, max_waiting: usize) -> Self {
        let inner = &*self.inner;
        let permits = permits.max(1);
        Self {
            inner: Arc::new(Inner {
                params: inner.params,
                policy: inner.policy,
                limits: inner.limits,
                permits: Semaphore::new(permits),
                concurrency: permits,
                waiting: AtomicUsize::new(0),
                max_waiting,
                dummy: inner.dummy.clone(),
                random: SystemRandom::new(),
            }),
        }
    }

    /// The parameters of new hashes.
    #[must_use]
    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    /// The policy for new passwords.
    #[must_use]
    pub fn policy(&self) -> PasswordPolicy {
        self.inner.policy
    }

    /// Checks a new password against the policy and returns it normalised (NFKC), the form
    /// that is hashed at registration and at every login.
    ///
    /// # Errors
    /// [`PasswordError::Policy`] saying what is wrong.
    pub fn check_policy(
        &self,
        password: &SecretString,
    ) -> Result<Zeroizing<String>, PasswordError> {
        let policy = self.inner.policy;
        if password.expose().len() > policy.max_bytes {
            return Err(PasswordError::Policy(format!(
                "the password must be at most {} bytes",
                policy.max_bytes
            )));
        }
        let normalized = normalize(password);
        if normalized.chars().count() < policy.min_chars {
            return Err(PasswordError::Policy(format!(
                "the password must be at least {} characters",
                policy.min_chars
            )));
        }
        if normalized.chars().all(char::is_whitespace) {
            return Err(PasswordError::Policy(
                "the password must not be only spaces".into(),
            ));
        }
        Ok(normalized)
    }

    /// Hashes a new password (checked against the policy first) into a PHC string.
    ///
    /// # Errors
    /// [`PasswordError::Policy`], [`PasswordError::Busy`], [`PasswordError::Failed`].
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        self.hash_with_policy(password, true).await
    }

    pub(crate) async fn hash_with_policy(
        &self,
        password: &SecretString,
        check: bool,
    ) -> Result<String, PasswordError> {
        let normalized = if check {
            self.check_policy(password)?
        } else {
            normalize(password)
        };
        let params = self.argon_params()?;
        self.blocking(move |inner| hash_blocking(&params, &inner.random, normalized.as_bytes()))
            .await
    }

    /// Checks `password` against `stored` (a PHC string). With `None` (an unknown user, or an
    /// account without a password) a dummy hash is verified instead, so the answer takes as
    /// long, and is [`Verified::Invalid`].
    ///
    /// # Errors
    /// [`PasswordError::StoredHash`] for a stored string that is not an acceptable argon2id
    /// hash (the caller answers as for a wrong password, and logs it);
    /// [`PasswordError::Busy`]; [`PasswordError::Failed`].
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, PasswordError> {
        // A password past the policy's length could never have been stored: check the dummy,
        // so it takes the usual time, and refuse.
        let too_long = password.expose().len() > self.inner.policy.max_bytes;
        let normalized = if too_long {
            Zeroizing::new(String::new())
        } else {
            normalize(password)
        };
        let (phc, real) = match stored {
            Some(phc) if !too_long => (phc.to_owned(), true),
            _ => (self.inner.dummy.clone(), false),
        };
        self.blocking(move |inner| {
            let hash = accepted_hash(&phc, &inner.limits)?;
            let params =
                Params::try_from(&hash).map_err(|e| PasswordError::StoredHash(e.to_string()))?;
            let matches = argon2id(&params)
                .verify_password(normalized.as_bytes(), &hash)
                .is_ok();
            Ok(if matches && real {
                Verified::Valid {
                    rehash: inner.params.is_weaker(&params),
                }
            } else {
                Verified::Invalid
            })
        })
        .await
    }

    fn argon_params(&self) -> Result<Params, PasswordError> {
        let p = self.inner.params;
        Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
            .map_err(|e| PasswordError::Parameters(e.to_string()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let inner = &self.inner;
        let waiting = inner.waiting.fetch_add(1, Ordering::AcqRel);
        let _queued = Decrement(&inner.waiting);
        if waiting >= inner.max_waiting.saturating_add(inner.concurrency) {
            tracing::warn!(waiting, "password checks are saturated: refusing with 503");
            return Err(PasswordError::Busy);
        }
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Failed("the password pool is closed".into()))?;
        let owned = Arc::clone(inner);
        tokio::task::spawn_blocking(move || work(&owned))
            .await
            .map_err(|e| PasswordError::Failed(format!("the hashing task failed: {e}")))?
    }
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// NFKC, as NIST SP 800-63B asks: the same password typed on two keyboards hashes the same.
fn normalize(password: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(password.expose().nfkc().collect())
}

fn hash_blocking(
    params: &Params,
    random: &SystemRandom,
    password: &[u8],
) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    random
        .fill(&mut salt)
        .map_err(|_| PasswordError::Failed("the system random generator failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Failed(e.to_string()))?;
    argon2id(params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Failed(e.to_string()))
}

/// Parses a stored PHC string and refuses anything but argon2id v19 within `limits`, before
/// argon2 allocates its memory.
fn accepted_hash<'a>(
    phc: &'a str,
    limits: &StoredHashLimits,
) -> Result<PasswordHash<'a>, PasswordError> {
    if phc.len() > 512 {
        return Err(PasswordError::StoredHash("longer than 512 bytes".into()));
    }
    let hash = PasswordHash::new(phc).map_err(|e| PasswordError::StoredHash(e.to_string()))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(PasswordError::StoredHash(format!(
            "algorithm {} (only argon2id is accepted)",
            hash.algorithm
        )));
    }
    if hash.version != Some(0x13) {
        return Err(PasswordError::StoredHash(
            "argon2 version other than 19".into(),
        ));
    }
    let number = |name: &str| -> Result<u32, PasswordError> {
        let value = hash
            .params
            .get_decimal(name)
            .ok_or_else(|| PasswordError::StoredHash(format!("no `{name}` parameter")))?;
        Ok(value)
    };
    let (m, t, p) = (number("m")?, number("t")?, number("p")?);
    if m > limits.max_memory_kib || t > limits.max_iterations || p > limits.max_parallelism {
        return Err(PasswordError::StoredHash(format!(
            "m={m}, t={t}, p={p} exceeds the limits (m<={}, t<={}, p<={})",
            limits.max_memory_kib, limits.max_iterations, limits.max_parallelism
        )));
    }
    match &hash.hash {
        Some(output) if (16..=64).contains(&output.len()) => {}
        _ => {
            return Err(PasswordError::StoredHash(
                "the hash output must be 16 to 64 bytes".into(),
            ));
        }
    }
    match &hash.salt {
        Some(salt) if salt.as_str().len() >= 11 => {}
        _ => {
            return Err(PasswordError::StoredHash(
                "a salt of at least 8 bytes is required".into(),
            ));
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_stored_parameters_are_refused_before_hashing() {
        let limits = StoredHashLimits::default();
        for phc in [
            "$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=65536,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=65536,t=2,p=255$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",
            "$argon2id$v=19$t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "not a hash",
            "",
        ] {
            assert!(
                matches!(
                    accepted_hash(phc, &limits),
                    Err(PasswordError::StoredHash(_))
                ),
                "{phc}"
            );
        }
    }

    #[test]
    fn owasp_minimums_are_enforced() {
        assert!(Argon2Params::OWASP.meets_owasp());
        assert!(Argon2Params::new(7_168, 5, 1).meets_owasp());
        assert!(!Argon2Params::new(19_455, 2, 1).meets_owasp());
        assert!(!Argon2Params::new(19_456, 1, 1).meets_owasp());
        assert!(!Argon2Params::new(65_536, 2, 0).meets_owasp());
        assert!(matches!(
            Passwords::new(Argon2Params::new(4_096, 3, 1), PasswordPolicy::default()),
            Err(PasswordError::Parameters(_))
        ));
    }
}
