//! `memlens maps --pid N`: a live Go program's package-level maps, their
//! length, capacity and load, read from outside with no code change.
//!
//! The binary's DWARF (`/proc/PID/exe`) names the map variables and lays out
//! their headers (memlens-gomem); `/proc/PID/mem` gives the headers' current
//! values. The target never stops: each map is read until two reads agree
//! (else it is marked inconsistent). JSON: docs/maps.md.

use anyhow::{bail, Context};
use memlens_gomem::{
    bytes_held, bytes_needed, read_map, DwarfIndex, MapStats, MapVariable, ProcMemory, ReadError,
};
use serde::Serialize;
use std::io::Write;
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
    tables: Option<u64>,
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

/// Runs `memlens maps`.
pub fn run(args: &MapsArgs) -> anyhow::Result<()> {
    let proc_root = Path::new("/proc");
    let pid = args.pid;
    let exe_link = proc_root.join(pid.to_string()).join("exe");
    let binary = std::fs::read_link(&exe_link)
        .with_context(|| format!("process {pid}: cannot read {}", exe_link.display()))?;
    let data = std::fs::read(&exe_link)
        .with_context(|| format!("process {pid}: cannot read its binary {}", binary.display()))?;
    let mut index = DwarfIndex::from_elf(&binary.display().to_string(), &data)?;
    drop(data);
    if index.pie {
        let bias = pie_load_bias(proc_root, pid, &binary, &index)?;
        for m in &mut index.maps {
            m.addr = m.addr.wrapping_add(bias);
        }
    }
    let mem = ProcMemory::open(proc_root, pid)
        .with_context(|| format!("process {pid}: cannot open /proc/{pid}/mem"))?;
    let mut read: Vec<(&MapVariable, MapStats)> = Vec::with_capacity(index.maps.len());
    for var in &index.maps {
        match read_map(&mem, var.addr, &var.layout) {
            Ok(stats) => read.push((var, stats)),
            Err(e @ ReadError::Exited { .. }) => bail!("{e}"),
            Err(e) => bail!("process {pid}: map {}: {e}", var.name),
        }
    }
    let report = MapsReport {
        pid,
        binary: binary.display().to_string(),
        maps: read
            .iter()
            .filter(|(_, s)| s.length >= args.min_len)
            .map(|(v, s)| row(v, s))
            .collect(),
        skipped: index
            .skipped
            .iter()
            .map(|(path, reason)| Skipped { path, reason })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    Ok(())
}

fn row<'a>(v: &'a MapVariable, s: &MapStats) -> MapRow<'a> {
    let held = v.group_bytes.map(|g| bytes_held(s, g));
    let needed = v.group_bytes.map(|g| bytes_needed(s.length, &v.layout, g));
    MapRow {
        held_bytes: held,
        needed_bytes: needed,
        waste_bytes: held.zip(needed).map(|(h, n)| h.saturating_sub(n)),
        path: &v.name,
        r#type: &v.type_name,
        key_type: &v.key_type,
        value_type: &v.value_type,
        layout: v.layout.name(),
        length: s.length,
        capacity_slots: s.capacity_slots,
        load: s.load(),
        overflow_buckets: s.overflow_buckets,
        tables: s.tables,
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
        "{:<48} {:>12} {:>12} {:>6} {:>12} {:>12} {:<8} TYPE",
        "VARIABLE", "LEN", "CAPACITY", "LOAD", "HELD_BYTES", "WASTE_BYTES", "LAYOUT"
    )?;
    for m in &r.maps {
        writeln!(
            out,
            "{:<48} {:>12} {:>12} {:>6.3} {:>12} {:>12} {:<8} {}{}",
            m.path,
            m.length,
            m.capacity_slots,
            m.load,
            opt(m.held_bytes),
            opt(m.waste_bytes),
            m.layout,
            m.r#type,
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
    Ok(())
}
