//! The value encoding of one series chunk (also used for the shared frame
//! timestamps of a chunk group).
//!
//! Most memory metrics are integers (bytes, counts) or decimals with a few
//! digits (CPU seconds in 1/100 s). Each value is therefore tried as a
//! *scaled integer* `m / 10^k` (exact, bit for bit) and coded as the
//! delta-of-delta of `m`, Gorilla style, in a prefix code:
//!
//! | code | meaning |
//! |---|---|
//! | `0` | delta-of-delta is 0 (value unchanged, or a counter at a steady rate) |
//! | `10` + 7 bits | zigzag delta-of-delta < 2^7 |
//! | `110` + 16 bits | < 2^16 |
//! | `1110` + 32 bits | < 2^32 |
//! | `11110` + 64 bits | any other delta-of-delta |
//! | `11111` `0` + 4 bits | the scale `k` grows to the given value, then the value's int code follows |
//! | `11111` `1` + XOR | a float that is no scaled integer: Gorilla XOR against the previous value |
//!
//! The first value is `0` + 4 bits scale + 6 bits length `n` + the `n` bits
//! of its zigzag scaled integer, or `1` + its 64 raw bits. After a first value or a
//! XOR-coded value, the integer state restarts from that value with the
//! smallest scale that represents it (delta 0), computed identically by
//! encoder and decoder, so no extra bits are needed. NaN, infinities and
//! -0.0 always round-trip exactly (they go through the XOR path).

use super::bits::{unzigzag, zigzag, BitReader, BitWriter, OutOfBits};

/// Largest decimal scale exponent tried (values with up to 9 decimals).
const MAX_SCALE: u32 = 9;
/// 10^k for k = 0..=9, all exact in f64.
const POW10_F: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Integers up to 2^53 are exact in f64.
const MAX_EXACT: i64 = 1 << 53;

/// `v` as `m` with `m / 10^k == v` exactly, if there is such an `m`.
fn as_scaled(v: f64, k: u32) -> Option<i64> {
    let scaled = v * POW10_F[k as usize];
    if !scaled.is_finite() || scaled.abs() > MAX_EXACT as f64 {
        return None;
    }
    let m = scaled.round() as i64;
    (unscale(m, k).to_bits() == v.to_bits()).then_some(m)
}

/// The value `m / 10^k`.
fn unscale(m: i64, k: u32) -> f64 {
    m as f64 / POW10_F[k as usize]
}

/// The smallest scale at or above `from` that represents `v`, and `m`.
fn smallest_scale(v: f64, from: u32) -> Option<(u32, i64)> {
    (from..=MAX_SCALE).find_map(|k| as_scaled(v, k).map(|m| (k, m)))
}

/// Integer state after a value: scale, last integer, last delta.
#[derive(Debug, Clone, Copy)]
struct IntState {
    scale: u32,
    last: i64,
    delta: i64,
}

/// Shared state of encoder and decoder (they evolve identically).
#[derive(Debug, Clone, Default)]
struct State {
    count: u32,
    prev_bits: u64,
    int: Option<IntState>,
    /// Leading zeros and significant bit count of the last XOR window.
    window: Option<(u32, u32)>,
}

impl State {
    /// Restart the integer state from `v` (after a raw or XOR-coded value).
    fn restart(&mut self, v: f64) {
        self.prev_bits = v.to_bits();
        self.int = smallest_scale(v, 0).map(|(scale, last)| IntState {
            scale,
            last,
            delta: 0,
        });
    }
}

/// Encodes a stream of values into a bit stream; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ValueEncoder {
    out: BitWriter,
    state: State,
}

