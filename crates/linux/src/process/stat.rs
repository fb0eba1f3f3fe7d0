//! `/proc/PID/stat`.

use crate::ParseError;

/// The fields of `/proc/PID/stat` memlens uses (see `proc_pid_stat(5)`).
///
/// Times are in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 on common kernels);
/// `start_time_ticks` counts from boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 1: the process id.
    pub pid: u32,
    /// Field 2: the command name, without the parentheses, raw (it may hold
    /// spaces, parentheses and even newlines).
    pub comm: String,
    /// Field 3: the one-letter state (`R`, `S`, `D`, `Z`, `T`, `I`, ...).
    pub state: char,
    /// Field 4: the parent's process id.
    pub ppid: u32,
    /// Field 10: minor page faults (no disk read) so far.
    pub minor_faults: u64,
    /// Field 12: major page faults (the page had to be read in) so far.
    pub major_faults: u64,
    /// Field 14: CPU time in user mode, in clock ticks.
    pub utime_ticks: u64,
    /// Field 15: CPU time in kernel mode, in clock ticks.
    pub stime_ticks: u64,
    /// Field 20: the number of threads.
    pub num_threads: u32,
    /// Field 22: when the process started, in clock ticks after boot.
    pub start_time_ticks: u64,
    /// Field 23: the virtual size, in bytes (already bytes in this file).
    pub vsize_bytes: u64,
    /// Field 24: the resident set, in pages. The kernel reads its per-CPU RSS
    /// counters without summing them here, so this can lag `VmRSS` in
    /// `status` by a few pages.
    pub rss_pages: u64,
    /// Kernel flags of the task (`PF_*`, field 9).
    pub flags: u32,
}

/// `PF_KTHREAD`: the task is a kernel thread (include/linux/sched.h).
const PF_KTHREAD: u32 = 0x0020_0000;

/// How many fields follow the `)`: fields 3 ..= 24 at least.
const FIELDS_AFTER_COMM: usize = 22;

impl Stat {
    /// Parses stat text; `input` names it in errors (e.g. `/proc/123/stat`).
    ///
    /// The command name is found between the first `(` and the **last** `)`,
    /// since the name itself may contain `)` (a program called `a b) c` gives
    /// `123 (a b) c) S 1 ...`).
    pub fn parse(input: &str, text: &str) -> Result<Stat, ParseError> {
        let bad = |why: String| ParseError::new(input, why);
        let open = text
            .find('(')
            .ok_or_else(|| bad("no \"(\" before the command name".to_string()))?;
        let close = text
            .rfind(')')
            .filter(|close| *close > open)
            .ok_or_else(|| bad("no \")\" after the command name".to_string()))?;
        let pid_text = text[..open].trim();
        let pid = pid_text
            .parse()
            .map_err(|_| bad(format!("pid: not a whole number: {pid_text:?}")))?;
        let comm = text[open + 1..close].to_string();
        let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
        if rest.len() < FIELDS_AFTER_COMM {
            return Err(bad(format!(
                "expected at least {} fields, found {} (cut short?)",
                FIELDS_AFTER_COMM + 2,
                rest.len() + 2
            )));
        }
        // Field n (1-based, as in proc_pid_stat(5)) is rest[n - 3].
        let field = |n: usize| rest[n - 3];
        let number = |n: usize, name: &str| -> Result<u64, ParseError> {
            field(n).parse().map_err(|_| {
                bad(format!(
                    "field {n} ({name}): not a whole number: {:?}",
                    field(n)
                ))
            })
        };
        let narrow = |n: usize, name: &str| -> Result<u32, ParseError> {
            u32::try_from(number(n, name)?)
                .map_err(|_| bad(format!("field {n} ({name}) is too large")))
        };
        let mut state_chars = field(3).chars();
        let state = match (state_chars.next(), state_chars.next()) {
            (Some(letter), None) => letter,
            _ => {
                return Err(bad(format!(
                    "field 3 (state): expected one letter, found {:?}",
                    field(3)
                )))
            }
        };
        Ok(Stat {
            pid,
            comm,
            state,
            ppid: narrow(4, "ppid")?,
            minor_faults: number(10, "minflt")?,
            major_faults: number(12, "majflt")?,
            utime_ticks: number(14, "utime")?,
            stime_ticks: number(15, "stime")?,
            num_threads: narrow(20, "num_threads")?,
            start_time_ticks: number(22, "starttime")?,
            vsize_bytes: number(23, "vsize")?,
            rss_pages: number(24, "rss")?,
            flags: narrow(9, "flags")?,
        })
    }

    /// Whether this is a kernel thread (no user memory, nothing else to read).
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASH: &str = include_str!("../../testdata/proc/linux6.18-stat-bash.txt");
    const GO: &str = include_str!("../../testdata/proc/linux6.18-stat-go1.19.txt");
    const KTHREAD: &str = include_str!("../../testdata/proc/linux6.18-stat-kthread.txt");
    const SPACE_PAREN: &str =
        include_str!("../../testdata/proc/linux6.18-stat-comm-space-paren.txt");

