//! expvar's `/debug/vars`: a JSON object with `cmdline` (the argv), `memstats`
//! (`runtime.MemStats` as `encoding/json` writes it) and the program's own vars.
//!
//! [`parse_expvar`] reads `memstats` into [`MemStats`], whose fields carry their
//! unit in the name (`heap_alloc_bytes`, `pause_total_ns`, `last_gc_unix_ns`).
//! Every field is an `Option`: a missing key is tolerated (older or newer Go,
//! or a hand-made file), but a key holding the wrong type (a string where a
//! count belongs, a negative or fractional count) is an error naming the key.
//! The other top-level vars are kept as [`serde_json::Value`]s.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// An expvar document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ExpvarError {
    /// The input being parsed (file name or URL).
    pub input: String,
    /// The 1-based line of a JSON syntax error, when there is one.
    pub line: Option<usize>,
    /// What is wrong, in words (for a bad field: its JSON path).
    pub reason: String,
}

impl fmt::Display for ExpvarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.input, line, self.reason),
            None => write!(f, "{}: {}", self.input, self.reason),
        }
    }
}

/// The largest document read (real ones are a few KiB; a program may publish
/// big vars of its own, so the cap is generous).
pub const MAX_EXPVAR_BYTES: usize = 64 << 20;

/// Length of the `PauseNs` / `PauseEnd` ring buffers in `runtime.MemStats`.
pub const PAUSE_RING_LEN: usize = 256;

/// One size class of `MemStats.BySize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SizeClass {
    /// The largest object size of the class, bytes.
    pub size_bytes: u64,
    /// Objects allocated in the class since start.
    pub mallocs: u64,
    /// Objects freed in the class since start.
    pub frees: u64,
}

/// `runtime.MemStats`, field by field (see the Go documentation of each).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemStats {
    /// `Alloc`: bytes of allocated heap objects (= `HeapAlloc`).
    pub alloc_bytes: Option<u64>,
    /// `TotalAlloc`: cumulative bytes allocated for heap objects.
    pub total_alloc_bytes: Option<u64>,
    /// `Sys`: total bytes of memory obtained from the OS.
    pub sys_bytes: Option<u64>,
    /// `Lookups`: pointer lookups (always 0 in modern Go).
    pub lookups: Option<u64>,
    /// `Mallocs`: cumulative heap objects allocated.
    pub mallocs: Option<u64>,
    /// `Frees`: cumulative heap objects freed.
    pub frees: Option<u64>,
    /// `HeapAlloc`: bytes of allocated heap objects.
    pub heap_alloc_bytes: Option<u64>,
    /// `HeapSys`: bytes of heap memory obtained from the OS.
    pub heap_sys_bytes: Option<u64>,
    /// `HeapIdle`: bytes in idle (unused) spans.
    pub heap_idle_bytes: Option<u64>,
    /// `HeapInuse`: bytes in in-use spans.
    pub heap_inuse_bytes: Option<u64>,
    /// `HeapReleased`: bytes of physical memory returned to the OS.
    pub heap_released_bytes: Option<u64>,
    /// `HeapObjects`: allocated heap objects.
    pub heap_objects: Option<u64>,
    /// `StackInuse`: bytes in stack spans.
    pub stack_inuse_bytes: Option<u64>,
    /// `StackSys`: stack memory obtained from the OS.
    pub stack_sys_bytes: Option<u64>,
    /// `MSpanInuse`: bytes of allocated mspan structures.
    pub mspan_inuse_bytes: Option<u64>,
    /// `MSpanSys`: bytes obtained from the OS for mspan structures.
    pub mspan_sys_bytes: Option<u64>,
    /// `MCacheInuse`: bytes of allocated mcache structures.
    pub mcache_inuse_bytes: Option<u64>,
    /// `MCacheSys`: bytes obtained from the OS for mcache structures.
    pub mcache_sys_bytes: Option<u64>,
    /// `BuckHashSys`: bytes of profiling bucket hash tables.
    pub buck_hash_sys_bytes: Option<u64>,
    /// `GCSys`: bytes of garbage collection metadata.
    pub gc_sys_bytes: Option<u64>,
    /// `OtherSys`: bytes of miscellaneous off-heap runtime allocations.
    pub other_sys_bytes: Option<u64>,
    /// `NextGC`: the heap goal of the next cycle, bytes.
    pub next_gc_bytes: Option<u64>,
    /// `LastGC`: end of the last GC, nanoseconds since the Unix epoch (0: none yet).
    pub last_gc_unix_ns: Option<u64>,
    /// `PauseTotalNs`: cumulative stop-the-world pause time, nanoseconds.
    pub pause_total_ns: Option<u64>,
    /// `PauseNs`: ring of recent pause times, nanoseconds; the most recent is at
    /// `(NumGC+255)%256` (see [`MemStats::last_pause_ns`]).
    pub pause_ns: Vec<u64>,
    /// `PauseEnd`: ring of recent pause end times, nanoseconds since the epoch.
    pub pause_end_unix_ns: Vec<u64>,
    /// `NumGC`: completed GC cycles.
    pub num_gc: Option<u64>,
    /// `NumForcedGC`: GC cycles forced by the application (`runtime.GC`).
    pub num_forced_gc: Option<u64>,
    /// `GCCPUFraction`: share of the available CPU used by GC since start (0..1).
    pub gc_cpu_fraction: Option<f64>,
    /// `EnableGC`: always true, even with `GOGC=off`.
    pub enable_gc: Option<bool>,
    /// `DebugGC`: currently unused by the runtime.
    pub debug_gc: Option<bool>,
    /// `BySize`: per size class allocation counts.
    pub by_size: Vec<SizeClass>,
}

