#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod buffered;
mod chain;
mod file;
mod reader;
mod redact;
mod sinks;

pub use buffered::{Acknowledge, BufferConfig, BufferStats, BufferedSink, Overflow};
pub use chain::{Chain, GENESIS, Tampering, verify_lines};
pub use file::{BatchWriter, Durability, FileSinkConfig, JsonlFile, JsonlFileSink, Rotation};
pub use reader::{AuditReader, MAX_LINE_LEN, VerifyError};
pub use redact::{REDACTED, Redactor};
pub use sinks::{FanoutSink, MemorySink, TracingSink};