    #[test]
    fn captured_bash() {
        let s = Stat::parse("stat", BASH).unwrap();
        // `ps -o pid=,ppid=,rss=,vsz=,min_flt=,maj_flt=,nlwp=,stat=` at capture:
        // "16724 1 3180 4360 303 0 1 S".
        assert_eq!((s.pid, s.ppid, s.state), (16724, 1, 'S'));
        assert_eq!(s.comm, "bash");
        assert_eq!((s.minor_faults, s.major_faults), (303, 0));
        assert_eq!(s.vsize_bytes, 4360 * 1024);
        assert_eq!(s.num_threads, 1);
        assert_eq!((s.utime_ticks, s.stime_ticks), (0, 0));
        assert_eq!(s.start_time_ticks, 889_214);
        // 776 pages = 3104 KiB, within 3% of the VmRSS of 3180 kB that `ps` and
        // `status` showed: stat reads the per-CPU counters without summing them.
        assert_eq!(s.rss_pages, 776);
    }

    #[test]
    fn captured_go_process() {
        let s = Stat::parse("stat", GO).unwrap();
        // `ps -o rss=,vsz=,min_flt=,maj_flt=,nlwp=` at capture: 14520 1169492 2587 1 7.
        assert_eq!(s.comm, "wl");
        assert_eq!((s.minor_faults, s.major_faults), (2587, 1));
        assert_eq!(s.vsize_bytes, 1_169_492 * 1024);
        assert_eq!(s.num_threads, 7);
        assert_eq!(s.stime_ticks, 4);
        assert_eq!(s.rss_pages, 3567);
    }

    #[test]
    fn captured_kernel_thread() {
        let s = Stat::parse("/proc/2/stat", KTHREAD).unwrap();
        assert_eq!((s.pid, s.ppid, s.comm.as_str()), (2, 0, "kthreadd"));
        assert_eq!((s.vsize_bytes, s.rss_pages), (0, 0));
        // kthreadd starts a fraction of a second after boot.
        assert_eq!(s.start_time_ticks, 24);
        assert!(s.is_kernel_thread());
        assert!(!Stat::parse("stat", BASH).unwrap().is_kernel_thread());
        assert!(!Stat::parse("stat", GO).unwrap().is_kernel_thread());
    }

    #[test]
    fn captured_comm_with_space_and_paren() {
        // /bin/sleep copied to "/tmp/mlcap/a b) c" and run; /proc/PID/comm said "a b) c".
        let s = Stat::parse("stat", SPACE_PAREN).unwrap();
        assert_eq!(s.comm, "a b) c");
        assert_eq!((s.pid, s.ppid, s.state), (16726, 1, 'S'));
        // `ps -o min_flt=,vsz=` at capture: 220 2920.
        assert_eq!(s.minor_faults, 220);
        assert_eq!(s.vsize_bytes, 2920 * 1024);
        // Started by the same shell command as the bash fixture, in the same tick.
        assert_eq!(s.start_time_ticks, 889_214);
    }

    #[test]
    fn comm_with_newline_and_parens() {
        let text = BASH.replacen("(bash)", "(x)\n) (y)", 1);
        let s = Stat::parse("stat", &text).unwrap();
        assert_eq!(s.comm, "x)\n) (y");
        assert_eq!(s.minor_faults, 303);
    }

    #[test]
    fn malformed_stat_is_named() {
        for bad in [
            "",
            "\n",
            "123",
            "123 (x",
            "x (bash) S 1",
            "123 )x( S",
            "1 (a) SS 1 2",
        ] {
            let err = Stat::parse("/proc/1/stat", bad).unwrap_err();
            assert!(err.to_string().starts_with("/proc/1/stat: "), "{err}");
        }
        let err = Stat::parse("stat", &BASH.replace(" 303 ", " -303 ")).unwrap_err();
        assert!(err.to_string().contains("minflt"), "{err}");
        let err = Stat::parse("stat", &BASH.replacen(" 1 ", " 99999999999 ", 1)).unwrap_err();
        assert!(err.to_string().contains("ppid"), "{err}");
    }

    #[test]
    fn truncated_stat_is_an_error() {
        // Cut inside field 24 still parses a (wrong) number; cut before it cannot.
        let before_rss = BASH.find(" 776 ").unwrap();
        let err = Stat::parse("stat", &BASH[..before_rss]).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = Stat::parse("stat", &text);
        }

        #[test]
        fn numbers_and_parens_never_panic(text in "[0-9 ()a-zA-Z\\n-]{0,200}") {
            let _ = Stat::parse("stat", &text);
        }

        #[test]
        fn cut_fixture_never_panics(cut in 0..SPACE_PAREN.len()) {
            let _ = Stat::parse("stat", &SPACE_PAREN[..cut]);
        }
    }
}