impl ValueEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values pushed.
    pub fn count(&self) -> u32 {
        self.state.count
    }

    /// Bits written so far.
    pub fn len_bits(&self) -> u64 {
        self.out.len_bits()
    }

    /// Appends one value.
    pub fn push(&mut self, v: f64) {
        let st = &mut self.state;
        st.count += 1;
        if st.count == 1 {
            match smallest_scale(v, 0) {
                Some((scale, m)) => {
                    let z = zigzag(m);
                    let len = 64 - z.leading_zeros();
                    self.out.write_bit(false);
                    self.out.write_bits(scale as u64, 4);
                    self.out.write_bits(len as u64, 6);
                    self.out.write_bits(z, len);
                }
                None => {
                    self.out.write_bit(true);
                    self.out.write_bits(v.to_bits(), 64);
                }
            }
            st.restart(v);
            return;
        }
        if let Some(int) = st.int {
            if let Some((scale, m)) = smallest_scale(v, int.scale) {
                let factor = 10i64.pow(scale - int.scale);
                if let (Some(last), Some(delta)) =
                    (int.last.checked_mul(factor), int.delta.checked_mul(factor))
                {
                    let step = m.checked_sub(last);
                    if let Some((step, dod)) = step.and_then(|d| Some((d, d.checked_sub(delta)?))) {
                        if scale != int.scale {
                            self.out.write_bits(0b11111, 5);
                            self.out.write_bit(false);
                            self.out.write_bits(scale as u64, 4);
                        }
                        write_dod(&mut self.out, dod);
                        st.int = Some(IntState {
                            scale,
                            last: m,
                            delta: step,
                        });
                        st.prev_bits = v.to_bits();
                        return;
                    }
                }
            }
        }
        self.out.write_bits(0b11111, 5);
        self.out.write_bit(true);
        let xor = st.prev_bits ^ v.to_bits();
        if xor == 0 {
            self.out.write_bit(false);
        } else {
            self.out.write_bit(true);
            let leading = xor.leading_zeros();
            let trailing = xor.trailing_zeros();
            match st.window {
                Some((lead, sig)) if leading >= lead && trailing >= 64 - lead - sig => {
                    self.out.write_bit(false);
                    self.out.write_bits(xor >> (64 - lead - sig), sig);
                }
                _ => {
                    let sig = 64 - leading - trailing;
                    self.out.write_bit(true);
                    self.out.write_bits(leading as u64, 6);
                    self.out.write_bits((sig - 1) as u64, 6);
                    self.out.write_bits(xor >> trailing, sig);
                    st.window = Some((leading, sig));
                }
            }
        }
        st.restart(v);
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

fn write_dod(out: &mut BitWriter, dod: i64) {
    let z = zigzag(dod);
    if z == 0 {
        out.write_bit(false);
    } else if z < 1 << 7 {
        out.write_bits(0b10, 2);
        out.write_bits(z, 7);
    } else if z < 1 << 16 {
        out.write_bits(0b110, 3);
        out.write_bits(z, 16);
    } else if z < 1 << 32 {
        out.write_bits(0b1110, 4);
        out.write_bits(z, 32);
    } else {
        out.write_bits(0b11110, 5);
        out.write_bits(z, 64);
    }
}

/// Why a value stream could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bits ended before `count` values were read.
    Truncated,
    /// A code that the encoder never writes (bad scale, overflow).
    BadCode,
}

impl From<OutOfBits> for DecodeError {
    fn from(_: OutOfBits) -> Self {
        DecodeError::Truncated
    }
}

/// Decodes `count` values from `bytes`, calling `sink` with each.
pub fn decode_values(
    bytes: &[u8],
    count: u32,
    mut sink: impl FnMut(f64),
) -> Result<(), DecodeError> {
    let mut r = BitReader::new(bytes);
    let mut st = State::default();
    for i in 0..count {
        let v = if i == 0 {
            if r.read_bit()? {
                f64::from_bits(r.read_bits(64)?)
            } else {
                let scale = r.read_bits(4)? as u32;
                let len = r.read_bits(6)? as u32;
                if scale > MAX_SCALE || len > 55 {
                    return Err(DecodeError::BadCode);
                }
                unscale(unzigzag(r.read_bits(len)?), scale)
            }
        } else {
            let mut ones = 0;
            while ones < 5 && r.read_bit()? {
                ones += 1;
            }
            if ones == 5 && r.read_bit()? {
                decode_xor(&mut r, &mut st)?
            } else {
                let mut int = st.int.ok_or(DecodeError::BadCode)?;
                if ones == 5 {
                    let scale = r.read_bits(4)? as u32;
                    if scale <= int.scale || scale > MAX_SCALE {
                        return Err(DecodeError::BadCode);
                    }
                    let factor = 10i64.pow(scale - int.scale);
                    int.last = int.last.checked_mul(factor).ok_or(DecodeError::BadCode)?;
                    int.delta = int.delta.checked_mul(factor).ok_or(DecodeError::BadCode)?;
                    int.scale = scale;
                    ones = 0;
                    while ones < 5 && r.read_bit()? {
                        ones += 1;
                    }
                    if ones == 5 {
                        return Err(DecodeError::BadCode);
                    }
                }
                let z = match ones {
                    0 => 0,
                    1 => r.read_bits(7)?,
                    2 => r.read_bits(16)?,
                    3 => r.read_bits(32)?,
                    _ => r.read_bits(64)?,
                };
                let delta = int
                    .delta
                    .checked_add(unzigzag(z))
                    .ok_or(DecodeError::BadCode)?;
                let m = int.last.checked_add(delta).ok_or(DecodeError::BadCode)?;
                st.int = Some(IntState {
                    scale: int.scale,
                    last: m,
                    delta,
                });
                let v = unscale(m, int.scale);
                st.prev_bits = v.to_bits();
                sink(v);
                continue;
            }
        };
        if i == 0 {
            st.restart(v);
        }
        sink(v);
    }
    Ok(())
}

