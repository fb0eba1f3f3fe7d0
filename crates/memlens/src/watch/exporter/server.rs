//! A small HTTP/1.1 server for `/metrics`, on its own threads (std::net, no
//! async runtime). It serves the last published exposition and never waits on
//! the agent loop: publishing swaps an `Arc<String>` under a mutex held for
//! a pointer copy. Every connection has read/write timeouts and a request-size
//! cap; a few are served at once, more get 503.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest request head read (request line + headers).
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// Connections served at the same time.
const MAX_CONNECTIONS: usize = 4;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The exposition the server hands out, replaced after each cycle.
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

/// Binds `addr` and serves `published` from a background thread, requiring
/// `Authorization: Bearer <token>` when a token is given. Returns the bound
/// address (the port is known when 0 was asked).
pub fn start(
    addr: SocketAddr,
    token: Option<String>,
    published: Published,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let token = Arc::new(token);
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("memlens-metrics".to_string())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
                    let _ = respond(&mut stream, 503, "text/plain", b"busy\n", false);
                    continue;
                }
                let release = Arc::clone(&busy);
                let (token, published, busy) =
                    (Arc::clone(&token), published.clone(), Arc::clone(&busy));
                let spawned = std::thread::Builder::new()
                    .name("memlens-metrics-conn".to_string())
                    .spawn(move || {
                        serve(&mut stream, token.as_deref(), &published);
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

/// Answers one request on `stream`, then closes it.
fn serve(stream: &mut TcpStream, token: Option<&str>, published: &Published) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let head = match read_head(stream) {
        Ok(head) => head,
        Err(status) => {
            let _ = respond(stream, status, "text/plain", b"bad request\n", false);
            return;
        }
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let _ = respond(stream, 405, "text/plain", b"only GET\n", false);
        return;
    }
    if let Some(token) = token {
        let authorized = lines.any(|line| {
            let Some((name, value)) = line.split_once(':') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("authorization")
                && value
                    .trim()
                    .strip_prefix("Bearer ")
                    .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
        });
        if !authorized {
            let _ = respond(stream, 401, "text/plain", b"unauthorized\n", head_only);
            return;
        }
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let text = published.current();
            let _ = respond(
                stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                text.as_bytes(),
                head_only,
            );
        }
        "/" => {
            let page = b"<html><head><title>memlens watch</title></head><body>\
                <h1>memlens watch</h1><p><a href=\"/metrics\">/metrics</a></p></body></html>\n";
            let _ = respond(stream, 200, "text/html; charset=utf-8", page, head_only);
        }
        _ => {
            let _ = respond(stream, 404, "text/plain", b"not found\n", head_only);
        }
    }
}

/// Reads up to the blank line ending the request head; the status to answer
/// with when the request is too big or malformed.
fn read_head(stream: &mut TcpStream) -> Result<String, u16> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).map_err(|_| 408u16)?;
        if n == 0 {
            return Err(400);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return String::from_utf8(head).map_err(|_| 400);
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

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 401 {
        head.push_str("WWW-Authenticate: Bearer\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
