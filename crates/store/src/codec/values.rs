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
//! of its zigzag scaled integer, or `1` + its 64 raw bits.
//!
//! *Shifting* streams ([`ValueEncoder::shifting`], the chunks written since
//! format 2) also drop the trailing zero bits that byte counts in pages or
//! KiB share: the first value's header has 4 more bits, a binary shift `s`
//! (12 when its scaled integer is a multiple of 4096, 10 for 1024, else 0),
//! and the integer state then counts in units of `2^s`, so a change of a few
//! pages costs a 9- or 19-bit code instead of a 19- or 36-bit one. A value
//! that is no multiple of `2^s` first writes `11111` `0` and the scale
//! nibble 14 ("shift down to 10", when it is a multiple of 1024) or 15
//! ("shift back to 0"); a scale change also takes the shift to 0.
//!
//! After a first value or a XOR-coded value, the integer state restarts
//! from that value with the smallest scale that represents it (delta 0, and
//! the first value's shift, or 0 after a XOR-coded one), computed
//! identically by encoder and decoder, so no extra bits are needed. NaN, infinities and
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

/// The binary shift of byte counts in pages (4 KiB).
const PAGE_SHIFT: u32 = 12;
/// The binary shift of byte counts in KiB (as /proc/meminfo gives them).
const KIB_SHIFT: u32 = 10;
/// The scale nibble that means "binary shift down to [`KIB_SHIFT`]" in
/// shifting streams.
const SHIFT_TO_KIB: u64 = 14;
/// The scale nibble that means "binary shift back to 0" in shifting streams.
const SHIFT_RESET: u64 = 15;

/// Integer state after a value: scale, last integer, last delta (both in
/// units of `2^shift`).
#[derive(Debug, Clone, Copy)]
struct IntState {
    scale: u32,
    last: i64,
    delta: i64,
    shift: u32,
}

impl IntState {
    /// The same state with the smaller shift `to`, if it fits.
    fn reshifted(self, to: u32) -> Option<IntState> {
        let f = 1i64.checked_shl(self.shift.checked_sub(to)?)?;
        Some(IntState {
            last: self.last.checked_mul(f)?,
            delta: self.delta.checked_mul(f)?,
            shift: to,
            ..self
        })
    }
}

/// The binary shift for scaled integer `m` in a shifting stream: pages,
/// KiB or none.
fn shift_for(m: i64) -> u32 {
    match m.trailing_zeros() {
        tz if tz >= PAGE_SHIFT => PAGE_SHIFT,
        tz if tz >= KIB_SHIFT => KIB_SHIFT,
        _ => 0,
    }
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
            shift: 0,
        });
    }
}

/// Encodes a stream of values into a bit stream; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ValueEncoder {
    out: BitWriter,
    state: State,
    shifts: bool,
}

