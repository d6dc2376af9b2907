//! Real peers (openssl, nginx, Node, PyJWT, the vector files): a test runs with them when
//! they are here, skips with a printed reason when they are not, and fails under CI
//! (`CI=true`), where `scripts/services.sh` installs every one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether the CI run is on (`CI=true`), where no test may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `here`, after saying why the test skips when it is false.
///
/// # Panics
///
/// When `here` is false under CI: the peer must be installed there.
pub fn present(what: &str, here: bool) -> bool {
    if !here {
        assert!(!under_ci(), "{what} is required under CI");
        println!("skipping: {what} is not available");
    }
    here
}

/// Whether `program args…` runs and exits with success (output discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// [`present`] for a program that must run `program args…` successfully.
pub fn program(program: &str, args: &[&str]) -> bool {
    present(program, runs(program, args))
}

/// The path of `program` on `PATH` or in `/usr/sbin` and `/sbin` (where Debian puts nginx).
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// A new, empty directory under the system temporary directory, unique to this process
/// and call.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("portcullis-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
