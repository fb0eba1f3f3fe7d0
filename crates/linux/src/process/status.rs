//! `/proc/PID/status`.

use super::{kb_value_to_bytes, parse_number};
use crate::ParseError;

/// The memory-related part of `/proc/PID/status`, sizes in bytes.
///
/// Kernel threads have no address space, so the kernel prints none of the `Vm*`
/// and `Rss*` lines for them: those fields are `None` there (and `Some(0)` is a
/// real zero). Lines memlens does not use are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `Name`: the command name (`comm`, at most 15 bytes). The kernel escapes it
    /// here (a newline shows as `\n`); `/proc/PID/stat` has it raw.
    pub name: String,
    /// `State`: the one-letter state (`R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`, ...).
    pub state: char,
    /// `Tgid`: the thread-group (process) id.
    pub tgid: u32,
    /// `PPid`: the parent's process id (0 for `init` and `kthreadd`).
    pub ppid: u32,
    /// `Uid`, first column: the real user id.
    pub uid_real: u32,
    /// `Uid`, second column: the effective user id.
    pub uid_effective: u32,
    /// `VmPeak`: the largest virtual size so far.
    pub vm_peak_bytes: Option<u64>,
    /// `VmSize`: the virtual size now (the same as `vsize` in `stat`).
    pub vm_size_bytes: Option<u64>,
    /// `VmHWM`: the largest resident set so far ("high water mark").
    pub vm_hwm_bytes: Option<u64>,
    /// `VmRSS`: the resident set now (= anon + file + shmem).
    pub rss_bytes: Option<u64>,
    /// `RssAnon`: resident anonymous memory (heap, stacks, Go arenas).
    pub anon_bytes: Option<u64>,
    /// `RssFile`: resident file-backed memory (binary, libraries, mapped files).
    pub file_bytes: Option<u64>,
    /// `RssShmem`: resident shared memory (SysV shm, shared anonymous, tmpfs maps).
    pub shmem_bytes: Option<u64>,
    /// `VmData`: private writable non-stack mappings (what `RLIMIT_DATA` limits).
    pub vm_data_bytes: Option<u64>,
    /// `VmStk`: the main thread's stack.
    pub vm_stk_bytes: Option<u64>,
    /// `VmExe`: the executable's text.
    pub vm_exe_bytes: Option<u64>,
    /// `VmLib`: shared library code.
    pub vm_lib_bytes: Option<u64>,
    /// `VmPTE`: the page tables (counted by the OOM killer's badness).
    pub page_tables_bytes: Option<u64>,
    /// `VmSwap`: swapped-out anonymous memory (counted by the OOM killer too).
    pub swap_bytes: Option<u64>,
    /// `Threads`: the number of threads.
    pub threads: u32,
    /// `voluntary_ctxt_switches`: times a thread gave up the CPU (blocked).
    pub voluntary_ctxt_switches: u64,
    /// `nonvoluntary_ctxt_switches`: times a thread was preempted.
    pub nonvoluntary_ctxt_switches: u64,
}

impl Status {
    /// Parses status text; `input` names it in errors (e.g. `/proc/123/status`).
    ///
    /// `Name`, `State`, `Tgid`, `PPid`, `Uid`, `Threads` and both context-switch
    /// counters must be there (every kernel since 2.6.23 prints them); a file cut
    /// short before one of them is an error.
    pub fn parse(input: &str, text: &str) -> Result<Status, ParseError> {
        let mut name = None;
        let mut state = None;
        let mut tgid = None;
        let mut ppid = None;
        let mut uid = None;
        let mut threads = None;
        let mut voluntary = None;
        let mut nonvoluntary = None;
        let mut vm: [Option<u64>; VM_KEYS.len()] = [None; VM_KEYS.len()];

        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line.split_once(':').ok_or_else(|| {
                ParseError::at_line(
                    input,
                    line_no,
                    format!("expected \"Key:\\tvalue\", found {line:?}"),
                )
            })?;
            if let Some(slot) = VM_KEYS.iter().position(|k| *k == key) {
                vm[slot] = Some(kb_value_to_bytes(input, line_no, key, value)?);
                continue;
            }
            let trimmed = value.trim();
            match key {
                // Only the tab after the colon is the kernel's: a name may start
                // or end with spaces.
                "Name" => name = Some(value.strip_prefix('\t').unwrap_or(value).to_string()),
                "State" => {
                    let letter = trimmed
                        .chars()
                        .next()
                        .ok_or_else(|| ParseError::at_line(input, line_no, "State is empty"))?;
                    state = Some(letter);
                }
                "Tgid" => tgid = Some(parse_number(input, line_no, key, trimmed)?),
                "PPid" => ppid = Some(parse_number(input, line_no, key, trimmed)?),
                "Uid" => {
                    let mut ids = trimmed.split_whitespace();
                    let real = ids.next().unwrap_or("");
                    let effective = ids.next().ok_or_else(|| {
                        ParseError::at_line(
                            input,
                            line_no,
                            format!("Uid: expected 4 ids, found {trimmed:?}"),
                        )
                    })?;
                    uid = Some((
                        parse_number(input, line_no, "Uid (real)", real)?,
                        parse_number(input, line_no, "Uid (effective)", effective)?,
                    ));
                }
                "Threads" => threads = Some(parse_number(input, line_no, key, trimmed)?),
                "voluntary_ctxt_switches" => {
                    voluntary = Some(parse_number(input, line_no, key, trimmed)?)
                }
                "nonvoluntary_ctxt_switches" => {
                    nonvoluntary = Some(parse_number(input, line_no, key, trimmed)?)
                }
                _ => {}
            }
        }

