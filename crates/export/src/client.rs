//! A keep-alive HTTP/1.1 client for one receiver: `http://` or `https://`
//! (rustls, trusting only the CA file given, optionally presenting a client
//! certificate), the same connection reused while the server keeps it open.
//!
//! Each response is read to its end (`Content-Length` or chunked) so the
//! connection can carry the next request; a response without a length, or
//! with `Connection: close`, ends the connection. A request on a reused
//! connection that fails before any answer arrived (the server closed an
//! idle connection) is sent once more on a fresh one.

use crate::http::HttpUrl;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How much of a response body is kept for messages.
const BODY_EXCERPT_BYTES: usize = 512;
/// The most bytes of a response body read to keep the connection; a longer
/// body ends the connection instead.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The TLS files of an `https://` receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of the CAs trusted to sign the receiver's
    /// certificate (required for https: no system roots are read).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain) to present, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry, when it is not the
    /// URL's host.
    pub server_name: Option<String>,
}

/// What the receiver answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The start of the body, lossily decoded.
    pub body_excerpt: String,
    /// `Retry-After`, when the receiver sent one (seconds or an HTTP date).
    pub retry_after: Option<Duration>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A client of one URL.
pub struct Client {
    url: HttpUrl,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Option<Conn>,
    /// Connections opened so far (1 for a whole run against a server that
    /// keeps connections open).
    pub connections_opened: u64,
}

/// Reads every certificate of a PEM file; the error names the file.
fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path)
        .map_err(|err| format!("cannot read {what} {}: {err}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{what} {}: not PEM certificates: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Builds the rustls config of `files`; errors name the file and what is wrong.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let ca_file = files.ca_file.as_deref().ok_or(
        "https needs tls_ca_file (the PEM of the CA that signed the receiver's certificate)",
    )?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca_file, "tls_ca_file")? {
        roots.add(cert).map_err(|err| {
            format!(
                "tls_ca_file {}: not a usable CA certificate: {err}",
                ca_file.display()
            )
        })?;
    }
    // ring rather than aws-lc-rs: it builds without cmake. Its provider is
    // marked deprecated only for lacking post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_root_certificates(roots);
    let config = match (&files.cert_file, &files.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "tls_cert_file")?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| {
                format!("tls_key_file {}: no PEM private key: {err}", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|err| {
                    format!(
                        "tls_cert_file {} / tls_key_file {}: {err}",
                        cert.display(),
                        key.display()
                    )
                })?
        }
        _ => return Err("tls_cert_file and tls_key_file go together".to_string()),
    };
    Ok(Arc::new(config))
}

impl Client {
    /// A client of `url`; `tls` is required for an https URL (and ignored
    /// for http).
    pub fn new(
        url: HttpUrl,
        tls: Option<Arc<rustls::ClientConfig>>,
        server_name: Option<&str>,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Client, String> {
        let tls = if url.tls {
            let config = tls.ok_or("https needs a TLS config")?;
            let name = server_name.unwrap_or(&url.host).to_string();
            let name = ServerName::try_from(name.clone())
                .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
            Some((config, name))
        } else {
            None
        };
        Ok(Client {
            url,
            tls,
            connect_timeout,
            io_timeout,
            conn: None,
            connections_opened: 0,
        })
    }

    fn connect(&mut self) -> std::io::Result<Conn> {
        let addrs: Vec<SocketAddr> = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()?
            .collect();
        let mut last_err =
            std::io::Error::other(format!("{} resolves to no address", self.url.host));
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last_err = err,
            }
        }
        let mut stream = stream.ok_or(last_err)?;
        stream.set_read_timeout(Some(self.io_timeout))?;
        stream.set_write_timeout(Some(self.io_timeout))?;
        let _ = stream.set_nodelay(true);
        self.connections_opened += 1;
        let Some((config, name)) = &self.tls else {
            return Ok(Conn::Plain(stream));
        };
        let mut conn = rustls::ClientConnection::new(config.clone(), name.clone())
            .map_err(std::io::Error::other)?;
        while conn.is_handshaking() {
            if let Err(err) = conn.complete_io(&mut stream) {
                return Err(handshake_error(err));
            }
        }
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, stream))))
    }

    /// POSTs `body` with `headers`; on a reused connection that failed
    /// before an answer, once more on a new one.
    pub fn post(&mut self, headers: &[(String, String)], body: &[u8]) -> std::io::Result<Answer> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: memlens/{}\r\nContent-Length: {}\r\n",
            self.url.path,
            self.url.authority,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let reused = self.conn.is_some();
        let result = match self.send(head.as_bytes(), body) {
            Err(err) if reused && !is_timeout(&err) => {
                self.conn = None;
                self.send(head.as_bytes(), body)
            }
            other => other,
        };
        result.map_err(|err| {
            if is_timeout(&err) {
                // EAGAIN from a socket timeout says nothing to a reader.
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.io_timeout),
                )
            } else {
                err
            }
        })
    }

    fn send(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<Answer> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        conn.write_all(head)?;
        conn.write_all(body)?;
        conn.flush()?;
        let (answer, keep) = read_answer(&mut conn)?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(answer)
    }
}

