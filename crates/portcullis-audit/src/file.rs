//! The JSON Lines file: append-only, one event per line, created with mode 0600.

use std::borrow::BorrowMut;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use portcullis_core::{AuditError, AuditEvent, AuditSink};

use crate::chain::{Chain, GENESIS};
use crate::redact::Redactor;

/// When written events are forced to disk (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After every event: the slowest and safest.
    EveryEvent,
    /// After every batch (the default): a batch acknowledged by `flush` survives a crash.
    EveryBatch,
    /// At most this long after a write; a crash may lose that interval.
    Interval(Duration),
}

/// When the file is rotated to `<path>.1`, `<path>.2`, … (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate when the file is older than this.
    pub max_age: Option<Duration>,
    /// Rotated files kept; older ones are deleted.
    pub keep: usize,
}

/// Setters, one per field; each returns the changed value.
impl Rotation {
    /// Sets [`max_bytes`](Self::max_bytes).
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`max_age`](Self::max_age).
    #[must_use]
    pub fn max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets [`keep`](Self::keep).
    #[must_use]
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: Some(100 * 1024 * 1024),
            max_age: None,
            keep: 10,
        }
    }
}

/// Configuration of a [`JsonlFile`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileSinkConfig {
    /// The file (AmateRS `audit_log_path`).
    pub path: PathBuf,
    /// When to `fsync`.
    pub durability: Durability,
    /// When to rotate.
    pub rotation: Rotation,
    /// Whether to chain events with hashes (tamper evidence).
    pub chain: bool,
    /// How secrets are removed.
    pub redactor: Redactor,
}

/// Setters, one per field; each returns the changed value.
impl FileSinkConfig {
    /// Sets [`path`](Self::path).
    #[must_use]
    pub fn path(mut self, path: PathBuf) -> Self {
        self.path = path;
        self
    }

    /// Sets [`durability`](Self::durability).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`rotation`](Self::rotation).
    #[must_use]
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Sets [`chain`](Self::chain).
    #[must_use]
    pub fn chain(mut self, chain: bool) -> Self {
        self.chain = chain;
        self
    }

    /// Sets [`redactor`](Self::redactor).
    #[must_use]
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }
}

impl FileSinkConfig {
    /// Defaults for `path`: fsync every batch, rotate at 100 MiB keeping 10 files, chained.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::EveryBatch,
            rotation: Rotation::default(),
            chain: true,
            redactor: Redactor::default(),
        }
    }
}

/// Writes batches of events to a JSON Lines file. Blocking: wrap it in a
/// [`BufferedSink`](crate::BufferedSink) so that requests never wait on the disk.
#[derive(Debug)]
pub struct JsonlFile {
    config: FileSinkConfig,
    file: File,
    size: u64,
    opened: Instant,
    last_sync: Instant,
    chain: Option<Chain>,
    recovered: Option<PathBuf>,
}

fn io(e: std::io::Error) -> AuditError {
    AuditError::Io(e)
}

/// The path of rotated file number `n` (1 is the newest).
#[must_use]
pub(crate) fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(handle) = File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

/// Finds where the last complete line ends; returns that length and the torn tail, if any.
fn complete_length(file: &mut File) -> std::io::Result<(u64, Vec<u8>)> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((0, Vec::new()));
    }
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    const CHUNK: u64 = 64 * 1024;
    loop {
        let start = end.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        if let Some(pos) = chunk.iter().rposition(|b| *b == b'\n') {
            let keep = start + pos as u64 + 1;
            let mut torn = chunk.split_off(pos + 1);
            torn.extend_from_slice(&tail);
            return Ok((keep, torn));
        }
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if start == 0 {
            return Ok((0, tail));
        }
        end = start;
    }
}

