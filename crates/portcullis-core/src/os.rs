//! The only things core reads from the operating system, behind the default feature `os`:
//! the wall clock ([`SystemClock`]), random event ids ([`RandomIds`]) and files of bounded
//! size ([`read_bounded`], which every loader of the family uses). The rest of core takes a
//! [`Clock`] and an [`IdSource`] passed in; without the feature it does no I/O.

use std::cell::RefCell;
use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::audit::EventId;
use crate::clock::{Clock, IdSource};

/// The operating system's wall clock.
///
/// ```
/// use portcullis_core::{Clock, SystemClock};
///
/// assert!(SystemClock.now().unix_timestamp() > 1_700_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// UUID v4 event ids from the system CSPRNG (ring), drawn from a per-thread pool refilled
/// 4 KiB at a time, so an id costs no system call.
///
/// Should the CSPRNG ever fail, the id is built from the time and a process-wide counter
/// instead: unique, though not unpredictable (ids are not secrets).
///
/// ```
/// use portcullis_core::{IdSource, RandomIds};
///
/// let id = RandomIds.event_id();
/// assert_eq!(id.as_str().len(), 36);
/// assert_ne!(id, RandomIds.event_id());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn event_id(&self) -> EventId {
        let mut bytes = [0u8; 16];
        if !random_bytes(&mut bytes) {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            let (high, low) = bytes.split_at_mut(8);
            high.copy_from_slice(&(nanos as u64).to_be_bytes());
            low.copy_from_slice(&count.to_be_bytes());
        }
        EventId::from_random_bytes(bytes)
    }
}

/// Reads the whole file at `path` if it holds at most `max_bytes`. A larger file (or a device
/// that never ends) is an `InvalidData` error after reading `max_bytes + 1` bytes, never read
/// in full.
///
/// # Errors
/// When the file cannot be opened or read, or is larger than `max_bytes`.
pub fn read_bounded(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] for a text file: a file that is not UTF-8 (Latin-1, UTF-16) is an
/// `InvalidData` error naming the first bad byte's offset.
///
/// # Errors
/// As [`read_bounded`], and when the file is not UTF-8.
pub fn read_bounded_text(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max_bytes)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Fills `out` from this thread's pool; `false` if the CSPRNG fails.
fn random_bytes(out: &mut [u8; 16]) -> bool {
    const POOL: usize = 4096;
    thread_local! {
        static RANDOM: RefCell<(Box<[u8; POOL]>, usize)> = RefCell::new((Box::new([0u8; POOL]), POOL));
    }
    RANDOM
        .try_with(|cell| {
            let Ok(mut pool) = cell.try_borrow_mut() else {
                return SystemRandom::new().fill(out).is_ok();
            };
            let (bytes, used) = &mut *pool;
            if *used + out.len() > POOL {
                if SystemRandom::new().fill(&mut bytes[..]).is_err() {
                    return false;
                }
                *used = 0;
            }
            match bytes.get_mut(*used..*used + out.len()) {
                Some(chunk) => {
                    out.copy_from_slice(chunk);
                    // Never hand out the same bytes twice.
                    chunk.fill(0);
                    *used += out.len();
                    true
                }
                None => false,
            }
        })
        .unwrap_or_else(|_| SystemRandom::new().fill(out).is_ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn files_are_read_up_to_their_bound() {
        let dir = std::env::temp_dir().join(format!("portcullis-core-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_bounded(&path, 10).unwrap(), b"0123456789");
        let error = read_bounded(&path, 9).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("larger than 9 bytes"), "{error}");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read_bounded_text(&path, 10).unwrap(), "");
        // Latin-1 `café`.
        std::fs::write(&path, b"caf\xe9").unwrap();
        let error = read_bounded_text(&path, 10).unwrap_err();
        assert_eq!(error.to_string(), "not UTF-8 (byte 3)");
        assert!(read_bounded(&dir.join("missing"), 10).is_err());
        // A device that never ends stops at the bound.
        if Path::new("/dev/zero").exists() {
            assert!(read_bounded(Path::new("/dev/zero"), 1 << 20).is_err());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn event_ids_are_uuid_v4() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = RandomIds.event_id();
            let s = id.as_str();
            assert_eq!(s.len(), 36);
            let groups: Vec<_> = s.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12]);
            assert_eq!(&s[14..15], "4");
            assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
            assert!(seen.insert(id));
        }
    }
}
