//! [`BufferedSink`]: a bounded queue drained by a writer thread in batches, so a request never
//! waits on the disk, with an explicit policy for a full queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::{
    AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink, Clock, IdSource, Measurement,
    Metrics, RandomIds, SystemClock,
};
use tokio::sync::{mpsc, oneshot};

use crate::file::BatchWriter;

/// What happens when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The producer waits until there is room (back-pressure). Nothing is dropped. The default.
    #[default]
    Block,
    /// The producer gets [`AuditError::Refused`] at once, and must refuse the request: for
    /// deployments where an unaudited action must not happen.
    FailClosed,
    /// Opt-in: the event is dropped and counted; when the queue next drains, a
    /// `security_violation` event reports how many were lost.
    DropAndCount,
}

/// When `record` returns, and so when a request whose event it is gets its response (the
/// audit layer answers only once its event is recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Acknowledge {
    /// Once the event is queued (the default): the fastest. A process killed with the queue
    /// full loses the events of requests it had already answered.
    #[default]
    Queued,
    /// Once the batch holding the event is written to the file (handed to the operating
    /// system): the event survives the process being killed. One write serves every event that
    /// queued while the previous one ran (group commit).
    Written,
    /// Once the batch is written and synced (`fdatasync`): the event survives a power loss
    /// too. One sync serves the whole batch.
    Synced,
}

impl Acknowledge {
    /// The name in a configuration file: `queued`, `written`, `synced`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Written => "written",
            Self::Synced => "synced",
        }
    }
}

/// Settings of a [`BufferedSink`]: `BufferConfig::default()` and the setters below.
///
/// ```
/// use portcullis_audit::{BufferConfig, Overflow};
///
/// let config = BufferConfig::default().capacity(1024).overflow(Overflow::FailClosed);
/// assert_eq!(config.capacity, 1024);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BufferConfig {
    /// Events the queue holds.
    pub capacity: usize,
    /// Most events written in one batch.
    pub max_batch: usize,
    /// The overflow policy.
    pub overflow: Overflow,
    /// How long the writer waits, once an event has arrived, for more to join its batch
    /// (default 1 ms; zero writes each event as soon as it arrives).
    ///
    /// A writer that woke for every event would cost the requests one thread wake-up (a
    /// system call) and one write each; lingering turns a busy stream into one write per
    /// millisecond. `record` returns when the event is queued either way, and `flush` ends the
    /// wait at once, so what is durable, and when, does not change.
    pub linger: Duration,
    /// The clock of the events the sink writes itself (the drop report).
    pub clock: Arc<dyn Clock>,
    /// Where the ids of the events the sink writes itself come from.
    pub ids: Arc<dyn IdSource>,
    /// Told the queue depth after each event is queued and each batch is written
    /// ([`Measurement::AuditQueueDepth`]).
    pub metrics: Option<Arc<dyn Metrics>>,
    /// When `record` returns (default [`Acknowledge::Queued`]).
    pub acknowledge: Acknowledge,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            max_batch: 4_096,
            overflow: Overflow::Block,
            linger: Duration::from_millis(1),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            metrics: None,
            acknowledge: Acknowledge::Queued,
        }
    }
}

impl BufferConfig {
    /// Events the queue holds (default 65,536).
    #[must_use]
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// Most events written in one batch (default 4,096).
    #[must_use]
    pub fn max_batch(mut self, events: usize) -> Self {
        self.max_batch = events;
        self
    }

    /// The overflow policy (default [`Overflow::Block`]).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// When `record` returns (default [`Acknowledge::Queued`]).
    #[must_use]
    pub fn acknowledge(mut self, acknowledge: Acknowledge) -> Self {
        self.acknowledge = acknowledge;
        self
    }

