//! Running a workload and watching what it says and how it ends.

use crate::{
    pie_workload_binary, stripped_workload_binary, workload_binary, GoToolchain, TestCgroup,
};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The most of a workload's stderr kept (gctrace of a long run fits easily).
const STDERR_CAP_BYTES: usize = 64 << 20;

/// Environment keys the Go runtime reads that a test must set on purpose, never inherit.
const GO_RUNTIME_KEYS: [&str; 4] = ["GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"];

/// What to start: a workload mode, its flags and extra environment.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    toolchain: GoToolchain,
    mode: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stripped: bool,
    pie: bool,
    netns: Option<PathBuf>,
    binary: Option<PathBuf>,
}

impl WorkloadSpec {
    /// A workload in `mode` (`steady`, `heap-leak`, ...) built with `toolchain`.
    pub fn new(toolchain: &GoToolchain, mode: &str) -> WorkloadSpec {
        WorkloadSpec {
            toolchain: toolchain.clone(),
            mode: mode.to_string(),
            netns: None,
            args: Vec::new(),
            env: Vec::new(),
            stripped: false,
            pie: false,
            binary: None,
        }
    }

    /// Adds a flag, e.g. `.arg("--duration=30s")`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds an environment variable, e.g. `.env("GODEBUG", "gctrace=1")`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs a stripped copy of the workload program (no `.symtab`, no DWARF:
    /// what production binaries often are).
    pub fn stripped(mut self) -> Self {
        self.stripped = true;
        self
    }

    /// Runs a position-independent build of the workload program
    /// (`-buildmode=pie`: loaded at a random address).
    pub fn pie(mut self) -> Self {
        self.pie = true;
        self
    }

    /// Runs this binary instead of the toolchain's workload build (a copy of
    /// it a test changed, e.g. with its DWARF moved to a separate file).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the workload outside any test cgroup.
    pub fn start(self) -> Workload {
        Workload::start(self, None)
    }

    /// Runs the workload in the network namespace at `path`
    /// (`/run/netns/NAME`): it joins before it execs.
    pub fn in_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    /// Starts the workload inside `cgroup`; the child joins before it execs, so
    /// all of its memory is charged there from the first page.
    pub fn start_in(self, cgroup: &TestCgroup) -> Workload {
        Workload::start(self, Some(cgroup.procs_file()))
    }
}

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (9 for the OOM killer).
    Signal(i32),
}

/// What the reader threads collected from the child's stdout.
#[derive(Debug, Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// A running workload process. Killed and reaped on drop.
#[derive(Debug)]
pub struct Workload {
    child: Child,
    exit: Option<Exit>,
    stdout: Arc<(Mutex<Lines>, Condvar)>,
    stderr: Arc<Mutex<Vec<u8>>>,
    listen: String,
    binary: PathBuf,
}

