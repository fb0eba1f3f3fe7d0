//! GOMEMLIMIT and GOGC against the cgroup's memory limit: which settings are
//! in force, whether they fit the limit, and what to set instead. Pure code:
//! numbers and environment strings in, a [`Recommendation`] and findings out.
//!
//! The idea: `GOMEMLIMIT` bounds the memory the Go runtime counts (everything
//! it mapped and did not return: `sys - heap_released`), not what the cgroup
//! charges. The cgroup also charges what the runtime does not count: the
//! binary's pages, cgo and other non-Go mappings, page cache, kernel memory,
//! other processes of the cgroup. So the limit must leave room for that
//! ("outside" memory, measured) plus a margin:
//!
//! `GOMEMLIMIT = cgroup limit - outside memory observed - margin`
//!
//! The margin ([`Config::margin_ratio`] of the limit, at least
//! [`Config::margin_min_bytes`]) covers what a short observation cannot:
//! GOMEMLIMIT is a soft target (the heap passes it by what is allocated while
//! a cycle runs, and the GC's CPU limiter lets it pass the limit rather than
//! use more than half the CPU), and outside memory may peak higher than the
//! window saw. It is not the seeds' fixed "GOMEMLIMIT ≤ 75 % of the limit":
//! a 16 GiB container does not need 4 GiB of slack, and a 64 MiB one with a
//! 20 MiB cgo library needs more than 16 MiB.
//!
//! Findings (ids documented in docs/findings.md): [`GOMEMLIMIT_MISSING`],
//! [`GOMEMLIMIT_ABOVE_LIMIT`], [`GOMEMLIMIT_TOO_CLOSE`], [`GOGC_OFF_WITHOUT_LIMIT`].

use crate::finding::{Evidence, Finding, Layer, Severity, Target};

/// Stable id: a Go program in a memory-limited cgroup has no GOMEMLIMIT
/// (warning): its heap grows to GOGC's goal whatever the cgroup allows.
pub const GOMEMLIMIT_MISSING: &str = "go.gomemlimit_missing";
/// Stable id: GOMEMLIMIT is at or above the cgroup's limit (critical): the
/// kernel kills before the GC ever works harder.
pub const GOMEMLIMIT_ABOVE_LIMIT: &str = "go.gomemlimit_above_limit";
/// Stable id: GOMEMLIMIT leaves less room under the cgroup's limit than the
/// memory the runtime does not count plus half the margin (warning): a value
/// advised earlier does not turn into a warning when a later window sees a
/// few MiB more outside memory.
pub const GOMEMLIMIT_TOO_CLOSE: &str = "go.gomemlimit_too_close";
/// Stable id: `GOGC=off` with no memory limit (critical): the GC never runs
/// and the heap grows until the OOM kill.
pub const GOGC_OFF_WITHOUT_LIMIT: &str = "go.gogc_off_without_limit";

const MIB: u64 = 1 << 20;

/// Where a setting in force was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the running program (`go_gc_gomemlimit_bytes` /
    /// `go_gc_gogc_percent` of `/metrics`, runtime/metrics): includes what
    /// the code set with `debug.SetMemoryLimit` / `debug.SetGCPercent`.
    Runtime,
    /// From the process's environment (`/proc/PID/environ`): what it started
    /// with; a call in the code would not show.
    Environment,
    /// Neither says anything: the runtime's default (no limit, GOGC 100).
    Default,
}

impl Source {
    /// `runtime`, `environment` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Runtime => "runtime",
            Source::Environment => "environment",
            Source::Default => "default",
        }
    }
}

/// The GOMEMLIMIT in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit {
    /// The limit in bytes; `None` for no limit (`off`, unset, `math.MaxInt64`).
    pub bytes: Option<u64>,
    /// Where it was read.
    pub source: Source,
}

/// The GOGC in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPercent {
    /// The percentage; `None` for `off`.
    pub percent: Option<u64>,
    /// Where it was read.
    pub source: Source,
}

/// A setting the Go runtime would refuse (it does not start with a malformed
/// GOMEMLIMIT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The variable (`GOMEMLIMIT`).
    pub input: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.input, self.reason)
    }
}

