//! The runtime summary: every number with where it came from, built from
//! whatever was read (expvar, /metrics, environment, build info, gctrace, the
//! goroutine profile header). Pure: parsed inputs in, [`RuntimeSummary`] out.

use super::settings::{parse_gogc, parse_gomemlimit, Setting, DEFAULT_GOGC_PERCENT};
use memlens_goruntime::expvar::ExpvarVars;
use memlens_goruntime::gctrace::GcTrace;
use memlens_goruntime::promtext::{GoMetrics, ProcessMetrics};
use memlens_linux::process::GoEnv;
use serde::Serialize;

/// Where a number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `/debug/vars` (`memstats`).
    Expvar,
    /// Prometheus `/metrics` (`go_*`, `process_*`).
    Metrics,
    /// `/proc/PID/environ` (only GOGC / GOMEMLIMIT / GOMAXPROCS are read).
    Environment,
    /// The ELF build info of the binary.
    BuildInfo,
    /// `GODEBUG=gctrace=1` lines.
    Gctrace,
    /// The `goroutine profile: total N` header of `/debug/pprof/goroutine?debug=1`.
    GoroutineProfile,
    /// The runtime's default (nothing read sets it).
    Default,
}

impl Source {
    /// The short name shown in tables (the same as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Source::Expvar => "expvar",
            Source::Metrics => "metrics",
            Source::Environment => "environment",
            Source::BuildInfo => "build_info",
            Source::Gctrace => "gctrace",
            Source::GoroutineProfile => "goroutine_profile",
            Source::Default => "default",
        }
    }
}

/// A value and its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
    /// The text it was read from, when that differs from the value (`96MiB`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

fn from<T>(source: Source, value: Option<T>) -> Option<Sourced<T>> {
    value.map(|value| Sourced {
        value,
        source,
        raw: None,
    })
}

/// The first of several candidates that has a value.
fn first<T>(candidates: impl IntoIterator<Item = Option<Sourced<T>>>) -> Option<Sourced<T>> {
    candidates.into_iter().flatten().next()
}

/// One input that was read, and where from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputUsed {
    /// What kind of input.
    pub source: Source,
    /// The URL or path it was read from.
    pub from: String,
}

/// Everything `memlens runtime` could read about one target, parsed.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The target as the user named it.
    pub target: String,
    /// `/debug/vars` and where from.
    pub expvar: Option<(String, ExpvarVars)>,
    /// `/metrics`, picked into Go and process series, and where from.
    pub metrics: Option<(String, GoMetrics, ProcessMetrics)>,
    /// A gctrace log and where from.
    pub gctrace: Option<(String, GcTrace)>,
    /// `goroutine profile: total N` and where from.
    pub goroutine_total: Option<(String, u64)>,
    /// The Go keys of the environment and where from.
    pub env: Option<(String, GoEnv)>,
    /// The Go version from the build info and where from.
    pub go_version: Option<(String, String)>,
    /// Endpoints or inputs not served (HTTP 404, wrong kind of body), one line each.
    pub skipped: Vec<String>,
    /// What could not be read (environment not readable, ...), one line each.
    pub notes: Vec<String>,
}

