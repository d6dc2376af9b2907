//! The audit trail end to end: no loss under load, crash safety, tamper detection, redaction,
//! overflow policies, recovery, the AmateRS `jq` queries and the reader.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::borrow::BorrowMut;
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use portcullis_audit::*;
use portcullis_core::{
    AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink, AuthMethod, OffsetDateTime,
    Principal, PrincipalKind,
};
use portcullis_core::{AuditFilter, AuditQuery, FlushingQuery, IdSource, RandomIds};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("portcullis-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::new(
        RandomIds.event_id(),
        AuditEventType::Authorization,
        AuditResult::Allowed,
        OffsetDateTime::now_utc(),
    )
    .with_action("read")
    .with_resource(&format!("collection:c{n}"))
    .with_metadata("n", n)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// --- No loss under load ----------------------------------------------------------------

#[test]
fn no_loss_under_load_8_producers_x_50000() {
    let dir = temp_dir("load");
    let path = dir.join("audit.jsonl");
    let mut config = FileSinkConfig::new(&path);
    config.rotation.max_bytes = None;
    let sink = Arc::new(
        BufferedSink::new(JsonlFile::open(config).unwrap(), BufferConfig::default()).unwrap(),
    );
    let rt = runtime();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for producer in 0..8u64 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50_000u64 {
                    sink.record(event(producer * 1_000_000 + i)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        sink.flush().await.unwrap();
    });
    let all = lines(&path);
    assert_eq!(all.len(), 400_000);
    let mut ids = HashSet::with_capacity(400_000);
    for line in &all {
        let e: AuditEvent = serde_json::from_str(line).unwrap();
        assert!(ids.insert(e.id.as_str().to_owned()), "duplicate id");
    }
    assert_eq!(sink.stats().written(), 400_000);
    assert_eq!(AuditReader::new(&path).verify(None).unwrap().0, 400_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Crash -----------------------------------------------------------------------------

const CHILD_ENV: &str = "PORTCULLIS_AUDIT_CRASH_CHILD";

/// The child side of `crash_keeps_every_acknowledged_event`: writes batches with per-batch
/// fsync and prints the last acknowledged sequence number after each flush. A no-op unless
/// started by that test.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let sink = BufferedSink::new(
        JsonlFile::open(FileSinkConfig::new(&path)).unwrap(),
        BufferConfig::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut out = std::io::stdout();
    let mut n = 0u64;
    loop {
        rt.block_on(async {
            for _ in 0..100 {
                sink.record(event(n)).await.unwrap();
                n += 1;
            }
            sink.flush().await.unwrap();
        });
        writeln!(out, "ACK {}", n - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn crash_keeps_every_acknowledged_event() {
    let dir = temp_dir("crash");
    let path = dir.join("audit.jsonl");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            acknowledged = Some(n.parse::<u64>().unwrap());
            if acknowledged.unwrap() >= 2_000 {
                // SIGKILL, in the middle of later writes.
                child.kill().unwrap();
                break;
            }
        }
    }
    let _ = child.wait();
    let acknowledged = acknowledged.expect("the child acknowledged writes");

    // Reopening recovers any torn line; every acknowledged event is present and intact.
    let file = JsonlFile::open(FileSinkConfig::new(&path)).unwrap();
    drop(file);
    let mut seen = HashSet::new();
    for line in lines(&path) {
        let e: AuditEvent = serde_json::from_str(&line).expect("every remaining line parses");
        seen.insert(e.metadata["n"].as_u64().unwrap());
    }
    for n in 0..=acknowledged {
        assert!(seen.contains(&n), "acknowledged event {n} lost");
    }
    assert!(AuditReader::new(&path).verify(None).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Tamper evidence -------------------------------------------------------------------

fn chained_trail(name: &str, count: u64) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let path = dir.join("audit.jsonl");
    let mut file = JsonlFile::open(FileSinkConfig::new(&path)).unwrap();
    let mut events: Vec<AuditEvent> = (0..count).map(event).collect();
    file.write_batch(&mut events).unwrap();
    (dir, path)
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A trail with a line that is not UTF-8 (Latin-1) and one longer than the reader holds: a
/// query skips both (they are not events) without holding the long one in memory, and
/// verification reports the first as unparseable at its line.
#[tokio::test]
async fn unreadable_lines_are_skipped_by_queries_and_refused_by_verification() {
    let (dir, path) = chained_trail("unreadable", 4);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut inserted = b"{\"caf\xe9\": 1}\n".to_vec();
    inserted.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_LEN));
    inserted.push(b'\n');
    bytes.splice(at..at, inserted);
    std::fs::write(&path, &bytes).unwrap();
    let reader = AuditReader::new(&path);
    let events = AuditQuery::query(&reader, &AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 4, "the four events, and nothing else");
    assert_eq!(
        reader.verify(None).unwrap_err(),
        VerifyError::Tampered(Tampering::Unparseable { line: 2 })
    );
    // An empty file is an empty trail.
    std::fs::write(&path, b"").unwrap();
    assert!(
        AuditQuery::query(&reader, &AuditFilter::default(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tampering_each_kind_of_edit_is_reported_at_its_line() {
    let (dir, path) = chained_trail("tamper", 10);
    let original = lines(&path);
    let reader = AuditReader::new(&path);
    let (count, head) = reader.verify(None).unwrap();
    assert_eq!(count, 10);

    let tampered = |edit: &dyn Fn(&mut Vec<String>)| {
        let mut l = original.clone();
        edit(&mut l);
        rewrite(&path, &l);
        reader.verify(Some(&head)).unwrap_err()
    };
    use Tampering::*;
    let edited = tampered(&|l| l[4] = l[4].replace("\"allowed\"", "\"denied\""));
    assert_eq!(edited, VerifyError::Tampered(Edited { line: 5 }));
    let deleted = tampered(&|l| {
        l.remove(4);
    });
    assert_eq!(deleted, VerifyError::Tampered(Broken { line: 5 }));
    let inserted = tampered(&|l| {
        let copy = l[2].clone();
        l.insert(6, copy);
    });
    assert_eq!(inserted, VerifyError::Tampered(Broken { line: 7 }));
    let reordered = tampered(&|l| l.swap(3, 4));
    assert_eq!(reordered, VerifyError::Tampered(Broken { line: 4 }));
    let truncated = tampered(&|l| {
        l.pop();
    });
    assert_eq!(truncated, VerifyError::Tampered(HeadMismatch));
    let garbage = tampered(&|l| l[0] = "{not json".into());
    assert_eq!(garbage, VerifyError::Tampered(Unparseable { line: 1 }));
    // Re-serialized but equivalent JSON (reordered keys) is an edit too.
    let reformatted = tampered(&|l| {
        let v: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
        l[1] = serde_json::to_string_pretty(&v).unwrap().replace('\n', "");
    });
    assert_eq!(reformatted, VerifyError::Tampered(Edited { line: 2 }));

    rewrite(&path, &original);
    assert_eq!(reader.verify(Some(&head)).unwrap().0, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotation_continues_the_chain_and_keeps_retention() {
    let dir = temp_dir("rotate");
    let path = dir.join("audit.jsonl");
    let mut config = FileSinkConfig::new(&path);
    config.rotation = Rotation::default()
        .max_bytes(Some(4_000))
        .max_age(None)
        .keep(3);
    let mut file = JsonlFile::open(config.clone()).unwrap();
    for n in 0..100 {
        file.write_batch(&mut [event(n)]).unwrap();
    }
    let head = file.chain_head().unwrap().to_owned();
    drop(file);
    // The documented names: `<path>.1` (newest) to `<path>.<keep>`.
    let rotated = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    assert!(rotated(1).exists() && rotated(3).exists());
    assert!(!rotated(4).exists(), "retention keeps 3 rotated files");
    let reader = AuditReader::new(&path);
    let (count, last) = reader.verify(Some(&head)).unwrap();
    assert_eq!(last, head);
    assert!(count < 100, "the oldest files were deleted");
    // Restarting continues the chain from the last event.
    let mut file = JsonlFile::open(config).unwrap();
    let mut next = [event(100)];
    file.write_batch(&mut next).unwrap();
    drop(file);
    assert_eq!(next[0].prev_hash.as_deref(), Some(head.as_str()));
    let (_, new_head) = reader.verify(None).unwrap();
    assert_eq!(Some(new_head.as_str()), next[0].hash.as_deref());
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Redaction -------------------------------------------------------------------------

#[test]
fn redaction_no_planted_secret_reaches_the_file() {
    let dir = temp_dir("redact");
    let path = dir.join("audit.jsonl");
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.U2lnbmF0dXJlU2lnbmF0dXJl";
    let api_key = "pc_live_AbCdEfGhIjKl_0123456789abcdefghijABCDEFGHIJ0123456789xyz";
    let principal = Principal::builder(
        "bob",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::now_utc(),
    )
    .build()
    .unwrap();
    let planted = AuditEvent::new(
        RandomIds.event_id(),
        AuditEventType::Authentication,
        AuditResult::Failure,
        OffsetDateTime::now_utc(),
    )
    .with_principal(&principal)
    .with_reason(format!("header was Authorization: Bearer {jwt}"))
    .with_http(
        "POST",
        format!("/auth/login?token={jwt}&key={api_key}"),
        Some(401),
    )
    .with_user_agent(format!("script/1.0 (key {api_key})"))
    .with_metadata("password", "correct horse battery staple")
    .with_metadata("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    .with_metadata(
        "headers",
        serde_json::json!({"x-api-key": api_key, "cookie": "sid=s3ss10n"}),
    )
    .with_metadata(
        "private_key",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
    )
    .with_metadata("jti", "token-id-123");
    let sink = BufferedSink::new(
        JsonlFile::open(FileSinkConfig::new(&path)).unwrap(),
        BufferConfig::default(),
    )
    .unwrap();
    runtime().block_on(async {
        sink.record(planted).await.unwrap();
        sink.shutdown().await.unwrap();
    });
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        jwt,
        api_key,
        "correct horse",
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ",
        "s3ss10n",
        "MHcCAQEE",
    ] {
        assert!(!text.contains(secret), "`{secret}` leaked: {text}");
    }
    assert!(
        text.contains("token-id-123"),
        "a jti is an identifier and stays"
    );
    assert_eq!(lines(&path).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn control_characters_cannot_forge_a_second_line() {
    let (dir, path) = chained_trail("inject", 0);
    let mut file = JsonlFile::open(FileSinkConfig::new(&path)).unwrap();
    let evil = "x\n{\"event_type\":\"admin\",\"result\":\"success\"}\r\n";
    file.write_batch(&mut [event(1)
        .with_resource(&format!("collection:{evil}"))
        .with_user_agent(evil)])
        .unwrap();
    drop(file);
    assert_eq!(lines(&path).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Overflow policies -----------------------------------------------------------------

/// A writer that waits at a gate before each batch, to fill the queue on purpose.
#[derive(Clone)]
struct GatedWriter {
    gate: Arc<(Mutex<bool>, Condvar)>,
    written: Arc<Mutex<Vec<AuditEvent>>>,
}

impl GatedWriter {
    fn new() -> Self {
        Self {
            gate: Arc::new((Mutex::new(false), Condvar::new())),
            written: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
}

impl BatchWriter for GatedWriter {
    fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        let mut open = self.gate.0.lock().unwrap();
        while !*open {
            open = self.gate.1.wait(open).unwrap();
        }
        self.written
            .lock()
            .unwrap()
            .extend(events.iter_mut().map(|e| e.borrow_mut().clone()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[test]
fn fail_closed_refuses_when_the_queue_is_full() {
    let writer = GatedWriter::new();
    let config = BufferConfig::default()
        .capacity(8)
        .max_batch(1)
        .overflow(Overflow::FailClosed);
    let sink = BufferedSink::new(writer.clone(), config).unwrap();
    let rt = runtime();
    let results: Vec<Result<(), AuditError>> =
        rt.block_on(async { futures_lite_collect(&sink, 40).await });
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(AuditError::Refused(_))))
        .count();
    assert!(refused > 0, "a full queue refuses");
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    writer.open();
    rt.block_on(sink.flush()).unwrap();
    // Everything accepted was written; nothing refused was.
    assert_eq!(writer.written.lock().unwrap().len(), accepted);
}

async fn futures_lite_collect(sink: &BufferedSink, n: u64) -> Vec<Result<(), AuditError>> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(sink.record(event(i)).await);
    }
    out
}

#[test]
fn drop_and_count_reports_a_security_violation() {
    let writer = GatedWriter::new();
    let config = BufferConfig::default()
        .capacity(8)
        .max_batch(1)
        .overflow(Overflow::DropAndCount);
    let sink = BufferedSink::new(writer.clone(), config).unwrap();
    let rt = runtime();
    let results = rt.block_on(async { futures_lite_collect(&sink, 40).await });
    assert!(
        results.iter().all(Result::is_ok),
        "drop-and-count never fails the caller"
    );
    let dropped = sink.stats().dropped();
    assert!(dropped > 0);
    writer.open();
    rt.block_on(sink.flush()).unwrap();
    let written = writer.written.lock().unwrap().clone();
    let violation = written
        .iter()
        .find(|e| e.event_type == AuditEventType::SecurityViolation)
        .expect("a security_violation reports the drops");
    assert_eq!(violation.metadata["dropped"], dropped);
    assert_eq!(written.len() as u64 + dropped, 40 + 1);
}

#[test]
fn block_waits_and_loses_nothing() {
    let writer = GatedWriter::new();
    let config = BufferConfig::default()
        .capacity(4)
        .max_batch(2)
        .overflow(Overflow::Block);
    let sink = Arc::new(BufferedSink::new(writer.clone(), config).unwrap());
    let rt = runtime();
    let producer = {
        let sink = sink.clone();
        rt.spawn(async move {
            for i in 0..50 {
                sink.record(event(i)).await.unwrap();
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!producer.is_finished(), "the producer waits for room");
    writer.open();
    rt.block_on(producer).unwrap();
    rt.block_on(sink.shutdown()).unwrap();
    assert_eq!(writer.written.lock().unwrap().len(), 50);
    assert!(matches!(
        rt.block_on(sink.record(event(0))),
        Err(AuditError::Closed)
    ));
}

// --- Recovery and file mode ------------------------------------------------------------

#[test]
fn torn_last_line_is_set_aside_and_the_chain_continues() {
    let (dir, path) = chained_trail("torn", 3);
    let mut content = std::fs::read_to_string(&path).unwrap();
    content.push_str("{\"id\":\"half-writ");
    std::fs::write(&path, &content).unwrap();

    let mut file = JsonlFile::open(FileSinkConfig::new(&path)).unwrap();
    let aside = file.recovered_torn_line().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(&aside).unwrap(),
        "{\"id\":\"half-writ"
    );
    file.write_batch(&mut [event(3)]).unwrap();
    drop(file);
    assert_eq!(lines(&path).len(), 4);
    assert_eq!(AuditReader::new(&path).verify(None).unwrap().0, 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn the_file_is_created_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = chained_trail("mode", 1);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Reading ---------------------------------------------------------------------------

#[test]
fn reader_filters_and_paginates_across_rotated_files() {
    let dir = temp_dir("reader");
    let path = dir.join("audit.jsonl");
    let mut config = FileSinkConfig::new(&path);
    config.rotation = Rotation::default()
        .max_bytes(Some(3_000))
        .max_age(None)
        .keep(100);
    let mut file = JsonlFile::open(config).unwrap();
    let alice = Principal::builder(
        "alice",
        PrincipalKind::User,
        AuthMethod::ApiKey,
        OffsetDateTime::now_utc(),
    )
    .build()
    .unwrap();
    for n in 0..30u64 {
        let result = if n % 3 == 0 {
            AuditResult::Denied
        } else {
            AuditResult::Allowed
        };
        let mut e = AuditEvent::new(
            RandomIds.event_id(),
            AuditEventType::Authorization,
            result,
            OffsetDateTime::now_utc(),
        )
        .with_action("LOGIN")
        .with_resource(&format!("project:{n}"))
        .with_metadata("n", n);
        if n % 2 == 0 {
            e = e.with_principal(&alice);
        }
        file.write_batch(&mut [e]).unwrap();
    }
    drop(file);
    let reader = AuditReader::new(&path);
    assert!(reader.files().len() > 1);
    let denied_alice = AuditFilter::new()
        .principal_id("alice")
        .result(AuditResult::Denied);
    let all: Vec<u64> = reader
        .query(&denied_alice, 0, 100)
        .unwrap()
        .iter()
        .map(|e| e.metadata["n"].as_u64().unwrap())
        .collect();
    assert_eq!(all, [0, 6, 12, 18, 24]);
    let page: Vec<u64> = reader
        .query(&denied_alice, 1, 2)
        .unwrap()
        .iter()
        .map(|e| e.metadata["n"].as_u64().unwrap())
        .collect();
    assert_eq!(page, [6, 12]);
    let one = AuditFilter::new().resource_type("project").resource_id("7");
    assert_eq!(reader.query(&one, 0, 10).unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The three `jq` queries of the AmateRS document, run with the real `jq` on our file.
#[test]
fn amaters_jq_queries_work_on_our_files() {
    let dir = temp_dir("jq");
    let path = dir.join("audit.jsonl");
    let mut file = JsonlFile::open(FileSinkConfig::new(&path)).unwrap();
    let user = Principal::builder(
        "user123",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::now_utc(),
    )
    .name("John Doe")
    .role("admin")
    .build()
    .unwrap();
    let now = OffsetDateTime::now_utc();
    file.write_batch(&mut [
        AuditEvent::new(
            RandomIds.event_id(),
            AuditEventType::Authentication,
            AuditResult::Success,
            now,
        )
        .with_principal(&user),
        AuditEvent::new(
            RandomIds.event_id(),
            AuditEventType::Authorization,
            AuditResult::Denied,
            now,
        )
        .with_principal(&user),
        AuditEvent::new(
            RandomIds.event_id(),
            AuditEventType::Authorization,
            AuditResult::Allowed,
            now,
        ),
    ])
    .unwrap();
    drop(file);
    let jq = |query: &str| -> Option<usize> {
        let out = std::process::Command::new("jq")
            .args(["-c", query])
            .arg(&path)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).lines().count())
    };
    let have_jq = portcullis_testkit::peer::program("jq", &["--version"]);
    if have_jq {
        assert_eq!(jq("."), Some(3));
        assert_eq!(jq(r#"select(.event_type == "authentication")"#), Some(1));
        assert_eq!(
            jq(r#"select(.event_type == "authorization" and .result == "denied")"#),
            Some(1)
        );
        assert_eq!(jq(r#"select(.principal.id == "user123")"#), Some(2));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Counts the batches a writer is given.
#[derive(Clone, Default)]
struct BatchCounter {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl BatchWriter for BatchCounter {
    fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        self.batches.lock().unwrap().push(events.len());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
}

#[test]
fn the_writer_lingers_so_that_a_burst_is_one_batch() {
    let writer = BatchCounter::default();
    let config = BufferConfig::default().linger(std::time::Duration::from_millis(500));
    let sink = BufferedSink::new(writer.clone(), config).unwrap();
    let rt = runtime();
    rt.block_on(async {
        for i in 0..20 {
            sink.record(event(i)).await.unwrap();
        }
        sink.flush().await.unwrap();
    });
    let batches = writer.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 20, "every event is written");
    // The first event wakes the writer; the rest arrive while it waits (a flush ends the wait).
    assert!(batches.len() <= 2, "{batches:?}");
    // Without lingering, written events still come back to the producers and nothing is lost.
    let writer = BatchCounter::default();
    let config = BufferConfig::default().linger(std::time::Duration::ZERO);
    let sink = BufferedSink::new(writer.clone(), config).unwrap();
    rt.block_on(async {
        for i in 0..1_000 {
            sink.record(event(i)).await.unwrap();
        }
        sink.shutdown().await.unwrap();
    });
    assert_eq!(writer.batches.lock().unwrap().iter().sum::<usize>(), 1_000);
}

#[test]
fn a_flushing_query_sees_every_event_recorded_before_it() {
    let dir = temp_dir("flushing-query");
    let path = dir.join("audit.jsonl");
    // Long enough that nothing reaches the file unless something flushes.
    let config = BufferConfig::default().linger(std::time::Duration::from_secs(30));
    let sink = Arc::new(
        BufferedSink::new(JsonlFile::open(FileSinkConfig::new(&path)).unwrap(), config).unwrap(),
    );
    let query = FlushingQuery::new(sink.clone(), AuditReader::new(&path));
    let rt = runtime();
    let found = rt.block_on(async {
        for i in 0..25 {
            sink.record(event(i)).await.unwrap();
        }
        AuditQuery::query(&query, &AuditFilter::default(), 0, 100)
            .await
            .unwrap()
    });
    assert_eq!(found.len(), 25);
    rt.block_on(sink.shutdown()).unwrap();
}

// --- Acknowledge: when `record` returns ------------------------------------------------

/// Records what happened in order: writes (with their sizes) and syncs.
#[derive(Clone, Default)]
struct Journal {
    steps: Arc<Mutex<Vec<String>>>,
    gate: Option<Arc<(Mutex<bool>, Condvar)>>,
}

impl BatchWriter for Journal {
    fn write_batch<E: BorrowMut<AuditEvent>>(
        &mut self,
        events: &mut [E],
    ) -> Result<(), AuditError> {
        if let Some(gate) = &self.gate {
            let mut open = gate.0.lock().unwrap();
            while !*open {
                open = gate.1.wait(open).unwrap();
            }
        }
        self.steps
            .lock()
            .unwrap()
            .push(format!("write {}", events.len()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        self.steps.lock().unwrap().push("sync".into());
        Ok(())
    }
}

#[test]
fn written_returns_only_once_the_event_is_written_and_batches_the_waiters() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let writer = Journal {
        gate: Some(gate.clone()),
        ..Journal::default()
    };
    let config = BufferConfig::default().acknowledge(Acknowledge::Written);
    let sink = Arc::new(BufferedSink::new(writer.clone(), config).unwrap());
    let rt = runtime();
    rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(async move { sink.record(event(i)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "nothing may return before its event is written"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    let steps = writer.steps.lock().unwrap().clone();
    let written: usize = steps
        .iter()
        .filter_map(|s| s.strip_prefix("write "))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(written, 200);
    assert!(
        steps.len() < 20,
        "one write serves many waiting requests: {steps:?}"
    );
    assert!(!steps.contains(&"sync".to_owned()), "Written does not sync");
}

#[test]
fn synced_returns_after_the_sync_of_its_batch() {
    let writer = Journal::default();
    let config = BufferConfig::default().acknowledge(Acknowledge::Synced);
    let sink = BufferedSink::new(writer.clone(), config).unwrap();
    let rt = runtime();
    rt.block_on(async {
        sink.record(event(1)).await.unwrap();
        let steps = writer.steps.lock().unwrap().clone();
        assert_eq!(steps, ["write 1", "sync"], "synced before record returns");
    });
    // Queued (the default) returns before anything is written.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let writer = Journal {
        gate: Some(gate.clone()),
        ..Journal::default()
    };
    let sink = BufferedSink::new(writer.clone(), BufferConfig::default()).unwrap();
    rt.block_on(async { sink.record(event(2)).await.unwrap() });
    assert!(writer.steps.lock().unwrap().is_empty());
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}