    /// How long the writer waits for a batch to fill (default 1 ms).
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The clock of the events the sink writes itself (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where the ids of the events the sink writes itself come from (default [`RandomIds`]).
    #[must_use]
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Reports the queue depth to `metrics` (default: to no one).
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

enum Message {
    /// Boxed, so that only a pointer crosses the queue; the box is reused (see [`Spent`]).
    Event(Box<AuditEvent>),
    /// An event whose producer waits until it is written (and synced, for
    /// [`Acknowledge::Synced`]).
    Acknowledged(Box<AuditEvent>, oneshot::Sender<Result<(), String>>),
    Flush(oneshot::Sender<Result<(), String>>),
    Shutdown(oneshot::Sender<Result<(), String>>),
}

/// Counters of a buffered sink.
#[derive(Debug, Default)]
pub struct BufferStats {
    written: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    write_errors: AtomicU64,
}

impl BufferStats {
    /// Events written.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Events dropped under [`Overflow::DropAndCount`] (total).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events refused under [`Overflow::FailClosed`] (total).
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Failed write attempts (each retried).
    #[must_use]
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

/// A bounded queue in front of a [`BatchWriter`] (such as a [`JsonlFile`](crate::JsonlFile)),
/// drained by a dedicated thread in batches.
///
/// `record` returns once the event is queued; `flush` returns once everything queued before
/// it is written and synced; `shutdown` does the same and stops the writer. A failed write is
/// retried (the queue then fills, and the overflow policy applies) rather than dropped.
#[derive(Debug)]
pub struct BufferedSink {
    sender: mpsc::Sender<Message>,
    overflow: Overflow,
    acknowledge: Acknowledge,
    closed: AtomicBool,
    /// Set by `flush` and `shutdown`: the writer stops lingering.
    urgent: Arc<AtomicBool>,
    /// Written events, handed back to be freed by the producers (see [`Spent`]).
    spent: Arc<Spent>,
    pending_drops: Arc<AtomicU64>,
    stats: Arc<BufferStats>,
    metrics: Option<Arc<dyn Metrics>>,
}

/// Events the writer has written, handed back so that the request threads that allocated
/// them also free them.
///
/// An event owns a dozen small allocations; freed on the writer thread, they would make it and
/// the request threads contend for the allocator. Each `record` takes back and frees up to two
/// written events, which keeps up with one new event per call; past [`Spent::MAX`] the writer
/// frees them.
#[derive(Debug, Default)]
#[expect(
    clippy::vec_box,
    reason = "the boxes cross threads as pointers, not 600-byte moves"
)]
struct Spent(Mutex<Vec<Box<AuditEvent>>>);

impl Spent {
    /// Most written events kept for the producers.
    const MAX: usize = 16_384;

    /// Takes back up to two written events, to be freed by the caller; none when the
    /// writer holds the lock (this never waits).
    fn take_some(&self) -> [Option<Box<AuditEvent>>; 2] {
        match self.0.try_lock() {
            Ok(mut events) => [events.pop(), events.pop()],
            Err(_) => [None, None],
        }
    }

    /// Hands written events back (or frees them here when enough are waiting).
    #[expect(
        clippy::vec_box,
        reason = "the boxes cross threads as pointers, not 600-byte moves"
    )]
    fn give_back(&self, batch: &mut Vec<Box<AuditEvent>>) {
        let mut events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() < Self::MAX {
            events.append(batch);
        } else {
            drop(events);
            batch.clear();
        }
    }
}

impl BufferedSink {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn new<W: BatchWriter>(writer: W, config: BufferConfig) -> Result<Self, AuditError> {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        let pending_drops = Arc::new(AtomicU64::new(0));
        let urgent = Arc::new(AtomicBool::new(false));
        let spent = Arc::new(Spent::default());
        let stats = Arc::new(BufferStats::default());
        let worker = Worker {
            writer,
            receiver,
            max_batch: config.max_batch.max(1),
            linger: config.linger,
            urgent: urgent.clone(),
            spent: spent.clone(),
            pending_drops: pending_drops.clone(),
            stats: stats.clone(),
            clock: config.clock,
            ids: config.ids,
            metrics: config.metrics.clone(),
            sync_acknowledged: config.acknowledge == Acknowledge::Synced,
        };
        std::thread::Builder::new()
            .name("portcullis-audit-writer".into())
            .spawn(move || worker.run())
            .map_err(AuditError::Io)?;
        Ok(Self {
            sender,
            overflow: config.overflow,
            acknowledge: config.acknowledge,
            closed: AtomicBool::new(false),
            urgent,
            spent,
            pending_drops,
            stats,
            metrics: config.metrics,
        })
    }

