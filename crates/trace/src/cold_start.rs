//! `memlens trace --cold-start -- CMD ARGS`: the command is forked by us and
//! held before `exec` (on a pipe) until the probes are attached, then released,
//! so the trace sees it from its first instruction; and whether it listens on
//! a TCP socket yet (its `socket:[inode]` fds against `/proc/PID/net/tcp{,6}`).
//!
//! Rust's `Command::spawn` returns only after the `exec`, too late: hence the
//! fork of our own.

use std::ffi::CString;
use std::time::{Duration, Instant};

use memlens_linux::net_tcp::{parse_tcp_table, socket_link_inode};

use crate::error::TraceError;

/// A forked command waiting before its `exec`.
#[derive(Debug)]
pub struct HeldCommand {
    /// Its pid (the same after the exec).
    pub pid: u32,
    /// The pipe's write end: one byte releases it; closing it unreleased
    /// makes it exit 126 without running anything.
    release_fd: libc::c_int,
    reaped: bool,
}

impl HeldCommand {
    /// Forks; the child waits on a pipe, then execs `argv` (looked up in PATH).
    pub fn spawn(argv: &[String]) -> Result<HeldCommand, TraceError> {
        let bad = |why: String| TraceError::BadOption(format!("--cold-start: {why}"));
        if argv.is_empty() {
            return Err(bad("no command after `--`".into()));
        }
        if !executable(&argv[0]) {
            return Err(bad(format!(
                "{}: no such executable (not a file with execute permission, nor one in PATH)",
                argv[0]
            )));
        }
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| bad(format!("{a:?} holds a NUL byte"))))
            .collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(bad(format!("pipe: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: the child only calls async-signal-safe functions (read,
        // close, execvp, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(bad(format!("fork: {}", std::io::Error::last_os_error())));
        }
        if pid == 0 {
            // SAFETY: see above; the child never returns from this block.
            unsafe {
                libc::close(fds[1]);
                let mut byte = 0u8;
                if libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) != 1 {
                    libc::_exit(126);
                }
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let msg = b"memlens trace --cold-start: cannot execute the command\n";
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(127);
            }
        }
        // SAFETY: our copy of the read end is not needed.
        unsafe { libc::close(fds[0]) };
        Ok(HeldCommand {
            pid: pid as u32,
            release_fd: fds[1],
            reaped: false,
        })
    }

    /// Lets the command exec and run.
    pub fn release(&mut self) {
        if self.release_fd >= 0 {
            // SAFETY: writes one byte to and closes our own pipe end.
            unsafe {
                libc::write(self.release_fd, b"x".as_ptr().cast(), 1);
                libc::close(self.release_fd);
            }
            self.release_fd = -1;
        }
    }

    /// Ends the command if it still runs: SIGTERM, up to `grace` to exit,
    /// then SIGKILL; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if self.reaped {
            return;
        }
        if self.release_fd >= 0 {
            // SAFETY: closes our pipe end (an unreleased child exits 126).
            unsafe { libc::close(self.release_fd) };
            self.release_fd = -1;
        }
        let pid = self.pid as libc::pid_t;
        let mut status = 0;
        // SAFETY: waitpid/kill on our own child.
        unsafe {
            if libc::waitpid(pid, &mut status, libc::WNOHANG) == pid {
                self.reaped = true;
                return;
            }
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            // SAFETY: as above.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                self.reaped = true;
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
        self.reaped = true;
    }
}

impl Drop for HeldCommand {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Whether `name` is what execvp would run: a path to an executable file,
/// or a name found as one in a `PATH` directory.
fn executable(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return runnable(std::path::Path::new(name));
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| runnable(&dir.join(name))))
        .unwrap_or(false)
}

/// Whether process `pid` holds a listening TCP socket now.
pub fn listening(pid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<u64> = entries
        .flatten()
        .filter_map(|e| socket_link_inode(std::fs::read_link(e.path()).ok()?.to_str()?))
        .collect();
    if inodes.is_empty() {
        return false;
    }
    ["tcp", "tcp6"].iter().any(|table| {
        let path = format!("/proc/{pid}/net/{table}");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        parse_tcp_table(&path, &text)
            .unwrap_or_default()
            .iter()
            .any(|s| s.is_listening() && inodes.contains(&s.inode))
    })
}
