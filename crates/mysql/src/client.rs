//! A minimal synchronous MySQL/MariaDB client: handshake v10 with
//! `mysql_native_password` (and its auth switch), `COM_QUERY` with text
//! resultsets. Unix socket or TCP, with connect/read/write timeouts. Enough to
//! read `SHOW GLOBAL STATUS`/`VARIABLES` and information_schema; no TLS, no
//! prepared statements.

use crate::sha1::native_password_scramble;
use crate::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x80000;
const NATIVE: &str = "mysql_native_password";

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Socket(PathBuf),
    /// A TCP address (loopback for a local server).
    Tcp(SocketAddr),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where.
    pub endpoint: Endpoint,
    /// The user.
    pub user: String,
    /// Its password (empty for none).
    pub password: String,
    /// Connect timeout (TCP connect and the handshake's reads).
    pub connect_timeout: Duration,
    /// Timeout for each read or write of a query.
    pub read_timeout: Duration,
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A text resultset: column names and rows (`None` for SQL NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultSet {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows, one value per column.
    pub rows: Vec<Vec<Option<String>>>,
}

/// One open connection.
pub struct Connection {
    stream: Stream,
    seq: u8,
    opts: ConnectOptions,
    /// The server's version string from its handshake (`10.11.19-MariaDB-0+deb12u1`).
    pub server_version: String,
    /// The server's id for this connection.
    pub connection_id: u32,
}

impl Connection {
    /// Connects and logs in.
    pub fn connect(opts: &ConnectOptions) -> Result<Connection, Error> {
        let ep = opts.endpoint.to_string();
        let io_err = |what: &str, e: std::io::Error| Error::io(&ep, what, e);
        let stream = match &opts.endpoint {
            Endpoint::Socket(p) => {
                Stream::Unix(UnixStream::connect(p).map_err(|e| io_err("connect", e))?)
            }
            Endpoint::Tcp(a) => Stream::Tcp(
                TcpStream::connect_timeout(a, opts.connect_timeout)
                    .map_err(|e| io_err("connect", e))?,
            ),
        };
        stream
            .set_timeouts(opts.connect_timeout)
            .map_err(|e| io_err("set timeouts", e))?;
        let mut conn = Connection {
            stream,
            seq: 0,
            opts: opts.clone(),
            server_version: String::new(),
            connection_id: 0,
        };
        conn.handshake()?;
        conn.stream
            .set_timeouts(opts.read_timeout)
            .map_err(|e| io_err("set timeouts", e))?;
        Ok(conn)
    }

    fn endpoint(&self) -> String {
        self.opts.endpoint.to_string()
    }

    fn read_packet(&mut self) -> Result<Vec<u8>, Error> {
        let ep = self.endpoint();
        let mut payload = Vec::new();
        loop {
            let mut head = [0u8; 4];
            self.stream
                .io()
                .read_exact(&mut head)
                .map_err(|e| Error::io(&ep, "read", e))?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
            self.seq = head[3].wrapping_add(1);
            let start = payload.len();
            payload.resize(start + len, 0);
            self.stream
                .io()
                .read_exact(&mut payload[start..])
                .map_err(|e| Error::io(&ep, "read", e))?;
            if len < 0xff_ffff {
                return Ok(payload);
            }
        }
    }

    fn write_packet(&mut self, payload: &[u8]) -> Result<(), Error> {
        let ep = self.endpoint();
        let mut buf = Vec::with_capacity(payload.len() + 4);
        for chunk in payload.chunks(0xff_ffff).chain(
            // a payload of exactly n * 0xffffff bytes ends with an empty packet
            payload.len().is_multiple_of(0xff_ffff).then_some(&[][..]),
        ) {
            buf.extend_from_slice(&(chunk.len() as u32).to_le_bytes()[..3]);
            buf.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            buf.extend_from_slice(chunk);
        }
        self.stream
            .io()
            .write_all(&buf)
            .map_err(|e| Error::io(&ep, "write", e))
    }

    fn handshake(&mut self) -> Result<(), Error> {
        let p = self.read_packet()?;
        if p.first() == Some(&0xff) {
            return Err(server_error(&p));
        }
        let hs = crate::packet::Handshake::parse(&p)?;
        self.server_version = hs.server_version.clone();
        self.connection_id = hs.connection_id;
        let auth = native_password_scramble(&self.opts.password, &hs.scramble);
        let caps = (CLIENT_LONG_PASSWORD
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH)
            & (hs.capabilities | CLIENT_PLUGIN_AUTH);
        let mut r = Vec::new();
        r.extend_from_slice(&caps.to_le_bytes());
        r.extend_from_slice(&(16u32 << 20).to_le_bytes());
        r.push(33); // utf8_general_ci
        r.extend_from_slice(&[0u8; 23]);
        r.extend_from_slice(self.opts.user.as_bytes());
        r.push(0);
        r.push(auth.len() as u8);
        r.extend_from_slice(&auth);
        r.extend_from_slice(NATIVE.as_bytes());
        r.push(0);
        self.write_packet(&r)?;
        loop {
            let p = self.read_packet()?;
            match p.first() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(server_error(&p)),
                Some(0xfe) => {
                    // Auth switch: plugin name NUL, then its data.
                    let end = p[1..]
                        .iter()
                        .position(|&b| b == 0)
                        .map(|i| i + 1)
                        .unwrap_or(p.len());
                    let plugin = String::from_utf8_lossy(&p[1..end]).into_owned();
                    if plugin != NATIVE {
                        return Err(Error::Protocol(format!(
                            "{}: server asks for auth plugin {plugin:?}; only {NATIVE} is supported (create the user IDENTIFIED BY a password)",
                            self.endpoint()
                        )));
                    }
                    let data = p.get(end + 1..).unwrap_or_default();
                    let scramble = &data[..data.len().min(20)];
                    let auth = native_password_scramble(&self.opts.password, scramble);
                    self.write_packet(&auth)?;
                }
                _ => {
                    return Err(Error::Protocol(format!(
                        "{}: unexpected packet {:#04x} during login",
                        self.endpoint(),
                        p.first().copied().unwrap_or(0)
                    )))
                }
            }
        }
    }

    /// Runs one statement and reads its text resultset (empty for a statement
    /// without one).
    pub fn query(&mut self, sql: &str) -> Result<ResultSet, Error> {
        self.seq = 0;
        let mut cmd = vec![0x03];
        cmd.extend_from_slice(sql.as_bytes());
        self.write_packet(&cmd)?;
        let first = self.read_packet()?;
        match first.first() {
            Some(0x00) => return Ok(ResultSet::default()),
            Some(0xff) => return Err(server_error(&first)),
            _ => {}
        }
        let count = crate::packet::Reader::new(&first).lenenc_int()? as usize;
        let mut set = ResultSet::default();
        for _ in 0..count {
            let def = self.read_packet()?;
            set.columns.push(crate::packet::column_name(&def)?);
        }
        let eof = self.read_packet()?;
        if !is_eof(&eof) {
            return Err(Error::Protocol(format!(
                "{}: no EOF after column definitions",
                self.endpoint()
            )));
        }
        loop {
            let p = self.read_packet()?;
            if is_eof(&p) {
                return Ok(set);
            }
            if p.first() == Some(&0xff) {
                return Err(server_error(&p));
            }
            set.rows.push(crate::packet::text_row(&p, count)?);
        }
    }

    /// Two-column rows (`SHOW GLOBAL STATUS`, `SHOW GLOBAL VARIABLES`) as pairs.
    pub fn query_pairs(&mut self, sql: &str) -> Result<Vec<(String, String)>, Error> {
        let set = self.query(sql)?;
        Ok(set
            .rows
            .into_iter()
            .filter_map(|mut r| {
                if r.len() < 2 {
                    return None;
                }
                let v = r.swap_remove(1).unwrap_or_default();
                Some((r.swap_remove(0)?, v))
            })
            .collect())
    }
}

fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xfe) && p.len() < 9
}

fn server_error(p: &[u8]) -> Error {
    crate::packet::parse_err(p)
}
