//! `memlens runtime` for people: one screen, each number with its source.

use super::settings::Setting;
use super::summary::{RuntimeSummary, Sourced};
use crate::show::human_bytes;
use std::io::{self, Write};

/// Writes the summary as an aligned table.
pub fn write_table(out: &mut impl Write, s: &RuntimeSummary) -> io::Result<()> {
    let version = s
        .go_version
        .as_ref()
        .map(|v| format!(" ({})", v.value))
        .unwrap_or_default();
    writeln!(out, "Go runtime of {}{version}", s.target)?;
    for input in &s.inputs {
        writeln!(out, "  read {:<18} {}", input.source.name(), input.from)?;
    }
    if !s.skipped.is_empty() {
        writeln!(out, "  not served: {}", s.skipped.join("; "))?;
    }
    writeln!(out)?;
    let bytes = |v: &Option<Sourced<u64>>| row(v, |n| human_bytes(*n));
    let count = |v: &Option<Sourced<u64>>| row(v, u64::to_string);
    let ns = |v: &Option<Sourced<u64>>| row(v, |n| human_ns(*n));
    let setting = |v: &Option<Sourced<Setting>>, is_bytes: bool| {
        row(v, |value| match *value {
            Setting::Off if is_bytes => "off (no limit)".to_string(),
            Setting::Off => "off".to_string(),
            Setting::Value(n) if is_bytes => human_bytes(n),
            Setting::Value(n) => n.to_string(),
        })
    };
    let rows: Vec<(&str, Option<(String, String)>)> = vec![
        ("heap in use", bytes(&s.heap_inuse_bytes)),
        ("heap allocated", bytes(&s.heap_alloc_bytes)),
        ("heap idle", bytes(&s.heap_idle_bytes)),
        ("  released to the OS", bytes(&s.heap_released_bytes)),
        ("heap from the OS", bytes(&s.heap_sys_bytes)),
        ("heap objects", count(&s.heap_objects)),
        (
            "live heap after last GC",
            bytes(&s.heap_live_after_last_gc_bytes),
        ),
        ("next GC at (heap goal)", bytes(&s.next_gc_bytes)),
        ("GOGC", setting(&s.gogc, false)),
        ("GOMEMLIMIT", setting(&s.gomemlimit, true)),
        ("GOMAXPROCS", count(&s.gomaxprocs)),
        ("goroutines", count(&s.goroutines)),
        ("OS threads", count(&s.threads)),
        ("GC cycles", count(&s.gc_cycles)),
        ("  forced", count(&s.gc_forced_cycles)),
        ("GC pause, total", ns(&s.gc_pause_total_ns)),
        ("GC pause, last", ns(&s.gc_last_pause_ns)),
        (
            "GC CPU since start",
            row(&s.gc_cpu_fraction, |f| format!("{:.2}%", f * 100.0)),
        ),
        ("stacks in use", bytes(&s.stack_inuse_bytes)),
        ("runtime overhead", bytes(&s.runtime_overhead_bytes)),
        ("total from the OS (Sys)", bytes(&s.sys_bytes)),
        ("resident (RSS)", bytes(&s.resident_memory_bytes)),
    ];
    for (label, row) in rows {
        let Some((value, source)) = row else {
            continue;
        };
        writeln!(out, "{label:<25} {value:>14}   {source}")?;
    }
    if !s.notes.is_empty() {
        writeln!(out)?;
        for note in &s.notes {
            writeln!(out, "note: {note}")?;
        }
    }
    Ok(())
}

/// The value as text and the source column (the source name, and the raw
/// text when there is one).
fn row<T>(v: &Option<Sourced<T>>, text: impl Fn(&T) -> String) -> Option<(String, String)> {
    v.as_ref().map(|v| {
        let source = match &v.raw {
            Some(raw) => format!("{} ({raw})", v.source.name()),
            None => v.source.name().to_string(),
        };
        (text(&v.value), source)
    })
}

/// `1234567` ns → `1.23 ms`.
fn human_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns_f / 1e6)
    } else {
        format!("{:.2} s", ns_f / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(human_ns(999), "999 ns");
        assert_eq!(human_ns(1_500), "1.5 µs");
        assert_eq!(human_ns(4_546_233), "4.55 ms");
        assert_eq!(human_ns(2_000_000_000), "2.00 s");
    }
}
