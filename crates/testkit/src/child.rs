//! Any child process a test starts, killed and reaped when the test ends.

use std::process::Child;

/// A child process killed and reaped on drop, pass or fail.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Kills (SIGKILL) and reaps the child now.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
