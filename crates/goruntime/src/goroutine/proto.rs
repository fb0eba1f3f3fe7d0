//! Goroutine groups from the protobuf goroutine profile (`?debug=0`) and the
//! goroutineleak profile: exact counts per stack, no states or wait times (states
//! are inferred from the frames), no 64 MiB cap.

use super::aggregate::{cap_str, Aggregator, Record, ScratchFrame};
use super::error::GoroutineError;
use super::infer::infer_state;
use super::model::{Analysis, DumpFormat, Limits};
use crate::pprof::Profile;

/// Groups the samples of a decoded goroutine or goroutineleak profile.
pub fn analyse_profile(
    profile: &Profile,
    limits: Limits,
    bytes_read: u64,
) -> Result<Analysis, GoroutineError> {
    let types = profile.sample_types();
    let (index, from_leak_profile) = types
        .iter()
        .enumerate()
        .find_map(|(i, (kind, unit))| match (kind.as_str(), unit.as_str()) {
            ("goroutine", "count") => Some((i, false)),
            ("goroutineleak", "count") => Some((i, true)),
            _ => None,
        })
        .ok_or_else(|| GoroutineError::NotGoroutineProfile {
            found: types
                .iter()
                .map(|(k, u)| format!("{k}/{u}"))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let mut agg = Aggregator::new(limits, true);
    let mut scratch: Vec<ScratchFrame> = Vec::new();
    let max_scratch = limits.max_frames + 32;
    for (frames, values, _labels) in profile.stacks() {
        let count = values.get(index).copied().unwrap_or(0);
        if count <= 0 {
            continue;
        }
        let all_frames = frames.len();
        let kept = all_frames.min(max_scratch);
        scratch.resize_with(kept.max(scratch.len()), ScratchFrame::default);
        for (slot, frame) in scratch.iter_mut().zip(&frames[..kept]) {
            slot.function.clear();
            slot.function
                .push_str(cap_str(&frame.function, limits.max_name_bytes));
            slot.file.clear();
            slot.file
                .push_str(cap_str(&frame.file, limits.max_name_bytes));
            slot.line = u32::try_from(frame.line).unwrap_or(0);
        }
        let frames = &scratch[..kept];
        let record = Record {
            state: infer_state(frames.iter().map(|f| f.function.as_str())),
            leaked: from_leak_profile,
            frames,
            dump_elided: kept < all_frames,
            ..Record::default()
        };
        agg.add(&record, count as u64);
    }
    let total = agg.total();
    let (groups, by_creation, overflow) = agg.finish();
    Ok(Analysis {
        format: DumpFormat::Protobuf,
        total_goroutines: total,
        declared_total: None,
        groups,
        by_creation,
        overflow,
        truncation: None,
        from_leak_profile,
        bytes_read,
        skipped_lines: 0,
        overlong_lines: 0,
    })
}
