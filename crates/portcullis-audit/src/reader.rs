//! Reading a trail back: filters and pagination over the current file and its rotations,
//! oldest first (for small deployments, the `/audit/logs` endpoint and the CLI).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use portcullis_core::{AuditError, AuditEvent, AuditFilter, AuditQuery};

use crate::chain::{GENESIS, Tampering, verify_lines};
use crate::file::rotated_path;

/// Reads the trail at `path` (with `path.1`, `path.2`, … as its older parts).
#[derive(Debug, Clone)]
pub struct AuditReader {
    path: PathBuf,
}

impl AuditReader {
    /// A reader of the trail whose current file is `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The files of the trail, oldest first.
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        let mut rotated: Vec<PathBuf> = (1..)
            .map(|n| rotated_path(&self.path, n))
            .take_while(|p| p.exists())
            .collect();
        rotated.reverse();
        if self.path.exists() {
            rotated.push(self.path.clone());
        }
        rotated
    }

    fn lines(path: &Path) -> Result<Lines, AuditError> {
        Ok(Lines {
            reader: BufReader::new(File::open(path)?),
            buf: Vec::new(),
        })
    }

    /// Events matching `filter`, oldest first, skipping `offset` matches and returning at most
    /// `limit`. Lines that are not events (a torn line) are skipped.
    ///
    /// # Errors
    /// When a file cannot be read.
    pub fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let mut out = Vec::new();
        let mut skipped = 0usize;
        for path in self.files() {
            for line in Self::lines(&path)? {
                let Line::Text(line) = line? else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<AuditEvent>(&line) else {
                    continue;
                };
                if !filter.matches(&event) {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Verifies the hash chain across every file of the trail; returns the number of events
    /// and the last hash. Pass the head kept elsewhere to also detect truncation.
    ///
    /// # Errors
    /// [`VerifyError::Tampered`] with the first bad line (numbered across files, oldest first),
    /// or [`VerifyError::Io`].
    pub fn verify(&self, expected_head: Option<&str>) -> Result<(usize, String), VerifyError> {
        // Lines are streamed file by file, oldest first; a read error stops the walk and is
        // reported after it.
        let read_error: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
        let note = |e: String| {
            read_error.borrow_mut().get_or_insert(e);
        };
        let mut lines = self
            .files()
            .into_iter()
            .map(|path| Self::lines(&path))
            .filter_map(|opened| match opened {
                Ok(lines) => Some(lines),
                Err(e) => {
                    note(e.to_string());
                    None
                }
            })
            .flatten()
            .map_while(|line| match line {
                Ok(Line::Text(line)) => Some(line),
                // Not an event: verification reports it as an unparseable line.
                Ok(Line::Unreadable) => Some(String::new()),
                Err(e) => {
                    note(e.to_string());
                    None
                }
            })
            .peekable();
        // Rotation may have deleted the oldest files: start from the first line's own
        // `prev_hash` when it is not the genesis.
        let start = lines
            .peek()
            .and_then(|l| serde_json::from_str::<AuditEvent>(l).ok())
            .and_then(|e| e.prev_hash)
            .unwrap_or_else(|| GENESIS.to_owned());
        let verified = verify_lines(&mut lines, &start, expected_head);
        drop(lines);
        if let Some(e) = read_error.into_inner() {
            return Err(VerifyError::Io(e));
        }
        verified.map_err(VerifyError::Tampered)
    }
}

/// Longest line the reader takes for a possible event, in bytes; a longer line is not an
/// event (skipped by queries, unparseable for verification) and is never held in memory.
pub const MAX_LINE_LEN: usize = 1024 * 1024;

/// A line of a trail file.
enum Line {
    /// A line of UTF-8 text, without its line ending.
    Text(String),
    /// A line longer than [`MAX_LINE_LEN`], or not UTF-8.
    Unreadable,
}

/// The lines of a trail file, each read to at most [`MAX_LINE_LEN`] bytes.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
}

impl Iterator for Lines {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) => return Some(Err(e)),
            };
            if available.is_empty() {
                if !read_any {
                    return None;
                }
                break;
            }
            read_any = true;
            let newline = available.iter().position(|b| *b == b'\n');
            let chunk = available
                .get(..newline.unwrap_or(available.len()))
                .unwrap_or_default();
            if !too_long && self.buf.len() + chunk.len() <= MAX_LINE_LEN {
                self.buf.extend_from_slice(chunk);
            } else {
                too_long = true;
                self.buf.clear();
            }
            let consumed = newline.map_or(chunk.len(), |at| at + 1);
            self.reader.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        if too_long {
            return Some(Ok(Line::Unreadable));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Some(Ok(match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::Unreadable,
        }))
    }
}

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The trail was tampered with.
    #[error(transparent)]
    Tampered(Tampering),
    /// A file could not be read.
    #[error("cannot read the audit trail: {0}")]
    Io(String),
}

#[async_trait::async_trait]
impl AuditQuery for AuditReader {
    async fn query(
        &self,
        filter: &AuditFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, AuditError> {
        let reader = self.clone();
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || AuditReader::query(&reader, &filter, offset, limit))
            .await
            .map_err(|e| {
                AuditError::Io(std::io::Error::other(format!(
                    "audit query task failed: {e}"
                )))
            })?
    }
}
