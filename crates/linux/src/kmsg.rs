//! The kernel log as `/dev/kmsg` hands it out, and the OOM kills in it.
//!
//! A `/dev/kmsg` record is `PRIORITY,SEQUENCE,MONOTONIC_US,FLAGS[,...];MESSAGE`
//! (one `read` returns one record; continuation lines start with a space and
//! carry `KEY=value` dictionary entries). An OOM kill writes, among others:
//!
//! ```text
//! oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/a,task_memcg=/a/b,task=NAME,pid=PID,uid=0
//! Memory cgroup out of memory: Killed process PID (NAME) total-vm:…kB, anon-rss:…kB, file-rss:…kB, shmem-rss:…kB, UID:0 pgtables:…kB oom_score_adj:0
//! ```
//!
//! (`Out of memory: Killed process …` for a host-wide OOM.) Older kernels
//! lack the `oom-kill:` line or some fields; every field but the pid is
//! optional. [`OomKillParser`] joins the two lines of one kill by pid.

use crate::ParseError;

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// Syslog priority and facility (`facility << 3 | level`).
    pub priority: u32,
    /// The record's sequence number (gaps mean records were overwritten).
    pub sequence: u64,
    /// When it was logged: microseconds since boot (CLOCK_MONOTONIC).
    pub monotonic_us: u64,
    /// The message text (without continuation lines).
    pub message: &'a str,
}

/// Parses one record (`line` without its trailing newline; continuation
/// lines, which start with a space, are not records: see [`is_continuation`]).
pub fn parse_record(line: &str) -> Result<KmsgRecord<'_>, ParseError> {
    let bad = |reason: &str| ParseError::new("/dev/kmsg record", reason.to_string());
    let (prefix, message) = line
        .split_once(';')
        .ok_or_else(|| bad("no ';' between the header and the message"))?;
    let mut fields = prefix.split(',');
    let mut number = |what: &str| -> Result<u64, ParseError> {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| bad(&format!("the {what} is not a number")))
    };
    let priority = number("priority")?;
    let sequence = number("sequence number")?;
    let monotonic_us = number("timestamp")?;
    Ok(KmsgRecord {
        priority: u32::try_from(priority).map_err(|_| bad("the priority is out of range"))?,
        sequence,
        monotonic_us,
        message,
    })
}

/// Whether `line` continues the record before it (dictionary `KEY=value`).
pub fn is_continuation(line: &str) -> bool {
    line.starts_with(' ')
}

/// One OOM kill as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OomKill {
    /// The killed process.
    pub pid: i32,
    /// Its name (`comm`), when logged.
    pub comm: Option<String>,
    /// `CONSTRAINT_MEMCG` (a cgroup's limit), `CONSTRAINT_NONE` (the host), ...
    pub constraint: Option<String>,
    /// The cgroup whose limit was hit (cgroup path, as the kernel prints it).
    pub oom_memcg: Option<String>,
    /// The victim's own memory cgroup.
    pub task_memcg: Option<String>,
    /// Virtual size at the kill.
    pub total_vm_bytes: Option<u64>,
    /// Anonymous resident memory at the kill.
    pub anon_rss_bytes: Option<u64>,
    /// File-backed resident memory at the kill.
    pub file_rss_bytes: Option<u64>,
    /// Shared-memory resident memory at the kill.
    pub shmem_rss_bytes: Option<u64>,
    /// Page tables at the kill.
    pub pgtables_bytes: Option<u64>,
    /// The victim's `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// When the kill was logged, microseconds since boot.
    pub monotonic_us: u64,
    /// Whether the `Killed process` line was seen (the kill itself, not only
    /// the victim's selection).
    pub killed: bool,
}

/// Joins the lines of OOM kills as records arrive, in order.
#[derive(Debug, Default)]
pub struct OomKillParser {
    /// The last `oom-kill:` line not yet followed by its `Killed process`.
    pending: Option<OomKill>,
}

impl OomKillParser {
    /// A parser with nothing pending.
    pub fn new() -> OomKillParser {
        OomKillParser::default()
    }

    /// Feeds one record; returns a kill when `record` completes one.
    pub fn feed(&mut self, record: &KmsgRecord<'_>) -> Option<OomKill> {
        let message = record.message;
        if let Some(fields) = message.strip_prefix("oom-kill:") {
            let mut kill = parse_selection(fields);
            kill.monotonic_us = record.monotonic_us;
            // A selection never followed by its kill line is still a kill
            // the kernel decided; it is handed out when the next one starts.
            let previous = self.pending.replace(kill);
            return previous.filter(|k| k.pid > 0);
        }
        let (_, killed) = message.split_once("Killed process ")?;
        let mut kill = parse_killed(killed)?;
        kill.monotonic_us = record.monotonic_us;
        if let Some(selection) = self.pending.take() {
            if selection.pid == kill.pid {
                return Some(merge(selection, kill));
            }
        }
        Some(kill)
    }

    /// A selection line still waiting for its kill line, handed out (e.g.
    /// when the log has been read to its end for now).
    pub fn take_pending(&mut self) -> Option<OomKill> {
        self.pending.take().filter(|k| k.pid > 0)
    }
}

/// Every OOM kill in a text of records, one per line (as `/dev/kmsg` reads
/// concatenated, or a saved copy). Lines that are no record are skipped.
pub fn oom_kills(text: &str) -> Vec<OomKill> {
    let mut parser = OomKillParser::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if is_continuation(line) {
            continue;
        }
        if let Ok(record) = parse_record(line) {
            out.extend(parser.feed(&record));
        }
    }
    out.extend(parser.take_pending());
    out
}

