//! Killed with SIGKILL under load, the quickstart must have on disk the audit event of every
//! request whose response a client received, when `audit_acknowledge` is `written` or
//! `synced`; after a restart the file has no torn line and its hash chain goes on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed assertion is the point"
)]

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EXAMPLE: &str = env!("CARGO_MANIFEST_DIR");

/// A copy of the quickstart's configuration with `audit_acknowledge = mode`.
fn configure(dir: &Path, mode: &str) -> PathBuf {
    for file in ["api_keys.json", "roles.toml"] {
        std::fs::copy(Path::new(EXAMPLE).join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(Path::new(EXAMPLE).join("quickstart.toml")).unwrap();
    let text = format!("audit_acknowledge = \"{mode}\"\n{text}");
    let path = dir.join("quickstart.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, audit_log: &Path) -> (Child, String) {
    let args: [&OsStr; 7] = [
        "--dev".as_ref(),
        "--port".as_ref(),
        "0".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--audit-log".as_ref(),
        audit_log.as_os_str(),
    ];
    common::spawn(args)
}

/// One request; `Some(status)` only when the whole response arrived.
fn get(address: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nX-API-Key: demo-reader-key\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().parse().ok())
    })??;
    if body.len() < length {
        return None;
    }
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The request paths of the events in the file, and the lines.
fn events(audit_log: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(audit_log).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let paths = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| e["request_path"].as_str().map(str::to_owned))
        .collect();
    (paths, lines)
}

fn kill_under_load(mode: &str) {
    let dir = std::env::temp_dir().join(format!("quickstart-kill-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = configure(&dir, mode);
    let audit_log = dir.join("audit.jsonl");
    let (mut child, address) = start(&config, &audit_log);

    let answered = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (answered, stop, address) = (answered.clone(), stop.clone(), address.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/collections/c{client}-{n}");
                    if get(&address, &path) == Some(200) {
                        answered.lock().unwrap().push(path);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    while answered.lock().unwrap().len() < 2_000 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no shutdown, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 100,
        "the server answered too little to test: {}",
        answered.len()
    );

    let (paths, _) = events(&audit_log);
    let on_disk: HashSet<&str> = paths.iter().map(String::as_str).collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|p| !on_disk.contains(p.as_str()))
        .collect();
    println!(
        "{mode}: {} answered, {} events on disk, {} answered without an event",
        answered.len(),
        paths.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{mode}: answered without an event on disk: {:?}",
        &missing[..missing.len().min(5)]
    );

    // Restart on the same file: a torn last line is set aside, the chain goes on.
    let (mut child, address) = start(&config, &audit_log);
    assert_eq!(get(&address, "/collections/after-restart"), Some(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let (paths, lines) = events(&audit_log);
    assert!(paths.iter().any(|p| p == "/collections/after-restart"));
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{mode}: torn line after recovery: {line:?}"
        );
    }
    portcullis::audit::verify_lines(&lines, portcullis::audit::GENESIS, None)
        .unwrap_or_else(|e| panic!("{mode}: the chain does not continue across the restart: {e}"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn written_keeps_the_event_of_every_answered_request_through_sigkill() {
    kill_under_load("written");
}

#[test]
fn synced_keeps_the_event_of_every_answered_request_through_sigkill() {
    kill_under_load("synced");
}