impl Workload {
    fn start(spec: WorkloadSpec, join_procs: Option<PathBuf>) -> Workload {
        let binary = if let Some(b) = &spec.binary {
            b.clone()
        } else if spec.stripped {
            stripped_workload_binary(&spec.toolchain)
        } else if spec.pie {
            pie_workload_binary(&spec.toolchain)
        } else {
            workload_binary(&spec.toolchain)
        };
        let mut cmd = Command::new(&binary);
        cmd.arg(format!("--mode={}", spec.mode))
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in GO_RUNTIME_KEYS {
            cmd.env_remove(key);
        }
        for (key, value) in &spec.env {
            cmd.env(key, value);
        }
        let procs =
            join_procs.map(|p| CString::new(p.as_os_str().as_bytes()).expect("no NUL in path"));
        // Opened before the fork: the child only calls setns on it.
        let netns = spec.netns.as_ref().map(|path| {
            std::fs::File::open(path)
                .unwrap_or_else(|e| panic!("open the network namespace {}: {e}", path.display()))
        });
        let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: the closure only calls async-signal-safe functions (prctl, getpid,
        // open, write, close) and touches no allocator or lock.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the test process, whatever happens to it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(procs) = &procs {
                    join_cgroup(procs)?;
                }
                if let Some(fd) = netns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {} --mode={}: {e}", binary.display(), spec.mode));
        drop(netns);
        let stdout = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        spawn_stdout_reader(child.stdout.take().expect("piped stdout"), stdout.clone());
        spawn_stderr_reader(child.stderr.take().expect("piped stderr"), stderr.clone());
        let mut workload = Workload {
            child,
            exit: None,
            stdout,
            stderr,
            listen: String::new(),
            binary,
        };
        let line = workload.wait_for_line("LISTEN ", Duration::from_secs(30));
        // `LISTEN addr at_unix_ns=T`: the address is the first field.
        workload.listen = line["LISTEN ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        workload
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The loopback `host:port` serving pprof and expvar.
    pub fn listen_addr(&self) -> &str {
        &self.listen
    }

    /// The binary that runs (useful for `go version -m`).
    pub fn binary(&self) -> &PathBuf {
        &self.binary
    }

    /// Waits until a stdout line starts with `prefix` and returns it.
    ///
    /// Panics, with what the workload printed, when the deadline passes or the
    /// workload closes its stdout first.
    pub fn wait_for_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, ready) = &*self.stdout;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = 0;
        loop {
            if let Some(line) = state.lines[seen..].iter().find(|l| l.starts_with(prefix)) {
                return line.clone();
            }
            seen = state.lines.len();
            let now = Instant::now();
            if state.closed || now >= deadline {
                let why = if state.closed {
                    "stdout closed"
                } else {
                    "timed out"
                };
                let printed = state.lines.join("\n");
                drop(state);
                panic!(
                    "workload pid {} never printed a line starting with {prefix:?} ({why} after {:?})\n\
                     --- stdout ---\n{printed}\n--- stderr (tail) ---\n{}",
                    self.pid(),
                    timeout,
                    self.stderr_tail(4000)
                );
            }
            state = ready
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let (lock, _) = &*self.stdout;
        lock.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
    }

    /// Everything the workload (and its Go runtime: gctrace, panics) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn stderr_tail(&self, max_chars: usize) -> String {
        let all = self.stderr();
        let start = all.len().saturating_sub(max_chars);
        let start = (start..all.len())
            .find(|&i| all.is_char_boundary(i))
            .unwrap_or(all.len());
        all[start..].to_string()
    }

    /// Waits for the workload to end, at most `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_exit() {
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How the workload ended, if it has.
    pub fn try_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            let status = self.child.try_wait().expect("waitpid on our own child")?;
            self.exit = Some(match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => unreachable!("a finished process has a code or a signal"),
            });
        }
        self.exit
    }

    /// Kills the workload (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the child of `command` join the cgroup whose `cgroup.procs` is
/// `procs` between fork and exec (all of its memory is charged there).
pub(crate) fn join_cgroup_before_exec(command: &mut Command, procs: &std::path::Path) {
    let procs = CString::new(procs.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: the closure only calls async-signal-safe functions (getpid,
    // open, write, close) and touches no allocator or lock.
    unsafe {
        command.pre_exec(move || join_cgroup(&procs));
    }
}

/// Writes our pid to a `cgroup.procs` file. Runs between fork and exec, so it
/// formats the number by hand and uses raw syscalls only.
pub(crate) fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: getpid, open, write and close are async-signal-safe; the buffer is on the stack.
    unsafe {
        let mut digits = [0u8; 20];
        let mut n = libc::getpid() as u32;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let len = digits.len() - at;
        let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if written != len as isize {
            return Err(err);
        }
    }
    Ok(())
}

fn spawn_stdout_reader(pipe: impl Read + Send + 'static, shared: Arc<(Mutex<Lines>, Condvar)>) {
    std::thread::spawn(move || {
        let (lock, ready) = &*shared;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lock.lock()
                .unwrap_or_else(|e| e.into_inner())
                .lines
                .push(line);
            ready.notify_all();
        }
        lock.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        ready.notify_all();
    });
}

fn spawn_stderr_reader(mut pipe: impl Read + Send + 'static, shared: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut kept = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let room = STDERR_CAP_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    });
}
