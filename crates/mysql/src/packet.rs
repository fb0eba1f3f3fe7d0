//! Pure decoding of the protocol's packets: the v10 handshake, length-encoded
//! values, column definitions, text rows, ERR packets.

use crate::Error;

/// A cursor over one packet's payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "packet of {} bytes cut short at byte {}",
                    self.buf.len(),
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn nul_str(&mut self) -> Result<&'a [u8], Error> {
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::Protocol("string without its NUL end".into()))?;
        let s = self.take(n)?;
        self.pos += 1;
        Ok(s)
    }

    /// A length-encoded integer.
    pub fn lenenc_int(&mut self) -> Result<u64, Error> {
        match self.u8()? {
            n @ 0..=0xfa => Ok(n as u64),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            b => Err(Error::Protocol(format!(
                "bad length-encoded integer prefix {b:#04x}"
            ))),
        }
    }

    /// A length-encoded string; `None` for NULL (0xfb) in a text row.
    pub fn lenenc_str(&mut self) -> Result<Option<&'a [u8]>, Error> {
        if self.buf.get(self.pos) == Some(&0xfb) {
            self.pos += 1;
            return Ok(None);
        }
        let n = self.lenenc_int()? as usize;
        self.take(n).map(Some)
    }
}

/// What the server's initial handshake (protocol v10) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// `10.11.19-MariaDB-0+deb12u1`.
    pub server_version: String,
    /// This connection's id.
    pub connection_id: u32,
    /// The 20-byte auth scramble.
    pub scramble: Vec<u8>,
    /// The server's capability flags (lower and upper 16 bits).
    pub capabilities: u32,
    /// The auth plugin it names.
    pub auth_plugin: String,
}

impl Handshake {
    /// Decodes the handshake packet.
    pub fn parse(p: &[u8]) -> Result<Handshake, Error> {
        let mut r = Reader::new(p);
        let proto = r.u8()?;
        if proto != 10 {
            return Err(Error::Protocol(format!(
                "handshake protocol {proto}, expected 10"
            )));
        }
        let server_version = String::from_utf8_lossy(r.nul_str()?).into_owned();
        let connection_id = r.uint(4)? as u32;
        let mut scramble = r.take(8)?.to_vec();
        r.take(1)?;
        let lower = r.uint(2)? as u32;
        r.take(3)?; // charset, status
        let upper = r.uint(2)? as u32;
        let data_len = r.u8()? as usize;
        r.take(10)?;
        let rest = data_len.saturating_sub(8).max(13);
        let part2 = r.take(rest)?;
        scramble.extend_from_slice(&part2[..part2.len().min(12)]);
        let auth_plugin = r
            .nul_str()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        Ok(Handshake {
            server_version,
            connection_id,
            scramble,
            capabilities: lower | (upper << 16),
            auth_plugin,
        })
    }
}

/// The `name` of a column definition (protocol 4.1).
pub fn column_name(p: &[u8]) -> Result<String, Error> {
    let mut r = Reader::new(p);
    for _ in 0..4 {
        r.lenenc_str()?; // catalog, schema, table, org_table
    }
    Ok(String::from_utf8_lossy(r.lenenc_str()?.unwrap_or_default()).into_owned())
}

/// A text row of `columns` values.
pub fn text_row(p: &[u8], columns: usize) -> Result<Vec<Option<String>>, Error> {
    let mut r = Reader::new(p);
    (0..columns)
        .map(|_| {
            Ok(r.lenenc_str()?
                .map(|s| String::from_utf8_lossy(s).into_owned()))
        })
        .collect()
}

/// An ERR packet as [`Error::Server`].
pub fn parse_err(p: &[u8]) -> Error {
    let code = u16::from_le_bytes([
        p.get(1).copied().unwrap_or(0),
        p.get(2).copied().unwrap_or(0),
    ]);
    let (state, msg) = if p.get(3) == Some(&b'#') && p.len() >= 9 {
        (String::from_utf8_lossy(&p[4..9]).into_owned(), &p[9..])
    } else {
        (String::new(), p.get(3..).unwrap_or_default())
    };
    Error::Server {
        code,
        state,
        message: String::from_utf8_lossy(msg).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_forms() {
        assert_eq!(Reader::new(&[0xfa]).lenenc_int().unwrap(), 250);
        assert_eq!(
            Reader::new(&[0xfc, 0x01, 0x02]).lenenc_int().unwrap(),
            0x0201
        );
        assert_eq!(
            Reader::new(&[0xfd, 1, 2, 3]).lenenc_int().unwrap(),
            0x030201
        );
        assert!(Reader::new(&[0xfc, 0x01]).lenenc_int().is_err());
        let row = text_row(&[0xfb, 2, b'4', b'2'], 2).unwrap();
        assert_eq!(row, vec![None, Some("42".to_string())]);
    }

    #[test]
    fn err_packet() {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000Access denied");
        match parse_err(&p) {
            Error::Server {
                code,
                state,
                message,
            } => {
                assert_eq!(
                    (code, state.as_str(), message.as_str()),
                    (1045, "28000", "Access denied")
                );
            }
            e => panic!("{e:?}"),
        }
    }
}