fn is_timeout(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A TLS handshake failure in words a user can act on.
fn handshake_error(err: std::io::Error) -> std::io::Error {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return err;
    };
    use rustls::{CertificateError, Error};
    let text = match tls {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("TLS: the receiver's certificate is not signed by a CA in tls_ca_file ({tls})")
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => format!(
            "TLS: the receiver's certificate does not name this host (set tls_server_name?) ({tls})"
        ),
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            format!("TLS: the receiver's certificate has expired ({tls})")
        }
        other => format!("TLS handshake failed: {other}"),
    };
    std::io::Error::new(std::io::ErrorKind::InvalidData, text)
}

/// Reads a response to its end: the answer, and whether the connection
/// may carry another request.
fn read_answer(stream: &mut impl Read) -> std::io::Result<(Answer, bool)> {
    let (status, head, mut body) = crate::http::read_head(stream)?;
    let mut chunk = [0u8; 4096];
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
    let mut keep = !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
        && !head.starts_with("HTTP/1.0");
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if length > MAX_BODY_BYTES {
            keep = false;
        } else {
            while body.len() < length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the connection closed inside a response body",
                    ));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            if body.len() > length {
                // Bytes past the response: not something to build on.
                keep = false;
                body.truncate(length);
            }
        }
    } else if chunked {
        match read_chunked(stream, body) {
            Ok(decoded) => body = decoded,
            Err(err) => return Err(err),
        }
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        // No body by definition.
    } else {
        // A body up to the close: read what a message needs, then drop.
        keep = false;
        while body.len() < BODY_EXCERPT_BYTES {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    }
    body.truncate(BODY_EXCERPT_BYTES);
    Ok((
        Answer {
            status,
            body_excerpt: String::from_utf8_lossy(&body).trim().to_string(),
            retry_after,
        },
        keep,
    ))
}

/// Decodes a chunked body whose first bytes are `start`.
fn read_chunked(stream: &mut impl Read, start: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut raw = start;
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    let mut pos = 0;
    let bad = |what: &str| std::io::Error::other(format!("bad chunked body: {what}"));
    loop {
        // Need a full size line.
        let line_end = loop {
            if let Some(i) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("closed"));
            }
            raw.extend_from_slice(&chunk[..n]);
        };
        let line = String::from_utf8_lossy(&raw[pos..line_end]).to_string();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("size"))?;
        pos = line_end + 2;
        // The data, then CRLF (after the last, empty chunk: trailers, CRLF).
        let need = if size == 0 { 2 } else { size + 2 };
        while raw.len() < pos + need {
            if raw.len() > MAX_BODY_BYTES {
                return Err(bad("over 1 MiB"));
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("closed"));
            }
            raw.extend_from_slice(&chunk[..n]);
        }
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&raw[pos..pos + size]);
        pos += size + 2;
    }
}

/// `Retry-After`: whole seconds, or an IMF-fixdate (`Wed, 21 Oct 2015
/// 07:28:00 GMT`) taken relative to `now` (a date past is no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // "Wed, 21 Oct 2015 07:28:00 GMT"
    let rest = value.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let at = days * 86_400 + (*h * 3600 + *m * 60 + *s) as i64;
    let now_s = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(at.saturating_sub(now_s).max(0) as u64))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        // 2015-10-21 07:28:00 UTC is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn answers_are_read_to_their_end() {
        let mut text: &[u8] =
            b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nslowNEXT";
        let (a, keep) = read_answer(&mut text).unwrap();
        assert_eq!((a.status, a.body_excerpt.as_str()), (429, "slow"));
        assert_eq!(a.retry_after, Some(Duration::from_secs(3)));
        assert!(!keep, "bytes past the body");
        let mut text: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(read_answer(&mut text).unwrap().1);
        let mut text: &[u8] =
            b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n3\r\nout\r\n4\r\n of \r\n0\r\n\r\n";
        let (a, keep) = read_answer(&mut text).unwrap();
        assert_eq!(
            (a.status, a.body_excerpt.as_str(), keep),
            (400, "out of", true)
        );
        let mut text: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!read_answer(&mut text).unwrap().1);
        let mut text: &[u8] = b"HTTP/1.1 500 X\r\n\r\nuntil the close";
        let (a, keep) = read_answer(&mut text).unwrap();
        assert_eq!((a.body_excerpt.as_str(), keep), ("until the close", false));
    }
}