impl MemStats {
    /// The most recent pause, from the `PauseNs` ring (`None` before the first GC).
    pub fn last_pause_ns(&self) -> Option<u64> {
        let num_gc = self.num_gc?;
        if num_gc == 0 || self.pause_ns.len() != PAUSE_RING_LEN {
            return None;
        }
        self.pause_ns
            .get(((num_gc + PAUSE_RING_LEN as u64 - 1) % PAUSE_RING_LEN as u64) as usize)
            .copied()
    }

    /// Runtime overhead outside the heap and stacks: `Sys - HeapSys - StackSys`
    /// (mspan, mcache, profiling buckets, GC metadata, other).
    pub fn runtime_overhead_bytes(&self) -> Option<u64> {
        self.sys_bytes?
            .checked_sub(self.heap_sys_bytes?)?
            .checked_sub(self.stack_sys_bytes?)
    }
}

/// A whole `/debug/vars` document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExpvarVars {
    /// `cmdline`: the program's argv.
    pub cmdline: Option<Vec<String>>,
    /// `memstats`, when published (the `expvar` package always does).
    pub memstats: Option<MemStats>,
    /// Every other top-level var, by name.
    pub other: BTreeMap<String, Value>,
}

/// Reads a `/debug/vars` document. `input` names it in errors.
pub fn parse_expvar(input: &str, bytes: &[u8]) -> Result<ExpvarVars, ExpvarError> {
    let error = |line: Option<usize>, reason: String| ExpvarError {
        input: input.to_string(),
        line,
        reason,
    };
    if bytes.len() > MAX_EXPVAR_BYTES {
        return Err(error(
            None,
            format!(
                "{} bytes, more than the {MAX_EXPVAR_BYTES} read",
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(error(None, "empty: no JSON object".to_string()));
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| {
        let line = (e.line() > 0).then_some(e.line());
        error(line, format!("not valid JSON: {e}"))
    })?;
    let Value::Object(map) = root else {
        return Err(error(
            None,
            format!("expected a JSON object, found {}", kind(&root)),
        ));
    };
    let mut vars = ExpvarVars::default();
    for (key, value) in map {
        match key.as_str() {
            "cmdline" => {
                vars.cmdline = Some(string_list(&value).map_err(|r| error(None, r))?);
            }
            "memstats" => {
                vars.memstats = Some(memstats(&value).map_err(|r| error(None, r))?);
            }
            _ => {
                vars.other.insert(key, value);
            }
        }
    }
    Ok(vars)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_list(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "cmdline: expected an array of strings, found {}",
            kind(value)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "cmdline[{i}]: expected a string, found {}",
                kind(other)
            )),
        })
        .collect()
}

/// Typed reads of the keys of one JSON object, naming `path.Key` in errors.
struct Fields<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => as_u64(value)
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer", value)),
        }
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", value)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false", value)),
        }
    }

    fn u64_ring(&self, key: &str) -> Result<Vec<u64>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= PAUSE_RING_LEN => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    as_u64(item).ok_or_else(|| {
                        self.wrong(&format!("{key}[{i}]"), "a non-negative integer", item)
                    })
                })
                .collect(),
            Some(Value::Array(items)) => Err(format!(
                "{}.{key}: {} entries, more than the {PAUSE_RING_LEN} of the runtime's ring",
                self.path,
                items.len()
            )),
            Some(value) => Err(self.wrong(key, "an array of integers", value)),
        }
    }

    fn wrong(&self, key: &str, expected: &str, found: &Value) -> String {
        let shown = found.to_string();
        let shown = if shown.chars().count() > 40 {
            format!("{}...", shown.chars().take(37).collect::<String>())
        } else {
            shown
        };
        format!(
            "{}.{key}: expected {expected}, found {} ({shown})",
            self.path,
            kind(found)
        )
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64()
}

