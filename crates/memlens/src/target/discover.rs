//! Finding a process's debug endpoints: its listening TCP sockets (the inodes
//! of `/proc/PID/net/tcp{,6}` matched against the `socket:[inode]` links of
//! `/proc/PID/fd`), each probed for pprof, expvar and Prometheus metrics.

use super::http::{self, FetchLimits};
use super::TargetError;
use memlens_linux::fs::Root;
use memlens_linux::net_tcp::{parse_tcp_table, socket_link_inode};
use std::collections::HashSet;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// One HTTP port of a process and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `/debug/pprof/` answers with the pprof index.
    pub pprof: bool,
    /// `/debug/vars` answers with expvar JSON.
    pub expvar: bool,
    /// `/metrics` answers with Prometheus text.
    pub metrics: bool,
}

/// The most ports probed for one process.
const MAX_PORTS: usize = 16;

/// Finds and probes the HTTP endpoints of process `pid`. Ports that answer
/// nothing HTTP are left out; an empty list means none was found.
pub fn discover(root: &Root, pid: i32, limits: &FetchLimits) -> Result<Vec<Endpoint>, TargetError> {
    let listening = listening_addresses(root, pid)?;
    let probe_limits = FetchLimits {
        connect_timeout: limits.connect_timeout.min(Duration::from_millis(500)),
        total_timeout: limits.total_timeout.min(Duration::from_secs(3)),
        max_body_bytes: 64 << 10,
    };
    let mut endpoints = Vec::new();
    for addr in listening.into_iter().take(MAX_PORTS) {
        let base_url = format!("http://{addr}");
        let endpoint = Endpoint {
            pprof: probe(&base_url, "/debug/pprof/", &probe_limits, |body| {
                body.contains("/debug/pprof") || body.contains("Types of profiles")
            }),
            expvar: probe(&base_url, "/debug/vars", &probe_limits, |body| {
                body.trim_start().starts_with('{') && body.contains("\"memstats\"")
            }),
            metrics: probe(&base_url, "/metrics", &probe_limits, |body| {
                body.contains("# TYPE") || body.contains("# HELP")
            }),
            base_url,
        };
        if endpoint.pprof || endpoint.expvar || endpoint.metrics {
            endpoints.push(endpoint);
        }
    }
    Ok(endpoints)
}

/// Whether `GET base+path` answers 200 with a body whose first 64 KiB pass `looks_right`.
fn probe(base: &str, path: &str, limits: &FetchLimits, looks_right: impl Fn(&str) -> bool) -> bool {
    let Ok(body) = http::open(&format!("{base}{path}"), limits) else {
        return false;
    };
    let mut head = Vec::new();
    // A body over the cap only means the endpoint is big; judge its start.
    let _ = body.take(limits.max_body_bytes).read_to_end(&mut head);
    looks_right(&String::from_utf8_lossy(&head))
}

/// The addresses the process listens on, as this host can reach them
/// (0.0.0.0 and :: become loopback), lowest port first.
fn listening_addresses(root: &Root, pid: i32) -> Result<Vec<SocketAddr>, TargetError> {
    let fd_dir = root.path(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&fd_dir).map_err(|e| TargetError::NoEndpoint {
        pid,
        reason: format!("cannot list {}: {e}", fd_dir.display()),
    })?;
    let socket_inodes: HashSet<u64> = entries
        .flatten()
        .filter_map(|entry| socket_link_inode(std::fs::read_link(entry.path()).ok()?.to_str()?))
        .collect();
    let mut addresses = Vec::new();
    for table in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{table}");
        let Ok(text) = root.read(&path) else {
            continue;
        };
        let sockets = parse_tcp_table(&path, &text).map_err(|e| TargetError::NoEndpoint {
            pid,
            reason: e.to_string(),
        })?;
        for socket in sockets {
            if socket.is_listening() && socket_inodes.contains(&socket.inode) {
                addresses.push(reachable(socket.local));
            }
        }
    }
    addresses.sort_by_key(|a| (a.port(), a.is_ipv6()));
    addresses.dedup();
    Ok(addresses)
}

/// A wildcard listen address becomes the loopback address of its family.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        // A dual-stack [::] listener answers on 127.0.0.1 too.
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        other => other,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback() {
        let any4: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        assert_eq!(reachable(any4), "127.0.0.1:9090".parse().unwrap());
        let any6: SocketAddr = "[::]:9090".parse().unwrap();
        assert_eq!(reachable(any6), "127.0.0.1:9090".parse().unwrap());
        let loop6: SocketAddr = "[::1]:9090".parse().unwrap();
        assert_eq!(reachable(loop6), loop6);
    }

    #[test]
    fn our_own_listener_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listening_addresses(&Root::host(), std::process::id() as i32).unwrap();
        assert!(found.iter().any(|a| a.port() == port), "{found:?}");
    }
}
