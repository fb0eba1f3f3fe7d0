//! OOM victim ranking: the order in which the kernel's OOM killer would pick
//! the processes of one OOM scope (a memory cgroup at its limit, or the
//! host out of RAM and swap), worst first.
//!
//! What is implemented, after `oom_badness()` and `oom_evaluate_task()` of
//! the kernel's `mm/oom_kill.c` (Linux 5.10 and later):
//!
//! - **Badness**, in pages: resident pages + swap entries + page-table pages
//!   (`VmRSS`, `VmSwap`, `VmPTE` of `/proc/PID/status`, each divided by the
//!   page size, rounded down as the kernel's `mm_pgtables_bytes / PAGE_SIZE`).
//! - **Adjustment**: `oom_score_adj * (totalpages / 1000)` pages, the
//!   division first and in integers, as the kernel writes
//!   `adj *= totalpages / 1000`. `totalpages` is the memory of the OOM's
//!   scope: the limit of the cgroup that hit it (plus the swap it may use),
//!   or host RAM + swap for a host OOM ([`Scope::total_bytes`]).
//! - **Never killed**: `oom_score_adj == -1000`, processes with no memory of
//!   their own (kernel threads, zombies: no `VmRSS`) and the global init
//!   (pid 1). Everything else can be chosen, even with negative points.
//! - **Ties**: the kernel walks the tasks and replaces its choice when a task
//!   has points `>=` the chosen one's, so of equal points the last one
//!   walked dies. Tasks are walked roughly in creation order; here the
//!   most recently started (larger `start_time`, then larger pid) of equal
//!   points ranks first.
//!
//! Left out: a task already being killed or reaped (`MMF_OOM_SKIP`), a
//! process in `vfork`, the `oom_task_origin` of swapoff/KSM (always chosen),
//! and `memory.oom.group` (v2: the whole cgroup dies together).
//!
//! `/proc/PID/oom_score` is the same badness against the host's
//! `totalpages`, scaled: [`host_oom_score`].

use crate::finding::{Evidence, Finding, Layer, Severity, Target};

/// Stable id: the order in which the kernel's OOM killer would pick the
/// processes of a cgroup or of the host, worst first (info).
pub const OOM_VICTIM_ORDER: &str = "memory.oom_victim_order";

/// `OOM_SCORE_ADJ_MIN`: a process with this adjustment is never killed.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
/// `OOM_SCORE_ADJ_MAX`.
pub const OOM_SCORE_ADJ_MAX: i32 = 1000;

/// One process as the OOM killer weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The process id.
    pub pid: i32,
    /// Start time in clock ticks after boot; (pid, start time) identifies it.
    pub start_time: u64,
    /// The process name (`comm`).
    pub comm: String,
    /// `VmRSS`; `None` for a process with no memory of its own (a kernel
    /// thread, a zombie), which the kernel never picks.
    pub rss_bytes: Option<u64>,
    /// `VmSwap` (0 when unknown).
    pub swap_bytes: u64,
    /// `VmPTE` (0 when unknown).
    pub page_tables_bytes: u64,
    /// `oom_score_adj`, -1000..=1000.
    pub oom_score_adj: i32,
}

/// What an OOM is about: which memory ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeKind {
    /// A memory cgroup hit its limit; only its processes (and those of the
    /// cgroups below it) are candidates.
    Cgroup {
        /// The cgroup's path as `/proc/PID/cgroup` shows it.
        path: String,
    },
    /// The host ran out of RAM and swap; every process is a candidate.
    Host,
}

/// An OOM scope and the size of its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// A cgroup or the host.
    pub kind: ScopeKind,
    /// The kernel's `totalpages` in bytes: the cgroup's limit plus the swap
    /// it may use (v2: `min(memory.swap.max, host swap)`; v1: `min(memsw
    /// limit - limit, host swap)`), or host `MemTotal + SwapTotal`.
    pub total_bytes: u64,
}

/// Why a process can never be the victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// `oom_score_adj` is -1000.
    AdjMin,
    /// No memory of its own (kernel thread, zombie).
    NoMemory,
    /// The global init (pid 1).
    Init,
}

