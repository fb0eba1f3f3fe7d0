//! The agent's HTTP/1.1 server (std::net, one thread per connection, no
//! async runtime): `/metrics` (the last published exposition; never waits on
//! the agent loop) and the dashboard (each request reads the history through
//! its own read-only store connection, so it never waits on the writer).
//!
//! - Every connection has read/write timeouts and a request-size cap.
//! - Up to [`MAX_CONNECTIONS`] are served at once; only beyond that a 503.
//!   A browser opens about 6 connections per host (some speculatively, left
//!   idle until the read timeout) and a page loads ~10 files: 64 leaves the
//!   dashboard and a few scrapers far from the limit.
//! - With a bearer token (required off loopback), `/metrics` and the API
//!   take `Authorization: Bearer TOKEN`; a browser posts the token once to
//!   `/login` and gets an HttpOnly, SameSite=Strict session cookie (a
//!   random value of this process, never the token).
//! - Read-only: GET and HEAD only, and the one POST of `/login`.

use crate::{Query, Response, CONTENT_SECURITY_POLICY};
use memlens_store::Store;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest request head read (request line + headers).
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// The largest body read (the login form).
const MAX_BODY_BYTES: usize = 1 << 10;
/// Connections served at the same time; more get 503.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The session cookie's name.
const COOKIE: &str = "memlens_session";

/// The exposition `/metrics` hands out, replaced after each cycle.
#[derive(Debug, Clone, Default)]
pub struct Published(Arc<Mutex<Arc<String>>>);

impl Published {
    /// Replaces the exposition.
    pub fn publish(&self, text: String) {
        let text = Arc::new(text);
        match self.0.lock() {
            Ok(mut current) => *current = text,
            Err(poisoned) => *poisoned.into_inner() = text,
        }
    }

    /// The current exposition.
    pub fn current(&self) -> Arc<String> {
        match self.0.lock() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// What the server serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// The bearer token; required when `addr` is not loopback.
    pub token: Option<String>,
    /// `/metrics`, when the agent exports.
    pub metrics: Option<Published>,
    /// The history's directory: the dashboard, when given.
    pub data_dir: Option<PathBuf>,
}

struct Shared {
    config: ServerConfig,
    session: Option<String>,
}

/// Binds and serves from a background thread; returns the bound address.
/// A non-loopback address without a token is refused.
pub fn start(config: ServerConfig) -> std::io::Result<SocketAddr> {
    if !config.addr.ip().is_loopback() && config.token.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a loopback address and no bearer token is set",
                config.addr
            ),
        ));
    }
    let listener = TcpListener::bind(config.addr)?;
    let bound = listener.local_addr()?;
    let session = match &config.token {
        Some(_) => Some(random_hex(32)?),
        None => None,
    };
    let shared = Arc::new(Shared { config, session });
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("memlens-http".to_string())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
                    let _ = write(&mut stream, &Response::text(503, "busy\n"), false);
                    continue;
                }
                let release = Arc::clone(&busy);
                let (shared, busy) = (Arc::clone(&shared), Arc::clone(&busy));
                let spawned = std::thread::Builder::new()
                    .name("memlens-http-conn".to_string())
                    .spawn(move || {
                        serve(&mut stream, &shared);
                        busy.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // The closure that would have freed the slot was dropped.
                    release.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(bound)
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// One parsed request head.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn bearer(&self) -> Option<&str> {
        self.header("authorization")?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }
}

fn parse(head: &str) -> Request<'_> {
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    Request {
        method,
        path,
        query,
        headers,
    }
}

/// Answers one request on `stream`, then closes it.
fn serve(stream: &mut TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (head, rest) = match read_head(stream) {
        Ok(read) => read,
        Err(status) => {
            let _ = write(stream, &Response::text(status, "bad request\n"), false);
            return;
        }
    };
    let request = parse(&head);
    let head_only = request.method == "HEAD";
    let response = answer(stream, &request, rest, shared);
    let _ = write(stream, &response, head_only);
}

