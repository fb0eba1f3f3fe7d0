//! [`Profile`]: a decoded pprof profile whose ids are all resolved and checked,
//! stored in flat arrays indexed by `u32` so that walking hundreds of thousands of
//! stacks allocates nothing.

use super::decode::{decode_raw, decode_raw_any, MAX_DECOMPRESSED_BYTES};
use super::proto::{RawLocation, RawProfile};
use super::PprofError;
use std::collections::HashMap;

/// One frame of a stack: a function, its file and the line in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Function name as the profile gives it (`main.retainLeakChunk`), or the
    /// address in hex for an unsymbolised location.
    pub function: String,
    /// Source file, empty when unknown.
    pub file: String,
    /// Line number, 0 when unknown.
    pub line: i64,
}

/// One function (deduplicated by name: two functions with the same name share
/// `name_id`, as `go tool pprof` merges them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FunctionEntry {
    /// String index of the name.
    pub name: u32,
    /// String index of the file.
    pub file: u32,
    /// Dense id of the name, `0..name_count`.
    pub name_id: u32,
}

/// One source line of a location.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineEntry {
    /// Index into `functions`.
    pub function: u32,
    /// Line number.
    pub line: i64,
}

/// One location: an address and its lines `lines[start..end]` (innermost first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocationEntry {
    /// Instruction address (Go writes the return address minus one).
    pub address: u64,
    /// Index into `mappings`, if any.
    pub mapping: Option<u32>,
    /// First line index.
    pub lines_start: u32,
    /// One past the last line index.
    pub lines_end: u32,
}

/// A mapped binary of the profiled process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub memory_start: u64,
    /// End address (exclusive).
    pub memory_limit: u64,
    /// File offset of `memory_start`.
    pub file_offset: u64,
    /// Path of the binary as the process saw it.
    pub filename: String,
    /// Build id, empty when unknown.
    pub build_id: String,
}

/// A decoded, checked pprof profile (heap, allocs, goroutine, CPU, ...).
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) strings: Vec<String>,
    sample_types: Vec<(u32, u32)>,
    period_type: Option<(u32, u32)>,
    period: i64,
    time_nanos: i64,
    duration_nanos: i64,
    default_sample_type: u32,
    pub(crate) functions: Vec<FunctionEntry>,
    /// Name (string index) of each name id.
    pub(crate) name_strings: Vec<u32>,
    pub(crate) lines: Vec<LineEntry>,
    pub(crate) locations: Vec<LocationEntry>,
    mappings: Vec<Mapping>,
    /// Per sample: location indices `sample_locations[sample_starts[i]..sample_starts[i+1]]`.
    pub(crate) sample_starts: Vec<u32>,
    pub(crate) sample_locations: Vec<u32>,
    /// `values[i * n .. (i + 1) * n]` with `n` sample types.
    pub(crate) values: Vec<i64>,
    /// Per sample: string labels `label_starts[i]..label_starts[i+1]` as (key, value) string indices.
    label_starts: Vec<u32>,
    labels: Vec<(u32, u32)>,
}

fn to_u32(n: usize, what: &'static str) -> Result<u32, PprofError> {
    u32::try_from(n).map_err(|_| PprofError::TooMany(what))
}

/// Checks a string index against the table.
fn string_index(index: i64, len: usize, what: &'static str) -> Result<u32, PprofError> {
    if index >= 0 && (index as u64) < len as u64 {
        Ok(index as u32)
    } else {
        Err(PprofError::DanglingString { what, index, len })
    }
}