impl ValueEncoder {
    /// An empty encoder (format-1 stream, also used for timestamps).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder of a *shifting* stream (chunks since format 2): see
    /// the module docs; decode with [`decode_values_shifting`].
    pub fn shifting() -> Self {
        ValueEncoder {
            shifts: true,
            ..Self::default()
        }
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
                    let shift = if self.shifts && m != 0 {
                        shift_for(m)
                    } else {
                        0
                    };
                    let z = zigzag(m >> shift);
                    let len = 64 - z.leading_zeros();
                    self.out.write_bit(false);
                    self.out.write_bits(scale as u64, 4);
                    if self.shifts {
                        self.out.write_bits(shift as u64, 4);
                    }
                    self.out.write_bits(len as u64, 6);
                    self.out.write_bits(z, len);
                    st.prev_bits = v.to_bits();
                    st.int = Some(IntState {
                        scale,
                        last: m >> shift,
                        delta: 0,
                        shift,
                    });
                }
                None => {
                    self.out.write_bit(true);
                    self.out.write_bits(v.to_bits(), 64);
                    st.restart(v);
                }
            }
            return;
        }
        if let Some(int) = st.int {
            if let Some((scale, m)) = smallest_scale(v, int.scale) {
                // The shift stays while the scale does and `m` is a multiple
                // of 2^shift; otherwise it steps down (to KiB or to 0) first,
                // and a scale change takes it to 0.
                let base = if scale != int.scale {
                    int.reshifted(0)
                } else if m.trailing_zeros() >= int.shift {
                    Some(int)
                } else {
                    int.reshifted(shift_for(m).min(KIB_SHIFT))
                };
                let factor = 10i64.pow(scale - int.scale);
                let scaled = base.and_then(|b| {
                    Some((
                        b.shift,
                        b.last.checked_mul(factor)?,
                        b.delta.checked_mul(factor)?,
                    ))
                });
                if let Some((shift, last, delta)) = scaled {
                    let ms = m >> shift;
                    let step = ms.checked_sub(last);
                    if let Some((step, dod)) = step.and_then(|d| Some((d, d.checked_sub(delta)?))) {
                        if scale != int.scale {
                            self.out.write_bits(0b11111, 5);
                            self.out.write_bit(false);
                            self.out.write_bits(scale as u64, 4);
                        } else if shift != int.shift {
                            self.out.write_bits(0b11111, 5);
                            self.out.write_bit(false);
                            let code = if shift == KIB_SHIFT {
                                SHIFT_TO_KIB
                            } else {
                                SHIFT_RESET
                            };
                            self.out.write_bits(code, 4);
                        }
                        write_dod(&mut self.out, dod);
                        st.int = Some(IntState {
                            scale,
                            last: ms,
                            delta: step,
                            shift,
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

/// Decodes `count` values of a format-1 stream ([`ValueEncoder::new`])
/// from `bytes`, calling `sink` with each.
pub fn decode_values(bytes: &[u8], count: u32, sink: impl FnMut(f64)) -> Result<(), DecodeError> {
    decode_stream(bytes, count, false, sink)
}

/// Decodes `count` values of a shifting stream ([`ValueEncoder::shifting`]).
pub fn decode_values_shifting(
    bytes: &[u8],
    count: u32,
    sink: impl FnMut(f64),
) -> Result<(), DecodeError> {
    decode_stream(bytes, count, true, sink)
}

fn decode_stream(
    bytes: &[u8],
    count: u32,
    shifts: bool,
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
                let shift = if shifts { r.read_bits(4)? as u32 } else { 0 };
                let len = r.read_bits(6)? as u32;
                if scale > MAX_SCALE || len > 55 {
                    return Err(DecodeError::BadCode);
                }
                let ms = unzigzag(r.read_bits(len)?);
                let m = ms.checked_mul(1 << shift).ok_or(DecodeError::BadCode)?;
                let v = unscale(m, scale);
                if shifts {
                    st.prev_bits = v.to_bits();
                    st.int = Some(IntState {
                        scale,
                        last: ms,
                        delta: 0,
                        shift,
                    });
                    sink(v);
                    continue;
                }
                v
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
                    let nibble = r.read_bits(4)?;
                    if shifts && (nibble == SHIFT_RESET || nibble == SHIFT_TO_KIB) {
                        let to = if nibble == SHIFT_TO_KIB { KIB_SHIFT } else { 0 };
                        if int.shift <= to {
                            return Err(DecodeError::BadCode);
                        }
                        int = int.reshifted(to).ok_or(DecodeError::BadCode)?;
                    } else {
                        let scale = nibble as u32;
                        if scale <= int.scale || scale > MAX_SCALE {
                            return Err(DecodeError::BadCode);
                        }
                        int = int.reshifted(0).ok_or(DecodeError::BadCode)?;
                        let factor = 10i64.pow(scale - int.scale);
                        int.last = int.last.checked_mul(factor).ok_or(DecodeError::BadCode)?;
                        int.delta = int.delta.checked_mul(factor).ok_or(DecodeError::BadCode)?;
                        int.scale = scale;
                    }
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
                    shift: int.shift,
                });
                let full = m.checked_mul(1 << int.shift).ok_or(DecodeError::BadCode)?;
                let v = unscale(full, int.scale);
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

    fn round_trip_shifting(values: &[f64]) -> (Vec<f64>, usize) {
        let mut enc = ValueEncoder::shifting();
        values.iter().for_each(|&v| enc.push(v));
        let n = enc.count();
        let bytes = enc.finish();
        let mut out = Vec::new();
        decode_values_shifting(&bytes, n, |v| out.push(v)).unwrap();
        (out, bytes.len())
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
            let _ = decode_values_shifting(&bytes, count, |_| {});
        }

        #[test]
        fn shifting_streams_round_trip_bit_exactly(values in proptest::collection::vec(value(), 0..300)) {
            prop_assert!(same_bits(&values, &round_trip_shifting(&values).0));
        }

        #[test]
        fn page_walks_round_trip_and_shrink(start in 1u64..1 << 30, steps in proptest::collection::vec(-300i64..300, 1..300), odd in any::<prop::sample::Index>(), decimals in any::<bool>()) {
            // RSS-like: multiples of 4096, with one value that is not (and
            // maybe a decimal one) somewhere: the shift must step back.
            let mut v = start as i64 * 4096;
            let mut values: Vec<f64> = steps.iter().map(|s| { v = (v + s * 4096).max(0); v as f64 }).collect();
            let i = odd.index(values.len());
            let plain_len = {
                let mut enc = ValueEncoder::new();
                values.iter().for_each(|&v| enc.push(v));
                enc.finish().len()
            };
            let (back, shifted_len) = round_trip_shifting(&values);
            prop_assert!(same_bits(&values, &back));
            prop_assert!(shifted_len <= plain_len, "{} > {}", shifted_len, plain_len);
            values[i] += if decimals { 0.5 } else { 1.0 };
            prop_assert!(same_bits(&values, &round_trip_shifting(&values).0));
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
    fn a_page_multiple_walk_costs_less_shifted() {
        let values: Vec<f64> = (0..120)
            .map(|i| ((10_000 + (i * 7919) % 200) * 4096) as f64)
            .collect();
        let mut plain = ValueEncoder::new();
        let mut shifted = ValueEncoder::shifting();
        for &v in &values {
            plain.push(v);
            shifted.push(v);
        }
        // Deltas of up to 200 pages: 36-bit codes plain, 19-bit shifted.
        assert!(
            shifted.len_bits() * 10 < plain.len_bits() * 7,
            "{} vs {}",
            shifted.len_bits(),
            plain.len_bits()
        );
        assert!(same_bits(&values, &round_trip_shifting(&values).0));
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
