//! The MySQL/MariaDB collector: finds `mysqld`/`mariadbd` among the
//! snapshot's processes, keeps one connection per server, and reads its
//! global status and variables and the resident bytes of its buffer pool
//! mapping into [`MysqlSample`]s. A server it cannot read still gets a sample,
//! with the error in it, and the failure is handed back for the agent's
//! error counters; the agent goes on.

use crate::duration;
use memlens_linux::fs::Root;
use memlens_model::{MysqlSample, ProcessIdentity, ProcessSample, Snapshot};
use memlens_mysql::config::{parse_client_options, ClientOptions};
use memlens_mysql::{ConnectOptions, Connection, Endpoint, ServerSample};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the servers (`[mysql]` of the watch config). Unset fields
/// come from the client option file's `[client]` group, then from the server
/// process's own `--socket`/`--port` flags, then `/run/mysqld/mysqld.sock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlConfig {
    /// The user (a dedicated one with a password: socket-authenticated root
    /// logins are not supported).
    pub user: Option<String>,
    /// Its password (keep the config file readable by root only;
    /// `--print-config` shows it as `<secret>`).
    #[serde(serialize_with = "crate::secret::serialize")]
    pub password: Option<String>,
    /// A unix socket to connect to.
    pub socket: Option<PathBuf>,
    /// A host to connect to over TCP (loopback for a local server).
    pub host: Option<String>,
    /// Its port (3306 when unset).
    pub port: Option<u16>,
    /// The client option file (`~/.my.cnf` of the agent's user when unset).
    pub option_file: Option<PathBuf>,
    /// How long to wait for a connection and the login.
    #[serde(with = "duration::config_value")]
    pub connect_timeout: Duration,
    /// How long one query may take before the read counts as failed.
    #[serde(with = "duration::config_value")]
    pub read_timeout: Duration,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            user: None,
            password: None,
            socket: None,
            host: None,
            port: None,
            option_file: None,
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(2),
        }
    }
}

/// A server that could not be read this cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct MysqlFailure {
    /// The server process.
    pub pid: i32,
    /// `connect` (connection or login) or `query`.
    pub stage: &'static str,
    /// What went wrong, naming the endpoint.
    pub message: String,
}

/// Keeps the connections and error counts across cycles.
pub struct MysqlCollector {
    config: MysqlConfig,
    client: ClientOptions,
    connections: HashMap<ProcessIdentity, Connection>,
    errors: HashMap<ProcessIdentity, u64>,
}

/// Whether a process is a MySQL/MariaDB server.
pub fn is_server(p: &ProcessSample) -> bool {
    matches!(p.comm.as_str(), "mysqld" | "mariadbd")
}

/// `--name=value` or `--name value` of a command line.
fn flag(cmdline: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let alt = format!("--{}", name.replace('-', "_"));
    cmdline.iter().enumerate().find_map(|(i, arg)| {
        [&long, &alt].iter().find_map(|f| {
            if let Some(v) = arg
                .strip_prefix(f.as_str())
                .and_then(|r| r.strip_prefix('='))
            {
                Some(v.to_string())
            } else if arg == *f {
                cmdline.get(i + 1).cloned()
            } else {
                None
            }
        })
    })
}

impl MysqlCollector {
    /// The collector the one-shot commands' `--mysql [--mysql-option-file
    /// F]` flags ask for (`None` when neither is given); an unreadable or
    /// bad option file is an error naming `--mysql`.
    pub fn from_flags(
        mysql: bool,
        option_file: Option<&PathBuf>,
    ) -> anyhow::Result<Option<MysqlCollector>> {
        if !mysql && option_file.is_none() {
            return Ok(None);
        }
        let config = MysqlConfig {
            option_file: option_file.cloned(),
            ..Default::default()
        };
        MysqlCollector::new(config)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--mysql: {e}"))
    }

