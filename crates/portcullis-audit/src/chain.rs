//! Tamper evidence: each event carries the hash of the previous one.
//!
//! `hash` is the hex SHA-256 of the event's canonical serialization (its JSON with `hash`
//! removed, fields in schema order, metadata keys sorted), and `prev_hash` is the `hash` of
//! the event before it, or 64 zeros for the first event of a trail. Rotation continues the
//! chain across files. [`verify_lines`] reports the first line that was edited, deleted,
//! inserted or moved.
//!
//! This detects edits by anyone who does not recompute every later hash. An attacker who can
//! rewrite the file and recompute the chain from the edit onwards is detected only if the
//! latest hash is also kept elsewhere: pass it to [`verify_lines`] as `expected_head`.

use portcullis_core::AuditEvent;
use ring::digest;

/// `prev_hash` of the first event of a trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical bytes of an event: its JSON without `hash`.
///
/// # Errors
/// When the event cannot be serialized.
pub(crate) fn canonical(event: &AuditEvent) -> Result<String, serde_json::Error> {
    let mut copy = event.clone();
    copy.hash = None;
    serde_json::to_string(&copy)
}

/// The hex SHA-256 of `bytes`.
#[must_use]
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
    }
    out
}

/// Links events into a chain.
#[derive(Debug, Clone)]
pub struct Chain {
    last: String,
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            last: GENESIS.to_owned(),
        }
    }
}

impl Chain {
    /// A chain that continues after an event whose hash was `last`.
    #[must_use]
    pub fn continue_from(last: impl Into<String>) -> Self {
        Self { last: last.into() }
    }

    /// The hash of the last linked event.
    #[must_use]
    pub fn head(&self) -> &str {
        &self.last
    }

    /// Sets `prev_hash` and `hash` on `event` and advances the chain.
    ///
    /// # Errors
    /// When the event cannot be serialized.
    pub fn link(&mut self, event: &mut AuditEvent) -> Result<(), serde_json::Error> {
        self.link_line(event).map(drop)
    }

    /// Like [`Chain::link`], and returns the event's JSON line (without the newline) from the
    /// same serialization: `hash` is the last field of the schema, so the line is the
    /// canonical form with `"hash"` appended.
    ///
    /// # Errors
    /// When the event cannot be serialized.
    pub fn link_line(&mut self, event: &mut AuditEvent) -> Result<String, serde_json::Error> {
        event.prev_hash = Some(self.last.clone());
        event.hash = None;
        let mut line = serde_json::to_string(&*event)?;
        let hash = sha256_hex(line.as_bytes());
        if line.ends_with('}') {
            line.pop();
            line.push_str(",\"hash\":\"");
            line.push_str(&hash);
            line.push_str("\"}");
        }
        event.hash = Some(hash.clone());
        self.last = hash;
        Ok(line)
    }
}

/// What is wrong at a line of a chained trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tampering {
    /// The line is not a valid event.
    #[error("line {line}: not a valid audit event")]
    Unparseable {
        /// 1-based line number (across files, in reading order).
        line: usize,
    },
    /// The line has no chain fields.
    #[error("line {line}: the event is not chained")]
    Unchained {
        /// 1-based line number.
        line: usize,
    },
    /// The line's content does not match its own hash: it was edited.
    #[error("line {line}: the event was edited (its hash does not match its content)")]
    Edited {
        /// 1-based line number.
        line: usize,
    },
    /// The line does not follow the line before it: a line was deleted, inserted or moved
    /// here.
    #[error("line {line}: the chain is broken (a line was deleted, inserted or moved before it)")]
    Broken {
        /// 1-based line number.
        line: usize,
    },
    /// The last hash differs from the expected head: lines were removed from the end or the
    /// chain was recomputed.
    #[error(
        "the trail ends at another hash than expected (lines removed from the end or the chain rewritten)"
    )]
    HeadMismatch,
}

/// Verifies chained lines in order; returns the number of events and the last hash.
///
/// # Errors
/// The first [`Tampering`] found.
pub fn verify_lines<S: AsRef<str>>(
    lines: impl IntoIterator<Item = S>,
    start: &str,
    expected_head: Option<&str>,
) -> Result<(usize, String), Tampering> {
    let mut previous = start.to_owned();
    let mut count = 0usize;
    for (i, line) in lines.into_iter().enumerate() {
        let line_no = i + 1;
        let line = line.as_ref();
        let event: AuditEvent =
            serde_json::from_str(line).map_err(|_| Tampering::Unparseable { line: line_no })?;
        let (Some(prev), Some(hash)) = (event.prev_hash.as_deref(), event.hash.as_deref()) else {
            return Err(Tampering::Unchained { line: line_no });
        };
        let recomputed = canonical(&event)
            .map(|c| sha256_hex(c.as_bytes()))
            .map_err(|_| Tampering::Unparseable { line: line_no })?;
        // The stored line must be exactly what this event serializes to, so an edit that
        // JSON parsing would hide (reordered keys, added fields) is caught too.
        let reserialized =
            serde_json::to_string(&event).map_err(|_| Tampering::Unparseable { line: line_no })?;
        if recomputed != hash || reserialized != line {
            return Err(Tampering::Edited { line: line_no });
        }
        if prev != previous {
            return Err(Tampering::Broken { line: line_no });
        }
        previous = hash.to_owned();
        count += 1;
    }
    if let Some(head) = expected_head
        && head != previous
    {
        return Err(Tampering::HeadMismatch);
    }
    Ok((count, previous))
}
