//! `GODEBUG=gctrace=1` output: one line per garbage collection on stderr.
//!
//! The line format (the same in Go 1.19 through 1.27, checked on the captures in
//! `testdata/captures/*gctrace*.txt`):
//!
//! ```text
//! gc 12 @3.456s 2%: 0.018+1.2+0.003 ms clock, 0.072+0.4/1.1/0+0.012 ms cpu, 4->5->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P (forced)
//! ```
//!
//! - `gc 12`: the cycle number (1-based, counts every cycle since start);
//!   `@3.456s`: seconds since the program started; `2%`: share of CPU time spent
//!   in GC since the program started (cumulative, not this cycle's).
//! - `ms clock`: wall time of the stop-the-world sweep termination, concurrent
//!   mark and stop-the-world mark termination phases.
//! - `ms cpu`: CPU time of sweep termination, then mark assist / background /
//!   idle mark, then mark termination.
//! - `4->5->2 MB`: heap at GC start, at GC end, and live (marked) heap;
//!   `5 MB goal`: the heap goal. Go prints `MB` but means MiB (`bytes >> 20`),
//!   rounded down.
//! - `MB stacks` and `MB globals` (scannable stacks and globals; Go 1.18+, absent
//!   from older lines, hence `Option`), `4 P`: GOMAXPROCS, and ` (forced)` when
//!   the cycle was started by `runtime.GC()` (or `debug.FreeOSMemory`).
//!
//! The rest of a stderr log is kept as [`GcTraceEvent`]s: `scvg`/`scav` lines of
//! the scavenger (older Go, or `GODEBUG=scavtrace=1`), `pacer:` lines
//! (`gcpacertrace=1`), `GC forced` (the 2-minute periodic GC) and anything else
//! the program printed. A line that starts like a GC line (`gc N @`) but cannot be
//! read is an error naming its line: a truncated log is reported, not guessed at.

use std::fmt;

/// A gctrace text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct GctraceError {
    /// The input being parsed (file name, `stderr of PID 12`, ...).
    pub input: String,
    /// The 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for GctraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.input, line, self.reason),
            None => write!(f, "{}: {}", self.input, self.reason),
        }
    }
}

/// Wall-clock times of one cycle's phases, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GcClockMs {
    /// Stop-the-world sweep termination.
    pub sweep_termination_ms: f64,
    /// Concurrent mark and scan.
    pub concurrent_mark_ms: f64,
    /// Stop-the-world mark termination.
    pub mark_termination_ms: f64,
}

impl GcClockMs {
    /// The time the program was stopped: both stop-the-world phases.
    pub fn stop_the_world_ms(&self) -> f64 {
        self.sweep_termination_ms + self.mark_termination_ms
    }
}

/// CPU times of one cycle's phases, in milliseconds (summed over all Ps).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GcCpuMs {
    /// Stop-the-world sweep termination.
    pub sweep_termination_ms: f64,
    /// Mark work done by allocating goroutines (mark assist).
    pub assist_ms: f64,
    /// Dedicated and fractional background mark workers.
    pub background_ms: f64,
    /// Idle mark workers.
    pub idle_ms: f64,
    /// Stop-the-world mark termination.
    pub mark_termination_ms: f64,
}

/// One `gc N @...` line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GcCycle {
    /// The cycle number (`gc 12`): cycles completed since start, this one included.
    pub cycle: u64,
    /// Seconds since the program started (`@3.456s`).
    pub since_start_seconds: f64,
    /// Percentage of the CPU time since start spent in GC (`2%`), cumulative.
    pub gc_cpu_percent: u32,
    /// Phase wall times.
    pub clock: GcClockMs,
    /// Phase CPU times.
    pub cpu: GcCpuMs,
    /// Heap size when the cycle started, MiB (Go prints `MB`).
    pub heap_start_mib: u64,
    /// Heap size when the cycle ended, MiB.
    pub heap_end_mib: u64,
    /// Live (marked) heap, MiB.
    pub heap_live_mib: u64,
    /// Heap goal of this cycle, MiB.
    pub heap_goal_mib: u64,
    /// Scannable stack size, MiB (Go 1.18+).
    pub stacks_mib: Option<u64>,
    /// Scannable globals size, MiB (Go 1.18+).
    pub globals_mib: Option<u64>,
    /// Number of Ps (GOMAXPROCS).
    pub procs: u32,
    /// Started by `runtime.GC()` / `debug.FreeOSMemory()` (` (forced)`).
    pub forced: bool,
}

