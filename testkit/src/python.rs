//! Python 3 with PyJWT and python-cryptography, an independent JOSE implementation.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::peer;

/// Whether `python3` can import PyJWT and cryptography (see [`peer::present`]).
pub fn pyjwt() -> bool {
    peer::present(
        "python3 with PyJWT and cryptography (scripts/services.sh installs them)",
        peer::runs("python3", &["-c", "import jwt, cryptography"]),
    )
}

/// Runs `script` with `input` as JSON on stdin and returns the JSON it prints.
///
/// # Panics
///
/// When the script fails (with its stderr) or prints something that is not JSON.
pub fn run(script: &str, input: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