impl std::error::Error for SettingError {}

/// Reads a `GOMEMLIMIT` value the way the Go runtime does (runtime
/// `parseByteCount`): empty or `off` is no limit; otherwise a non-negative
/// whole number of bytes, optionally followed by `B`, `KiB`, `MiB`, `GiB` or
/// `TiB` (powers of 1024; `MB`, `k`, spaces, fractions are refused). The
/// runtime's "no limit" value `math.MaxInt64` gives `Ok(None)`.
pub fn parse_gomemlimit(raw: &str) -> Result<Option<u64>, SettingError> {
    let err = |reason: &str| SettingError {
        input: "GOMEMLIMIT",
        reason: format!("{raw:?}: {reason}"),
    };
    if raw.is_empty() || raw == "off" {
        return Ok(None);
    }
    let (digits, shift) = if let Some(rest) = raw.strip_suffix("iB") {
        let Some(prefix) = rest.chars().last() else {
            return Err(err("no number before the unit"));
        };
        let shift = match prefix {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            _ => return Err(err("unit must be B, KiB, MiB, GiB or TiB")),
        };
        (&rest[..rest.len() - 1], shift)
    } else if let Some(rest) = raw.strip_suffix('B') {
        (rest, 0)
    } else {
        (raw, 0)
    };
    // The runtime's atoi64 takes an optional '-' (then refuses a negative).
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "not a whole number of bytes with a B/KiB/MiB/GiB/TiB unit",
        ));
    }
    let number: u64 = unsigned.parse().map_err(|_| err("number too large"))?;
    if digits.starts_with('-') && number != 0 {
        return Err(err("negative"));
    }
    let bytes = number
        .checked_mul(1u64 << shift)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| err("larger than the runtime's int64"))?;
    Ok(if bytes == i64::MAX as u64 {
        None
    } else {
        Some(bytes)
    })
}

/// Reads a `GOGC` value the way the Go runtime does (`readGOGC`): exactly
/// `off`, or a negative number, turns the GC off (`None`); a number is the
/// percentage; anything else (and empty) leaves the default 100.
pub fn parse_gogc(raw: &str) -> Option<u64> {
    if raw == "off" {
        return None;
    }
    match raw.parse::<i64>() {
        Ok(n) if n < 0 => None,
        Ok(n) => Some(n as u64),
        Err(_) => Some(100),
    }
}

/// The GOMEMLIMIT in force: the runtime's own value when the target exposes
/// it (`Some(None)` = exposed, no limit), else the environment's, else none.
pub fn resolve_gomemlimit(
    runtime: Option<Option<u64>>,
    env: Option<&str>,
) -> Result<MemoryLimit, SettingError> {
    if let Some(bytes) = runtime {
        // math.MaxInt64 is the runtime's "no limit".
        let bytes = bytes.filter(|b| *b < i64::MAX as u64);
        return Ok(MemoryLimit {
            bytes,
            source: Source::Runtime,
        });
    }
    match env {
        Some(raw) if !raw.is_empty() => Ok(MemoryLimit {
            bytes: parse_gomemlimit(raw)?,
            source: Source::Environment,
        }),
        _ => Ok(MemoryLimit {
            bytes: None,
            source: Source::Default,
        }),
    }
}

/// The GOGC in force: the runtime's (`Some(None)` = off), else the
/// environment's, else 100.
pub fn resolve_gogc(runtime: Option<Option<u64>>, env: Option<&str>) -> GcPercent {
    if let Some(percent) = runtime {
        return GcPercent {
            percent,
            source: Source::Runtime,
        };
    }
    match env {
        Some(raw) if !raw.is_empty() => GcPercent {
            percent: parse_gogc(raw),
            source: Source::Environment,
        },
        _ => GcPercent {
            percent: Some(100),
            source: Source::Default,
        },
    }
}

