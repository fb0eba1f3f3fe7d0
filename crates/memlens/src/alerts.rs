//! `memlens rules`, `memlens alertmanager-config`, `memlens grafana`: the
//! alert crate's generators (memlens-alert) on the command line, with the
//! thresholds of the config file's `[alerts]` table.

use crate::watch::WatchConfig;
use anyhow::Context;
use memlens_alert::{catalogue, Naming, Thresholds};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `memlens rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// The agent's TOML config file: its `[alerts]` table sets thresholds,
    /// `for` and windows (`memlens watch --print-config` lists them).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Over the names hosts without memlens have: cAdvisor
    /// (container_memory_working_set_bytes, container_spec_memory_limit_bytes),
    /// node-exporter (node_vmstat_oom_kill, PSI) and client_golang (go_*).
    #[arg(long)]
    pub standard_names: bool,

    /// Write `promtool test rules` unit tests for these rules instead of the rules.
    #[arg(long, conflicts_with = "markdown")]
    pub tests: bool,

    /// With --tests: the rule file as the tests name it, relative to the test
    /// file [default: memlens-rules.yml, memlens-standard-rules.yml].
    #[arg(long, value_name = "PATH", requires = "tests")]
    pub rule_file: Option<String>,

    /// Print the catalogue of both namings as docs/alerts.md shows it.
    #[arg(long)]
    pub markdown: bool,

    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Options of `memlens alertmanager-config` and `memlens grafana`.
#[derive(Debug, clap::Args)]
pub struct GeneratedArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The thresholds of the config file, or the defaults.
fn thresholds(config: Option<&Path>) -> anyhow::Result<Thresholds> {
    let Some(path) = config else {
        return Ok(Thresholds::default());
    };
    let config = WatchConfig::load(path)?;
    config.validate()?;
    Ok(config.alerts.0)
}

fn write(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => Ok(std::io::stdout().write_all(text.as_bytes())?),
    }
}

/// `memlens rules`.
pub fn run_rules(args: &RulesArgs) -> anyhow::Result<()> {
    let t = thresholds(args.config.as_deref())?;
    let naming = if args.standard_names {
        Naming::Standard
    } else {
        Naming::Memlens
    };
    let text = if args.markdown {
        catalogue::markdown(&t)
    } else if args.tests {
        let default = match naming {
            Naming::Memlens => "memlens-rules.yml",
            Naming::Standard => "memlens-standard-rules.yml",
        };
        memlens_alert::ruletests::test_file(
            naming,
            &t,
            args.rule_file.as_deref().unwrap_or(default),
        )
    } else {
        memlens_alert::rules::rule_file(&catalogue(naming, &t))
    };
    write(args.output.as_deref(), &text)
}

/// `memlens alertmanager-config`.
pub fn run_alertmanager(args: &GeneratedArgs) -> anyhow::Result<()> {
    write(
        args.output.as_deref(),
        &memlens_alert::alertmanager::config(),
    )
}

/// `memlens grafana`.
pub fn run_grafana(args: &GeneratedArgs) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(&memlens_alert::grafana::dashboard())?;
    text.push('\n');
    write(args.output.as_deref(), &text)
}
