//! `memlens goroutines`: goroutines grouped by identical stack, suspected and
//! proven leaks first, a view by creation site, and growth since an older dump.
//!
//! - `mod.rs`: arguments, reading the target (IO), running the command.
//! - `report.rs`: what is shown, built from the analyses (JSON form in
//!   docs/goroutines-json.md).
//! - `table.rs`: the text view for people.
//!
//! From a live target (PID or base URL) three resources are read: the protobuf
//! goroutine profile (exact counts, no size cap), the `?debug=2` dump (states,
//! wait times, creation sites; the runtime cuts it at 64 MiB) and, when served
//! (Go 1.26+), the goroutineleak profile (goroutines the GC proved leaked).
//! Files and stdin are read as whatever dump format they hold.

mod report;
mod table;

use crate::target::{self, http::HttpUrl, FetchError, FetchLimits, Resource, Target, TargetError};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memlens_goruntime::goroutine::{self, Analysis, Limits};
use memlens_linux::fs::Root;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

pub use report::GoroutinesReport;

/// Options of `memlens goroutines`.
#[derive(Debug, clap::Args)]
pub struct GoroutinesArgs {
    /// A PID (its /debug/pprof/ endpoint is found from its listening sockets), an
    /// http:// base URL (http://127.0.0.1:6060) or the full URL of one dump, a
    /// saved dump (?debug=2, ?debug=1, protobuf, goroutineleak, SIGQUIT output),
    /// or - for stdin.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Groups (and creation sites) to list (0: all).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// An older dump of the same program (same target forms): shows how many
    /// goroutines each stack gained or lost since.
    #[arg(long, value_name = "OLDER")]
    pub diff: Option<String>,

    /// Print JSON (documented in docs/goroutines-json.md) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// How leaks were judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeakMethod {
    /// The goroutineleak profile was read: the GC proved these goroutines leaked.
    Goroutineleak,
    /// The dump itself carries `(leaked)` marks (Go 1.26+ after a leak check).
    LeakedMarks,
    /// No proof available: many blocked goroutines and long waits are suspected.
    Heuristics,
}

impl LeakMethod {
    /// `goroutineleak`, `leaked-marks` or `heuristics`.
    pub fn name(&self) -> &'static str {
        match self {
            LeakMethod::Goroutineleak => "goroutineleak",
            LeakMethod::LeakedMarks => "leaked-marks",
            LeakMethod::Heuristics => "heuristics",
        }
    }
}

/// One input that was read.
#[derive(Debug, Clone)]
pub struct Source {
    /// The URL, file path or `-`.
    pub location: String,
    /// The dump format found (`protobuf`, `debug2`, ...).
    pub format: &'static str,
    /// What was taken from it.
    pub role: &'static str,
    /// Bytes read.
    pub bytes: u64,
}

/// A target read and analysed, with where each part came from.
#[derive(Debug)]
pub struct Loaded {
    /// The analysis (counts merged, leaks marked).
    pub analysis: Analysis,
    /// What was read.
    pub sources: Vec<Source>,
    /// How leaks were judged.
    pub leak_method: LeakMethod,
    /// Why in words (e.g. why the goroutineleak profile was not used).
    pub leak_note: String,
    /// Goroutines proven leaked.
    pub proven_leaked: u64,
}

