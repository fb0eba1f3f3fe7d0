//! Bit-level writer and reader (most significant bit first) and LEB128
//! varints, the primitives of the chunk encodings.

/// Appends bits, most significant first, to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used_bits: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `count` bits of `value` (`count` ≤ 64), high bit first.
    pub fn write_bits(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 64);
        let mut remaining = count;
        while remaining > 0 {
            if self.used_bits == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.used_bits;
            let take = free.min(remaining);
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (free - take);
            self.used_bits = (self.used_bits + take) % 8;
            remaining -= take;
        }
    }

    /// Writes one bit.
    pub fn write_bit(&mut self, bit: bool) {
        self.write_bits(bit as u64, 1);
    }

    /// Number of bits written so far.
    pub fn len_bits(&self) -> u64 {
        let full = self.bytes.len() as u64 * 8;
        if self.used_bits == 0 {
            full
        } else {
            full - (8 - self.used_bits) as u64
        }
    }

    /// The written bytes; the last byte is padded with zero bits.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads bits written by [`BitWriter`]. Reading past the end is an error,
/// never a panic.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos_bits: u64,
}

/// The input ended before the encoding said it would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBits;

impl<'a> BitReader<'a> {
    /// A reader over `bytes`, starting at the first bit.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos_bits: 0 }
    }

    /// Reads `count` bits (`count` ≤ 64) as the low bits of a `u64`.
    pub fn read_bits(&mut self, count: u32) -> Result<u64, OutOfBits> {
        debug_assert!(count <= 64);
        if self.pos_bits + count as u64 > self.bytes.len() as u64 * 8 {
            return Err(OutOfBits);
        }
        let mut value = 0u64;
        let mut remaining = count;
        while remaining > 0 {
            let byte = self.bytes[(self.pos_bits / 8) as usize];
            let offset = (self.pos_bits % 8) as u32;
            let avail = 8 - offset;
            let take = avail.min(remaining);
            let chunk = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            value = if take == 64 { 0 } else { value << take } | chunk as u64;
            self.pos_bits += take as u64;
            remaining -= take;
        }
        Ok(value)
    }

    /// Reads one bit.
    pub fn read_bit(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.read_bits(1)? == 1)
    }
}

/// Appends `value` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 varint from the front of `input`, advancing it.
pub fn get_varint(input: &mut &[u8]) -> Result<u64, OutOfBits> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(OutOfBits)?;
        *input = rest;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(OutOfBits)
}

/// Maps a signed integer to an unsigned one with small magnitudes first
/// (0, -1, 1, -2, ...).
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib), with a
/// table built at compile time.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..64)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write_bits(v, n);
            }
            let total: u64 = items.iter().map(|&(_, n)| n as u64).sum();
            prop_assert_eq!(w.len_bits(), total);
            let bytes = w.into_bytes();
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n).unwrap(), v & mask);
            }
        }

        #[test]
        fn varint_and_zigzag_round_trip(values in proptest::collection::vec(any::<i64>(), 0..64)) {
            let mut out = Vec::new();
            for &v in &values {
                put_varint(&mut out, zigzag(v));
            }
            let mut input = out.as_slice();
            for &v in &values {
                prop_assert_eq!(unzigzag(get_varint(&mut input).unwrap()), v);
            }
            prop_assert!(input.is_empty());
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_values() {
        // The check value of CRC-32/ISO-HDLC for "123456789", and what
        // Python's zlib.crc32(b"memlens") prints.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"memlens"), 0x4308_F891);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read_bits(8), Ok(0xff));
        assert_eq!(r.read_bit(), Err(OutOfBits));
        let mut input: &[u8] = &[0x80, 0x80];
        assert_eq!(get_varint(&mut input), Err(OutOfBits));
    }
}
