//! The reader of `?debug=1` goroutine (and goroutineleak) profiles:
//! `goroutine profile: total N`, then per distinct stack `K @ 0x.. 0x..` and its
//! `#\t0xPC\tfunction+0xOFF\tfile:line` frame lines.

use super::aggregate::{cap_str, Aggregator, Record, ScratchFrame};
use super::error::GoroutineError;
use super::infer::infer_state;
use super::lines::LineReader;
use super::model::{Analysis, DumpFormat, Limits};
use super::syntax::{parse_debug1_count, parse_debug1_frame, parse_debug1_total};
use std::io::BufRead;

/// Reads a `?debug=1` profile to its end.
pub(crate) fn read_debug1<R: BufRead>(
    mut lines: LineReader<'_, R>,
    limits: Limits,
) -> Result<Analysis, GoroutineError> {
    let mut agg = Aggregator::new(limits, true);
    let mut declared_total = None;
    let mut from_leak_profile = false;
    let mut frames: Vec<ScratchFrame> = Vec::new();
    let mut frames_len = 0usize;
    let mut block_count: Option<u64> = None;
    let mut elided = false;
    let mut skipped_lines = 0u64;
    let max_scratch = limits.max_frames + 32;
    let max_name = limits.max_name_bytes;

    while let Some(bytes) = lines.next_line()? {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let line = text.as_str();
        let line_number = lines.line_number;
        if declared_total.is_none() {
            if line.trim().is_empty() {
                continue;
            }
            let (name, total) =
                parse_debug1_total(line).ok_or_else(|| GoroutineError::Malformed {
                    line: line_number,
                    what: format!(
                        "expected `goroutine profile: total N`, found {:?}",
                        cap_str(line, 80)
                    ),
                })?;
            from_leak_profile = name == "goroutineleak";
            declared_total = Some(total);
            continue;
        }
        if line.is_empty() {
            flush(
                &mut agg,
                block_count.take(),
                &frames[..frames_len],
                elided,
                from_leak_profile,
            );
            frames_len = 0;
            elided = false;
            continue;
        }
        if let Some(count) = parse_debug1_count(line) {
            flush(
                &mut agg,
                block_count.take(),
                &frames[..frames_len],
                elided,
                from_leak_profile,
            );
            frames_len = 0;
            elided = false;
            block_count = Some(count);
            continue;
        }
        match parse_debug1_frame(line) {
            Some((function, file, number)) if block_count.is_some() => {
                if frames_len == max_scratch {
                    elided = true;
                    continue;
                }
                if frames.len() == frames_len {
                    frames.push(ScratchFrame::default());
                }
                let frame = &mut frames[frames_len];
                frame.function.clear();
                frame.function.push_str(cap_str(function, max_name));
                frame.file.clear();
                frame.file.push_str(cap_str(file, max_name));
                frame.line = number;
                frames_len += 1;
            }
            _ => skipped_lines += 1,
        }
    }
    lines.finish_progress();
    flush(
        &mut agg,
        block_count.take(),
        &frames[..frames_len],
        elided,
        from_leak_profile,
    );
    if declared_total.is_none() {
        return Err(GoroutineError::Empty);
    }
    let total = agg.total();
    let (groups, by_creation, overflow) = agg.finish();
    Ok(Analysis {
        format: DumpFormat::Debug1,
        total_goroutines: total,
        declared_total,
        groups,
        by_creation,
        overflow,
        truncation: None,
        from_leak_profile,
        bytes_read: lines.bytes_read,
        skipped_lines,
        overlong_lines: lines.overlong_lines,
    })
}

fn flush(
    agg: &mut Aggregator,
    count: Option<u64>,
    frames: &[ScratchFrame],
    elided: bool,
    leaked: bool,
) {
    let Some(count) = count else { return };
    let record = Record {
        state: infer_state(frames.iter().map(|f| f.function.as_str())),
        leaked,
        frames,
        dump_elided: elided,
        ..Record::default()
    };
    agg.add(&record, count);
}