/// The summary `memlens runtime` prints (its JSON is documented in
/// docs/runtime-json.md). Every field is `None` (JSON `null`) when no input had it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeSummary {
    /// The target as given.
    pub target: String,
    /// The inputs read.
    pub inputs: Vec<InputUsed>,
    /// Go version (`go1.27.3`).
    pub go_version: Option<Sourced<String>>,
    /// Heap bytes of live and not yet swept objects (`HeapAlloc`).
    pub heap_alloc_bytes: Option<Sourced<u64>>,
    /// Heap bytes in in-use spans (`HeapInuse`).
    pub heap_inuse_bytes: Option<Sourced<u64>>,
    /// Heap bytes in idle spans (`HeapIdle`), released ones included.
    pub heap_idle_bytes: Option<Sourced<u64>>,
    /// Idle heap bytes returned to the OS (`HeapReleased`).
    pub heap_released_bytes: Option<Sourced<u64>>,
    /// Heap bytes obtained from the OS (`HeapSys`).
    pub heap_sys_bytes: Option<Sourced<u64>>,
    /// Live heap objects (`HeapObjects`).
    pub heap_objects: Option<Sourced<u64>>,
    /// Live heap marked by the last GC (gctrace only; MiB precision).
    pub heap_live_after_last_gc_bytes: Option<Sourced<u64>>,
    /// Heap goal of the next GC (`NextGC`; gctrace: the last cycle's goal).
    pub next_gc_bytes: Option<Sourced<u64>>,
    /// GOGC: percent or `"off"`.
    pub gogc: Option<Sourced<Setting>>,
    /// GOMEMLIMIT: bytes or `"off"`.
    pub gomemlimit: Option<Sourced<Setting>>,
    /// GOMAXPROCS (environment, /metrics, or the P count of gctrace).
    pub gomaxprocs: Option<Sourced<u64>>,
    /// Goroutines.
    pub goroutines: Option<Sourced<u64>>,
    /// OS threads created (`go_threads`).
    pub threads: Option<Sourced<u64>>,
    /// Completed GC cycles.
    pub gc_cycles: Option<Sourced<u64>>,
    /// GC cycles forced by the program (`runtime.GC`).
    pub gc_forced_cycles: Option<Sourced<u64>>,
    /// Total stop-the-world pause time, nanoseconds.
    pub gc_pause_total_ns: Option<Sourced<u64>>,
    /// The last pause, nanoseconds.
    pub gc_last_pause_ns: Option<Sourced<u64>>,
    /// Share of the CPU used by GC since start (0..1).
    pub gc_cpu_fraction: Option<Sourced<f64>>,
    /// Stack spans in use (`StackInuse`).
    pub stack_inuse_bytes: Option<Sourced<u64>>,
    /// All memory obtained from the OS by the runtime (`Sys`).
    pub sys_bytes: Option<Sourced<u64>>,
    /// Runtime overhead outside heap and stacks: `Sys - HeapSys - StackSys`.
    pub runtime_overhead_bytes: Option<Sourced<u64>>,
    /// Resident set size (`process_resident_memory_bytes`).
    pub resident_memory_bytes: Option<Sourced<u64>>,
    /// Endpoints not served (skipped quietly), one line each.
    pub skipped: Vec<String>,
    /// What could not be read, and caveats, one line each.
    pub notes: Vec<String>,
}