fn parse_selection(fields: &str) -> OomKill {
    let mut kill = OomKill::default();
    for field in fields.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "constraint" => kill.constraint = Some(value.to_string()),
            "oom_memcg" => kill.oom_memcg = Some(value.to_string()),
            "task_memcg" => kill.task_memcg = Some(value.to_string()),
            "task" => kill.comm = Some(value.to_string()),
            "pid" => kill.pid = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    kill
}

/// `PID (NAME) total-vm:…kB, anon-rss:…kB, …` after "Killed process ".
fn parse_killed(text: &str) -> Option<OomKill> {
    let (pid, rest) = text.split_once(' ')?;
    let pid: i32 = pid.parse().ok().filter(|p| *p > 0)?;
    let mut kill = OomKill {
        pid,
        killed: true,
        ..OomKill::default()
    };
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('(') {
        // The name may hold spaces and parentheses: it ends at the last ") ".
        Some(named) => match named.rfind(") ") {
            Some(end) => {
                kill.comm = Some(named[..end].to_string());
                &named[end + 2..]
            }
            None => {
                kill.comm = Some(named.trim_end_matches(')').to_string());
                ""
            }
        },
        None => rest,
    };
    for field in rest.split([',', ' ']) {
        let Some((key, value)) = field.split_once(':') else {
            continue;
        };
        let kib = || {
            value
                .strip_suffix("kB")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|v| v * 1024)
        };
        match key {
            "total-vm" => kill.total_vm_bytes = kib(),
            "anon-rss" => kill.anon_rss_bytes = kib(),
            "file-rss" => kill.file_rss_bytes = kib(),
            "shmem-rss" => kill.shmem_rss_bytes = kib(),
            "pgtables" => kill.pgtables_bytes = kib(),
            "oom_score_adj" => kill.oom_score_adj = value.parse().ok(),
            _ => {}
        }
    }
    Some(kill)
}

fn merge(selection: OomKill, killed: OomKill) -> OomKill {
    OomKill {
        comm: killed.comm.or(selection.comm),
        constraint: selection.constraint,
        oom_memcg: selection.oom_memcg,
        task_memcg: selection.task_memcg,
        ..killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_KILLS: &str = include_str!("../testdata/kmsg/linux6.18-two-memcg-ooms.txt");

    #[test]
    fn both_kills_of_the_capture_are_read_with_their_cgroups_and_sizes() {
        let kills = oom_kills(TWO_KILLS);
        assert_eq!(kills.len(), 2, "{kills:#?}");
        let first = &kills[0];
        assert_eq!(first.pid, 16845);
        assert_eq!(first.comm.as_deref(), Some("workload"));
        assert_eq!(first.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
        assert_eq!(first.oom_memcg.as_deref(), Some("/memlens-test-16683-2"));
        assert_eq!(first.task_memcg.as_deref(), Some("/memlens-test-16683-2"));
        assert_eq!(first.anon_rss_bytes, Some(130432 * 1024));
        assert_eq!(first.file_rss_bytes, Some(4584 * 1024));
        assert_eq!(first.total_vm_bytes, Some(785572 * 1024));
        assert_eq!(first.pgtables_bytes, Some(348 * 1024));
        assert_eq!(first.oom_score_adj, Some(0));
        assert_eq!(first.monotonic_us, 20546950670);
        assert!(first.killed);
        assert_eq!(kills[1].pid, 16899);
        assert_eq!(
            kills[1].task_memcg.as_deref(),
            Some("/memlens-test-16683-4")
        );
    }

    #[test]
    fn records_are_split_at_the_first_semicolon() {
        let r = parse_record("6,2563,20546950602,-;a; b").unwrap();
        assert_eq!(r.priority, 6);
        assert_eq!(r.sequence, 2563);
        assert_eq!(r.monotonic_us, 20546950602);
        assert_eq!(r.message, "a; b");
        let err = parse_record("garbage").unwrap_err();
        assert!(err.to_string().contains("/dev/kmsg"), "{err}");
        assert!(parse_record("x,1,2,-;m").is_err());
    }

    #[test]
    fn a_host_oom_without_selection_line_and_odd_names() {
        let text = "3,9,100,-;Out of memory: Killed process 77 (my (odd) app) total-vm:10kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:8kB oom_score_adj:-500\n";
        let kills = oom_kills(text);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].pid, 77);
        assert_eq!(kills[0].comm.as_deref(), Some("my (odd) app"));
        assert_eq!(kills[0].anon_rss_bytes, Some(4096));
        assert_eq!(kills[0].oom_score_adj, Some(-500));
        assert_eq!(kills[0].constraint, None);
    }

    #[test]
    fn a_selection_whose_kill_line_is_missing_is_still_reported() {
        let text = "6,1,5,-;oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a,task=w,pid=12,uid=0\n";
        let kills = oom_kills(text);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].pid, 12);
        assert!(!kills[0].killed);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_text_never_panics(text in ".{0,300}") {
            let _ = oom_kills(&text);
            let _ = parse_record(&text);
        }

        #[test]
        fn mutated_capture_never_panics(cut in 0usize..9825, byte in 0u8..128) {
            let mut bytes = TWO_KILLS.as_bytes().to_vec();
            let at = cut.min(bytes.len() - 1);
            bytes[at] = byte;
            let _ = oom_kills(&String::from_utf8_lossy(&bytes));
        }
    }
}