/// The `hash` of the last line of `path`, if it is a chained event.
fn last_hash(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let (keep, _) = complete_length(&mut file).ok()?;
    if keep == 0 {
        return None;
    }
    let start = keep.saturating_sub(64 * 1024);
    let mut buf = vec![0u8; usize::try_from(keep - start).ok()?];
    file.seek(SeekFrom::Start(start)).ok()?;
    file.read_exact(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.trim_end_matches('\n').rsplit('\n').next()?;
    let event: AuditEvent = serde_json::from_str(line).ok()?;
    event.hash
}

impl JsonlFile {
    /// Opens (creating with mode 0600) the file. A torn last line left by a crash is moved to
    /// `<path>.torn-<unix time>` and cut from the file, never appended to; the hash chain
    /// continues from the last complete event (of this file, or of `<path>.1`).
    ///
    /// # Errors
    /// When the file cannot be opened or repaired.
    pub fn open(config: FileSinkConfig) -> Result<Self, AuditError> {
        let mut file = open_append(&config.path).map_err(io)?;
        let (keep, torn) = complete_length(&mut file).map_err(io)?;
        let mut recovered = None;
        if !torn.is_empty() {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut name = config.path.as_os_str().to_owned();
            name.push(format!(".torn-{stamp}"));
            let aside = PathBuf::from(name);
            let mut out = open_append(&aside).map_err(io)?;
            out.write_all(&torn).map_err(io)?;
            out.sync_all().map_err(io)?;
            file.set_len(keep).map_err(io)?;
            file.sync_all().map_err(io)?;
            recovered = Some(aside);
        }
        let chain = config.chain.then(|| {
            let last = last_hash(&config.path)
                .or_else(|| last_hash(&rotated_path(&config.path, 1)))
                .unwrap_or_else(|| GENESIS.to_owned());
            Chain::continue_from(last)
        });
        let now = Instant::now();
        Ok(Self {
            config,
            file,
            size: keep,
            opened: now,
            last_sync: now,
            chain,
            recovered,
        })
    }

    /// Where a torn line found at open time was set aside, if there was one.
    #[must_use]
    pub fn recovered_torn_line(&self) -> Option<&Path> {
        self.recovered.as_deref()
    }

    /// The hash of the last event written (for keeping the head elsewhere).
    #[must_use]
    pub fn chain_head(&self) -> Option<&str> {
        self.chain.as_ref().map(Chain::head)
    }

    fn rotation_due(&self, incoming: u64) -> bool {
        let r = &self.config.rotation;
        self.size > 0
            && (r.max_bytes.is_some_and(|max| self.size + incoming > max)
                || r.max_age.is_some_and(|age| self.opened.elapsed() >= age))
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.file.sync_all().map_err(io)?;
        let path = self.config.path.clone();
        let keep = self.config.rotation.keep;
        if keep == 0 {
            fs::remove_file(&path).map_err(io)?;
        } else {
            let oldest = rotated_path(&path, keep);
            if oldest.exists() {
                fs::remove_file(&oldest).map_err(io)?;
            }
            for n in (1..keep).rev() {
                let from = rotated_path(&path, n);
                if from.exists() {
                    fs::rename(&from, rotated_path(&path, n + 1)).map_err(io)?;
                }
            }
            fs::rename(&path, rotated_path(&path, 1)).map_err(io)?;
        }
        self.file = open_append(&path).map_err(io)?;
        sync_dir(&path);
        self.size = 0;
        self.opened = Instant::now();
        Ok(())
    }

    /// Redacts, chains, writes and (per the durability policy) syncs a batch. The events are
    /// redacted and chained in place.
    ///
    /// # Errors
    /// On I/O or serialization failure. The chain is then reset to where it was, so a retry
    /// writes the batch again from the same point; if part of the batch had reached the file
    /// before the failure, those lines appear twice and verification reports the break there.
    pub fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        let head = self.chain.clone();
        let result = self.write_lines(events);
        if result.is_err() {
            // A retry links the same events again from the same point.
            self.chain = head;
        }
        result
    }

    fn write_lines<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        let mut lines: Vec<String> = Vec::with_capacity(events.len());
        for event in events.iter_mut() {
            let event = event.borrow_mut();
            self.config.redactor.redact(event);
            let mut line = match &mut self.chain {
                Some(chain) => chain.link_line(event)?,
                None => serde_json::to_string(&*event)?,
            };
            line.push('\n');
            lines.push(line);
        }
        let every_event = self.config.durability == Durability::EveryEvent;
        let mut buffer = String::new();
        for line in lines {
            let len = line.len() as u64;
            if self.rotation_due(len + buffer.len() as u64) {
                self.write_out(&mut buffer)?;
                self.rotate()?;
            }
            buffer.push_str(&line);
            if every_event {
                self.write_out(&mut buffer)?;
                self.file.sync_data().map_err(io)?;
            }
        }
        self.write_out(&mut buffer)?;
        match self.config.durability {
            Durability::EveryEvent => {}
            Durability::EveryBatch => self.sync()?,
            Durability::Interval(every) => {
                if self.last_sync.elapsed() >= every {
                    self.sync()?;
                }
            }
        }
        Ok(())
    }

    fn write_out(&mut self, buffer: &mut String) -> Result<(), AuditError> {
        if buffer.is_empty() {
            return Ok(());
        }
        self.file.write_all(buffer.as_bytes()).map_err(io)?;
        self.size += buffer.len() as u64;
        buffer.clear();
        Ok(())
    }

    /// Forces everything written to disk.
    ///
    /// # Errors
    /// When `fsync` fails.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        self.file.sync_data().map_err(io)?;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// Something that writes batches synchronously: what a [`BufferedSink`](crate::BufferedSink)
/// drives from its writer thread.
pub trait BatchWriter: Send + 'static {
    /// Writes a batch: a slice of events, or of boxed events as the buffered sink passes them.
    ///
    /// # Errors
    /// On failure; the buffered sink retries.
    fn write_batch<E: BorrowMut<AuditEvent>>(&mut self, events: &mut [E])
    -> Result<(), AuditError>;

    /// Makes everything written durable.
    ///
    /// # Errors
    /// On failure.
    fn sync(&mut self) -> Result<(), AuditError>;
}

impl BatchWriter for JsonlFile {
    fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        Self::write_batch(self, events)
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        Self::sync(self)
    }
}

/// A [`JsonlFile`] used directly as an [`AuditSink`]: each `record` writes (and syncs, per
/// policy) on the caller's thread. Prefer a [`BufferedSink`](crate::BufferedSink) in servers.
#[derive(Debug)]
pub struct JsonlFileSink {
    file: Mutex<JsonlFile>,
}

impl JsonlFileSink {
    /// Opens the file; see [`JsonlFile::open`].
    ///
    /// # Errors
    /// As [`JsonlFile::open`].
    pub fn open(config: FileSinkConfig) -> Result<Self, AuditError> {
        Ok(Self {
            file: Mutex::new(JsonlFile::open(config)?),
        })
    }
}

#[async_trait]
impl AuditSink for JsonlFileSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.record_batch(vec![event]).await
    }

    async fn record_batch(&self, mut events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_batch(&mut events)
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync()
    }
}
