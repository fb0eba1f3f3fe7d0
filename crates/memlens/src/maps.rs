//! `memlens maps --pid N`: a live Go program's package-level maps, their
//! length, capacity and load, read from outside with no code change.
//!
//! The binary's DWARF (`/proc/PID/exe`) names the map variables and lays out
//! their headers (memlens-gomem); `/proc/PID/mem` gives the headers' current
//! values. The target never stops: each map is read until two reads agree
//! (else it is marked inconsistent). JSON: docs/maps.md.

use anyhow::Context;
use memlens_gomem::{
    bytes_held, bytes_needed, walk, DebugLink, DwarfIndex, FoundMap, GomemError, Limits, ProcMemory,
};
use serde::Serialize;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Options of `memlens maps`.
#[derive(Debug, clap::Args)]
pub struct MapsArgs {
    /// The Go process whose maps to read (its binary must carry DWARF: not
    /// built with -ldflags=-w or -s, not stripped). Needs ptrace access to it
    /// (same user, or root); the process is never stopped.
    #[arg(long)]
    pub pid: u32,

    /// List only maps with at least this many entries.
    #[arg(long, default_value_t = 0)]
    pub min_len: u64,

    /// Print JSON (documented in docs/maps.md) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Path steps followed past a package-level variable (fields, elements,
    /// map values; pointers are followed without counting).
    #[arg(long, default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,

    /// Maps listed at most (the walk stops there and says so).
    #[arg(long, default_value_t = Limits::default().max_maps)]
    pub max_maps: usize,
}

/// One listed map (a JSON row).
#[derive(Debug, Serialize)]
struct MapRow<'a> {
    path: &'a str,
    r#type: &'a str,
    key_type: &'a str,
    value_type: &'a str,
    layout: &'static str,
    length: u64,
    capacity_slots: u64,
    load: f64,
    overflow_buckets: Option<u64>,
    old_buckets: Option<u64>,
    evacuated_buckets: Option<u64>,
    tables: Option<u64>,
    tombstones: Option<u64>,
    held_bytes: Option<u64>,
    needed_bytes: Option<u64>,
    waste_bytes: Option<u64>,
    consistent: bool,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct MapsReport<'a> {
    pid: u32,
    binary: String,
    maps: Vec<MapRow<'a>>,
    skipped: Vec<Skipped<'a>>,
    /// Pointers and maps reached a second time (cycles, shared data): not
    /// followed again.
    revisits: u64,
    /// A limit stopped the walk: some maps may be missing.
    truncated: bool,
    max_depth: usize,
    max_maps: usize,
}

/// A map variable whose type this reader could not lay out.
#[derive(Debug, Serialize)]
struct Skipped<'a> {
    path: &'a str,
    reason: &'a str,
}

/// Where a PIE binary was loaded: its first executable mapping in
/// `/proc/PID/maps` against the binary's segments.
fn pie_load_bias(
    proc_root: &Path,
    pid: u32,
    binary: &Path,
    index: &DwarfIndex,
) -> anyhow::Result<u64> {
    let maps_path = proc_root.join(pid.to_string()).join("maps");
    let text = std::fs::read_to_string(&maps_path)
        .with_context(|| format!("process {pid}: cannot read {}", maps_path.display()))?;
    let binary = binary.display().to_string();
    memlens_trace::symbolize::parse_maps(&text)
        .iter()
        .find(|m| m.path == binary)
        .and_then(|m| index.load_bias(m.start, m.offset))
        .with_context(|| {
            format!(
                "process {pid}: position-independent binary {binary} not found mapped in {}",
                maps_path.display()
            )
        })
}

/// Indexes the binary's DWARF (reading only the parts of `file` it needs), or
/// that of the separate debug file it names (`.note.gnu.build-id`,
/// `.gnu_debuglink`), looked up inside the target's root (`/proc/PID/root`).
fn index_binary(
    proc_root: &Path,
    pid: u32,
    binary: &str,
    file: &std::fs::File,
) -> anyhow::Result<DwarfIndex> {
    match DwarfIndex::from_elf_file(binary, file) {
        Err(GomemError::NoDwarf { .. }) => {}
        other => return Ok(other?),
    }
    let mut data = Vec::new();
    (&*file)
        .seek(std::io::SeekFrom::Start(0))
        .and_then(|_| (&*file).read_to_end(&mut data))
        .with_context(|| format!("process {pid}: cannot read its binary {binary}"))?;
    let link = DebugLink::from_elf(&data);
    let root = proc_root.join(pid.to_string()).join("root");
    let candidates = link.candidates(binary);
    for candidate in &candidates {
        let path = root.join(candidate.trim_start_matches('/'));
        let Ok(debug) = std::fs::read(&path) else {
            continue;
        };
        if link.matches(&debug) {
            return Ok(DwarfIndex::from_split_elf(
                binary,
                data.as_slice(),
                &path.display().to_string(),
                debug.as_slice(),
            )?);
        }
    }
    let looked = if candidates.is_empty() {
        "it has no .gnu_debuglink or build ID".to_string()
    } else {
        format!("looked for {}", candidates.join(", "))
    };
    Err(GomemError::NoDebugFile {
        path: binary.to_string(),
        looked,
    }
    .into())
}

/// The map of a live Go process holding the most bucket/group bytes, as
/// `diagnose` names it under `go.map_bloat`.
#[derive(Debug, Clone)]
pub struct LargestMap {
    /// Its path (`main.bloatedMap`).
    pub path: String,
    /// Entries.
    pub length: u64,
    /// Slots allocated.
    pub capacity_slots: u64,
    /// Bytes of buckets/groups held (`None` when the DWARF lacks their type).
    pub held_bytes: Option<u64>,
    /// Held beyond what its length needs.
    pub waste_bytes: Option<u64>,
}