    /// A collector with `config`; the option file is read once here (a
    /// missing one is no error, an unreadable or bad one is).
    pub fn new(config: MysqlConfig) -> Result<MysqlCollector, String> {
        let file = config
            .option_file
            .clone()
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".my.cnf")));
        let client = match file {
            Some(path) => match std::fs::read_to_string(&path) {
                Ok(text) => {
                    parse_client_options(&text).map_err(|e| format!("{}: {e}", path.display()))?
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound && config.option_file.is_none() =>
                {
                    ClientOptions::default()
                }
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            },
            None => ClientOptions::default(),
        };
        Ok(MysqlCollector {
            config,
            client,
            connections: HashMap::new(),
            errors: HashMap::new(),
        })
    }

    fn endpoint(&self, root: &Root, p: &ProcessSample) -> Result<Endpoint, String> {
        let tcp = |host: &str, port: u16| -> Result<Endpoint, String> {
            (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
                .next()
                .map(Endpoint::Tcp)
                .ok_or_else(|| format!("{host}:{port} resolves to no address"))
        };
        if let Some(s) = &self.config.socket {
            return Ok(Endpoint::Socket(root.path(s)));
        }
        if let Some(h) = &self.config.host {
            return tcp(h, self.config.port.unwrap_or(3306));
        }
        if let Some(s) = flag(&p.cmdline, "socket") {
            return Ok(Endpoint::Socket(root.path(s)));
        }
        if let Some(s) = &self.client.socket {
            return Ok(Endpoint::Socket(root.path(s)));
        }
        if let Some(h) = self.client.host.as_deref().filter(|h| *h != "localhost") {
            return tcp(h, self.client.port.unwrap_or(3306));
        }
        Ok(Endpoint::Socket(root.path("/run/mysqld/mysqld.sock")))
    }

    /// Reads every server among `snapshot`'s processes into `snapshot.mysql`
    /// and returns the failures of this cycle.
    pub fn collect(&mut self, root: &Root, snapshot: &mut Snapshot) -> Vec<MysqlFailure> {
        self.collect_where(root, snapshot, |_| true)
    }

    /// [`MysqlCollector::collect`] of the servers whose process `keep`
    /// picks (e.g. `diagnose --pid`): the others are not connected to.
    pub fn collect_where(
        &mut self,
        root: &Root,
        snapshot: &mut Snapshot,
        keep: impl Fn(&ProcessSample) -> bool,
    ) -> Vec<MysqlFailure> {
        let servers: Vec<ProcessSample> = snapshot
            .processes
            .iter()
            .filter(|p| is_server(p) && keep(p))
            .cloned()
            .collect();
        let alive: Vec<ProcessIdentity> = servers
            .iter()
            .map(|p| ProcessIdentity {
                pid: p.pid,
                start_time: p.start_time,
            })
            .collect();
        self.connections.retain(|id, _| alive.contains(id));
        self.errors.retain(|id, _| alive.contains(id));
        let mut failures = Vec::new();
        for (p, id) in servers.iter().zip(alive) {
            let (sample, failure) = self.read_one(root, p, id);
            if let Some(f) = failure {
                *self.errors.entry(id).or_default() += 1;
                failures.push(f);
            }
            let errors_total = self.errors.get(&id).copied().unwrap_or(0);
            snapshot.mysql.push(MysqlSample {
                errors_total,
                ..sample
            });
        }
        failures
    }

    fn read_one(
        &mut self,
        root: &Root,
        p: &ProcessSample,
        id: ProcessIdentity,
    ) -> (MysqlSample, Option<MysqlFailure>) {
        let mut sample = MysqlSample {
            process: id,
            ..Default::default()
        };
        let fail = |sample: &mut MysqlSample, stage: &'static str, message: String| {
            sample.error = Some(message.clone());
            Some(MysqlFailure {
                pid: p.pid,
                stage,
                message,
            })
        };
        let endpoint = match self.endpoint(root, p) {
            Ok(e) => e,
            Err(e) => return (sample.clone(), fail(&mut sample, "connect", e)),
        };
        sample.endpoint = endpoint.to_string();
        if !self.connections.contains_key(&id) {
            let opts = ConnectOptions {
                endpoint: endpoint.clone(),
                user: self
                    .config
                    .user
                    .clone()
                    .or(self.client.user.clone())
                    .unwrap_or_default(),
                password: self
                    .config
                    .password
                    .clone()
                    .or(self.client.password.clone())
                    .unwrap_or_default(),
                connect_timeout: self.config.connect_timeout,
                read_timeout: self.config.read_timeout,
            };
            match Connection::connect(&opts) {
                Ok(c) => {
                    self.connections.insert(id, c);
                }
                Err(e) => {
                    let msg = format!("mysql server {} at {endpoint}: cannot log in: {e}", p.pid);
                    let f = fail(&mut sample, "connect", msg);
                    return (sample, f);
                }
            }
        }
        let Some(conn) = self.connections.get_mut(&id) else {
            return (sample, None);
        };
        let read = conn
            .query_pairs("SHOW GLOBAL STATUS")
            .and_then(|s| Ok((s, conn.query_pairs("SHOW GLOBAL VARIABLES")?)));
        let (status, variables) = match read {
            Ok(r) => r,
            Err(e) => {
                // A failed connection is not reused: the next cycle reconnects.
                self.connections.remove(&id);
                let msg = format!("mysql server {} at {endpoint}: {e}", p.pid);
                let f = fail(&mut sample, "query", msg);
                return (sample, f);
            }
        };
        let s = ServerSample::from_rows(&status, &variables);
        // performance_schema's memory instruments, where it is on.
        let instrumented = if s.performance_schema {
            match sum_query(
                conn,
                "SELECT SUM(CURRENT_NUMBER_OF_BYTES_USED) FROM performance_schema.memory_summary_global_by_event_name",
            ) {
                Ok(v) => v,
                Err(e) => {
                    self.connections.remove(&id);
                    let msg = format!("mysql server {} at {endpoint}: {e}", p.pid);
                    let f = fail(&mut sample, "query", msg);
                    return (sample, f);
                }
            }
        } else {
            None
        };
        // The threads' own memory (MariaDB): the connections' part of the ledger.
        let threads = if s.version.contains("MariaDB") {
            match sum_query(
                conn,
                "SELECT SUM(MEMORY_USED) FROM information_schema.PROCESSLIST",
            ) {
                Ok(v) => v,
                Err(e) => {
                    self.connections.remove(&id);
                    let msg = format!("mysql server {} at {endpoint}: {e}", p.pid);
                    let f = fail(&mut sample, "query", msg);
                    return (sample, f);
                }
            }
        } else {
            None
        };
        let pool = s
            .pool_size_bytes
            .and_then(|size| pool_resident(root, p.pid, size, s.pool_size_max_bytes));
        let sample = MysqlSample {
            version: Some(s.version.clone()).filter(|v| !v.is_empty()),
            malloc_library: s.malloc_library.clone(),
            pool_size_bytes: s.pool_size_bytes,
            pool_size_max_bytes: s.pool_size_max_bytes,
            page_size_bytes: s.page_size_bytes,
            pool_pages_total: s.pages_total,
            pool_pages_data: s.pages_data,
            pool_pages_free: s.pages_free,
            pool_pages_misc: s.pages_misc,
            pool_read_requests: s.read_requests,
            pool_reads: s.reads,
            memory_used_bytes: s.memory_used_bytes,
            memory_used_initial_bytes: s.memory_used_initial_bytes,
            instrumented_bytes: instrumented,
            threads_memory_bytes: threads,
            threads_connected: s.threads_connected,
            sort_buffer_size_bytes: s.sort_buffer_size_bytes,
            log_buffer_bytes: s.log_buffer_size_bytes.map(|b| 2 * b),
            pool_resident_bytes: pool.map(|(bytes, _)| bytes),
            pool_resident_source: pool.map(|(_, source)| source.to_string()),
            ..sample
        };
        (sample, None)
    }
}

