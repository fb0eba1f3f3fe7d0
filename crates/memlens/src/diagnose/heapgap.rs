//! The "RSS far above the Go heap" section: for each selected Go process,
//! where its resident memory goes besides the heap in use, at the end of the
//! window (memlens_analyze::heapgap).

use super::{sort_worst_first, Context, Section};
use crate::show::human_bytes;
use memlens_analyze::heapgap::{self, Inputs};
use memlens_analyze::{Finding, Target};

/// Whether the runtime of `version` with `godebug` releases pages lazily
/// (`MADV_FREE`): Go 1.12–1.15 unless `madvdontneed=1`; later only with
/// `madvdontneed=0`.
fn lazy_release(version: &str, godebug: Option<&str>) -> bool {
    let setting = godebug.and_then(|d| {
        d.split(',')
            .filter_map(|kv| kv.trim().strip_prefix("madvdontneed="))
            .next_back()
    });
    let minor = version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse::<u32>().ok());
    match (minor, setting) {
        (_, Some("0")) => true,
        (_, Some("1")) => false,
        (Some(m), _) => (12..16).contains(&m),
        (None, _) => false,
    }
}

/// Builds the `rss_above_heap` section.
pub fn section(context: &Context) -> Section {
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let Some(p) = context.at_end(g.pid, g.start_time) else {
            continue;
        };
        let (Some(end), Some(rss)) = (&g.end.as_ref().or(g.start.as_ref()), p.rss_bytes) else {
            continue;
        };
        let h = &end.heap;
        let (Some(sys), Some(heap_sys), Some(inuse), Some(idle), Some(released)) = (
            h.sys_bytes,
            h.heap_sys_bytes,
            h.heap_inuse_bytes,
            h.heap_idle_bytes,
            h.heap_released_bytes,
        ) else {
            continue;
        };
        let go = p.go.as_ref();
        let inputs = Inputs {
            rss_bytes: rss,
            sys_bytes: sys,
            heap_sys_bytes: heap_sys,
            heap_inuse_bytes: inuse,
            heap_idle_bytes: idle,
            heap_released_bytes: released,
            stack_sys_bytes: h.stack_sys_bytes.unwrap_or(0),
            lazy_release: go.is_some_and(|g| lazy_release(&g.version, g.godebug.as_deref())),
        };
        let b = heapgap::breakdown(&inputs);
        let target = Target::Process {
            pid: g.pid,
            start_time: g.start_time,
        };
        let finding = heapgap::check(&inputs, &context.config.heapgap, &target, context.at_ms());
        text.push(format!(
            "  {:>8}  {:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}",
            g.pid,
            p.comm.chars().take(16).collect::<String>(),
            human_bytes(rss),
            human_bytes(inuse),
            human_bytes(b.idle_heap_kept_bytes),
            human_bytes(b.stacks_bytes),
            human_bytes(b.runtime_metadata_bytes),
            human_bytes(b.outside_runtime_bytes),
            finding.as_ref().map_or("ok", |f| f.severity.as_str()),
        ));
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": p.comm,
            "rss_bytes": rss,
            "heap_inuse_bytes": inuse,
            "gap_bytes": b.gap_bytes,
            "idle_heap_kept_bytes": b.idle_heap_kept_bytes,
            "stacks_bytes": b.stacks_bytes,
            "runtime_metadata_bytes": b.runtime_metadata_bytes,
            "released_bytes": b.released_bytes,
            "outside_runtime_bytes": b.outside_runtime_bytes,
            "lazy_release": inputs.lazy_release,
        }));
        findings.extend(finding);
    }
    sort_worst_first(&mut findings, |f| f, "gap_bytes");
    Section::per_process(
        "rss_above_heap",
        "RSS above the Go heap: where the rest is",
        format!("{} Go processes with runtime numbers", rows.len()),
        format!(
            "  {:>8}  {:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}",
            "PID",
            "COMM",
            "RSS",
            "HEAP USED",
            "IDLE KEPT",
            "STACKS",
            "METADATA",
            "NON-GO",
            "VERDICT"
        ),
        text,
        findings,
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_release_by_version_and_godebug() {
        assert!(lazy_release("go1.14.2", None));
        assert!(!lazy_release("go1.14.2", Some("madvdontneed=1")));
        assert!(!lazy_release("go1.27.3", None));
        assert!(lazy_release("go1.27.3", Some("gctrace=1,madvdontneed=0")));
        assert!(!lazy_release("devel", None));
    }
}