        let missing =
            |key: &str| ParseError::new(input, format!("no {key} line (empty or cut short?)"));
        let (uid_real, uid_effective) = uid.ok_or_else(|| missing("Uid"))?;
        let [vm_peak_bytes, vm_size_bytes, vm_hwm_bytes, rss_bytes, anon_bytes, file_bytes, shmem_bytes, vm_data_bytes, vm_stk_bytes, vm_exe_bytes, vm_lib_bytes, page_tables_bytes, swap_bytes] =
            vm;
        Ok(Status {
            name: name.ok_or_else(|| missing("Name"))?,
            state: state.ok_or_else(|| missing("State"))?,
            tgid: tgid.ok_or_else(|| missing("Tgid"))?,
            ppid: ppid.ok_or_else(|| missing("PPid"))?,
            uid_real,
            uid_effective,
            vm_peak_bytes,
            vm_size_bytes,
            vm_hwm_bytes,
            rss_bytes,
            anon_bytes,
            file_bytes,
            shmem_bytes,
            vm_data_bytes,
            vm_stk_bytes,
            vm_exe_bytes,
            vm_lib_bytes,
            page_tables_bytes,
            swap_bytes,
            threads: threads.ok_or_else(|| missing("Threads"))?,
            voluntary_ctxt_switches: voluntary.ok_or_else(|| missing("voluntary_ctxt_switches"))?,
            nonvoluntary_ctxt_switches: nonvoluntary
                .ok_or_else(|| missing("nonvoluntary_ctxt_switches"))?,
        })
    }

    /// True for a kernel thread (no address space, so no `Vm*` lines).
    pub fn is_kernel_thread(&self) -> bool {
        self.vm_size_bytes.is_none() && self.rss_bytes.is_none()
    }
}

