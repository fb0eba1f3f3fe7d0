//! Any bytes as an ELF binary to index, and as a target's memory to read maps
//! from with a layout taken from the first bytes: no panic, no unbounded
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memlens_gomem::{
    count_tombstones, map_entries, parse_build_id_note, parse_debuglink, read_batch, read_map,
    read_maps, walk, DebugLink, DwarfIndex, EntryLayout, Limits, MapLayout, Memory, ReadError,
};

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
    // The separate-debug-file sections, and the ELF's own.
    let _ = parse_debuglink(data);
    let _ = parse_build_id_note(data);
    let link = DebugLink::from_elf(data);
    let _ = link.candidates("/usr/bin/x");
    let _ = link.matches(data);
    if let Ok(index) = DwarfIndex::from_elf("fuzz", data) {
        let mem = Bytes(data);
        for m in &index.static_maps() {
            let _ = read_map(&mem, m.addr, &m.layout);
        }
        let limits = Limits {
            max_visits: 10_000,
            max_scan_bytes: 1 << 20,
            ..Limits::default()
        };
        let _ = walk(&index, &mem, 0, &limits);
    }
    if data.len() >= 8 {
        let o = |i: usize| u64::from(data[i] % 64);
        let layout = if data[0] & 1 == 0 {
            MapLayout::Classic {
                count_offset: o(1),
                flags_offset: o(4),
                b_offset: o(2),
                noverflow_offset: o(3),
                buckets_offset: o(6),
                oldbuckets_offset: o(7),
                nevacuate_offset: o(4),
            }
        } else {
            MapLayout::Swiss {
                used_offset: o(1),
                dir_ptr_offset: o(2),
                dir_len_offset: o(3),
                table_capacity_offset: o(4),
                table_used_offset: o(5),
                table_groups_offset: o(6),
                table_length_mask_offset: o(7),
                tombstone_possible_offset: (data[6] & 1 == 0).then(|| o(3)),
            }
        };
        let mem = Bytes(data);
        let var = u64::from(data[5] % 32);
        if let Ok(s) = read_map(&mem, var, &layout) {
            let _ = s.load();
        }
        // Read in one batch, maps at several places (overlapping, repeated,
        // past the end) read as each read alone: the bytes do not change.
        let vars: Vec<(u64, MapLayout)> = data
            .iter()
            .take(16)
            .map(|b| (u64::from(*b) * 3, layout))
            .chain([(u64::MAX - 4, layout), (var, layout)])
            .collect();
        for (batched, (addr, layout)) in read_maps(&mem, &vars).iter().zip(&vars) {
            assert_eq!(batched, &read_map(&mem, *addr, layout));
        }
        let ranges: Vec<(u64, usize)> = data
            .chunks(2)
            .take(32)
            .map(|c| (u64::from(c[0]) * 5, usize::from(*c.last().unwrap_or(&0) % 40)))
            .collect();
        let batch = read_batch(&mem, &ranges);
        for (i, (addr, len)) in ranges.iter().enumerate() {
            let mut alone = vec![0u8; *len];
            let expect = mem.read(*addr, &mut alone).map(|()| alone);
            assert_eq!(batch.get(i).map(<[u8]>::to_vec), expect);
        }
        // Buckets or groups laid out by the next bytes.
        let entries = EntryLayout {
            group_bytes: u64::from(data[7]) * 2,
            ctrl_offset: o(6) % 16,
            key_offset: o(1),
            key_stride: o(2),
            value_offset: o(3),
            value_stride: o(4),
            overflow_offset: (data[0] & 2 == 0).then(|| o(5)),
            key_ty: None,
            value_ty: None,
        };
        let _ = count_tombstones(&mem, var, &layout, &entries, 1 << 20);
        let _ = map_entries(&mem, var, &layout, &entries, 10_000, 1 << 20);
    }
});