/// What one line of a gctrace log is.
#[derive(Debug, Clone, PartialEq)]
pub enum GcTraceEvent {
    /// A garbage collection.
    Gc(GcCycle),
    /// A scavenger line (`scvg...` of older Go, `scav ...` of `scavtrace=1`), kept raw.
    Scavenger(String),
    /// A GC pacer line (`pacer: ...`, `gcpacertrace=1`), kept raw.
    Pacer(String),
    /// `GC forced`: the runtime's periodic (2-minute) forced GC is starting.
    PeriodicForced,
    /// Any other line (the program's own output), kept raw.
    Other(String),
}

/// A whole gctrace log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GcTrace {
    /// Every non-empty line, in order, with its 1-based line number.
    pub events: Vec<(usize, GcTraceEvent)>,
}

impl GcTrace {
    /// The GC lines, in order.
    pub fn cycles(&self) -> impl Iterator<Item = &GcCycle> {
        self.events.iter().filter_map(|(_, event)| match event {
            GcTraceEvent::Gc(cycle) => Some(cycle),
            _ => None,
        })
    }

    /// The last GC line.
    pub fn last_cycle(&self) -> Option<&GcCycle> {
        self.cycles().last()
    }

    /// Number of ` (forced)` lines in the log (all forced cycles only if the log
    /// is complete).
    pub fn forced_cycles(&self) -> u64 {
        self.cycles().filter(|c| c.forced).count() as u64
    }

    /// True when the GC lines start at cycle 1 and have no gap, so sums over
    /// them (total pause, forced cycles) cover the whole run.
    pub fn is_complete(&self) -> bool {
        self.cycles()
            .enumerate()
            .all(|(i, cycle)| cycle.cycle == i as u64 + 1)
    }

    /// Sum of the stop-the-world wall times of all GC lines, in milliseconds.
    pub fn total_stop_the_world_ms(&self) -> f64 {
        self.cycles().map(|c| c.clock.stop_the_world_ms()).sum()
    }
}

/// The longest line read; longer lines are an error (gctrace lines are ~150 bytes).
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Reads a gctrace log (usually a program's whole stderr). `input` names it in errors.
///
/// Errors: a line over [`MAX_LINE_BYTES`], a line that is not UTF-8, and a line
/// that starts like a GC line but cannot be read (truncated or garbled).
pub fn parse_gctrace(input: &str, bytes: &[u8]) -> Result<GcTrace, GctraceError> {
    let mut trace = GcTrace::default();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let error = |reason: String| GctraceError {
            input: input.to_string(),
            line: Some(line_no),
            reason,
        };
        if raw.len() > MAX_LINE_BYTES {
            return Err(error(format!(
                "line is {} bytes long, more than the {MAX_LINE_BYTES} allowed",
                raw.len()
            )));
        }
        let text = std::str::from_utf8(raw).map_err(|e| error(format!("not UTF-8: {e}")))?;
        let text = text.trim_end_matches('\r').trim();
        if text.is_empty() {
            continue;
        }
        let event = classify_line(text).map_err(error)?;
        trace.events.push((line_no, event));
    }
    Ok(trace)
}

/// Reads one line (without its newline). A GC line that cannot be read is an
/// `Err` saying what is wrong; every other line is some [`GcTraceEvent`].
pub fn classify_line(line: &str) -> Result<GcTraceEvent, String> {
    let line = line.trim();
    if looks_like_gc_line(line) {
        return parse_gc_line(line).map(GcTraceEvent::Gc);
    }
    if line.starts_with("scvg") || line.starts_with("scav ") {
        return Ok(GcTraceEvent::Scavenger(line.to_string()));
    }
    if line.starts_with("pacer:") {
        return Ok(GcTraceEvent::Pacer(line.to_string()));
    }
    if line == "GC forced" {
        return Ok(GcTraceEvent::PeriodicForced);
    }
    Ok(GcTraceEvent::Other(line.to_string()))
}

/// `gc ` then digits then ` @` (or the end of the line: a cut line).
fn looks_like_gc_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("gc ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (rest[digits..].starts_with(" @") || rest[digits..].is_empty())
}