/// The map of process `pid` holding the most bytes (most slots when sizes
/// are unknown), with the default limits; `None` when it has no map.
pub fn largest_map(pid: u32) -> anyhow::Result<Option<LargestMap>> {
    let proc_root = Path::new("/proc");
    let (binary, index) = load(proc_root, pid)?;
    let bias = if index.pie {
        pie_load_bias(proc_root, pid, &binary, &index)?
    } else {
        0
    };
    let mem = ProcMemory::open(proc_root, pid)
        .with_context(|| format!("process {pid}: cannot open /proc/{pid}/mem"))?;
    let found = walk(&index, &mem, bias, &Limits::default())?;
    Ok(found
        .maps
        .iter()
        .map(row)
        .max_by_key(|r| (r.held_bytes.unwrap_or(0), r.capacity_slots))
        .map(|r| LargestMap {
            path: r.path.to_string(),
            length: r.length,
            capacity_slots: r.capacity_slots,
            held_bytes: r.held_bytes,
            waste_bytes: r.waste_bytes,
        }))
}

/// The binary of `pid` and its index.
fn load(proc_root: &Path, pid: u32) -> anyhow::Result<(std::path::PathBuf, DwarfIndex)> {
    let exe_link = proc_root.join(pid.to_string()).join("exe");
    let binary = std::fs::read_link(&exe_link)
        .with_context(|| format!("process {pid}: cannot read {}", exe_link.display()))?;
    let file = std::fs::File::open(&exe_link)
        .with_context(|| format!("process {pid}: cannot read its binary {}", binary.display()))?;
    let index = index_binary(proc_root, pid, &binary.display().to_string(), &file)?;
    Ok((binary, index))
}

/// Runs `memlens maps`.
pub fn run(args: &MapsArgs) -> anyhow::Result<()> {
    let proc_root = Path::new("/proc");
    let pid = args.pid;
    let (binary, index) = load(proc_root, pid)?;
    let bias = if index.pie {
        pie_load_bias(proc_root, pid, &binary, &index)?
    } else {
        0
    };
    let mem = ProcMemory::open(proc_root, pid)
        .with_context(|| format!("process {pid}: cannot open /proc/{pid}/mem"))?;
    let limits = Limits {
        max_depth: args.max_depth,
        max_maps: args.max_maps,
        ..Limits::default()
    };
    let found = walk(&index, &mem, bias, &limits)?;
    let report = MapsReport {
        pid,
        binary: binary.display().to_string(),
        maps: found
            .maps
            .iter()
            .filter(|m| m.stats.length >= args.min_len)
            .map(row)
            .collect(),
        skipped: found
            .skipped
            .iter()
            .map(|(path, reason)| Skipped { path, reason })
            .collect(),
        revisits: found.cycles,
        truncated: found.truncated,
        max_depth: limits.max_depth,
        max_maps: limits.max_maps,
    };
    // Stdout is line-buffered: one write per line would be one system call per
    // JSON line (about 190,000 for 10,000 maps).
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
}

fn row<'a>(m: &'a FoundMap) -> MapRow<'a> {
    let (v, s) = (m.map, &m.stats);
    let held = v.group_bytes.map(|g| bytes_held(s, g));
    let needed = v.group_bytes.map(|g| bytes_needed(s.length, &v.layout, g));
    MapRow {
        held_bytes: held,
        needed_bytes: needed,
        waste_bytes: held.zip(needed).map(|(h, n)| h.saturating_sub(n)),
        path: &m.path,
        r#type: &v.type_name,
        key_type: &v.key_type,
        value_type: &v.value_type,
        layout: v.layout.name(),
        length: s.length,
        capacity_slots: s.capacity_slots,
        load: s.load(),
        overflow_buckets: s.overflow_buckets,
        old_buckets: s.old_buckets,
        evacuated_buckets: s.evacuated_buckets,
        tables: s.tables,
        tombstones: s.tombstones,
        consistent: s.consistent,
    }
}

/// A number, or `-` when unknown.
fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn write_table(out: &mut impl Write, r: &MapsReport) -> std::io::Result<()> {
    writeln!(out, "pid {}  {}  {} maps", r.pid, r.binary, r.maps.len())?;
    writeln!(
        out,
        "{:<48} {:>12} {:>12} {:>6} {:>12} {:>12} {:>10} {:<8} TYPE",
        "VARIABLE", "LEN", "CAPACITY", "LOAD", "HELD_BYTES", "WASTE_BYTES", "DELETED", "LAYOUT"
    )?;
    for m in &r.maps {
        let growing = match (m.old_buckets, m.evacuated_buckets) {
            (Some(old), Some(done)) if old > 0 => {
                format!("  (growing: {done} of {old} old buckets evacuated)")
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<48} {:>12} {:>12} {:>6.3} {:>12} {:>12} {:>10} {:<8} {}{}{}",
            m.path,
            m.length,
            m.capacity_slots,
            m.load,
            opt(m.held_bytes),
            opt(m.waste_bytes),
            opt(m.tombstones),
            m.layout,
            m.r#type,
            growing,
            if m.consistent {
                ""
            } else {
                "  (changing while read)"
            }
        )?;
    }
    for s in &r.skipped {
        writeln!(out, "skipped {}: {}", s.path, s.reason)?;
    }
    if r.truncated {
        writeln!(
            out,
            "stopped at a limit (--max-depth {}, --max-maps {}): some maps are not listed",
            r.max_depth, r.max_maps
        )?;
    }
    Ok(())
}
