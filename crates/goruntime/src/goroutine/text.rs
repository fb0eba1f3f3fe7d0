//! The streaming reader of full goroutine dumps: `?debug=2` and SIGQUIT/crash
//! output. One goroutine at a time is held (its frames, capped), folded into the
//! [`Aggregator`] at its end, then forgotten.

use super::aggregate::{cap_str, Aggregator, Record, ScratchFrame};
use super::error::GoroutineError;
use super::lines::LineReader;
use super::model::{Analysis, DumpFormat, Limits, Truncation};
use super::syntax::{
    is_elision, parse_created_by, parse_file_line, parse_function_line, parse_header,
};
use std::io::BufRead;

/// The size at which the runtime stops `?debug=2` output (`writeGoroutineStacks`
/// gives up doubling its buffer at 64 MiB and writes what fits).
pub const DEBUG2_CAP_BYTES: u64 = 64 << 20;

/// Frames beyond the key's cap that are still read, so that leading scheduler
/// frames can be dropped and the key still has `max_frames` frames.
const EXTRA_SCRATCH_FRAMES: usize = 32;

/// What the line before was, inside a goroutine block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Header,
    Function,
    File,
    CreatedBy,
    CreatedFile,
    Other,
}

/// The goroutine being read.
#[derive(Debug, Default)]
struct Current {
    id: u64,
    state: String,
    wait_minutes: Option<u64>,
    leaked: bool,
    locked_to_thread: bool,
    frames: Vec<ScratchFrame>,
    frames_len: usize,
    dump_elided: bool,
    created_function: String,
    created_file: String,
    created_line: u32,
    has_created_by: bool,
    creator_id: Option<u64>,
}

