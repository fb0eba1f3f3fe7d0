//! A minimal HTTP/1.0 GET for loopback test servers (no client crate needed).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// A loopback port nobody listens on right now (bound and released at once),
/// for a server the test starts on it next. For an address that must stay
/// unanswered, use [`RefusingLoopbackPort`].
pub fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A loopback port that refuses connections for as long as this value
/// lives: a TCP socket bound to `127.0.0.1:0` that does not listen.
///
/// Use it where a test needs an address nobody answers on for minutes
/// (a receiver that is down). A port from [`free_loopback_port`] is free
/// again at once, and any process that binds port 0 meanwhile (another
/// test's server) may be given it; this one stays bound, so the kernel
/// gives it to nobody else, neither to `bind` nor to an outgoing
/// connection, and a connect to it gets a reset (connection refused).
pub struct RefusingLoopbackPort {
    socket: OwnedFd,
    port: u16,
}

impl RefusingLoopbackPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn bind() -> RefusingLoopbackPort {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a new socket that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: address is a valid sockaddr_in of the length given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_in).cast(),
                length,
            )
        };
        assert_eq!(
            bound,
            0,
            "bind 127.0.0.1:0: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: address and length are writable and sized for an AF_INET name.
        let named = unsafe {
            libc::getsockname(
                socket.as_raw_fd(),
                (&mut address as *mut libc::sockaddr_in).cast(),
                &mut length,
            )
        };
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        RefusingLoopbackPort {
            socket,
            port: u16::from_be(address.sin_port),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts listening on the same socket: the receiver is back, on the
    /// address the test handed out, and nobody could have taken it meanwhile.
    pub fn listen(self) -> TcpListener {
        // SAFETY: listen(2) on a bound socket this value owns.
        let listening = unsafe { libc::listen(self.socket.as_raw_fd(), 128) };
        assert_eq!(listening, 0, "listen: {}", std::io::Error::last_os_error());
        TcpListener::from(self.socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_port_refuses_keeps_its_port_and_can_listen_later() {
        let port = RefusingLoopbackPort::bind();
        let refused = TcpStream::connect(port.addr()).expect_err("nobody listens");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let taken = TcpListener::bind(port.addr()).expect_err("the port stays bound");
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
        let addr = port.addr();
        let listener = port.listen();
        assert_eq!(listener.local_addr().unwrap().to_string(), addr);
        let _client = TcpStream::connect(&addr).expect("listening now");
        listener.accept().expect("the connection arrives");
    }
}
