//! The report built from raw kernel counts: stack counts scaled to the exact
//! totals, stacks merged by name, folded lines, and the pprof encoding read
//! back by memlens-goruntime's independent decoder.

use memlens_goruntime::pprof::Profile;
use memlens_trace::raw::{CountRow, RawTrace, StackRow};
use memlens_trace::report::ReportContext;
use memlens_trace::{Event, Report};

fn raw() -> RawTrace {
    let count = |event, size_class, detail, events, bytes| CountRow {
        pid: 7,
        event,
        size_class,
        detail,
        events,
        bytes,
    };
    let stack = |event, frames: &[u64], events, bytes| StackRow {
        pid: 7,
        event,
        stack_error: None,
        frames: frames.to_vec(),
        events,
        bytes,
    };
    RawTrace {
        counts: vec![
            count(Event::Faults, 0, 1, 600, 0),
            count(Event::Faults, 0, 0, 40, 0),
            count(Event::Mmap, 23, 1 | (3 << 8), 2, 8 << 20),
            count(Event::Mmap, 13, 1 | (3 << 8), 6, 6 * 4096),
        ],
        stacks: vec![
            // Two address stacks that name the same functions merge.
            stack(Event::Faults, &[0x10, 0x20], 6, 0),
            stack(Event::Faults, &[0x11, 0x21], 2, 0),
            stack(Event::Faults, &[0x30, 0x20], 1, 0),
            StackRow {
                pid: 7,
                event: Event::Faults,
                stack_error: Some(-14),
                frames: vec![],
                events: 1,
                bytes: 0,
            },
            stack(Event::Mmap, &[0x40, 0x20], 2, 8 << 20),
            stack(Event::Mmap, &[0x50, 0x20], 6, 6 * 4096),
        ],
        lost_counts: 0,
        lost_stacks: 0,
    }
}

fn name(addr: u64) -> String {
    match addr & !0xf {
        0x10 => "main.leak".into(),
        0x20 => "main.main".into(),
        0x30 => "runtime.memclr".into(),
        0x40 => "runtime.sysMap".into(),
        _ => "runtime.persistentalloc".into(),
    }
}

fn report() -> Report {
    let pids = [7];
    let info = |_| ("svc".to_string(), None);
    let symbolize = |_pid: u32, frames: &[u64]| frames.iter().map(|&a| name(a)).collect();
    Report::build(
        &raw(),
        &ReportContext {
            duration_seconds: 2.0,
            stack_every: 10,
            syscall_stack_every: 1,
            pids: &pids,
            process_info: &info,
            symbolize: &symbolize,
        },
    )
}

#[test]
fn stacks_are_merged_by_name_and_scaled_to_the_exact_totals() {
    let r = report();
    assert!(
        r.sampling.contains("1 fault in 10") && r.sampling.contains("every syscall"),
        "{}",
        r.sampling
    );
    let faults = &r.processes[0].events[0];
    assert_eq!(
        (
            faults.event,
            faults.events,
            faults.samples,
            faults.unwalked_samples
        ),
        (Event::Faults, 640, 10, 1)
    );
    assert_eq!(faults.events_per_second, 320.0);
    // 8 of 10 samples in main.main -> main.leak: 8 * 640 / 10.
    assert_eq!(faults.stacks[0].frames, ["main.main", "main.leak"]);
    assert_eq!(faults.stacks[0].events_estimated, 512.0);
    let total: f64 = faults.stacks.iter().map(|s| s.events_estimated).sum();
    assert_eq!(total, 640.0);
    assert!(faults
        .stacks
        .iter()
        .any(|s| s.frames == ["[stack not walked]"]));

    let mmap = &r.processes[0].events[1];
    assert_eq!((mmap.events, mmap.bytes), (8, (8 << 20) + 6 * 4096));
    assert_eq!(mmap.classes[0].detail, "anon rw-");
    assert_eq!(
        (mmap.classes[0].min_bytes, mmap.classes[0].max_bytes),
        (4 << 20, 8 << 20)
    );
    let bytes: f64 = mmap.stacks.iter().map(|s| s.bytes_estimated).sum();
    assert_eq!(bytes, mmap.bytes as f64);
}

#[test]
fn folded_lines_name_the_process_and_run_outermost_first() {
    let r = report();
    let folded = r.folded(Event::Faults, false);
    assert!(
        folded.contains(&"svc-7;main.main;main.leak 512".to_string()),
        "{folded:?}"
    );
    let by_bytes = r.folded(Event::Mmap, true);
    assert!(
        by_bytes.contains(&format!("svc-7;main.main;runtime.sysMap {}", 8 << 20)),
        "{by_bytes:?}"
    );
}

#[test]
fn pprof_reads_back_with_the_same_stacks_values_and_labels() {
    let r = report();
    let profile =
        Profile::decode(&memlens_trace::pprof::gzipped(&r, Event::Mmap)).expect("decodes");
    assert_eq!(
        profile.sample_types(),
        [
            ("mmap".to_string(), "count".to_string()),
            ("bytes".to_string(), "bytes".to_string())
        ]
    );
    let mut stacks: Vec<(Vec<String>, Vec<i64>)> = profile
        .stacks()
        .map(|(frames, values, _)| {
            (
                frames.into_iter().map(|f| f.function).collect(),
                values.to_vec(),
            )
        })
        .collect();
    stacks.sort();
    assert_eq!(
        stacks,
        [
            (
                vec![
                    "runtime.persistentalloc".to_string(),
                    "main.main".to_string()
                ],
                vec![6, 6 * 4096]
            ),
            (
                vec!["runtime.sysMap".to_string(), "main.main".to_string()],
                vec![2, 8 << 20]
            ),
        ]
    );
}
