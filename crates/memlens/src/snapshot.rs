//! `memlens snapshot`: one look at every process's memory, with the host and
//! the cgroups they are in.

use crate::collect::{self, CollectOptions, Collector, ProcessFilter, SmapsPolicy};
use crate::duration;
use crate::show;
use anyhow::Context;
use clap::{Args, ValueEnum};
use memlens_linux::fs::Root;
use memlens_model::{ProcessSample, Snapshot};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `memlens snapshot`.
#[derive(Debug, Args)]
#[command(after_help = duration::HELP)]
pub struct SnapshotArgs {
    /// Only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Only processes in this memory cgroup or below it (path as in /proc/PID/cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Only Go programs.
    #[arg(long)]
    pub go: bool,
    /// Order of the rows (largest first).
    #[arg(long, value_enum, default_value_t = SortKey::Rss)]
    pub sort: SortKey,
    /// Print JSON (the format is documented in docs/snapshot-json.md).
    #[arg(long)]
    pub json: bool,
    /// When to read /proc/PID/smaps_rollup (PSS, USS). Reading it holds the
    /// process's mmap lock while the kernel walks its page tables, which can stall
    /// a huge process for seconds; `auto` skips processes with very many
    /// mappings or a huge RSS and stops reading once the snapshot's time budget
    /// for it is spent.
    #[arg(long, value_enum, default_value_t = SmapsPolicy::Auto)]
    pub smaps: SmapsPolicy,
    /// Take a snapshot every DURATION, like `vmstat 1`: the table each time
    /// under a timestamp line, or with --json one JSON document per line
    /// (JSON Lines). Runs until interrupted, or --count.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub every: Option<Duration>,
    /// With --every: stop after N snapshots.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub count: Option<String>,
    /// With --every: reuse a process's last smaps_rollup reading (PSS, USS,
    /// SwapPss) while its fault counters and its RssAnon, RssFile, RssShmem,
    /// VmSwap and VmPTE have not changed, for at most DURATION (0: walk it
    /// every time) [default: 30s].
    /// Those counters only follow the process's own pages: another process
    /// mapping or unmapping pages it shares, a fork or exit of a sharer, or
    /// KSM merging its pages change its PSS without moving them, so a reused
    /// PSS can be off by that much for up to DURATION. Each row's
    /// pss_age_seconds says how old its PSS is.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub pss_max_age: Option<Duration>,
    /// Also read the MySQL/MariaDB servers among the processes (credentials
    /// from the `[client]` group of ~/.my.cnf or --mysql-option-file; a server
    /// that cannot be read shows as not available).
    #[arg(long)]
    pub mysql: bool,
    /// The client option file for --mysql (implies it).
    #[arg(long, value_name = "FILE")]
    pub mysql_option_file: Option<PathBuf>,
    /// Read /proc and /sys under this directory instead of / (a captured tree).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// What `--sort` orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Resident set size.
    Rss,
    /// Proportional set size (falls back to RSS where PSS was not read).
    Pss,
    /// Swapped-out memory.
    Swap,
    /// Page faults, major first, then minor.
    Faults,
    /// Open file descriptors.
    Fds,
}

/// How `--every` repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Repeat {
    interval: Duration,
    count: Option<u64>,
    pss_max_age: Duration,
}

/// The repetition the flags ask for; `None` for a single snapshot.
fn repeat(args: &SnapshotArgs) -> anyhow::Result<Option<Repeat>> {
    let Some(every) = &args.every else {
        if args.count.is_some() {
            anyhow::bail!("--count needs --every");
        }
        if args.pss_max_age.is_some() {
            anyhow::bail!("--pss-max-age needs --every");
        }
        return Ok(None);
    };
    if every.is_zero() {
        anyhow::bail!("--every: must be more than 0s");
    }
    let interval = *every;
    let count = match &args.count {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => anyhow::bail!("--count {text}: must be a whole number of snapshots, 1 or more"),
        },
    };
    let pss_max_age = args
        .pss_max_age
        .unwrap_or(collect::pss::DEFAULT_PSS_MAX_AGE);
    Ok(Some(Repeat {
        interval,
        count,
        pss_max_age,
    }))
}