    /// Events waiting in the queue now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &BufferStats {
        &self.stats
    }

    /// Writes and syncs everything queued, then stops the writer. Later `record`s fail with
    /// [`AuditError::Closed`].
    ///
    /// # Errors
    /// When the final write or sync fails.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.round_trip(Message::Shutdown).await
    }

    /// Sends a marker to the writer and waits for its answer, given once everything queued
    /// before the marker is written and synced.
    async fn round_trip(
        &self,
        marker: fn(oneshot::Sender<Result<(), String>>) -> Message,
    ) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.sender
            .send(marker(tx))
            .await
            .map_err(|_| AuditError::Closed)?;
        self.urgent.store(true, Ordering::Release);
        rx.await
            .map_err(|_| AuditError::Closed)?
            .map_err(|message| AuditError::Backend {
                message,
                source: None,
            })
    }
}

#[async_trait]
impl AuditSink for BufferedSink {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AuditError::Closed);
        }
        let (message, acknowledged) = match self.acknowledge {
            Acknowledge::Queued => (Message::Event(Box::new(event)), None),
            Acknowledge::Written | Acknowledge::Synced => {
                let (reply, acknowledged) = oneshot::channel();
                (
                    Message::Acknowledged(Box::new(event), reply),
                    Some(acknowledged),
                )
            }
        };
        // Freed here, once the new event is queued (see `Spent`).
        let _written = self.spent.take_some();
        // Whether the event is in the queue (false: dropped under `DropAndCount`).
        let queued = match self.overflow {
            Overflow::Block => self
                .sender
                .send(message)
                .await
                .map(|()| true)
                .map_err(|_| AuditError::Closed),
            Overflow::FailClosed => match self.sender.try_send(message) {
                Ok(()) => Ok(true),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    Err(AuditError::Refused("the audit queue is full".into()))
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(AuditError::Closed),
            },
            Overflow::DropAndCount => match self.sender.try_send(message) {
                Ok(()) => Ok(true),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.pending_drops.fetch_add(1, Ordering::AcqRel);
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(false)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(AuditError::Closed),
            },
        };
        if let Some(metrics) = &self.metrics {
            metrics.record(Measurement::AuditQueueDepth(self.queued()));
        }
        match (queued?, acknowledged) {
            // The writer answers once the event's batch is written (and synced); no answer
            // means the writer is gone.
            (true, Some(written)) => match written.await {
                Ok(result) => result.map_err(|message| AuditError::Backend {
                    message,
                    source: None,
                }),
                Err(_) => Err(AuditError::Closed),
            },
            // Queued only, or dropped and counted (`DropAndCount`, opted into).
            (_, None) | (false, Some(_)) => Ok(()),
        }
    }

    async fn flush(&self) -> Result<(), AuditError> {
        self.round_trip(Message::Flush).await
    }
}

struct Worker<W> {
    writer: W,
    receiver: mpsc::Receiver<Message>,
    max_batch: usize,
    linger: Duration,
    urgent: Arc<AtomicBool>,
    spent: Arc<Spent>,
    pending_drops: Arc<AtomicU64>,
    stats: Arc<BufferStats>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    metrics: Option<Arc<dyn Metrics>>,
    /// Whether acknowledged events wait for a sync too ([`Acknowledge::Synced`]).
    sync_acknowledged: bool,
}

