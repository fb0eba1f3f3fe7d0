//! A minimal HTTP/1.0 GET for loopback test servers (no client crate needed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GETs `path` from `addr` (`127.0.0.1:PORT`) and returns the body of a 200
/// answer as text (invalid UTF-8 replaced); any other answer or a connection
/// failure is an `Err` saying what happened.
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    http_get_bytes(addr, path).map(|body| String::from_utf8_lossy(&body).into_owned())
}

/// [`http_get`] returning the body byte-for-byte (gzipped profiles).
pub fn http_get_bytes(addr: &str, path: &str) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    // Generous: a Go runtime formats a big goroutine dump (200k goroutines)
    // whole before the first byte goes out, longer still on a loaded host.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("GET {addr}{path}: not an HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("GET {addr}{path}: {status}"));
    }
    Ok(response[split + 4..].to_vec())
}

/// A loopback port nobody listens on right now (bound and released at once).
pub fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