/// Runs `memlens snapshot`.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    let repeat = repeat(args)?;
    let root = Root::at(&args.root);
    let options = CollectOptions {
        filter: ProcessFilter {
            pids: args.pids.clone(),
            cgroup: args.cgroup.clone(),
            go_only: args.go,
            skip_missing: false,
        },
        smaps: args.smaps,
        smaps_budget: collect::SMAPS_BUDGET,
    };
    let mut mysql =
        collect::mysql::MysqlCollector::from_flags(args.mysql, args.mysql_option_file.as_ref())?;
    // A server that cannot be read is said on stderr; the snapshot goes on.
    let mut read_mysql = |snapshot: &mut Snapshot| {
        if let Some(mysql) = &mut mysql {
            for failure in mysql.collect(&root, snapshot) {
                eprintln!("memlens snapshot: {}", failure.message);
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let Some(repeat) = repeat else {
        let mut snapshot = collect::snapshot(&root, &options)
            .with_context(|| format!("reading the host under {}", args.root.display()))?;
        read_mysql(&mut snapshot);
        sort(&mut snapshot.processes, args.sort);
        if args.json {
            serde_json::to_writer_pretty(&mut out, &snapshot)?;
            writeln!(out)?;
        } else {
            show::snapshot_table(&mut out, &snapshot)?;
        }
        out.flush()?;
        return Ok(());
    };
    let mut collector = Collector::with_pss_max_age(repeat.pss_max_age);
    let mut next = Instant::now();
    let mut taken = 0u64;
    loop {
        let mut snapshot = collector
            .snapshot(&root, &options)
            .with_context(|| format!("reading the host under {}", args.root.display()))?;
        read_mysql(&mut snapshot);
        sort(&mut snapshot.processes, args.sort);
        write_repeated(&mut out, &snapshot, args.json)?;
        // Each snapshot reaches the reader at once (a pipe is not a terminal).
        out.flush()?;
        taken += 1;
        if repeat.count.is_some_and(|count| taken >= count) {
            return Ok(());
        }
        // A fixed rate: a slow snapshot shortens the next pause, and after one
        // slower than the interval the next starts at once.
        next += repeat.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// One snapshot of `--every`: a JSON line, or a timestamp line and the table.
fn write_repeated(out: &mut impl Write, snapshot: &Snapshot, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, snapshot)?;
        writeln!(out)?;
    } else {
        let at = show::findings::iso_utc(snapshot.taken_at_unix_ms as i64);
        writeln!(out, "--- {at} ---")?;
        show::snapshot_table(out, snapshot)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Sorts largest first by `key`; ties by pid for a stable order.
fn sort(processes: &mut [ProcessSample], key: SortKey) {
    let value = |p: &ProcessSample| -> (u64, u64) {
        match key {
            SortKey::Rss => (p.rss_bytes.unwrap_or(0), 0),
            SortKey::Pss => (p.pss_bytes.or(p.rss_bytes).unwrap_or(0), 0),
            SortKey::Swap => (p.swap_bytes.unwrap_or(0), 0),
            SortKey::Faults => (p.major_faults, p.minor_faults),
            SortKey::Fds => (p.fd_count.unwrap_or(0), 0),
        }
    };
    processes.sort_by(|a, b| value(b).cmp(&value(a)).then(a.pid.cmp(&b.pid)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_largest_first_with_missing_values_last() {
        let p = |pid, rss: Option<u64>, major, minor| ProcessSample {
            pid,
            rss_bytes: rss,
            major_faults: major,
            minor_faults: minor,
            ..ProcessSample::default()
        };
        let mut rows = vec![p(1, Some(10), 0, 5), p(2, None, 1, 0), p(3, Some(30), 0, 9)];
        sort(&mut rows, SortKey::Rss);
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [3, 1, 2]);
        sort(&mut rows, SortKey::Faults);
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [2, 3, 1]);
    }

    /// The repetition of `memlens snapshot FLAGS`, as the command line is
    /// parsed (clap and the duration grammar, then [`repeat`]).
    fn repeat_of(flags: &[&str]) -> Result<Option<Repeat>, String> {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: SnapshotArgs,
        }
        let argv = std::iter::once("snapshot").chain(flags.iter().copied());
        let command = <Command as clap::Parser>::try_parse_from(argv)
            .map_err(|err| crate::duration::flag_error(&err).unwrap_or(err.to_string()))?;
        repeat(&command.args).map_err(|err| err.to_string())
    }

    #[test]
    fn repeat_flags_are_checked() {
        assert_eq!(repeat_of(&[]).unwrap(), None);
        assert_eq!(
            repeat_of(&["--every", "0.5", "--count", "3", "--pss-max-age", "0"]).unwrap(),
            Some(Repeat {
                interval: Duration::from_millis(500),
                count: Some(3),
                pss_max_age: Duration::ZERO,
            })
        );
        assert_eq!(
            repeat_of(&["--every", "500ms", "--pss-max-age", "1m30s"]).unwrap(),
            Some(Repeat {
                interval: Duration::from_millis(500),
                count: None,
                pss_max_age: Duration::from_secs(90),
            })
        );
        assert_eq!(
            repeat_of(&["--every", "2"]).unwrap().unwrap().pss_max_age,
            collect::pss::DEFAULT_PSS_MAX_AGE
        );
        let error = |flags: &[&str]| repeat_of(flags).unwrap_err();
        for bad in ["0", "0s", "-1", "abc", "inf", "NaN", "", "5x"] {
            let message = error(&["--every", bad]);
            assert!(message.starts_with("--every: "), "{bad}: {message}");
        }
        for bad in ["0", "-2", "1.5", "x"] {
            let message = error(&["--every", "1", "--count", bad]);
            assert!(message.starts_with("--count"), "{bad}: {message}");
        }
        for bad in ["-0.1", "y", "1e300"] {
            let message = error(&["--every", "1", "--pss-max-age", bad]);
            assert!(message.starts_with("--pss-max-age: "), "{bad}: {message}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
        assert!(error(&["--count", "3"]).contains("--every"));
        assert!(error(&["--pss-max-age", "3"]).contains("--every"));
    }
}