impl Exemption {
    /// `oom_score_adj=-1000`, `no_memory` or `init`.
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::AdjMin => "oom_score_adj=-1000",
            Exemption::NoMemory => "no_memory",
            Exemption::Init => "init",
        }
    }
}

/// One ranked process.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The process as given.
    pub candidate: Candidate,
    /// Resident + swap + page-table pages (the badness before adjustment).
    pub base_pages: i64,
    /// What `oom_score_adj` adds (negative: subtracts), in pages.
    pub adj_pages: i64,
    /// The kernel's points: `base_pages + adj_pages`; the largest dies.
    pub points: i64,
    /// `points` as bytes (may be negative).
    pub points_bytes: i64,
    /// `points` as a share of the scope's memory (`totalpages`): 1.0 is all
    /// of it; negative when the adjustment outweighs the process's memory.
    pub share_of_scope: f64,
}

/// The processes of one scope, in the order the OOM killer would pick them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// The scope.
    pub scope: Scope,
    /// The page size the points are counted in.
    pub page_size_bytes: u64,
    /// The scope's `totalpages`.
    pub total_pages: u64,
    /// Killable processes, the first victim first.
    pub ranked: Vec<Ranked>,
    /// Processes the kernel never kills, with the reason, in input order.
    pub exempt: Vec<(Candidate, Exemption)>,
}

/// Invalid input to [`rank`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VictimError {
    /// The page size is 0.
    ZeroPageSize,
    /// An `oom_score_adj` outside -1000..=1000.
    AdjOutOfRange {
        /// The process.
        pid: i32,
        /// Its value.
        oom_score_adj: i32,
    },
}

impl std::fmt::Display for VictimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VictimError::ZeroPageSize => write!(f, "OOM victim ranking: the page size is 0"),
            VictimError::AdjOutOfRange { pid, oom_score_adj } => write!(
                f,
                "OOM victim ranking: process {pid} has oom_score_adj {oom_score_adj}, outside -1000..=1000"
            ),
        }
    }
}

impl std::error::Error for VictimError {}

/// The kernel's `oom_badness()` of one process against a scope of
/// `total_pages`: `Ok(Ok((base_pages, adj_pages)))` (the points are their
/// sum), or `Ok(Err(why))` when the process is never killed.
pub fn badness_points(
    candidate: &Candidate,
    total_pages: u64,
    page_size_bytes: u64,
) -> Result<Result<(i64, i64), Exemption>, VictimError> {
    if page_size_bytes == 0 {
        return Err(VictimError::ZeroPageSize);
    }
    let adj = candidate.oom_score_adj;
    if !(OOM_SCORE_ADJ_MIN..=OOM_SCORE_ADJ_MAX).contains(&adj) {
        return Err(VictimError::AdjOutOfRange {
            pid: candidate.pid,
            oom_score_adj: adj,
        });
    }
    if candidate.pid == 1 {
        return Ok(Err(Exemption::Init));
    }
    let Some(rss_bytes) = candidate.rss_bytes else {
        return Ok(Err(Exemption::NoMemory));
    };
    if adj == OOM_SCORE_ADJ_MIN {
        return Ok(Err(Exemption::AdjMin));
    }
    let pages = |bytes: u64| (bytes / page_size_bytes).min(i64::MAX as u64 / 4) as i64;
    let base = pages(rss_bytes) + pages(candidate.swap_bytes) + pages(candidate.page_tables_bytes);
    let per_mille = (total_pages / 1000).min(i64::MAX as u64 / 4000) as i64;
    Ok(Ok((base, i64::from(adj) * per_mille)))
}

/// `/proc/PID/oom_score` from host-scope points: `(1000 + points * 1000 /
/// totalpages) * 2 / 3`, as the kernel's `proc_oom_score()` computes it
/// (0..=2000; 0 for an exempt process).
pub fn host_oom_score(points: i64, host_total_pages: u64) -> u32 {
    let total = host_total_pages.max(1).min(i64::MAX as u64 / 1000) as i64;
    let scaled = points.saturating_mul(1000) / total;
    (1000i64.saturating_add(scaled).saturating_mul(2) / 3).clamp(0, 2000) as u32
}

