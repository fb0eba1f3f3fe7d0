//! `memlens report`: one self-contained HTML file about a process (or
//! cgroup) of a recorded history: charts, findings with evidence, flame
//! graphs, goroutine groups and the last kept heap profile, embedded. It
//! opens offline (every script inlined, allowed by hash in a `<meta>` CSP;
//! no request leaves the page). `--extract` reads the profile back out.
//! The page is built by `memlens_web::report`.

use crate::timearg::parse_time_ms;
use crate::watch::default_data_dir;
use anyhow::{bail, Context};
use memlens_analyze::finding::OOM_KILL;
use memlens_store::{EntityInfo, Store, Value as SqlValue};
use memlens_web::report;
use std::path::PathBuf;

/// Options of `memlens report`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::duration::HELP)]
pub struct ReportArgs {
    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// The entity's key in the history (`process:PID:START`, `cgroup:/PATH`;
    /// `memlens query` lists them).
    #[arg(long, value_name = "KEY", required_unless_present_any = ["pid", "extract", "finding"])]
    pub target: Option<String>,

    /// The process with this id (its latest incarnation in the history).
    #[arg(long, value_name = "PID", conflicts_with = "target")]
    pub pid: Option<i64>,

    /// The finding with this row (`row` in the dashboard's API, `id` in `memlens
    /// query "SELECT id, finding, target FROM findings"`), e.g. an OOM kill: its
    /// target, the window ending when it fired.
    #[arg(long, value_name = "ROW", conflicts_with_all = ["target", "pid"])]
    pub finding: Option<i64>,

    /// Start of the window: -DURATION before its end (-2h), 03:12, Unix s/ms,
    /// RFC 3339 [default: an hour before the end].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,

    /// End of the window [default: the entity's last sample or kept profile; with --finding, when it fired, or for an OOM kill the victim's last data if later].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,

    /// Where to write the HTML (or, with --extract, the profile) [default: stdout].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Read the heap profile embedded in this report (gzipped protobuf, for
    /// `go tool pprof`) instead of writing a report.
    #[arg(long, value_name = "REPORT.html")]
    pub extract: Option<PathBuf>,
}

/// Runs `memlens report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.extract {
        let html = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let profile = report::extract_profile(&html)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return write(args.output.as_ref(), &profile);
    }
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let (entity, last_ms) = match args.finding {
        Some(row) => {
            let finding = store
                .findings(i64::MIN, i64::MAX)?
                .into_iter()
                .find(|f| f.row == row)
                .with_context(|| format!("--finding {row}: no finding with that row"))?;
            let entity = entity_by_key(&store, &finding.target, "--finding")?;
            // A kill is seen after the fact, and a heap profile fetched just
            // before it can be stored after that: its report ends at the
            // victim's last data when that is later.
            let end_ms = match last_data_ms(&store, &entity)? {
                Some(last) if finding.id == OOM_KILL => last.max(finding.fired_ms),
                _ => finding.fired_ms,
            };
            (entity, end_ms)
        }
        None => {
            let entity = find_entity(&store, args)?;
            let last = last_data_ms(&store, &entity)?
                .with_context(|| format!("{}: no sample of it in the history", entity.key))?;
            (entity, last)
        }
    };
    let to_ms = match &args.to {
        Some(t) => parse_time_ms(t, last_ms).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        None => last_ms,
    };
    let from_ms = match &args.from {
        Some(t) => parse_time_ms(t, to_ms).map_err(|e| anyhow::anyhow!("--from: {e}"))?,
        None => to_ms - 3_600_000,
    };
    if from_ms >= to_ms {
        bail!("--from must be before --to (the window is empty)");
    }
    let title = match (&entity.comm, entity.pid) {
        (Some(comm), Some(pid)) => format!("{comm} (pid {pid})"),
        _ => entity.key.clone(),
    };
    let built = report::build(&store, entity.id, from_ms, to_ms, &title)
        .map_err(|e| anyhow::anyhow!("building the report of {}: {e:?}", entity.key))?;
    eprintln!(
        "memlens: report of {} from {} to {}: {} bytes ({} of data, {} of embedded heap \
         profile; {} within the budget of {} bytes)",
        entity.key,
        crate::timearg::format_utc(from_ms),
        crate::timearg::format_utc(to_ms),
        built.html.len(),
        built.data_bytes,
        built.profile_bytes,
        built.budgeted_bytes(),
        report::BUDGET_BYTES
    );
    if built.budgeted_bytes() > report::BUDGET_BYTES {
        eprintln!(
            "memlens: warning: the report is over its budget of {} bytes (profile excluded): \
             a narrower --from/--to makes it smaller",
            report::BUDGET_BYTES
        );
    }
    write(args.output.as_ref(), built.html.as_bytes())
}

fn write(output: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match output {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        _ => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            Ok(out.flush()?)
        }
    }
}

fn find_entity(store: &Store, args: &ReportArgs) -> anyhow::Result<EntityInfo> {
    if let Some(pid) = args.pid {
        let mut found = store.entities_by_pid(pid)?;
        found.sort_by_key(|e| e.first_ts_ms);
        return found
            .pop()
            .with_context(|| format!("--pid {pid}: no such process in the history"));
    }
    entity_by_key(
        store,
        args.target.as_deref().unwrap_or_default(),
        "--target",
    )
}

fn entity_by_key(store: &Store, key: &str, flag: &str) -> anyhow::Result<EntityInfo> {
    store
        .entities()?
        .into_iter()
        .find(|e| e.key == key)
        .with_context(|| {
            format!("{flag} {key}: no such entity in the history (keys look like process:PID:START or cgroup:/PATH)")
        })
}

/// When the history last heard of `entity`: its newest sample, or its
/// newest kept profile when that is later (a profile is stored when it
/// arrives, which can be after the process's last sample).
fn last_data_ms(store: &Store, entity: &EntityInfo) -> anyhow::Result<Option<i64>> {
    let mut last = None;
    for view in ["samples", "profiles"] {
        // The id is the store's integer, never text from the command line.
        let q = store.query(&format!(
            "SELECT max(ts) FROM {view} WHERE entity = {}",
            entity.id
        ))?;
        if let Some(SqlValue::Integer(ms)) = q.rows.first().map(|r| &r[0]) {
            last = last.max(Some(*ms));
        }
    }
    Ok(last)
}
