//! Goroutine leaks of a Go process over an observation window, from its
//! goroutine dumps at both ends (counts merged from the protobuf profile,
//! states, wait times and creation sites from `?debug=2`, and the proof of
//! the goroutineleak profile where Go 1.26+ serves it). Pure: two
//! [`Analysis`]es in, at most one [`Finding`] out ([`GOROUTINE_LEAK`],
//! docs/findings.md).
//!
//! Goroutines are grouped by *site*: the blocking function (the first
//! frame from the leaf that is not the runtime's: `main.leakyWorker`) and the
//! creation site (`created by main.leakyWorkerSpawner`). A site leaks when:
//!
//! - the GC proved its goroutines leaked (goroutineleak profile, or `(leaked)`
//!   marks): they wait on objects nothing running can reach; or
//! - its blocked goroutines grew over the window by at least
//!   [`Config::min_growth`] and [`Config::min_growth_fraction`] of what it
//!   had at the start. Blocked means waiting on a channel, a select, a lock,
//!   a condition or a wait group — or on the network for at least
//!   [`Config::long_wait_minutes`].
//!
//! A constant set of long-waiting goroutines is *not* a leak by itself: an
//! HTTP server's idle keep-alive connections, a worker pool parked on its
//! job channel, a signal handler wait for hours and are meant to. They are
//! listed (verdict `waiting`) but fire nothing unless they grow or the GC
//! proves them unreachable.

use crate::finding::{Evidence, Finding, Layer, Severity, Target};
use memlens_goruntime::goroutine::{Analysis, Group};
use std::collections::BTreeMap;

/// Stable id: goroutines that leak (growing blocked groups, or proven by the GC).
pub const GOROUTINE_LEAK: &str = "go.goroutine_leak";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// A site's blocked goroutines must grow by at least this many (10).
    pub min_growth: u64,
    /// ... and by at least this share of what the site had at the start
    /// (0.2: a pool of 500 gaining 20 is load, not a leak).
    pub min_growth_fraction: f64,
    /// A network wait (`IO wait`) counts as blocked from this many minutes (10).
    pub long_wait_minutes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_growth: 10,
            min_growth_fraction: 0.2,
            long_wait_minutes: 10,
        }
    }
}

/// How a site was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SiteVerdict {
    /// Proven by the GC and growing.
    ProvenGrowing,
    /// Proven by the GC (goroutineleak / `(leaked)`).
    Proven,
    /// Blocked goroutines growing over the window.
    Growing,
    /// Blocked, but not growing: not a leak by itself.
    Waiting,
    /// Not blocked.
    Normal,
}

impl SiteVerdict {
    /// `proven_growing`, `proven`, `growing`, `waiting` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteVerdict::ProvenGrowing => "proven_growing",
            SiteVerdict::Proven => "proven",
            SiteVerdict::Growing => "growing",
            SiteVerdict::Waiting => "waiting",
            SiteVerdict::Normal => "normal",
        }
    }

    /// Whether the verdict is a leak.
    pub fn is_leak(self) -> bool {
        self <= SiteVerdict::Growing
    }
}

/// Goroutines of one site at both ends of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// The first non-runtime frame from the leaf (`main.leakyWorker`);
    /// the leaf itself when every frame is the runtime's.
    pub blocking_function: String,
    /// `file:line` of that frame.
    pub blocking_location: String,
    /// The function of the `go` statement (`main.leakyWorkerSpawner`), when
    /// a dump shows it.
    pub creation_function: Option<String>,
    /// `file:line` of the `go` statement.
    pub creation_location: Option<String>,
    /// The most common state at the end (`chan receive`).
    pub state: String,
    /// Goroutines at the start (0 when the start was not read).
    pub start_count: u64,
    /// Goroutines at the end.
    pub end_count: u64,
    /// Blocked goroutines at the start.
    pub blocked_start: u64,
    /// Blocked goroutines at the end.
    pub blocked_end: u64,
    /// Goroutines the GC proved leaked at the end.
    pub proven: u64,
    /// The longest wait shown at the end, minutes.
    pub wait_minutes_max: Option<u64>,
    /// The verdict.
    pub verdict: SiteVerdict,
}