/// The one number of a `SELECT SUM(...)` (`None` for SQL NULL).
fn sum_query(conn: &mut Connection, sql: &str) -> Result<Option<u64>, memlens_mysql::Error> {
    let set = conn.query(sql)?;
    Ok(set
        .rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v.max(0.0) as u64))
}

/// Resident bytes of the buffer pool of server `pid` and where they come
/// from: `range` (its own address range in maps, pages counted in
/// pagemap) or `mapping` (smaps heuristic); `None` when neither is found
/// or readable (a server that exited, no permission).
fn pool_resident(
    root: &Root,
    pid: i32,
    pool_size_bytes: u64,
    pool_size_max_bytes: Option<u64>,
) -> Option<(u64, &'static str)> {
    if let Some(max) = pool_size_max_bytes {
        let maps = root.read(format!("/proc/{pid}/maps")).ok()?;
        if let Some(range) = memlens_mysql::smaps::pool_range(&maps, pool_size_bytes, max) {
            let pagemap = root.path(format!("/proc/{pid}/pagemap"));
            return resident_bytes(&pagemap, range).ok().map(|b| (b, "range"));
        }
    }
    let smaps = root.read(format!("/proc/{pid}/smaps")).ok()?;
    memlens_mysql::smaps::pool_mapping(&smaps, pool_size_bytes).map(|m| (m.rss_bytes, "mapping"))
}

/// Resident bytes of `range` by `/proc/PID/pagemap` (8 bytes a page; read
/// a MiB at a time: a 128 GiB pool is 256 MiB of entries).
fn resident_bytes(
    pagemap: &std::path::Path,
    range: memlens_mysql::smaps::PoolRange,
) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as u64,
        _ => 4096,
    };
    let mut file = std::fs::File::open(pagemap)?;
    file.seek(SeekFrom::Start(range.start / page * 8))?;
    let mut left = range.len_bytes() / page * 8;
    let mut buf = vec![0u8; 1 << 20];
    let mut resident = 0u64;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])?;
        resident += memlens_mysql::smaps::resident_pages(&buf[..n]);
        left -= n as u64;
    }
    Ok(resident * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_of_the_server_command_line() {
        let cmd: Vec<String> = [
            "/usr/sbin/mariadbd",
            "--socket=/tmp/s.sock",
            "--port",
            "3307",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(flag(&cmd, "socket").as_deref(), Some("/tmp/s.sock"));
        assert_eq!(flag(&cmd, "port").as_deref(), Some("3307"));
        assert_eq!(flag(&cmd, "datadir"), None);
    }
}
