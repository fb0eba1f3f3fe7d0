//! Where a binary without DWARF keeps it: `.gnu_debuglink` (a file name and
//! the CRC-32 of that file) and `.note.gnu.build-id` (a file under
//! `/usr/lib/debug/.build-id/`), as GDB looks them up. Pure: bytes in, names
//! and paths out; the caller reads the candidates under the target's root.

use object::{Object, ObjectSection};

/// How to find a binary's separate debug file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DebugLink {
    /// `.gnu_debuglink`: the debug file's name and the CRC-32 of its bytes.
    pub debuglink: Option<(String, u32)>,
    /// `.note.gnu.build-id`: the build ID bytes.
    pub build_id: Option<Vec<u8>>,
}

impl DebugLink {
    /// Reads the two sections of the ELF `data` (none when it is not ELF).
    pub fn from_elf(data: &[u8]) -> DebugLink {
        let Ok(elf) = object::File::parse(data) else {
            return DebugLink::default();
        };
        let debuglink = elf
            .section_by_name(".gnu_debuglink")
            .and_then(|s| s.data().ok())
            .and_then(parse_debuglink);
        let build_id = elf
            .section_by_name(".note.gnu.build-id")
            .and_then(|s| s.data().ok())
            .and_then(parse_build_id_note);
        DebugLink {
            debuglink,
            build_id,
        }
    }

    /// Candidate debug files, most specific first, as absolute paths inside
    /// the target's file system (prefix them with `/proc/PID/root`): the
    /// build-ID file, then the debuglink name beside the binary, in `.debug/`
    /// beside it, and under `/usr/lib/debug` + the binary's directory.
    pub fn candidates(&self, binary_path: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(id) = self.build_id.as_ref().filter(|id| id.len() >= 2) {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            out.push(format!(
                "/usr/lib/debug/.build-id/{}/{}.debug",
                &hex[..2],
                &hex[2..]
            ));
        }
        if let Some((name, _)) = &self.debuglink {
            let dir = binary_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            out.push(format!("{dir}/{name}"));
            out.push(format!("{dir}/.debug/{name}"));
            out.push(format!("/usr/lib/debug{dir}/{name}"));
        }
        out
    }

    /// Whether `debug` (the bytes of a candidate) is the file this binary
    /// names: the debuglink CRC matches, or (build-ID candidates) its own
    /// build ID is the same.
    pub fn matches(&self, debug: &[u8]) -> bool {
        if let Some((_, crc)) = &self.debuglink {
            if crc32(debug) == *crc {
                return true;
            }
        }
        match &self.build_id {
            Some(id) => DebugLink::from_elf(debug).build_id.as_ref() == Some(id),
            None => false,
        }
    }
}

/// `.gnu_debuglink`: a NUL-terminated file name, padding to 4 bytes, then the
/// little-endian CRC-32 of the debug file.
pub fn parse_debuglink(section: &[u8]) -> Option<(String, u32)> {
    let nul = section.iter().position(|b| *b == 0)?;
    if nul == 0 {
        return None;
    }
    let name = std::str::from_utf8(&section[..nul]).ok()?;
    if name.contains('/') {
        return None;
    }
    let crc_at = (nul + 1).next_multiple_of(4);
    let crc = section.get(crc_at..crc_at + 4)?;
    Some((name.to_string(), u32::from_le_bytes(crc.try_into().ok()?)))
}

/// The descriptor of an ELF note of type `NT_GNU_BUILD_ID` (3) named `GNU`.
pub fn parse_build_id_note(section: &[u8]) -> Option<Vec<u8>> {
    let word = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(section.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let (namesz, descsz, kind) = (word(0)?, word(4)?, word(8)?);
    let name_end = 12usize.checked_add(namesz)?;
    if kind != 3 || section.get(12..name_end)? != b"GNU\0" {
        return None;
    }
    let desc = name_end.next_multiple_of(4);
    let id = section.get(desc..desc.checked_add(descsz)?)?;
    (!id.is_empty()).then(|| id.to_vec())
}

/// CRC-32 (IEEE 802.3, reflected, as `.gnu_debuglink` uses).
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, b| {
        table[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_the_check_string() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn debuglink_section_is_name_padding_crc() {
        let mut s = b"workload.debug\0\0".to_vec();
        s.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(
            parse_debuglink(&s),
            Some(("workload.debug".to_string(), 0xDEAD_BEEF))
        );
        assert_eq!(parse_debuglink(b"x\0\0"), None, "too short for the CRC");
        assert_eq!(parse_debuglink(b"../x\0\0\0\0\0\0\0\0"), None);
    }

    #[test]
    fn build_id_note_and_its_path() {
        let mut note = Vec::new();
        for w in [4u32, 4, 3] {
            note.extend_from_slice(&w.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[0xab, 0xcd, 0xef, 0x01]);
        let id = parse_build_id_note(&note).unwrap();
        let link = DebugLink {
            debuglink: Some(("w.debug".into(), 0)),
            build_id: Some(id),
        };
        assert_eq!(
            link.candidates("/opt/svc/w"),
            [
                "/usr/lib/debug/.build-id/ab/cdef01.debug",
                "/opt/svc/w.debug",
                "/opt/svc/.debug/w.debug",
                "/usr/lib/debug/opt/svc/w.debug"
            ]
        );
    }
}
