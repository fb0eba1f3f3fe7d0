//! `memlens heap`: the top allocation sites of a Go heap profile (like
//! `go tool pprof -top`), the share of map memory and who owns it, and the
//! growth since an older profile (`--base`).
//!
//! IO lives here (fetching the profile, reading the binary for the map
//! analysis); the analyses are `memlens_goruntime::pprof`'s.

use crate::target::{self, FetchLimits, Resource, Target};
use anyhow::Context;
use memlens_goruntime::pprof::{self, MapShare, Profile, Top, TopDiff};
use memlens_linux::fs::Root;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens heap`.
#[derive(Debug, clap::Args)]
pub struct HeapArgs {
    /// A PID (its /debug/pprof/heap is found from its listening sockets), an
    /// http:// URL, a saved profile file (protobuf, or Go's text form from
    /// heap?debug=1), or - for stdin.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Sample type: inuse_space, alloc_space, inuse_objects or alloc_objects
    /// (any sample type of the profile is accepted).
    #[arg(long, default_value = "inuse_space", value_name = "NAME")]
    pub sample: String,

    /// An older profile (same target forms) to subtract: shows growth per function.
    #[arg(long, value_name = "OLDER")]
    pub base: Option<String>,

    /// Functions to list (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,

    /// The profiled executable, to see map allocations that Go's heap profiles
    /// hide (defaults to /proc/PID/exe for a PID target).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// Print JSON (documented in docs/heap-json.md) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Reads and decodes the profile of a target argument: a protobuf (gzipped or
/// not) or Go's text heap profile (`heap?debug=1`); other legacy formats are
/// refused by name.
pub(crate) fn load_profile(arg: &str, resource: Resource) -> anyhow::Result<Profile> {
    let target = Target::parse(arg)?;
    let bytes = target::read_all(&target, resource, &Root::host(), &FetchLimits::default())
        .with_context(|| format!("cannot read the profile of {arg}"))?;
    Profile::decode_any(&bytes).with_context(|| arg.to_string())
}

/// Runs `memlens heap`.
pub fn run(args: &HeapArgs) -> anyhow::Result<()> {
    let profile = load_profile(&args.target, Resource::Heap)?;
    let index = profile
        .require_sample_type(&args.sample)
        .with_context(|| args.target.clone())?;
    let top = pprof::top(&profile, index)?;
    let callees = leaf_callees(args, &profile);
    let share = pprof::map_share(&profile, index, &callees)?;
    let diff = match &args.base {
        Some(base_arg) => {
            let base = load_profile(base_arg, Resource::Heap)?;
            let base_index = base
                .require_sample_type(&args.sample)
                .with_context(|| base_arg.clone())?;
            Some(pprof::diff(&top, &pprof::top(&base, base_index)?))
        }
        None => None,
    };
    let report = HeapReport::new(&top, &share, diff.as_ref(), args.top);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
}

/// Call targets of the leaf frames, from the binary: `--binary`, else
/// `/proc/PID/exe` for a PID target. Best effort: without them the map share
/// only sees stacks that still show map frames.
fn leaf_callees(args: &HeapArgs, profile: &Profile) -> HashMap<u64, String> {
    let path = match (&args.binary, Target::parse(&args.target)) {
        (Some(path), _) => path.clone(),
        (None, Ok(Target::Pid(pid))) => PathBuf::from(format!("/proc/{pid}/exe")),
        _ => return HashMap::new(),
    };
    match std::fs::File::open(&path) {
        Ok(file) => pprof::leaf_callees(&file, profile).unwrap_or_else(|e| {
            eprintln!(
                "memlens: {}: {e} (map share without the binary)",
                path.display()
            );
            HashMap::new()
        }),
        Err(e) => {
            eprintln!(
                "memlens: {}: {e} (map share without the binary)",
                path.display()
            );
            HashMap::new()
        }
    }
}

/// What `memlens heap` prints; its JSON form is documented in docs/heap-json.md.
#[derive(Debug, Serialize)]
pub struct HeapReport {
    /// Sample type shown.
    pub sample_type: String,
    /// Its unit (`bytes`, `count`).
    pub unit: String,
    /// Sum of the sample type over the whole profile.
    pub total: i64,
    /// Top functions (at most `--top`).
    pub functions: Vec<FunctionRow>,
    /// Functions not listed because of `--top`.
    pub functions_omitted: usize,
    /// Map memory.
    pub map_share: MapShareReport,
    /// Growth since `--base`, if given.
    pub base: Option<GrowthReport>,
}

/// One function in the top list.
#[derive(Debug, Serialize)]
pub struct FunctionRow {
    /// Function name.
    pub function: String,
    /// Value of the samples allocated directly in it.
    pub flat: i64,
    /// `flat` in percent of `total`.
    pub flat_percent: f64,
    /// Running sum of `flat` in percent of `total`.
    pub sum_percent: f64,
    /// Value of the samples with it anywhere in the stack.
    pub cum: i64,
    /// `cum` in percent of `total`.
    pub cum_percent: f64,
}

/// Map memory in the profile.
#[derive(Debug, Serialize)]
pub struct MapShareReport {
    /// Value of the samples whose stack touches map code.
    pub value: i64,
    /// `value` in percent of the total.
    pub percent: f64,
    /// Whether call targets were read from the binary.
    pub binary_used: bool,
    /// User functions owning the map memory, largest first.
    pub owners: Vec<OwnerRow>,
}

/// One owner of map memory.
#[derive(Debug, Serialize)]
pub struct OwnerRow {
    /// Function name.
    pub function: String,
    /// Value attributed to it.
    pub value: i64,
}

/// Growth since the base profile.
#[derive(Debug, Serialize)]
pub struct GrowthReport {
    /// Total now minus total of the base.
    pub total_delta: i64,
    /// Functions whose value changed, largest flat growth first (at most `--top`).
    pub functions: Vec<GrowthRow>,
}

/// One function's growth.
#[derive(Debug, Serialize)]
pub struct GrowthRow {
    /// Function name.
    pub function: String,
    /// Flat value now minus flat value in the base.
    pub flat_delta: i64,
    /// Cumulative value now minus in the base.
    pub cum_delta: i64,
    /// Flat value in the base.
    pub base_flat: i64,
    /// Flat value now.
    pub flat: i64,
}

fn percent(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

fn limit(n: usize, top: usize) -> usize {
    if top == 0 {
        n
    } else {
        n.min(top)
    }
}

impl HeapReport {
    /// Builds the report, keeping the first `top` functions (0: all).
    pub fn new(top: &Top, share: &MapShare, diff: Option<&TopDiff>, keep: usize) -> HeapReport {
        let shown = limit(top.functions.len(), keep);
        let mut sum = 0i64;
        let functions = top.functions[..shown]
            .iter()
            .map(|f| {
                sum += f.flat;
                FunctionRow {
                    function: f.function.clone(),
                    flat: f.flat,
                    flat_percent: percent(f.flat, top.total),
                    sum_percent: percent(sum, top.total),
                    cum: f.cum,
                    cum_percent: percent(f.cum, top.total),
                }
            })
            .collect();
        let base = diff.map(|d| GrowthReport {
            total_delta: d.total_delta,
            functions: d.functions[..limit(d.functions.len(), keep)]
                .iter()
                .map(|f| GrowthRow {
                    function: f.function.clone(),
                    flat_delta: f.flat_delta,
                    cum_delta: f.cum_delta,
                    base_flat: f.base_flat,
                    flat: f.flat,
                })
                .collect(),
        });
        HeapReport {
            sample_type: top.sample_type.clone(),
            unit: top.unit.clone(),
            total: top.total,
            functions,
            functions_omitted: top.functions.len() - shown,
            map_share: MapShareReport {
                value: share.map_value,
                percent: share.fraction() * 100.0,
                binary_used: share.used_callees,
                owners: share
                    .owners
                    .iter()
                    .take(5)
                    .map(|o| OwnerRow {
                        function: o.function.clone(),
                        value: o.value,
                    })
                    .collect(),
            },
            base,
        }
    }
}

/// A value for people: bytes as B/KiB/MiB/GiB, anything else as a count.
pub(crate) fn human(value: i64, unit: &str) -> String {
    if unit != "bytes" {
        return value.to_string();
    }
    let abs = value.unsigned_abs() as f64;
    let sign = if value < 0 { "-" } else { "" };
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in units {
        if abs >= size as f64 {
            return format!("{sign}{:.2}{name}", abs / size as f64);
        }
    }
    format!("{value}B")
}

fn signed(value: i64, unit: &str) -> String {
    let text = human(value, unit);
    if value > 0 {
        format!("+{text}")
    } else {
        text
    }
}

fn write_text(out: &mut impl Write, r: &HeapReport) -> std::io::Result<()> {
    writeln!(
        out,
        "Type: {} ({}), total {}",
        r.sample_type,
        r.unit,
        human(r.total, &r.unit)
    )?;
    writeln!(
        out,
        "{:>10} {:>6} {:>6} {:>10} {:>6}  function",
        "flat", "flat%", "sum%", "cum", "cum%"
    )?;
    for f in &r.functions {
        writeln!(
            out,
            "{:>10} {:>5.2}% {:>5.2}% {:>10} {:>5.2}%  {}",
            human(f.flat, &r.unit),
            f.flat_percent,
            f.sum_percent,
            human(f.cum, &r.unit),
            f.cum_percent,
            f.function
        )?;
    }
    if r.functions_omitted > 0 {
        writeln!(
            out,
            "({} more functions; --top 0 lists all)",
            r.functions_omitted
        )?;
    }
    let m = &r.map_share;
    write!(
        out,
        "\nMaps: {:.1}% of {} ({}) is in stacks that touch Go map code",
        m.percent,
        r.sample_type,
        human(m.value, &r.unit)
    )?;
    if !m.owners.is_empty() {
        let owners: Vec<String> = m
            .owners
            .iter()
            .map(|o| format!("{} {}", o.function, human(o.value, &r.unit)))
            .collect();
        write!(out, "; owners: {}", owners.join(", "))?;
    }
    writeln!(out)?;
    if !m.binary_used {
        writeln!(
            out,
            "  (heap profiles hide the runtime's map frames: give a PID or --binary to see them)"
        )?;
    }
    if let Some(g) = &r.base {
        writeln!(
            out,
            "\nGrowth since base: {} ({})",
            signed(g.total_delta, &r.unit),
            r.sample_type
        )?;
        writeln!(out, "{:>11} {:>11}  function", "flat", "cum")?;
        for f in &g.functions {
            writeln!(
                out,
                "{:>11} {:>11}  {}",
                signed(f.flat_delta, &r.unit),
                signed(f.cum_delta, &r.unit),
                f.function
            )?;
        }
    }
    Ok(())
}
