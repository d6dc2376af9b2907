//! Starting the quickstart binary as a user does and reading where it listens.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers shared by the test files: a failed start is the point"
)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Starts `quickstart args…` and returns the process and its `127.0.0.1:port`, read from the
/// first line it prints. The rest of its output is drained in the background.
pub fn spawn<I, S>(args: I) -> (Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("quickstart listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        address.starts_with("127.0.0.1:"),
        "binds loopback: {address}"
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || for _ in stdout.lines() {});
    std::thread::spawn(move || for _ in stderr.lines() {});
    (child, address)
}
