//! Go's legacy text heap profile (`/debug/pprof/heap?debug=1`,
//! `pprof.Lookup("heap").WriteTo(w, 1)`), read into the same [`RawProfile`]
//! the protobuf decodes to, with the symbols of its `#` lines: the binary is
//! not needed.
//!
//! ```text
//! heap profile: 72: 4653168 [326: 21299312] @ heap/1048576
//! 68: 4456448 [68: 4456448] @ 0x48927a 0x48dc89 0x6e558d 0x6e55be 0x6e5a25 0x492921
//! #  0x6e558c  main.newChunk+0x2c    memlens.dev/workload/modes_heap.go:37
//! #  0x6e55bd  main.retainLeakChunk+0x5d  memlens.dev/workload/modes_heap.go:101
//! #  0x6e5a24  main.runHeapLeak+0x384    memlens.dev/workload/modes_heap.go:126
//!
//! # runtime.MemStats
//! ```
//!
//! (the `#` lines' fields are separated by tabs).
//!
//! Facts (Go's `runtime/pprof` and `go tool pprof`'s legacy parser; no code
//! copied):
//! - The header's `heap/N` is twice `runtime.MemProfileRate`. Records are
//!   `inuse_objects: inuse_bytes [alloc_objects: alloc_bytes]`, raw sampled
//!   counts; each pair is unsampled like pprof does, by
//!   `1 / (1 - exp(-avg / rate))` with `avg = bytes / objects`, then truncated.
//! - The sample types are `alloc_objects, alloc_space, inuse_objects,
//!   inuse_space` (pprof's order; inuse_space is the default), or pprof's
//!   two-column `objects, space` when the header's alloc totals equal the in-use
//!   ones or are 0 (Go writes alloc bytes + 1 to never produce that).
//! - Stack addresses are return addresses; a location is the address minus 1,
//!   which is also the PC the `#` line prints (`runtime.CallersFrames` only
//!   skips the decrement at a function's entry). One address has several `#`
//!   lines when calls were inlined there, innermost first.
//! - Go prints no `#` line for the runtime frames at the leaf end (the
//!   allocator) nor for `runtime.goexit`: those addresses are left out, as the
//!   protobuf form leaves them out. Then pprof's pruning of allocator frames
//!   runs ([`super::legacy_prune`]).
//! - The `# runtime.MemStats` trailer ends the records; other `#` lines that are
//!   not symbol lines are comments.

use super::legacy_prune::{self, Lines};
use super::proto::{RawFunction, RawLine, RawLocation, RawProfile, RawSample, RawValueType};
use super::PprofError;
use std::collections::HashMap;

/// One `#` line: a frame of the address it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SymbolFrame {
    name: String,
    file: String,
    line: i64,
}

/// A location before pruning: the call address and its frames (innermost first).
#[derive(Debug, Clone)]
struct Location {
    address: u64,
    frames: Vec<SymbolFrame>,
}

impl Lines for Location {
    fn names(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.name.as_str()).collect()
    }
    fn keep_outer_from(&mut self, from: usize) {
        self.frames.drain(..from);
    }
}

/// A record being read: values, stack addresses and the frames found for each.
struct Record {
    values: Vec<i64>,
    addresses: Vec<u64>,
    frames: Vec<Vec<SymbolFrame>>,
    /// The address the last `#` line matched: the next ones match it or a later one.
    cursor: usize,
}

/// The header's facts.
struct Header {
    /// `runtime.MemProfileRate` (the header's number / 2), 0 if absent.
    rate: i64,
    /// Four sample types (alloc and inuse) rather than pprof's two.
    has_alloc: bool,
}

fn error(line: usize, reason: impl Into<String>) -> PprofError {
    PprofError::LegacyHeap {
        line,
        reason: reason.into(),
    }
}

/// Parses Go's text heap profile into the wire message of a protobuf profile.
pub(super) fn parse(bytes: &[u8]) -> Result<RawProfile, PprofError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        error(line, "not UTF-8 text")
    })?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (header_no, header_line) = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or(PprofError::Empty)?;
    let header = parse_header(header_line).map_err(|r| error(header_no, r))?;
    let mut records: Vec<Record> = Vec::new();
    for (no, raw_line) in lines {
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("# runtime.MemStats")
            || line.contains("--- Memory map: ---")
            || line.contains("MAPPED_LIBRARIES:")
        {
            break;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if comment.starts_with("0x") {
                let record = records
                    .last_mut()
                    .ok_or_else(|| error(no, "a `#` symbol line before any record"))?;
                add_symbol(record, comment).map_err(|r| error(no, r))?;
            }
            continue;
        }
        records.push(parse_record(line, &header).map_err(|r| error(no, r))?);
    }
    Ok(build(&header, records))
}