/// The `kB` lines kept, in the order of the destructuring in [`Status::parse`].
const VM_KEYS: [&str; 13] = [
    "VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmData", "VmStk",
    "VmExe", "VmLib", "VmPTE", "VmSwap",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASH: &str = include_str!("../../testdata/proc/linux6.18-status-bash.txt");
    const GO: &str = include_str!("../../testdata/proc/linux6.18-status-go1.19.txt");
    const KTHREAD: &str = include_str!("../../testdata/proc/linux6.18-status-kthread.txt");

    #[test]
    fn captured_bash() {
        let s = Status::parse("status", BASH).unwrap();
        // At capture `ps -o pid=,ppid=,rss=,vsz=,nlwp=,stat=,uid=,euid=` printed
        // "16724 1 3180 4360 1 S 0 0" (rss and vsz in KiB).
        assert_eq!(s.name, "bash");
        assert_eq!(s.state, 'S');
        assert_eq!((s.tgid, s.ppid, s.threads), (16724, 1, 1));
        assert_eq!((s.uid_real, s.uid_effective), (0, 0));
        assert_eq!(s.rss_bytes, Some(3180 * 1024));
        assert_eq!(s.vm_size_bytes, Some(4360 * 1024));
        // VmRSS = RssAnon + RssFile + RssShmem (268 + 2912 + 0 kB).
        assert_eq!(s.anon_bytes, Some(268 * 1024));
        assert_eq!(s.file_bytes, Some(2912 * 1024));
        assert_eq!(s.shmem_bytes, Some(0));
        assert_eq!(
            s.rss_bytes.unwrap(),
            s.anon_bytes.unwrap() + s.file_bytes.unwrap() + s.shmem_bytes.unwrap()
        );
        assert_eq!(s.vm_peak_bytes, Some(4360 * 1024));
        assert_eq!(s.vm_hwm_bytes, Some(3180 * 1024));
        assert_eq!(s.vm_data_bytes, Some(304 * 1024));
        assert_eq!(s.vm_stk_bytes, Some(132 * 1024));
        assert_eq!(s.vm_exe_bytes, Some(772 * 1024));
        assert_eq!(s.vm_lib_bytes, Some(1596 * 1024));
        assert_eq!(s.page_tables_bytes, Some(44 * 1024));
        assert_eq!(s.swap_bytes, Some(0));
        assert_eq!(
            (s.voluntary_ctxt_switches, s.nonvoluntary_ctxt_switches),
            (1, 2)
        );
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn captured_go_process() {
        let s = Status::parse("status", GO).unwrap();
        // `ps -o rss=,vsz=,nlwp=` at capture: 14520 1169492 7.
        assert_eq!(s.name, "wl");
        assert_eq!(s.rss_bytes, Some(14520 * 1024));
        assert_eq!(s.vm_size_bytes, Some(1_169_492 * 1024));
        assert_eq!(s.threads, 7);
        assert_eq!(s.anon_bytes, Some(9184 * 1024));
        assert_eq!(s.page_tables_bytes, Some(168 * 1024));
    }

    #[test]
    fn captured_kernel_thread_has_no_vm_lines() {
        let s = Status::parse("/proc/2/status", KTHREAD).unwrap();
        // `ps -o pid=,ppid=,rss=,vsz=,nlwp=,comm= -p 2`: "2 0 0 0 1 kthreadd".
        assert_eq!(s.name, "kthreadd");
        assert_eq!((s.tgid, s.ppid, s.threads), (2, 0, 1));
        assert!(s.is_kernel_thread());
        assert_eq!(s.rss_bytes, None);
        assert_eq!(s.swap_bytes, None);
        assert_eq!(s.page_tables_bytes, None);
        assert_eq!(s.voluntary_ctxt_switches, 64);
    }

    #[test]
    fn names_keep_their_spaces() {
        let text = "Name:\t a b) c \nState:\tR (running)\nTgid:\t5\nPPid:\t1\nUid:\t1\t2\t3\t4\n\
                    Threads:\t1\nvoluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0\n";
        let s = Status::parse("status", text).unwrap();
        assert_eq!(s.name, " a b) c ");
        assert_eq!((s.uid_real, s.uid_effective), (1, 2));
        assert_eq!(s.state, 'R');
    }

    #[test]
    fn malformed_status_is_named() {
        let err = Status::parse("/proc/9/status", "").unwrap_err();
        assert!(err.to_string().starts_with("/proc/9/status"), "{err}");
        let err = Status::parse(
            "/proc/9/status",
            &BASH.replace("VmRSS:\t    3180 kB", "VmRSS:\t3180 MB"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("VmRSS"), "{err}");
        assert_eq!(err.line, Some(23));
        let err = Status::parse("s", &BASH.replace("Tgid:\t16724", "Tgid:\tx")).unwrap_err();
        assert!(err.to_string().contains("Tgid"), "{err}");
        let err = Status::parse("s", &BASH.replace("Uid:\t0\t0\t0\t0", "Uid:\t0")).unwrap_err();
        assert!(err.to_string().contains("Uid"), "{err}");
        assert!(Status::parse("s", "no colon here\n").is_err());
        assert!(Status::parse("s", &BASH.replace("State:\tS (sleeping)", "State:\t")).is_err());
    }

    #[test]
    fn truncated_status_is_an_error() {
        // Cut before the context-switch counters, at the end of the file.
        let cut = &BASH[..BASH.find("voluntary_ctxt").unwrap()];
        let err = Status::parse("status", cut).unwrap_err();
        assert!(err.to_string().contains("voluntary_ctxt_switches"), "{err}");
        // Cut in the middle of a kB line.
        let cut = &BASH[..BASH.find("VmRSS").unwrap() + 12];
        assert!(Status::parse("status", cut).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = Status::parse("status", &text);
        }

        #[test]
        fn cut_or_mangled_fixture_never_panics(cut in 0..BASH.len(), at in 0..BASH.len(), byte in 0u8..128) {
            let _ = Status::parse("status", &BASH[..cut]);
            let mut bytes = BASH.as_bytes().to_vec();
            bytes[at] = byte;
            let _ = Status::parse("status", &String::from_utf8_lossy(&bytes));
        }
    }
}
