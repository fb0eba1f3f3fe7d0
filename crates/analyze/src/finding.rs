//! What a detector reports: a [`Finding`] with a stable id, a severity, its
//! target, the evidence (numbers and the layer each came from), a
//! recommendation, and when it fired and cleared. The ids are a contract
//! (alert rules are written against them): see docs/findings.md.

use memlens_model::series::Entity;

/// The target of a finding: a process incarnation (pid, start time), a cgroup
/// or the host — the same entities the history stores.
pub type Target = Entity;

/// Stable id: the time left until the kernel's OOM kill, from the trend of
/// usage against the kill point.
pub const TIME_TO_OOM: &str = "memory.time_to_oom";
/// Stable id: a sustained memory growth trend (RSS, cgroup usage or Go heap
/// in use), robust to the GC sawtooth and start-up.
pub const GROWTH: &str = "memory.growth";
/// Stable id: the kernel OOM-killed a process (an event: fires and clears at
/// the same instant), linked to the victim's last samples.
pub const OOM_KILL: &str = "memory.oom_kill";
/// Stable id: the non-reclaimable working set is at the kill point's door:
/// at least 90 % of it with less headroom than one GC cycle's growth.
pub const NEAR_LIMIT: &str = "memory.near_limit";
/// Stable id: a cgroup pinned at its limit while the kernel evicts its pages
/// and it faults them back in: a stall, not a kill.
pub const THRASHING: &str = "memory.thrashing";
/// Stable id: the Go runtime's memory reached GOMEMLIMIT (a soft target: the
/// GC works harder, nobody is killed).
pub const GOMEMLIMIT_REACHED: &str = "go.gomemlimit_reached";

/// Stable id: a neighbour's memory growth preceded and correlates with a
/// victim cgroup's refaults, major faults, stalls or database misses: the
/// neighbour (aggressor) took the victim's memory.
pub const CONTENTION: &str = "memory.contention";

/// Stable id: a MySQL/MariaDB server's buffer pool hit ratio fell over the
/// window, with its cause (the pool shrank, its pages were reclaimed and
/// faulted back, or the query mix changed).
pub const MYSQL_HIT_RATIO_DROP: &str = "mysql.hit_ratio_drop";
/// Stable id: a MySQL/MariaDB server's RSS is above 110 % of its buffer pool
/// and swings by more than 15 % of it, with the memory ledger as evidence.
pub const MYSQL_RSS_OVER_POOL: &str = "mysql.rss_over_pool";

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Act soon.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which layer a number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The kernel / host (/proc/meminfo, vmstat).
    Kernel,
    /// The memory cgroup.
    Cgroup,
    /// The process (/proc/PID).
    Process,
    /// The Go runtime (expvar, /metrics).
    GoRuntime,
    /// Derived by memlens from the numbers above (a slope, a forecast).
    Derived,
}

impl Layer {
    /// `kernel`, `cgroup`, `process`, `go_runtime` or `derived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Kernel => "kernel",
            Layer::Cgroup => "cgroup",
            Layer::Process => "process",
            Layer::GoRuntime => "go_runtime",
            Layer::Derived => "derived",
        }
    }
}

/// One number behind a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// What it is (`usage_bytes`, `slope_bytes_per_second`,
    /// `predicted_kill_at_ms`, ...).
    pub name: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit (`bytes`, `bytes/s`, `seconds`, `ms`, `ratio`).
    pub unit: &'static str,
    /// Where it came from.
    pub layer: Layer,
}

impl Evidence {
    /// Shorthand constructor.
    pub fn new(name: &'static str, value: f64, unit: &'static str, layer: Layer) -> Evidence {
        Evidence {
            name,
            value,
            unit,
            layer,
        }
    }
}

/// One finding: fired at `fired_at_ms`, cleared at `cleared_at_ms` (`None`
/// while active).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The stable id ([`TIME_TO_OOM`], [`GROWTH`], [`GOMEMLIMIT_REACHED`]).
    pub id: &'static str,
    /// How urgent.
    pub severity: Severity,
    /// Whom it is about.
    pub target: Target,
    /// The numbers (at firing; kept current while active).
    pub evidence: Vec<Evidence>,
    /// What to do.
    pub recommendation: String,
    /// When it fired (ms since the Unix epoch, the sample's time).
    pub fired_at_ms: i64,
    /// When it cleared, if it did.
    pub cleared_at_ms: Option<i64>,
}

impl Finding {
    /// A finding that fires at `at_ms` (active: not cleared).
    pub fn fired(
        id: &'static str,
        severity: Severity,
        target: Target,
        evidence: Vec<Evidence>,
        recommendation: String,
        at_ms: i64,
    ) -> Finding {
        Finding {
            id,
            severity,
            target,
            evidence,
            recommendation,
            fired_at_ms: at_ms,
            cleared_at_ms: None,
        }
    }

    /// The evidence named `name`, if present.
    pub fn evidence(&self, name: &str) -> Option<f64> {
        self.evidence
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value)
    }
}
