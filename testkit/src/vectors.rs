//! The third-party test vectors of `shared/vectors/` (Wycheproof, x509-limbo, the RFC
//! examples), found next to the repository or at `PORTCULLIS_VECTORS_DIR`.

use std::path::PathBuf;

use serde_json::Value;

use crate::peer;

/// The vectors directory, or `None` (after saying so) when it is absent outside CI.
///
/// # Panics
///
/// Under CI when the directory is absent.
pub fn dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PORTCULLIS_VECTORS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
        PathBuf::from,
    );
    let what = format!(
        "the test vectors at {} (set PORTCULLIS_VECTORS_DIR)",
        dir.display()
    );
    peer::present(&what, dir.is_dir()).then_some(dir)
}

/// A JSON file of the vectors, by its path inside the directory.
///
/// # Panics
///
/// When the directory is there but the file is not, or is not JSON.
pub fn json(path: &str) -> Option<Value> {
    let file = dir()?.join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    Some(serde_json::from_str(&text).unwrap())
}
