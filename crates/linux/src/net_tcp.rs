//! `/proc/PID/net/tcp` and `tcp6`: the TCP sockets of a network namespace, to
//! find which of them a process listens on (match `inode` against the
//! `socket:[inode]` links of `/proc/PID/fd`).

use crate::ParseError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The inode of a `socket:[inode]` link target (a `/proc/PID/fd` entry);
/// None for any other target.
pub fn socket_link_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `TCP_LISTEN` in the kernel's state numbering.
const STATE_LISTEN: u8 = 0x0A;

/// One line of `net/tcp` or `net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified for listeners).
    pub remote: SocketAddr,
    /// The kernel's state number (`0x0A` = LISTEN).
    pub state: u8,
    /// The socket's inode, as in `socket:[inode]`.
    pub inode: u64,
}

impl TcpSocket {
    /// Whether the socket is listening.
    pub fn is_listening(&self) -> bool {
        self.state == STATE_LISTEN
    }
}

/// Parses `net/tcp` or `net/tcp6` text (the header line is skipped).
pub fn parse_tcp_table(input: &str, text: &str) -> Result<Vec<TcpSocket>, ParseError> {
    let mut sockets = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| ParseError::at_line(input, index + 1, why);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            return Err(bad(format!(
                "expected at least 10 fields, found {}",
                fields.len()
            )));
        }
        let local = parse_endpoint(fields[1])
            .ok_or_else(|| bad(format!("bad local address {:?}", fields[1])))?;
        let remote = parse_endpoint(fields[2])
            .ok_or_else(|| bad(format!("bad remote address {:?}", fields[2])))?;
        let state = u8::from_str_radix(fields[3], 16)
            .map_err(|_| bad(format!("bad state {:?}", fields[3])))?;
        let inode = fields[9]
            .parse()
            .map_err(|_| bad(format!("bad inode {:?}", fields[9])))?;
        sockets.push(TcpSocket {
            local,
            remote,
            state,
            inode,
        });
    }
    Ok(sockets)
}

/// `0100007F:1F90` → 127.0.0.1:8080. The address is the kernel's in-memory
/// bytes printed as 32-bit words in host order (little-endian on x86).
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let ip = match (addr.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes())),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_give_their_inode_and_others_none() {
        assert_eq!(socket_link_inode("socket:[48213]"), Some(48213));
        assert_eq!(socket_link_inode("pipe:[48213]"), None);
        assert_eq!(socket_link_inode("/dev/null"), None);
    }

    #[test]
    fn captured_ipv4_table() {
        // This machine's /proc/net/tcp with a Python listener on 127.0.0.1:41883
        // (inode 169369, from fstat of the socket at capture time).
        let text = include_str!("../testdata/net/linux6.18-tcp.txt");
        let sockets = parse_tcp_table("/proc/net/tcp", text).unwrap();
        let ours = sockets.iter().find(|s| s.inode == 169_369).unwrap();
        assert!(ours.is_listening());
        assert_eq!(ours.local, "127.0.0.1:41883".parse().unwrap());
        // The sandbox's agent listens on 0.0.0.0:2024 (`ss -ltn` agreed).
        assert!(sockets
            .iter()
            .any(|s| s.is_listening() && s.local == "0.0.0.0:2024".parse().unwrap()));
    }

    #[test]
    fn captured_ipv6_table() {
        // Listeners on [::1]:46473 (inode 169367) and [::]:39995 (inode 169368).
        let text = include_str!("../testdata/net/linux6.18-tcp6.txt");
        let sockets = parse_tcp_table("/proc/net/tcp6", text).unwrap();
        assert_eq!(sockets.len(), 2);
        assert_eq!(sockets[0].local, "[::1]:46473".parse().unwrap());
        assert_eq!(sockets[0].inode, 169_367);
        assert_eq!(sockets[1].local, "[::]:39995".parse().unwrap());
        assert!(sockets.iter().all(TcpSocket::is_listening));
    }

    #[test]
    fn malformed_lines_are_named() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        for line in [
            "   0: 0100007F:XYZ 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   0: 0100007F:0050 00000000:0000 ZZ 0:0 0:0 0 0 0 1",
            "   0: 0100007F:0050 00000000:0000 0A 0:0 0:0 0 0 0 x",
            "   0: 0100007:0050 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   0: 0100007F:0050",
        ] {
            let err = parse_tcp_table("net/tcp", &format!("{header}{line}\n")).unwrap_err();
            assert_eq!(err.line, Some(2), "{line}: {err}");
        }
        assert_eq!(parse_tcp_table("net/tcp", "").unwrap(), vec![]);
    }
}