/// Parses a full `gc N @...` line.
pub fn parse_gc_line(line: &str) -> Result<GcCycle, String> {
    let (head, body) = line
        .split_once(": ")
        .ok_or_else(|| format!("GC line cut short (no \": \" after the header): {line:?}"))?;
    let mut cycle = GcCycle::default();
    parse_header(head, &mut cycle)?;

    let mut parts = body.split(", ");
    let mut next = |what: &str| {
        parts
            .next()
            .ok_or_else(|| format!("GC line cut short: no {what} part in {line:?}"))
    };
    cycle.clock = parse_clock(next("clock")?)?;
    cycle.cpu = parse_cpu(next("cpu")?)?;
    parse_heap(next("heap sizes")?, &mut cycle)?;
    cycle.heap_goal_mib = mb_field(next("goal")?, "MB goal")?;

    let mut saw_procs = false;
    for part in parts {
        if saw_procs {
            return Err(format!("unexpected text after the P count: {part:?}"));
        }
        if part.ends_with(" MB stacks") {
            cycle.stacks_mib = Some(mb_field(part, "MB stacks")?);
        } else if part.ends_with(" MB globals") {
            cycle.globals_mib = Some(mb_field(part, "MB globals")?);
        } else {
            let (procs, forced) = match part.strip_suffix(" (forced)") {
                Some(rest) => (rest, true),
                None => (part, false),
            };
            let count = procs
                .strip_suffix(" P")
                .ok_or_else(|| format!("expected \"N P\", found {part:?}"))?;
            cycle.procs = number(count, "P count")?;
            cycle.forced = forced;
            saw_procs = true;
        }
    }
    if !saw_procs {
        return Err(format!("GC line cut short: no \"N P\" part in {line:?}"));
    }
    Ok(cycle)
}

/// `gc 12 @3.456s 2%`.
fn parse_header(head: &str, cycle: &mut GcCycle) -> Result<(), String> {
    let mut words = head.split_whitespace();
    let (Some("gc"), Some(n), Some(at), Some(pct), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(format!("expected \"gc N @Ts P%\", found {head:?}"));
    };
    cycle.cycle = number(n, "cycle number")?;
    let seconds = at
        .strip_prefix('@')
        .and_then(|s| s.strip_suffix('s'))
        .ok_or_else(|| format!("expected \"@SECONDSs\", found {at:?}"))?;
    cycle.since_start_seconds = float(seconds, "time since start")?;
    let pct = pct
        .strip_suffix('%')
        .ok_or_else(|| format!("expected \"N%\", found {pct:?}"))?;
    cycle.gc_cpu_percent = number(pct, "GC CPU percent")?;
    Ok(())
}

/// `0.018+1.2+0.003 ms clock`.
fn parse_clock(part: &str) -> Result<GcClockMs, String> {
    let times = part
        .strip_suffix(" ms clock")
        .ok_or_else(|| format!("expected \"A+B+C ms clock\", found {part:?}"))?;
    let mut it = times.split('+');
    let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(format!("expected three clock phases, found {times:?}"));
    };
    Ok(GcClockMs {
        sweep_termination_ms: float(a, "clock sweep termination")?,
        concurrent_mark_ms: float(b, "clock concurrent mark")?,
        mark_termination_ms: float(c, "clock mark termination")?,
    })
}

/// `0.072+0.4/1.1/0+0.012 ms cpu`.
fn parse_cpu(part: &str) -> Result<GcCpuMs, String> {
    let times = part
        .strip_suffix(" ms cpu")
        .ok_or_else(|| format!("expected \"A+B/C/D+E ms cpu\", found {part:?}"))?;
    let mut it = times.split('+');
    let (Some(a), Some(mark), Some(e), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(format!("expected three cpu phases, found {times:?}"));
    };
    let mut marks = mark.split('/');
    let (Some(b), Some(c), Some(d), None) =
        (marks.next(), marks.next(), marks.next(), marks.next())
    else {
        return Err(format!(
            "expected assist/background/idle mark times, found {mark:?}"
        ));
    };
    Ok(GcCpuMs {
        sweep_termination_ms: float(a, "cpu sweep termination")?,
        assist_ms: float(b, "cpu mark assist")?,
        background_ms: float(c, "cpu background mark")?,
        idle_ms: float(d, "cpu idle mark")?,
        mark_termination_ms: float(e, "cpu mark termination")?,
    })
}

