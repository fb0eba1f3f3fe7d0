//! Any bytes as an ELF binary to index, and as a target's memory to read maps
//! from with a layout taken from the first bytes: no panic, no unbounded
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memlens_gomem::{read_map, DwarfIndex, MapLayout, Memory, ReadError};

/// The fuzz input as an address space starting at 0.
struct Bytes<'a>(&'a [u8]);

impl Memory for Bytes<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let unmapped = || ReadError::Unmapped {
            addr,
            len_bytes: buf.len(),
            reason: "outside the input".into(),
        };
        let start = usize::try_from(addr).map_err(|_| unmapped())?;
        let end = start.checked_add(buf.len()).ok_or_else(unmapped)?;
        let src = self.0.get(start..end).ok_or_else(unmapped)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = DwarfIndex::from_elf("fuzz", data) {
        let mem = Bytes(data);
        for m in &index.maps {
            let _ = read_map(&mem, m.addr, &m.layout);
        }
    }
    if data.len() >= 8 {
        let o = |i: usize| u64::from(data[i] % 64);
        let layout = if data[0] & 1 == 0 {
            MapLayout::Classic {
                count_offset: o(1),
                b_offset: o(2),
                noverflow_offset: o(3),
            }
        } else {
            MapLayout::Swiss {
                used_offset: o(1),
                dir_ptr_offset: o(2),
                dir_len_offset: o(3),
                table_capacity_offset: o(4),
            }
        };
        let mem = Bytes(data);
        if let Ok(s) = read_map(&mem, u64::from(data[5] % 32), &layout) {
            let _ = s.load();
        }
    }
});
