//! What the terminal shows while the agent runs: on a terminal, a short table
//! of the biggest watched processes redrawn each cycle; otherwise one line per
//! cycle; with `--quiet`, only errors (each kind of failure once per target).

use crate::show::human_bytes;
use crate::timearg::format_utc;
use memlens_model::Snapshot;
use std::collections::{HashSet, VecDeque};
use std::io::{IsTerminal, Write};

/// How many processes the terminal table lists.
const TOP_PROCESSES: usize = 8;
/// How many recent finding events the terminal view keeps.
const RECENT_EVENTS: usize = 6;

/// The figures of one cycle the status shows.
pub struct CycleReport<'a> {
    /// The cycle's snapshot.
    pub snapshot: &'a Snapshot,
    /// Go processes among them.
    pub go_processes: usize,
    /// Numeric values durably stored this cycle.
    pub stored_values: usize,
    /// The instant they were stored under (ms since the epoch).
    pub stored_ts_ms: i64,
    /// Profiles stored this cycle.
    pub stored_profiles: usize,
    /// Bytes of the data directory.
    pub store_bytes: u64,
    /// How long the cycle took, in seconds.
    pub cycle_seconds: f64,
}

/// The agent's terminal output.
pub struct Status {
    quiet: bool,
    terminal: bool,
    reported_failures: HashSet<(i32, &'static str)>,
    /// Active findings, one line each (terminal view).
    active_findings: Vec<String>,
    /// The last finding events, one line each (terminal view).
    recent_events: VecDeque<String>,
}

impl Status {
    /// A status writer; `quiet` prints errors only.
    pub fn new(quiet: bool) -> Status {
        Status {
            quiet,
            terminal: std::io::stdout().is_terminal(),
            reported_failures: HashSet::new(),
            active_findings: Vec::new(),
            recent_events: VecDeque::new(),
        }
    }

    /// Prints a line (not in quiet mode).
    pub fn info(&self, line: &str) {
        // A closed stdout (a service's, a pipe whose reader left) is no reason to stop.
        if !self.quiet {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    /// Prints an error to stderr, always.
    pub fn error(&self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "memlens watch: {line}");
    }

    /// Prints a failure to read a target, once per (pid, stage).
    pub fn target_failure(&mut self, pid: i32, stage: &'static str, message: &str) {
        if self.reported_failures.insert((pid, stage)) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "memlens watch: pid {pid}: {stage}: {message} (not repeated)"
            );
        }
    }

    /// Shows the findings that fired or cleared this cycle (`events`: the
    /// full text of each, then a one-line summary) and the active ones (one
    /// line each). Off a terminal each event is printed at once, starting
    /// with `FINDING` for scripts; on a terminal the next redraw shows them.
    pub fn findings(&mut self, events: &[(String, String)], active: Vec<String>) {
        if self.quiet {
            return;
        }
        self.active_findings = active;
        if !self.terminal {
            let mut out = std::io::stdout().lock();
            for (text, _) in events {
                let _ = writeln!(out, "FINDING {text}");
            }
            return;
        }
        for (_, line) in events {
            if self.recent_events.len() == RECENT_EVENTS {
                self.recent_events.pop_front();
            }
            self.recent_events.push_back(line.clone());
        }
    }

    /// Shows one cycle.
    pub fn cycle(&mut self, report: &CycleReport) {
        if self.quiet {
            return;
        }
        let snapshot = report.snapshot;
        let host = &snapshot.host;
        let summary = format!(
            "{} processes ({} Go); host available {} of {}; store {}; cycle {:.0} ms",
            snapshot.processes.len(),
            report.go_processes,
            human_bytes(host.mem_available_bytes),
            human_bytes(host.mem_total_bytes),
            human_bytes(report.store_bytes),
            report.cycle_seconds * 1000.0
        );
        // `ts_ms=` and `stored=` are for scripts: what is durably in the history.
        let stored = format!(
            "ts_ms={} stored={} values, {} profiles",
            report.stored_ts_ms, report.stored_values, report.stored_profiles
        );
        let mut out = std::io::stdout().lock();
        if !self.terminal {
            let _ = writeln!(
                out,
                "{} {stored}; {summary}",
                format_utc(report.stored_ts_ms)
            );
            return;
        }
        // Redraw in place: clear the screen, then the table.
        let _ = write!(out, "\x1b[H\x1b[2J");
        let _ = writeln!(
            out,
            "memlens watch  {} UTC",
            format_utc(report.stored_ts_ms)
        );
        let _ = writeln!(out, "{summary}");
        let _ = writeln!(out, "{stored}");
        let _ = writeln!(
            out,
            "{:>8}  {:<16} {:>10} {:>10} {:>10}  GO",
            "PID", "COMM", "RSS", "SWAP", "CGROUP"
        );
        let mut biggest: Vec<_> = snapshot.processes.iter().collect();
        biggest.sort_by_key(|p| std::cmp::Reverse(p.rss_bytes.unwrap_or(0)));
        for p in biggest.into_iter().take(TOP_PROCESSES) {
            let cgroup_usage = p
                .cgroup
                .as_ref()
                .and_then(|c| c.usage_bytes)
                .map_or("-".to_string(), human_bytes);
            let _ = writeln!(
                out,
                "{:>8}  {:<16} {:>10} {:>10} {:>10}  {}",
                p.pid,
                p.comm,
                p.rss_bytes.map_or("-".to_string(), human_bytes),
                p.swap_bytes.map_or("-".to_string(), human_bytes),
                cgroup_usage,
                p.go.as_ref().map_or("", |g| g.version.as_str())
            );
        }
        if !self.active_findings.is_empty() || !self.recent_events.is_empty() {
            let _ = writeln!(out, "\nFINDINGS ({} active)", self.active_findings.len());
            for line in &self.active_findings {
                let _ = writeln!(out, "  {line}");
            }
            for line in &self.recent_events {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = out.flush();
    }
}