/// `4->5->2 MB`.
fn parse_heap(part: &str, cycle: &mut GcCycle) -> Result<(), String> {
    let sizes = part
        .strip_suffix(" MB")
        .ok_or_else(|| format!("expected \"A->B->C MB\", found {part:?}"))?;
    let mut it = sizes.split("->");
    let (Some(a), Some(b), Some(c), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(format!("expected three heap sizes, found {sizes:?}"));
    };
    cycle.heap_start_mib = number(a, "heap at GC start")?;
    cycle.heap_end_mib = number(b, "heap at GC end")?;
    cycle.heap_live_mib = number(c, "live heap")?;
    Ok(())
}

/// `5 MB goal` with `suffix` = `MB goal`.
fn mb_field(part: &str, suffix: &str) -> Result<u64, String> {
    let value = part
        .strip_suffix(suffix)
        .and_then(|s| s.strip_suffix(' '))
        .ok_or_else(|| format!("expected \"N {suffix}\", found {part:?}"))?;
    number(value, suffix)
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: {text:?} is not a whole number"));
    }
    text.parse()
        .map_err(|_| format!("{what}: {text:?} is out of range"))
}

fn float(text: &str, what: &str) -> Result<f64, String> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|b| *b == b'.').count() <= 1;
    match text.parse::<f64>() {
        Ok(value) if plain && value.is_finite() => Ok(value),
        _ => Err(format!("{what}: {text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_line() {
        let line = "gc 12 @3.456s 2%: 0.018+1.2+0.003 ms clock, 0.072+0.4/1.1/0+0.012 ms cpu, \
                    4->5->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P (forced)";
        let c = parse_gc_line(line).unwrap();
        assert_eq!(c.cycle, 12);
        assert_eq!(c.since_start_seconds, 3.456);
        assert_eq!(c.gc_cpu_percent, 2);
        assert_eq!(c.clock.concurrent_mark_ms, 1.2);
        assert_eq!(c.cpu.assist_ms, 0.4);
        assert_eq!(c.cpu.background_ms, 1.1);
        assert_eq!(c.cpu.idle_ms, 0.0);
        assert_eq!(
            (c.heap_start_mib, c.heap_end_mib, c.heap_live_mib),
            (4, 5, 2)
        );
        assert_eq!(c.heap_goal_mib, 5);
        assert_eq!((c.stacks_mib, c.globals_mib), (Some(0), Some(0)));
        assert_eq!(c.procs, 4);
        assert!(c.forced);
    }

    #[test]
    fn lines_of_go_before_1_18_have_no_stacks_or_globals() {
        let line = "gc 1 @0.013s 0%: 0.015+0.25+0.003 ms clock, \
                    0.12+0.10/0.15/0.18+0.026 ms cpu, 4->4->0 MB, 5 MB goal, 8 P";
        let c = parse_gc_line(line).unwrap();
        assert_eq!((c.stacks_mib, c.globals_mib, c.procs), (None, None, 8));
        assert!(!c.forced);
    }

    #[test]
    fn other_lines_are_classified() {
        assert!(matches!(
            classify_line("scvg0: inuse: 3, idle: 0, sys: 3, released: 0, consumed: 3 (MB)"),
            Ok(GcTraceEvent::Scavenger(_))
        ));
        assert!(matches!(
            classify_line("pacer: assist ratio=+1.0 (scan 0 MB in 4->4 MB) workers=2++0.0"),
            Ok(GcTraceEvent::Pacer(_))
        ));
        assert_eq!(classify_line("GC forced"), Ok(GcTraceEvent::PeriodicForced));
        assert!(matches!(
            classify_line("gc is fun"),
            Ok(GcTraceEvent::Other(_))
        ));
    }

    #[test]
    fn cut_lines_are_errors_with_their_line_number() {
        let text = b"gc 1 @0.005s 2%: 0.008+0.69+0.004 ms clock, 0.017+0.11/0.16/0+0.008 ms cpu, 3->4->3 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\ngc 2 @0.008s 3%: 0.006+0.60+0.001 ms clock, 0.013+0.21/0/0+0.00";
        let err = parse_gctrace("trace.txt", text).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().starts_with("trace.txt line 2: "), "{err}");
        let err = parse_gctrace("x", b"gc 7").unwrap_err();
        assert!(err.reason.contains("cut short"), "{err}");
    }
}
