//! The head-frame blob: one sampling instant's `(series id, value)` pairs as
//! written by `append_frame`, before they are sealed into chunks.
//!
//! Layout: varint pair count, then per pair the varint gap to the previous
//! series id (ids strictly ascending) and the value's 8 bytes little-endian.

use super::bits::{get_varint, put_varint};

/// Why a frame blob could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The same series appears twice in one frame.
    DuplicateSeries(u64),
    /// The blob ends inside a pair or has bytes after the last one.
    Malformed(&'static str),
}

/// Encodes `samples`, which must be sorted by series id without duplicates.
pub fn encode_frame(samples: &[(u64, f64)]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(2 + samples.len() * 10);
    put_varint(&mut out, samples.len() as u64);
    let mut prev: Option<u64> = None;
    for &(id, value) in samples {
        let gap = match prev {
            None => id,
            Some(p) if id > p => id - p,
            Some(_) => return Err(FrameError::DuplicateSeries(id)),
        };
        put_varint(&mut out, gap);
        out.extend_from_slice(&value.to_le_bytes());
        prev = Some(id);
    }
    Ok(out)
}

/// Decodes a frame blob into its `(series id, value)` pairs.
pub fn decode_frame(blob: &[u8]) -> Result<Vec<(u64, f64)>, FrameError> {
    let mut input = blob;
    let count = get_varint(&mut input).map_err(|_| FrameError::Malformed("no pair count"))?;
    if count > input.len() as u64 / 9 {
        return Err(FrameError::Malformed("pair count larger than the blob"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut id = 0u64;
    for i in 0..count {
        let gap = get_varint(&mut input).map_err(|_| FrameError::Malformed("cut series id"))?;
        if i > 0 && gap == 0 {
            return Err(FrameError::Malformed("series ids not ascending"));
        }
        id = id
            .checked_add(gap)
            .ok_or(FrameError::Malformed("series id overflows"))?;
        let (bytes, rest) = input
            .split_first_chunk::<8>()
            .ok_or(FrameError::Malformed("cut value"))?;
        out.push((id, f64::from_le_bytes(*bytes)));
        input = rest;
    }
    if !input.is_empty() {
        return Err(FrameError::Malformed("bytes after the last pair"));
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
        fn frames_round_trip(ids in proptest::collection::btree_set(any::<u64>(), 0..200), v in any::<f64>()) {
            let samples: Vec<(u64, f64)> = ids.iter().map(|&id| (id, v * id as f64)).collect();
            let back = decode_frame(&encode_frame(&samples).unwrap()).unwrap();
            prop_assert_eq!(back.len(), samples.len());
            for (a, b) in back.iter().zip(&samples) {
                prop_assert_eq!(a.0, b.0);
                prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_frame(&bytes);
        }
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            encode_frame(&[(3, 1.0), (3, 2.0)]),
            Err(FrameError::DuplicateSeries(3))
        );
    }
}