impl<W: BatchWriter> Worker<W> {
    fn run(mut self) {
        let mut batch: Vec<Box<AuditEvent>> = Vec::with_capacity(self.max_batch);
        loop {
            let Some(first) = self.receiver.blocking_recv() else {
                // Every sender is gone: write what is left and stop.
                self.write_until_done(&mut batch);
                let _ = self.writer.sync();
                return;
            };
            let mut waiting: Vec<(oneshot::Sender<Result<(), String>>, bool)> = Vec::new();
            let mut acknowledged: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
            let mut next = Some(first);
            let mut lingered = self.linger.is_zero();
            loop {
                while let Some(message) = next.take() {
                    match message {
                        Message::Event(event) => batch.push(event),
                        Message::Acknowledged(event, reply) => {
                            batch.push(event);
                            acknowledged.push(reply);
                        }
                        Message::Flush(reply) => waiting.push((reply, false)),
                        Message::Shutdown(reply) => waiting.push((reply, true)),
                    }
                    // A flush or shutdown marker ends the batch so that it covers exactly what
                    // was queued before it.
                    if !waiting.is_empty() || batch.len() >= self.max_batch {
                        break;
                    }
                    next = self.receiver.try_recv().ok();
                }
                // Producers waiting for their events (Acknowledge::Written, Synced) cannot add
                // to the batch while they wait: lingering would only delay them. Whatever
                // queues during this write goes into the next one (group commit).
                if lingered
                    || !waiting.is_empty()
                    || !acknowledged.is_empty()
                    || batch.len() >= self.max_batch
                {
                    break;
                }
                // Let the batch fill for a moment (producers do not wake a sleeping writer).
                lingered = true;
                self.linger_for_more();
                next = self.receiver.try_recv().ok();
            }
            self.write_until_done(&mut batch);
            if !acknowledged.is_empty() {
                let done = if self.sync_acknowledged {
                    self.writer.sync().map_err(|e| e.to_string())
                } else {
                    Ok(())
                };
                for reply in acknowledged {
                    let _ = reply.send(done.clone());
                }
            }
            if self.receiver.is_empty() {
                self.report_drops();
            }
            let mut stop = false;
            if !waiting.is_empty() {
                let synced = self.writer.sync().map_err(|e| e.to_string());
                for (reply, shutdown) in waiting {
                    stop |= shutdown;
                    let _ = reply.send(synced.clone());
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Sleeps for the linger time, in short steps; it ends early when a flush or shutdown is
    /// waiting or the batch would be full.
    fn linger_for_more(&self) {
        let step = (self.linger / 4).clamp(Duration::from_micros(50), Duration::from_millis(1));
        let deadline = std::time::Instant::now() + self.linger;
        while std::time::Instant::now() < deadline {
            std::thread::sleep(step);
            if self.receiver.len() >= self.max_batch || self.urgent.swap(false, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Writes the batch, retrying with back-off until it succeeds: nothing accepted is
    /// dropped. Meanwhile the queue fills and the overflow policy applies to producers.
    #[expect(
        clippy::vec_box,
        reason = "the boxes cross threads as pointers, not 600-byte moves"
    )]
    fn write_until_done(&mut self, batch: &mut Vec<Box<AuditEvent>>) {
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(10);
        loop {
            let count = batch.len() as u64;
            match self.writer.write_batch(batch) {
                Ok(()) => {
                    self.stats.written.fetch_add(count, Ordering::Relaxed);
                    self.spent.give_back(batch);
                    if let Some(metrics) = &self.metrics {
                        metrics.record(Measurement::AuditQueueDepth(self.receiver.len()));
                    }
                    return;
                }
                Err(_) => {
                    self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn report_drops(&mut self) {
        let dropped = self.pending_drops.swap(0, Ordering::AcqRel);
        if dropped == 0 {
            return;
        }
        let event = AuditEvent::new(
            self.ids.event_id(),
            AuditEventType::SecurityViolation,
            AuditResult::Failure,
            self.clock.now(),
        )
        .with_action("AUDIT_EVENTS_DROPPED")
        .with_reason(format!(
            "{dropped} audit events were dropped because the audit queue was full"
        ))
        .with_metadata("dropped", dropped);
        let mut batch = vec![Box::new(event)];
        self.write_until_done(&mut batch);
    }
}