/// Runs `memlens goroutines`.
pub fn run(args: &GoroutinesArgs) -> anyhow::Result<()> {
    let loaded = load(&args.target)?;
    let older = match &args.diff {
        Some(arg) => Some((arg.as_str(), load(arg)?)),
        None => None,
    };
    let older = older.as_ref().map(|(arg, l)| (*arg, l));
    let report = GoroutinesReport::new(&args.target, &loaded, older, args.top);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        table::write_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a target argument: live targets through their three resources, files
/// and stdin as the dump they hold.
pub fn load(arg: &str) -> anyhow::Result<Loaded> {
    let target = Target::parse(arg)?;
    let root = Root::host();
    let limits = FetchLimits::default();
    let base = match &target {
        Target::File(path) => {
            let size = std::fs::metadata(path).map(|m| m.len()).ok();
            let reader = target::open(&target, Resource::Goroutine { debug: 2 }, &root, &limits)?;
            let analysis = analyse(reader, &path.display().to_string(), size)
                .with_context(|| path.display().to_string())?;
            return Ok(from_one_dump(analysis, path.display().to_string()));
        }
        Target::Stdin => {
            let reader = target::open(&target, Resource::Goroutine { debug: 2 }, &root, &limits)?;
            let analysis = analyse(reader, "stdin", None).context("-")?;
            return Ok(from_one_dump(analysis, "-".to_string()));
        }
        Target::Url(url) => {
            let parsed = HttpUrl::parse(url)?;
            if parsed.path != "/" {
                let reader =
                    target::open(&target, Resource::Goroutine { debug: 2 }, &root, &limits)?;
                let analysis = analyse(reader, url, None).with_context(|| url.clone())?;
                return Ok(from_one_dump(analysis, url.clone()));
            }
            url.trim_end_matches('/').to_string()
        }
        Target::Pid(_) => {
            let counts_path = Resource::Goroutine { debug: 0 }.path();
            let url = target
                .url_of(Resource::Goroutine { debug: 0 }, &root, &limits)?
                .unwrap_or_default();
            url.strip_suffix(&counts_path).unwrap_or(&url).to_string()
        }
    };
    load_live(&base, &root, &limits)
}

/// Reads the counting profile, the `?debug=2` dump and the goroutineleak profile
/// of the endpoint at `base` and joins them.
pub(crate) fn load_live(base: &str, root: &Root, limits: &FetchLimits) -> anyhow::Result<Loaded> {
    let endpoint = Target::Url(base.to_string());
    let fetch = |resource: Resource| -> Result<(Analysis, String), anyhow::Error> {
        let url = format!("{base}{}", resource.path());
        let reader = target::open(&endpoint, resource, root, limits)?;
        let analysis = analyse(reader, &url, None).with_context(|| url.clone())?;
        Ok((analysis, url))
    };
    let (counts, counts_url) = fetch(Resource::Goroutine { debug: 0 })?;
    let mut sources = vec![Source {
        location: counts_url,
        format: counts.format.name(),
        role: "exact counts",
        bytes: counts.bytes_read,
    }];
    // The text dump is the big, slow one: when it cannot be had (too large,
    // too slow), the exact counts still answer, with states guessed from frames.
    let analysis = match fetch(Resource::Goroutine { debug: 2 }) {
        Ok((mut detail, detail_url)) => {
            sources.push(Source {
                location: detail_url,
                format: detail.format.name(),
                role: "states, wait times, creation sites",
                bytes: detail.bytes_read,
            });
            goroutine::merge_counts(&mut detail, &counts);
            detail
        }
        Err(err) => {
            sources.push(Source {
                location: format!(
                    "{base}{} ({err:#})",
                    Resource::Goroutine { debug: 2 }.path()
                ),
                format: "unread",
                role: "NOT READ: no wait times or creation sites; states guessed from frames",
                bytes: 0,
            });
            counts
        }
    };
    let mut analysis = analysis;
    let marked = analysis.groups.iter().map(|g| g.leaked).sum::<u64>();
    let leak_url = format!("{base}{}", Resource::GoroutineLeak { debug: 0 }.path());
    let (leak_method, leak_note, proven_leaked) = match fetch(Resource::GoroutineLeak { debug: 0 })
    {
        Ok((leaks, url)) => {
            sources.push(Source {
                location: url,
                format: leaks.format.name(),
                role: "leaks proven by the GC",
                bytes: leaks.bytes_read,
            });
            let proven = goroutine::mark_proven_leaks(&mut analysis, &leaks);
            (
                LeakMethod::Goroutineleak,
                format!(
                    "proven by the GC: {proven} goroutine(s) in {leak_url} \
                     (blocked on objects nothing running can reach)"
                ),
                proven,
            )
        }
        Err(err) if is_404(&err) => {
            let (method, note) = fallback(marked);
            (
                method,
                format!("{note} ({leak_url} is not served: Go before 1.26, or the experiment off)"),
                marked,
            )
        }
        Err(err) => {
            let (method, note) = fallback(marked);
            (method, format!("{note} (goroutineleak: {err:#})"), marked)
        }
    };
    Ok(Loaded {
        analysis,
        sources,
        leak_method,
        leak_note,
        proven_leaked,
    })
}

/// The method and words when no goroutineleak profile could be read.
fn fallback(marked: u64) -> (LeakMethod, String) {
    if marked > 0 {
        (
            LeakMethod::LeakedMarks,
            format!("{marked} goroutine(s) marked (leaked) by an earlier leak check"),
        )
    } else {
        (
            LeakMethod::Heuristics,
            "judged by heuristics: many goroutines blocked on one stack, long waits".to_string(),
        )
    }
}

fn is_404(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<TargetError>(),
            Some(TargetError::Fetch(FetchError::Status { status: 404, .. }))
        ) || matches!(
            cause.downcast_ref::<FetchError>(),
            Some(FetchError::Status { status: 404, .. })
        )
    })
}

/// What a single dump (file, stdin, full URL) says about leaks by itself.
fn from_one_dump(analysis: Analysis, location: String) -> Loaded {
    let marked: u64 = analysis.groups.iter().map(|g| g.leaked).sum();
    let (leak_method, leak_note, proven_leaked) = if analysis.from_leak_profile {
        (
            LeakMethod::Goroutineleak,
            "the input is a goroutineleak profile: every goroutine in it was proven leaked \
             by the GC"
                .to_string(),
            analysis.total_goroutines,
        )
    } else {
        let (method, note) = fallback(marked);
        (method, note, marked)
    };
    Loaded {
        sources: vec![Source {
            location,
            format: analysis.format.name(),
            role: "the dump",
            bytes: analysis.bytes_read,
        }],
        analysis,
        leak_method,
        leak_note,
        proven_leaked,
    }
}

/// Analyses one stream. On a terminal, a progress bar appears on stderr once
/// reading has taken [`BAR_DELAY`] (big files, slow fetches), never for quick ones.
fn analyse(reader: Box<dyn Read>, label: &str, size: Option<u64>) -> anyhow::Result<Analysis> {
    let bar = progress_bar(label, size);
    let started = Instant::now();
    let mut shown = false;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |bytes: u64| {
        if terminal && !shown && started.elapsed() >= BAR_DELAY {
            shown = true;
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        bar.set_position(bytes);
    };
    let result = goroutine::read_dump(
        BufReader::with_capacity(256 << 10, reader),
        Limits::default(),
        &mut progress,
    );
    bar.finish_and_clear();
    Ok(result?)
}

/// How long reading runs before a progress bar is shown.
const BAR_DELAY: Duration = Duration::from_millis(300);

/// A hidden bar (made visible by [`analyse`]): with a length for files.
fn progress_bar(label: &str, size: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::hidden());
    let template = if size.is_some() {
        "{msg} {bar:30} {bytes}/{total_bytes} ({eta})"
    } else {
        "{spinner} {msg} {bytes} ({elapsed})"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("reading {label}"));
    bar
}