/// Orders `candidates` as the OOM killer of `scope` would pick them.
pub fn rank(
    scope: &Scope,
    candidates: &[Candidate],
    page_size_bytes: u64,
) -> Result<Ranking, VictimError> {
    if page_size_bytes == 0 {
        return Err(VictimError::ZeroPageSize);
    }
    let total_pages = scope.total_bytes / page_size_bytes;
    let mut ranked = Vec::new();
    let mut exempt = Vec::new();
    for candidate in candidates {
        match badness_points(candidate, total_pages, page_size_bytes)? {
            Err(why) => exempt.push((candidate.clone(), why)),
            Ok((base_pages, adj_pages)) => {
                let points = base_pages + adj_pages;
                ranked.push(Ranked {
                    candidate: candidate.clone(),
                    base_pages,
                    adj_pages,
                    points,
                    points_bytes: points.saturating_mul(page_size_bytes as i64),
                    share_of_scope: points as f64 / total_pages.max(1) as f64,
                });
            }
        }
    }
    // Largest points first; of equal points, the one the kernel walks last.
    ranked.sort_by(|a, b| {
        b.points
            .cmp(&a.points)
            .then(b.candidate.start_time.cmp(&a.candidate.start_time))
            .then(b.candidate.pid.cmp(&a.candidate.pid))
    });
    Ok(Ranking {
        scope: scope.clone(),
        page_size_bytes,
        total_pages,
        ranked,
        exempt,
    })
}

/// `12.3 MiB`-style size for explanations.
pub fn human_bytes(bytes: i64) -> String {
    let sign = if bytes < 0 { "-" } else { "" };
    let b = bytes.unsigned_abs() as f64;
    const KIB: f64 = 1024.0;
    if b >= KIB * KIB * KIB {
        format!("{sign}{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{sign}{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{sign}{:.1} KiB", b / KIB)
    } else {
        format!("{sign}{b} B")
    }
}

impl Ranking {
    /// The first victim, if any process can be killed.
    pub fn first(&self) -> Option<&Ranked> {
        self.ranked.first()
    }

    /// One line: "if cgroup X hits its limit (160.0 MiB), PID 42 (name)
    /// dies first: ...".
    pub fn explanation(&self) -> String {
        let when = match &self.scope.kind {
            ScopeKind::Cgroup { path } => format!(
                "if cgroup {path} hits its limit ({})",
                human_bytes(self.scope.total_bytes as i64)
            ),
            ScopeKind::Host => format!(
                "if the host runs out of memory ({} of RAM + swap)",
                human_bytes(self.scope.total_bytes as i64)
            ),
        };
        let Some(first) = self.first() else {
            return format!("{when}, no process can be killed (all are exempt)");
        };
        let page = self.page_size_bytes as i64;
        let c = &first.candidate;
        let mut line = format!(
            "{when}, PID {} ({}) dies first: {} resident + swap + page tables",
            c.pid,
            c.comm,
            human_bytes(first.base_pages.saturating_mul(page))
        );
        if c.oom_score_adj != 0 {
            line.push_str(&format!(
                ", oom_score_adj {} {} {}",
                c.oom_score_adj,
                if first.adj_pages >= 0 {
                    "adds"
                } else {
                    "takes off"
                },
                human_bytes(first.adj_pages.saturating_mul(page).saturating_abs())
            ));
        }
        line.push_str(&format!(
            " = {:.1} % of the scope",
            first.share_of_scope * 100.0
        ));
        if let Some(next) = self.ranked.get(1) {
            line.push_str(&format!(
                "; next: PID {} ({}), {} fewer points",
                next.candidate.pid,
                next.candidate.comm,
                human_bytes(
                    first
                        .points
                        .saturating_sub(next.points)
                        .saturating_mul(page)
                )
            ));
        }
        line
    }

