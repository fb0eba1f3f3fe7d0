//! The traced events and what the kernel side records about each one: the
//! numbering shared with `bpf/trace.bpf.c`, size classes and the event-specific
//! `detail` word (mmap flags, madvise advice, fault kind).

use serde::Serialize;

/// One kind of traced event. The discriminants are the numbers the BPF
/// program writes (`EV_*` in `bpf/trace.bpf.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A user-space page fault (`exceptions:page_fault_user`).
    Faults = 0,
    /// `mmap(2)` entry: bytes are the requested length.
    Mmap = 1,
    /// `munmap(2)` entry: bytes are the length.
    Munmap = 2,
    /// `brk(2)` entry: calls only (the kernel side keeps no previous break).
    Brk = 3,
    /// `madvise(2)` entry: bytes are the length, detail the advice.
    Madvise = 4,
    /// `mremap(2)` entry: bytes are the new length.
    Mremap = 5,
}

impl Event {
    /// Every event, in kernel numbering order.
    pub const ALL: [Event; 6] = [
        Event::Faults,
        Event::Mmap,
        Event::Munmap,
        Event::Brk,
        Event::Madvise,
        Event::Mremap,
    ];

    /// The event's number in the BPF program.
    pub fn from_number(n: u32) -> Option<Event> {
        Event::ALL.get(n as usize).copied()
    }

    /// The name used on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Event::Faults => "faults",
            Event::Mmap => "mmap",
            Event::Munmap => "munmap",
            Event::Brk => "brk",
            Event::Madvise => "madvise",
            Event::Mremap => "mremap",
        }
    }

    /// Parses a command-line name (`faults`, `mmap`, ...).
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The BPF program name and the tracepoint (category, name) it attaches to.
    pub fn tracepoint(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Event::Faults => ("page_fault_user", "exceptions", "page_fault_user"),
            Event::Mmap => ("sys_enter_mmap", "syscalls", "sys_enter_mmap"),
            Event::Munmap => ("sys_enter_munmap", "syscalls", "sys_enter_munmap"),
            Event::Brk => ("sys_enter_brk", "syscalls", "sys_enter_brk"),
            Event::Madvise => ("sys_enter_madvise", "syscalls", "sys_enter_madvise"),
            Event::Mremap => ("sys_enter_mremap", "syscalls", "sys_enter_mremap"),
        }
    }

    /// Whether the event carries a byte length.
    pub fn has_bytes(self) -> bool {
        !matches!(self, Event::Faults | Event::Brk)
    }

    /// Names the kernel side's `detail` word for this event, e.g.
    /// `anon,populate rw` for an mmap or `DONTNEED` for a madvise.
    pub fn describe_detail(self, detail: u32) -> String {
        match self {
            Event::Faults => {
                let access = if detail & 1 != 0 { "write" } else { "read" };
                if detail & 2 != 0 {
                    format!("{access},protection")
                } else {
                    format!("{access},not-present")
                }
            }
            Event::Mmap => {
                let mut parts = vec![if detail & 1 != 0 { "anon" } else { "file" }];
                if detail & 4 != 0 {
                    parts.push("shared");
                }
                if detail & 2 != 0 {
                    parts.push("populate");
                }
                if detail & 8 != 0 {
                    parts.push("fixed");
                }
                let prot = (detail >> 8) & 7;
                let rwx: String = [(1, 'r'), (2, 'w'), (4, 'x')]
                    .iter()
                    .map(|&(bit, c)| if prot & bit != 0 { c } else { '-' })
                    .collect();
                format!("{} {rwx}", parts.join(","))
            }
            Event::Munmap => String::new(),
            Event::Brk => if detail == 1 { "query" } else { "set" }.to_string(),
            Event::Madvise => madvise_name(detail),
            Event::Mremap => {
                let mut parts = Vec::new();
                if detail & 1 != 0 {
                    parts.push("maymove");
                }
                if detail & 2 != 0 {
                    parts.push("fixed");
                }
                if detail & 4 != 0 {
                    parts.push("dontunmap");
                }
                parts.join(",")
            }
        }
    }
}

/// The name of a madvise(2) advice (Linux x86-64 numbers).
pub fn madvise_name(advice: u32) -> String {
    let name = match advice {
        0 => "NORMAL",
        1 => "RANDOM",
        2 => "SEQUENTIAL",
        3 => "WILLNEED",
        4 => "DONTNEED",
        8 => "FREE",
        9 => "REMOVE",
        10 => "DONTFORK",
        11 => "DOFORK",
        12 => "MERGEABLE",
        13 => "UNMERGEABLE",
        14 => "HUGEPAGE",
        15 => "NOHUGEPAGE",
        16 => "DONTDUMP",
        17 => "DODUMP",
        20 => "COLD",
        21 => "PAGEOUT",
        22 => "POPULATE_READ",
        23 => "POPULATE_WRITE",
        25 => "COLLAPSE",
        _ => return format!("advice {advice}"),
    };
    name.to_string()
}

/// The byte range of a size class the kernel side computed as
/// `floor(log2(bytes)) + 1` (0 for no bytes): `[2^(c-1), 2^c)`.
pub fn size_class_range(class: u32) -> (u64, u64) {
    match class {
        0 => (0, 1),
        64.. => (1 << 63, u64::MAX),
        c => (1 << (c - 1), 1 << c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_round_trips_and_names_parse() {
        for e in Event::ALL {
            assert_eq!(Event::from_number(e as u32), Some(e));
            assert_eq!(Event::parse(e.name()), Some(e));
        }
        assert_eq!(Event::from_number(6), None);
        assert_eq!(Event::parse("fault"), None);
    }

    #[test]
    fn mmap_detail_names_flags_and_protection() {
        // anon | populate, PROT_READ|PROT_WRITE
        assert_eq!(
            Event::Mmap.describe_detail(1 | 2 | (3 << 8)),
            "anon,populate rw-"
        );
        assert_eq!(Event::Mmap.describe_detail(4 | (5 << 8)), "file,shared r-x");
        assert_eq!(Event::Madvise.describe_detail(4), "DONTNEED");
        assert_eq!(Event::Madvise.describe_detail(99), "advice 99");
    }

    #[test]
    fn size_class_ranges_are_powers_of_two() {
        assert_eq!(size_class_range(0), (0, 1));
        assert_eq!(size_class_range(1), (1, 2));
        assert_eq!(size_class_range(13), (4096, 8192));
    }
}