/// Builds the summary: for each number the most direct input that has it
/// (expvar, then /metrics, then gctrace); GOGC and GOMEMLIMIT from /metrics
/// (the values in force) before the environment, then the defaults.
pub fn summarize(inputs: Inputs) -> RuntimeSummary {
    let mut notes = inputs.notes;
    let mut used = Vec::new();
    let m = inputs.expvar.as_ref().and_then(|(from, vars)| {
        used.push(InputUsed {
            source: Source::Expvar,
            from: from.clone(),
        });
        if vars.memstats.is_none() {
            notes.push(format!("{from}: no memstats in it"));
        }
        vars.memstats.as_ref()
    });
    let (go, process) = match &inputs.metrics {
        Some((from, go, process)) => {
            used.push(InputUsed {
                source: Source::Metrics,
                from: from.clone(),
            });
            (Some(go), Some(process))
        }
        None => (None, None),
    };
    let trace = inputs.gctrace.as_ref().map(|(from, trace)| {
        used.push(InputUsed {
            source: Source::Gctrace,
            from: from.clone(),
        });
        trace
    });
    let last = trace.and_then(|t| t.last_cycle());
    if let Some((from, _)) = &inputs.goroutine_total {
        used.push(InputUsed {
            source: Source::GoroutineProfile,
            from: from.clone(),
        });
    }
    let env = inputs.env.as_ref().map(|(from, env)| {
        used.push(InputUsed {
            source: Source::Environment,
            from: from.clone(),
        });
        env
    });
    if let Some((from, _)) = &inputs.go_version {
        used.push(InputUsed {
            source: Source::BuildInfo,
            from: from.clone(),
        });
    }

    let e = |f: fn(&memlens_goruntime::expvar::MemStats) -> Option<u64>| {
        from(Source::Expvar, m.and_then(f))
    };
    let g = |f: fn(&GoMetrics) -> Option<u64>| from(Source::Metrics, go.and_then(f));
    let mib = |f: fn(&memlens_goruntime::gctrace::GcCycle) -> u64| {
        from(Source::Gctrace, last.map(|c| f(c) << 20))
    };
    let complete_trace = trace.filter(|t| t.is_complete());
    if trace.is_some() && complete_trace.is_none() {
        notes.push(
            "the gctrace log does not start at cycle 1: forced cycles and pause totals \
             cover only the lines in it"
                .to_string(),
        );
    }

    let gogc = gogc(go, env, &mut notes);
    let gomemlimit = gomemlimit(go, env, &mut notes);

    RuntimeSummary {
        target: inputs.target,
        inputs: used,
        go_version: first([
            inputs
                .go_version
                .map(|(_, v)| v)
                .and_then(|v| from(Source::BuildInfo, Some(v))),
            from(Source::Metrics, go.and_then(|g| g.version.clone())),
        ]),
        heap_alloc_bytes: first([e(|m| m.heap_alloc_bytes), g(|g| g.heap_alloc_bytes)]),
        heap_inuse_bytes: first([e(|m| m.heap_inuse_bytes), g(|g| g.heap_inuse_bytes)]),
        heap_idle_bytes: first([e(|m| m.heap_idle_bytes), g(|g| g.heap_idle_bytes)]),
        heap_released_bytes: first([e(|m| m.heap_released_bytes), g(|g| g.heap_released_bytes)]),
        heap_sys_bytes: first([e(|m| m.heap_sys_bytes), g(|g| g.heap_sys_bytes)]),
        heap_objects: first([e(|m| m.heap_objects), g(|g| g.heap_objects)]),
        heap_live_after_last_gc_bytes: mib(|c| c.heap_live_mib),
        next_gc_bytes: first([
            e(|m| m.next_gc_bytes),
            g(|g| g.next_gc_bytes),
            mib(|c| c.heap_goal_mib),
        ]),
        gogc,
        gomemlimit,
        gomaxprocs: first([
            env.and_then(|e| e.gomaxprocs.as_deref())
                .and_then(|raw| raw.trim().parse::<u64>().ok().filter(|n| *n > 0))
                .and_then(|n| from(Source::Environment, Some(n))),
            g(|g| g.gomaxprocs),
            from(Source::Gctrace, last.map(|c| u64::from(c.procs))),
        ]),
        goroutines: first([
            g(|g| g.goroutines),
            inputs
                .goroutine_total
                .and_then(|(_, n)| from(Source::GoroutineProfile, Some(n))),
        ]),
        threads: g(|g| g.threads),
        gc_cycles: first([
            e(|m| m.num_gc),
            from(
                Source::Metrics,
                go.and_then(|g| g.gc_duration.as_ref()?.count),
            ),
            from(Source::Gctrace, last.map(|c| c.cycle)),
        ]),
        gc_forced_cycles: first([
            e(|m| m.num_forced_gc),
            from(Source::Gctrace, complete_trace.map(|t| t.forced_cycles())),
        ]),
        gc_pause_total_ns: first([
            e(|m| m.pause_total_ns),
            from(
                Source::Metrics,
                go.and_then(|g| g.gc_duration.as_ref()?.sum_seconds)
                    .map(|s| (s * 1e9).round() as u64),
            ),
            from(
                Source::Gctrace,
                complete_trace.map(|t| (t.total_stop_the_world_ms() * 1e6).round() as u64),
            ),
        ]),
        gc_last_pause_ns: first([
            from(Source::Expvar, m.and_then(|m| m.last_pause_ns())),
            from(
                Source::Gctrace,
                last.map(|c| (c.clock.stop_the_world_ms() * 1e6).round() as u64),
            ),
        ]),
        gc_cpu_fraction: first([
            from(Source::Expvar, m.and_then(|m| m.gc_cpu_fraction)),
            from(
                Source::Gctrace,
                last.map(|c| f64::from(c.gc_cpu_percent) / 100.0),
            ),
        ]),
        stack_inuse_bytes: first([e(|m| m.stack_inuse_bytes), g(|g| g.stack_inuse_bytes)]),
        sys_bytes: first([e(|m| m.sys_bytes), g(|g| g.sys_bytes)]),
        runtime_overhead_bytes: first([
            e(|m| m.runtime_overhead_bytes()),
            g(|g| {
                g.sys_bytes?
                    .checked_sub(g.heap_sys_bytes?)?
                    .checked_sub(g.stack_sys_bytes?)
            }),
        ]),
        resident_memory_bytes: from(
            Source::Metrics,
            process.and_then(|p| p.resident_memory_bytes),
        ),
        skipped: inputs.skipped,
        notes,
    }
}

/// How one GC setting (GOGC or GOMEMLIMIT) is told apart in the sources.
struct SettingSpec {
    /// The environment variable.
    name: &'static str,
    /// The runtime call that sets it in code.
    setter: &'static str,
    /// Unit shown after values in notes.
    unit: &'static str,
    /// What the runtime uses when nothing sets it.
    default: Setting,
    /// The note when the environment does not set it.
    unset_note: &'static str,
}