    /// The [`OOM_VICTIM_ORDER`] finding (info) for this scope at `at_ms`:
    /// `None` when no process can be killed.
    pub fn finding(&self, at_ms: i64) -> Option<Finding> {
        let first = self.first()?;
        let (target, scope_layer) = match &self.scope.kind {
            ScopeKind::Cgroup { path } => (Target::Cgroup { path: path.clone() }, Layer::Cgroup),
            ScopeKind::Host => (Target::Host, Layer::Kernel),
        };
        let page = self.page_size_bytes as f64;
        let mut evidence = vec![
            Evidence::new(
                "scope_total_bytes",
                self.scope.total_bytes as f64,
                "bytes",
                scope_layer,
            ),
            Evidence::new(
                "victim_pid",
                f64::from(first.candidate.pid),
                "",
                Layer::Process,
            ),
            Evidence::new(
                "victim_badness_bytes",
                first.base_pages as f64 * page,
                "bytes",
                Layer::Process,
            ),
            Evidence::new(
                "victim_oom_score_adj",
                f64::from(first.candidate.oom_score_adj),
                "",
                Layer::Process,
            ),
            Evidence::new(
                "victim_points_bytes",
                first.points as f64 * page,
                "bytes",
                Layer::Derived,
            ),
            Evidence::new(
                "victim_share",
                first.share_of_scope,
                "ratio",
                Layer::Derived,
            ),
            Evidence::new("candidates", self.ranked.len() as f64, "", Layer::Derived),
        ];
        if let Some(next) = self.ranked.get(1) {
            evidence.push(Evidence::new(
                "margin_bytes",
                first.points.saturating_sub(next.points) as f64 * page,
                "bytes",
                Layer::Derived,
            ));
        }
        Some(Finding::fired(
            OOM_VICTIM_ORDER,
            Severity::Info,
            target,
            evidence,
            format!(
                "{}. To protect a process, lower its oom_score_adj (systemd OOMScoreAdjust=, \
                 Kubernetes QoS); to choose the victim, raise another's.",
                self.explanation()
            ),
            at_ms,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const PAGE: u64 = 4096;

    fn cand(pid: i32, rss_mib: u64, adj: i32) -> Candidate {
        Candidate {
            pid,
            start_time: pid as u64,
            comm: format!("p{pid}"),
            rss_bytes: Some(rss_mib * MIB),
            swap_bytes: 0,
            page_tables_bytes: 0,
            oom_score_adj: adj,
        }
    }

    fn cgroup(limit_mib: u64) -> Scope {
        Scope {
            kind: ScopeKind::Cgroup {
                path: "/test".into(),
            },
            total_bytes: limit_mib * MIB,
        }
    }

    fn order(r: &Ranking) -> Vec<i32> {
        r.ranked.iter().map(|x| x.candidate.pid).collect()
    }

    #[test]
    fn victims_largest_dies_without_adjustment() {
        let r = rank(
            &cgroup(160),
            &[cand(10, 20, 0), cand(11, 60, 0), cand(12, 40, 0)],
            PAGE,
        )
        .unwrap();
        assert_eq!(order(&r), [11, 12, 10]);
        assert_eq!(r.ranked[0].points, (60 * MIB / PAGE) as i64);
        assert!(
            r.explanation().contains("PID 11 (p11) dies first"),
            "{}",
            r.explanation()
        );
    }

    #[test]
    fn victims_adjustment_scales_with_the_scope_and_can_flip_the_order() {
        // 160 MiB = 40960 pages; 40960 / 1000 = 40 (integer) pages per unit.
        let c = [cand(10, 60, 0), cand(11, 20, 500)];
        let r = rank(&cgroup(160), &c, PAGE).unwrap();
        assert_eq!(r.ranked[0].candidate.pid, 11);
        assert_eq!(r.ranked[0].adj_pages, 500 * 40);
        assert_eq!(r.ranked[0].points, (20 * MIB / PAGE) as i64 + 20_000);
        // A tiny scope: the same adjustment weighs less than 40 MiB.
        let r = rank(&cgroup(40), &c, PAGE).unwrap();
        assert_eq!(order(&r), [10, 11]);
    }

    #[test]
    fn victims_swap_and_page_tables_count_and_exempt_are_left_out() {
        let mut a = cand(10, 10, 0);
        a.swap_bytes = 30 * MIB;
        a.page_tables_bytes = 8192 + 100; // 2 pages, rounded down
        let mut kthread = cand(12, 0, 0);
        kthread.rss_bytes = None;
        let c = [
            a,
            cand(11, 39, 0),
            cand(13, 500, -1000),
            kthread,
            cand(1, 500, 0),
        ];
        let r = rank(&cgroup(1024), &c, PAGE).unwrap();
        assert_eq!(order(&r), [10, 11]);
        assert_eq!(r.ranked[0].base_pages, (40 * MIB / PAGE) as i64 + 2);
        let exempt: Vec<_> = r.exempt.iter().map(|(c, e)| (c.pid, *e)).collect();
        assert_eq!(
            exempt,
            [
                (13, Exemption::AdjMin),
                (12, Exemption::NoMemory),
                (1, Exemption::Init)
            ]
        );
    }

    #[test]
    fn victims_negative_points_still_killable_and_ties_go_to_the_newest() {
        let r = rank(
            &cgroup(160),
            &[cand(20, 10, -999), cand(21, 10, 0), cand(22, 10, 0)],
            PAGE,
        )
        .unwrap();
        assert_eq!(order(&r), [22, 21, 20]);
        assert!(r.ranked[2].points < 0);
        assert!(r.ranked[2].share_of_scope < 0.0);
    }

    #[test]
    fn victims_host_oom_score_matches_the_kernel_formula() {
        // 8 GiB host, a 1 GiB process, adj 0: (1000 + 125) * 2 / 3 = 750.
        let total = 8 * 1024 * MIB / PAGE;
        assert_eq!(host_oom_score((1024 * MIB / PAGE) as i64, total), 750);
        assert_eq!(host_oom_score(0, total), 666);
        assert_eq!(host_oom_score(-(total as i64), total), 0);
        assert_eq!(host_oom_score(total as i64, total), 1333);
    }

    #[test]
    fn victims_bad_input_is_an_error() {
        assert_eq!(rank(&cgroup(1), &[], 0), Err(VictimError::ZeroPageSize));
        let e = rank(&cgroup(1), &[cand(5, 1, 1001)], PAGE).unwrap_err();
        assert!(e.to_string().contains("process 5"), "{e}");
    }

    #[test]
    fn victims_finding_names_the_first_victim() {
        let r = rank(&cgroup(160), &[cand(10, 60, 0), cand(11, 20, 500)], PAGE).unwrap();
        let f = r.finding(1000).unwrap();
        assert_eq!(f.id, OOM_VICTIM_ORDER);
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.evidence("victim_pid"), Some(11.0));
        assert_eq!(
            f.target,
            Target::Cgroup {
                path: "/test".into()
            }
        );
        let empty = rank(&cgroup(160), &[cand(3, 1, -1000)], PAGE).unwrap();
        assert!(empty.finding(0).is_none());
        assert!(empty.explanation().contains("no process can be killed"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn victims_any_input_never_panics_and_orders_by_points(
            total in any::<u64>(),
            page in any::<u64>(),
            procs in proptest::collection::vec(
                (any::<i32>(), any::<u64>(), proptest::option::of(any::<u64>()), any::<u64>(), any::<u64>(), -1100i32..1100),
                0..20,
            ),
        ) {
            let c: Vec<Candidate> = procs.iter().map(|&(pid, st, rss, swap, pt, adj)| Candidate {
                pid, start_time: st, comm: String::new(), rss_bytes: rss,
                swap_bytes: swap, page_tables_bytes: pt, oom_score_adj: adj,
            }).collect();
            let scope = Scope { kind: ScopeKind::Host, total_bytes: total };
            if let Ok(r) = rank(&scope, &c, page) {
                prop_assert!(r.ranked.windows(2).all(|w| w[0].points >= w[1].points));
                prop_assert_eq!(r.ranked.len() + r.exempt.len(), c.len());
                let _ = r.explanation();
                let _ = r.finding(0);
                for x in &r.ranked {
                    let _ = host_oom_score(x.points, r.total_pages);
                }
            }
        }
    }
}