fn decode_xor(r: &mut BitReader<'_>, st: &mut State) -> Result<f64, DecodeError> {
    let xor = if !r.read_bit()? {
        0
    } else if !r.read_bit()? {
        let (lead, sig) = st.window.ok_or(DecodeError::BadCode)?;
        r.read_bits(sig)? << (64 - lead - sig)
    } else {
        let lead = r.read_bits(6)? as u32;
        let sig = r.read_bits(6)? as u32 + 1;
        if lead + sig > 64 {
            return Err(DecodeError::BadCode);
        }
        st.window = Some((lead, sig));
        r.read_bits(sig)? << (64 - lead - sig)
    };
    let v = f64::from_bits(st.prev_bits ^ xor);
    st.restart(v);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> Vec<f64> {
        let mut enc = ValueEncoder::new();
        values.iter().for_each(|&v| enc.push(v));
        let n = enc.count();
        let bytes = enc.finish();
        let mut out = Vec::new();
        decode_values(&bytes, n, |v| out.push(v)).unwrap();
        out
    }

    fn same_bits(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Values like the ones memlens stores: mixes of integers, decimals,
    /// floats, and the special values.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
            (0u64..1 << 40).prop_map(|v| (v * 4096) as f64),
            (0i64..100_000, 0u32..=10).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
            Just(f64::NAN),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::MAX),
            Just(9.007199254740993e15),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_values_round_trip_bit_exactly(values in proptest::collection::vec(value(), 0..300)) {
            prop_assert!(same_bits(&values, &round_trip(&values)));
        }

        #[test]
        fn random_walks_round_trip(start in 0i64..1 << 40, steps in proptest::collection::vec(-5000i64..5000, 0..300)) {
            let mut v = start;
            let values: Vec<f64> = steps.iter().map(|s| { v += s; v as f64 / 100.0 }).collect();
            prop_assert!(same_bits(&values, &round_trip(&values)));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), count in 0u32..500) {
            let _ = decode_values(&bytes, count, |_| {});
        }
    }

    #[test]
    fn constant_series_cost_one_bit_per_value() {
        let mut enc = ValueEncoder::new();
        for _ in 0..1000 {
            enc.push(123_456_789.0);
        }
        // 123456789 zigzags to 246913578, 28 bits: 1 + 4 + 6 + 28 bits first.
        assert_eq!(enc.len_bits(), 39 + 999);
    }

    #[test]
    fn decimal_scale_grows_inside_a_chunk() {
        let values = [0.0, 1.0, 1.5, 1.52, 1.53, 2.0, 0.1 + 0.2, 7.0];
        assert!(same_bits(&values, &round_trip(&values)));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut enc = ValueEncoder::new();
        for v in [1.0, 2.5, 1e300, 4.0] {
            enc.push(v);
        }
        let bytes = enc.finish();
        let cut = &bytes[..bytes.len() - 3];
        assert_eq!(decode_values(cut, 4, |_| {}), Err(DecodeError::Truncated));
    }
}
