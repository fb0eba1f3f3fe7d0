//! The one HTTP request memlens sends (remote write, Alertmanager, webhooks):
//! a POST of a body to an `http://` URL over `std::net`, with timeouts,
//! returning the status and the start of the response body (for error
//! messages). One connection per request (`Connection: close`): a request
//! every few seconds needs no pool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How much of a response body is kept for messages.
const BODY_EXCERPT_BYTES: usize = 512;
/// The most bytes of response headers read.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host` or `host:port`, as the `Host` header carries it.
    pub authority: String,
    /// The host (without brackets for IPv6).
    pub host: String,
    /// The port (80 when not given).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// An `https://` URL ([`HttpUrl::parse_with_tls`] only).
    pub tls: bool,
}

impl HttpUrl {
    /// Parses a URL; only `http://` is supported (no TLS).
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        Self::parse_scheme(url, false)
    }

    /// Parses an `http://` or `https://` URL (the client of
    /// [`crate::client`] speaks both).
    pub fn parse_with_tls(url: &str) -> Result<HttpUrl, String> {
        Self::parse_scheme(url, true)
    }

    fn parse_scheme(url: &str, https_ok: bool) -> Result<HttpUrl, String> {
        let (rest, tls) = match url.strip_prefix("http://") {
            Some(rest) => (rest, false),
            None if https_ok && url.starts_with("https://") => (&url["https://".len()..], true),
            None if url.starts_with("https://") => {
                return Err(format!(
                    "{url:?}: https is not supported; use an http:// URL (a local \
                     receiver or a TLS-terminating proxy)"
                ))
            }
            None if https_ok => {
                return Err(format!("{url:?}: expected an http:// or https:// URL"))
            }
            None => return Err(format!("{url:?}: expected an http:// URL")),
        };
        let default_port = if tls { "443" } else { "80" };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "{url:?}: expected http://HOST[:PORT]/PATH (no user info)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(port) => (host, port),
                None if after.is_empty() => (host, default_port),
                None => return Err(format!("{url:?}: junk after the IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port),
                None => (authority, default_port),
            }
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{url:?}: the port {port:?} is not a number 0-65535"))?;
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        Ok(HttpUrl {
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
            tls,
        })
    }
}

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The start of the body, lossily decoded.
    pub body_excerpt: String,
}

/// POSTs `body` with `headers` (name, value); `connect_timeout` per address
/// tried, `io_timeout` per read and write.
pub fn post(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: &[u8],
    connect_timeout: Duration,
    io_timeout: Duration,
) -> std::io::Result<Response> {
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
    let mut last_err = std::io::Error::other(format!("{} resolves to no address", url.host));
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(err) => last_err = err,
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    let _ = stream.set_nodelay(true);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: memlens/{}\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path,
        url.authority,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(&mut stream)
}

/// Reads a response's status line and headers, up to their blank line:
/// its status, the head's text and the bytes already read past it (the
/// body's first bytes). Shared by [`post`] and the keep-alive client.
pub(crate) fn read_head(stream: &mut impl Read) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(std::io::Error::other("response headers over 64 KiB"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before a complete response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "not an HTTP response: {:?}",
                head.lines().next().unwrap_or("")
            ))
        })?;
    Ok((status, head, buf[header_end..].to_vec()))
}

/// Reads the status line and headers, then up to [`BODY_EXCERPT_BYTES`] of
/// the body.
fn read_response(stream: &mut impl Read) -> std::io::Result<Response> {
    let (status, _, mut body) = read_head(stream)?;
    let mut chunk = [0u8; 4096];
    // A body is read only for messages; a slow or endless one is cut short.
    while body.len() < BODY_EXCERPT_BYTES {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(BODY_EXCERPT_BYTES);
    Ok(Response {
        status,
        body_excerpt: String::from_utf8_lossy(&body).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:9090/api/v1/write").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9090));
        assert_eq!(u.path, "/api/v1/write");
        assert_eq!(u.authority, "127.0.0.1:9090");
        let u = HttpUrl::parse("http://[::1]/w?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 80, "/w?x=1")
        );
        assert!(HttpUrl::parse("https://x/y").unwrap_err().contains("https"));
        assert!(HttpUrl::parse("x:1/y").is_err());
        assert!(HttpUrl::parse("http://x:99999/").is_err());
        assert!(HttpUrl::parse("http://u:p@x/").is_err());
        let u = HttpUrl::parse_with_tls("https://vm.example/insert/0/prometheus").unwrap();
        assert_eq!((u.port, u.tls), (443, true));
        assert!(!HttpUrl::parse_with_tls("http://x/").unwrap().tls);
        assert!(HttpUrl::parse_with_tls("ftp://x/").is_err());
    }

    #[test]
    fn responses() {
        let mut text: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad";
        let r = read_response(&mut text).unwrap();
        assert_eq!((r.status, r.body_excerpt.as_str()), (400, "bad"));
        let mut text: &[u8] = b"HTTP/1.1 204 No Content\r\n";
        assert!(read_response(&mut text).is_err());
        let mut text: &[u8] = b"garbage\r\n\r\n";
        assert!(read_response(&mut text).is_err());
    }
}
