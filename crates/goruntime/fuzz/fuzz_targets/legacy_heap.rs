//! Fuzzes `Profile::decode_any` on Go's text heap profile: any bytes must give
//! a profile or an error, never a panic, and a profile must be usable by
//! everything `memlens heap` and `memlens flame` run on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memlens_goruntime::pprof::{self, Profile};

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = Profile::decode_any(data) else {
        return;
    };
    let types = profile.sample_types();
    assert!(!types.is_empty());
    for index in 0..types.len() {
        let top = pprof::top(&profile, index).expect("index in range");
        let _ = pprof::diff(&top, &top);
        let _ = pprof::map_share(&profile, index, &Default::default());
        let _ = pprof::folded_stacks(&profile, index);
    }
    for (frames, values, _) in profile.stacks() {
        assert_eq!(values.len(), types.len());
        assert!(frames.iter().all(|f| !f.function.is_empty()));
    }
    for sample in 0..profile.sample_count() {
        let _ = profile.sample_addresses(sample);
    }
});