/// `heap profile: I: IB [A: AB] @ heap/N`.
fn parse_header(line: &str) -> Result<Header, String> {
    let rest = line
        .trim()
        .strip_prefix("heap profile:")
        .ok_or("the first line is not `heap profile: ...`")?;
    let (counts, sampling) = rest
        .split_once('@')
        .ok_or("the header has no `@ heap/RATE`")?;
    let (inuse, alloc) = split_counts(counts)?;
    let rate_text = sampling.trim().strip_prefix("heap").ok_or_else(|| {
        format!(
            "the header's sampling is `{}`, not `heap/RATE`",
            sampling.trim()
        )
    })?;
    let rate_text = rate_text.strip_prefix('/').unwrap_or(rate_text).trim();
    let doubled: i64 = if rate_text.is_empty() {
        0
    } else {
        rate_text
            .parse()
            .map_err(|_| format!("the header's rate `{rate_text}` is not a number"))?
    };
    // pprof: two columns unless the alloc totals differ from the in-use ones
    // (and are not 0).
    let differs = |a: &str, i: &str| a != i && a != "0";
    Ok(Header {
        rate: doubled / 2,
        has_alloc: differs(alloc.0, inuse.0) || differs(alloc.1, inuse.1),
    })
}

/// `objects: bytes` as text, both checked to be integers.
type Pair<'a> = (&'a str, &'a str);

/// `I: IB [A: AB]` → the in-use and the alloc pair.
fn split_counts(text: &str) -> Result<(Pair<'_>, Pair<'_>), String> {
    let (inuse, rest) = text
        .split_once('[')
        .ok_or("expected `inuse_objects: inuse_bytes [alloc_objects: alloc_bytes]`")?;
    let alloc = rest
        .trim_end()
        .strip_suffix(']')
        .ok_or("no `]` after the alloc counts")?;
    Ok((pair("in-use", inuse)?, pair("alloc", alloc)?))
}

fn pair<'a>(what: &str, text: &'a str) -> Result<Pair<'a>, String> {
    let (objects, bytes) = text
        .split_once(':')
        .ok_or_else(|| format!("the {what} counts are not `objects: bytes`"))?;
    let (objects, bytes) = (objects.trim(), bytes.trim());
    for n in [objects, bytes] {
        n.parse::<i64>()
            .map_err(|_| format!("the {what} count `{n}` is not an integer"))?;
    }
    Ok((objects, bytes))
}

/// `I: IB [A: AB] @ 0x... 0x...` → values (unsampled) and addresses.
fn parse_record(line: &str, header: &Header) -> Result<Record, String> {
    let (counts, stack) = line.split_once('@').ok_or_else(|| {
        format!(
            "expected a record `inuse_objects: inuse_bytes [alloc_objects: alloc_bytes] @ 0x...`, found `{}`",
            shorten(line)
        )
    })?;
    let (inuse, alloc) = split_counts(counts)?;
    let mut values = Vec::with_capacity(4);
    if header.has_alloc {
        values.extend(unsample("alloc", alloc, header.rate, false)?);
    }
    values.extend(unsample("in-use", inuse, header.rate, true)?);
    let addresses = stack
        .split_whitespace()
        .map(|word| {
            word.strip_prefix("0x")
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .ok_or_else(|| format!("`{}` is not a hex address", shorten(word)))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Record {
        values,
        frames: vec![Vec::new(); addresses.len()],
        addresses,
        cursor: 0,
    })
}

/// One pair of counts, unsampled as pprof does: `[objects, bytes]`.
fn unsample(what: &str, pair: Pair<'_>, rate: i64, signed: bool) -> Result<[i64; 2], String> {
    // Checked by `split_counts`.
    let objects: i64 = pair.0.parse().map_err(|_| "count".to_string())?;
    let bytes: i64 = pair.1.parse().map_err(|_| "count".to_string())?;
    if !signed && (objects < 0 || bytes < 0) {
        return Err(format!("the {what} counts are negative"));
    }
    if objects == 0 && bytes != 0 {
        return Err(format!("{what} objects are 0 but {what} bytes are {bytes}"));
    }
    Ok(scale(objects, bytes, rate))
}

/// pprof's estimate of the unsampled values of a record sampled every `rate`
/// bytes on average: divided by the probability `1 - exp(-avg / rate)` that an
/// object of the record's average size is sampled, truncated.
fn scale(objects: i64, bytes: i64, rate: i64) -> [i64; 2] {
    if objects == 0 || bytes == 0 {
        return [0, 0];
    }
    if rate <= 1 {
        return [objects, bytes];
    }
    let average_bytes = bytes as f64 / objects as f64;
    let factor = 1.0 / (1.0 - (-average_bytes / rate as f64).exp());
    [
        (objects as f64 * factor) as i64,
        (bytes as f64 * factor) as i64,
    ]
}

/// `0xPC\tname+0xOFF\tfile:line` (or `0xPC` alone for an unknown function):
/// a frame of the first address, from the record's cursor on, whose call PC
/// it is.
fn add_symbol(record: &mut Record, text: &str) -> Result<(), String> {
    let mut fields = text.split('\t').map(str::trim).filter(|f| !f.is_empty());
    let pc_text = fields.next().unwrap_or("");
    let pc = pc_text
        .strip_prefix("0x")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| format!("`{}` is not a hex PC", shorten(pc_text)))?;
    let frame = match fields.next() {
        None => SymbolFrame {
            name: format!("{pc:#x}"),
            file: String::new(),
            line: 0,
        },
        Some(function) => {
            let name = match function.rsplit_once("+0x") {
                Some((name, offset)) if u64::from_str_radix(offset, 16).is_ok() => name,
                _ => function,
            };
            let place = fields.collect::<Vec<_>>().join("\t");
            let (file, line) = match place.rsplit_once(':') {
                Some((file, line)) => match line.parse::<i64>() {
                    Ok(line) => (file.to_string(), line),
                    Err(_) => (place.clone(), 0),
                },
                None => (place.clone(), 0),
            };
            SymbolFrame {
                name: name.to_string(),
                file,
                line,
            }
        }
    };
    let found = record.addresses[record.cursor..]
        .iter()
        .position(|&a| a.wrapping_sub(1) == pc || a == pc)
        .ok_or_else(|| {
            format!("symbol line for {pc:#x}, which is not an address of the record (in order)")
        })?;
    record.cursor += found;
    record.frames[record.cursor].push(frame);
    Ok(())
}

fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}...")
    }
}

/// Interns strings for the string table (index 0 is "").
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if self.table.is_empty() {
            self.table.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), id);
        id
    }
}

/// Locations (deduplicated by address and frames), pprof's pruning, then the
/// wire message.
fn build(header: &Header, records: Vec<Record>) -> RawProfile {
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<(u64, Vec<SymbolFrame>), u32> = HashMap::new();
    let mut stacks: Vec<(Vec<u32>, Vec<i64>)> = Vec::with_capacity(records.len());
    for record in records {
        let mut stack = Vec::with_capacity(record.addresses.len());
        for (address, frames) in record.addresses.into_iter().zip(record.frames) {
            if frames.is_empty() {
                // Hidden by Go: allocator frames at the leaf end, runtime.goexit.
                continue;
            }
            let address = address.wrapping_sub(1);
            let next = locations.len() as u32;
            let id = *location_ids
                .entry((address, frames.clone()))
                .or_insert_with(|| {
                    locations.push(Location { address, frames });
                    next
                });
            stack.push(id);
        }
        stacks.push((stack, record.values));
    }
    let cuts = legacy_prune::cut_locations(&mut locations);
    for (stack, _) in &mut stacks {
        legacy_prune::cut_stack(stack, &cuts);
    }

    let mut strings = Strings::default();
    let types: &[(&str, &str)] = if header.has_alloc {
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]
    } else {
        &[("objects", "count"), ("space", "bytes")]
    };
    let sample_type = types
        .iter()
        .map(|(t, u)| RawValueType {
            r#type: strings.id(t),
            unit: strings.id(u),
        })
        .collect();
    let period_type = Some(RawValueType {
        r#type: strings.id("space"),
        unit: strings.id("bytes"),
    });
    let mut functions: Vec<RawFunction> = Vec::new();
    let mut function_ids: HashMap<(String, String), u64> = HashMap::new();
    let location = locations
        .iter()
        .enumerate()
        .map(|(i, loc)| RawLocation {
            id: i as u64 + 1,
            mapping_id: 0,
            address: loc.address,
            line: loc
                .frames
                .iter()
                .map(|f| {
                    let key = (f.name.clone(), f.file.clone());
                    let next = functions.len() as u64 + 1;
                    let function_id = *function_ids.entry(key).or_insert_with(|| {
                        let name = strings.id(&f.name);
                        functions.push(RawFunction {
                            id: next,
                            name,
                            system_name: name,
                            filename: strings.id(&f.file),
                            start_line: 0,
                        });
                        next
                    });
                    RawLine {
                        function_id,
                        line: f.line,
                        column: 0,
                    }
                })
                .collect(),
            is_folded: false,
        })
        .collect();
    let sample = stacks
        .into_iter()
        .map(|(stack, value)| RawSample {
            location_id: stack.into_iter().map(|i| u64::from(i) + 1).collect(),
            value,
            label: Vec::new(),
        })
        .collect();
    RawProfile {
        sample_type,
        sample,
        mapping: Vec::new(),
        location,
        function: functions,
        string_table: strings.table,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: 0,
        duration_nanos: 0,
        period_type,
        period: header.rate,
        comment: Vec::new(),
        default_sample_type: 0,
    }
}