fn memstats(value: &Value) -> Result<MemStats, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "memstats: expected an object, found {}",
            kind(value)
        ));
    };
    let f = Fields {
        path: "memstats",
        map,
    };
    Ok(MemStats {
        alloc_bytes: f.u64("Alloc")?,
        total_alloc_bytes: f.u64("TotalAlloc")?,
        sys_bytes: f.u64("Sys")?,
        lookups: f.u64("Lookups")?,
        mallocs: f.u64("Mallocs")?,
        frees: f.u64("Frees")?,
        heap_alloc_bytes: f.u64("HeapAlloc")?,
        heap_sys_bytes: f.u64("HeapSys")?,
        heap_idle_bytes: f.u64("HeapIdle")?,
        heap_inuse_bytes: f.u64("HeapInuse")?,
        heap_released_bytes: f.u64("HeapReleased")?,
        heap_objects: f.u64("HeapObjects")?,
        stack_inuse_bytes: f.u64("StackInuse")?,
        stack_sys_bytes: f.u64("StackSys")?,
        mspan_inuse_bytes: f.u64("MSpanInuse")?,
        mspan_sys_bytes: f.u64("MSpanSys")?,
        mcache_inuse_bytes: f.u64("MCacheInuse")?,
        mcache_sys_bytes: f.u64("MCacheSys")?,
        buck_hash_sys_bytes: f.u64("BuckHashSys")?,
        gc_sys_bytes: f.u64("GCSys")?,
        other_sys_bytes: f.u64("OtherSys")?,
        next_gc_bytes: f.u64("NextGC")?,
        last_gc_unix_ns: f.u64("LastGC")?,
        pause_total_ns: f.u64("PauseTotalNs")?,
        pause_ns: f.u64_ring("PauseNs")?,
        pause_end_unix_ns: f.u64_ring("PauseEnd")?,
        num_gc: f.u64("NumGC")?,
        num_forced_gc: f.u64("NumForcedGC")?,
        gc_cpu_fraction: f.f64("GCCPUFraction")?,
        enable_gc: f.bool("EnableGC")?,
        debug_gc: f.bool("DebugGC")?,
        by_size: by_size(map.get("BySize"))?,
    })
}

/// The most size classes read (Go has 68; 61 were published in `BySize`).
const MAX_SIZE_CLASSES: usize = 1024;

fn by_size(value: Option<&Value>) -> Result<Vec<SizeClass>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_SIZE_CLASSES => items,
        Some(Value::Array(items)) => {
            return Err(format!(
                "memstats.BySize: {} entries, more than {MAX_SIZE_CLASSES}",
                items.len()
            ))
        }
        Some(other) => {
            return Err(format!(
                "memstats.BySize: expected an array, found {}",
                kind(other)
            ))
        }
    };
    let mut classes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(format!(
                "memstats.BySize[{i}]: expected an object, found {}",
                kind(item)
            ));
        };
        let path = format!("memstats.BySize[{i}]");
        let f = Fields { path: &path, map };
        classes.push(SizeClass {
            size_bytes: f.u64("Size")?.unwrap_or(0),
            mallocs: f.u64("Mallocs")?.unwrap_or(0),
            frees: f.u64("Frees")?.unwrap_or(0),
        });
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_none_and_others_are_kept() {
        let vars = parse_expvar(
            "v",
            br#"{"cmdline":["a","-x"],"memstats":{"HeapAlloc":5,"NumGC":0},"mine":{"n":1}}"#,
        )
        .unwrap();
        assert_eq!(vars.cmdline.unwrap(), ["a", "-x"]);
        let m = vars.memstats.unwrap();
        assert_eq!(m.heap_alloc_bytes, Some(5));
        assert_eq!(m.heap_sys_bytes, None);
        assert_eq!(m.last_pause_ns(), None);
        assert_eq!(vars.other["mine"]["n"], 1);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse_expvar("vars.json", br#"{"memstats":{"HeapAlloc":"5"}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"vars.json: memstats.HeapAlloc: expected a non-negative integer, found a string ("5")"#
        );
        let err = parse_expvar("v", br#"{"memstats":{"NumGC":-1}}"#).unwrap_err();
        assert!(err.reason.contains("memstats.NumGC"), "{err}");
        let err = parse_expvar("v", br#"{"memstats":{"PauseNs":[1,2.5]}}"#).unwrap_err();
        assert!(err.reason.contains("memstats.PauseNs[1]"), "{err}");
        let err = parse_expvar("v", br#"{"cmdline":"x"}"#).unwrap_err();
        assert!(err.reason.starts_with("cmdline:"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = parse_expvar("v", b"{\n\"memstats\": {\n\"Alloc\": 1,\n").unwrap_err();
        assert_eq!(err.line, Some(4));
        assert!(err.reason.starts_with("not valid JSON"), "{err}");
        assert!(parse_expvar("v", b"  \n")
            .unwrap_err()
            .reason
            .contains("empty"));
        assert!(parse_expvar("v", b"[1]")
            .unwrap_err()
            .reason
            .contains("an array"));
    }
}
