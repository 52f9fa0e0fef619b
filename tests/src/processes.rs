//! Child processes for cross-process tests: a guard that kills by PID, and
//! the projector's `replay` run to completion.

use std::path::Path;
use std::process::{Child, Command};

/// A child process killed by PID when dropped.
pub struct ProcessGuard(pub Child);

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `sessionfold-projector replay events` against `redis_url` and waits
/// for it to exit: once it has, every write it made is in Redis. `binary` is
/// the test's `CARGO_BIN_EXE_projector-under-test`.
pub fn replay(binary: &str, redis_url: &str, events: &Path) {
    let output = Command::new(binary)
        .arg("replay")
        .arg(events)
        .env("REDIS_URL", redis_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("start the projector");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
