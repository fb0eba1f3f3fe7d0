//! Goroutine dumps: read, group identical stacks, rank suspected leaks.
//!
//! Every format a Go program gives out is read (gzipped or not), as a stream, in bounded memory
//! (a million-goroutine dump costs the memory of its distinct stacks, not of its
//! goroutines):
//! - `?debug=2` text (`goroutine N [state, M minutes]:` blocks), Go 1.17–1.27,
//!   including the `(leaked)` mark of Go 1.26+ and the silent 64 MiB cut of the
//!   runtime ([`Analysis::truncation`]);
//! - SIGQUIT / crash dumps on stderr (`gp= m= mp=` headers, `fp= sp= pc=`,
//!   register dumps and panic text skipped);
//! - `?debug=1` grouped text (`goroutine profile: total N`);
//! - the protobuf goroutine and goroutineleak profiles ([`analyse_profile`]).
//!
//! Main items:
//! - [`read_dump`]: detects the format and reads it into an [`Analysis`]:
//!   [`Group`]s of goroutines with the same stack (function names and
//!   file:line; arguments, addresses and ids ignored) with their states, wait
//!   times and creation sites, and the [`CreationGroup`] view by `created by`.
//! - [`rank()`] / [`Verdict`]: proven leaks first, then suspected ones.
//! - [`diff()`]: growth per stack between two dumps.
//! - [`merge_counts`] / [`mark_proven_leaks`]: exact counts of the protobuf
//!   profile and the goroutineleak proof joined to a `?debug=2` dump.
//! - [`Limits`]: the caps that bound memory whatever the input.

mod aggregate;
mod debug1;
mod error;
mod infer;
mod lines;
mod merge;
mod model;
mod proto;
mod rank;
mod syntax;
mod text;

pub use error::GoroutineError;
pub use merge::{mark_proven_leaks, merge_counts, MergeStats};
pub use model::{
    Analysis, CreationCount, CreationGroup, CreationSite, DumpFormat, Frame, Group, Limits,
    Overflow, StateCount, Truncation,
};
pub use proto::analyse_profile;
pub use rank::{diff, rank, GroupDiff, RankConfig, RankedGroup, Verdict};
pub use text::DEBUG2_CAP_BYTES;

use crate::pprof::Profile;
use flate2::read::GzDecoder;
use lines::LineReader;
use std::io::{BufRead, BufReader, Cursor, Read};

/// The most bytes of a protobuf profile read into memory (it has to be decoded whole).
pub const MAX_PROTOBUF_BYTES: u64 = 1 << 30;

/// Bytes looked at to tell the formats apart.
const SNIFF_BYTES: usize = 64 * 1024;

/// Reads a goroutine dump in any of the formats, gzipped or not (one layer:
/// the agent keeps `?debug=2` text gzipped), as a stream. `progress` is
/// called with the bytes read so far (of the text, once unzipped), about
/// every MiB (for a progress bar).
pub fn read_dump<R: BufRead>(
    mut reader: R,
    limits: Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Analysis, GoroutineError> {
    let prefix = sniff_prefix(&mut reader)?;
    if prefix.starts_with(&[0x1f, 0x8b]) {
        // Gzipped text or protobuf: what is inside is read the same way (a
        // protobuf is then decoded unzipped, within the same cap); gzip
        // inside is not unzipped again.
        let mut unzipped = BufReader::new(GzDecoder::new(Cursor::new(prefix).chain(reader)));
        let prefix = sniff_prefix(&mut unzipped)?;
        return read_sniffed(prefix, unzipped, limits, progress);
    }
    read_sniffed(prefix, reader, limits, progress)
}

/// [`read_dump`] once `prefix` has been taken from the front of `reader`.
fn read_sniffed<R: BufRead>(
    prefix: Vec<u8>,
    reader: R,
    limits: Limits,
    progress: &mut dyn FnMut(u64),
) -> Result<Analysis, GoroutineError> {
    if prefix.is_empty() {
        return Err(GoroutineError::Empty);
    }
    if looks_binary(&prefix) {
        let mut bytes = prefix;
        reader
            .take(MAX_PROTOBUF_BYTES.saturating_sub(bytes.len() as u64))
            .read_to_end(&mut bytes)?;
        progress(bytes.len() as u64);
        let profile =
            Profile::decode(&bytes).map_err(|err| GoroutineError::Profile(err.to_string()))?;
        return analyse_profile(&profile, limits, bytes.len() as u64);
    }
    let first_line = first_nonblank_line(&prefix);
    let is_debug1 = syntax::parse_debug1_total(&first_line).is_some();
    let chained = Cursor::new(prefix).chain(reader);
    let lines = LineReader::new(chained, limits.max_line_bytes, progress);
    if is_debug1 {
        debug1::read_debug1(lines, limits)
    } else {
        text::read_text(lines, limits, first_line)
    }
}

/// Reads until the first non-blank line is complete (or [`SNIFF_BYTES`]).
fn sniff_prefix<R: BufRead>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(prefix);
        }
        let take = available.len().min(SNIFF_BYTES - prefix.len());
        prefix.extend_from_slice(&available[..take]);
        reader.consume(take);
        let has_content_line = prefix
            .split(|&b| b == b'\n')
            .take(prefix.iter().filter(|&&b| b == b'\n').count())
            .any(|line| !line.iter().all(u8::is_ascii_whitespace));
        if has_content_line || prefix.len() >= SNIFF_BYTES || looks_binary(&prefix) {
            return Ok(prefix);
        }
    }
}

/// Gzip magic, or control bytes no text dump has: a protobuf profile.
fn looks_binary(prefix: &[u8]) -> bool {
    prefix.starts_with(&[0x1f, 0x8b])
        || prefix
            .iter()
            .take(256)
            .any(|&b| b < 0x09 || (0x0e..0x20).contains(&b) && b != 0x1b)
}

/// The first non-blank line of `prefix`, at most 120 bytes, for detection and messages.
fn first_nonblank_line(prefix: &[u8]) -> String {
    let line = prefix
        .split(|&b| b == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace))
        .unwrap_or(&[]);
    let text = String::from_utf8_lossy(line);
    aggregate::cap_str(text.trim_end(), 120).to_string()
}