/// What the cgroup charges besides what the Go runtime counts against
/// GOMEMLIMIT: `max(usage, RSS) - (Sys - HeapReleased)`, floored at 0. The
/// larger of the two charges: usage has the cgroup's other processes, page
/// cache and kernel memory; RSS has the binary's pages even when another
/// cgroup was charged for them. `None` without the runtime's numbers or
/// either charge.
pub fn outside_runtime_bytes(
    usage_bytes: Option<u64>,
    rss_bytes: Option<u64>,
    sys_bytes: Option<u64>,
    heap_released_bytes: Option<u64>,
) -> Option<u64> {
    let charged = usage_bytes.max(rss_bytes)?;
    let counted = sys_bytes?.saturating_sub(heap_released_bytes?);
    Some(charged.saturating_sub(counted))
}

/// What the detector and the advice look at: settings in force and what was
/// observed of the process and its cgroup over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The cgroup's effective hard limit (the tightest up the hierarchy);
    /// `None` when unlimited or unknown.
    pub cgroup_limit_bytes: Option<u64>,
    /// GOMEMLIMIT in force ([`resolve_gomemlimit`]).
    pub gomemlimit: MemoryLimit,
    /// GOGC in force ([`resolve_gogc`]).
    pub gogc: GcPercent,
    /// The most memory seen charged besides what the Go runtime counts
    /// against GOMEMLIMIT: max over samples of the larger of cgroup usage
    /// and RSS, minus `sys - heap_released`, floored at 0. `None`
    /// when the runtime's numbers could not be read.
    pub outside_runtime_bytes: Option<u64>,
    /// The most non-heap memory seen: max of RSS minus Go heap in use
    /// (stacks, runtime metadata, idle heap not yet returned, non-Go memory).
    /// Evidence only: part of it is counted by GOMEMLIMIT.
    pub non_heap_bytes: Option<u64>,
    /// The process's peak RSS (`VmHWM`, or the highest sample).
    pub peak_rss_bytes: Option<u64>,
    /// The cgroup's highest usage seen (or the peak RSS without a cgroup).
    pub peak_usage_bytes: Option<u64>,
    /// The smallest Go heap in use seen: an upper bound of the live heap.
    pub live_heap_bytes: Option<u64>,
}

/// Tunables of the advice.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Margin as a share of the cgroup limit (0.05).
    pub margin_ratio: f64,
    /// The smallest margin (16 MiB).
    pub margin_min_bytes: u64,
    /// When the runtime's numbers are missing, the outside memory assumed, as
    /// a share of the limit (0.10, the Go GC guide's rule of thumb).
    pub assumed_outside_ratio: f64,
    /// Without a cgroup limit, the proposed `memory.max` is the peak usage
    /// plus this share of it (0.25) ...
    pub unlimited_headroom_ratio: f64,
    /// ... and at least this much (64 MiB).
    pub unlimited_headroom_min_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            margin_ratio: 0.05,
            margin_min_bytes: 16 * MIB,
            assumed_outside_ratio: 0.10,
            unlimited_headroom_ratio: 0.25,
            unlimited_headroom_min_bytes: 64 * MIB,
        }
    }
}

/// The advice: every number ready to paste, and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The hard limit the advice is computed against: the cgroup's, or a
    /// proposed one when there is none.
    pub memory_max_bytes: u64,
    /// `memory_max_bytes` is a proposal (the cgroup had no limit).
    pub memory_max_proposed: bool,
    /// `memory.high`: halfway into the margin, so that a burst past what was
    /// observed is throttled and reclaimed before the kill.
    pub memory_high_bytes: u64,
    /// The recommended GOMEMLIMIT, rounded down to a MiB.
    pub gomemlimit_bytes: u64,
    /// The recommended GOGC (`None` = off): the one in force, or 100 instead
    /// of `off` without a limit.
    pub gogc_percent: Option<u64>,
    /// The margin used.
    pub margin_bytes: u64,
    /// The outside memory used (measured, or assumed when unknown).
    pub outside_runtime_bytes: u64,
    /// `outside_runtime_bytes` was measured, not assumed.
    pub outside_measured: bool,
    /// Kubernetes `resources.requests.memory`: the peak usage seen, rounded
    /// up to a MiB (at most the limit).
    pub k8s_request_bytes: u64,
    /// Kubernetes `resources.limits.memory`: `memory_max_bytes`.
    pub k8s_limit_bytes: u64,
    /// Caveats, in words.
    pub notes: Vec<String>,
}

