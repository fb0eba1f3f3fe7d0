//! [`MariaDb`]: a private MariaDB server for one test (Debian `mariadb-server`).
//!
//! Its own data dir (made by `mariadb-install-db`), unix socket and loopback
//! port, a small buffer pool; root logs in over the socket (unix-socket
//! authentication) through the `mariadb` command-line client, so the test's own
//! reads ([`MariaDb::sql`], [`MariaDb::global_status`]) go through a third party
//! and not through the code under test. A test user with a password is created
//! for the code under test. The server is stopped and its files removed on drop,
//! also when the test fails.

use crate::{free_loopback_port, ChildGuard, TempDir};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The user [`MariaDb::start`] creates for the code under test.
pub const TEST_USER: &str = "memlens";
/// Its password.
pub const TEST_PASSWORD: &str = "memlens-test-pw";

/// How to start a [`MariaDb`].
#[derive(Debug, Clone)]
pub struct MariaDbSpec {
    /// `innodb_buffer_pool_size` in bytes (MariaDB rounds it to its chunk
    /// size). The default, 48 MiB, differs from the 32 MiB mapping of the
    /// default redo log buffer (2 × `innodb_log_buffer_size`), so the pool's
    /// mapping in smaps cannot be mistaken for it.
    pub buffer_pool_bytes: u64,
    /// More `mariadbd` options (`--performance-schema=ON`, ...).
    pub extra_args: Vec<String>,
    /// A cgroup's `cgroup.procs` (e.g. [`crate::TestCgroup::procs_file`]): the
    /// server joins that cgroup before its exec, so all its memory is charged
    /// there from its first page.
    pub cgroup_procs: Option<PathBuf>,
}

impl Default for MariaDbSpec {
    fn default() -> Self {
        MariaDbSpec {
            buffer_pool_bytes: 48 << 20,
            extra_args: Vec::new(),
            cgroup_procs: None,
        }
    }
}

/// A running private MariaDB server; stopped and removed on drop.
pub struct MariaDb {
    child: Option<ChildGuard>,
    socket: PathBuf,
    port: u16,
    dir: TempDir,
}

/// The server binary: `mariadbd` (10.5+) or the older `mysqld` name.
fn server_binary() -> PathBuf {
    for p in ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("no /usr/sbin/mariadbd or /usr/sbin/mysqld: install Debian mariadb-server (scripts/env.sh does)")
}

/// `mariadb-install-db` into `data`; one retry into a clean directory
/// (seen once in many runs: a bootstrap that failed while other tests
/// started servers at the same moment), then a failure naming both outputs.
fn install_db(data: &Path) {
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let _ = std::fs::remove_dir_all(data);
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=socket")
            .output()
            .expect("run mariadb-install-db (Debian mariadb-server)");
        if out.status.success() {
            return;
        }
        outputs.push(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    panic!(
        "mariadb-install-db failed twice: {}",
        outputs.join("\n--- retry ---\n")
    );
}

impl MariaDb {
    /// Initialises a data dir, starts the server as root (`--user=root`), waits
    /// (deadline 120 s, a loaded 2-core host) until it answers over its socket,
    /// and creates [`TEST_USER`] with [`TEST_PASSWORD`] (all privileges).
    pub fn start(spec: &MariaDbSpec) -> MariaDb {
        let dir = TempDir::new("mariadb");
        let data = dir.join("data");
        install_db(&data);
        let socket = dir.join("mysqld.sock");
        let port = free_loopback_port();
        let mut command = Command::new(server_binary());
        if let Some(procs) = &spec.cgroup_procs {
            let procs = CString::new(procs.as_os_str().as_bytes()).expect("no NUL in path");
            // SAFETY: join_cgroup only calls async-signal-safe functions
            // (getpid, open, write, close) on a buffer on the stack.
            unsafe {
                command.pre_exec(move || crate::process::join_cgroup(&procs));
            }
        }
        let child = command
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg(format!(
                "--innodb-buffer-pool-size={}",
                spec.buffer_pool_bytes
            ))
            .args([
                "--innodb-log-file-size=8M",
                "--skip-log-bin",
                "--max-connections=200",
            ])
            .args(&spec.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let mut db = MariaDb {
            child: Some(ChildGuard(child)),
            socket,
            port,
            dir,
        };
        db.wait_ready(Duration::from_secs(120));
        db.sql(&format!(
            "CREATE USER '{TEST_USER}'@'localhost' IDENTIFIED BY '{TEST_PASSWORD}';\
             CREATE USER '{TEST_USER}'@'127.0.0.1' IDENTIFIED BY '{TEST_PASSWORD}';\
             GRANT ALL ON *.* TO '{TEST_USER}'@'localhost';\
             GRANT ALL ON *.* TO '{TEST_USER}'@'127.0.0.1';"
        ))
        .unwrap_or_else(|e| panic!("create the test user: {e}"));
        db
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.sql("SELECT 1").is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.0.try_wait() {
                    panic!("mariadbd exited at start ({status}): {}", self.error_log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not answer within {timeout:?}: {}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The server's pid (the `mariadbd` process itself).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.pid()).unwrap_or(0)
    }

    /// Its unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its loopback TCP port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL as root over the socket with the `mariadb` client (batch mode,
    /// no column names) and returns what it printed, tab-separated rows.
    pub fn sql(&self, statements: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N", "-B"])
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-e", statements])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run mariadb client: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mariadb -e {statements:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Two-column rows (`SHOW ...`) as name -> value.
    pub fn pairs(&self, query: &str) -> BTreeMap<String, String> {
        let text = self.sql(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `SHOW GLOBAL STATUS` read by the `mariadb` client.
    pub fn global_status(&self) -> BTreeMap<String, String> {
        self.pairs("SHOW GLOBAL STATUS")
    }

    /// One numeric `SHOW GLOBAL STATUS` value.
    pub fn status_u64(&self, name: &str) -> u64 {
        let v = self.pairs(&format!("SHOW GLOBAL STATUS LIKE '{name}'"));
        v.get(name)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status {name}: {v:?}"))
    }

    /// One numeric `SHOW GLOBAL VARIABLES` value.
    pub fn variable_u64(&self, name: &str) -> u64 {
        let v = self.pairs(&format!("SHOW GLOBAL VARIABLES LIKE '{name}'"));
        v.get(name)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("variable {name}: {v:?}"))
    }

    /// Kills the server now (SIGKILL): "the server went away mid-run".
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM for a clean shutdown; SIGKILL if it takes longer than 20 s.
            unsafe { libc::kill(child.pid(), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            child.kill();
        }
        // `dir` (data, socket, log) is removed when it drops after this.
    }
}