/// A GC setting: the runtime's value from /metrics (`in_force`), else the
/// environment (`raw_env` parsed by `parse`), else the runtime's default; `None`
/// when nothing says (no environment read: a URL or a file target).
fn resolve_setting(
    spec: &SettingSpec,
    in_force: Option<Option<u64>>,
    env: Option<&GoEnv>,
    raw_env: Option<String>,
    parse: impl Fn(&str) -> Option<Setting>,
    notes: &mut Vec<String>,
) -> Option<Sourced<Setting>> {
    let from_env = raw_env.as_deref().and_then(|raw| {
        let parsed = parse(raw);
        if parsed.is_none() {
            notes.push(format!(
                "{}={raw:?} in the environment is not valid: the runtime uses {}",
                spec.name,
                show(spec.default, spec.unit)
            ));
        }
        parsed
    });
    if let Some(in_force) = in_force {
        let value = in_force.map_or(Setting::Off, Setting::Value);
        if let Some(env_value) = from_env.filter(|v| *v != value) {
            notes.push(format!(
                "{} in force ({}) differs from the environment ({}): set in code ({})",
                spec.name,
                show(value, spec.unit),
                show(env_value, spec.unit),
                spec.setter
            ));
        }
        return Some(Sourced {
            value,
            source: Source::Metrics,
            raw: None,
        });
    }
    if let Some(value) = from_env {
        return Some(Sourced {
            value,
            source: Source::Environment,
            raw: raw_env,
        });
    }
    // No environment read (a URL or a file): unknown, not the default.
    env?;
    notes.push(spec.unset_note.to_string());
    Some(Sourced {
        value: spec.default,
        source: Source::Default,
        raw: None,
    })
}

/// GOGC: the runtime's value from /metrics, else the environment, else 100.
fn gogc(
    go: Option<&GoMetrics>,
    env: Option<&GoEnv>,
    notes: &mut Vec<String>,
) -> Option<Sourced<Setting>> {
    let spec = SettingSpec {
        name: "GOGC",
        setter: "debug.SetGCPercent",
        unit: "",
        default: Setting::Value(DEFAULT_GOGC_PERCENT),
        unset_note: "GOGC is not set in the environment: 100 unless the program calls \
                     debug.SetGCPercent (the runtime publishes it only in /metrics of \
                     newer client_golang)",
    };
    let raw_env = env.and_then(|e| e.gogc.clone());
    // An invalid GOGC is no error for the runtime: it means 100.
    if let Some(raw) = raw_env.as_deref().filter(|raw| !parse_gogc(raw).1) {
        notes.push(format!(
            "GOGC={raw:?} in the environment is not a number: the runtime uses {DEFAULT_GOGC_PERCENT}"
        ));
    }
    let in_force = go.and_then(|g| g.gogc_percent);
    resolve_setting(
        &spec,
        in_force,
        env,
        raw_env,
        |raw| Some(parse_gogc(raw).0),
        notes,
    )
}

/// GOMEMLIMIT: the runtime's value from /metrics, else the environment, else off.
fn gomemlimit(
    go: Option<&GoMetrics>,
    env: Option<&GoEnv>,
    notes: &mut Vec<String>,
) -> Option<Sourced<Setting>> {
    let spec = SettingSpec {
        name: "GOMEMLIMIT",
        setter: "debug.SetMemoryLimit",
        unit: " bytes",
        default: Setting::Off,
        unset_note: "GOMEMLIMIT is not set in the environment: no limit unless the program \
                     calls debug.SetMemoryLimit (a limit set in code shows only in /metrics \
                     of newer client_golang, as go_gc_gomemlimit_bytes)",
    };
    let raw_env = env.and_then(|e| e.gomemlimit.clone());
    resolve_setting(
        &spec,
        go.and_then(|g| g.gomemlimit_bytes),
        env,
        raw_env,
        parse_gomemlimit,
        notes,
    )
}

