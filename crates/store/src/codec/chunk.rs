//! Sealed chunks. A *group* is a run of consecutive head frames sealed
//! together; its frame timestamps are stored once ([`encode_timestamps`]).
//! Each series present in the group gets one chunk: the frame indices where it
//! has a value (as runs, usually one) and its values ([`super::values`]).
//!
//! Chunk layout: varint value count, varint run count, per run the varint gap
//! since the end of the previous run and the varint run length, then the
//! value bit stream.
//!
//! The chunks of one entity in one group are stored together as a *bundle*
//! ([`encode_bundle`]): the CRC-32 of the rest (4 bytes little-endian, so
//! damage that still decodes is found), then per chunk the varint gap to the previous metric id
//! (the first one absolute; strictly ascending), the varint chunk length and
//! the chunk. One row per (group, entity) instead of one per series keeps
//! SQLite's per-row overhead off the samples.

use super::bits::{crc32, get_varint, put_varint};
use super::values::{decode_values, DecodeError, ValueEncoder};

/// Why a chunk or timestamp blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl From<DecodeError> for ChunkError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Truncated => ChunkError("value stream cut short"),
            DecodeError::BadCode => ChunkError("invalid code in the value stream"),
        }
    }
}

/// Builds the chunk of one series while a group is sealed, frame by frame.
#[derive(Debug, Clone, Default)]
pub struct ChunkBuilder {
    /// (first frame index, length) of each run of frames with a value.
    runs: Vec<(u32, u32)>,
    values: ValueEncoder,
}

impl ChunkBuilder {
    /// An empty chunk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the value of frame `frame_index`; indices must ascend.
    pub fn push(&mut self, frame_index: u32, value: f64) {
        match self.runs.last_mut() {
            Some((start, len)) if *start + *len == frame_index => *len += 1,
            _ => self.runs.push((frame_index, 1)),
        }
        self.values.push(value);
    }

    /// Number of values.
    pub fn count(&self) -> u32 {
        self.values.count()
    }

    /// Frame index of the first and last value (None when empty).
    pub fn frame_span(&self) -> Option<(u32, u32)> {
        let first = self.runs.first()?.0;
        let (start, len) = *self.runs.last()?;
        Some((first, start + len - 1))
    }

    /// The chunk blob.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, self.values.count() as u64);
        put_varint(&mut out, self.runs.len() as u64);
        let mut end = 0u32;
        for &(start, len) in &self.runs {
            put_varint(&mut out, (start - end) as u64);
            put_varint(&mut out, len as u64);
            end = start + len;
        }
        out.extend_from_slice(&self.values.finish());
        out
    }
}

/// Decodes a chunk of a group with `frame_count` frames into
/// `(frame index, value)` pairs.
pub fn decode_chunk(blob: &[u8], frame_count: u32) -> Result<Vec<(u32, f64)>, ChunkError> {
    let mut input = blob;
    let cut = |_| ChunkError("header cut short");
    let count = get_varint(&mut input).map_err(cut)?;
    let run_count = get_varint(&mut input).map_err(cut)?;
    if count > frame_count as u64 || run_count > count {
        return Err(ChunkError("more values than frames in the group"));
    }
    let mut indices = Vec::with_capacity(count as usize);
    let mut end = 0u64;
    for _ in 0..run_count {
        let start = end + get_varint(&mut input).map_err(cut)?;
        let len = get_varint(&mut input).map_err(cut)?;
        end = start.saturating_add(len);
        if end > frame_count as u64 {
            return Err(ChunkError("run past the last frame of the group"));
        }
        indices.extend(start as u32..end as u32);
    }
    if indices.len() as u64 != count {
        return Err(ChunkError("runs do not add up to the value count"));
    }
    let mut out = Vec::with_capacity(indices.len());
    let mut it = indices.into_iter();
    decode_values(input, count as u32, |v| {
        if let Some(i) = it.next() {
            out.push((i, v));
        }
    })?;
    Ok(out)
}

/// Encodes the (ascending) frame timestamps of a group, in ms. Fails when a
/// timestamp is beyond ±2^53 ms (not exactly representable).
pub fn encode_timestamps(ts_ms: &[i64]) -> Option<Vec<u8>> {
    let mut enc = ValueEncoder::new();
    for &ts in ts_ms {
        if ts.unsigned_abs() > 1 << 53 {
            return None;
        }
        enc.push(ts as f64);
    }
    let mut out = Vec::new();
    put_varint(&mut out, ts_ms.len() as u64);
    out.extend_from_slice(&enc.finish());
    Some(out)
}

