//! The head-frame blob: one instant's `(series id, value)` pairs as written
//! by a commit, before the head is sealed into chunks.
//!
//! Frames of one head form a chain: a value is coded against the same
//! series' previous value in the head ([`FrameState`]), so the first frame
//! after a seal stands alone and every later one needs the ones before it
//! (they are written and deleted together, in one transaction each, so the
//! chain never has holes).
//!
//! Layout: varint pair count, then per pair the varint gap to the previous
//! series id (ids strictly ascending) and a varint `payload << 2 | kind`:
//!
//! | kind | value |
//! |---|---|
//! | 0 | previous value + unzigzag(payload) (both integers below 2^53) |
//! | 1 | the 8 bytes little-endian that follow (payload 0) |
//! | 2 | bit for bit the previous value (payload 0) |
//! | 3 | the integer unzigzag(payload) |

use super::bits::{get_varint, put_varint, unzigzag, zigzag};
use std::collections::HashMap;

/// Integers up to 2^53 are exact in f64.
const MAX_EXACT: f64 = (1u64 << 53) as f64;

/// Why a frame blob could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The same series appears twice in one frame.
    DuplicateSeries(u64),
    /// The blob ends inside a pair or has bytes after the last one.
    Malformed(&'static str),
}

/// The last value of each series in the head so far, shared by encoder and
/// decoder.
#[derive(Debug, Clone, Default)]
pub struct FrameState {
    last_bits: HashMap<u64, u64>,
}

impl FrameState {
    /// An empty state (start of a head).
    pub fn new() -> Self {
        Self::default()
    }
}

/// `v` as an exact integer, if it is one (and not -0.0).
fn as_int(v: f64) -> Option<i64> {
    (v.fract() == 0.0 && v.abs() <= MAX_EXACT && v.to_bits() != (-0.0f64).to_bits())
        .then_some(v as i64)
}

/// Encodes `samples`, which must be sorted by series id without duplicates,
/// against `state`, and records them in `state`.
pub fn encode_frame(samples: &[(u64, f64)], state: &mut FrameState) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(2 + samples.len() * 3);
    put_varint(&mut out, samples.len() as u64);
    let mut prev: Option<u64> = None;
    for &(id, value) in samples {
        let gap = match prev {
            None => id,
            Some(p) if id > p => id - p,
            Some(_) => return Err(FrameError::DuplicateSeries(id)),
        };
        put_varint(&mut out, gap);
        let last = state.last_bits.insert(id, value.to_bits());
        let int = as_int(value);
        match (last, int) {
            (Some(bits), _) if bits == value.to_bits() => put_varint(&mut out, 2),
            (Some(bits), Some(m)) if as_int(f64::from_bits(bits)).is_some() => {
                let d = m - f64::from_bits(bits) as i64;
                put_varint(&mut out, zigzag(d) << 2);
            }
            (_, Some(m)) if zigzag(m) < 1 << 62 => put_varint(&mut out, zigzag(m) << 2 | 3),
            _ => {
                put_varint(&mut out, 1);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        prev = Some(id);
    }
    Ok(out)
}

/// Decodes a frame blob into its `(series id, value)` pairs against
/// `state`, and records them in `state`.
pub fn decode_frame(blob: &[u8], state: &mut FrameState) -> Result<Vec<(u64, f64)>, FrameError> {
    let mut input = blob;
    let count = get_varint(&mut input).map_err(|_| FrameError::Malformed("no pair count"))?;
    if count > input.len() as u64 / 2 {
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
        let code = get_varint(&mut input).map_err(|_| FrameError::Malformed("cut value"))?;
        let last = state.last_bits.get(&id).map(|&b| f64::from_bits(b));
        let value = match code & 3 {
            0 => {
                let base = last.and_then(as_int).ok_or(FrameError::Malformed(
                    "integer delta without a previous integer",
                ))?;
                let m = base
                    .checked_add(unzigzag(code >> 2))
                    .ok_or(FrameError::Malformed("integer overflows"))?;
                m as f64
            }
            1 => {
                let (bytes, rest) = input
                    .split_first_chunk::<8>()
                    .ok_or(FrameError::Malformed("cut value"))?;
                input = rest;
                f64::from_le_bytes(*bytes)
            }
            2 => last.ok_or(FrameError::Malformed("repeat without a previous value"))?,
            _ => unzigzag(code >> 2) as f64,
        };
        state.last_bits.insert(id, value.to_bits());
        out.push((id, value));
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

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            (0u64..1 << 40).prop_map(|v| (v * 4096) as f64),
            Just(f64::NAN),
            Just(-0.0),
            Just(9.007199254740992e15),
            Just(-9.007199254740992e15),
            Just(1e300),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn frame_chains_round_trip(
            frames in proptest::collection::vec(
                proptest::collection::btree_map(0u64..50, value(), 0..30), 1..12),
        ) {
            let mut enc = FrameState::new();
            let mut dec = FrameState::new();
            for frame in &frames {
                let samples: Vec<(u64, f64)> = frame.iter().map(|(&k, &v)| (k, v)).collect();
                let blob = encode_frame(&samples, &mut enc).unwrap();
                let back = decode_frame(&blob, &mut dec).unwrap();
                prop_assert_eq!(back.len(), samples.len());
                for (a, b) in back.iter().zip(&samples) {
                    prop_assert_eq!(a.0, b.0);
                    prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
                }
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut state = FrameState::new();
            let _ = decode_frame(&bytes, &mut state);
            let _ = decode_frame(&bytes, &mut state);
        }
    }

    #[test]
    fn unchanged_and_small_steps_are_small() {
        let mut enc = FrameState::new();
        let first: Vec<(u64, f64)> = (0..100).map(|i| (i, 1e8 + i as f64 * 4096.0)).collect();
        let a = encode_frame(&first, &mut enc).unwrap();
        let same = encode_frame(&first, &mut enc).unwrap();
        // 1 byte count prefix + per pair 1 byte gap + 1 byte code.
        assert_eq!(same.len(), 1 + 100 * 2);
        assert!(a.len() <= 1 + 100 * 6, "{}", a.len());
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            encode_frame(&[(3, 1.0), (3, 2.0)], &mut FrameState::new()),
            Err(FrameError::DuplicateSeries(3))
        );
    }
}
