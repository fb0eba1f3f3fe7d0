//! The MySQL/MariaDB neighbour of memlens.
//!
//! - [`client`]: a minimal synchronous client (handshake v10,
//!   `mysql_native_password`, `COM_QUERY` text resultsets; unix socket or TCP
//!   with timeouts). Written here rather than pulled in: it needs four packet
//!   kinds and no TLS, and keeps the agent free of a large dependency tree.
//! - [`status`]: pure parsing of `SHOW GLOBAL STATUS` / `SHOW GLOBAL VARIABLES`
//!   rows into a typed [`status::ServerSample`], and the hit ratio from the
//!   deltas of two samples (never lifetime totals).
//! - [`config`]: credentials from a client option file (`~/.my.cnf` `[client]`).

pub mod client;
pub mod config;
pub mod packet;
mod sha1;
pub mod smaps;
pub mod status;

pub use client::{ConnectOptions, Connection, Endpoint, ResultSet};
pub use status::{hit_ratio, ServerSample};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting, reading or writing failed (a timeout shows as `timed out`).
    #[error("{endpoint}: {what}: {source}")]
    Io {
        /// Where.
        endpoint: String,
        /// Which step (`connect`, `read`, `write`).
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server answered with an ERR packet (wrong password: 1045).
    #[error("server error {code} ({state}): {message}")]
    Server {
        /// MySQL error number.
        code: u16,
        /// SQLSTATE.
        state: String,
        /// The server's message.
        message: String,
    },
    /// The server said something this client cannot decode.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Error {
    fn io(endpoint: &str, what: &str, source: std::io::Error) -> Error {
        Error::Io {
            endpoint: endpoint.to_string(),
            what: what.to_string(),
            source,
        }
    }

    /// Whether this was a timeout (a slow query past the read timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }
}