/// Decodes [`encode_timestamps`] output.
pub fn decode_timestamps(blob: &[u8]) -> Result<Vec<i64>, ChunkError> {
    let mut input = blob;
    let count = get_varint(&mut input).map_err(|_| ChunkError("timestamp count cut"))?;
    if count > input.len() as u64 * 8 {
        return Err(ChunkError("timestamp count larger than the blob"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut bad = false;
    decode_values(input, count as u32, |v| {
        bad |= v.fract() != 0.0 || v.abs() > (1u64 << 53) as f64;
        out.push(v as i64);
    })?;
    if bad {
        return Err(ChunkError("timestamp is not an integer"));
    }
    Ok(out)
}

/// Encodes the chunks of one entity, `(metric id, chunk)` with metric ids
/// strictly ascending (not checked here: the caller's map guarantees it).
pub fn encode_bundle<'a>(chunks: impl IntoIterator<Item = (u64, &'a [u8])>) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    let mut prev = 0u64;
    for (i, (metric, chunk)) in chunks.into_iter().enumerate() {
        put_varint(&mut out, if i == 0 { metric } else { metric - prev });
        put_varint(&mut out, chunk.len() as u64);
        out.extend_from_slice(chunk);
        prev = metric;
    }
    let crc = crc32(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Splits a bundle into `(metric id, chunk)` pairs.
pub fn decode_bundle(blob: &[u8]) -> Result<Vec<(u64, &[u8])>, ChunkError> {
    let (crc, mut input) = blob
        .split_first_chunk::<4>()
        .ok_or(ChunkError("bundle shorter than its checksum"))?;
    if u32::from_le_bytes(*crc) != crc32(input) {
        return Err(ChunkError("bundle checksum mismatch"));
    }
    let mut out = Vec::new();
    let mut metric = 0u64;
    while !input.is_empty() {
        let gap = get_varint(&mut input).map_err(|_| ChunkError("bundle entry cut"))?;
        if !out.is_empty() && gap == 0 {
            return Err(ChunkError("bundle metric ids not ascending"));
        }
        metric = metric
            .checked_add(gap)
            .ok_or(ChunkError("bundle metric id overflows"))?;
        let len = get_varint(&mut input).map_err(|_| ChunkError("bundle entry cut"))?;
        if len > input.len() as u64 {
            return Err(ChunkError("bundle chunk longer than the bundle"));
        }
        let (chunk, rest) = input.split_at(len as usize);
        out.push((metric, chunk));
        input = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn chunks_round_trip(present in proptest::collection::vec(any::<bool>(), 1..400), base in any::<f64>()) {
            let mut b = ChunkBuilder::new();
            let mut expected = Vec::new();
            for (i, &p) in present.iter().enumerate() {
                if p {
                    let v = if i % 7 == 0 { base } else { (i * 4096) as f64 };
                    b.push(i as u32, v);
                    expected.push((i as u32, v));
                }
            }
            let back = decode_chunk(&b.finish(), present.len() as u32).unwrap();
            prop_assert_eq!(back.len(), expected.len());
            for (x, y) in back.iter().zip(&expected) {
                prop_assert_eq!(x.0, y.0);
                prop_assert_eq!(x.1.to_bits(), y.1.to_bits());
            }
        }

        #[test]
        fn timestamps_round_trip(start in -(1i64 << 50)..(1i64 << 50), steps in proptest::collection::vec(0i64..100_000, 0..400)) {
            let mut t = start;
            let ts: Vec<i64> = steps.iter().map(|s| { t += s; t }).collect();
            prop_assert_eq!(decode_timestamps(&encode_timestamps(&ts).unwrap()).unwrap(), ts);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), frames in 0u32..1000) {
            let _ = decode_chunk(&bytes, frames);
            let _ = decode_timestamps(&bytes);
            let _ = decode_bundle(&bytes);
            // Also past the checksum.
            let mut sealed = crc32(&bytes).to_le_bytes().to_vec();
            sealed.extend_from_slice(&bytes);
            let _ = decode_bundle(&sealed);
        }

        #[test]
        fn any_damaged_byte_of_a_bundle_is_found(pos in any::<usize>(), flip in 1u8..=255) {
            let chunk: Vec<u8> = (0..50).collect();
            let mut blob = encode_bundle([(3u64, chunk.as_slice()), (9, &chunk[..7])]);
            let i = pos % blob.len();
            blob[i] ^= flip;
            prop_assert!(decode_bundle(&blob).is_err());
        }

        #[test]
        fn bundles_round_trip(chunks in proptest::collection::btree_map(0u64..70_000, proptest::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let blob = encode_bundle(chunks.iter().map(|(&m, c)| (m, c.as_slice())));
            let back = decode_bundle(&blob).unwrap();
            prop_assert_eq!(back.len(), chunks.len());
            for ((m, c), (bm, bc)) in chunks.iter().zip(back) {
                prop_assert_eq!(*m, bm);
                prop_assert_eq!(c.as_slice(), bc);
            }
        }
    }
}
