//! `/proc/PID/smaps_rollup`.
//!
//! Reading this file walks every mapping of the target under its mmap lock: on a
//! huge process it costs real time and can stall the target's page faults, so
//! readers must budget it. Parsing the text is cheap.

use super::kb_value_to_bytes;
use crate::ParseError;

/// `/proc/PID/smaps_rollup`: the `smaps` counters summed over all mappings, in bytes.
///
/// Counters the kernel added later are `Option` (`None` on kernels that predate
/// them): `Pss_Anon`/`Pss_File`/`Pss_Shmem` (5.8), `Pss_Dirty` (6.0), `KSM` (6.x).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmapsRollup {
    /// `Rss`: resident memory of all mappings.
    pub rss_bytes: u64,
    /// `Pss`: the proportional set size (each shared page divided among its users).
    pub pss_bytes: u64,
    /// `Pss_Dirty`: the dirty part of PSS.
    pub pss_dirty_bytes: Option<u64>,
    /// `Pss_Anon`: PSS of anonymous memory.
    pub pss_anon_bytes: Option<u64>,
    /// `Pss_File`: PSS of file-backed memory.
    pub pss_file_bytes: Option<u64>,
    /// `Pss_Shmem`: PSS of shared memory.
    pub pss_shmem_bytes: Option<u64>,
    /// `Shared_Clean`: clean pages also mapped by other processes.
    pub shared_clean_bytes: u64,
    /// `Shared_Dirty`: dirty pages also mapped by other processes.
    pub shared_dirty_bytes: u64,
    /// `Private_Clean`: clean pages mapped by this process only.
    pub private_clean_bytes: u64,
    /// `Private_Dirty`: dirty pages mapped by this process only.
    pub private_dirty_bytes: u64,
    /// `Referenced`: pages marked referenced (accessed recently).
    pub referenced_bytes: u64,
    /// `Anonymous`: pages not backed by a file.
    pub anonymous_bytes: u64,
    /// `KSM`: pages merged by kernel same-page merging.
    pub ksm_bytes: Option<u64>,
    /// `LazyFree`: pages freed with `MADV_FREE`, reclaimable without swap.
    pub lazy_free_bytes: Option<u64>,
    /// `AnonHugePages`: anonymous memory backed by transparent huge pages.
    pub anon_huge_pages_bytes: Option<u64>,
    /// `Swap`: anonymous memory swapped out.
    pub swap_bytes: u64,
    /// `SwapPss`: the proportional share of swap.
    pub swap_pss_bytes: u64,
    /// `Locked`: memory locked in RAM (`mlock`).
    pub locked_bytes: u64,
}

impl SmapsRollup {
    /// Parses smaps_rollup text; `input` names it in errors.
    ///
    /// The first line must be the `start-end ---p 00000000 00:00 0 [rollup]`
    /// header; every other line must be `Name: N kB`. Unknown names are checked
    /// and skipped. `Rss`, `Pss`, the four `Shared_`/`Private_` lines,
    /// `Referenced`, `Anonymous`, `Swap`, `SwapPss` and `Locked` must be there.
    /// A process without memory (a kernel thread, a zombie) has an empty file,
    /// which is an error here: callers treat it as "no data".
    pub fn parse(input: &str, text: &str) -> Result<SmapsRollup, ParseError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, header)) if header.trim_end().ends_with("[rollup]") => {}
            Some((index, header)) => {
                return Err(ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected the \"... [rollup]\" header, found {header:?}"),
                ))
            }
            None => return Err(ParseError::new(input, "empty")),
        }
        let mut found: [Option<u64>; KEYS.len()] = [None; KEYS.len()];
        for (index, line) in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected \"Name: N kB\", found {line:?}"),
                )
            })?;
            let bytes = kb_value_to_bytes(input, index + 1, name, value)?;
            if let Some(slot) = KEYS.iter().position(|k| *k == name) {
                found[slot] = Some(bytes);
            }
        }
        let [rss, pss, pss_dirty, pss_anon, pss_file, pss_shmem, shared_clean, shared_dirty, private_clean, private_dirty, referenced, anonymous, ksm, lazy_free, anon_huge_pages, swap, swap_pss, locked] =
            found;
        let need = |value: Option<u64>, name: &str| {
            value.ok_or_else(|| ParseError::new(input, format!("no {name} line (cut short?)")))
        };
        Ok(SmapsRollup {
            rss_bytes: need(rss, "Rss")?,
            pss_bytes: need(pss, "Pss")?,
            pss_dirty_bytes: pss_dirty,
            pss_anon_bytes: pss_anon,
            pss_file_bytes: pss_file,
            pss_shmem_bytes: pss_shmem,
            shared_clean_bytes: need(shared_clean, "Shared_Clean")?,
            shared_dirty_bytes: need(shared_dirty, "Shared_Dirty")?,
            private_clean_bytes: need(private_clean, "Private_Clean")?,
            private_dirty_bytes: need(private_dirty, "Private_Dirty")?,
            referenced_bytes: need(referenced, "Referenced")?,
            anonymous_bytes: need(anonymous, "Anonymous")?,
            ksm_bytes: ksm,
            lazy_free_bytes: lazy_free,
            anon_huge_pages_bytes: anon_huge_pages,
            swap_bytes: need(swap, "Swap")?,
            swap_pss_bytes: need(swap_pss, "SwapPss")?,
            locked_bytes: need(locked, "Locked")?,
        })
    }

    /// The unique set size: memory only this process maps (`Private_Clean` +
    /// `Private_Dirty`), i.e. what killing it would give back, swap aside.
    pub fn uss_bytes(&self) -> u64 {
        self.private_clean_bytes
            .saturating_add(self.private_dirty_bytes)
    }
}