fn margin_for(limit_bytes: u64, config: &Config) -> u64 {
    ((limit_bytes as f64 * config.margin_ratio) as u64).max(config.margin_min_bytes)
}

fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

/// Formats bytes the way GOMEMLIMIT reads them: `NMiB` when a whole number of
/// MiB, else plain bytes.
pub fn format_gomemlimit(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// Computes the advice from what was observed.
pub fn recommend(inputs: &Inputs, config: &Config) -> Recommendation {
    let mut notes = Vec::new();
    let peak_usage = inputs.peak_usage_bytes.or(inputs.peak_rss_bytes);
    let (memory_max_bytes, memory_max_proposed) = match inputs.cgroup_limit_bytes {
        Some(limit) => (limit, false),
        None => {
            let peak = peak_usage.unwrap_or(0);
            let headroom = ((peak as f64 * config.unlimited_headroom_ratio) as u64)
                .max(config.unlimited_headroom_min_bytes);
            notes.push(format!(
                "the cgroup has no memory limit: memory.max proposed as the peak usage seen \
                 ({} MiB) plus {:.0} % (at least {} MiB); a short window may miss the real peak",
                peak / MIB,
                config.unlimited_headroom_ratio * 100.0,
                config.unlimited_headroom_min_bytes / MIB
            ));
            (round_up_mib(peak.saturating_add(headroom)), true)
        }
    };
    let margin_bytes = margin_for(memory_max_bytes, config);
    let (outside, outside_measured) = match inputs.outside_runtime_bytes {
        Some(bytes) => (bytes, true),
        None => {
            notes.push(format!(
                "the Go runtime's memory could not be read: {:.0} % of the limit assumed for \
                 memory it does not count",
                config.assumed_outside_ratio * 100.0
            ));
            (
                (memory_max_bytes as f64 * config.assumed_outside_ratio) as u64,
                false,
            )
        }
    };
    let raw = memory_max_bytes.saturating_sub(outside.saturating_add(margin_bytes));
    let gomemlimit_bytes = raw / MIB * MIB;
    if let Some(live) = inputs.live_heap_bytes {
        if gomemlimit_bytes < live.saturating_add(live / 4) {
            notes.push(format!(
                "the live heap (~{} MiB) is close to or above the recommended GOMEMLIMIT \
                 ({} MiB): the GC will run almost continuously; raise memory.max",
                live / MIB,
                gomemlimit_bytes / MIB
            ));
        }
    }
    let memory_high_bytes =
        round_up_mib(memory_max_bytes.saturating_sub(margin_bytes / 2)).min(memory_max_bytes);
    let gogc_percent = match inputs.gogc.percent {
        Some(p) => Some(p),
        // GC off is sound only with a limit, and the advice sets one.
        None if inputs.gomemlimit.bytes.is_some() => None,
        None => Some(100),
    };
    let k8s_request_bytes = round_up_mib(peak_usage.unwrap_or(0)).min(memory_max_bytes);
    Recommendation {
        memory_max_bytes,
        memory_max_proposed,
        memory_high_bytes,
        gomemlimit_bytes,
        gogc_percent,
        margin_bytes,
        outside_runtime_bytes: outside,
        outside_measured,
        k8s_request_bytes,
        k8s_limit_bytes: memory_max_bytes,
        notes,
    }
}

/// The findings about the settings in force, fired at `at_ms` for `target`.
/// At most one: GC off without a limit, else GOMEMLIMIT above, too close to,
/// or missing under the cgroup's limit.
pub fn check(inputs: &Inputs, config: &Config, target: &Target, at_ms: i64) -> Vec<Finding> {
    let rec = recommend(inputs, config);
    let go = Layer::GoRuntime;
    let source_value = |s: Source| match s {
        Source::Runtime => 2.0,
        Source::Environment => 1.0,
        Source::Default => 0.0,
    };
    let mut evidence = vec![Evidence::new(
        "recommended_gomemlimit_bytes",
        rec.gomemlimit_bytes as f64,
        "bytes",
        Layer::Derived,
    )];
    if let Some(limit) = inputs.cgroup_limit_bytes {
        evidence.push(Evidence::new(
            "cgroup_limit_bytes",
            limit as f64,
            "bytes",
            Layer::Cgroup,
        ));
    }
    evidence.push(Evidence::new(
        "outside_runtime_bytes",
        rec.outside_runtime_bytes as f64,
        "bytes",
        Layer::Derived,
    ));
    evidence.push(Evidence::new(
        "margin_bytes",
        rec.margin_bytes as f64,
        "bytes",
        Layer::Derived,
    ));
    if let Some(peak) = inputs.peak_rss_bytes {
        evidence.push(Evidence::new(
            "peak_rss_bytes",
            peak as f64,
            "bytes",
            Layer::Process,
        ));
    }
    evidence.push(Evidence::new(
        "gomemlimit_source",
        source_value(inputs.gomemlimit.source),
        "enum",
        go,
    ));
    let finding = |id, severity, evidence, recommendation| {
        Finding::fired(
            id,
            severity,
            target.clone(),
            evidence,
            recommendation,
            at_ms,
        )
    };
    let value = format_gomemlimit(rec.gomemlimit_bytes);
    if inputs.gogc.percent.is_none() && inputs.gomemlimit.bytes.is_none() {
        return vec![finding(
            GOGC_OFF_WITHOUT_LIMIT,
            Severity::Critical,
            evidence,
            format!(
                "GOGC=off with no GOMEMLIMIT: the GC never runs and the heap grows until the \
                 OOM kill; set GOMEMLIMIT={value} or remove GOGC=off"
            ),
        )];
    }
    let Some(limit) = inputs.cgroup_limit_bytes else {
        return Vec::new();
    };
    match inputs.gomemlimit.bytes {
        None => {
            let unseen = if inputs.gomemlimit.source == Source::Runtime {
                ""
            } else {
                " (not in the environment; the runtime does not expose its limit, so a \
                 debug.SetMemoryLimit call in the code cannot be seen)"
            };
            vec![finding(
                GOMEMLIMIT_MISSING,
                Severity::Warning,
                evidence,
                format!(
                    "no GOMEMLIMIT in a cgroup limited to {} MiB{unseen}: the heap grows to \
                     GOGC's goal whatever the cgroup allows; set GOMEMLIMIT={value} (limit - \
                     {} MiB outside the Go runtime - {} MiB margin)",
                    limit / MIB,
                    rec.outside_runtime_bytes / MIB,
                    rec.margin_bytes / MIB
                ),
            )]
        }
        Some(set) => {
            evidence.push(Evidence::new("gomemlimit_bytes", set as f64, "bytes", go));
            let headroom = limit.saturating_sub(set);
            // Half the margin: the other half is slack for what one window to
            // the next sees differently (the advice itself keeps the whole).
            let needed = rec
                .outside_runtime_bytes
                .saturating_add(rec.margin_bytes / 2);
            evidence.push(Evidence::new(
                "headroom_bytes",
                headroom as f64,
                "bytes",
                Layer::Derived,
            ));
            evidence.push(Evidence::new(
                "needed_headroom_bytes",
                needed as f64,
                "bytes",
                Layer::Derived,
            ));
            if set >= limit {
                vec![finding(
                    GOMEMLIMIT_ABOVE_LIMIT,
                    Severity::Critical,
                    evidence,
                    format!(
                        "GOMEMLIMIT ({} MiB) is not below the cgroup limit ({} MiB): the kernel \
                         kills before the GC works harder; set GOMEMLIMIT={value}",
                        set / MIB,
                        limit / MIB
                    ),
                )]
            } else if headroom < needed {
                vec![finding(
                    GOMEMLIMIT_TOO_CLOSE,
                    Severity::Warning,
                    evidence,
                    format!(
                        "GOMEMLIMIT ({} MiB) leaves {} MiB under the cgroup limit ({} MiB), less \
                         than the {} MiB outside the Go runtime plus half the {} MiB margin; set \
                         GOMEMLIMIT={value}",
                        set / MIB,
                        headroom / MIB,
                        limit / MIB,
                        rec.outside_runtime_bytes / MIB,
                        rec.margin_bytes / MIB
                    ),
                )]
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
