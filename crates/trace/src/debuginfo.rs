//! Separate debug files: where the symbols of a stripped binary went when
//! its distribution ships them apart (Debian's `*-dbg`/`*-dbgsym` packages,
//! `objcopy --only-keep-debug`). Looked up as gdb does, under a root
//! directory (`/` on the host):
//!
//! 1. by the binary's GNU build id: `ROOT/usr/lib/debug/.build-id/ab/cdef….debug`
//!    (the first byte in hex, then the rest), kept when its build id is the same;
//! 2. by its `.gnu_debuglink` name `NAME`: `DIR/NAME`, `DIR/.debug/NAME` and
//!    `ROOT/usr/lib/debug/DIR/NAME` (`DIR`: the binary's directory), kept
//!    when the CRC-32 of its bytes is the one the link holds.
//!
//! [`candidates`] and [`matches`] are pure; [`find`] reads the files.

use std::path::{Path, PathBuf};

use crate::elf::Elf;

/// Where a binary's debug file may be, in the order to try: `(path, by
/// build id)`. `binary` is the binary's absolute path (as in
/// `/proc/PID/maps`), `root` the directory the paths are under.
pub fn candidates(
    root: &Path,
    binary: &str,
    build_id: Option<&[u8]>,
    debuglink: Option<&str>,
) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let debug = root.join("usr/lib/debug");
    if let Some((first, rest)) = build_id.and_then(|id| id.split_first()) {
        if !rest.is_empty() {
            let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
            out.push((
                debug
                    .join(".build-id")
                    .join(format!("{first:02x}"))
                    .join(format!("{hex}.debug")),
                true,
            ));
        }
    }
    if let Some(name) = debuglink {
        let dir = Path::new(binary)
            .parent()
            .unwrap_or(Path::new("/"))
            .strip_prefix("/")
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let in_root = root.join(&dir);
        out.push((in_root.join(name), false));
        out.push((in_root.join(".debug").join(name), false));
        out.push((debug.join(&dir).join(name), false));
    }
    out
}

/// CRC-32 (IEEE, zlib's), the checksum `.gnu_debuglink` holds.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// Whether `debug` (a candidate's bytes) belongs to the binary: the same
/// build id when found by build id, else the debuglink's CRC-32.
pub fn matches(debug: &[u8], by_build_id: bool, build_id: Option<&[u8]>, crc: Option<u32>) -> bool {
    if by_build_id {
        let Ok(elf) = Elf::parse(debug) else {
            return false;
        };
        build_id.is_some() && elf.build_id() == build_id
    } else {
        crc.is_some_and(|c| crc32(debug) == c)
    }
}

/// The bytes of the separate debug file of `binary` (parsed as `elf`)
/// under `root`, when one is there and belongs to it.
pub fn find(root: &Path, binary: &str, elf: &Elf<'_>) -> Option<Vec<u8>> {
    let build_id = elf.build_id();
    let link = elf.debuglink();
    for (path, by_build_id) in
        candidates(root, binary, build_id, link.as_ref().map(|l| l.0.as_str()))
    {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if matches(&bytes, by_build_id, build_id, link.as_ref().map(|l| l.1)) {
            return Some(bytes);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_then_debuglink_places() {
        let c = candidates(
            Path::new("/r"),
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            Some(&[0x93, 0xac, 0x61]),
            Some("libc.debug"),
        );
        let paths: Vec<String> = c.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/r/usr/lib/debug/.build-id/93/ac61.debug",
                "/r/usr/lib/x86_64-linux-gnu/libc.debug",
                "/r/usr/lib/x86_64-linux-gnu/.debug/libc.debug",
                "/r/usr/lib/debug/usr/lib/x86_64-linux-gnu/libc.debug",
            ]
        );
        assert_eq!(c.iter().filter(|(_, by_id)| *by_id).count(), 1);
        assert!(candidates(Path::new("/"), "/x", None, None).is_empty());
        // A one-byte id has no "rest": no build-id path.
        assert!(candidates(Path::new("/"), "/x", Some(&[1]), None).is_empty());
    }

    #[test]
    fn crc32_is_zlibs() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert!(matches(b"123456789", false, None, Some(0xcbf4_3926)));
        assert!(!matches(b"123456780", false, None, Some(0xcbf4_3926)));
        assert!(!matches(b"not elf", true, Some(&[1, 2]), None));
    }
}
