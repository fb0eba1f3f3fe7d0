//! A small HTTP/1.0 GET client for a target's debug endpoints, with a connect
//! timeout, a read timeout, an overall deadline and a response size cap.
//!
//! HTTP/1.0 keeps it simple and safe: the server sends the body unchunked and
//! closes the connection, so the body is "everything until EOF". Only `http://`
//! is spoken; debug endpoints listen on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Limits on one request.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// Time to establish the connection.
    pub connect_timeout: Duration,
    /// Time the whole request may take, headers and body.
    pub total_timeout: Duration,
    /// The largest body accepted; a larger one is an error, not a cut.
    pub max_body_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(60),
            max_body_bytes: 1 << 30,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://host:port/path`.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting, sending or reading failed (including timeouts).
    #[error("{url}: {cause}")]
    Io {
        /// The URL.
        url: String,
        /// What happened.
        cause: std::io::Error,
    },
    /// The server answered with another status than 200.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer is not HTTP.
    #[error("{url}: not an HTTP response: {line:?}")]
    NotHttp {
        /// The URL.
        url: String,
        /// The first line received.
        line: String,
    },
    /// The body is larger than the limit.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The whole request took longer than allowed.
    #[error("{url}: no complete answer within {0:?}", .timeout)]
    Deadline {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
}

/// The parts of an `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port` (port 80 when the URL has none).
    pub authority: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<HttpUrl, FetchError> {
        let bad = |reason: &str| FetchError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(bad(
                "https is not supported; debug endpoints are plain http",
            ));
        } else {
            return Err(bad("expected a URL starting with http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected host:port after http://"));
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpUrl {
            authority,
            path: path.to_string(),
        })
    }
}

/// An answer body being read: stops at the size cap and at the deadline.
pub struct Body {
    reader: BufReader<TcpStream>,
    url: String,
    read_bytes: u64,
    limits: FetchLimits,
    deadline: Instant,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                FetchError::Deadline {
                    url: self.url.clone(),
                    timeout: self.limits.total_timeout,
                },
            ));
        }
        let n = self.reader.read(buf)?;
        self.read_bytes += n as u64;
        if self.read_bytes > self.limits.max_body_bytes {
            return Err(std::io::Error::other(FetchError::TooLarge {
                url: self.url.clone(),
                limit: self.limits.max_body_bytes,
            }));
        }
        Ok(n)
    }
}

/// Sends `GET url` and returns the body as a stream, once the status is 200.
pub fn open(url: &str, limits: &FetchLimits) -> Result<Body, FetchError> {
    let parsed = HttpUrl::parse(url)?;
    let io = |source| FetchError::Io {
        url: url.to_string(),
        cause: source,
    };
    let deadline = Instant::now() + limits.total_timeout;
    let addr = parsed
        .authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| FetchError::BadUrl {
            url: url.to_string(),
            reason: "the host has no address".to_string(),
        })?;
    let stream = TcpStream::connect_timeout(&addr, limits.connect_timeout).map_err(io)?;
    // No single read may block past the overall deadline.
    stream
        .set_read_timeout(Some(limits.total_timeout))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(limits.connect_timeout))
        .map_err(io)?;
    // One write: a request in pieces can meet a server that answers after the
    // first piece and closes, and the rest then resets the connection.
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: memlens/{}\r\nAccept-Encoding: identity\r\n\r\n",
        parsed.path,
        parsed.authority,
        env!("CARGO_PKG_VERSION")
    );
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .by_ref()
        .take(8 << 10)
        .read_line(&mut status_line)
        .map_err(io)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| FetchError::NotHttp {
            url: url.to_string(),
            line: status_line.trim_end().chars().take(80).collect(),
        })?;
    // Skip the headers (bounded: at most 64 KiB of them).
    let mut header_bytes = 0usize;
    loop {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take(8 << 10)
            .read_line(&mut line)
            .map_err(io)?;
        header_bytes += n;
        if n == 0 || line == "\r\n" || line == "\n" || header_bytes > 64 << 10 {
            break;
        }
    }
    if status != 200 {
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    Ok(Body {
        reader,
        url: url.to_string(),
        read_bytes: 0,
        limits: *limits,
        deadline,
    })
}

/// `GET url` and the whole body, within the limits.
pub fn get(url: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
    let mut body = open(url, limits)?;
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes)
        .map_err(|e| match e.into_inner() {
            Some(inner) => match inner.downcast::<FetchError>() {
                Ok(fetch) => *fetch,
                Err(other) => FetchError::Io {
                    url: url.to_string(),
                    cause: std::io::Error::other(other),
                },
            },
            None => FetchError::Io {
                url: url.to_string(),
                cause: std::io::Error::other("read failed"),
            },
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:6060/debug/pprof/heap?gc=1").unwrap();
        assert_eq!(u.authority, "127.0.0.1:6060");
        assert_eq!(u.path, "/debug/pprof/heap?gc=1");
        assert_eq!(
            HttpUrl::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert_eq!(HttpUrl::parse("http://[::1]:9090").unwrap().path, "/");
        assert_eq!(
            HttpUrl::parse("http://[::1]").unwrap().authority,
            "[::1]:80"
        );
        let err = HttpUrl::parse("https://x:1/").unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
        assert!(HttpUrl::parse("ftp://x").is_err());
        assert!(HttpUrl::parse("http://user:pw@x/").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
    }

    /// A one-shot loopback server answering `response` to the first request.
    fn serve_once(response: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(&response);
            }
        });
        format!("http://{addr}/x")
    }

    #[test]
    fn body_status_and_size_cap() {
        let url = serve_once(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello".to_vec());
        assert_eq!(get(&url, &FetchLimits::default()).unwrap(), b"hello");

        let url = serve_once(b"HTTP/1.0 404 Not Found\r\n\r\nUnknown profile\n".to_vec());
        assert!(matches!(
            get(&url, &FetchLimits::default()),
            Err(FetchError::Status { status: 404, .. })
        ));

        let mut big = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 10_000));
        let url = serve_once(big);
        let limits = FetchLimits {
            max_body_bytes: 4096,
            ..FetchLimits::default()
        };
        let err = get(&url, &limits).unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: 4096, .. }),
            "{err}"
        );

        let url = serve_once(b"SSH-2.0-OpenSSH\r\n".to_vec());
        assert!(matches!(
            get(&url, &FetchLimits::default()),
            Err(FetchError::NotHttp { .. })
        ));
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let limits = FetchLimits {
            total_timeout: Duration::from_millis(300),
            ..FetchLimits::default()
        };
        // The kernel accepts the connection into the backlog; nobody ever answers.
        let err = get(&url, &limits).unwrap_err();
        assert!(matches!(err, FetchError::Io { .. }), "{err}");
        drop(listener);
    }
}