/// The lines kept, in the order of the destructuring in [`SmapsRollup::parse`].
const KEYS: [&str; 18] = [
    "Rss",
    "Pss",
    "Pss_Dirty",
    "Pss_Anon",
    "Pss_File",
    "Pss_Shmem",
    "Shared_Clean",
    "Shared_Dirty",
    "Private_Clean",
    "Private_Dirty",
    "Referenced",
    "Anonymous",
    "KSM",
    "LazyFree",
    "AnonHugePages",
    "Swap",
    "SwapPss",
    "Locked",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GO: &str = include_str!("../../testdata/proc/linux6.18-smaps_rollup-go1.19.txt");

    #[test]
    fn captured_go_process() {
        let r = SmapsRollup::parse("smaps_rollup", GO).unwrap();
        // Cross-checked at capture against /proc/PID/smaps read right after, summed
        // with awk: Rss 14520, Pss 13690 (the rollup rounds once, smaps per VMA),
        // Private_Clean 0, Private_Dirty 13552, Shared_Clean 968, Anonymous 9184;
        // `ps -o rss=` printed 14520 and status said RssAnon 9184 kB.
        assert_eq!(r.rss_bytes, 14520 * 1024);
        assert_eq!(r.pss_bytes, 13693 * 1024);
        assert_eq!(r.pss_dirty_bytes, Some(13552 * 1024));
        assert_eq!(r.pss_anon_bytes, Some(9184 * 1024));
        assert_eq!(r.pss_file_bytes, Some(4509 * 1024));
        assert_eq!(r.pss_shmem_bytes, Some(0));
        assert_eq!(r.shared_clean_bytes, 968 * 1024);
        assert_eq!(r.shared_dirty_bytes, 0);
        assert_eq!(r.private_clean_bytes, 0);
        assert_eq!(r.private_dirty_bytes, 13552 * 1024);
        assert_eq!(r.referenced_bytes, 14520 * 1024);
        assert_eq!(r.anonymous_bytes, 9184 * 1024);
        assert_eq!(r.ksm_bytes, Some(0));
        assert_eq!(r.lazy_free_bytes, Some(0));
        assert_eq!(r.anon_huge_pages_bytes, Some(0));
        assert_eq!((r.swap_bytes, r.swap_pss_bytes, r.locked_bytes), (0, 0, 0));
        assert_eq!(r.uss_bytes(), 13552 * 1024);
        // Rss = Shared + Private.
        assert_eq!(
            r.rss_bytes,
            r.shared_clean_bytes + r.shared_dirty_bytes + r.uss_bytes()
        );
    }

    #[test]
    fn older_kernels_lack_the_pss_split() {
        // A 4.14-era rollup: no Pss_Anon/File/Shmem, Pss_Dirty or KSM.
        let text = "00400000-7ffc4d5f6000 ---p 00000000 00:00 0                              [rollup]\n\
                    Rss:                 884 kB\nPss:                 385 kB\nShared_Clean:        552 kB\n\
                    Shared_Dirty:          0 kB\nPrivate_Clean:       100 kB\nPrivate_Dirty:       232 kB\n\
                    Referenced:          884 kB\nAnonymous:           232 kB\nLazyFree:              0 kB\n\
                    AnonHugePages:         0 kB\nShmemPmdMapped:        0 kB\nShared_Hugetlb:        0 kB\n\
                    Private_Hugetlb:       0 kB\nSwap:                  0 kB\nSwapPss:               0 kB\n\
                    Locked:                0 kB\n";
        let r = SmapsRollup::parse("smaps_rollup", text).unwrap();
        assert_eq!(
            (r.pss_anon_bytes, r.pss_file_bytes, r.pss_shmem_bytes),
            (None, None, None)
        );
        assert_eq!((r.pss_dirty_bytes, r.ksm_bytes), (None, None));
        assert_eq!(r.uss_bytes(), 332 * 1024);
    }

    #[test]
    fn malformed_rollup_is_named() {
        let err = SmapsRollup::parse("/proc/7/smaps_rollup", "").unwrap_err();
        assert!(
            err.to_string().starts_with("/proc/7/smaps_rollup: "),
            "{err}"
        );
        // No header.
        let body = GO.split_once('\n').unwrap().1;
        let err = SmapsRollup::parse("r", body).unwrap_err();
        assert!(err.to_string().contains("[rollup]"), "{err}");
        assert_eq!(err.line, Some(1));
        let err = SmapsRollup::parse("r", &GO.replace("Pss:               13693 kB", "Pss: x kB"))
            .unwrap_err();
        assert!(err.to_string().contains("Pss"), "{err}");
        assert_eq!(err.line, Some(3));
        assert!(SmapsRollup::parse("r", &GO.replace("Swap:  ", "Swap   ")).is_err());
        assert!(
            SmapsRollup::parse("r", &GO.replace("Locked:                0 kB", "Locked: 0"))
                .is_err()
        );
    }

    #[test]
    fn truncated_rollup_is_an_error() {
        let cut = &GO[..GO.find("Swap:").unwrap()];
        let err = SmapsRollup::parse("r", cut).unwrap_err();
        assert!(err.to_string().contains("Swap"), "{err}");
        let cut = &GO[..GO.find("Rss").unwrap()];
        assert!(SmapsRollup::parse("r", cut).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = SmapsRollup::parse("r", &text);
        }

        #[test]
        fn cut_or_mangled_fixture_never_panics(cut in 0..GO.len(), at in 0..GO.len(), byte in 0u8..128) {
            let _ = SmapsRollup::parse("r", &GO[..cut]);
            let mut bytes = GO.as_bytes().to_vec();
            bytes[at] = byte;
            let _ = SmapsRollup::parse("r", &String::from_utf8_lossy(&bytes));
        }
    }
}
