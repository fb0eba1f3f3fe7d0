//! `memlens`: the command-line entry point. Owns `main()`, parses arguments and
//! hands each subcommand to its module.
//!
//! - `collect/`: reads the host, cgroups and processes into model samples.
//! - `snapshot.rs`: the `snapshot` subcommand (select, sort, print).
//! - `show/`: tables for people, JSON for scripts.
//! - `target/`: where Go-runtime commands read from (PID, URL, file, stdin).
//! - `watch/`: the agent loop and what it writes to the history.
//! - `alerts.rs`: `rules`, `alertmanager-config`, `grafana` (memlens-alert's generators).

mod advise;
mod alerts;
mod collect;
mod diagnose;
mod duration;
mod flame;
mod goroutines;
mod heap;
mod history;
mod maps;
mod profiles;
mod query;
mod replay;
mod report;
mod runtime;
mod secret;
mod serve;
mod show;
mod snapshot;
mod target;
mod timearg;
mod trace;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Shows where a Go service's memory is on Linux, why it grows, whether and when
/// the kernel will OOM-kill it, and what to change.
///
/// memlens reads four layers at once with no change to the target: the kernel and
/// host (/proc, PSI), the memory cgroup, the process, and the Go runtime.
#[derive(Debug, Parser)]
#[command(name = "memlens", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every process's memory through the kernel's eyes, with the host and cgroups.
    Snapshot(snapshot::SnapshotArgs),
    /// Top allocation sites of a Go heap profile, map share, growth since --base.
    Heap(heap::HeapArgs),
    /// Flame graph SVG of a pprof profile (heap, allocs, goroutine); --base for a differential one.
    Flame(flame::FlameArgs),
    /// Goroutines grouped by stack and creation site, leaks (proven or suspected) first; --diff for growth.
    Goroutines(goroutines::GoroutinesArgs),
    /// One-screen summary of a Go runtime: heap, GC goal, GOGC, GOMEMLIMIT, goroutines, GC cycles, each with its source.
    Runtime(runtime::RuntimeArgs),
    /// The agent: samples every process, cgroup and Go runtime at an interval, keeps the history, and runs the detectors live.
    Watch(watch::WatchArgs),
    /// A process's recorded series (by pid or name) from the agent's history.
    History(history::HistoryArgs),
    /// The web dashboard over a recorded history (what `watch --listen` serves live): host overview, process pages, time travel.
    Serve(serve::ServeArgs),
    /// One self-contained HTML file about a process of a recorded history (charts, findings, flame graphs, goroutines, its heap profile) that opens offline.
    Report(report::ReportArgs),
    /// Read-only SQL over the history (views: samples, entities, series, profiles, findings).
    Query(query::QueryArgs),
    /// Runs the detectors over a recorded history: when each finding would have fired and cleared.
    Replay(replay::ReplayArgs),
    /// The heap and goroutine profiles the agent kept: list them, or write the one nearest --at to a file.
    Profiles(profiles::ProfilesArgs),
    /// Findings about the selected processes, by detector family: open files, VMAs, GC pressure, RSS above the Go heap, GOMEMLIMIT/GOGC, goroutine leaks, heap growth, map bloat, OOM victims.
    Diagnose(diagnose::DiagnoseArgs),
    /// Recommended GOMEMLIMIT, GOGC, cgroup memory.high/max and Kubernetes requests/limits for a Go process, as ready snippets.
    Advise(advise::AdviseArgs),
    /// Prometheus alerting and recording rules (or, with --tests, their promtool unit tests), thresholds from the config's [alerts].
    Rules(alerts::RulesArgs),
    /// An Alertmanager config for those alerts: route tree by severity and inhibition rules.
    AlertmanagerConfig(alerts::GeneratedArgs),
    /// A Grafana dashboard (classic JSON model) over memlens's /metrics.
    Grafana(alerts::GeneratedArgs),
    /// Who faults pages and who maps memory in a process, by user stack (eBPF, root): table, folded stacks, flame graphs, pprof.
    Trace(trace::TraceArgs),
    /// A live Go program's package-level maps from outside (DWARF + /proc/PID/mem): length, capacity, load.
    Maps(maps::MapsArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return bad_arguments(err),
    };
    let result = match cli.command {
        Command::Snapshot(args) => snapshot::run(&args),
        Command::Heap(args) => heap::run(&args),
        Command::Flame(args) => flame::run(&args),
        Command::Goroutines(args) => goroutines::run(&args),
        Command::Runtime(args) => runtime::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::History(args) => history::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Profiles(args) => profiles::run(&args),
        Command::Diagnose(args) => diagnose::run(&args),
        Command::Advise(args) => advise::run(&args),
        Command::Rules(args) => alerts::run_rules(&args),
        Command::AlertmanagerConfig(args) => alerts::run_alertmanager(&args),
        Command::Grafana(args) => alerts::run_grafana(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Maps(args) => maps::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("memlens: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A bad duration is one line naming the flag and the value, exit 1, like
/// every other bad input; clap reports the rest (and prints help, version).
fn bad_arguments(err: clap::Error) -> ExitCode {
    match duration::flag_error(&err) {
        Some(line) => {
            eprintln!("memlens: {line}");
            ExitCode::FAILURE
        }
        None => err.exit(),
    }
}

/// `memlens snapshot | head` closes our stdout early: that is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
