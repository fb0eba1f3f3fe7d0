//! `memlens flame`: a flame graph (SVG) of any pprof profile (heap, allocs,
//! goroutine), or a differential one against an older profile (`--base`).
//!
//! Stacks are folded by `memlens_goruntime::pprof::folded_stacks`; the SVG is
//! drawn by the `inferno` crate.

use crate::heap::load_profile;
use crate::target::Resource;
use anyhow::{bail, Context};
use inferno::flamegraph::{self, color::BasicPalette, Palette};
use memlens_goruntime::pprof::{self, Profile};
use std::io::Write;
use std::path::PathBuf;

/// Which profile to fetch from a live target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileKind {
    /// `/debug/pprof/heap` (live memory; default sample inuse_space).
    Heap,
    /// `/debug/pprof/allocs` (allocations since start; default sample alloc_space).
    Allocs,
    /// `/debug/pprof/goroutine` (where goroutines are).
    Goroutine,
}

/// Options of `memlens flame`.
#[derive(Debug, clap::Args)]
pub struct FlameArgs {
    /// A PID, an http:// URL, a saved profile file (protobuf, or for heap Go's
    /// text form from heap?debug=1), or - for stdin.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Where to write the SVG (- for stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,

    /// An older profile to compare with: a differential flame graph (red grew,
    /// blue shrank), widths from TARGET.
    #[arg(long, value_name = "OLDER")]
    pub base: Option<String>,

    /// Sample type (default: the profile's own default, e.g. inuse_space for heap).
    #[arg(long, value_name = "NAME")]
    pub sample: Option<String>,

    /// Profile fetched from a PID or base URL.
    #[arg(long, value_enum, default_value = "heap")]
    pub profile: ProfileKind,
}

/// Runs `memlens flame`.
pub fn run(args: &FlameArgs) -> anyhow::Result<()> {
    let resource = match args.profile {
        ProfileKind::Heap => Resource::Heap,
        ProfileKind::Allocs => Resource::Allocs,
        ProfileKind::Goroutine => Resource::Goroutine { debug: 0 },
    };
    let profile = load_profile(&args.target, resource)?;
    let index = sample_index(&profile, args.sample.as_deref()).context(args.target.clone())?;
    let (sample_type, unit) = profile.sample_types()[index].clone();
    let lines = folded(&profile, index)?;
    let mut options = flamegraph::Options::default();
    options.colors = Palette::Basic(BasicPalette::Mem);
    options.count_name = unit;
    options.deterministic = true;
    let svg = match &args.base {
        None => {
            options.title = format!("{sample_type} of {}", args.target);
            draw(&mut options, lines.iter().map(String::as_str))?
        }
        Some(base_arg) => {
            let base = load_profile(base_arg, resource)?;
            let base_index = base
                .require_sample_type(&sample_type)
                .context(base_arg.clone())?;
            let base_lines = folded(&base, base_index)?;
            let mut combined = Vec::new();
            inferno::differential::from_readers(
                inferno::differential::Options::default(),
                base_lines.join("\n").as_bytes(),
                lines.join("\n").as_bytes(),
                &mut combined,
            )
            .context("combining the two profiles")?;
            let combined = String::from_utf8(combined).context("differential output")?;
            options.title = format!("{sample_type}: {} against {base_arg}", args.target);
            options.subtitle = Some("red: grew, blue: shrank".to_string());
            draw(&mut options, combined.lines())?
        }
    };
    if args.output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        out.write_all(&svg)?;
        out.flush()?;
    } else {
        std::fs::write(&args.output, &svg)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    Ok(())
}

fn sample_index(profile: &Profile, name: Option<&str>) -> anyhow::Result<usize> {
    Ok(match name {
        Some(name) => profile.require_sample_type(name)?,
        None => profile.default_sample_index(),
    })
}

fn folded(profile: &Profile, index: usize) -> anyhow::Result<Vec<String>> {
    Ok(pprof::folded_stacks(profile, index)?
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect())
}

fn draw<'a>(
    options: &mut flamegraph::Options<'_>,
    lines: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<Vec<u8>> {
    let mut lines = lines.into_iter().peekable();
    if lines.peek().is_none() {
        bail!("the profile has no samples with a positive value: nothing to draw");
    }
    let mut svg = Vec::new();
    flamegraph::from_lines(options, lines, &mut svg).context("drawing the flame graph")?;
    Ok(svg)
}