fn answer(
    stream: &mut TcpStream,
    request: &Request<'_>,
    rest: Vec<u8>,
    shared: &Shared,
) -> Response {
    let config = &shared.config;
    let dashboard = config.data_dir.is_some() && crate::is_dashboard_path(request.path);
    if request.path == "/login" && config.token.is_some() && config.data_dir.is_some() {
        return login(stream, request, rest, shared);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET\n");
    }
    let authorized = match (&config.token, &shared.session) {
        (Some(token), Some(session)) => {
            request
                .bearer()
                .is_some_and(|t| same(t.as_bytes(), token.as_bytes()))
                || (dashboard
                    && request
                        .cookie(COOKIE)
                        .is_some_and(|c| same(c.as_bytes(), session.as_bytes())))
        }
        _ => true,
    };
    if !authorized {
        if dashboard && !request.path.starts_with("/api/") {
            return redirect("/login");
        }
        let mut r = Response::text(401, "unauthorized\n");
        r.headers.push(("WWW-Authenticate", "Bearer".to_string()));
        return r;
    }
    match (&config.metrics, request.path) {
        (Some(published), "/metrics") => {
            let text = published.current();
            return Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: text.as_bytes().to_vec(),
                headers: Vec::new(),
            };
        }
        (Some(_), "/") if config.data_dir.is_none() => {
            return Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: b"<!doctype html><title>memlens watch</title><h1>memlens watch</h1>\
                    <p><a href=\"/metrics\">/metrics</a></p>\n"
                    .to_vec(),
                headers: Vec::new(),
            };
        }
        _ => {}
    }
    let Some(dir) = config.data_dir.as_ref().filter(|_| dashboard) else {
        return Response::text(404, "not found\n");
    };
    let store = if request.path.starts_with("/api/") {
        match Store::open_read_only(dir) {
            Ok(store) => Some(store),
            Err(memlens_store::StoreError::NoHistory { .. }) => None,
            Err(err) => return Response::error(500, format!("opening the history: {err}")),
        }
    } else {
        None
    };
    crate::handle(store.as_ref(), request.path, &Query::parse(request.query))
}

fn redirect(to: &str) -> Response {
    let mut r = Response::text(303, "see other\n");
    r.headers.push(("Location", to.to_string()));
    r
}

/// `GET /login`: the form; `POST /login` (`token=...`): the cookie.
fn login(
    stream: &mut TcpStream,
    request: &Request<'_>,
    mut body: Vec<u8>,
    shared: &Shared,
) -> Response {
    let page = |status: u16| Response {
        status,
        content_type: "text/html; charset=utf-8",
        body: crate::assets::LOGIN_PAGE.to_vec(),
        headers: Vec::new(),
    };
    match request.method {
        "GET" | "HEAD" => return page(200),
        "POST" => {}
        _ => return Response::text(405, "GET or POST\n"),
    }
    let length = request
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Response::text(413, "too large\n");
    }
    let mut buf = [0u8; 512];
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    body.truncate(length);
    let form = Query::parse(&String::from_utf8_lossy(&body));
    let (Some(token), Some(session)) = (&shared.config.token, &shared.session) else {
        return redirect("/");
    };
    if !form
        .get("token")
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()))
    {
        return page(401);
    }
    let mut r = redirect("/");
    r.headers.push((
        "Set-Cookie",
        format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"),
    ));
    r
}

/// Reads up to the blank line ending the request head; returns it and any
/// bytes read past it, or the status to answer when the request is too big
/// or malformed.
fn read_head(stream: &mut TcpStream) -> Result<(String, Vec<u8>), u16> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).map_err(|_| 408u16)?;
        if n == 0 {
            return Err(400);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = head.split_off(end + 4);
            head.truncate(end);
            return String::from_utf8(head).map(|h| (h, rest)).map_err(|_| 400);
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Err(431);
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    }
}

fn write(stream: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Content-Type-Options: nosniff\r\n\
         X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&r.body)?;
    }
    stream.flush()
}