/// Reads a `?debug=2` or SIGQUIT dump to its end.
pub(crate) fn read_text<R: BufRead>(
    mut lines: LineReader<'_, R>,
    limits: Limits,
    first_line_hint: String,
) -> Result<Analysis, GoroutineError> {
    let mut agg = Aggregator::new(limits, false);
    let mut cur = Current::default();
    let mut in_block = false;
    let mut last = Last::Other;
    let mut sigquit = false;
    let mut skipped_lines = 0u64;
    let mut lossy = String::new();
    let max_scratch = limits.max_frames + EXTRA_SCRATCH_FRAMES;
    let max_name = limits.max_name_bytes;

    while let Some(bytes) = lines.next_line()? {
        let line: &str = match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => {
                lossy.clear();
                lossy.push_str(&String::from_utf8_lossy(bytes));
                &lossy
            }
        };
        if line.is_empty() {
            if in_block {
                flush(&mut agg, &cur);
                in_block = false;
            }
            continue;
        }
        if let Some(header) = parse_header(line) {
            if in_block {
                flush(&mut agg, &cur);
            }
            sigquit |= header.id == 0 || line.contains(" gp=");
            cur.id = header.id;
            cur.state.clear();
            cur.state.push_str(cap_str(header.state, 128));
            cur.wait_minutes = header.wait_minutes;
            cur.leaked = header.leaked;
            cur.locked_to_thread = header.locked_to_thread;
            cur.frames_len = 0;
            cur.dump_elided = false;
            cur.has_created_by = false;
            cur.creator_id = None;
            in_block = true;
            last = Last::Header;
            continue;
        }
        if !in_block {
            if line.starts_with("SIGQUIT:")
                || line.starts_with("panic: ")
                || line.starts_with("fatal error: ")
            {
                sigquit = true;
            }
            skipped_lines += 1;
            continue;
        }
        if let Some((function, creator)) = parse_created_by(line) {
            cur.has_created_by = true;
            cur.created_function.clear();
            cur.created_function.push_str(cap_str(function, max_name));
            cur.created_file.clear();
            cur.created_line = 0;
            cur.creator_id = creator;
            last = Last::CreatedBy;
        } else if line.starts_with('\t') {
            match parse_file_line(line) {
                Some((file, number)) if last == Last::Function || last == Last::CreatedBy => {
                    // Only the tail after file:line can hold ` fp=` (see parse_file_line).
                    sigquit = sigquit || line[line.len().min(1 + file.len())..].contains(" fp=");
                    if last == Last::Function {
                        if let Some(frame) = cur.frames[..cur.frames_len].last_mut() {
                            frame.file.clear();
                            frame.file.push_str(cap_str(file, max_name));
                            frame.line = number;
                        }
                        last = Last::File;
                    } else {
                        cur.created_file.push_str(cap_str(file, max_name));
                        cur.created_line = number;
                        last = Last::CreatedFile;
                    }
                }
                _ => {
                    skipped_lines += 1;
                    last = Last::Other;
                }
            }
        } else if is_elision(line) {
            cur.dump_elided = true;
            last = Last::Other;
        } else if let Some(function) = parse_function_line(line) {
            if cur.frames_len < max_scratch {
                if cur.frames.len() == cur.frames_len {
                    cur.frames.push(ScratchFrame::default());
                }
                let frame = &mut cur.frames[cur.frames_len];
                frame.function.clear();
                frame.function.push_str(cap_str(function, max_name));
                frame.file.clear();
                frame.line = 0;
                cur.frames_len += 1;
            } else {
                cur.dump_elided = true;
            }
            last = Last::Function;
        } else {
            skipped_lines += 1;
            last = Last::Other;
        }
    }
    lines.finish_progress();

    let format = if sigquit {
        DumpFormat::Sigquit
    } else {
        DumpFormat::Debug2
    };
    let mut reasons = Vec::new();
    if in_block {
        if !lines.ended_with_newline {
            reasons.push("the last line ends without a newline (cut mid-line)".to_string());
        }
        match last {
            Last::Function => reasons.push("the last frame has no file:line line".to_string()),
            Last::CreatedBy => {
                reasons.push("the last `created by` has no file:line line".to_string())
            }
            Last::Header => reasons.push("the last goroutine has no frames".to_string()),
            _ => {}
        }
        flush(&mut agg, &cur);
    }
    if format == DumpFormat::Debug2 && lines.bytes_read == DEBUG2_CAP_BYTES {
        reasons.push(format!(
            "it is exactly {DEBUG2_CAP_BYTES} bytes (64 MiB), where the Go runtime silently \
             cuts ?debug=2 output"
        ));
    }
    let total = agg.total();
    if total == 0 {
        if lines.bytes_read == 0 {
            return Err(GoroutineError::Empty);
        }
        return Err(GoroutineError::NotADump {
            lines: lines.line_number,
            first_line: first_line_hint,
        });
    }
    let truncation = (!reasons.is_empty()).then(|| Truncation {
        reason: reasons.join("; "),
        goroutines_read: total,
    });
    let (groups, by_creation, overflow) = agg.finish();
    Ok(Analysis {
        format,
        total_goroutines: total,
        declared_total: None,
        groups,
        by_creation,
        overflow,
        truncation,
        from_leak_profile: false,
        bytes_read: lines.bytes_read,
        skipped_lines,
        overlong_lines: lines.overlong_lines,
    })
}

/// Folds the goroutine just read into the aggregate. `goroutine 0` of SIGQUIT
/// dumps is an M's scheduler stack, not a goroutine: it is not counted.
fn flush(agg: &mut Aggregator, cur: &Current) {
    if cur.id == 0 {
        return;
    }
    let record = Record {
        id: Some(cur.id),
        state: Some(&cur.state),
        wait_minutes: cur.wait_minutes,
        leaked: cur.leaked,
        locked_to_thread: cur.locked_to_thread,
        frames: &cur.frames[..cur.frames_len],
        dump_elided: cur.dump_elided,
        created_by: cur.has_created_by.then_some((
            cur.created_function.as_str(),
            cur.created_file.as_str(),
            cur.created_line,
        )),
        creator_id: cur.creator_id,
    };
    agg.add(&record, 1);
}