impl Site {
    /// `blocked_end - blocked_start` (negative when it shrank).
    pub fn growth(&self) -> i64 {
        let d = i128::from(self.blocked_end) - i128::from(self.blocked_start);
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// Whether a goroutine in `state` is blocked for the leak heuristics.
pub fn is_blocked_state(state: &str, wait_minutes: u64, config: &Config) -> bool {
    matches!(
        state,
        "chan receive"
            | "chan send"
            | "select"
            | "sync.Mutex.Lock"
            | "sync.RWMutex.RLock"
            | "sync.RWMutex.Lock"
            | "sync.Cond.Wait"
            | "sync.WaitGroup.Wait"
            | "semacquire"
            | "chan receive (nil chan)"
            | "chan send (nil chan)"
            | "select (no cases)"
    ) || (state == "IO wait" && wait_minutes >= config.long_wait_minutes)
}

fn is_runtime(function: &str) -> bool {
    function.starts_with("runtime.") || function.starts_with("internal/")
}

/// The site key of a group: (blocking function, its location).
fn blocking_frame(group: &Group) -> (String, String) {
    let frame = group
        .frames
        .iter()
        .find(|f| !is_runtime(&f.function))
        .or(group.frames.first());
    match frame {
        Some(f) => (f.function.clone(), format!("{}:{}", f.file, f.line)),
        None => ("(no frames)".to_string(), String::new()),
    }
}

#[derive(Default)]
struct Acc {
    location: String,
    creation: Option<(String, String)>,
    states: BTreeMap<String, u64>,
    count: [u64; 2],
    blocked: [u64; 2],
    proven: u64,
    wait_max: Option<u64>,
}

fn add(
    acc: &mut BTreeMap<(String, Option<String>), Acc>,
    analysis: &Analysis,
    end: bool,
    config: &Config,
) {
    let slot = usize::from(end);
    for group in &analysis.groups {
        let (function, location) = blocking_frame(group);
        let creation = group
            .created_by
            .iter()
            .max_by_key(|c| c.count)
            .and_then(|c| c.site.as_ref())
            .map(|s| (s.function.clone(), format!("{}:{}", s.file, s.line)));
        let key = (function, creation.as_ref().map(|c| c.0.clone()));
        let a = acc.entry(key).or_default();
        a.location = location;
        if a.creation.is_none() {
            a.creation = creation;
        }
        let wait = group.wait_minutes_max.unwrap_or(0);
        // A group from the goroutineleak profile only repeats goroutines of
        // the counting profile: its count is proof, not more goroutines.
        let only_proof = group.leaked >= group.count && group.created_by.is_empty() && end;
        if !only_proof || a.count[slot] == 0 {
            a.count[slot] = a.count[slot].saturating_add(group.count);
            if group.states.is_empty() {
                a.blocked[slot] = a.blocked[slot].saturating_add(group.count);
            }
            for s in &group.states {
                if is_blocked_state(&s.state, wait, config) {
                    a.blocked[slot] = a.blocked[slot].saturating_add(s.count);
                }
                if end {
                    let n = a.states.entry(s.state.clone()).or_default();
                    *n = n.saturating_add(s.count);
                }
            }
        }
        if end {
            a.proven = a.proven.max(group.leaked);
            a.wait_max = a.wait_max.max(group.wait_minutes_max);
        }
    }
}

/// Every site of either dump, leaks first (proven, then growing, by growth),
/// then the rest by goroutines at the end. `start` is `None` when the start
/// of the window was not read (then nothing can be seen growing).
pub fn sites(start: Option<&Analysis>, end: &Analysis, config: &Config) -> Vec<Site> {
    let mut acc: BTreeMap<(String, Option<String>), Acc> = BTreeMap::new();
    add(&mut acc, end, true, config);
    if let Some(start) = start {
        add(&mut acc, start, false, config);
    }
    // Groups the goroutineleak profile added without a creation site: their
    // proof goes to the site with the same blocking function that has one.
    let orphans: Vec<(String, u64)> = acc
        .iter()
        .filter(|((_, c), a)| c.is_none() && a.proven > 0)
        .map(|((f, _), a)| (f.clone(), a.proven))
        .collect();
    for (function, proven) in orphans {
        let target = acc
            .iter_mut()
            .filter(|((f, c), _)| *f == function && c.is_some())
            .max_by_key(|(_, a)| a.count[1]);
        if let Some((_, a)) = target {
            a.proven = a.proven.max(proven);
            acc.remove(&(function, None));
        }
    }
    let have_start = start.is_some();
    let mut out: Vec<Site> = acc
        .into_iter()
        .map(|((function, _), a)| {
            let state = a
                .states
                .iter()
                .max_by_key(|(_, n)| **n)
                .map_or(String::new(), |(s, _)| s.clone());
            let growing = have_start
                && a.blocked[1] >= a.blocked[0].saturating_add(config.min_growth)
                && (a.blocked[1] - a.blocked[0]) as f64
                    >= config.min_growth_fraction * a.blocked[0] as f64;
            let verdict = match (a.proven > 0, growing) {
                (true, true) => SiteVerdict::ProvenGrowing,
                (true, false) => SiteVerdict::Proven,
                (false, true) => SiteVerdict::Growing,
                _ if a.blocked[1] > 0 => SiteVerdict::Waiting,
                _ => SiteVerdict::Normal,
            };
            Site {
                blocking_function: function,
                blocking_location: a.location,
                creation_function: a.creation.as_ref().map(|c| c.0.clone()),
                creation_location: a.creation.map(|c| c.1),
                state,
                start_count: a.count[0],
                end_count: a.count[1],
                blocked_start: a.blocked[0],
                blocked_end: a.blocked[1],
                proven: a.proven,
                wait_minutes_max: a.wait_max,
                verdict,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then(b.growth().cmp(&a.growth()))
            .then(b.proven.cmp(&a.proven))
            .then(b.end_count.cmp(&a.end_count))
            .then(a.blocking_function.cmp(&b.blocking_function))
    });
    out
}

/// The goroutine count trend of the alert catalogue's GoroutineLeak
/// (`memlens rules`): what the live agent judges between two goroutine
/// dumps, from the count alone.
#[derive(Debug, Clone, PartialEq)]
pub struct CountTrendConfig {
    /// At least this many goroutines now (1000).
    pub min_goroutines: f64,
    /// The newest quarter's fewest at least this many times the oldest
    /// quarter's most (1.5): goroutines accumulate rather than come and go.
    pub growth_ratio: f64,
    /// The window (3600 s); the samples must cover three quarters of it.
    pub window_seconds: f64,
}

/// A [`GOROUTINE_LEAK`] (warning) from the goroutine counts of one process
/// over the window, `(ms, count)` in time order: at least `min_goroutines`
/// now, and the fewest of the newest quarter of the window at least
/// `growth_ratio` times the most of its oldest quarter. `None` while the
/// samples span less than three quarters of the window (the two quarters
/// would overlap). The sites come from a dump (`memlens goroutines`).
pub fn count_trend(
    samples: &[(i64, f64)],
    config: &CountTrendConfig,
    target: &Target,
    at_ms: i64,
) -> Option<Finding> {
    let (first, last) = (samples.first()?, samples.last()?);
    let window_ms = (config.window_seconds * 1000.0) as i64;
    let quarter_ms = window_ms / 4;
    if window_ms <= 0 || last.0 - first.0 < window_ms - quarter_ms || last.1 < config.min_goroutines
    {
        return None;
    }
    let start = last.0 - window_ms;
    let oldest = samples
        .iter()
        .filter(|s| s.0 <= start + quarter_ms)
        .map(|s| s.1)
        .fold(f64::NAN, f64::max);
    let newest = samples
        .iter()
        .filter(|s| s.0 >= last.0 - quarter_ms)
        .map(|s| s.1)
        .fold(f64::NAN, f64::min);
    if !(oldest.is_finite() && newest.is_finite()) || newest < config.growth_ratio * oldest {
        return None;
    }
    let span_seconds = (last.0 - first.0) as f64 / 1000.0;
    let growth = last.1 - first.1;
    let evidence = vec![
        Evidence::new("goroutines", last.1, "count", Layer::GoRuntime),
        Evidence::new(
            "oldest_quarter_max_goroutines",
            oldest,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "newest_quarter_min_goroutines",
            newest,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "growth_ratio",
            newest / oldest.max(1.0),
            "ratio",
            Layer::Derived,
        ),
        Evidence::new(
            "growth_per_minute",
            growth * 60.0 / span_seconds.max(1.0),
            "count/min",
            Layer::Derived,
        ),
        Evidence::new("window_seconds", span_seconds, "seconds", Layer::Derived),
    ];
    Some(Finding::fired(
        GOROUTINE_LEAK,
        Severity::Warning,
        target.clone(),
        evidence,
        format!(
            "{:.0} goroutines, up from at most {oldest:.0} in the window's oldest quarter: they \
             accumulate; memlens goroutines --pid PID --diff shows the creation sites that grow",
            last.1
        ),
        at_ms,
    ))
}

/// The finding of a process whose `sites` (from [`sites`]) include a leak:
/// critical when a site is both proven and growing, else a warning; `None`
/// without a leaking site.
pub fn check(sites: &[Site], window_seconds: f64, target: &Target, at_ms: i64) -> Option<Finding> {
    let leaking: Vec<&Site> = sites.iter().filter(|s| s.verdict.is_leak()).collect();
    let worst = *leaking.first()?;
    let severity = if worst.verdict == SiteVerdict::ProvenGrowing {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let growth = worst.growth().max(0) as f64;
    let mut evidence = vec![
        Evidence::new(
            "leaking_goroutines",
            worst.blocked_end.max(worst.proven) as f64,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "proven_leaked_goroutines",
            worst.proven as f64,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "goroutines_start",
            worst.start_count as f64,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "goroutines_end",
            worst.end_count as f64,
            "count",
            Layer::GoRuntime,
        ),
        Evidence::new("growth_goroutines", growth, "count", Layer::Derived),
        Evidence::new(
            "leaking_sites",
            leaking.len() as f64,
            "count",
            Layer::Derived,
        ),
    ];
    if window_seconds.is_finite() && window_seconds > 0.0 {
        evidence.push(Evidence::new(
            "growth_per_minute",
            growth * 60.0 / window_seconds,
            "count/min",
            Layer::Derived,
        ));
    }
    if let Some(wait) = worst.wait_minutes_max {
        evidence.push(Evidence::new(
            "wait_minutes_max",
            wait as f64,
            "minutes",
            Layer::GoRuntime,
        ));
    }
    let created = match (&worst.creation_function, &worst.creation_location) {
        (Some(f), Some(l)) => format!("created by {f} ({l})"),
        (Some(f), None) => format!("created by {f}"),
        _ => "creation site unknown (no ?debug=2 dump)".to_string(),
    };
    let why = match worst.verdict {
        SiteVerdict::ProvenGrowing => format!(
            "{} proven leaked by the GC (goroutineleak) and {} more blocked within the window",
            worst.proven, growth
        ),
        SiteVerdict::Proven => format!(
            "{} proven leaked by the GC (goroutineleak: blocked on objects nothing running can reach)",
            worst.proven
        ),
        _ => format!(
            "{} → {} blocked over {:.0} s",
            worst.blocked_start, worst.blocked_end, window_seconds
        ),
    };
    let recommendation = format!(
        "goroutines leak in {} ({}, {}), {created}: {why}. Give every such \
         goroutine a way to end: a context or done channel it selects on, a \
         buffered or closed channel, or a timeout; `memlens goroutines` shows \
         the whole stacks.",
        worst.blocking_function,
        if worst.state.is_empty() {
            "blocked"
        } else {
            &worst.state
        },
        worst.blocking_location,
    );
    Some(Finding::fired(
        GOROUTINE_LEAK,
        severity,
        target.clone(),
        evidence,
        recommendation,
        at_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::goroutine::{read_dump, Limits};

    #[test]
    fn the_count_trend_needs_a_climb_across_the_window_and_enough_goroutines() {
        let target = Target::Process {
            pid: 1,
            start_time: 1,
        };
        let config = CountTrendConfig {
            min_goroutines: 1000.0,
            growth_ratio: 1.5,
            window_seconds: 3600.0,
        };
        let series = |f: &dyn Fn(f64) -> f64| -> Vec<(i64, f64)> {
            (0..=120)
                .map(|i| (i * 30_000, f(i as f64 * 30.0)))
                .collect()
        };
        // 500 → 4100 over the hour: fires.
        let climbing = series(&|t| 500.0 + t);
        let f = count_trend(&climbing, &config, &target, 3_600_000).unwrap();
        assert_eq!(f.id, GOROUTINE_LEAK);
        assert_eq!(f.evidence("goroutines"), Some(4100.0));
        assert_eq!(f.evidence("oldest_quarter_max_goroutines"), Some(1400.0));
        assert_eq!(f.evidence("newest_quarter_min_goroutines"), Some(3200.0));
        // Flat at 5000, a sawtooth between 2000 and 2900, too few, too
        // short a span: nothing.
        assert!(count_trend(&series(&|_| 5000.0), &config, &target, 0).is_none());
        let saw = series(&|t| 2000.0 + (t % 900.0));
        assert!(count_trend(&saw, &config, &target, 0).is_none());
        assert!(count_trend(&series(&|t| 100.0 + t / 10.0), &config, &target, 0).is_none());
        assert!(count_trend(&climbing[60..], &config, &target, 0).is_none());
        assert!(count_trend(&[], &config, &target, 0).is_none());
    }

    fn dump(text: &str) -> Analysis {
        read_dump(text.as_bytes(), Limits::default(), &mut |_| {}).unwrap()
    }

    fn leaky(n: usize, extra: &str) -> String {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                "goroutine {} [chan receive{extra}]:\nruntime.gopark()\n\t/go/proc.go:1 +0x1\n\
                 main.leakyWorker(0x0)\n\t/w/modes_leak.go:20 +0x1\n\
                 created by main.leakyWorkerSpawner\n\t/w/modes_leak.go:30 +0x1\n\n",
                i + 10
            ));
        }
        s.push_str(
            "goroutine 1 [IO wait, 30 minutes]:\nmain.serve()\n\t/w/main.go:5 +0x1\n\n\
             goroutine 2 [select, 30 minutes]:\nmain.pool()\n\t/w/main.go:7 +0x1\n\
             created by main.start\n\t/w/main.go:9 +0x1\n\n",
        );
        s
    }

    fn target() -> Target {
        Target::Process {
            pid: 1,
            start_time: 2,
        }
    }

    #[test]
    fn growth_names_the_blocking_function_and_the_creator() {
        let s = sites(
            Some(&dump(&leaky(5, ""))),
            &dump(&leaky(40, "")),
            &Config::default(),
        );
        assert_eq!(s[0].verdict, SiteVerdict::Growing);
        assert_eq!(s[0].blocking_function, "main.leakyWorker");
        assert_eq!(
            s[0].creation_function.as_deref(),
            Some("main.leakyWorkerSpawner")
        );
        assert_eq!(s[0].growth(), 35);
        let f = check(&s, 5.0, &target(), 7).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.evidence("growth_goroutines"), Some(35.0));
        assert!(f.recommendation.contains("main.leakyWorkerSpawner"));
        // The long-waiting constant ones are listed, not leaks.
        assert!(s
            .iter()
            .any(|x| x.blocking_function == "main.pool" && x.verdict == SiteVerdict::Waiting));
    }

    #[test]
    fn a_constant_set_of_long_waits_is_not_a_leak() {
        let a = dump(&leaky(40, ", 45 minutes"));
        let s = sites(Some(&a), &a, &Config::default());
        assert!(s.iter().all(|x| !x.verdict.is_leak()), "{s:#?}");
        assert!(check(&s, 5.0, &target(), 7).is_none());
        // Without a start nothing grows either.
        assert!(check(&sites(None, &a, &Config::default()), 0.0, &target(), 7).is_none());
    }

    #[test]
    fn proof_makes_a_constant_set_a_leak() {
        let a = dump(&leaky(12, " (leaked)"));
        let s = sites(Some(&a), &a, &Config::default());
        assert_eq!(s[0].verdict, SiteVerdict::Proven);
        assert_eq!(s[0].proven, 12);
        let f = check(&s, 5.0, &target(), 7).unwrap();
        assert_eq!(f.evidence("proven_leaked_goroutines"), Some(12.0));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_dumps_never_panic(a in "(goroutine [0-9] \\[[a-z ,0-9()]{0,20}\\]:\n([a-z.]{1,8}\\(\\)\n\t/f.go:[0-9]\n|created by [a-z.]{1,6}\n\t/g.go:1\n){0,3}\n){0,4}", b in "(goroutine [0-9] \\[[a-z ,0-9()]{0,20}\\]:\n([a-z.]{1,8}\\(\\)\n\t/f.go:[0-9]\n){0,3}\n){0,4}") {
            let read = |t: &str| read_dump(t.as_bytes(), Limits::default(), &mut |_| {}).ok();
            if let Some(end) = read(&b) {
                let s = sites(read(&a).as_ref(), &end, &Config::default());
                let _ = check(&s, 1.0, &target(), 0);
            }
        }
    }

    #[test]
    fn small_growth_of_a_big_pool_is_load() {
        let s = sites(
            Some(&dump(&leaky(100, ""))),
            &dump(&leaky(115, "")),
            &Config::default(),
        );
        assert!(check(&s, 5.0, &target(), 7).is_none(), "{s:#?}");
    }
}
