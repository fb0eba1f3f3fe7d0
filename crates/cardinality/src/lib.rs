//! What series leave the agent, and under which names, so that a fleet's
//! series stay bounded (docs/metrics.md, "Series identity"):
//!
//! - [`identity`]: a process's series are named by its cgroup (and the
//!   `service` read from it), its `comm` and an `instance_index` that keeps
//!   two live processes of the same name and cgroup apart; a restart
//!   continues the series of the process before it. `pid` is opt-in.
//! - [`select`]: which processes get series (all, Go only, the N largest).
//! - [`relabel`]: Prometheus-style relabel rules over every series.
//!
//! Pure: no IO. The agent assigns the indexes each cycle and hands these
//! options to the `/metrics` exporter and the remote-write senders
//! (`memlens-export`), which both label series with [`process_labels`].

pub mod identity;
pub mod relabel;
pub mod select;

pub use identity::{process_target, service_of, Identities, INDEX_LABEL};
pub use relabel::{RelabelConfig, Relabeler};
pub use select::Processes;

/// What the agent exports, from the config's `[series]` table.
#[derive(Debug, Clone)]
pub struct SeriesOptions {
    /// Add the `pid` label to process, Go and MySQL series and findings:
    /// each incarnation of a service gets series of its own.
    pub pid_label: bool,
    /// Which processes get series.
    pub processes: Processes,
    /// With [`Processes::Top`]: how many.
    pub top_processes: usize,
    /// The relabel rules applied to every host, cgroup, process, Go and
    /// MySQL series.
    pub relabel: Relabeler,
}

impl Default for SeriesOptions {
    fn default() -> Self {
        SeriesOptions {
            pid_label: false,
            processes: Processes::All,
            top_processes: DEFAULT_TOP_PROCESSES,
            relabel: Relabeler::default(),
        }
    }
}

/// `top_processes` unless the config says otherwise.
pub const DEFAULT_TOP_PROCESSES: usize = 50;

/// A process as its series name it.
#[derive(Debug, Clone, Copy)]
pub struct ProcessIdentity<'a> {
    /// Its pid (a label only with `pid_label`).
    pub pid: i32,
    /// Its `comm`.
    pub comm: &'a str,
    /// Its memory cgroup, when known.
    pub cgroup: Option<&'a str>,
    /// Its [`INDEX_LABEL`] (not written when 0).
    pub index: u32,
}

/// The labels of a process's series: `comm`, `cgroup` and `service` (when
/// the cgroup is known), `instance_index` (above 0), `pid` (with
/// `pid_label`). The caller adds `go_version` to process series.
pub fn process_labels(id: &ProcessIdentity<'_>, pid_label: bool) -> Vec<(&'static str, String)> {
    let mut labels = Vec::with_capacity(5);
    labels.push(("comm", id.comm.to_string()));
    if let Some(cgroup) = id.cgroup.filter(|c| !c.is_empty()) {
        labels.push(("cgroup", cgroup.to_string()));
        labels.push(("service", service_of(cgroup)));
    }
    if id.index > 0 {
        labels.push((INDEX_LABEL, id.index.to_string()));
    }
    if pid_label {
        labels.push(("pid", id.pid.to_string()));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_labels_carry_pid_only_when_asked() {
        let id = ProcessIdentity {
            pid: 42,
            comm: "api",
            cgroup: Some("/system.slice/api.service"),
            index: 0,
        };
        let names = |l: Vec<(&str, String)>| {
            l.into_iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(process_labels(&id, false)),
            [
                "comm=api",
                "cgroup=/system.slice/api.service",
                "service=api.service"
            ]
        );
        let second = ProcessIdentity {
            index: 1,
            cgroup: None,
            ..id
        };
        assert_eq!(
            names(process_labels(&second, true)),
            ["comm=api", "instance_index=1", "pid=42"]
        );
    }
}
