//! Any bytes to `goroutine::read_dump`, the reader of what a target serves at
//! `/debug/pprof/goroutine?debug=2` (and SIGQUIT, `?debug=1`, protobuf): the
//! agent keeps those dumps and the dashboard and `memlens report` group them.
//! Small caps, so the overflow paths are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memlens_goruntime::goroutine::{diff, rank, read_dump, Limits, RankConfig};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_line_bytes: 4096,
        max_frames: 8,
        max_name_bytes: 128,
        max_groups: 32,
        max_creation_sites: 16,
        max_stored_bytes: 64 * 1024,
    };
    let Ok(analysis) = read_dump(data, limits, &mut |_| {}) else {
        return;
    };
    let grouped: u64 = analysis.groups.iter().map(|g| g.count).sum();
    assert_eq!(
        grouped + analysis.overflow.goroutines,
        analysis.total_goroutines,
        "the groups and the overflow are all the goroutines"
    );
    assert!(analysis.groups.len() <= limits.max_groups);
    for group in &analysis.groups {
        assert!(group.frames.len() <= limits.max_frames);
        for frame in &group.frames {
            assert!(frame.function.len() <= limits.max_name_bytes);
            assert!(frame.file.len() <= limits.max_name_bytes);
        }
        let created: u64 = group.created_by.iter().map(|c| c.count).sum();
        assert_eq!(created, group.count, "every goroutine of a group has a site (or none)");
        let states: u64 = group.states.iter().map(|s| s.count).sum();
        assert!(states <= group.count);
        assert!(group.leaked <= group.count);
    }
    let _ = rank(&analysis, &RankConfig::default());
    let _ = diff(&analysis, &analysis);
});
