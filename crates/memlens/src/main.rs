//! `memlens`: the command-line entry point.
//!
//! Subcommands are added by the pipeline stages as they land (snapshot, watch,
//! goroutines, heap, ...). Today the binary only describes itself.

use clap::Parser;

/// Shows where a Go service's memory is on Linux, why it grows, whether and when
/// the kernel will OOM-kill it, and what to change.
///
/// memlens reads four layers at once with no change to the target: the kernel and
/// host (/proc, PSI), the memory cgroup, the process, and the Go runtime.
#[derive(Debug, Parser)]
#[command(name = "memlens", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    // No subcommand exists yet: print the help so a bare run explains the tool.
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.print_long_help().expect("write help to stdout");
    println!();
}
