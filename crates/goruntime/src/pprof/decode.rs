//! From bytes to the wire message: gzip detection and bounded decompression,
//! recognising text formats that are not protobuf, and the protobuf decode.

use super::legacy::{self, Legacy};
use super::legacy_heap;
use super::proto::RawProfile;
use super::PprofError;
use std::borrow::Cow;
use std::io::Read;

/// Largest decompressed profile [`super::Profile::decode`] accepts (1 GiB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Gunzips `bytes` when they start with the gzip magic (at most `limit_bytes`
/// of output), then decodes the protobuf message.
pub(super) fn decode_raw(bytes: &[u8], limit_bytes: u64) -> Result<RawProfile, PprofError> {
    decode_plain(&plain_bytes(bytes, limit_bytes)?)
}

/// [`decode_raw`], and Go's legacy text heap profile (gzipped or not); any
/// other legacy format is refused by name.
pub(super) fn decode_raw_any(bytes: &[u8], limit_bytes: u64) -> Result<RawProfile, PprofError> {
    let plain = plain_bytes(bytes, limit_bytes)?;
    match legacy::sniff(&plain) {
        Some(Legacy::GoHeap) => legacy_heap::parse(&plain),
        Some(Legacy::Refused(what)) => Err(PprofError::LegacyFormat(what)),
        None => decode_plain(&plain),
    }
}

/// The bytes, gunzipped when they start with the gzip magic.
fn plain_bytes(bytes: &[u8], limit_bytes: u64) -> Result<Cow<'_, [u8]>, PprofError> {
    if bytes.is_empty() {
        return Err(PprofError::Empty);
    }
    if bytes.starts_with(&GZIP_MAGIC) {
        Ok(Cow::Owned(gunzip(bytes, limit_bytes)?))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

fn gunzip(bytes: &[u8], limit_bytes: u64) -> Result<Vec<u8>, PprofError> {
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(64 << 20));
    // One byte past the limit tells "exactly at the limit" from "over it".
    let read = decoder
        .take(limit_bytes.saturating_add(1))
        .read_to_end(&mut out);
    match read {
        Ok(_) if out.len() as u64 > limit_bytes => Err(PprofError::TooLarge { limit_bytes }),
        Ok(_) if out.is_empty() => Err(PprofError::NotProfile(
            "the gzip stream holds 0 bytes".to_string(),
        )),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(PprofError::Truncated("gzip stream"))
        }
        Err(e) => Err(PprofError::Gzip(e.to_string())),
    }
}

fn decode_plain(bytes: &[u8]) -> Result<RawProfile, PprofError> {
    if let Some(what) = sniff_text(bytes) {
        return Err(PprofError::NotProfile(what));
    }
    match <RawProfile as prost::Message>::decode(bytes) {
        Ok(raw) => Ok(raw),
        Err(e) => {
            let text = e.to_string();
            if text.contains("buffer underflow") {
                Err(PprofError::Truncated("protobuf"))
            } else {
                Err(PprofError::Protobuf(
                    text.trim_start_matches("failed to decode Protobuf message: ")
                        .to_string(),
                ))
            }
        }
    }
}

/// Names the text formats people most often feed by mistake.
fn sniff_text(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(64)];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start();
    let known = [
        (
            "heap profile:",
            "a heap profile in the legacy text format (debug=1): `memlens heap` and `memlens flame` read it, here fetch it with debug=0",
        ),
        (
            "goroutine profile:",
            "a goroutine profile in text (debug=1); fetch it with debug=0",
        ),
        (
            "goroutine ",
            "a goroutine dump in text (debug=2 or a crash dump); fetch it with debug=0",
        ),
        (
            "goroutineleak profile:",
            "a goroutineleak profile in text (debug=1); fetch it with debug=0",
        ),
        ("<!doctype", "an HTML page"),
        ("<html", "an HTML page"),
        ("{", "JSON text"),
    ];
    let lower = text.to_ascii_lowercase();
    known
        .iter()
        .find(|(prefix, _)| lower.starts_with(prefix))
        .map(|(_, what)| format!("the input is {what}"))
}
