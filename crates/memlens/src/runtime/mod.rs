//! `memlens runtime TARGET`: a one-screen summary of a Go runtime's memory and
//! GC state, each number with the input it came from.
//!
//! - A PID: its HTTP endpoints are found once (`target::discover`), then
//!   `/debug/vars`, `/metrics` and the `goroutine profile: total N` line of
//!   `/debug/pprof/goroutine?debug=1` are read from whichever port serves them;
//!   the Go keys of `/proc/PID/environ` and the build info of `/proc/PID/exe`
//!   are read too.
//! - A base URL (`http://host:port`): the same three paths; what is not served
//!   is skipped and listed.
//! - A full URL, a file or `-`: one input, whose kind is detected
//!   ([`detect::detect`]): expvar JSON, Prometheus text, gctrace lines or a
//!   `debug=1` goroutine dump.
//!
//! IO lives here; [`summary::summarize`] decides which number wins, and
//! [`table::write_table`] prints it (JSON: docs/runtime-json.md).

mod detect;
mod settings;
mod summary;
mod table;

use crate::target::{self, http, Endpoint, FetchError, FetchLimits, Resource, Target, TargetError};
use anyhow::{bail, Context};
use detect::Format;
use memlens_goruntime::expvar::parse_expvar;
use memlens_goruntime::gctrace::parse_gctrace;
use memlens_goruntime::promtext::{parse_promtext, GoMetrics, ProcessMetrics};
use memlens_linux::fs::Root;
use memlens_linux::process::GoEnv;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;
use summary::Inputs;

/// Options of `memlens runtime`.
#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    /// A PID (its endpoints are found from its listening sockets), an http://
    /// URL (a base like http://127.0.0.1:6060, or the full URL of one
    /// endpoint), a saved file (expvar JSON, Prometheus text, gctrace lines), or
    /// - for stdin.
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// Print JSON (documented in docs/runtime-json.md) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `memlens runtime`.
pub fn run(args: &RuntimeArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.target)?;
    let limits = FetchLimits {
        // The summary is one screen: an endpoint slower than this is skipped.
        total_timeout: Duration::from_secs(10),
        max_body_bytes: 256 << 20,
        ..FetchLimits::default()
    };
    let mut inputs = Inputs {
        target: args.target.clone(),
        ..Inputs::default()
    };
    match &target {
        Target::Pid(pid) => read_pid(*pid, &limits, &mut inputs)?,
        Target::Url(url) => read_url(url, &limits, &mut inputs)?,
        Target::File(_) | Target::Stdin => {
            let bytes = target::read_all(&target, Resource::Vars, &Root::host(), &limits)?;
            let name = match &target {
                Target::File(path) => path.display().to_string(),
                _ => "stdin".to_string(),
            };
            add_detected(&name, &bytes, &mut inputs)?;
        }
    }
    let summary = summary::summarize(inputs);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        table::write_table(&mut out, &summary)?;
    }
    out.flush()?;
    Ok(())
}

/// Reads everything a running process exposes.
fn read_pid(pid: i32, limits: &FetchLimits, inputs: &mut Inputs) -> anyhow::Result<()> {
    let root = Root::host();
    let proc_dir = root.path(format!("/proc/{pid}"));
    if !proc_dir.exists() {
        bail!("process {pid} does not exist");
    }
    let exe = root.path(format!("/proc/{pid}/exe"));
    match memlens_goruntime::read_build_info_from_path(&exe) {
        Ok(Some(info)) => inputs.go_version = Some((exe.display().to_string(), info.go_version)),
        Ok(None) => bail!(
            "process {pid} is not a Go program ({} has no Go build info)",
            exe.display()
        ),
        // Not allowed to read it (another user's process): go on with HTTP.
        Err(e) => inputs.notes.push(e.to_string()),
    }
    let endpoints = target::discover(&root, pid, limits)?;
    if endpoints.is_empty() {
        inputs.notes.push(format!(
            "process {pid} listens on no TCP port that answers HTTP (no expvar, /metrics \
             or pprof): only its environment and build info were read"
        ));
    } else {
        let wanted = [
            Resource::Vars,
            Resource::Metrics,
            Resource::Goroutine { debug: 1 },
        ];
        for resource in wanted {
            match endpoints.iter().find(|e| serves(e, resource)) {
                Some(endpoint) => {
                    let url = format!("{}{}", endpoint.base_url, resource.path());
                    fetch_into(&url, resource, limits, inputs)?;
                }
                None => inputs.skipped.push(format!(
                    "{}: no port of process {pid} serves it",
                    resource.path()
                )),
            }
        }
    }
    let environ = format!("/proc/{pid}/environ");
    match root.read_bytes(&environ) {
        Ok(bytes) => inputs.env = Some((environ, GoEnv::parse(&bytes))),
        Err(e) => inputs.notes.push(format!("{environ}: {e}")),
    }
    Ok(())
}