fn show(setting: Setting, unit: &str) -> String {
    match setting {
        Setting::Value(n) => format!("{n}{unit}"),
        Setting::Off => "off".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::expvar::parse_expvar;
    use memlens_goruntime::gctrace::parse_gctrace;
    use memlens_goruntime::promtext::parse_promtext;

    fn capture(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/captures/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn metrics(text: &str) -> (String, GoMetrics, ProcessMetrics) {
        let exposition = parse_promtext("m", text.as_bytes()).unwrap();
        (
            "m".to_string(),
            GoMetrics::from_exposition(&exposition),
            ProcessMetrics::from_exposition(&exposition),
        )
    }

    #[test]
    fn expvar_numbers_come_from_memstats() {
        let bytes = capture("go1.19.8-heap-leak-expvar.json");
        let vars = parse_expvar("vars", &bytes).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let s = summarize(Inputs {
            target: "t".into(),
            expvar: Some(("vars".into(), vars)),
            ..Inputs::default()
        });
        let inuse = s.heap_inuse_bytes.unwrap();
        assert_eq!(inuse.source, Source::Expvar);
        assert_eq!(Some(inuse.value), json["memstats"]["HeapInuse"].as_u64());
        assert_eq!(
            s.gc_cycles.map(|c| c.value),
            json["memstats"]["NumGC"].as_u64()
        );
        // Nothing says GOGC from a file: unknown, not the default.
        assert!(s.gogc.is_none() && s.gomemlimit.is_none());
        assert_eq!(s.inputs.len(), 1);
    }

    #[test]
    fn environment_settings_with_raw_text() {
        let env = GoEnv {
            gogc: Some("50".into()),
            gomemlimit: Some("300MiB".into()),
            ..GoEnv::default()
        };
        let s = summarize(Inputs {
            env: Some(("/proc/1/environ".into(), env)),
            ..Inputs::default()
        });
        let gogc = s.gogc.unwrap();
        assert_eq!(
            (gogc.value, gogc.source),
            (Setting::Value(50), Source::Environment)
        );
        let limit = s.gomemlimit.unwrap();
        assert_eq!(limit.value, Setting::Value(300 << 20));
        assert_eq!(limit.raw.as_deref(), Some("300MiB"));
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn unset_environment_means_the_defaults_with_a_note() {
        let s = summarize(Inputs {
            env: Some(("/proc/1/environ".into(), GoEnv::default())),
            ..Inputs::default()
        });
        assert_eq!(s.gogc.unwrap().source, Source::Default);
        assert_eq!(s.gomemlimit.unwrap().value, Setting::Off);
        assert_eq!(s.notes.len(), 2);
    }

    #[test]
    fn settings_in_force_win_over_the_environment_and_say_so() {
        let env = GoEnv {
            gogc: Some("50".into()),
            gomemlimit: Some("off".into()),
            ..GoEnv::default()
        };
        let s = summarize(Inputs {
            env: Some(("e".into(), env)),
            metrics: Some(metrics(
                "go_gc_gogc_percent 200\ngo_gc_gomemlimit_bytes 1.048576e+08\ngo_goroutines 7\n",
            )),
            ..Inputs::default()
        });
        let gogc = s.gogc.unwrap();
        assert_eq!(
            (gogc.value, gogc.source),
            (Setting::Value(200), Source::Metrics)
        );
        assert_eq!(s.gomemlimit.unwrap().value, Setting::Value(100 << 20));
        assert_eq!(s.goroutines.unwrap().value, 7);
        assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
        assert!(s.notes[0].contains("differs"), "{:?}", s.notes);
    }

    #[test]
    fn gctrace_gives_goal_procs_and_cycles() {
        let bytes = capture("go1.19.8-steady-gctrace.txt");
        let trace = parse_gctrace("trace", &bytes).unwrap();
        let last = trace.last_cycle().unwrap().clone();
        let s = summarize(Inputs {
            gctrace: Some(("trace".into(), trace)),
            ..Inputs::default()
        });
        assert_eq!(s.gc_cycles.unwrap().value, last.cycle);
        assert_eq!(s.next_gc_bytes.unwrap().value, last.heap_goal_mib << 20);
        assert_eq!(s.gomaxprocs.unwrap().value, u64::from(last.procs));
        assert!(s.heap_inuse_bytes.is_none());
    }

    #[test]
    fn expvar_wins_over_metrics_and_metrics_fill_the_rest() {
        let vars = parse_expvar("v", br#"{"memstats":{"HeapInuse":4096}}"#).unwrap();
        let s = summarize(Inputs {
            expvar: Some(("v".into(), vars)),
            metrics: Some(metrics(
                "go_memstats_heap_inuse_bytes 8192\ngo_memstats_heap_idle_bytes 100\n",
            )),
            ..Inputs::default()
        });
        assert_eq!(s.heap_inuse_bytes.unwrap().value, 4096);
        let idle = s.heap_idle_bytes.unwrap();
        assert_eq!((idle.value, idle.source), (100, Source::Metrics));
    }
}