impl Profile {
    /// Decodes a profile: gzipped (detected by the magic `1f 8b`) or plain
    /// protobuf, decompressing at most [`MAX_DECOMPRESSED_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Profile, PprofError> {
        Self::decode_with_limit(bytes, MAX_DECOMPRESSED_BYTES)
    }

    /// [`Profile::decode`] with another limit on the decompressed size.
    pub fn decode_with_limit(bytes: &[u8], limit_bytes: u64) -> Result<Profile, PprofError> {
        let raw = decode_raw(bytes, limit_bytes)?;
        Self::from_raw(raw)
    }

    /// Like [`Profile::decode`], and also Go's legacy text heap profile
    /// (`/debug/pprof/heap?debug=1`, gzipped or not), symbolised from its `#`
    /// lines, with the values and sample types `go tool pprof` gives it. Other
    /// legacy formats are refused with [`PprofError::LegacyFormat`] naming them.
    pub fn decode_any(bytes: &[u8]) -> Result<Profile, PprofError> {
        Self::from_raw(decode_raw_any(bytes, MAX_DECOMPRESSED_BYTES)?)
    }

    fn from_raw(raw: RawProfile) -> Result<Profile, PprofError> {
        let mut strings = raw.string_table;
        let n_strings = strings.len();
        if raw.sample_type.is_empty() {
            return Err(PprofError::NoSampleTypes);
        }
        let sample_types = raw
            .sample_type
            .iter()
            .map(|vt| {
                Ok((
                    string_index(vt.r#type, n_strings, "sample_type.type")?,
                    string_index(vt.unit, n_strings, "sample_type.unit")?,
                ))
            })
            .collect::<Result<Vec<_>, PprofError>>()?;
        let period_type = match &raw.period_type {
            Some(vt) => Some((
                string_index(vt.r#type, n_strings, "period_type.type")?,
                string_index(vt.unit, n_strings, "period_type.unit")?,
            )),
            None => None,
        };
        let default_sample_type =
            string_index(raw.default_sample_type, n_strings, "default_sample_type")?;
        for c in &raw.comment {
            string_index(*c, n_strings, "comment")?;
        }

        // Mappings.
        let mut mapping_index: HashMap<u64, u32> = HashMap::with_capacity(raw.mapping.len());
        let mut mappings = Vec::with_capacity(raw.mapping.len());
        for m in &raw.mapping {
            let idx = to_u32(mappings.len(), "mappings")?;
            if mapping_index.insert(m.id, idx).is_some() {
                return Err(PprofError::DuplicateId {
                    what: "mapping",
                    id: m.id,
                });
            }
            mappings.push(Mapping {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: strings
                    [string_index(m.filename, n_strings, "mapping.filename")? as usize]
                    .clone(),
                build_id: strings
                    [string_index(m.build_id, n_strings, "mapping.build_id")? as usize]
                    .clone(),
            });
        }

        // Functions, with names interned to dense ids.
        let mut function_index: HashMap<u64, u32> = HashMap::with_capacity(raw.function.len());
        let mut name_ids: HashMap<u32, u32> = HashMap::with_capacity(raw.function.len());
        let mut name_by_text: HashMap<&str, u32> = HashMap::with_capacity(raw.function.len());
        let mut name_strings: Vec<u32> = Vec::with_capacity(raw.function.len());
        let mut functions = Vec::with_capacity(raw.function.len());
        for f in &raw.function {
            let name = string_index(f.name, n_strings, "function.name")?;
            let file = string_index(f.filename, n_strings, "function.filename")?;
            string_index(f.system_name, n_strings, "function.system_name")?;
            let name_id = match name_ids.get(&name) {
                Some(id) => *id,
                None => {
                    let text = strings[name as usize].as_str();
                    let id = match name_by_text.get(text) {
                        Some(id) => *id,
                        None => {
                            let id = to_u32(name_strings.len(), "function names")?;
                            name_strings.push(name);
                            name_by_text.insert(text, id);
                            id
                        }
                    };
                    name_ids.insert(name, id);
                    id
                }
            };
            let idx = to_u32(functions.len(), "functions")?;
            if function_index.insert(f.id, idx).is_some() {
                return Err(PprofError::DuplicateId {
                    what: "function",
                    id: f.id,
                });
            }
            functions.push(FunctionEntry {
                name,
                file,
                name_id,
            });
        }
        drop(name_by_text);

        // Locations and their lines; an unsymbolised location gets a synthetic
        // function named by its address, as pprof prints it.
        let mut location_index: HashMap<u64, u32> = HashMap::with_capacity(raw.location.len());
        let mut locations = Vec::with_capacity(raw.location.len());
        let mut lines = Vec::with_capacity(raw.location.len());
        for loc in &raw.location {
            let idx = to_u32(locations.len(), "locations")?;
            if location_index.insert(loc.id, idx).is_some() {
                return Err(PprofError::DuplicateId {
                    what: "location",
                    id: loc.id,
                });
            }
            let mapping = match loc.mapping_id {
                0 => None,
                id => Some(*mapping_index.get(&id).ok_or(PprofError::DanglingMapping {
                    location: loc.id,
                    id,
                })?),
            };
            let lines_start = to_u32(lines.len(), "lines")?;
            push_lines(
                loc,
                &function_index,
                &mut functions,
                &mut name_strings,
                &mut strings,
                &mut lines,
            )?;
            locations.push(LocationEntry {
                address: loc.address,
                mapping,
                lines_start,
                lines_end: to_u32(lines.len(), "lines")?,
            });
        }

        // Samples, flattened.
        let n_types = sample_types.len();
        let n_samples = raw.sample.len();
        let total_locs: usize = raw.sample.iter().map(|s| s.location_id.len()).sum();
        let mut sample_starts = Vec::with_capacity(n_samples + 1);
        let mut sample_locations = Vec::with_capacity(total_locs);
        let mut values = Vec::with_capacity(n_samples * n_types);
        let mut label_starts = Vec::with_capacity(n_samples + 1);
        let mut labels = Vec::new();
        // Go numbers locations 1..=N: a dense table avoids hashing per frame.
        let dense: Option<Vec<u32>> = dense_ids(&raw.location);
        sample_starts.push(0);
        label_starts.push(0);
        for (i, s) in raw.sample.iter().enumerate() {
            if s.value.len() != n_types {
                return Err(PprofError::ValueCount {
                    sample: i,
                    found: s.value.len(),
                    expected: n_types,
                });
            }
            for &id in &s.location_id {
                let idx = match &dense {
                    Some(table) => usize::try_from(id)
                        .ok()
                        .and_then(|id| table.get(id))
                        .copied()
                        .filter(|&v| v != u32::MAX),
                    None => location_index.get(&id).copied(),
                };
                let idx = idx.ok_or(PprofError::DanglingLocation { sample: i, id })?;
                sample_locations.push(idx);
            }
            sample_starts.push(to_u32(sample_locations.len(), "sample frames")?);
            values.extend_from_slice(&s.value);
            for l in &s.label {
                let key = string_index(l.key, strings.len(), "label.key")?;
                let value = string_index(l.str, strings.len(), "label.str")?;
                string_index(l.num_unit, strings.len(), "label.num_unit")?;
                if value != 0 {
                    labels.push((key, value));
                }
            }
            label_starts.push(to_u32(labels.len(), "labels")?);
        }

        Ok(Profile {
            strings,
            sample_types,
            period_type,
            period: raw.period,
            time_nanos: raw.time_nanos,
            duration_nanos: raw.duration_nanos,
            default_sample_type,
            functions,
            name_strings,
            lines,
            locations,
            mappings,
            sample_starts,
            sample_locations,
            values,
            label_starts,
            labels,
        })
    }

    /// `(type, unit)` of each sample value, e.g. `("inuse_space", "bytes")`.
    pub fn sample_types(&self) -> Vec<(String, String)> {
        self.sample_types
            .iter()
            .map(|&(t, u)| (self.str(t).to_string(), self.str(u).to_string()))
            .collect()
    }

    /// Index of the sample type named `name` (`inuse_space`, `alloc_objects`, ...).
    pub fn sample_type_index(&self, name: &str) -> Option<usize> {
        self.sample_types
            .iter()
            .position(|&(t, _)| self.str(t) == name)
    }

    /// Like [`Profile::sample_type_index`], with an error listing what exists.
    pub fn require_sample_type(&self, name: &str) -> Result<usize, PprofError> {
        self.sample_type_index(name)
            .ok_or_else(|| PprofError::UnknownSampleType {
                name: name.to_string(),
                available: self
                    .sample_types
                    .iter()
                    .map(|&(t, _)| self.str(t))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The sample type a viewer shows by default: the one named by
    /// `default_sample_type`, else the last one (pprof's rule).
    pub fn default_sample_index(&self) -> usize {
        if self.default_sample_type != 0 {
            if let Some(i) = self
                .sample_types
                .iter()
                .position(|&(t, _)| t == self.default_sample_type)
            {
                return i;
            }
        }
        self.sample_types.len() - 1
    }

    /// `(type, unit)` of the sampling period, e.g. `("space", "bytes")`.
    pub fn period_type(&self) -> Option<(String, String)> {
        self.period_type
            .map(|(t, u)| (self.str(t).to_string(), self.str(u).to_string()))
    }

    /// Events between two samples (for a Go heap profile: the MemProfileRate, bytes).
    pub fn period(&self) -> i64 {
        self.period
    }

    /// When the profile was taken, in nanoseconds since the Unix epoch (0 if unknown).
    pub fn time_nanos(&self) -> i64 {
        self.time_nanos
    }

    /// The time the profile covers, in nanoseconds (0 if unknown).
    pub fn duration_nanos(&self) -> i64 {
        self.duration_nanos
    }

    /// The binaries mapped into the profiled process.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.sample_starts.len() - 1
    }

    /// Each sample as (frames leaf first with inlined calls expanded, values in
    /// sample type order, string labels as `(key, value)`).
    pub fn stacks(&self) -> impl Iterator<Item = (Vec<Frame>, &[i64], Vec<(String, String)>)> {
        (0..self.sample_count()).map(move |i| {
            let mut frames = Vec::new();
            for &loc in self.sample_locs(i) {
                for line in self.location_lines(loc) {
                    let f = self.functions[line.function as usize];
                    frames.push(Frame {
                        function: self.str(f.name).to_string(),
                        file: self.str(f.file).to_string(),
                        line: line.line,
                    });
                }
            }
            let labels = self.labels
                [self.label_starts[i] as usize..self.label_starts[i + 1] as usize]
                .iter()
                .map(|&(k, v)| (self.str(k).to_string(), self.str(v).to_string()))
                .collect();
            (frames, self.sample_values(i), labels)
        })
    }

    /// The call address of each location of sample `sample`, leaf first
    /// (return address minus one, as `go tool pprof -addresses` prints them).
    pub fn sample_addresses(&self, sample: usize) -> Vec<u64> {
        self.sample_locs(sample)
            .iter()
            .map(|&loc| self.locations[loc as usize].address)
            .collect()
    }

    pub(crate) fn str(&self, index: u32) -> &str {
        &self.strings[index as usize]
    }

    /// Number of distinct function names.
    pub(crate) fn name_count(&self) -> usize {
        self.name_strings.len()
    }

    /// The text of a name id.
    pub(crate) fn name(&self, name_id: u32) -> &str {
        self.str(self.name_strings[name_id as usize])
    }

    pub(crate) fn sample_locs(&self, sample: usize) -> &[u32] {
        &self.sample_locations
            [self.sample_starts[sample] as usize..self.sample_starts[sample + 1] as usize]
    }

    pub(crate) fn sample_values(&self, sample: usize) -> &[i64] {
        let n = self.sample_types.len();
        &self.values[sample * n..(sample + 1) * n]
    }

    pub(crate) fn location_lines(&self, loc: u32) -> &[LineEntry] {
        let l = self.locations[loc as usize];
        &self.lines[l.lines_start as usize..l.lines_end as usize]
    }

    /// Name ids of a sample's frames, leaf first.
    pub(crate) fn sample_name_ids(&self, sample: usize) -> impl Iterator<Item = u32> + '_ {
        self.sample_locs(sample).iter().flat_map(move |&loc| {
            self.location_lines(loc)
                .iter()
                .map(move |line| self.functions[line.function as usize].name_id)
        })
    }

    /// Checks a sample type index.
    pub(crate) fn check_index(&self, index: usize) -> Result<(), PprofError> {
        if index < self.sample_types.len() {
            Ok(())
        } else {
            Err(PprofError::SampleIndex {
                index,
                count: self.sample_types.len(),
            })
        }
    }
}

/// A table id → index when the location ids are small enough (Go: 1..=N).
fn dense_ids(locations: &[RawLocation]) -> Option<Vec<u32>> {
    let max = locations.iter().map(|l| l.id).max()?;
    if max > 4 * locations.len() as u64 + 1024 {
        return None;
    }
    let mut table = vec![u32::MAX; max as usize + 1];
    for (i, l) in locations.iter().enumerate() {
        table[l.id as usize] = i as u32;
    }
    Some(table)
}

fn push_lines(
    loc: &RawLocation,
    function_index: &HashMap<u64, u32>,
    functions: &mut Vec<FunctionEntry>,
    name_strings: &mut Vec<u32>,
    strings: &mut Vec<String>,
    lines: &mut Vec<LineEntry>,
) -> Result<(), PprofError> {
    if loc.line.is_empty() {
        let name = to_u32(strings.len(), "strings")?;
        strings.push(format!("{:#x}", loc.address));
        let name_id = to_u32(name_strings.len(), "function names")?;
        name_strings.push(name);
        let function = to_u32(functions.len(), "functions")?;
        functions.push(FunctionEntry {
            name,
            file: 0,
            name_id,
        });
        lines.push(LineEntry { function, line: 0 });
        return Ok(());
    }
    for line in &loc.line {
        let function =
            *function_index
                .get(&line.function_id)
                .ok_or(PprofError::DanglingFunction {
                    location: loc.id,
                    id: line.function_id,
                })?;
        lines.push(LineEntry {
            function,
            line: line.line,
        });
    }
    Ok(())
}