/// Whether a discovered endpoint serves `resource`.
fn serves(endpoint: &Endpoint, resource: Resource) -> bool {
    match resource {
        Resource::Vars => endpoint.expvar,
        Resource::Metrics => endpoint.metrics,
        _ => endpoint.pprof,
    }
}

/// Reads a URL target: a base gets the three standard paths, a full URL is
/// read as one input of detected kind.
fn read_url(url: &str, limits: &FetchLimits, inputs: &mut Inputs) -> anyhow::Result<()> {
    let parsed = http::HttpUrl::parse(url)?;
    if parsed.path != "/" {
        let bytes = http::get(url, limits)?;
        return add_detected(url, &bytes, inputs);
    }
    let base = url.trim_end_matches('/');
    for resource in [
        Resource::Vars,
        Resource::Metrics,
        Resource::Goroutine { debug: 1 },
    ] {
        let full = format!("{base}{}", resource.path());
        fetch_into(&full, resource, limits, inputs)?;
    }
    if inputs.expvar.is_none() && inputs.metrics.is_none() && inputs.goroutine_total.is_none() {
        bail!("{url} serves none of /debug/vars, /metrics, /debug/pprof/goroutine");
    }
    Ok(())
}

/// Fetches one resource and adds it to `inputs`. Not served (an HTTP error
/// status, or a body of the wrong kind) is recorded in `inputs.skipped`;
/// a connection failure is an error.
fn fetch_into(
    url: &str,
    resource: Resource,
    limits: &FetchLimits,
    inputs: &mut Inputs,
) -> anyhow::Result<()> {
    let result = match resource {
        Resource::Goroutine { .. } => first_line(url, limits),
        _ => http::get(url, limits),
    };
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(FetchError::Status { status, .. }) => {
            inputs.skipped.push(format!("{url}: HTTP {status}"));
            return Ok(());
        }
        Err(e) => return Err(TargetError::Fetch(e).into()),
    };
    let expected = match resource {
        Resource::Vars => Format::Expvar,
        Resource::Metrics => Format::Prometheus,
        _ => Format::GoroutineDebug1,
    };
    match detect::detect(&bytes) {
        Ok(format) if format == expected => add(url, format, &bytes, inputs),
        Ok(format) => {
            inputs.skipped.push(format!(
                "{url}: {} instead of {}",
                format.name(),
                expected.name()
            ));
            Ok(())
        }
        Err(reason) => {
            inputs.skipped.push(format!("{url}: {reason}"));
            Ok(())
        }
    }
}

/// The first line of a body (a `debug=1` goroutine dump starts with its total;
/// the rest can be big and is not needed).
fn first_line(url: &str, limits: &FetchLimits) -> Result<Vec<u8>, FetchError> {
    let body = http::open(url, limits)?;
    let mut line = Vec::new();
    BufReader::new(body.take(4096))
        .read_until(b'\n', &mut line)
        .map_err(|source| FetchError::Io {
            url: url.to_string(),
            cause: source,
        })?;
    Ok(line)
}

/// Adds one input of detected kind (files, stdin, full URLs).
fn add_detected(name: &str, bytes: &[u8], inputs: &mut Inputs) -> anyhow::Result<()> {
    let format = detect::detect(bytes).map_err(|reason| anyhow::anyhow!("{name}: {reason}"))?;
    add(name, format, bytes, inputs)
}

/// Parses one input of a known kind into `inputs`.
fn add(name: &str, format: Format, bytes: &[u8], inputs: &mut Inputs) -> anyhow::Result<()> {
    match format {
        Format::Expvar => {
            let vars = parse_expvar(name, bytes)?;
            inputs.expvar = Some((name.to_string(), vars));
        }
        Format::Prometheus => {
            let exposition = parse_promtext(name, bytes)?;
            inputs.metrics = Some((
                name.to_string(),
                GoMetrics::from_exposition(&exposition),
                ProcessMetrics::from_exposition(&exposition),
            ));
        }
        Format::Gctrace => {
            let trace = parse_gctrace(name, bytes)?;
            inputs.gctrace = Some((name.to_string(), trace));
        }
        Format::GoroutineDebug1 => {
            let text = String::from_utf8_lossy(bytes);
            let total = text
                .lines()
                .find_map(detect::goroutine_total)
                .with_context(|| format!("{name}: no 'goroutine profile: total N' line"))?;
            inputs.goroutine_total = Some((name.to_string(), total));
        }
    }
    Ok(())
}
